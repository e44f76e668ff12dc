//! mcm: a daemonless, Docker-like container manager for Linux.
//!
//! This library is what the `mcm` command is a thin layer over; other Rust
//! programs can manage containers with it directly through [`Runtime`].
//! Containers are started by the `mcm-executor` helper and entered by
//! `mcm-nsenter`, both found next to the running executable.

pub mod error;
pub mod exec;
pub mod format;
pub mod helpers;
pub mod image;
mod launch;
pub mod names;
mod pidfd;
pub mod resources;
pub mod runtime;
pub mod spec;
pub mod userns;

pub use error::{Error, Result};
pub use launch::Attached;
pub use mcm_common::cgroups::Limits;
pub use mcm_common::container::{ContainerConfig, NetworkMode, Status};
pub use mcm_common::terminal::window_size;
pub use runtime::{Container, Listing, Runtime};
pub use spec::RunSpec;
