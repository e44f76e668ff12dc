//! cgroup v1: one hierarchy per controller, each mounted under the root as
//! a directory named after it (`memory`, `cpu`...). Co-mounted controllers
//! (`cpu,cpuacct` with `cpu` and `cpuacct` symlinks) share one real
//! directory, which is handled once.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{
    create_levels, keyed_value, kill_until_empty, poll, read_number, read_number_or_max,
    read_optional, read_pids, read_string, rmdir_retrying, write_value, CgroupError, Limits,
    Result, Stats, FREEZE_TIMEOUT,
};

/// The controllers mcm places containers in.
const CONTROLLERS: [&str; 8] = [
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
];

/// The kernel's default `cpu.shares`.
const DEFAULT_SHARES: u64 = 1024;

/// A container cgroup `<parent>/<name>` in every v1 hierarchy under a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    root: PathBuf,
    relative: PathBuf,
}

impl Cgroup {
    /// `parent` and `name` must have been validated by the caller.
    pub(super) fn new(root: &Path, parent: &Path, name: &str) -> Self {
        Cgroup {
            root: root.to_path_buf(),
            relative: parent.join(name),
        }
    }

    /// The cgroup's directory in the hierarchy of `controller`, `None` when
    /// that controller is not mounted.
    fn dir(&self, controller: &str) -> Option<PathBuf> {
        let mount = self.root.join(controller);
        mount.is_dir().then(|| mount.join(&self.relative))
    }

    /// Like [`Cgroup::dir`], for a controller a limit or an operation needs.
    fn require(&self, controller: &'static str) -> Result<PathBuf> {
        self.dir(controller)
            .ok_or_else(|| CgroupError::ControllerMissing {
                controller,
                path: self.root.join(controller),
            })
    }

    /// The cgroup's directory in each distinct hierarchy.
    fn leaves(&self) -> Vec<PathBuf> {
        hierarchy_mounts(&self.root)
            .into_iter()
            .map(|mount| mount.join(&self.relative))
            .collect()
    }

    /// Denies every device, then allows `rules` (`c 1:3 rwm` lines).
    pub(super) fn allow_only_devices(&self, rules: &[String]) -> Result<()> {
        let Some(dir) = self.dir("devices") else {
            return Ok(());
        };
        write_value(&dir.join("devices.deny"), "a")?;
        for rule in rules {
            write_value(&dir.join("devices.allow"), rule)?;
        }
        Ok(())
    }

    pub(super) fn create(&self) -> Result<()> {
        let mounts = hierarchy_mounts(&self.root);
        if mounts.is_empty() {
            return Err(CgroupError::NoHierarchy {
                root: self.root.clone(),
            });
        }
        let cpuset_mount = real_mount(&self.root, "cpuset");
        for mount in &mounts {
            let is_cpuset = cpuset_mount.as_ref() == Some(mount);
            create_levels(mount, &self.relative, |level| {
                if is_cpuset {
                    inherit_cpuset(level)
                } else {
                    Ok(())
                }
            })?;
        }
        Ok(())
    }

    pub(super) fn apply(&self, limits: &Limits) -> Result<()> {
        if limits.memory.is_some() || limits.memory_swap.is_some() {
            self.apply_memory(limits)?;
        }
        if limits.cpu_quota.is_some() || limits.cpu_period.is_some() || limits.cpu_shares.is_some()
        {
            self.apply_cpu(limits)?;
        }
        if let Some(cpus) = &limits.cpuset_cpus {
            write_value(&self.require("cpuset")?.join("cpuset.cpus"), cpus)?;
        }
        if let Some(pids) = limits.pids {
            write_value(
                &self.require("pids")?.join("pids.max"),
                &super::pids_max_value(pids),
            )?;
        }
        Ok(())
    }

