//! Errors of the mcm library, with the exit code each gives the CLI.

use std::io;
use std::path::PathBuf;

use crate::image::ImageError;

/// Exit code when mcm itself fails (Docker's convention).
pub const EXIT_MCM_FAILED: i32 = 125;

/// Everything that can go wrong managing containers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("container prefix {prefix:?} is ambiguous: matches {}", candidates.join(", "))]
    AmbiguousPrefix {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("invalid container name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("the container name {0:?} is already in use")]
    NameInUse(String),
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("container {id} is {state}: {hint}")]
    WrongState {
        id: String,
        state: &'static str,
        hint: &'static str,
    },
    #[error("{0}")]
    HelperMissing(String),
    /// The container could not be started; `exit_code` is 125, 126 or 127.
    #[error("{message}")]
    StartFailed { exit_code: i32, message: String },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] mcm_common::Error),
    #[error(transparent)]
    Cgroup(#[from] mcm_common::cgroups::CgroupError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Capability(#[from] mcm_common::security::CapabilityError),
}

impl Error {
    /// The process exit code the CLI reports for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::StartFailed { exit_code, .. } => *exit_code,
            _ => EXIT_MCM_FAILED,
        }
    }

    /// An I/O failure on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// Result alias of the library.
pub type Result<T> = std::result::Result<T, Error>;
