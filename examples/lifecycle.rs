//! Manage a container from Rust without the CLI: run, inspect, stop, remove.
//!
//! ```text
//! cargo build --release && sudo target/release/examples/lifecycle [STATE_ROOT]
//! ```
//! (The example finds `mcm-executor` next to itself, or in `MCM_HELPER_DIR`;
//! run it with `MCM_HELPER_DIR=target/release`.)

use std::time::Duration;

use mcm::{RunSpec, Runtime};

fn main() -> Result<(), mcm::Error> {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/var/lib/mcm".into());
    let runtime = Runtime::open(root)?;

    let mut spec = RunSpec::new(
        "busybox",
        &["sh", "-c", "echo hello from $(hostname); sleep 60"],
    );
    spec.name = Some(format!("example-{}", std::process::id()));
    let container = runtime.run(&spec)?;
    println!(
        "started {} ({}), pid {:?}",
        container.config.short_id(),
        container.config.name,
        container.run.map(|r| r.pid)
    );

    for c in runtime.list()?.containers {
        println!(
            "  {} {:<20} {}",
            c.config.short_id(),
            c.config.name,
            c.status.name()
        );
    }

    runtime.stop(&container.config.id, Duration::from_secs(2))?;
    println!("after stop: {:?}", runtime.status(&container.config.id)?);
    runtime.remove(&container.config.id, false)?;
    println!("removed");
    Ok(())
}
