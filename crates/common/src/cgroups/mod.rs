//! cgroup management behind one small interface, for cgroup v1 (including
//! hybrid hosts) and cgroup v2.
//!
//! The mode is detected once per process from the file-system magic of
//! `/sys/fs/cgroup` ([`host_mode`]); a hybrid host (v1 hierarchies plus an
//! empty `unified` cgroup2) counts as v1. [`Cgroup`] is an enum over the two
//! back ends and dispatches by `match`. Every back end takes its mount root
//! as a parameter, so the unit tests run against temp-dir fixtures.

pub mod size;
pub mod v1;
pub mod v2;

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

pub use size::{
    available_cpus, parse_cpu_shares, parse_cpus, parse_memory_limit, parse_memory_size,
    parse_memory_swap, parse_pids_limit, MIN_MEMORY,
};

/// Where the cgroup file systems are mounted on a host.
pub const HOST_ROOT: &str = "/sys/fs/cgroup";

/// The CFS period used when a quota is given without one, in microseconds.
pub const DEFAULT_CPU_PERIOD: u64 = 100_000;

/// How long a freeze may take before it is reported as stuck.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `kill_all` waits for the cgroup to become empty.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `destroy` retries an `rmdir` that fails with EBUSY (the kernel
/// releases a cgroup shortly after its last process is reaped).
const RMDIR_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two polls of a cgroup file.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Errors of the cgroup layer; each names the file or value involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup parent or name that could escape the hierarchy or is empty.
    #[error("invalid cgroup {what} {value:?}: {reason}")]
    InvalidName {
        /// `"parent"` or `"name"`.
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    /// `statfs` on the cgroup mount root failed.
    #[error("cannot detect the cgroup mode of {}: {source}", path.display())]
    Detect {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// No v1 hierarchy is mounted under the root.
    #[error("no cgroup v1 hierarchy found under {}", root.display())]
    NoHierarchy { root: PathBuf },
    /// A limit needs a v1 controller whose hierarchy is not mounted.
    #[error("the {controller} cgroup controller is not available (no {})", path.display())]
    ControllerMissing {
        controller: &'static str,
        path: PathBuf,
    },
    /// The requested limits contradict each other.
    #[error("invalid limits: {0}")]
    InvalidLimits(String),
    /// The cgroup does not exist (for operations that need it).
    #[error("cgroup {} does not exist", path.display())]
    NotFound { path: PathBuf },
    /// Reading a cgroup file failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing a value to a cgroup file failed.
    #[error("cannot write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A cgroup file holds something that cannot be parsed.
    #[error("unexpected content in {}: {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
    /// Creating a cgroup directory failed.
    #[error("cannot create cgroup {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Removing a cgroup directory failed.
    #[error("cannot remove cgroup {}: {source}", path.display())]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file did not reach the expected state in time (freezer).
    #[error("timed out after {waited:?} waiting for {} to read {expected:?} (last read {last:?})", path.display())]
    Timeout {
        path: PathBuf,
        expected: &'static str,
        last: String,
        waited: Duration,
    },
    /// Sending SIGKILL to a member process failed.
    #[error("cannot send SIGKILL to pid {pid}: {source}")]
    Kill {
        pid: i32,
        #[source]
        source: Errno,
    },
    /// Processes survived `kill_all`.
    #[error("processes {pids:?} still in {} after {waited:?}", path.display())]
    KillTimeout {
        path: PathBuf,
        pids: Vec<i32>,
        waited: Duration,
    },
}

type Result<T> = std::result::Result<T, CgroupError>;

/// Which cgroup version the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// One hierarchy per controller (also hybrid hosts).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Detects the host's cgroup mode from the `statfs` magic of
/// `/sys/fs/cgroup`: cgroup2 means v2, anything else (tmpfs holding v1
/// hierarchies, hybrid included) means v1. The answer is cached for the
/// life of the process; a failure is not cached, so a later call retries.
pub fn host_mode() -> Result<Mode> {
    static MODE: OnceLock<Mode> = OnceLock::new();
    if let Some(mode) = MODE.get() {
        return Ok(*mode);
    }
    let mode = detect_mode(Path::new(HOST_ROOT))?;
    Ok(*MODE.get_or_init(|| mode))
}

/// Reads the mode of the cgroup mount at `root`.
fn detect_mode(root: &Path) -> Result<Mode> {
    let stat = statfs(root).map_err(|source| CgroupError::Detect {
        path: root.to_path_buf(),
        source,
    })?;
    if stat.filesystem_type() == CGROUP2_SUPER_MAGIC {
        Ok(Mode::V2)
    } else {
        Ok(Mode::V1)
    }
}

/// Resource limits of a container, in Docker's units. Only the `Some`
/// fields are written by [`Cgroup::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Memory plus swap limit in bytes; -1 means unlimited swap. When
    /// `None` but `memory` is set, no swap is allowed beyond `memory`.
    pub memory_swap: Option<i64>,
    /// CFS quota in microseconds per period; -1 means unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds ([`DEFAULT_CPU_PERIOD`] when a quota is
    /// set without it).
    pub cpu_period: Option<u64>,
    /// Relative CPU weight in v1 shares (2..=262144); converted to
    /// `cpu.weight` on v2.
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on, in cpuset list syntax (`0-2,4`).
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes; -1 (or `None`) means unlimited.
    pub pids: Option<i64>,
}

