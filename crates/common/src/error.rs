//! Errors of the shared layer, each carrying the path it concerns.

use std::io;
use std::path::{Path, PathBuf};

use crate::cgroups::CgroupError;

/// Errors raised by the state store and the other shared pieces.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation failed on `path`.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A metadata file exists but does not hold what it should.
    #[error("corrupt metadata in {}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// Result alias for the shared layer.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds a closure that wraps an `io::Error` with the operation and path.
pub fn io_context<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
