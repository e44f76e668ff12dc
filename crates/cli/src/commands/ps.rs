//! `mcm ps` / `mcm list`.

use std::time::SystemTime;

use comfy_table::{presets, Table};
use mcm::format::{human_duration, short_command};
use mcm::runtime::Container;
use mcm::{Result, Runtime, Status};
use mcm_common::container::from_unix_nanos;

use super::inspect::to_json;
use super::print;
use crate::args::{Format, PsArgs};

pub fn ps(runtime: &Runtime, args: PsArgs, all: bool) -> Result<i32> {
    let listing = runtime.list()?;
    for (id, error) in &listing.broken {
        eprintln!("mcm: skipping container {id}: {error}");
    }
    let shown: Vec<&Container> = listing
        .containers
        .iter()
        .filter(|c| all || args.all || c.status.is_alive())
        .collect();
    if args.quiet {
        let ids: String = shown
            .iter()
            .map(|c| format!("{}\n", c.config.short_id()))
            .collect();
        return print(&ids).map(|_| 0);
    }
    if args.format == Format::Json {
        let array: Vec<_> = shown.iter().map(|c| to_json(c)).collect();
        return print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&array).unwrap_or_default()
        ))
        .map(|_| 0);
    }
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header([
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PID",
    ]);
    let now = SystemTime::now();
    for c in shown {
        let pid = match (&c.status, &c.run) {
            (s, Some(run)) if s.is_alive() => run.pid.to_string(),
            _ => "-".into(),
        };
        table.add_row([
            c.config.short_id().to_string(),
            c.config.name.clone(),
            c.config.image.clone(),
            short_command(&c.config.command, 20),
            format!("{} ago", ago(now, c.config.created)),
            status_text(c, now),
            pid,
        ]);
    }
    // comfy-table pads with one space per side; Docker aligns flush left.
    let text: String = table
        .lines()
        .map(|line| format!("{}\n", line.trim().trim_end()))
        .collect();
    print(&text).map(|_| 0)
}

fn ago(now: SystemTime, nanos: u128) -> String {
    human_duration(
        now.duration_since(from_unix_nanos(nanos))
            .unwrap_or_default(),
    )
}

/// "Up 2 minutes", "Up 3 seconds (Paused)", "Exited (0) 5 seconds ago", "Created".
pub fn status_text(c: &Container, now: SystemTime) -> String {
    let started = c.run.as_ref().map(|r| r.started_at).unwrap_or(0);
    match c.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", ago(now, started)),
        Status::Paused => format!("Up {} (Paused)", ago(now, started)),
        Status::Exited {
            exit_code,
            finished_at: Some(at),
        } => format!("Exited ({exit_code}) {} ago", ago(now, at)),
        Status::Exited { exit_code, .. } => format!("Exited ({exit_code})"),
    }
}
