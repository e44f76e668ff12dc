//! Shared pieces of mcm: container metadata and status, the on-disk state
//! store, cgroup v1/v2 management, process identity checks and paths.
//!
//! Everything here is used by more than one of the `mcm`, `mcm-executor`
//! and `mcm-nsenter` binaries.

pub mod cgroups;
pub mod container;
pub mod error;
pub mod exec;
pub mod paths;
pub mod proc;
pub mod security;
pub mod store;
pub mod sync;
pub mod terminal;

pub use error::{Error, Result};
