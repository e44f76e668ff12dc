//! Directory trees: copying a root filesystem (as it is, or with its
//! owners shifted into a user namespace's host range), special files and
//! the apparent size of a tree.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{lchown, symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use mcm_common::container::IdMapping;
use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag};

use super::{io_err, ImageError};

/// Who owns copied files.
#[derive(Debug, Clone, Copy)]
pub(super) enum Owners {
    /// As in the source. Only root may give files away, so anyone else
    /// keeps the files they cannot (EPERM is ignored).
    Same,
    /// The source's ids moved into a user namespace's host range; ids
    /// beyond the range become the namespace's `nobody` (65534, or the
    /// range's last id). Required.
    Shifted(IdMapping),
}

impl Owners {
    /// Gives `path` (not followed) the owner `meta` calls for.
    fn apply(self, path: &Path, meta: &fs::Metadata) -> Result<(), ImageError> {
        let result = match self {
            Owners::Same => match lchown(path, Some(meta.uid()), Some(meta.gid())) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
                other => other,
            },
            Owners::Shifted(m) => lchown(
                path,
                Some(shift_id(meta.uid(), m.host_uid, m.size)),
                Some(shift_id(meta.gid(), m.host_gid, m.size)),
            ),
        };
        result.map_err(io_err("chown", path))
    }
}

/// The host id of container id `id` in a range of `size` ids from `host`.
pub(super) fn shift_id(id: u32, host: u32, size: u32) -> u32 {
    let inside = if id < size {
        id
    } else {
        size.saturating_sub(1).min(65534)
    };
    host.saturating_add(inside)
}

/// Copies the root filesystem directory `from` into the existing empty
/// directory `to`, including the mode and owner of the top directory.
///
/// Symlinks are copied as links and never followed, hard links become
/// separate copies, device nodes and fifos are recreated (devices only
/// with CAP_MKNOD, else left out), sockets are left out. Like
/// `tar --one-file-system`, directories on another filesystem than
/// `from` (a chroot's /proc, /sys or /dev) are copied empty.
pub(super) fn copy_rootfs(from: &Path, to: &Path, owners: Owners) -> Result<(), ImageError> {
    let meta = fs::metadata(from).map_err(io_err("read", from))?;
    copy_tree(from, to, owners, meta.dev())?;
    owners.apply(to, &meta)?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io_err("chmod", to))
}

/// Copies the entries of `from` into `to`, descending only into
/// directories of filesystem `device`.
fn copy_tree(from: &Path, to: &Path, owners: Owners, device: u64) -> Result<(), ImageError> {
    for entry in fs::read_dir(from).map_err(io_err("read", from))? {
        let entry = entry.map_err(io_err("read", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src).map_err(io_err("read", &src))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&src).map_err(io_err("read", &src))?;
            symlink(target, &dst).map_err(io_err("create", &dst))?;
        } else if kind.is_dir() {
            fs::create_dir(&dst).map_err(io_err("create", &dst))?;
            if meta.dev() == device {
                copy_tree(&src, &dst, owners, device)?;
            }
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(io_err("copy", &src))?;
        } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
            let sflag = if kind.is_char_device() {
                SFlag::S_IFCHR
            } else if kind.is_block_device() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            if !make_node(&dst, sflag, meta.mode(), meta.rdev()).map_err(io_err("create", &dst))? {
                continue;
            }
        } else {
            // Sockets belong to running systems, not images.
            continue;
        }
        // Before chmod, since chown clears the set-id bits.
        owners.apply(&dst, &meta)?;
        if !kind.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io_err("chmod", &dst))?;
        }
    }
    Ok(())
}

/// Creates the device node or fifo `path` (its mode still to be set by
/// the caller, as the umask applies here). False when a device was left
/// out for want of CAP_MKNOD: a container gets its own /dev anyway, and
/// its root is mounted `nodev`.
pub(super) fn make_node(path: &Path, kind: SFlag, mode: u32, rdev: u64) -> io::Result<bool> {
    let perm = Mode::from_bits_truncate(mode & 0o7777);
    match nix::sys::stat::mknod(path, kind, perm, rdev) {
        Ok(()) => Ok(true),
        Err(Errno::EPERM) if kind != SFlag::S_IFIFO => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Apparent size of the regular files and symlinks under `dir`, each
/// hard-linked file counted once.
pub(super) fn tree_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        let mut size = 0;
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                size += walk(&entry.path(), seen);
            } else if (kind.is_file() || kind.is_symlink())
                && (meta.nlink() < 2 || seen.insert((meta.dev(), meta.ino())))
            {
                size += meta.len();
            }
        }
        size
    }
    walk(dir, &mut HashSet::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_ids_into_the_range() {
        assert_eq!(shift_id(0, 100_000, 65_536), 100_000);
        assert_eq!(shift_id(1000, 100_000, 65_536), 101_000);
        assert_eq!(shift_id(65_535, 100_000, 65_536), 165_535);
        // Beyond the range: the namespace's nobody.
        assert_eq!(shift_id(70_000, 100_000, 65_536), 165_534);
        assert_eq!(shift_id(2000, 100_000, 1000), 100_999);
        assert_eq!(shift_id(u32::MAX, u32::MAX - 1, 65_536), u32::MAX);
    }

    #[test]
    fn size_counts_hard_links_once_and_directories_not() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/a"), b"12345").unwrap();
        fs::hard_link(dir.path().join("sub/a"), dir.path().join("b")).unwrap();
        fs::write(dir.path().join("c"), b"xy").unwrap();
        symlink("sub/a", dir.path().join("link")).unwrap();
        assert_eq!(tree_size(dir.path()), 5 + 2 + "sub/a".len() as u64);
        assert_eq!(tree_size(&dir.path().join("missing")), 0);
    }

    #[test]
    fn copies_set_id_modes_fifos_and_hard_links_as_copies() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("bin/su"), b"su").unwrap();
        fs::set_permissions(src.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(src.join("bin/su"), src.join("bin/su2")).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o640)).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o751)).unwrap();
        copy_rootfs(&src, &dst, Owners::Same).unwrap();
        let mode = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode(""), 0o751);
        assert_eq!(mode("bin/su"), 0o4755);
        assert_eq!(mode("fifo"), 0o640);
        assert!(fs::symlink_metadata(dst.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        let (a, b) = (
            fs::metadata(dst.join("bin/su")).unwrap(),
            fs::metadata(dst.join("bin/su2")).unwrap(),
        );
        assert_ne!(a.ino(), b.ino());
        assert_eq!(fs::read(dst.join("bin/su2")).unwrap(), b"su");
    }
}