impl Limits {
    /// Checks the limits that contradict each other whatever the host
    /// (memory+swap below memory, or without a memory limit).
    pub fn validate(&self) -> Result<()> {
        if let (Some(memory), Some(swap)) = (self.memory, self.memory_swap) {
            if swap >= 0 && (swap as u64) < memory {
                return Err(CgroupError::InvalidLimits(format!(
                    "memory+swap limit {swap} must be -1 or at least the memory limit {memory}"
                )));
            }
        }
        match self.memory_swap {
            Some(swap) if swap < -1 => Err(CgroupError::InvalidLimits(format!(
                "memory+swap limit {swap} must be -1 or positive"
            ))),
            Some(swap) if swap != -1 && self.memory.is_none() => Err(CgroupError::InvalidLimits(
                format!("a memory+swap limit ({swap}) needs a memory limit"),
            )),
            _ => Ok(()),
        }
    }

    /// The CFS period to write: the given one, or the default when only a
    /// quota is set.
    fn effective_cpu_period(&self) -> Option<u64> {
        self.cpu_period
            .or(self.cpu_quota.map(|_| DEFAULT_CPU_PERIOD))
    }
}

/// Resource usage of a cgroup, as `mcm stats` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Memory in use minus the inactive page cache (Docker's figure).
    pub memory_usage: u64,
    /// Memory limit, `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Highest memory usage seen, when the kernel reports it.
    pub memory_peak: Option<u64>,
    /// CPU time used, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Number of processes (v1: tasks counted by the pids controller).
    pub pids_current: u64,
    /// Process limit, `None` when unlimited.
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices.
    pub blkio_read_bytes: u64,
    /// Bytes written to block devices.
    pub blkio_write_bytes: u64,
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_events: u64,
}

/// A container's cgroup, `<parent>/<name>` in every hierarchy (v1) or in
/// the unified hierarchy (v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// cgroup v1 (and hybrid hosts).
    V1(v1::Cgroup),
    /// cgroup v2.
    V2(v2::Cgroup),
}

impl Cgroup {
    /// The container cgroup `<parent>/<name>` on this host (mount root
    /// `/sys/fs/cgroup`), in the mode given by [`host_mode`].
    pub fn for_host(parent: &str, name: &str) -> Result<Self> {
        Self::with_root(Path::new(HOST_ROOT), host_mode()?, parent, name)
    }

    /// The cgroup `<parent>/<name>` under an explicit mount root and mode.
    /// For v1 the hierarchies are the subdirectories of `root` named after
    /// the controllers (`cpu`, `memory`, ..., possibly symlinks to a
    /// co-mounted `cpu,cpuacct`); for v2 `root` is the cgroup2 mount.
    /// `parent` may contain slashes; neither may hold `..`, start with `/`
    /// or have empty components.
    pub fn with_root(root: &Path, mode: Mode, parent: &str, name: &str) -> Result<Self> {
        let parent = validate_parent(parent)?;
        validate_name(name)?;
        Ok(match mode {
            Mode::V1 => Cgroup::V1(v1::Cgroup::new(root, &parent, name)),
            Mode::V2 => Cgroup::V2(v2::Cgroup::new(root, &parent, name)),
        })
    }

    /// The cgroup version this cgroup lives in.
    pub fn mode(&self) -> Mode {
        match self {
            Cgroup::V1(_) => Mode::V1,
            Cgroup::V2(_) => Mode::V2,
        }
    }