    /// Writes the memory and memory+swap limits. Without swap accounting in
    /// the kernel (no `memory.memsw.*` files) swap cannot be limited and the
    /// swap setting is dropped, as Docker does.
    fn apply_memory(&self, limits: &Limits) -> Result<()> {
        let dir = self.require("memory")?;
        let memory_file = dir.join("memory.limit_in_bytes");
        let memsw_file = dir.join("memory.memsw.limit_in_bytes");
        // No swap setting means no swap beyond the memory limit.
        let memsw = match (limits.memory, limits.memory_swap) {
            _ if !memsw_file.exists() => None,
            (_, Some(swap)) => Some(swap.to_string()),
            (Some(memory), None) => Some(memory.to_string()),
            (None, None) => None,
        };
        match (limits.memory, memsw) {
            (Some(memory), Some(memsw)) => {
                write_constrained_pair((&memory_file, &memory.to_string()), (&memsw_file, &memsw))
            }
            (Some(memory), None) => write_value(&memory_file, &memory.to_string()),
            (None, Some(memsw)) => write_value(&memsw_file, &memsw),
            (None, None) => Ok(()),
        }
    }

    fn apply_cpu(&self, limits: &Limits) -> Result<()> {
        let dir = self.require("cpu")?;
        let period_file = dir.join("cpu.cfs_period_us");
        let quota_file = dir.join("cpu.cfs_quota_us");
        match (limits.effective_cpu_period(), limits.cpu_quota) {
            (Some(period), Some(quota)) => write_constrained_pair(
                (&period_file, &period.to_string()),
                (&quota_file, &quota.to_string()),
            )?,
            (Some(period), None) => write_value(&period_file, &period.to_string())?,
            (None, _) => {}
        }
        if let Some(shares) = limits.cpu_shares {
            write_value(&dir.join("cpu.shares"), &shares.to_string())?;
        }
        Ok(())
    }

    pub(super) fn procs_files(&self) -> Vec<PathBuf> {
        self.leaves()
            .into_iter()
            .map(|leaf| leaf.join("cgroup.procs"))
            .collect()
    }

    /// The `cgroup.procs` to list members from: every hierarchy holds the
    /// same processes, so any one does; pids, freezer or memory first as
    /// mcm always uses them.
    fn listing_procs(&self) -> Option<PathBuf> {
        ["pids", "freezer", "memory"]
            .iter()
            .find_map(|controller| self.dir(controller))
            .or_else(|| self.leaves().into_iter().next())
            .map(|dir| dir.join("cgroup.procs"))
    }

    pub(super) fn pids(&self) -> Result<Vec<i32>> {
        match self.listing_procs() {
            Some(procs) => read_pids(&procs),
            None => Ok(Vec::new()),
        }
    }

    pub(super) fn freeze(&self) -> Result<()> {
        let state = self.require("freezer")?.join("freezer.state");
        write_value(&state, "FROZEN")?;
        let mut last = String::new();
        let frozen = poll(FREEZE_TIMEOUT, || {
            last = read_string(&state)?.trim().to_string();
            if last == "FROZEN" {
                return Ok(true);
            }
            // v1 can stay in FREEZING while a task is busy in the kernel;
            // asking again makes the kernel retry the stragglers.
            write_value(&state, "FROZEN")?;
            Ok(false)
        })?;
        if frozen {
            return Ok(());
        }
        // Best effort: do not leave the container half frozen; the timeout
        // is the error worth reporting.
        write_value(&state, "THAWED").ok();
        Err(CgroupError::Timeout {
            path: state,
            expected: "FROZEN",
            last,
            waited: FREEZE_TIMEOUT,
        })
    }

    pub(super) fn thaw(&self) -> Result<()> {
        // Thawing is synchronous in v1: no need to poll.
        write_value(&self.require("freezer")?.join("freezer.state"), "THAWED")
    }

    pub(super) fn is_frozen(&self) -> bool {
        self.dir("freezer")
            .and_then(|dir| read_optional(&dir.join("freezer.state")).ok().flatten())
            .is_some_and(|state| state.trim() == "FROZEN")
    }

    pub(super) fn kill_all(&self) -> Result<()> {
        let Some(procs) = self.listing_procs() else {
            return Ok(());
        };
        kill_until_empty(&procs, || self.pids(), || self.freeze(), || self.thaw())
    }

