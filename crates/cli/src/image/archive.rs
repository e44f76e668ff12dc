//! Unpacking root filesystem tarballs: plain or gzip-compressed (known by
//! their magic bytes, not their name), as `docker export` or the Alpine
//! minirootfs make them.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::sys::stat::SFlag;
use tar::{EntryType, Header};

use super::tree::make_node;
use super::{io_err, ImageError};

/// How an archive is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    /// A format mcm does not read: its name and the tool that undoes it.
    Unsupported(&'static str, &'static str),
}

impl Compression {
    /// Bytes enough to tell them apart.
    const MAGIC_LEN: usize = 6;

    fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Unsupported("xz", "unxz")
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Unsupported("zstd", "unzstd")
        } else if head.starts_with(b"BZh") {
            Compression::Unsupported("bzip2", "bunzip2")
        } else {
            Compression::None
        }
    }
}

/// Unpacks the tarball `source` into the empty directory `rootfs`.
///
/// Modes are kept as they are (set-id bits included), owners too when
/// running as root; symlinks and hard links are recreated, device nodes
/// too given CAP_MKNOD (else left out), fifos always; xattrs are not.
/// Entries never land outside `rootfs`: `..` entries are skipped, and
/// one whose parent resolves outside (through a symlink) is an error.
pub(super) fn unpack(source: &Path, rootfs: &Path) -> Result<(), ImageError> {
    let file = File::open(source).map_err(io_err("open", source))?;
    let mut file = BufReader::new(file);
    // Read ahead and chained back rather than rewound, so that a pipe
    // works too.
    let mut head = Vec::with_capacity(Compression::MAGIC_LEN);
    (&mut file)
        .take(Compression::MAGIC_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_err("read", source))?;
    let stream = io::Cursor::new(head).chain(file);
    let stream: Box<dyn Read> = match Compression::sniff(stream.get_ref().0.get_ref()) {
        Compression::None => Box::new(stream),
        // Multi-member, as pigz and concatenated files make.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Unsupported(format, tool) => {
            return Err(ImageError::BadSource {
                path: source.to_path_buf(),
                reason: format!(
                    "it is {format}-compressed, which mcm cannot read; \
                     decompress it first (`{tool}`) or use a plain or gzip-compressed tar"
                ),
            })
        }
    };
    let chown = nix::unistd::geteuid().is_root();
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(chown);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let failed = |e: io::Error| ImageError::Io {
        op: "unpack",
        path: source.to_path_buf(),
        source: with_causes(e),
    };
    for entry in archive.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
            // The tar crate would write these as empty regular files.
            let path = entry.path().map_err(failed)?.into_owned();
            unpack_node(entry.header(), &path, rootfs, chown).map_err(failed)?;
        } else {
            // unpack_in skips `..` entries and refuses parents that
            // resolve outside `rootfs`.
            entry.unpack_in(rootfs).map_err(failed)?;
        }
    }
    Ok(())
}

/// Creates the device node or fifo entry `path` of `header` in `rootfs`.
fn unpack_node(header: &Header, path: &Path, rootfs: &Path, chown: bool) -> io::Result<()> {
    let Some(dst) = destination(rootfs, path)? else {
        return Ok(());
    };
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dst.display()));
    // Replaced like any other entry (set_overwrite), but not a directory.
    match fs::symlink_metadata(&dst) {
        Ok(meta) if meta.is_dir() => {
            return Err(context(io::Error::from(io::ErrorKind::AlreadyExists)))
        }
        Ok(_) => fs::remove_file(&dst).map_err(context)?,
        Err(_) => {}
    }
    let (kind, rdev) = match header.entry_type() {
        EntryType::Fifo => (SFlag::S_IFIFO, 0),
        entry => {
            let major = header.device_major()?.unwrap_or(0);
            let minor = header.device_minor()?.unwrap_or(0);
            let kind = if entry == EntryType::Char {
                SFlag::S_IFCHR
            } else {
                SFlag::S_IFBLK
            };
            (kind, nix::sys::stat::makedev(major.into(), minor.into()))
        }
    };
    let mode = header.mode()? & 0o7777;
    if !make_node(&dst, kind, mode, rdev).map_err(context)? {
        return Ok(());
    }
    if chown {
        let id = |id: u64| {
            u32::try_from(id).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("owner id {id} too large"),
                )
            })
        };
        lchown(&dst, Some(id(header.uid()?)?), Some(id(header.gid()?)?)).map_err(context)?;
    }
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).map_err(context)
}

/// Where entry `path` lands under `rootfs`, as `unpack_in` puts it:
/// leading `/` and `.` components dropped; `None` for a path with `..`
/// or no name. Missing parent directories are created; the parent must
/// resolve inside `rootfs`, symlinks included.
fn destination(rootfs: &Path, path: &Path) -> io::Result<Option<PathBuf>> {
    let mut relative = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(part) => relative.push(part),
            Component::ParentDir => return Ok(None),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    let (Some(name), Some(parent)) = (relative.file_name(), relative.parent()) else {
        return Ok(None);
    };
    let root = rootfs.canonicalize()?;
    let outside = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} would be unpacked outside of {}",
                path.display(),
                root.display()
            ),
        )
    };
    // The deepest existing ancestor decides where the missing rest goes.
    let wanted = root.join(parent);
    let mut existing = wanted.as_path();
    while fs::symlink_metadata(existing).is_err() {
        existing = existing.parent().ok_or_else(outside)?;
    }
    let resolved = existing.canonicalize()?;
    if !resolved.starts_with(&root) {
        return Err(outside());
    }
    let missing = wanted.strip_prefix(existing).map_err(|_| outside())?;
    let parent = resolved.join(missing);
    fs::create_dir_all(&parent)?;
    if !parent.canonicalize()?.starts_with(&root) {
        return Err(outside());
    }
    Ok(Some(parent.join(name)))
}

