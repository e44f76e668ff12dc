//! Resource limits, pause/unpause, live limit updates and usage figures.

use std::fs;
use std::time::Instant;

use mcm_common::cgroups::{self, Cgroup, Limits, Stats};
use mcm_common::container::{NetworkMode, Status};
use mcm_common::store;

use crate::error::{Error, Result};
use crate::format::human_bytes;
use crate::runtime::{Container, Runtime};

/// Limit flags as the user typed them (`--memory 100m`, `--cpus 0.5`, ...).
#[derive(Debug, Clone, Default)]
pub struct LimitFlags {
    pub memory: Option<String>,
    pub memory_swap: Option<String>,
    pub cpus: Option<String>,
    pub cpu_shares: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<String>,
}

impl LimitFlags {
    /// True when no limit flag was given.
    pub fn is_empty(&self) -> bool {
        let LimitFlags {
            memory,
            memory_swap,
            cpus,
            cpu_shares,
            cpuset_cpus,
            pids_limit,
        } = self;
        [
            memory,
            memory_swap,
            cpus,
            cpu_shares,
            cpuset_cpus,
            pids_limit,
        ]
        .iter()
        .all(|flag| flag.is_none())
    }

    /// The limits of a new container: every flag checked alone and against
    /// the others, so a bad combination is refused before anything is
    /// created.
    pub fn parse_for_run(&self) -> Result<Limits> {
        let limits = self.parse()?;
        self.check_combination(&limits)?;
        Ok(limits)
    }

    /// Refuses limits that contradict each other (`--memory-swap` below
    /// `--memory`, or without it), naming the values as they were typed;
    /// `limits` may hold a container's older limits under these flags.
    pub fn check_combination(&self, limits: &Limits) -> Result<()> {
        if limits.validate().is_ok() {
            return Ok(());
        }
        let show = |flag: &Option<String>, value: String| flag.clone().unwrap_or(value);
        let memory = limits.memory.map(|m| show(&self.memory, human_bytes(m)));
        let swap = show(
            &self.memory_swap,
            human_bytes(limits.memory_swap.unwrap_or_default().max(0) as u64),
        );
        Err(match memory {
            // --memory given alone under an older, explicit --memory-swap.
            Some(memory) if self.memory_swap.is_none() => Error::InvalidValue {
                what: "--memory",
                value: memory,
                reason: format!(
                    "above the container's memory+swap limit {swap}: change --memory-swap as well"
                ),
            },
            Some(memory) => Error::InvalidValue {
                what: "--memory-swap",
                value: swap,
                reason: format!("must be -1 or at least the memory limit {memory}"),
            },
            None => Error::InvalidValue {
                what: "--memory-swap",
                value: swap,
                reason: "needs a memory limit (--memory)".into(),
            },
        })
    }

    /// Parses and checks every given flag on its own; refuses bad values
    /// before anything is created or changed.
    pub fn parse(&self) -> Result<Limits> {
        fn field<T>(
            what: &'static str,
            value: &Option<String>,
            parse: impl Fn(&str) -> std::result::Result<T, String>,
        ) -> Result<Option<T>> {
            value
                .as_deref()
                .map(|v| {
                    parse(v).map_err(|reason| Error::InvalidValue {
                        what,
                        value: v.to_string(),
                        reason,
                    })
                })
                .transpose()
        }
        let cpus = field("--cpus", &self.cpus, |v| {
            cgroups::parse_cpus(v, cgroups::available_cpus())
        })?;
        let cpuset = field("--cpuset-cpus", &self.cpuset_cpus, parse_cpuset)?;
        Ok(Limits {
            memory: field("--memory", &self.memory, cgroups::parse_memory_limit)?,
            memory_swap: field(
                "--memory-swap",
                &self.memory_swap,
                cgroups::parse_memory_swap,
            )?,
            cpu_quota: cpus.map(|(quota, _)| quota),
            cpu_period: cpus.map(|(_, period)| period),
            cpu_shares: field("--cpu-shares", &self.cpu_shares, cgroups::parse_cpu_shares)?,
            cpuset_cpus: cpuset,
            pids: field("--pids-limit", &self.pids_limit, cgroups::parse_pids_limit)?,
        })
    }
}

