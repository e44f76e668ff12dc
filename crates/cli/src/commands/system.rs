//! `mcm system prune`.

use mcm::{Result, Runtime};

use super::print;
use crate::args::SystemCommand;

pub fn system(runtime: &Runtime, command: SystemCommand) -> Result<i32> {
    match command {
        SystemCommand::Prune { force: _ } => {
            let report = runtime.prune()?;
            let mut text = String::new();
            for (what, items) in [
                ("container", &report.containers),
                (
                    "state directory of an interrupted create",
                    &report.state_dirs,
                ),
                ("dangling cgroup", &report.cgroups),
            ] {
                for item in items {
                    text += &format!("removed {what} {item}\n");
                }
            }
            let total = report.containers.len() + report.state_dirs.len() + report.cgroups.len();
            text += &format!("{total} item(s) removed\n");
            print(&text).map(|_| 0)
        }
    }
}