    pub(super) fn destroy(&self) -> Result<()> {
        // Try every hierarchy even if one fails, so as little as possible
        // is left behind; report the first failure.
        let mut first_error = None;
        for leaf in self.leaves() {
            if let Err(e) = rmdir_retrying(&leaf) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub(super) fn exists(&self) -> bool {
        self.leaves().iter().any(|leaf| leaf.is_dir())
    }

    /// Fails with `NotFound` when the cgroup is absent in every hierarchy.
    fn require_existing(&self) -> Result<()> {
        if self.exists() {
            Ok(())
        } else {
            Err(CgroupError::NotFound {
                path: self.root.join("*").join(&self.relative),
            })
        }
    }

    pub(super) fn stats(&self) -> Result<Stats> {
        self.require_existing()?;
        let mut stats = Stats::default();
        if let Some(dir) = self.dir("memory") {
            let usage = read_number(&dir.join("memory.usage_in_bytes"))?.unwrap_or(0);
            let stat = read_optional(&dir.join("memory.stat"))?.unwrap_or_default();
            let inactive = keyed_value(&stat, "total_inactive_file").unwrap_or(0);
            stats.memory_usage = super::usage_without_cache(usage, inactive);
            stats.memory_limit = read_limit(&dir.join("memory.limit_in_bytes"))?;
            stats.memory_peak = read_number(&dir.join("memory.max_usage_in_bytes"))?;
            // `oom_kill` appeared in Linux 4.13; older kernels count none.
            stats.oom_events = read_optional(&dir.join("memory.oom_control"))?
                .and_then(|content| keyed_value(&content, "oom_kill"))
                .unwrap_or(0);
        }
        if let Some(dir) = self.dir("cpuacct") {
            stats.cpu_usage_ns = read_number(&dir.join("cpuacct.usage"))?.unwrap_or(0);
        }
        if let Some(dir) = self.dir("pids") {
            stats.pids_current = read_number(&dir.join("pids.current"))?.unwrap_or(0);
            stats.pids_limit = read_number_or_max(&dir.join("pids.max"))?;
        }
        if let Some(dir) = self.dir("blkio") {
            (stats.blkio_read_bytes, stats.blkio_write_bytes) = read_blkio_bytes(&dir)?;
        }
        Ok(stats)
    }

    pub(super) fn limits_in_effect(&self) -> Result<Limits> {
        self.require_existing()?;
        let mut limits = Limits::default();
        if let Some(dir) = self.dir("memory") {
            let memory = read_limit(&dir.join("memory.limit_in_bytes"))?;
            let memsw = read_number::<u64>(&dir.join("memory.memsw.limit_in_bytes"))?;
            limits.memory = memory;
            limits.memory_swap = match memsw {
                Some(memsw) if is_unlimited(memsw) => memory.map(|_| -1),
                Some(memsw) => i64::try_from(memsw).ok(),
                None => None,
            };
        }
        if let Some(dir) = self.dir("cpu") {
            // -1 is "no quota".
            let quota = read_number::<i64>(&dir.join("cpu.cfs_quota_us"))?.filter(|q| *q > 0);
            if quota.is_some() {
                limits.cpu_period = read_number(&dir.join("cpu.cfs_period_us"))?;
            }
            limits.cpu_quota = quota;
            limits.cpu_shares =
                read_number(&dir.join("cpu.shares"))?.filter(|shares| *shares != DEFAULT_SHARES);
        }
        if let Some(dir) = self.dir("cpuset") {
            let cpus = read_trimmed(&dir.join("cpuset.cpus"))?;
            let inherited = match dir.parent() {
                Some(parent) => read_trimmed(&parent.join("cpuset.cpus"))?,
                None => None,
            };
            limits.cpuset_cpus =
                cpus.filter(|cpus| !cpus.is_empty() && Some(cpus) != inherited.as_ref());
        }
        if let Some(dir) = self.dir("pids") {
            limits.pids =
                read_number_or_max(&dir.join("pids.max"))?.and_then(|max| i64::try_from(max).ok());
        }
        Ok(limits)
    }
}

/// The real directory of each distinct v1 hierarchy mcm uses under `root`,
/// in controller order; co-mounted controllers appear once. Resolving them
/// takes a few dozen system calls, and a start asks several times, so the
/// answer is kept for the life of the process (mounts do not move under a
/// running mcm).
pub(super) fn hierarchy_mounts(root: &Path) -> Vec<PathBuf> {
    static KNOWN: Mutex<Vec<(PathBuf, Vec<PathBuf>)>> = Mutex::new(Vec::new());
    let mut known = KNOWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, mounts)) = known.iter().find(|(r, _)| r == root) {
        return mounts.clone();
    }
    let mounts = resolve_hierarchy_mounts(root);
    // An empty answer (nothing mounted yet) is not kept.
    if !mounts.is_empty() {
        known.push((root.to_path_buf(), mounts.clone()));
    }
    mounts
}

