//! Integration tests: every test runs the real `mcm` binary as root against
//! the real kernel, in its own state root and cgroup parent, and checks
//! afterwards that nothing leaked.

mod env;
mod exec;
mod images;
mod lifecycle;
mod namespaces;
mod process;
mod reliability;
mod resources;
mod security;
