//! What a user asks for when running a container.

use mcm_common::cgroups::Limits;
use mcm_common::container::NetworkMode;
use mcm_common::security::SecurityConfig;

/// A request to create (and usually start) a container.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// Image name in the store, the built-in `busybox`, or a rootfs path.
    pub image: String,
    /// Command and arguments; empty means the default shell.
    pub command: Vec<String>,
    pub name: Option<String>,
    /// Defaults to the short id.
    pub hostname: Option<String>,
    /// `KEY=VALUE` pairs added to (or overriding) the defaults.
    pub env: Vec<String>,
    /// Defaults to `/`.
    pub workdir: Option<String>,
    pub network: NetworkMode,
    pub tty: bool,
    pub interactive: bool,
    /// `false` runs the command itself as PID 1.
    pub init: bool,
    pub auto_remove: bool,
    pub limits: Limits,
    /// Capabilities, seccomp, no_new_privileges, privileged.
    pub security: SecurityConfig,
    /// Volumes, binds and tmpfs mounts.
    pub mounts: Vec<mcm_common::container::MountConfig>,
    /// Mount the root read-only.
    pub read_only: bool,
    /// Extra host devices.
    pub devices: Vec<mcm_common::container::DeviceConfig>,
    /// `--userns=remap`: root inside is an unprivileged host id.
    pub userns_remap: bool,
    /// A Docker-format seccomp profile (with `security.seccomp` = `Profile`).
    pub seccomp_profile: Option<std::path::PathBuf>,
}

impl RunSpec {
    /// A spec running `command` in `image` with mcm's defaults.
    pub fn new(image: impl Into<String>, command: &[&str]) -> Self {
        RunSpec {
            image: image.into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            init: true,
            ..RunSpec::default()
        }
    }
}

/// The command run when the user gives none.
pub const DEFAULT_COMMAND: &str = "sh";

