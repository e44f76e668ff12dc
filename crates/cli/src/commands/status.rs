//! `mcm status`: one container, one readable block.

use std::time::{Duration, SystemTime};

use mcm::format::{human_bytes, short_command};
use mcm::{Limits, Result, Runtime};

use super::print;
use super::ps::status_text;
use crate::args::Ids;

/// How long the CPU percentage is measured over.
const CPU_SAMPLE: Duration = Duration::from_millis(200);

pub fn status(runtime: &Runtime, ids: Ids) -> Result<i32> {
    let mut text = String::new();
    for id in ids.all()? {
        let container = runtime.inspect(&id)?;
        let config = &container.config;
        let row = |label: &str, value: String| format!("{label:<12} {value}\n");
        text += &row("ID:", config.id.clone());
        text += &row("Name:", config.name.clone());
        text += &row(
            "State:",
            format!(
                "{} ({})",
                container.status.name(),
                status_text(&container, SystemTime::now())
            ),
        );
        let pid = container
            .run
            .as_ref()
            .filter(|_| container.status.is_alive())
            .map(|r| r.pid);
        text += &row(
            "PID:",
            pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        );
        text += &row("Image:", config.image.clone());
        text += &row("Command:", short_command(&config.command, 60));
        text += &row("Limits:", describe_limits(&config.limits));
        if container.status.is_alive() {
            let before = runtime.usage(&container)?;
            std::thread::sleep(CPU_SAMPLE);
            let now = runtime.usage(&container)?;
            let s = &now.stats;
            text += &row(
                "Memory:",
                format!(
                    "{} / {} ({:.2}%), peak {}",
                    human_bytes(s.memory_usage),
                    human_bytes(now.memory_limit()),
                    now.memory_percent(),
                    s.memory_peak.map(human_bytes).unwrap_or_else(|| "-".into())
                ),
            );
            text += &row(
                "CPU:",
                format!(
                    "{:.2}% (total {:.3}s)",
                    now.cpu_percent_since(&before),
                    s.cpu_usage_ns as f64 / 1e9
                ),
            );
            let pids_limit = s
                .pids_limit
                .map(|l| l.to_string())
                .unwrap_or_else(|| "unlimited".into());
            text += &row("PIDs:", format!("{} / {pids_limit}", s.pids_current));
            text += &row(
                "Network:",
                format!(
                    "rx {} / tx {}",
                    human_bytes(now.net_rx),
                    human_bytes(now.net_tx)
                ),
            );
            text += &row(
                "Block I/O:",
                format!(
                    "read {} / write {}",
                    human_bytes(s.blkio_read_bytes),
                    human_bytes(s.blkio_write_bytes)
                ),
            );
            text += &row("OOM events:", s.oom_events.to_string());
        } else if runtime.oom_killed(&container) {
            text += &row("OOM killed:", "yes".into());
        }
        text += "\n";
    }
    print(text.trim_end_matches('\n'))
        .and_then(|_| print("\n"))
        .map(|_| 0)
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
    if let Some(pids) = limits.pids {
        parts.push(format!("pids {pids}"));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}
