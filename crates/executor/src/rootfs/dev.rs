//! A minimal /dev: a tmpfs with the usual character devices, a private
//! devpts instance, /dev/shm and /dev/mqueue.

use std::os::unix::fs::symlink;
use std::path::Path;

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid};

use super::{ensure_dir, mount_at};
use crate::error::{SetupError, SetupResult};
use mcm_common::container::DeviceConfig;
use nix::mount::MsFlags;

/// The device nodes every container gets: (name, major, minor).
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Group owning pty slaves, as in every distribution's /etc/group.
const TTY_GID: u32 = 5;

/// Mounts and fills `/dev` under the new root: the standard nodes, or
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
            MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )?;
        for (name, major, minor) in DEVICES {
            make_node(&dev.join(name), SFlag::S_IFCHR, major, minor, 0o666)?;
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
        let kind = if device.kind == 'b' {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFCHR
        };
        make_node(&path, kind, device.major, device.minor, device.mode)?;
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
    } else {
        // The console device belongs to the tty group like on a host.
        let _ = chown(&dev.join("tty"), None, Some(Gid::from_raw(TTY_GID)));
    }
    Ok(())
}

/// mknod, then chmod: mknod is subject to the umask.
fn make_node(path: &Path, kind: SFlag, major: u64, minor: u64, mode: u32) -> SetupResult<()> {
    let mode = Mode::from_bits_truncate(mode);
    mknod(path, kind, mode, makedev(major, minor))
        .map_err(|errno| SetupError::io("create device", path, errno.into()))?;
    nix::sys::stat::fchmodat(
        None,
        path,
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|errno| SetupError::io("chmod", path, errno.into()))
}
