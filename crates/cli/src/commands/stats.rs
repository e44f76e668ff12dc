//! `mcm stats` (alias `monitor`): a live table like `docker stats`.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use comfy_table::{presets, Table};
use mcm::format::human_bytes;
use mcm::resources::Usage;
use mcm::runtime::Container;
use mcm::{Result, Runtime};
use serde_json::json;

use super::print;
use crate::args::{Format, StatsArgs};

/// Refresh interval of the live table.
const REFRESH: Duration = Duration::from_secs(1);
/// First CPU sample interval of a one-shot snapshot.
const FIRST_SAMPLE: Duration = Duration::from_millis(200);

pub fn stats(runtime: &Runtime, args: StatsArgs) -> Result<i32> {
    let wanted: Vec<String> = args
        .ids
        .id_flags
        .iter()
        .chain(&args.ids.ids)
        .cloned()
        .collect();
    let mut previous: HashMap<String, Usage> = HashMap::new();
    let mut first = true;
    loop {
        let containers = selected(runtime, &wanted)?;
        if first {
            for c in &containers {
                if let Ok(u) = runtime.usage(c) {
                    previous.insert(c.config.id.clone(), u);
                }
            }
            std::thread::sleep(FIRST_SAMPLE);
            first = false;
        }
        let mut rows = Vec::new();
        for c in &containers {
            let Ok(now) = runtime.usage(c) else { continue };
            let cpu = previous
                .get(&c.config.id)
                .map(|before| now.cpu_percent_since(before))
                .unwrap_or(0.0);
            rows.push((c, cpu, now.clone()));
            previous.insert(c.config.id.clone(), now);
        }
        let text = match args.format {
            Format::Json => format!(
                "{}\n",
                serde_json::to_string_pretty(&json_rows(&rows)).unwrap_or_default()
            ),
            Format::Table => table(&rows),
        };
        if args.no_stream {
            return print(&text).map(|_| 0);
        }
        // Clear the screen and redraw, like `docker stats`; stop quietly
        // once the reader is gone (`mcm stats | head`).
        if !write_frame(&format!("\x1b[2J\x1b[H{text}"))? {
            return Ok(0);
        }
        std::thread::sleep(REFRESH);
    }
}

/// Writes one frame to stdout; false when stdout is a closed pipe.
fn write_frame(text: &str) -> Result<bool> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(mcm::Error::io("write", "stdout")(e)),
    }
}

/// The running containers named (all running ones when none is named).
fn selected(runtime: &Runtime, wanted: &[String]) -> Result<Vec<Container>> {
    if wanted.is_empty() {
        return Ok(runtime
            .list()?
            .containers
            .into_iter()
            .filter(|c| c.status.is_alive())
            .collect());
    }
    wanted.iter().map(|id| runtime.inspect(id)).collect()
}

fn table(rows: &[(&Container, f64, Usage)]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header([
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]);
    for (c, cpu, u) in rows {
        table.add_row([
            c.config.short_id().to_string(),
            c.config.name.clone(),
            format!("{cpu:.2}%"),
            format!(
                "{} / {}",
                human_bytes(u.stats.memory_usage),
                human_bytes(u.memory_limit())
            ),
            format!("{:.2}%", u.memory_percent()),
            format!("{} / {}", human_bytes(u.net_rx), human_bytes(u.net_tx)),
            format!(
                "{} / {}",
                human_bytes(u.stats.blkio_read_bytes),
                human_bytes(u.stats.blkio_write_bytes)
            ),
            u.stats.pids_current.to_string(),
        ]);
    }
    table.lines().map(|l| format!("{}\n", l.trim())).collect()
}

fn json_rows(rows: &[(&Container, f64, Usage)]) -> serde_json::Value {
    rows.iter()
        .map(|(c, cpu, u)| {
            json!({
                "ID": c.config.id,
                "Name": c.config.name,
                "CPUPercent": cpu,
                "MemUsage": u.stats.memory_usage,
                "MemLimit": u.memory_limit(),
                "MemPercent": u.memory_percent(),
                "NetRx": u.net_rx,
                "NetTx": u.net_tx,
                "BlockRead": u.stats.blkio_read_bytes,
                "BlockWrite": u.stats.blkio_write_bytes,
                "PIDs": u.stats.pids_current,
                "PIDsLimit": u.stats.pids_limit,
                "OOMEvents": u.stats.oom_events,
            })
        })
        .collect()
}
