//! Errors of container setup, each saying what was being done to what.

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// A step of building or starting the container failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot mount {fstype} {source_name} on {} (options {data:?}): {errno}", target.display())]
    Mount {
        source_name: String,
        target: PathBuf,
        fstype: String,
        data: String,
        errno: Errno,
    },
    #[error("pivot_root into the container root failed: {errno}")]
    Pivot { errno: Errno },
    #[error("cannot {op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error(transparent)]
    Common(#[from] mcm_common::Error),
    #[error(transparent)]
    Cgroup(#[from] mcm_common::cgroups::CgroupError),
    #[error(transparent)]
    Hardening(#[from] mcm_common::security::HardeningError),
    #[error("{0}")]
    Usage(String),
}

impl SetupError {
    /// An I/O failure on `path`.
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        SetupError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A failed system call without a path.
    pub fn sys(op: &'static str) -> impl FnOnce(Errno) -> SetupError {
        move |errno| SetupError::Sys { op, errno }
    }
}

/// Result of a setup step.
pub type SetupResult<T> = Result<T, SetupError>;
