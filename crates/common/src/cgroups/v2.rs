//! cgroup v2: the unified hierarchy. Controllers reach a cgroup only when
//! every ancestor lists them in its `cgroup.subtree_control`.

use std::path::{Path, PathBuf};

use super::{
    create_levels, keyed_value, kill_until_empty, make_dir, poll, read_number, read_number_or_max,
    read_optional, read_pids, rmdir_retrying, shares_to_weight, wait_until_empty, weight_to_shares,
    write_value, CgroupError, Limits, Result, Stats, FREEZE_TIMEOUT,
};

/// The controllers mcm enables for its containers (when the host has them).
const CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

/// The kernel's default `cpu.weight`.
const DEFAULT_WEIGHT: u64 = 100;

/// A container cgroup `<parent>/<name>` in a cgroup2 mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    root: PathBuf,
    parent: PathBuf,
    leaf: PathBuf,
}

impl Cgroup {
    /// `parent` and `name` must have been validated by the caller.
    pub(super) fn new(root: &Path, parent: &Path, name: &str) -> Self {
        Cgroup {
            root: root.to_path_buf(),
            parent: parent.to_path_buf(),
            leaf: root.join(parent).join(name),
        }
    }

    /// The container cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.leaf
    }

    /// A file of the container cgroup.
    fn file(&self, name: &str) -> PathBuf {
        self.leaf.join(name)
    }

    pub(super) fn create(&self) -> Result<()> {
        // Every ancestor, from the mount root down to the parent, must hand
        // the controllers down before the leaf can use them.
        enable_controllers(&self.root)?;
        create_levels(&self.root, &self.parent, enable_controllers)?;
        make_dir(&self.leaf)
    }

    pub(super) fn apply(&self, limits: &Limits) -> Result<()> {
        if let Some(memory) = limits.memory {
            write_value(&self.file("memory.max"), &memory.to_string())?;
        }
        self.apply_swap(limits)?;
        self.apply_cpu_max(limits)?;
        if let Some(shares) = limits.cpu_shares {
            write_value(
                &self.file("cpu.weight"),
                &shares_to_weight(shares).to_string(),
            )?;
        }
        if let Some(cpus) = &limits.cpuset_cpus {
            write_value(&self.file("cpuset.cpus"), cpus)?;
        }
        if let Some(pids) = limits.pids {
            write_value(&self.file("pids.max"), &super::pids_max_value(pids))?;
        }
        Ok(())
    }

    /// v2 limits swap alone (`memory.swap.max`), where Docker's figure is
    /// memory plus swap. Without the file (no swap accounting) swap cannot
    /// be limited and the setting is dropped, as Docker does.
    fn apply_swap(&self, limits: &Limits) -> Result<()> {
        let path = self.file("memory.swap.max");
        let value = match (limits.memory, limits.memory_swap) {
            (_, Some(-1)) => "max".to_string(),
            // Validated: memory + swap is at least memory.
            (Some(memory), Some(total)) => (total as u64).saturating_sub(memory).to_string(),
            // No swap setting means no swap beyond the memory limit.
            (Some(_), None) => "0".to_string(),
            (None, _) => return Ok(()),
        };
        if !path.exists() {
            return Ok(());
        }
        write_value(&path, &value)
    }

    /// Writes `cpu.max` (`"$QUOTA $PERIOD"`, `max` for no quota).
    fn apply_cpu_max(&self, limits: &Limits) -> Result<()> {
        let path = self.file("cpu.max");
        let quota = match limits.cpu_quota {
            Some(quota) if quota > 0 => quota.to_string(),
            Some(_) => "max".to_string(),
            // A period alone keeps the current quota.
            None if limits.cpu_period.is_some() => {
                let current = super::read_string(&path)?;
                current
                    .split_whitespace()
                    .next()
                    .unwrap_or("max")
                    .to_string()
            }
            None => return Ok(()),
        };
        let period = limits
            .effective_cpu_period()
            .unwrap_or(super::DEFAULT_CPU_PERIOD);
        write_value(&path, &format!("{quota} {period}"))
    }

    pub(super) fn procs_file(&self) -> PathBuf {
        self.file("cgroup.procs")
    }

    pub(super) fn pids(&self) -> Result<Vec<i32>> {
        read_pids(&self.procs_file())
    }

    pub(super) fn freeze(&self) -> Result<()> {
        let freeze = self.file("cgroup.freeze");
        write_value(&freeze, "1")?;
        // The kernel freezes asynchronously and reports the result in
        // cgroup.events.
        let events = self.file("cgroup.events");
        let mut last = String::new();
        let frozen = poll(FREEZE_TIMEOUT, || {
            last = super::read_string(&events)?;
            Ok(keyed_value(&last, "frozen") == Some(1))
        })?;
        if frozen {
            return Ok(());
        }
        // Best effort: do not leave the container half frozen; the timeout
        // is the error worth reporting.
        write_value(&freeze, "0").ok();
        Err(CgroupError::Timeout {
            path: events,
            expected: "frozen 1",
            last,
            waited: FREEZE_TIMEOUT,
        })
    }

    pub(super) fn thaw(&self) -> Result<()> {
        write_value(&self.file("cgroup.freeze"), "0")
    }

    pub(super) fn is_frozen(&self) -> bool {
        read_optional(&self.file("cgroup.events"))
            .ok()
            .flatten()
            .and_then(|events| keyed_value(&events, "frozen"))
            == Some(1)
    }

    pub(super) fn kill_all(&self) -> Result<()> {
        let procs = self.procs_file();
        let kill = self.file("cgroup.kill");
        // cgroup.kill (Linux 5.14) kills atomically, frozen or not, with no
        // race against forks.
        if kill.exists() {
            if self.pids()?.is_empty() {
                return Ok(());
            }
            write_value(&kill, "1")?;
            return wait_until_empty(&procs, || self.pids());
        }
        kill_until_empty(&procs, || self.pids(), || self.freeze(), || self.thaw())
    }

    pub(super) fn destroy(&self) -> Result<()> {
        rmdir_retrying(&self.leaf)
    }

    pub(super) fn exists(&self) -> bool {
        self.leaf.is_dir()
    }

    /// Fails with `NotFound` when the cgroup is absent.
    fn require_existing(&self) -> Result<()> {
        if self.exists() {
            Ok(())
        } else {
            Err(CgroupError::NotFound {
                path: self.leaf.clone(),
            })
        }
    }

    pub(super) fn stats(&self) -> Result<Stats> {
        self.require_existing()?;
        let keyed = |file: &str, key: &str| -> Result<Option<u64>> {
            Ok(read_optional(&self.file(file))?.and_then(|content| keyed_value(&content, key)))
        };
        let usage = read_number(&self.file("memory.current"))?.unwrap_or(0);
        let inactive = keyed("memory.stat", "inactive_file")?.unwrap_or(0);
        let (io_read, io_write) = match read_optional(&self.file("io.stat"))? {
            Some(content) => sum_io_stat(&content),
            None => (0, 0),
        };
        Ok(Stats {
            memory_usage: super::usage_without_cache(usage, inactive),
            memory_limit: read_number_or_max(&self.file("memory.max"))?,
            // memory.peak appeared in Linux 5.19.
            memory_peak: read_number(&self.file("memory.peak"))?,
            cpu_usage_ns: keyed("cpu.stat", "usage_usec")?
                .unwrap_or(0)
                .saturating_mul(1000),
            pids_current: read_number(&self.file("pids.current"))?.unwrap_or(0),
            pids_limit: read_number_or_max(&self.file("pids.max"))?,
            blkio_read_bytes: io_read,
            blkio_write_bytes: io_write,
            oom_events: keyed("memory.events", "oom_kill")?.unwrap_or(0),
        })
    }

    pub(super) fn limits_in_effect(&self) -> Result<Limits> {
        self.require_existing()?;
        let memory = read_number_or_max(&self.file("memory.max"))?;
        let swap_path = self.file("memory.swap.max");
        let memory_swap = match read_optional(&swap_path)? {
            Some(swap) if swap.trim() == "max" => memory.map(|_| -1),
            Some(swap) => {
                let swap: u64 = super::parse_number(&swap_path, &swap)?;
                memory.and_then(|memory| i64::try_from(memory.saturating_add(swap)).ok())
            }
            None => None,
        };
        let (cpu_quota, cpu_period) = self.read_cpu_max()?;
        let cpu_shares = read_number(&self.file("cpu.weight"))?
            .filter(|weight| *weight != DEFAULT_WEIGHT)
            .map(weight_to_shares);
        // An empty cpuset.cpus means "the parent's CPUs".
        let cpuset_cpus = read_optional(&self.file("cpuset.cpus"))?
            .map(|cpus| cpus.trim().to_string())
            .filter(|cpus| !cpus.is_empty());
        let pids =
            read_number_or_max(&self.file("pids.max"))?.and_then(|max| i64::try_from(max).ok());
        Ok(Limits {
            memory,
            memory_swap,
            cpu_quota,
            cpu_period,
            cpu_shares,
            cpuset_cpus,
            pids,
        })
    }

    /// Quota and period from `cpu.max`; both `None` without a quota.
    fn read_cpu_max(&self) -> Result<(Option<i64>, Option<u64>)> {
        let path = self.file("cpu.max");
        let Some(content) = read_optional(&path)? else {
            return Ok((None, None));
        };
        let malformed = || CgroupError::Parse {
            path: path.clone(),
            content: content.clone(),
        };
        let mut fields = content.split_whitespace();
        let (Some(quota), Some(period)) = (fields.next(), fields.next()) else {
            return Err(malformed());
        };
        if quota == "max" {
            return Ok((None, None));
        }
        let quota = quota.parse().map_err(|_| malformed())?;
        let period = period.parse().map_err(|_| malformed())?;
        Ok((Some(quota), Some(period)))
    }
}

