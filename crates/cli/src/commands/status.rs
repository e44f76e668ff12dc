//! `mcm status`: one container, one readable block.
//!
//! The CPU percentage is Docker's (container CPU time over host CPU time,
//! times the CPU count) measured over [`CPU_SAMPLE`]; the total is the CPU
//! time of the whole run.

use std::time::{Duration, SystemTime};

use mcm::format::{human_bytes, human_duration, short_command};
use mcm::runtime::Container;
use mcm::{Limits, NetworkMode, Result, Runtime, Status};
use mcm_common::container::from_unix_nanos;

use super::print;
use super::ps::status_text;
use crate::args::Ids;

/// How long the CPU percentage is measured over.
const CPU_SAMPLE: Duration = Duration::from_millis(200);

pub fn status(runtime: &Runtime, ids: Ids) -> Result<i32> {
    let mut blocks = Vec::new();
    for id in ids.all()? {
        blocks.push(block(runtime, &runtime.inspect(&id)?)?);
    }
    print(&(blocks.join("\n"))).map(|_| 0)
}

/// The status block of one container.
fn block(runtime: &Runtime, container: &Container) -> Result<String> {
    let config = &container.config;
    let now = SystemTime::now();
    let mut text = String::new();
    let mut row = |label: &str, value: String| text += &format!("{label:<12} {value}\n");
    row("ID:", config.id.clone());
    row("Name:", config.name.clone());
    row(
        "State:",
        format!(
            "{} ({})",
            container.status.name(),
            status_text(container, now)
        ),
    );
    let run = container
        .run
        .as_ref()
        .filter(|_| container.status.is_alive());
    row(
        "PID:",
        run.map(|r| r.pid.to_string()).unwrap_or_else(|| "-".into()),
    );
    if let Some(run) = run {
        let up = now
            .duration_since(from_unix_nanos(run.started_at))
            .unwrap_or_default();
        row(
            "Uptime:",
            format!("{} ({}s)", human_duration(up), up.as_secs()),
        );
    }
    row("Image:", config.image.clone());
    row("Command:", short_command(&config.command, 60));
    row("Limits:", describe_limits(&config.limits));
    if container.status.is_alive() {
        let before = runtime.usage(container)?;
        std::thread::sleep(CPU_SAMPLE);
        let now = runtime.usage(container)?;
        let s = &now.stats;
        row(
            "Memory:",
            format!(
                "{} / {} ({:.2}%), peak {}",
                human_bytes(s.memory_usage),
                human_bytes(now.memory_limit()),
                now.memory_percent(),
                s.memory_peak.map(human_bytes).unwrap_or_else(|| "-".into())
            ),
        );
        row(
            "CPU:",
            format!(
                "{:.2}% over {}ms (total {:.3}s)",
                now.cpu_percent_since(&before),
                CPU_SAMPLE.as_millis(),
                s.cpu_usage_ns as f64 / 1e9
            ),
        );
        let pids_limit = s
            .pids_limit
            .map(|l| l.to_string())
            .unwrap_or_else(|| "unlimited".into());
        row("PIDs:", format!("{} / {pids_limit}", s.pids_current));
        row(
            "Network:",
            match config.network {
                NetworkMode::None => format!(
                    "rx {} / tx {}",
                    human_bytes(now.net_rx),
                    human_bytes(now.net_tx)
                ),
                NetworkMode::Host => "host network (not counted per container)".into(),
            },
        );
        row(
            "Block I/O:",
            format!(
                "read {} / write {}",
                human_bytes(s.blkio_read_bytes),
                human_bytes(s.blkio_write_bytes)
            ),
        );
        row("OOM events:", s.oom_events.to_string());
    } else {
        if let Status::Exited { exit_code, .. } = container.status {
            row("Exit code:", exit_code.to_string());
            row(
                "OOM killed:",
                if runtime.oom_killed(container) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
            );
        }
        // The last run's cgroup stays until `rm`.
        if let Some(s) = runtime.last_stats(container) {
            row(
                "Memory:",
                format!(
                    "peak {}",
                    s.memory_peak.map(human_bytes).unwrap_or_else(|| "-".into())
                ),
            );
            row("CPU:", format!("total {:.3}s", s.cpu_usage_ns as f64 / 1e9));
            row("OOM events:", s.oom_events.to_string());
        }
    }
    Ok(text)
}

fn describe_limits(limits: &Limits) -> String {
    let mut parts = Vec::new();
    if let Some(memory) = limits.memory {
        parts.push(format!("memory {}", human_bytes(memory)));
    }
    match limits.memory_swap {
        Some(-1) => parts.push("swap unlimited".into()),
        Some(swap) => parts.push(format!("memory+swap {}", human_bytes(swap as u64))),
        None => {}
    }
    if let (Some(quota), Some(period)) = (limits.cpu_quota, limits.cpu_period) {
        parts.push(format!("cpus {}", quota as f64 / period as f64));
    }
    if let Some(shares) = limits.cpu_shares {
        parts.push(format!("cpu-shares {shares}"));
    }
    if let Some(cpuset) = &limits.cpuset_cpus {
        parts.push(format!("cpuset {cpuset}"));
    }
    if let Some(pids) = limits.pids.filter(|p| *p > 0) {
        parts.push(format!("pids {pids}"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}