fn resolve_hierarchy_mounts(root: &Path) -> Vec<PathBuf> {
    let mut mounts: Vec<PathBuf> = Vec::new();
    for controller in CONTROLLERS {
        if let Some(mount) = real_mount(root, controller) {
            if !mounts.contains(&mount) {
                mounts.push(mount);
            }
        }
    }
    mounts
}

/// The hierarchy directory of `controller`, `None` when it is not mounted.
/// A co-mounted controller is a symlink next to its hierarchy (`cpu ->
/// cpu,cpuacct`), so one readlink tells both cases apart.
fn real_mount(root: &Path, controller: &str) -> Option<PathBuf> {
    let path = root.join(controller);
    match fs::read_link(&path) {
        Ok(target) => {
            let mount = root.join(target);
            mount.is_dir().then_some(mount)
        }
        // EINVAL: not a symlink, so the hierarchy itself.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => path.is_dir().then_some(path),
        Err(_) => None,
    }
}

/// Gives a cpuset level the parent's CPUs and memory nodes when it has
/// none: the kernel creates cpusets empty, and an empty cpuset refuses
/// tasks with ENOSPC. A level without the files (a fixture) is left alone.
fn inherit_cpuset(level: &Path) -> Result<()> {
    let Some(parent) = level.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let path = level.join(file);
        if read_trimmed(&path)?.is_some_and(|value| value.is_empty()) {
            let inherited = read_string(&parent.join(file))?;
            write_value(&path, inherited.trim())?;
        }
    }
    Ok(())
}