/// Enables in `dir`'s `cgroup.subtree_control` those of mcm's controllers
/// that `dir` has and does not hand down yet. One refused controller (cpu
/// while real-time tasks run in `dir`, say) fails a whole write, so on
/// failure each is tried alone; one that stays refused shows up later as
/// the missing file a limit cannot be written to. A level without the
/// files (a fixture) is left alone.
fn enable_controllers(dir: &Path) -> Result<()> {
    let available = read_optional(&dir.join("cgroup.controllers"))?.unwrap_or_default();
    let subtree = dir.join("cgroup.subtree_control");
    let enabled = read_optional(&subtree)?.unwrap_or_default();
    let has = |list: &str, controller: &str| list.split_whitespace().any(|c| c == controller);
    let missing: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| has(&available, c) && !has(&enabled, c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() || write_value(&subtree, &missing.join(" ")).is_ok() {
        return Ok(());
    }
    for controller in &missing {
        write_value(&subtree, controller).ok();
    }
    Ok(())
}

/// Sums `rbytes=` and `wbytes=` over the devices of an `io.stat` file.
fn sum_io_stat(content: &str) -> (u64, u64) {
    let (mut read, mut write) = (0u64, 0u64);
    for field in content.split_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let value: u64 = value.parse().unwrap_or(0);
        match key {
            "rbytes" => read = read.saturating_add(value),
            "wbytes" => write = write.saturating_add(value),
            _ => {}
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::fixtures::{populate, read};
    use super::super::{parse_cpus, Cgroup as AnyCgroup, Mode};
    use super::*;

    const ALL: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";

    /// A cgroup2 root offering every controller, delegating none yet.
    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        populate(
            dir.path(),
            &[("cgroup.controllers", ALL), ("cgroup.subtree_control", "")],
        );
        dir
    }

    /// The files the kernel gives a new cgroup, with its default values.
    fn populate_leaf(dir: &Path) {
        populate(
            dir,
            &[
                ("memory.max", "max\n"),
                ("memory.swap.max", "max\n"),
                ("cpu.max", "max 100000\n"),
                ("cpu.weight", "100\n"),
                ("cpuset.cpus", "\n"),
                ("pids.max", "max\n"),
                ("cgroup.procs", ""),
                ("cgroup.freeze", "0\n"),
                ("cgroup.events", "populated 0\nfrozen 0\n"),
            ],
        );
    }

    fn cgroup(root: &Path, parent: &str, name: &str) -> AnyCgroup {
        AnyCgroup::with_root(root, Mode::V2, parent, name).unwrap()
    }

    #[test]
    fn create_enables_controllers_down_to_the_parent() {
        let root = fixture();
        // What the kernel shows in a level once the root delegates.
        populate(
            &root.path().join("mcm"),
            &[
                ("cgroup.controllers", "cpuset cpu io memory pids\n"),
                ("cgroup.subtree_control", ""),
            ],
        );
        let cg = cgroup(root.path(), "mcm", "c1");
        cg.create().unwrap();
        assert!(root.path().join("mcm/c1").is_dir());
        assert!(cg.exists());
        let expected = "+cpu +cpuset +io +memory +pids";
        assert_eq!(read(&root.path().join("cgroup.subtree_control")), expected);
        assert_eq!(
            read(&root.path().join("mcm/cgroup.subtree_control")),
            expected
        );
        // The leaf itself delegates nothing (no internal processes rule).
        assert!(!root.path().join("mcm/c1/cgroup.subtree_control").exists());
    }

    #[test]
    fn create_asks_only_for_missing_available_controllers() {
        let root = fixture();
        populate(
            root.path(),
            &[
                ("cgroup.controllers", "cpu memory pids\n"),
                ("cgroup.subtree_control", "memory\n"),
            ],
        );
        cgroup(root.path(), "a/b", "c1").create().unwrap();
        assert_eq!(
            read(&root.path().join("cgroup.subtree_control")),
            "+cpu +pids"
        );
        assert!(root.path().join("a/b/c1").is_dir());

        // Everything already delegated: nothing written.
        populate(
            root.path(),
            &[("cgroup.subtree_control", "cpu memory pids\n")],
        );
        cgroup(root.path(), "a/b", "c2").create().unwrap();
        assert_eq!(
            read(&root.path().join("cgroup.subtree_control")),
            "cpu memory pids\n"
        );
    }

    #[test]
    fn apply_writes_every_field() {
        let root = fixture();
        let leaf = root.path().join("mcm/c1");
        populate_leaf(&leaf);
        let cg = cgroup(root.path(), "mcm", "c1");
        let (quota, period) = parse_cpus("0.5", 4).unwrap();
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(96 << 20),
            cpu_quota: Some(quota),
            cpu_period: Some(period),
            cpu_shares: Some(1024),
            cpuset_cpus: Some("0-1".into()),
            pids: Some(100),
        };
        cg.apply(&limits).unwrap();
        assert_eq!(read(&leaf.join("memory.max")), "67108864");
        assert_eq!(read(&leaf.join("memory.swap.max")), "33554432");
        assert_eq!(read(&leaf.join("cpu.max")), "50000 100000");
        assert_eq!(read(&leaf.join("cpu.weight")), "39");
        assert_eq!(read(&leaf.join("cpuset.cpus")), "0-1");
        assert_eq!(read(&leaf.join("pids.max")), "100");
        assert_eq!(
            cg.limits_in_effect().unwrap(),
            Limits {
                // Weight 39 maps back to the smallest equivalent shares.
                cpu_shares: Some(weight_to_shares(39)),
                ..limits
            }
        );
        assert_eq!(shares_to_weight(weight_to_shares(39)), 39);

        cg.apply(&Limits {
            cpu_quota: Some(-1),
            pids: Some(-1),
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(read(&leaf.join("cpu.max")), "max 100000");
        assert_eq!(read(&leaf.join("pids.max")), "max");
    }

    #[test]
    fn period_alone_keeps_the_quota() {
        let root = fixture();
        let leaf = root.path().join("mcm/c1");
        populate_leaf(&leaf);
        fs::write(leaf.join("cpu.max"), "20000 100000\n").unwrap();
        cgroup(root.path(), "mcm", "c1")
            .apply(&Limits {
                cpu_period: Some(50_000),
                ..Limits::default()
            })
            .unwrap();
        assert_eq!(read(&leaf.join("cpu.max")), "20000 50000");
    }

    #[test]
    fn swap_defaults_to_none_beyond_memory() {
        let root = fixture();
        let leaf = root.path().join("mcm/c1");
        populate_leaf(&leaf);
        let cg = cgroup(root.path(), "mcm", "c1");
        let memory_only = Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        };
        cg.apply(&memory_only).unwrap();
        assert_eq!(read(&leaf.join("memory.swap.max")), "0");
        assert_eq!(cg.limits_in_effect().unwrap().memory_swap, Some(64 << 20));

        cg.apply(&Limits {
            memory_swap: Some(-1),
            ..memory_only.clone()
        })
        .unwrap();
        assert_eq!(read(&leaf.join("memory.swap.max")), "max");
        assert_eq!(cg.limits_in_effect().unwrap().memory_swap, Some(-1));

        // No swap accounting: the file is not created, no error.
        fs::remove_file(leaf.join("memory.swap.max")).unwrap();
        cg.apply(&memory_only).unwrap();
        assert!(!leaf.join("memory.swap.max").exists());
        assert_eq!(cg.limits_in_effect().unwrap().memory_swap, None);
    }

    #[test]
    fn limits_in_effect_reads_kernel_defaults_as_none() {
        let root = fixture();
        populate_leaf(&root.path().join("mcm/c1"));
        let cg = cgroup(root.path(), "mcm", "c1");
        assert_eq!(cg.limits_in_effect().unwrap(), Limits::default());
    }

    #[test]
    fn stats_follow_docker() {
        let root = fixture();
        populate(
            &root.path().join("mcm/c1"),
            &[
                ("memory.current", "10000000\n"),
                (
                    "memory.stat",
                    "anon 5\nfile 7\ninactive_file 3000000\nactive_file 1\n",
                ),
                ("memory.max", "max\n"),
                ("memory.peak", "11000000\n"),
                ("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
                (
                    "cpu.stat",
                    "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
                ),
                ("pids.current", "2\n"),
                ("pids.max", "50\n"),
                (
                    "io.stat",
                    "8:0 rbytes=4096 wbytes=100 rios=1 wios=1 dbytes=0 dios=0\n\
                     8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
                ),
            ],
        );
        let stats = cgroup(root.path(), "mcm", "c1").stats().unwrap();
        assert_eq!(
            stats,
            Stats {
                memory_usage: 7_000_000,
                memory_limit: None,
                memory_peak: Some(11_000_000),
                cpu_usage_ns: 2_500_000,
                pids_current: 2,
                pids_limit: Some(50),
                blkio_read_bytes: 4097,
                blkio_write_bytes: 102,
                oom_events: 1,
            }
        );
    }

    #[test]
    fn freeze_waits_for_the_events_file() {
        let root = fixture();
        let leaf = root.path().join("mcm/c1");
        populate_leaf(&leaf);
        // The kernel would flip this once every task is frozen.
        fs::write(leaf.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        let cg = cgroup(root.path(), "mcm", "c1");
        cg.freeze().unwrap();
        assert_eq!(read(&leaf.join("cgroup.freeze")), "1");
        assert!(cg.is_frozen());
        cg.thaw().unwrap();
        assert_eq!(read(&leaf.join("cgroup.freeze")), "0");
    }

    #[test]
    fn kill_all_uses_cgroup_kill_only_when_needed() {
        let root = fixture();
        let leaf = root.path().join("mcm/c1");
        populate_leaf(&leaf);
        populate(&leaf, &[("cgroup.kill", "")]);
        let cg = cgroup(root.path(), "mcm", "c1");
        cg.kill_all().unwrap();
        assert_eq!(read(&leaf.join("cgroup.kill")), "");
    }

    #[test]
    fn add_pid_and_pids() {
        let root = fixture();
        let leaf = root.path().join("mcm/c1");
        populate_leaf(&leaf);
        let cg = cgroup(root.path(), "mcm", "c1");
        cg.add_pid(77).unwrap();
        assert_eq!(cg.pids().unwrap(), vec![77]);
        assert_eq!(cg.procs_files(), vec![leaf.join("cgroup.procs")]);
    }

    #[test]
    fn destroy_removes_the_leaf() {
        let root = fixture();
        let cg = cgroup(root.path(), "mcm", "c1");
        cg.create().unwrap();
        cg.destroy().unwrap();
        assert!(!cg.exists());
        assert!(root.path().join("mcm").is_dir());
    }

    #[test]
    fn malformed_cpu_max_is_reported() {
        let root = fixture();
        let leaf = root.path().join("mcm/c1");
        populate_leaf(&leaf);
        fs::write(leaf.join("cpu.max"), "garbage\n").unwrap();
        let error = cgroup(root.path(), "mcm", "c1")
            .limits_in_effect()
            .unwrap_err();
        assert!(matches!(error, CgroupError::Parse { .. }), "{error}");
    }
}