    /// Creates the cgroup (and its parents) in every hierarchy. v1: new
    /// cpuset levels get the parent's `cpuset.cpus`/`cpuset.mems`; v2: the
    /// needed controllers are enabled in every ancestor's
    /// `cgroup.subtree_control`. Creating an existing cgroup is fine: one
    /// left by an earlier run and holding no process is replaced by a fresh
    /// one (see [`Cgroup::discard_stale`]).
    pub fn create(&self) -> Result<()> {
        self.discard_stale();
        match self {
            Cgroup::V1(cg) => cg.create(),
            Cgroup::V2(cg) => cg.create(),
        }
    }

    /// Removes the cgroup when it exists and holds no process. A cgroup left
    /// by a container's earlier run keeps that run's counters (OOM kills,
    /// peak memory, CPU time) and any limit since dropped; a fresh one per
    /// run, as runc makes, starts them from zero, so an OOM kill shown by
    /// `inspect` is always the last run's. Best effort: a cgroup that cannot
    /// be removed is reused as it is.
    fn discard_stale(&self) {
        if self.exists() && self.pids().is_ok_and(|pids| pids.is_empty()) {
            let _ = self.destroy();
        }
    }

    /// Writes the `Some` fields of `limits`.
    pub fn apply(&self, limits: &Limits) -> Result<()> {
        limits.validate()?;
        match self {
            Cgroup::V1(cg) => cg.apply(limits),
            Cgroup::V2(cg) => cg.apply(limits),
        }
    }

    /// Moves process `pid` into the cgroup (every v1 hierarchy).
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for procs in self.procs_files() {
            write_value(&procs, &pid.to_string())?;
        }
        Ok(())
    }

    /// Restricts the devices the container may open to `rules` (devices
    /// cgroup lines such as `c 1:3 rwm`). v1 only: v2 has no devices file
    /// (it takes a BPF program); there mcm relies on its `nodev` mounts.
    pub fn allow_only_devices(&self, rules: &[String]) -> Result<()> {
        match self {
            Cgroup::V1(cg) => cg.allow_only_devices(rules),
            Cgroup::V2(_) => Ok(()),
        }
    }

    /// The cgroup directory on a v2 host, for clone3(CLONE_INTO_CGROUP),
    /// which starts a process inside it without a migration.
    pub fn unified_dir(&self) -> Option<&Path> {
        match self {
            Cgroup::V1(_) => None,
            Cgroup::V2(cg) => Some(cg.dir()),
        }
    }

    /// The `cgroup.procs` files a new process must be written to, to be
    /// fully inside the cgroup.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match self {
            Cgroup::V1(cg) => cg.procs_files(),
            Cgroup::V2(cg) => vec![cg.procs_file()],
        }
    }

    /// The processes in the cgroup; empty if the cgroup does not exist.
    pub fn pids(&self) -> Result<Vec<i32>> {
        match self {
            Cgroup::V1(cg) => cg.pids(),
            Cgroup::V2(cg) => cg.pids(),
        }
    }

    /// Freezes every process of the cgroup and waits until the kernel
    /// reports the cgroup frozen (at most 5 s).
    pub fn freeze(&self) -> Result<()> {
        match self {
            Cgroup::V1(cg) => cg.freeze(),
            Cgroup::V2(cg) => cg.freeze(),
        }
    }

    /// Lets the processes of a frozen cgroup run again.
    pub fn thaw(&self) -> Result<()> {
        match self {
            Cgroup::V1(cg) => cg.thaw(),
            Cgroup::V2(cg) => cg.thaw(),
        }
    }

    /// Whether the cgroup is frozen; false when it does not exist.
    pub fn is_frozen(&self) -> bool {
        match self {
            Cgroup::V1(cg) => cg.is_frozen(),
            Cgroup::V2(cg) => cg.is_frozen(),
        }
    }

    /// SIGKILLs every process in the cgroup (also when it is frozen) and
    /// waits until none is left (at most 5 s). v2 uses `cgroup.kill` when
    /// the kernel has it; otherwise freeze, kill each process, thaw.
    pub fn kill_all(&self) -> Result<()> {
        match self {
            Cgroup::V1(cg) => cg.kill_all(),
            Cgroup::V2(cg) => cg.kill_all(),
        }
    }

    /// Removes the cgroup directory in every hierarchy with `rmdir`,
    /// retrying on EBUSY for up to a second. An absent cgroup is fine.
    pub fn destroy(&self) -> Result<()> {
        match self {
            Cgroup::V1(cg) => cg.destroy(),
            Cgroup::V2(cg) => cg.destroy(),
        }
    }

    /// Whether the cgroup directory exists (in any v1 hierarchy).
    pub fn exists(&self) -> bool {
        match self {
            Cgroup::V1(cg) => cg.exists(),
            Cgroup::V2(cg) => cg.exists(),
        }
    }

    /// Current resource usage. Files the kernel does not provide (no swap
    /// accounting, no `memory.peak`...) leave their fields at zero/`None`.
    pub fn stats(&self) -> Result<Stats> {
        match self {
            Cgroup::V1(cg) => cg.stats(),
            Cgroup::V2(cg) => cg.stats(),
        }
    }

    /// The limits the cgroup files hold now, in [`Limits`] terms: kernel
    /// defaults (unlimited, 1024 shares / weight 100, the parent's cpuset)
    /// read back as `None`. On v2 `cpu_shares` is the smallest share count
    /// that maps to the current `cpu.weight`.
    pub fn limits_in_effect(&self) -> Result<Limits> {
        match self {
            Cgroup::V1(cg) => cg.limits_in_effect(),
            Cgroup::V2(cg) => cg.limits_in_effect(),
        }
    }
}