/// Writes two limits that bound each other (memory below memory+swap,
/// quota against period) in the given order, or in the other order when
/// the kernel refuses the first value (EINVAL) because of the second's
/// current value: raising needs one order, lowering the other.
fn write_constrained_pair(first: (&Path, &str), second: (&Path, &str)) -> Result<()> {
    match write_value(first.0, first.1) {
        Ok(()) => write_value(second.0, second.1),
        Err(CgroupError::Write { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            write_value(second.0, second.1)?;
            write_value(first.0, first.1)
        }
        Err(e) => Err(e),
    }
}

/// Whether a v1 byte limit is the kernel's "unlimited" (the largest page
/// multiple below `i64::MAX`, whatever the page size).
fn is_unlimited(bytes: u64) -> bool {
    bytes > i64::MAX as u64 / 2
}

/// Reads a v1 byte limit, `None` when unlimited or absent.
fn read_limit(path: &Path) -> Result<Option<u64>> {
    Ok(read_number(path)?.filter(|bytes| !is_unlimited(*bytes)))
}

/// Reads a file with surrounding whitespace removed, `None` when absent.
fn read_trimmed(path: &Path) -> Result<Option<String>> {
    Ok(read_optional(path)?.map(|content| content.trim().to_string()))
}

/// Bytes read and written by the cgroup, summed over devices, from the
/// first blkio statistics file the kernel provides (the CFQ/BFQ-era
/// `io_service_bytes` or the throttle layer's, which sees all I/O).
fn read_blkio_bytes(dir: &Path) -> Result<(u64, u64)> {
    for file in [
        "blkio.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes_recursive",
    ] {
        if let Some(content) = read_optional(&dir.join(file))? {
            return Ok(sum_blkio(&content));
        }
    }
    Ok((0, 0))
}

/// Sums the `MAJ:MIN Read N` and `MAJ:MIN Write N` lines of a blkio file.
fn sum_blkio(content: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for line in content.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_device, op, value] = fields[..] else {
            continue;
        };
        let value: u64 = value.parse().unwrap_or(0);
        match op {
            "Read" => read = read.saturating_add(value),
            "Write" => write = write.saturating_add(value),
            _ => {}
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::super::fixtures::{populate, read};
    use super::super::{parse_cpus, Cgroup as AnyCgroup, Mode};
    use super::*;

    /// A root with every controller's hierarchy, the cpuset one holding the
    /// host's CPUs and memory nodes.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for controller in CONTROLLERS {
            populate(&dir.path().join(controller), &[]);
        }
        populate(
            &dir.path().join("cpuset"),
            &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
        );
        dir
    }

    /// The files the kernel gives a new cgroup, with its default values.
    fn populate_leaf(root: &Path, relative: &str) {
        let dir = |controller: &str| root.join(controller).join(relative);
        let unlimited = "9223372036854771712\n";
        populate(
            &dir("memory"),
            &[
                ("memory.limit_in_bytes", unlimited),
                ("memory.memsw.limit_in_bytes", unlimited),
            ],
        );
        populate(
            &dir("cpu"),
            &[
                ("cpu.cfs_quota_us", "-1\n"),
                ("cpu.cfs_period_us", "100000\n"),
                ("cpu.shares", "1024\n"),
            ],
        );
        populate(&dir("cpuset"), &[("cpuset.cpus", ""), ("cpuset.mems", "")]);
        populate(&dir("pids"), &[("pids.max", "max\n")]);
        populate(&dir("freezer"), &[("freezer.state", "THAWED\n")]);
    }

    fn cgroup(root: &Path, parent: &str, name: &str) -> AnyCgroup {
        AnyCgroup::with_root(root, Mode::V1, parent, name).unwrap()
    }

    #[test]
    fn create_makes_the_cgroup_in_every_hierarchy() {
        let root = fixture();
        let cg = cgroup(root.path(), "mcm/sub", "c1");
        assert!(!cg.exists());
        cg.create().unwrap();
        for controller in CONTROLLERS {
            assert!(root.path().join(controller).join("mcm/sub/c1").is_dir());
        }
        assert!(cg.exists());
        // Creating again is fine.
        cg.create().unwrap();
        assert_eq!(cg.procs_files().len(), CONTROLLERS.len());
    }

    #[test]
    fn create_without_hierarchies_fails() {
        let root = tempfile::tempdir().unwrap();
        let error = cgroup(root.path(), "mcm", "c1").create().unwrap_err();
        assert!(matches!(error, CgroupError::NoHierarchy { .. }), "{error}");
    }

    #[test]
    fn create_fills_empty_cpusets_from_the_parent() {
        let root = fixture();
        let cpuset = root.path().join("cpuset");
        // What the kernel creates: empty cpusets at every new level.
        populate(
            &cpuset.join("mcm"),
            &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
        );
        populate(
            &cpuset.join("mcm/c1"),
            &[("cpuset.cpus", ""), ("cpuset.mems", "")],
        );
        // A level that already has CPUs keeps them.
        populate(
            &cpuset.join("mcm/c2"),
            &[("cpuset.cpus", "1\n"), ("cpuset.mems", "0\n")],
        );
        cgroup(root.path(), "mcm", "c1").create().unwrap();
        cgroup(root.path(), "mcm", "c2").create().unwrap();
        assert_eq!(read(&cpuset.join("mcm/cpuset.cpus")), "0-3");
        assert_eq!(read(&cpuset.join("mcm/cpuset.mems")), "0");
        assert_eq!(read(&cpuset.join("mcm/c1/cpuset.cpus")), "0-3");
        assert_eq!(read(&cpuset.join("mcm/c1/cpuset.mems")), "0");
        assert_eq!(read(&cpuset.join("mcm/c2/cpuset.cpus")), "1\n");
    }

    #[test]
    fn co_mounted_controllers_are_handled_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        populate(&root.join("cpu,cpuacct"), &[]);
        symlink("cpu,cpuacct", root.join("cpu")).unwrap();
        symlink("cpu,cpuacct", root.join("cpuacct")).unwrap();
        populate(&root.join("memory"), &[]);
        let cg = cgroup(root, "mcm", "c1");
        cg.create().unwrap();
        let real = fs::canonicalize(root).unwrap();
        assert_eq!(
            cg.procs_files(),
            vec![
                real.join("cpu,cpuacct/mcm/c1/cgroup.procs"),
                real.join("memory/mcm/c1/cgroup.procs"),
            ]
        );
        assert!(root.join("cpu/mcm/c1").is_dir());
        cg.destroy().unwrap();
        assert!(!root.join("cpu,cpuacct/mcm/c1").exists());
        assert!(!root.join("memory/mcm/c1").exists());
    }

    #[test]
    fn apply_writes_every_field() {
        let root = fixture();
        populate_leaf(root.path(), "mcm/c1");
        let cg = cgroup(root.path(), "mcm", "c1");
        let (quota, period) = parse_cpus("0.5", 4).unwrap();
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_quota: Some(quota),
            cpu_period: Some(period),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0-1".into()),
            pids: Some(100),
        };
        cg.apply(&limits).unwrap();
        let leaf = |controller: &str, file: &str| {
            read(&root.path().join(controller).join("mcm/c1").join(file))
        };
        assert_eq!(leaf("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(leaf("memory", "memory.memsw.limit_in_bytes"), "134217728");
        assert_eq!(leaf("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(leaf("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(leaf("cpu", "cpu.shares"), "512");
        assert_eq!(leaf("cpuset", "cpuset.cpus"), "0-1");
        assert_eq!(leaf("pids", "pids.max"), "100");
        assert_eq!(cg.limits_in_effect().unwrap(), limits);

        cg.apply(&Limits {
            pids: Some(-1),
            cpu_quota: Some(-1),
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(leaf("pids", "pids.max"), "max");
        assert_eq!(leaf("cpu", "cpu.cfs_quota_us"), "-1");
        // The default period comes with a quota.
        assert_eq!(leaf("cpu", "cpu.cfs_period_us"), "100000");
        // Untouched fields keep their values.
        assert_eq!(leaf("memory", "memory.limit_in_bytes"), "67108864");
    }

    #[test]
    fn quota_alone_gets_the_default_period() {
        let root = fixture();
        populate_leaf(root.path(), "mcm/c1");
        let period = root.path().join("cpu/mcm/c1/cpu.cfs_period_us");
        fs::write(&period, "50000\n").unwrap();
        let cg = cgroup(root.path(), "mcm", "c1");
        cg.apply(&Limits {
            cpu_quota: Some(25_000),
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(read(&period), "100000");
    }

    #[test]
    fn swap_defaults_to_no_swap_beyond_memory() {
        let root = fixture();
        populate_leaf(root.path(), "mcm/c1");
        let cg = cgroup(root.path(), "mcm", "c1");
        let memsw = root
            .path()
            .join("memory/mcm/c1/memory.memsw.limit_in_bytes");
        let memory_only = Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        };
        cg.apply(&memory_only).unwrap();
        assert_eq!(read(&memsw), "67108864");
        assert_eq!(cg.limits_in_effect().unwrap().memory_swap, Some(64 << 20));

        cg.apply(&Limits {
            memory_swap: Some(-1),
            ..memory_only.clone()
        })
        .unwrap();
        assert_eq!(read(&memsw), "-1");
        // The kernel reads -1 back as its unlimited value.
        fs::write(&memsw, "9223372036854771712\n").unwrap();
        assert_eq!(cg.limits_in_effect().unwrap().memory_swap, Some(-1));

        // Without swap accounting only the memory limit is written.
        fs::remove_file(&memsw).unwrap();
        cg.apply(&Limits {
            memory: Some(32 << 20),
            memory_swap: Some(64 << 20),
            ..Limits::default()
        })
        .unwrap();
        assert!(!memsw.exists());
        assert_eq!(
            read(&root.path().join("memory/mcm/c1/memory.limit_in_bytes")),
            "33554432"
        );
    }

    #[test]
    fn apply_without_the_controller_names_it() {
        let root = fixture();
        populate_leaf(root.path(), "mcm/c1");
        fs::remove_dir_all(root.path().join("pids")).unwrap();
        let error = cgroup(root.path(), "mcm", "c1")
            .apply(&Limits {
                pids: Some(10),
                ..Limits::default()
            })
            .unwrap_err();
        assert!(
            matches!(
                error,
                CgroupError::ControllerMissing {
                    controller: "pids",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn limits_in_effect_reads_kernel_defaults_as_none() {
        let root = fixture();
        populate_leaf(root.path(), "mcm/c1");
        populate(
            &root.path().join("cpuset/mcm"),
            &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
        );
        let cg = cgroup(root.path(), "mcm", "c1");
        // Copies the parent's cpuset, which is no restriction of its own.
        cg.create().unwrap();
        assert_eq!(cg.limits_in_effect().unwrap(), Limits::default());
    }

    #[test]
    fn stats_follow_docker() {
        let root = fixture();
        let leaf = |controller: &str| root.path().join(controller).join("mcm/c1");
        populate(
            &leaf("memory"),
            &[
                ("memory.usage_in_bytes", "10000000\n"),
                (
                    "memory.stat",
                    "cache 5\ninactive_file 1\ntotal_inactive_file 2000000\n",
                ),
                ("memory.limit_in_bytes", "67108864\n"),
                ("memory.max_usage_in_bytes", "12000000\n"),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ),
            ],
        );
        populate(&leaf("cpuacct"), &[("cpuacct.usage", "123456789\n")]);
        populate(
            &leaf("pids"),
            &[("pids.current", "3\n"), ("pids.max", "max\n")],
        );
        populate(
            &leaf("blkio"),
            &[(
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\n\
                 8:16 Read 1\n8:16 Write 2\nTotal 12291\n",
            )],
        );
        let stats = cgroup(root.path(), "mcm", "c1").stats().unwrap();
        assert_eq!(
            stats,
            Stats {
                memory_usage: 8_000_000,
                memory_limit: Some(64 << 20),
                memory_peak: Some(12_000_000),
                cpu_usage_ns: 123_456_789,
                pids_current: 3,
                pids_limit: None,
                blkio_read_bytes: 4097,
                blkio_write_bytes: 8194,
                oom_events: 2,
            }
        );
    }

    #[test]
    fn unlimited_memory_reads_as_none() {
        let root = fixture();
        populate(
            &root.path().join("memory/mcm/c1"),
            &[("memory.limit_in_bytes", "9223372036854771712\n")],
        );
        let stats = cgroup(root.path(), "mcm", "c1").stats().unwrap();
        assert_eq!(stats.memory_limit, None);
        assert_eq!(stats.oom_events, 0);
    }

    #[test]
    fn freezer_state_is_written_and_read() {
        let root = fixture();
        populate_leaf(root.path(), "mcm/c1");
        let cg = cgroup(root.path(), "mcm", "c1");
        let state = root.path().join("freezer/mcm/c1/freezer.state");
        assert!(!cg.is_frozen());
        cg.freeze().unwrap();
        assert_eq!(read(&state), "FROZEN");
        assert!(cg.is_frozen());
        cg.thaw().unwrap();
        assert_eq!(read(&state), "THAWED");
        assert!(!cg.is_frozen());
    }

    #[test]
    fn pids_come_from_the_pids_hierarchy() {
        let root = fixture();
        populate(
            &root.path().join("pids/mcm/c1"),
            &[("cgroup.procs", "10\n20\n")],
        );
        populate(
            &root.path().join("memory/mcm/c1"),
            &[("cgroup.procs", "99\n")],
        );
        let cg = cgroup(root.path(), "mcm", "c1");
        assert_eq!(cg.pids().unwrap(), vec![10, 20]);
        fs::remove_dir_all(root.path().join("pids")).unwrap();
        fs::remove_dir_all(root.path().join("freezer")).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![99]);
    }

    #[test]
    fn add_pid_writes_every_hierarchy() {
        let root = fixture();
        for controller in CONTROLLERS {
            populate(
                &root.path().join(controller).join("mcm/c1"),
                &[("cgroup.procs", "")],
            );
        }
        cgroup(root.path(), "mcm", "c1").add_pid(4242).unwrap();
        for controller in CONTROLLERS {
            let procs = root.path().join(controller).join("mcm/c1/cgroup.procs");
            assert_eq!(read(&procs), "4242");
        }
    }

    #[test]
    fn destroy_removes_only_the_leaf() {
        let root = fixture();
        let cg = cgroup(root.path(), "mcm", "c1");
        cg.create().unwrap();
        cg.destroy().unwrap();
        assert!(!cg.exists());
        for controller in CONTROLLERS {
            assert!(root.path().join(controller).join("mcm").is_dir());
        }
        cg.destroy().unwrap();
    }

    #[test]
    fn blkio_lines_are_summed() {
        assert_eq!(
            sum_blkio("8:0 Read 10\n8:0 Write 5\n8:0 Async 3\nTotal 15\n"),
            (10, 5)
        );
        assert_eq!(sum_blkio(""), (0, 0));
    }
}
