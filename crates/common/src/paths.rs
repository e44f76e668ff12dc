//! Where mcm keeps things under its state root.
//!
//! ```text
//! <root>/images/<name>/rootfs            image root filesystems (read-only lower layers)
//! <root>/names/<name> -> <id>            name claims (symlinks, created atomically)
//! <root>/containers/<id>/config.json     what the user asked for (written once)
//! <root>/containers/<id>/state.json      the init's pid, start time, boot id, start time
//! <root>/containers/<id>/exit            exit code and finish time, written by the init
//! <root>/containers/<id>/{upper,work}   the OverlayFS layers (mounted over <id>/ itself)
//! <root>/containers/<id>/container.log   stdout and stderr of a detached container
//! <root>/containers/<id>/executor.log    the executor's own failures after it detached
//! ```

use std::path::{Path, PathBuf};

/// Default state root.
pub const DEFAULT_ROOT: &str = "/var/lib/mcm";
/// Default cgroup parent under each hierarchy.
pub const DEFAULT_CGROUP_PARENT: &str = "mcm";

/// The state root and the directories below it.
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

impl StateRoot {
    /// Wraps a state root path (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Directory holding one subdirectory per container.
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Directory of name links: `names/<name>` is a symlink to the id.
    pub fn names_dir(&self) -> PathBuf {
        self.root.join("names")
    }

    /// The link claiming `name`.
    pub fn name_link(&self, name: &str) -> PathBuf {
        self.names_dir().join(name)
    }

    /// The directory of one container.
    pub fn container(&self, id: &str) -> ContainerDir {
        ContainerDir {
            dir: self.containers_dir().join(id),
        }
    }
}

/// The files of one container's state directory.
#[derive(Debug, Clone)]
pub struct ContainerDir {
    dir: PathBuf,
}

impl ContainerDir {
    /// Wraps an existing container directory path.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The user's configuration, written once at creation.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The runtime state of the current (or last) run.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Exit record of the last run.
    pub fn exit(&self) -> PathBuf {
        self.dir.join("exit")
    }

    /// OverlayFS upper (writable) layer.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// OverlayFS work directory.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }

    /// Mount point of the merged root: the container's directory itself,
    /// covered by the overlay inside the container's mount namespace only
    /// (the layers are open by then), which spares a directory per container.
    pub fn merged(&self) -> &Path {
        &self.dir
    }

    /// stdout and stderr of a detached container.
    pub fn log(&self) -> PathBuf {
        self.dir.join("container.log")
    }

    /// The executor's own messages after it detached.
    pub fn executor_log(&self) -> PathBuf {
        self.dir.join("executor.log")
    }

    /// The container's Docker-format seccomp profile, if it has its own.
    pub fn seccomp_profile(&self) -> PathBuf {
        self.dir.join("seccomp.json")
    }
}