/// Removes `<parent>` (and its own parents, deepest first) in every
/// hierarchy under `root` when empty. Non-empty, busy or absent
/// directories are left alone without error.
pub fn remove_parent_if_empty(root: &Path, mode: Mode, parent: &str) -> Result<()> {
    let parent = validate_parent(parent)?;
    let mounts = match mode {
        Mode::V1 => v1::hierarchy_mounts(root),
        Mode::V2 => vec![root.to_path_buf()],
    };
    for mount in mounts {
        remove_empty_levels(&mount, &parent)?;
    }
    Ok(())
}

/// [`remove_parent_if_empty`] on this host.
pub fn remove_host_parent_if_empty(parent: &str) -> Result<()> {
    remove_parent_if_empty(Path::new(HOST_ROOT), host_mode()?, parent)
}

/// Names of the cgroups directly under `parent`, in any hierarchy of this
/// host (for finding cgroups whose container is gone).
pub fn host_children(parent: &str) -> Result<Vec<String>> {
    let parent = validate_parent(parent)?;
    let root = Path::new(HOST_ROOT);
    let mounts = match host_mode()? {
        Mode::V1 => v1::hierarchy_mounts(root),
        Mode::V2 => vec![root.to_path_buf()],
    };
    let mut names: Vec<String> = mounts
        .iter()
        .filter_map(|mount| fs::read_dir(mount.join(&parent)).ok())
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// rmdirs `mount/relative`, then each of its parents up to `mount`,
/// stopping at the first one that is not empty.
fn remove_empty_levels(mount: &Path, relative: &Path) -> Result<()> {
    let mut level = Some(relative);
    while let Some(current) = level.filter(|p| !p.as_os_str().is_empty()) {
        let path = mount.join(current);
        match fs::remove_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // A cgroup with children answers EBUSY; a plain directory
            // (fixtures) ENOTEMPTY. Either way it is still in use.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {
                return Ok(())
            }
            Err(source) => return Err(CgroupError::RemoveDir { path, source }),
        }
        level = current.parent();
    }
    Ok(())
}

/// Checks a cgroup parent path and returns it as a relative path.
fn validate_parent(parent: &str) -> Result<PathBuf> {
    let invalid = |reason| CgroupError::InvalidName {
        what: "parent",
        value: parent.to_string(),
        reason,
    };
    check_common(parent).map_err(invalid)?;
    if parent.split('/').any(|part| part.is_empty() || part == ".") {
        return Err(invalid("must not have empty or '.' path components"));
    }
    Ok(PathBuf::from(parent))
}

/// Checks a cgroup leaf name (one path component).
fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason| CgroupError::InvalidName {
        what: "name",
        value: name.to_string(),
        reason,
    };
    check_common(name).map_err(invalid)?;
    if name.contains('/') {
        return Err(invalid("must not contain '/'"));
    }
    if name == "." {
        return Err(invalid("must be a plain name"));
    }
    Ok(())
}