/// A cpuset list (`0-2,4`) naming only CPUs that are online on this host.
fn parse_cpuset(text: &str) -> std::result::Result<String, String> {
    let wanted = parse_cpu_list(text).ok_or("expected a CPU list like 0-2,4")?;
    let online = fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|list| parse_cpu_list(list.trim()))
        .unwrap_or_else(|| (0..cgroups::available_cpus() as u32).collect());
    match wanted.iter().find(|cpu| !online.contains(cpu)) {
        Some(cpu) => Err(format!(
            "CPU {cpu} is not online (online: {})",
            fs::read_to_string("/sys/devices/system/cpu/online")
                .map(|list| list.trim().to_string())
                .unwrap_or_else(|_| format!("{} CPUs", online.len()))
        )),
        None => Ok(text.to_string()),
    }
}

/// The CPUs of a cpuset list (`0-2,4`), `None` when malformed.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        let (low, high) = (low.trim().parse::<u32>().ok()?, high.trim().parse().ok()?);
        if low > high || high - low > 65_536 {
            return None;
        }
        cpus.extend(low..=high);
    }
    Some(cpus)
}

/// `new` on top of `old`: only the limits given in `new` change.
pub fn merge_limits(old: &Limits, new: &Limits) -> Limits {
    Limits {
        memory: new.memory.or(old.memory),
        memory_swap: new.memory_swap.or(old.memory_swap),
        cpu_quota: new.cpu_quota.or(old.cpu_quota),
        cpu_period: new.cpu_period.or(old.cpu_period),
        cpu_shares: new.cpu_shares.or(old.cpu_shares),
        cpuset_cpus: new.cpuset_cpus.clone().or(old.cpuset_cpus.clone()),
        pids: new.pids.or(old.pids),
    }
}

/// What a container uses at one moment.
#[derive(Debug, Clone)]
pub struct Usage {
    pub stats: Stats,
    /// Bytes received and sent in the container's network namespace.
    pub net_rx: u64,
    pub net_tx: u64,
    /// The host's total CPU time (all CPUs), for CPU percentages.
    pub system_cpu_ns: u64,
    pub online_cpus: usize,
    pub taken_at: Instant,
}

impl Usage {
    /// Docker's CPU %: container CPU delta over host CPU delta, times the
    /// number of CPUs, times 100.
    pub fn cpu_percent_since(&self, before: &Usage) -> f64 {
        let container = self
            .stats
            .cpu_usage_ns
            .saturating_sub(before.stats.cpu_usage_ns) as f64;
        let system = self.system_cpu_ns.saturating_sub(before.system_cpu_ns) as f64;
        if system <= 0.0 {
            return 0.0;
        }
        container / system * self.online_cpus as f64 * 100.0
    }

    /// Memory use as a percentage of the limit (or of the host's memory).
    pub fn memory_percent(&self) -> f64 {
        let limit = self.memory_limit();
        if limit == 0 {
            return 0.0;
        }
        self.stats.memory_usage as f64 / limit as f64 * 100.0
    }

    /// The memory limit, or the host's memory when unlimited (as Docker).
    pub fn memory_limit(&self) -> u64 {
        self.stats.memory_limit.unwrap_or_else(host_memory)
    }
}

/// The host's CPU time and online CPU count, from `/proc/stat`.
fn system_cpu() -> (u64, usize) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let (ticks, cpus) = parse_proc_stat(&stat);
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (
        ticks.saturating_mul(1_000_000_000 / hz),
        cpus.unwrap_or_else(cgroups::available_cpus),
    )
}

