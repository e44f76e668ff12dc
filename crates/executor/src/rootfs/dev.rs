//! A minimal /dev: a tmpfs with the usual character devices, a private
//! devpts instance, /dev/shm and /dev/mqueue.
//!
//! The tmpfs is mounted `nodev` and each device is a bind mount of the
//! host's node: a device node the container creates itself (it holds
//! CAP_MKNOD, as under Docker) cannot be opened anywhere, on cgroup v1 and
//! v2 alike, so `mknod /dev/sda` does not reach the host's disk.

use std::fs::OpenOptions;
use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::MsFlags;

use super::{ensure_dir, mount_at};
use crate::error::{SetupError, SetupResult};
use mcm_common::container::DeviceConfig;

/// The devices every container gets, bound from the host's /dev.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Group owning pty slaves, as in every distribution's /etc/group.
const TTY_GID: u32 = 5;

/// Mounts and fills `/dev` under the new root: the standard devices, or
/// every host device for `--privileged`, plus `extra` devices.
pub fn populate(dev: &Path, host_devices: bool, extra: &[DeviceConfig]) -> SetupResult<()> {
    if host_devices {
        mount_at(
            Some("devtmpfs"),
            dev,
            Some("devtmpfs"),
            MsFlags::MS_NOSUID,
            None,
        )?;
    } else {
        mount_at(
            Some("tmpfs"),
            dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )?;
        for name in DEVICES {
            bind_device(&Path::new("/dev").join(name), &dev.join(name))?;
        }
        for (name, target) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            let path = dev.join(name);
            symlink(target, &path).map_err(|e| SetupError::io("create symlink", &path, e))?;
        }
    }
    for device in extra {
        let relative = device
            .path
            .trim_start_matches("/dev/")
            .trim_start_matches('/');
        let path = dev.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| SetupError::io("create directory", parent, e))?;
        }
        bind_device(&device.host, &path)?;
    }
    let pts = ensure_dir(dev, "pts")?;
    mount_at(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(&format!(
            "newinstance,ptmxmode=0666,mode=0620,gid={TTY_GID}"
        )),
    )?;
    let shm = ensure_dir(dev, "shm")?;
    mount_at(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    let mqueue = ensure_dir(dev, "mqueue")?;
    mount_at(
        Some("mqueue"),
        &mqueue,
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    if host_devices {
        // devtmpfs's ptmx belongs to the host's devpts: use the private one.
        mount_at(
            Some(&pts.join("ptmx")),
            &dev.join("ptmx"),
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    Ok(())
}

/// Bind-mounts the host device node `host` onto a new file at `target`.
fn bind_device(host: &Path, target: &Path) -> SetupResult<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target)
        .map_err(|e| SetupError::io("create", target, e))?;
    mount_at(Some(host), target, None, MsFlags::MS_BIND, None)
}