/// The checks shared by parents and names.
fn check_common(value: &str) -> std::result::Result<(), &'static str> {
    if value.is_empty() {
        Err("must not be empty")
    } else if value.starts_with('/') {
        Err("must not start with '/'")
    } else if value.contains("..") {
        Err("must not contain '..'")
    } else if value.contains('\0') {
        Err("must not contain NUL")
    } else {
        Ok(())
    }
}

/// Writes `value` to an existing cgroup file. The file is never created:
/// a missing file means a missing controller and must fail loudly.
fn write_value(path: &Path, value: &str) -> Result<()> {
    let error = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    // Truncation is a no-op on cgroupfs but keeps regular-file fixtures
    // from holding leftovers of a longer previous value.
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(error)?;
    // cgroup files take a value in one write(2).
    file.write_all(value.as_bytes()).map_err(error)
}

/// Reads a cgroup file.
fn read_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a cgroup file, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(content) => Ok(Some(content)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses a whole file as one integer.
fn parse_number<T: std::str::FromStr>(path: &Path, content: &str) -> Result<T> {
    content.trim().parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: content.to_string(),
    })
}

/// Reads a file holding one integer, `None` when it does not exist.
fn read_number<T: std::str::FromStr>(path: &Path) -> Result<Option<T>> {
    read_optional(path)?
        .map(|content| parse_number(path, &content))
        .transpose()
}

/// Reads a file holding one integer or `max`; `None` for `max` or when the
/// file does not exist.
fn read_number_or_max(path: &Path) -> Result<Option<u64>> {
    match read_optional(path)? {
        Some(content) if content.trim() == "max" => Ok(None),
        Some(content) => parse_number(path, &content).map(Some),
        None => Ok(None),
    }
}

/// Looks up `key` in a flat-keyed file (`memory.stat`, `cpu.stat`,
/// `memory.events`...: one `key value` pair per line).
fn keyed_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let (k, v) = line.split_once(char::is_whitespace)?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads the pids listed in a `cgroup.procs` file; empty when the cgroup
/// is gone.
fn read_pids(procs: &Path) -> Result<Vec<i32>> {
    let Some(content) = read_optional(procs)? else {
        return Ok(Vec::new());
    };
    content
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_number(procs, line))
        .collect()
}

