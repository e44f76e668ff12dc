//! User mounts (`-v`, `--mount`, `--tmpfs`) and the read-only root.
//!
//! A destination is resolved inside the container root with openat2's
//! RESOLVE_IN_ROOT, so a symlink in the image (say `/data -> /etc`) is
//! followed as the container would see it, never out to the host; the
//! mount then goes onto the opened descriptor through /proc/self/fd.

use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::MsFlags;
use nix::sys::stat::{mkdirat, Mode};

use mcm_common::container::{MountConfig, MountKind};

use super::mount_at;
use crate::error::{SetupError, SetupResult};

/// Mounts every user mount under `root` (the new root, before pivot).
pub fn mount_all(root: &Path, mounts: &[MountConfig]) -> SetupResult<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    let root_fd = open_in(None, root, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    for m in mounts {
        let want_dir = m.kind == MountKind::Tmpfs || m.source.is_dir();
        let target = ensure_target(&root_fd, &m.destination, want_dir)?;
        let target_path = PathBuf::from(format!("/proc/self/fd/{}", target.as_raw_fd()));
        let ro = if m.read_only {
            MsFlags::MS_RDONLY
        } else {
            MsFlags::empty()
        };
        match m.kind {
            MountKind::Bind => {
                mount_at(
                    Some(&m.source),
                    &target_path,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                // Flags of a bind take a remount, on the new mount's root
                // (reopened: the old descriptor is the directory beneath):
                // nodev always (nodes made through a volume must not open
                // host devices), read-only if asked.
                let mounted = ensure_target(&root_fd, &m.destination, want_dir)?;
                mount_at(
                    None::<&str>,
                    Path::new(&format!("/proc/self/fd/{}", mounted.as_raw_fd())),
                    None,
                    MsFlags::MS_BIND
                        | MsFlags::MS_REMOUNT
                        | MsFlags::MS_NODEV
                        | ro
                        | locked_flags(&m.source),
                    None,
                )?;
            }
            MountKind::Tmpfs => mount_at(
                Some("tmpfs"),
                &target_path,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | ro,
                Some(if m.options.is_empty() {
                    "mode=1777"
                } else {
                    &m.options
                }),
            )?,
        }
    }
    Ok(())
}

/// Flags of the mount holding `path` that a bind remount must repeat (the
/// kernel refuses to clear them on a mount it considers locked).
fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(stat) = statvfs(path) else {
        return MsFlags::empty();
    };
    let flags = stat.flags();
    [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ]
    .into_iter()
    .filter(|(st, _)| flags.contains(*st))
    .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms)
}

/// Makes the root mount read-only (`--read-only`).
pub fn make_root_read_only(root: &Path) -> SetupResult<()> {
    mount_at(
        None::<&str>,
        root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None,
    )
}

fn open_in(dir: Option<&OwnedFd>, path: &Path, flags: OFlag) -> SetupResult<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(if dir.is_some() {
            ResolveFlag::RESOLVE_IN_ROOT
        } else {
            ResolveFlag::empty()
        });
    let dirfd = dir.map(|d| d.as_raw_fd()).unwrap_or(libc::AT_FDCWD);
    let fd =
        openat2(dirfd, path, how).map_err(|errno| SetupError::io("open", path, errno.into()))?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens (creating what is missing) the destination inside the root.
fn ensure_target(root: &OwnedFd, destination: &str, want_dir: bool) -> SetupResult<OwnedFd> {
    let relative: PathBuf = Path::new(destination)
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if relative.as_os_str().is_empty() {
        return Err(SetupError::Usage(format!(
            "mount destination {destination:?} is the root"
        )));
    }
    let mut sofar = PathBuf::new();
    let components: Vec<_> = relative.components().collect();
    for (i, component) in components.iter().enumerate() {
        let parent = if sofar.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            sofar.clone()
        };
        sofar.push(component);
        let last = i + 1 == components.len();
        let parent_fd = open_in(Some(root), &parent, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        let exists = open_in(Some(root), &sofar, OFlag::O_PATH).is_ok();
        if exists {
            continue;
        }
        if last && !want_dir {
            let how = OpenHow::new()
                .flags(OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC)
                .mode(Mode::from_bits_truncate(0o644))
                .resolve(ResolveFlag::RESOLVE_IN_ROOT);
            let fd = openat2(root.as_raw_fd(), &sofar, how)
                .map_err(|e| SetupError::io("create", &sofar, e.into()))?;
            // SAFETY: a new descriptor owned by nobody else; closed at once.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        } else {
            match mkdirat(
                Some(parent_fd.as_raw_fd()),
                component.as_os_str(),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(SetupError::io("create directory", &sofar, errno.into())),
            }
        }
    }
    open_in(Some(root), &sofar, OFlag::O_PATH)
}