/// The environment every container starts with, then `extra` on top
/// (a later `KEY=` replaces an earlier one).
pub fn container_env(hostname: &str, tty: bool, extra: &[String]) -> Vec<String> {
    let mut env: Vec<String> = vec![
        format!(
            "PATH={}",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        format!("HOSTNAME={hostname}"),
        "HOME=/root".to_string(),
    ];
    if tty {
        env.push("TERM=xterm".to_string());
    }
    merge_env(&mut env, extra);
    env
}

/// Adds `extra` pairs to `env`, a later `KEY=` replacing an earlier one.
pub fn merge_env(env: &mut Vec<String>, extra: &[String]) {
    for pair in extra {
        let key = pair.split_once('=').map(|(k, _)| k).unwrap_or(pair);
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(pair.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_env_overrides_defaults() {
        let env = container_env("h", true, &["PATH=/x".into(), "A=1".into(), "A=2".into()]);
        assert!(env.contains(&"PATH=/x".to_string()));
        assert!(env.contains(&"TERM=xterm".to_string()));
        assert!(env.contains(&"A=2".to_string()));
        assert!(!env.contains(&"A=1".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
    }
}

/// Parsers of the mount flags, Docker's syntax.
pub mod mounts {
    use std::path::{Path, PathBuf};

    use mcm_common::container::{MountConfig, MountKind};

    use crate::error::{Error, Result};

    fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Error {
        Error::InvalidValue {
            what,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    fn destination(what: &'static str, value: &str, dst: &str) -> Result<String> {
        if !dst.starts_with('/') || dst == "/" {
            return Err(invalid(
                what,
                value,
                "the container path must be absolute and not /",
            ));
        }
        Ok(dst.to_string())
    }

    fn host_source(what: &'static str, value: &str, src: &str) -> Result<PathBuf> {
        if !src.starts_with('/') {
            return Err(invalid(what, value, "the host path must be absolute"));
        }
        Path::new(src)
            .canonicalize()
            .map_err(|e| invalid(what, value, format!("host path {src}: {e}")))
    }

    /// `-v HOST:CTR[:ro|:rw]`.
    pub fn volume(value: &str) -> Result<MountConfig> {
        let parts: Vec<&str> = value.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [src, dst] => (*src, *dst, "rw"),
            [src, dst, mode] => (*src, *dst, *mode),
            _ => return Err(invalid("volume", value, "expected HOST:CONTAINER[:ro]")),
        };
        let read_only = match mode {
            "ro" => true,
            "rw" => false,
            _ => return Err(invalid("volume", value, "the mode must be ro or rw")),
        };
        Ok(MountConfig {
            kind: MountKind::Bind,
            source: host_source("volume", value, src)?,
            destination: destination("volume", value, dst)?,
            read_only,
            options: String::new(),
        })
    }

    /// `--mount type=bind,src=...,dst=...[,readonly]` (also `source`,
    /// `target`, `destination`, `ro`; `type=tmpfs` with `tmpfs-size`).
    pub fn mount(value: &str) -> Result<MountConfig> {
        let (mut kind, mut src, mut dst, mut read_only, mut size) = (None, None, None, false, None);
        for field in value.split(',') {
            let (key, val) = field.split_once('=').unwrap_or((field, ""));
            match key {
                "type" => kind = Some(val),
                "src" | "source" => src = Some(val),
                "dst" | "destination" | "target" => dst = Some(val),
                "readonly" | "ro" => read_only = val.is_empty() || val == "true" || val == "1",
                "tmpfs-size" => size = Some(val),
                _ => return Err(invalid("mount", value, format!("unknown field {key:?}"))),
            }
        }
        let dst = dst.ok_or_else(|| invalid("mount", value, "dst= is required"))?;
        match kind.unwrap_or("bind") {
            "bind" => Ok(MountConfig {
                kind: MountKind::Bind,
                source: host_source(
                    "mount",
                    value,
                    src.ok_or_else(|| invalid("mount", value, "src= is required"))?,
                )?,
                destination: destination("mount", value, dst)?,
                read_only,
                options: String::new(),
            }),
            "tmpfs" => Ok(MountConfig {
                kind: MountKind::Tmpfs,
                source: PathBuf::new(),
                destination: destination("mount", value, dst)?,
                read_only,
                options: size
                    .map(|s| format!("mode=1777,size={s}"))
                    .unwrap_or_default(),
            }),
            other => Err(invalid(
                "mount",
                value,
                format!("type {other:?} is not supported (bind, tmpfs)"),
            )),
        }
    }

    /// `--tmpfs PATH[:OPTIONS]`, e.g. `/run:size=64m`.
    pub fn tmpfs(value: &str) -> Result<MountConfig> {
        let (dst, options) = value.split_once(':').unwrap_or((value, ""));
        if options.contains(|c: char| c.is_whitespace()) {
            return Err(invalid("tmpfs", value, "options must not contain spaces"));
        }
        Ok(MountConfig {
            kind: MountKind::Tmpfs,
            source: PathBuf::new(),
            destination: destination("tmpfs", value, dst)?,
            read_only: false,
            options: if options.is_empty() {
                String::new()
            } else {
                format!("mode=1777,{options}")
            },
        })
    }

    /// `--device HOST[:CONTAINER][:rwm]`.
    pub fn device(value: &str) -> Result<mcm_common::container::DeviceConfig> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        let parts: Vec<&str> = value.split(':').collect();
        let is_access = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
        let (host, path, access) = match parts.as_slice() {
            [host] => (*host, *host, "rwm"),
            [host, x] if is_access(x) => (*host, *host, *x),
            [host, path] => (*host, *path, "rwm"),
            [host, path, access] if is_access(access) => (*host, *path, *access),
            _ => return Err(invalid("device", value, "expected HOST[:CONTAINER][:rwm]")),
        };
        let meta = std::fs::metadata(host)
            .map_err(|e| invalid("device", value, format!("{host}: {e}")))?;
        let kind = if meta.file_type().is_char_device() {
            'c'
        } else if meta.file_type().is_block_device() {
            'b'
        } else {
            return Err(invalid("device", value, format!("{host} is not a device")));
        };
        if !path.starts_with("/dev/") {
            return Err(invalid(
                "device",
                value,
                "the container path must be under /dev/",
            ));
        }
        Ok(mcm_common::container::DeviceConfig {
            host: host.into(),
            path: path.to_string(),
            kind,
            major: nix::sys::stat::major(meta.rdev()),
            minor: nix::sys::stat::minor(meta.rdev()),
            mode: meta.permissions().mode() & 0o777,
            access: access.to_string(),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn devices() {
            let d = device("/dev/null:/dev/mynull:rw").unwrap();
            assert_eq!((d.kind, d.major, d.minor), ('c', 1, 3));
            assert_eq!(d.path, "/dev/mynull");
            assert_eq!(device("/dev/zero").unwrap().path, "/dev/zero");
            assert!(device("/etc/passwd").is_err());
            assert!(device("/dev/null:/etc/x").is_err());
        }

        #[test]
        fn volumes() {
            let m = volume("/tmp:/data:ro").unwrap();
            assert_eq!(m.destination, "/data");
            assert!(m.read_only);
            assert!(!volume("/tmp:/data").unwrap().read_only);
            for bad in [
                "/tmp",
                "relative:/x",
                "/tmp:relative",
                "/tmp:/x:rx",
                "/no/such/dir:/x",
                "/tmp:/",
            ] {
                assert!(volume(bad).is_err(), "{bad}");
            }
        }

        #[test]
        fn mount_flags() {
            let m = mount("type=bind,src=/tmp,dst=/d,readonly").unwrap();
            assert!(m.read_only && m.kind == MountKind::Bind);
            let t = mount("type=tmpfs,dst=/t,tmpfs-size=1m").unwrap();
            assert_eq!(t.options, "mode=1777,size=1m");
            assert!(mount("type=volume,dst=/x").is_err());
            assert!(mount("src=/tmp").is_err());
            assert!(mount("type=bind,src=/tmp,dst=/x,bogus=1").is_err());
        }

        #[test]
        fn tmpfs_flags() {
            assert_eq!(
                tmpfs("/run:size=64m").unwrap().options,
                "mode=1777,size=64m"
            );
            assert_eq!(tmpfs("/run").unwrap().options, "");
            assert!(tmpfs("run").is_err());
        }
    }
}