/// Calls `step` every [`POLL_INTERVAL`] until it returns true or `timeout`
/// has passed; returns whether it succeeded.
fn poll(timeout: Duration, mut step: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if step()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// SIGKILLs each of `pids`; one that already exited is not an error.
fn kill_pids(pids: &[i32]) -> Result<()> {
    for &pid in pids {
        match kill(Pid::from_raw(pid), Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(source) => return Err(CgroupError::Kill { pid, source }),
        }
    }
    Ok(())
}

/// The freeze, kill, thaw loop used where the kernel has no
/// `cgroup.kill`: freezing first keeps forking processes from escaping the
/// kill, and killed processes only die once thawed. Freezing is best
/// effort (no freezer, or stuck in FREEZING): the kill goes ahead anyway.
fn kill_until_empty(
    procs: &Path,
    list: impl Fn() -> Result<Vec<i32>>,
    freeze: impl Fn() -> Result<()>,
    thaw: impl Fn() -> Result<()>,
) -> Result<()> {
    let emptied = poll(KILL_TIMEOUT, || {
        let pids = list()?;
        if pids.is_empty() {
            return Ok(true);
        }
        let frozen = freeze().is_ok();
        let killed = kill_pids(&pids);
        if frozen {
            thaw()?;
        }
        killed.map(|()| false)
    })?;
    if emptied {
        Ok(())
    } else {
        Err(CgroupError::KillTimeout {
            path: procs.to_path_buf(),
            pids: list()?,
            waited: KILL_TIMEOUT,
        })
    }
}

/// Waits until `list` reports no process, after a `cgroup.kill`.
fn wait_until_empty(procs: &Path, list: impl Fn() -> Result<Vec<i32>>) -> Result<()> {
    if poll(KILL_TIMEOUT, || Ok(list()?.is_empty()))? {
        Ok(())
    } else {
        Err(CgroupError::KillTimeout {
            path: procs.to_path_buf(),
            pids: list()?,
            waited: KILL_TIMEOUT,
        })
    }
}

/// `rmdir`s a cgroup directory, retrying while the kernel still holds it
/// busy (processes being reaped). An absent directory is fine.
fn rmdir_retrying(path: &Path) -> Result<()> {
    let mut last_busy = None;
    let removed = poll(RMDIR_TIMEOUT, || match fs::remove_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            last_busy = Some(e);
            Ok(false)
        }
        Err(source) => Err(CgroupError::RemoveDir {
            path: path.to_path_buf(),
            source,
        }),
    })?;
    match (removed, last_busy) {
        (false, Some(source)) => Err(CgroupError::RemoveDir {
            path: path.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// Creates `mount/relative` one level at a time, calling `on_level` for
/// each level below `mount` (new or not), parents first.
fn create_levels(
    mount: &Path,
    relative: &Path,
    mut on_level: impl FnMut(&Path) -> Result<()>,
) -> Result<()> {
    let mut path = mount.to_path_buf();
    for component in relative.components() {
        path.push(component);
        make_dir(&path)?;
        on_level(&path)?;
    }
    Ok(())
}

/// Creates one cgroup directory; an existing one is fine.
fn make_dir(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::CreateDir {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The `pids.max` value for a limit: `max` for -1 (or any non-positive
/// value, which Docker also reads as unlimited).
fn pids_max_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

/// Memory in use without the inactive page cache, as Docker computes it
/// (usage itself when the cache figure is not below it).
fn usage_without_cache(usage: u64, inactive_file: u64) -> u64 {
    if inactive_file < usage {
        usage - inactive_file
    } else {
        usage
    }
}

/// The v2 `cpu.weight` (1..=10000) for v1 `cpu.shares` (2..=262144), with
/// the linear mapping runc and crun use.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The smallest v1 share count that [`shares_to_weight`] maps to `weight`.
pub fn weight_to_shares(weight: u64) -> u64 {
    let weight = weight.clamp(1, 10_000);
    2 + ((weight - 1) * 262_142).div_ceil(9999)
}

/// Helpers that build fake cgroup trees in temp dirs for the unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::fs;
    use std::path::Path;

    /// Creates `dir` (and parents) holding `files` with the given contents,
    /// as the kernel would populate a new cgroup directory.
    pub(crate) fn populate(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).unwrap();
        for (name, content) in files {
            fs::write(dir.join(name), content).unwrap();
        }
    }

    /// Reads a fixture file.
    pub(crate) fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::populate;
    use super::*;

    #[test]
    fn invalid_parents_and_names_are_refused() {
        let root = Path::new("/nonexistent");
        for parent in [
            "", "../x", "a/../b", "..", "/abs", "a//b", "a/", "a/./b", ".", "a\0b",
        ] {
            let error = Cgroup::with_root(root, Mode::V1, parent, "c1").expect_err(parent);
            assert!(
                matches!(error, CgroupError::InvalidName { what: "parent", .. }),
                "{parent:?}: {error}"
            );
        }
        for name in ["", "..", ".", "a/b", "/abs", "x..y"] {
            let error = Cgroup::with_root(root, Mode::V2, "mcm", name).expect_err(name);
            assert!(
                matches!(error, CgroupError::InvalidName { what: "name", .. }),
                "{name:?}: {error}"
            );
        }
        assert!(remove_parent_if_empty(root, Mode::V1, "../etc").is_err());
    }

    #[test]
    fn nested_parents_are_accepted() {
        let root = Path::new("/sys/fs/cgroup");
        let cgroup = Cgroup::with_root(root, Mode::V2, "mcm-test-abc/sub", "c1").unwrap();
        assert_eq!(
            cgroup.procs_files(),
            vec![PathBuf::from(
                "/sys/fs/cgroup/mcm-test-abc/sub/c1/cgroup.procs"
            )]
        );
        assert_eq!(cgroup.mode(), Mode::V2);
    }

    #[test]
    fn write_errors_name_value_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.limit_in_bytes");
        let error = write_value(&path, "52428800").unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "cannot write \"52428800\" to {}: ",
                path.display()
            )),
            "{message}"
        );
        // Cgroup files are never created by a write.
        assert!(!path.exists());
    }

    #[test]
    fn shares_map_to_weights_and_back() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(0), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
        for weight in [1, 20, 39, 100, 5000, 10_000] {
            let shares = weight_to_shares(weight);
            assert_eq!(shares_to_weight(shares), weight);
            assert!(shares == 2 || shares_to_weight(shares - 1) < weight);
        }
    }

    #[test]
    fn limits_that_contradict_are_refused() {
        let below = Limits {
            memory: Some(100),
            memory_swap: Some(50),
            ..Limits::default()
        };
        assert!(below.validate().is_err());
        let swap_alone = Limits {
            memory_swap: Some(50),
            ..Limits::default()
        };
        assert!(swap_alone.validate().is_err());
        let weird = Limits {
            memory: Some(100),
            memory_swap: Some(-5),
            ..Limits::default()
        };
        assert!(weird.validate().is_err());
        let unlimited_swap = Limits {
            memory: Some(100),
            memory_swap: Some(-1),
            ..Limits::default()
        };
        assert!(unlimited_swap.validate().is_ok());
    }

    #[test]
    fn limits_round_trip_through_json() {
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0-1".into()),
            pids: Some(100),
        };
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), limits);
    }

    #[test]
    fn keyed_files_and_pid_lists_parse() {
        let content = "cache 10\ntotal_inactive_file 42\ninactive_file 7\n";
        assert_eq!(keyed_value(content, "inactive_file"), Some(7));
        assert_eq!(keyed_value(content, "total_inactive_file"), Some(42));
        assert_eq!(keyed_value(content, "missing"), None);

        let dir = tempfile::tempdir().unwrap();
        let procs = dir.path().join("cgroup.procs");
        assert_eq!(read_pids(&procs).unwrap(), Vec::<i32>::new());
        fs::write(&procs, "12\n345\n\n").unwrap();
        assert_eq!(read_pids(&procs).unwrap(), vec![12, 345]);
        fs::write(&procs, "12\nabc\n").unwrap();
        assert!(matches!(read_pids(&procs), Err(CgroupError::Parse { .. })));
    }

    #[test]
    fn usage_without_cache_as_docker() {
        assert_eq!(usage_without_cache(1000, 300), 700);
        assert_eq!(usage_without_cache(1000, 1000), 1000);
        assert_eq!(usage_without_cache(1000, 5000), 1000);
    }

    #[test]
    fn pids_max_values() {
        assert_eq!(pids_max_value(100), "100");
        assert_eq!(pids_max_value(-1), "max");
        assert_eq!(pids_max_value(0), "max");
    }

    #[test]
    fn parent_removed_only_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for controller in ["memory", "pids"] {
            populate(&root.join(controller).join("outer/inner/c1"), &[]);
        }
        remove_parent_if_empty(root, Mode::V1, "outer/inner").unwrap();
        assert!(root.join("memory/outer/inner/c1").is_dir());

        let cgroup = Cgroup::with_root(root, Mode::V1, "outer/inner", "c1").unwrap();
        cgroup.destroy().unwrap();
        remove_parent_if_empty(root, Mode::V1, "outer/inner").unwrap();
        assert!(!root.join("memory/outer").exists());
        assert!(!root.join("pids/outer").exists());
        assert!(root.join("memory").is_dir());
        // Already gone: still fine.
        remove_parent_if_empty(root, Mode::V1, "outer/inner").unwrap();

        populate(&root.join("unified/mcm/c1"), &[]);
        remove_parent_if_empty(&root.join("unified"), Mode::V2, "mcm").unwrap();
        assert!(root.join("unified/mcm/c1").is_dir());
    }

    #[test]
    fn destroy_of_absent_cgroup_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [Mode::V1, Mode::V2] {
            let cgroup = Cgroup::with_root(dir.path(), mode, "mcm", "gone").unwrap();
            assert!(!cgroup.exists());
            cgroup.destroy().unwrap();
            assert!(!cgroup.is_frozen());
            assert_eq!(cgroup.pids().unwrap(), Vec::<i32>::new());
            cgroup.kill_all().unwrap();
            assert!(matches!(cgroup.stats(), Err(CgroupError::NotFound { .. })));
        }
    }

    /// The whole life of a container cgroup on this host's real v1
    /// hierarchies, under a unique parent that is removed even on failure.
    #[test]
    fn real_v1_host_lifecycle() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("real_v1_host_lifecycle: skipped, creating cgroups needs root");
            return;
        }
        match host_mode() {
            Ok(Mode::V1) => {}
            other => {
                eprintln!("real_v1_host_lifecycle: skipped, host cgroup mode is {other:?}");
                return;
            }
        }
        let mut host = HostCgroup::new();
        let cgroup = host.cgroup.clone();

        cgroup.create().unwrap();
        assert!(cgroup.exists());
        let cpuset = Path::new(HOST_ROOT)
            .join("cpuset")
            .join(&host.parent)
            .join("c1");
        assert!(!read_string(&cpuset.join("cpuset.cpus"))
            .unwrap()
            .trim()
            .is_empty());
        assert!(!read_string(&cpuset.join("cpuset.mems"))
            .unwrap()
            .trim()
            .is_empty());

        let memsw = Path::new(HOST_ROOT)
            .join("memory/memory.memsw.limit_in_bytes")
            .exists();
        // Lower, raise and lower again: memsw bounds memory both ways.
        for memory in [64u64 << 20, 128 << 20, 32 << 20] {
            let (quota, period) = parse_cpus("0.5", available_cpus()).unwrap();
            let limits = Limits {
                memory: Some(memory),
                cpu_quota: Some(quota),
                cpu_period: Some(period),
                pids: Some(10),
                ..Limits::default()
            };
            cgroup.apply(&limits).unwrap();
            let expected = Limits {
                memory_swap: memsw.then_some(memory as i64),
                ..limits
            };
            assert_eq!(cgroup.limits_in_effect().unwrap(), expected);
        }

        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        host.child = Some(child);
        cgroup.add_pid(pid).unwrap();
        assert_eq!(cgroup.pids().unwrap(), vec![pid]);
        let membership = read_string(Path::new(&format!("/proc/{pid}/cgroup"))).unwrap();
        let leaf = format!("/{}/c1", host.parent);
        for controller in ["memory", "freezer", "pids", "cpu"] {
            assert!(
                membership
                    .lines()
                    .any(|l| l.contains(controller) && l.ends_with(&leaf)),
                "{controller} not joined: {membership}"
            );
        }

        let stats = cgroup.stats().unwrap();
        assert_eq!(stats.pids_current, 1);
        assert_eq!(stats.pids_limit, Some(10));
        assert_eq!(stats.memory_limit, Some(32 << 20));
        // Creating a cgroup that holds a process leaves it as it is.
        cgroup.create().unwrap();
        assert_eq!(cgroup.pids().unwrap(), vec![pid]);
        assert_eq!(cgroup.stats().unwrap().pids_limit, Some(10));

        cgroup.freeze().unwrap();
        assert!(cgroup.is_frozen());
        cgroup.thaw().unwrap();
        assert!(!cgroup.is_frozen());

        // Killing must work on a paused container too.
        cgroup.freeze().unwrap();
        cgroup.kill_all().unwrap();
        assert_eq!(cgroup.pids().unwrap(), Vec::<i32>::new());
        let status = host.child.take().unwrap().wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );

        // An empty cgroup left by an earlier run is replaced by a fresh
        // one: no limit and no counter carries over.
        cgroup.create().unwrap();
        assert_eq!(cgroup.limits_in_effect().unwrap(), Limits::default());
        assert_eq!(cgroup.stats().unwrap().cpu_usage_ns, 0);

        cgroup.destroy().unwrap();
        assert!(!cgroup.exists());
        remove_host_parent_if_empty(&host.parent).unwrap();
        for controller in ["memory", "cpu", "cpuset", "pids", "freezer"] {
            assert!(!Path::new(HOST_ROOT)
                .join(controller)
                .join(&host.parent)
                .exists());
        }
    }

    /// A cgroup under a unique parent on the host, torn down on drop.
    struct HostCgroup {
        parent: String,
        cgroup: Cgroup,
        child: Option<std::process::Child>,
    }

    impl HostCgroup {
        fn new() -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let parent = format!("mcm-unit-{}-{nanos:x}", std::process::id());
            let cgroup = Cgroup::for_host(&parent, "c1").unwrap();
            HostCgroup {
                parent,
                cgroup,
                child: None,
            }
        }
    }

    impl Drop for HostCgroup {
        fn drop(&mut self) {
            // Thaw first: a frozen child would never die and wait() would
            // hang.
            self.cgroup.thaw().ok();
            if let Some(child) = &mut self.child {
                child.kill().ok();
                child.wait().ok();
            }
            self.cgroup.kill_all().ok();
            self.cgroup.destroy().ok();
            remove_host_parent_if_empty(&self.parent).ok();
        }
    }
}
