//! The helper binaries mcm runs live next to its own executable, so that
//! `target/release/` and an install into one bin directory both work.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Name of the executor binary.
pub const EXECUTOR: &str = "mcm-executor";
/// Name of the setns helper binary.
pub const NSENTER: &str = "mcm-nsenter";

/// Path of helper `name` beside the current executable (or in
/// `MCM_HELPER_DIR` when set), checked to exist.
pub fn locate(name: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("MCM_HELPER_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_exe()
            .map_err(Error::io("find", "/proc/self/exe"))?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::HelperMissing(format!(
            "helper {name} not found at {}: install it next to mcm (see README: Install)",
            path.display()
        )))
    }
}