/// `e` with the causes the tar crate keeps out of its messages appended,
/// since the command line prints one message, not a chain.
fn with_causes(e: io::Error) -> io::Error {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    io::Error::new(e.kind(), message)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};

    /// A root-owned tar header (shared with the image store's tests).
    pub(crate) fn header(kind: EntryType, size: u64, mode: u32) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(Compression::sniff(&gzip(b"x")), Compression::Gzip);
        assert_eq!(Compression::sniff(b"bin/\0\0"), Compression::None);
        assert_eq!(Compression::sniff(b""), Compression::None);
        assert_eq!(Compression::sniff(&[0x1f]), Compression::None);
        assert!(matches!(
            Compression::sniff(b"\xfd7zXZ\0rest"),
            Compression::Unsupported("xz", _)
        ));
        assert!(matches!(
            Compression::sniff(b"BZh91AY"),
            Compression::Unsupported("bzip2", _)
        ));
        assert!(matches!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]),
            Compression::Unsupported("zstd", _)
        ));
    }

    #[test]
    fn refuses_xz_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("rootfs.tar.xz");
        fs::write(&source, b"\xfd7zXZ\0whatever").unwrap();
        let err = unpack(&source, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("rootfs.tar.xz") && err.contains("xz-compressed"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    /// Multi-member gzip (two compressed halves, concatenated) unpacks
    /// whole.
    #[test]
    fn unpacks_concatenated_gzip_members() {
        let mut builder = tar::Builder::new(Vec::new());
        for name in ["bin/a", "bin/b"] {
            let mut file = header(EntryType::Regular, 1, 0o644);
            builder
                .append_data(&mut file, name, b"x".as_slice())
                .unwrap();
        }
        let raw = builder.into_inner().unwrap();
        let mut two = gzip(&raw[..512 * 2]);
        two.extend(gzip(&raw[512 * 2..]));
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("t");
        fs::write(&source, two).unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        unpack(&source, &rootfs).unwrap();
        assert!(rootfs.join("bin/a").is_file() && rootfs.join("bin/b").is_file());
    }

    #[test]
    fn makes_fifos_and_devices_inside_only() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut fifo = header(EntryType::Fifo, 0, 0o620);
        builder
            .append_data(&mut fifo, "./run/initctl", io::empty())
            .unwrap();
        let mut null = header(EntryType::Char, 0, 0o666);
        null.set_device_major(1).unwrap();
        null.set_device_minor(3).unwrap();
        builder
            .append_data(&mut null, "dev/null", io::empty())
            .unwrap();
        let mut link = header(EntryType::Symlink, 0, 0o777);
        builder
            .append_link(&mut link, "escape", outside.to_str().unwrap())
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        let tarball = dir.path().join("t.tar");

        // `..` entries are skipped, like unpack_in does.
        let mut climb = header(EntryType::Fifo, 0, 0o644);
        climb.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../climb-fifo");
        climb.set_cksum();
        builder.append(&climb, io::empty()).unwrap();
        let good = builder.into_inner().unwrap();
        fs::write(&tarball, &good).unwrap();
        unpack(&tarball, &rootfs).unwrap();
        let fifo = fs::symlink_metadata(rootfs.join("run/initctl")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o620);
        match fs::symlink_metadata(rootfs.join("dev/null")) {
            Ok(null) => {
                assert!(null.file_type().is_char_device());
                assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
                assert_eq!(null.mode() & 0o7777, 0o666);
            }
            // Without CAP_MKNOD devices are left out.
            Err(_) => assert!(!nix::unistd::geteuid().is_root()),
        }
        assert!(!dir.path().join("climb-fifo").exists());

        // Through a symlink that leaves the root: refused.
        let mut builder = tar::Builder::new(Vec::new());
        let mut through = header(EntryType::Fifo, 0, 0o644);
        builder
            .append_data(&mut through, "escape/fifo", io::empty())
            .unwrap();
        fs::write(&tarball, builder.into_inner().unwrap()).unwrap();
        let err = unpack(&tarball, &rootfs).unwrap_err().to_string();
        assert!(err.contains("outside"), "{err}");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn errors_carry_their_causes() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut link = header(EntryType::Symlink, 0, 0o777);
        builder
            .append_link(&mut link, "evil", outside.to_str().unwrap())
            .unwrap();
        let mut file = header(EntryType::Regular, 1, 0o644);
        builder
            .append_data(&mut file, "evil/x", b"x".as_slice())
            .unwrap();
        let tarball = dir.path().join("evil.tar");
        fs::write(&tarball, builder.into_inner().unwrap()).unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        let err = unpack(&tarball, &rootfs).unwrap_err().to_string();
        assert!(err.starts_with("cannot unpack "), "{err}");
        assert!(err.contains("outside of destination"), "{err}");
        assert!(!outside.join("x").exists());
    }

    #[test]
    fn destination_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        fs::create_dir_all(root.join("usr")).unwrap();
        symlink("usr", root.join("lib")).unwrap();
        symlink("/", root.join("abs")).unwrap();
        let canon = root.canonicalize().unwrap();
        let at = |p: &str| destination(&root, Path::new(p));
        assert_eq!(at("./a/b/c").unwrap().unwrap(), canon.join("a/b/c"));
        assert!(canon.join("a/b").is_dir());
        assert_eq!(at("/lib/x").unwrap().unwrap(), canon.join("usr/x"));
        assert!(at("a/../b").unwrap().is_none());
        assert!(at("./").unwrap().is_none());
        assert!(at("abs/tmp/x").is_err());
    }
}
