//! Docker's masked and read-only paths: kernel interfaces under /proc and
//! /sys that a container must neither read (they leak host information)
//! nor write (they reconfigure the host).

use std::fs;
use std::path::Path;

use nix::mount::MsFlags;

use super::mount_at;
use crate::error::SetupResult;

/// Hidden: an empty read-only tmpfs over directories, /dev/null over files.
const MASKED: [&str; 11] = [
    "proc/asound",
    "proc/acpi",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Visible but read-only.
const READ_ONLY: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// Masks and write-protects under `root` (the new root, before pivot).
pub fn apply(root: &Path) -> SetupResult<()> {
    for path in READ_ONLY {
        let target = root.join(path);
        if target.exists() {
            mount_at(
                Some(&target),
                &target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            mount_at(
                None::<&str>,
                &target,
                None,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                None,
            )?;
        }
    }
    let null = root.join("dev/null");
    for path in MASKED {
        let target = root.join(path);
        match fs::metadata(&target) {
            Ok(meta) if meta.is_dir() => mount_at(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )?,
            Ok(_) => mount_at(Some(&null), &target, None, MsFlags::MS_BIND, None)?,
            Err(_) => {}
        }
    }
    Ok(())
}
