//! Resource limits, pause/unpause, live limit updates and usage figures.

use std::fs;
use std::time::Instant;

use mcm_common::cgroups::{self, Cgroup, Limits, Stats};
use mcm_common::container::{NetworkMode, Status};
use mcm_common::store::{self, Lock};

use crate::error::{Error, Result};
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
    /// Parses and checks every given flag; refuses bad values before
    /// anything is created.
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

/// A cpuset list (`0-2,4`) naming only CPUs this host has.
fn parse_cpuset(text: &str) -> std::result::Result<String, String> {
    let host = cgroups::available_cpus() as u32;
    for part in text.split(',') {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        let (Ok(low), Ok(high)) = (low.trim().parse::<u32>(), high.trim().parse::<u32>()) else {
            return Err("expected a CPU list like 0-2,4".into());
        };
        if low > high || high >= host {
            return Err(format!("this host has CPUs 0-{}", host.saturating_sub(1)));
        }
    }
    Ok(text.to_string())
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

/// Total CPU time of the host from /proc/stat, in nanoseconds.
fn system_cpu_ns() -> u64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let ticks: u64 = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
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
        let container = self.inspect(&id)?;
        let _lock = Lock::exclusive(&container.dir.lock())?;
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

    /// Changes a container's limits; live when it runs, and for its next
    /// start in any case.
    pub fn update(&self, query: &str, limits: &Limits) -> Result<String> {
        let id = self.resolve(query)?;
        let container = self.inspect(&id)?;
        let _lock = Lock::exclusive(&container.dir.lock())?;
        let mut config = self.inspect(&id)?.config;
        let merged = merge_limits(&config.limits, limits);
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
        Ok(Usage {
            stats,
            net_rx,
            net_tx,
            system_cpu_ns: system_cpu_ns(),
            online_cpus: cgroups::available_cpus(),
            taken_at: Instant::now(),
        })
    }

    /// True when the container's last run ended by the OOM killer.
    pub fn oom_killed(&self, container: &Container) -> bool {
        matches!(container.status, Status::Exited { exit_code: 137, .. })
            && Cgroup::for_host(&container.config.cgroup_parent, &container.config.id)
                .and_then(|cg| cg.stats())
                .is_ok_and(|s| s.oom_events > 0)
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
        ] {
            let err = flags.parse().unwrap_err().to_string();
            assert!(err.contains("invalid"), "{err}");
        }
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
