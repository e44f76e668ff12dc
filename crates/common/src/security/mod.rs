//! The hardening every container process gets before its command runs,
//! the same for the container's command and for `mcm exec`: Docker's
//! default capabilities, a seccomp filter, and optionally no_new_privs.

pub mod capabilities;
pub mod seccomp;

use serde::{Deserialize, Serialize};

pub use capabilities::CapabilityError;
pub use seccomp::SeccompError;

/// Which seccomp filter a container gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    /// mcm's built-in default, equivalent to Docker's default profile.
    #[default]
    Default,
    /// No filter (`--security-opt seccomp=unconfined`, `--privileged`).
    Unconfined,
    /// A Docker-format JSON profile, stored in the container's directory.
    Profile,
}

/// The security options of a container, as the user asked for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SecurityConfig {
    /// All capabilities, no seccomp, no masked paths, host devices.
    pub privileged: bool,
    /// Capability names added to Docker's default set (`ALL` accepted).
    pub cap_add: Vec<String>,
    /// Capability names dropped from it (`ALL` accepted).
    pub cap_drop: Vec<String>,
    pub seccomp: SeccompMode,
    /// Set no_new_privs: setuid binaries and file capabilities grant nothing.
    pub no_new_privileges: bool,
}

impl SecurityConfig {
    /// The capability set a process of this container keeps (a bit mask of
    /// capability numbers), or an error for an unknown capability name.
    pub fn capability_mask(&self) -> Result<u64, CapabilityError> {
        if self.privileged {
            return Ok(capabilities::all_known());
        }
        capabilities::resolve(&self.cap_add, &self.cap_drop)
    }
}

/// A prepared hardening step: computed (and the seccomp filter compiled)
/// before the fork, applied by the child just before its exec.
#[derive(Debug, Clone)]
pub struct Hardening {
    capabilities: u64,
    seccomp: Option<seccomp::Filters>,
    no_new_privs: bool,
}

/// Preparing or applying the hardening failed.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("cannot read seccomp profile {path}: {source}")]
    Profile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
}

impl Hardening {
    /// Computes the hardening of `config`; `profile` is the path of the
    /// stored Docker-format profile when `config.seccomp` is `Profile`.
    pub fn prepare(
        config: &SecurityConfig,
        profile: &std::path::Path,
    ) -> Result<Hardening, HardeningError> {
        let mode = if config.privileged {
            SeccompMode::Unconfined
        } else {
            config.seccomp.clone()
        };
        Hardening::with_mask(
            config.capability_mask()?,
            &mode,
            profile,
            config.no_new_privileges,
        )
    }

    /// The same from an already computed capability mask (what `mcm exec`
    /// hands to mcm-nsenter).
    pub fn with_mask(
        capabilities: u64,
        mode: &SeccompMode,
        profile: &std::path::Path,
        no_new_privs: bool,
    ) -> Result<Hardening, HardeningError> {
        let seccomp = match mode {
            SeccompMode::Unconfined => None,
            SeccompMode::Default => Some(seccomp::default_filters()?),
            SeccompMode::Profile => {
                let text =
                    std::fs::read_to_string(profile).map_err(|source| HardeningError::Profile {
                        path: profile.display().to_string(),
                        source,
                    })?;
                Some(seccomp::docker_profile_filters(
                    &text,
                    &capabilities::names(capabilities),
                )?)
            }
        };
        Ok(Hardening {
            capabilities,
            seccomp,
            no_new_privs,
        })
    }

    /// Applies it to the calling process, last thing before exec:
    /// no_new_privs, then the seccomp filter (installing it needs
    /// CAP_SYS_ADMIN or no_new_privs, so it goes before the capabilities
    /// are dropped), then the capability sets.
    pub fn apply(&self) -> Result<(), HardeningError> {
        if self.no_new_privs {
            // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integer arguments.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(HardeningError::NoNewPrivs(std::io::Error::last_os_error()));
            }
        }
        if let Some(filters) = &self.seccomp {
            seccomp::install(filters)?;
        }
        capabilities::apply(self.capabilities)?;
        Ok(())
    }
}