/// Clock ticks of all CPUs together, as Docker sums them (user, nice,
/// system, idle, iowait, irq, softirq: guest time is already in user), and
/// the number of per-CPU lines (online CPUs), `None` when there are none.
pub fn parse_proc_stat(content: &str) -> (u64, Option<usize>) {
    let ticks = content
        .lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .map(|fields| {
            fields
                .split_whitespace()
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let cpus = content
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    (ticks, (cpus > 0).then_some(cpus))
}

fn host_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// Received and sent bytes over the interfaces of `/proc/PID/net/dev`.
pub fn parse_net_dev(content: &str) -> (u64, u64) {
    content
        .lines()
        .skip(2)
        .filter_map(|line| {
            let (_, counters) = line.split_once(':')?;
            let fields: Vec<u64> = counters
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            Some((*fields.first()?, *fields.get(8)?))
        })
        .fold((0, 0), |(rx, tx), (r, t)| (rx + r, tx + t))
}

impl Runtime {
    /// Freezes every process of a running container.
    pub fn pause(&self, query: &str) -> Result<String> {
        self.with_live_cgroup(
            query,
            Status::Running,
            "only a running container can be paused",
            |cg| cg.freeze(),
        )
    }

    /// Thaws a paused container.
    pub fn unpause(&self, query: &str) -> Result<String> {
        self.with_live_cgroup(
            query,
            Status::Paused,
            "only a paused container can be unpaused",
            |cg| cg.thaw(),
        )
    }

    fn with_live_cgroup(
        &self,
        query: &str,
        wanted: Status,
        hint: &'static str,
        action: impl FnOnce(&Cgroup) -> std::result::Result<(), cgroups::CgroupError>,
    ) -> Result<String> {
        let id = self.resolve(query)?;
        let _lock = self.lock(&id)?;
        let container = self.inspect(&id)?;
        if container.status != wanted {
            return Err(Error::WrongState {
                id: container.config.short_id().to_string(),
                state: container.status.name(),
                hint,
            });
        }
        action(&Cgroup::for_host(&container.config.cgroup_parent, &id)?)?;
        Ok(id)
    }

    /// Changes a container's limits to those given in `flags` (the others
    /// are kept); live when it runs, and for its next start in any case.
    pub fn update(&self, query: &str, flags: &LimitFlags) -> Result<String> {
        let limits = &flags.parse()?;
        let id = self.resolve(query)?;
        let _lock = self.lock(&id)?;
        let container = self.inspect(&id)?;
        let mut config = container.config.clone();
        let merged = merge_limits(&config.limits, limits);
        flags.check_combination(&merged)?;
        if container.status.is_alive() {
            Cgroup::for_host(&config.cgroup_parent, &id)?.apply(&merged)?;
        }
        config.limits = merged;
        store::write_json(&container.dir.config(), &config)?;
        Ok(id)
    }

    /// A usage snapshot of a running container.
    pub fn usage(&self, container: &Container) -> Result<Usage> {
        let stats =
            Cgroup::for_host(&container.config.cgroup_parent, &container.config.id)?.stats()?;
        let (net_rx, net_tx) = match (&container.run, container.config.network) {
            (Some(run), NetworkMode::None) if container.status.is_alive() => {
                fs::read_to_string(format!("/proc/{}/net/dev", run.pid))
                    .map(|c| parse_net_dev(&c))
                    .unwrap_or((0, 0))
            }
            _ => (0, 0),
        };
        let (system_cpu_ns, online_cpus) = system_cpu();
        Ok(Usage {
            stats,
            net_rx,
            net_tx,
            system_cpu_ns,
            online_cpus,
            taken_at: Instant::now(),
        })
    }

    /// The cgroup figures of a container's current or last run, `None`
    /// once its cgroup is gone (never started, or a failed start).
    pub fn last_stats(&self, container: &Container) -> Option<Stats> {
        Cgroup::for_host(&container.config.cgroup_parent, &container.config.id)
            .and_then(|cg| cg.stats())
            .ok()
    }

    /// True when the container's last run ended by the OOM killer: it
    /// exited with 137 (SIGKILL) and its cgroup, which is fresh for every
    /// run and kept until `rm`, counted an OOM kill.
    pub fn oom_killed(&self, container: &Container) -> bool {
        matches!(container.status, Status::Exited { exit_code: 137, .. })
            && self.last_stats(container).is_some_and(|s| s.oom_events > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_into_limits() {
        let flags = LimitFlags {
            memory: Some("100M".into()),
            cpus: Some("0.5".into()),
            pids_limit: Some("20".into()),
            ..LimitFlags::default()
        };
        let limits = flags.parse().unwrap();
        assert_eq!(limits.memory, Some(100 * 1024 * 1024));
        assert_eq!(
            (limits.cpu_quota, limits.cpu_period),
            (Some(50_000), Some(100_000))
        );
        assert_eq!(limits.pids, Some(20));
    }

    #[test]
    fn bad_flags_are_refused_with_their_value() {
        for flags in [
            LimitFlags {
                memory: Some("12x".into()),
                ..Default::default()
            },
            LimitFlags {
                memory: Some("1m".into()),
                ..Default::default()
            },
            LimitFlags {
                cpus: Some("-1".into()),
                ..Default::default()
            },
            LimitFlags {
                cpus: Some("999".into()),
                ..Default::default()
            },
            LimitFlags {
                pids_limit: Some("0".into()),
                ..Default::default()
            },
            LimitFlags {
                cpuset_cpus: Some("0-999".into()),
                ..Default::default()
            },
            LimitFlags {
                cpuset_cpus: Some("two".into()),
                ..Default::default()
            },
            LimitFlags {
                cpu_shares: Some("lots".into()),
                ..Default::default()
            },
            LimitFlags {
                memory_swap: Some("-2".into()),
                ..Default::default()
            },
        ] {
            let err = flags.parse().unwrap_err().to_string();
            assert!(err.contains("invalid"), "{err}");
        }
    }

    #[test]
    fn flag_sizes_and_aliases_parse() {
        for (text, bytes) in [
            ("64m", 64 << 20),
            ("100M", 100 << 20),
            ("1g", 1 << 30),
            ("512MiB", 512 << 20),
            ("7340032", 7 << 20),
        ] {
            let flags = LimitFlags {
                memory: Some(text.into()),
                ..LimitFlags::default()
            };
            assert_eq!(flags.parse().unwrap().memory, Some(bytes), "{text}");
        }
        let unlimited = LimitFlags {
            memory: Some("64m".into()),
            memory_swap: Some("-1".into()),
            pids_limit: Some("-1".into()),
            ..LimitFlags::default()
        };
        let limits = unlimited.parse_for_run().unwrap();
        assert_eq!((limits.memory_swap, limits.pids), (Some(-1), Some(-1)));
        assert!(LimitFlags::default().is_empty());
        assert!(!unlimited.is_empty());
    }

    #[test]
    fn contradicting_swap_is_refused_with_the_typed_values() {
        let below = LimitFlags {
            memory: Some("64m".into()),
            memory_swap: Some("32m".into()),
            ..LimitFlags::default()
        };
        let err = below.parse_for_run().unwrap_err().to_string();
        assert!(
            err.contains("--memory-swap") && err.contains("\"32m\"") && err.contains("64m"),
            "{err}"
        );
        let alone = LimitFlags {
            memory_swap: Some("100m".into()),
            ..LimitFlags::default()
        };
        let err = alone.parse_for_run().unwrap_err().to_string();
        assert!(err.contains("needs a memory limit"), "{err}");
        // An update raising --memory above the container's --memory-swap.
        let update = LimitFlags {
            memory: Some("256m".into()),
            ..LimitFlags::default()
        };
        let old = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            ..Limits::default()
        };
        let merged = merge_limits(&old, &update.parse().unwrap());
        let err = update.check_combination(&merged).unwrap_err().to_string();
        assert!(
            err.contains("--memory \"256m\"") && err.contains("128MiB"),
            "{err}"
        );
        // Without an explicit swap limit, memory may go anywhere.
        let old = Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        };
        update
            .check_combination(&merge_limits(&old, &update.parse().unwrap()))
            .unwrap();
    }

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("0-2,4"), Some(vec![0, 1, 2, 4]));
        for bad in ["", "x", "2-1", "0-", "-1", "0,,1", "0-4294967295"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad}");
        }
    }

    #[test]
    fn proc_stat_sums_as_docker() {
        let stat = "cpu  10 1 5 100 2 0 3 7 4 0\ncpu0 5 1 2 50 1 0 2 3 2 0\ncpu1 5 0 3 50 1 0 1 4 2 0\nintr 1 2\nctxt 3\n";
        // user..softirq; steal, guest and guest_nice left out.
        assert_eq!(parse_proc_stat(stat), (121, Some(2)));
        assert_eq!(parse_proc_stat(""), (0, None));
    }

    #[test]
    fn cpu_percent_is_docker_formula() {
        let at = |cpu_ns, system_ns| Usage {
            stats: Stats {
                cpu_usage_ns: cpu_ns,
                ..Stats::default()
            },
            net_rx: 0,
            net_tx: 0,
            system_cpu_ns: system_ns,
            online_cpus: 4,
            taken_at: Instant::now(),
        };
        // Half a CPU busy on a 4-CPU host over 1 s: 0.5 s of 4 s of host time.
        let percent =
            at(1_500_000_000, 14_000_000_000).cpu_percent_since(&at(1_000_000_000, 10_000_000_000));
        assert!((percent - 50.0).abs() < 1e-9, "{percent}");
        assert_eq!(at(5, 5).cpu_percent_since(&at(5, 5)), 0.0);
    }

    #[test]
    fn updates_merge_over_old_limits() {
        let old = Limits {
            memory: Some(1),
            pids: Some(5),
            ..Limits::default()
        };
        let new = Limits {
            pids: Some(9),
            ..Limits::default()
        };
        let merged = merge_limits(&old, &new);
        assert_eq!((merged.memory, merged.pids), (Some(1), Some(9)));
    }

    #[test]
    fn net_dev_sums_interfaces() {
        let content = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n    lo: 100 2 0 0 0 0 0 0 200 2 0 0 0 0 0 0\n  eth0: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(content), (105, 207));
    }
}
