//! The image store: root filesystems kept read-only under
//! `<root>/images/<name>/rootfs` and used as OverlayFS lower layers.
//!
//! Imports and the built-in `busybox` image are built in a temporary
//! directory and renamed into place, so a half-written image is never
//! visible and, of two concurrent builds, one wins and both succeed.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The built-in image, made from the host's static busybox.
pub const BUSYBOX: &str = "busybox";
/// Where the built-in image takes busybox from (`MCM_BUSYBOX` overrides).
const HOST_BUSYBOX: &str = "/bin/busybox";
const BUSYBOX_HINT: &str =
    "the default image needs a statically linked busybox at /bin/busybox: install it with `apt-get install busybox-static`";

/// What went wrong with an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("image {0} already exists; remove it first")]
    Exists(String),
    #[error("{} is not a root filesystem (no bin/ or usr/bin/)", .0.display())]
    NotRootfs(PathBuf),
    #[error("{0}")]
    Busybox(String),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What `image ls` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// Where it came from.
    pub source: String,
    /// Apparent size of its files, in bytes.
    pub size: u64,
}

/// The images of one state root.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    /// The store under `root` (nothing is created).
    pub fn new(root: &Path) -> Self {
        ImageStore {
            dir: root.join("images"),
        }
    }

    /// The root filesystem of image `name`.
    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("rootfs")
    }

    /// Imports a `.tar`, a gzip-compressed tar or a directory as `name`.
    pub fn import(&self, name: &str, source: &Path) -> Result<ImageInfo, ImageError> {
        validate_name(name)?;
        if self.dir.join(name).exists() {
            return Err(ImageError::Exists(name.to_string()));
        }
        let meta = fs::metadata(source).map_err(io_err("read", source))?;
        let origin = source.display().to_string();
        let built = self.build(name, &origin, |rootfs| {
            if meta.is_dir() {
                copy_tree(source, rootfs)
            } else {
                unpack_tar(source, rootfs)
            }
        })?;
        match built {
            Some(info) => Ok(info),
            None => Err(ImageError::Exists(name.to_string())),
        }
    }

    /// Every image, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &self.dir)(e)),
        };
        let mut images: Vec<ImageInfo> = entries
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()).ok())
            .collect();
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// One image's record.
    pub fn get(&self, name: &str) -> Result<ImageInfo, ImageError> {
        validate_name(name)?;
        let path = self.dir.join(name).join("image.json");
        let text = fs::read_to_string(&path).map_err(|_| ImageError::NotFound(name.to_string()))?;
        serde_json::from_str(&text).map_err(|e| io_err("parse", &path)(io::Error::other(e)))
    }

    /// Removes an image (the caller checks that no container uses it).
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        self.get(name)?;
        // Renamed away first, so the name is free at once and a crash
        // midway leaves only a hidden directory.
        let dir = self.dir.join(name);
        let doomed = self
            .dir
            .join(format!(".rm-{name}-{}", uuid::Uuid::new_v4().simple()));
        fs::rename(&dir, &doomed).map_err(io_err("remove", &dir))?;
        fs::remove_dir_all(&doomed).map_err(io_err("remove", &doomed))
    }

    /// The root filesystem for an image reference: a path (with `/` or a
    /// leading `.`) to a root filesystem directory, or an image name; the
    /// built-in `busybox` is built on first use.
    pub fn resolve(&self, reference: &str) -> Result<PathBuf, ImageError> {
        if reference.contains('/') || reference.starts_with('.') {
            let path = Path::new(reference);
            let rootfs = path
                .canonicalize()
                .map_err(|_| ImageError::NotFound(reference.to_string()))?;
            if !is_rootfs(&rootfs) {
                return Err(ImageError::NotRootfs(rootfs));
            }
            return Ok(rootfs);
        }
        validate_name(reference)?;
        let rootfs = self.rootfs(reference);
        if self.dir.join(reference).join("image.json").exists() {
            return Ok(rootfs);
        }
        if reference == BUSYBOX {
            self.ensure_busybox()?;
            return Ok(rootfs);
        }
        Err(ImageError::NotFound(reference.to_string()))
    }

    /// Builds the built-in busybox image unless it exists.
    pub fn ensure_busybox(&self) -> Result<ImageInfo, ImageError> {
        if let Ok(info) = self.get(BUSYBOX) {
            return Ok(info);
        }
        let binary = std::env::var_os("MCM_BUSYBOX")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(HOST_BUSYBOX));
        let bytes = fs::read(&binary).map_err(|_| ImageError::Busybox(BUSYBOX_HINT.into()))?;
        if !is_static_elf(&bytes) {
            return Err(ImageError::Busybox(BUSYBOX_HINT.into()));
        }
        let applets = applet_names(&bytes)
            .unwrap_or_else(|| FALLBACK_APPLETS.iter().map(|s| s.to_string()).collect());
        let origin = format!("built-in from {}", binary.display());
        self.build(BUSYBOX, &origin, |rootfs| {
            write_busybox_rootfs(rootfs, &bytes, &applets)
        })?;
        // Built here or by a concurrent process that won the rename.
        self.get(BUSYBOX)
    }

    /// Fills a temporary directory with `fill`, then renames it into
    /// place; `None` when another process put `name` there first.
    fn build(
        &self,
        name: &str,
        source: &str,
        fill: impl FnOnce(&Path) -> Result<(), ImageError>,
    ) -> Result<Option<ImageInfo>, ImageError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        let tmp = self
            .dir
            .join(format!(".tmp-{name}-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let rootfs = tmp.join("rootfs");
            fs::create_dir_all(&rootfs).map_err(io_err("create", &rootfs))?;
            fill(&rootfs)?;
            if !is_rootfs(&rootfs) {
                return Err(ImageError::NotRootfs(PathBuf::from(source)));
            }
            let info = ImageInfo {
                name: name.to_string(),
                created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                source: source.to_string(),
                size: tree_size(&rootfs),
            };
            let json = serde_json::to_vec_pretty(&info)
                .map_err(|e| io_err("write", &tmp)(io::Error::other(e)))?;
            fs::write(tmp.join("image.json"), json).map_err(io_err("write", &tmp))?;
            Ok(info)
        })();
        let info = match result {
            Ok(info) => info,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let target = self.dir.join(name);
        match fs::rename(&tmp, &target) {
            Ok(()) => Ok(Some(info)),
            // ENOTEMPTY/EEXIST: someone else finished first.
            Err(_) if target.join("image.json").exists() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(None)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(io_err("create", &target)(e))
            }
        }
    }
}

/// `[a-z0-9][a-z0-9._-]{0,127}` with an optional `:tag`.
fn validate_name(name: &str) -> Result<(), ImageError> {
    let invalid = |reason| ImageError::InvalidName {
        name: name.to_string(),
        reason,
    };
    let (base, tag) = name.split_once(':').unwrap_or((name, ""));
    let mut chars = base.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
        _ => return Err(invalid("it must start with a lower-case letter or digit")),
    }
    if base.len() > 128 {
        return Err(invalid("it is longer than 128 characters"));
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid("only [a-z0-9._-] are allowed"));
    }
    if name.contains(':')
        && (tag.is_empty()
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(invalid("the tag may only hold [A-Za-z0-9._-]"));
    }
    Ok(())
}

fn is_rootfs(dir: &Path) -> bool {
    dir.join("bin").exists() || dir.join("usr/bin").is_dir()
}

/// Unpacks a tar or gzip-compressed tar (detected by its magic bytes).
fn unpack_tar(source: &Path, rootfs: &Path) -> Result<(), ImageError> {
    let mut file = File::open(source).map_err(io_err("open", source))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    file.rewind().map_err(io_err("read", source))?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(io_err("read", source))? {
        let mut entry = entry.map_err(io_err("read", source))?;
        // unpack_in refuses entries that would land outside `rootfs`.
        entry
            .unpack_in(rootfs)
            .map_err(io_err("unpack into", rootfs))?;
    }
    Ok(())
}

/// Copies a directory tree without following symlinks.
fn copy_tree(from: &Path, to: &Path) -> Result<(), ImageError> {
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
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(io_err("copy", &src))?;
        } else if kind.is_char_device() || kind.is_block_device() {
            let sflag = if kind.is_char_device() {
                nix::sys::stat::SFlag::S_IFCHR
            } else {
                nix::sys::stat::SFlag::S_IFBLK
            };
            let mode = nix::sys::stat::Mode::from_bits_truncate(meta.mode());
            nix::sys::stat::mknod(&dst, sflag, mode, meta.rdev())
                .map_err(|e| io_err("create", &dst)(e.into()))?;
        } else {
            // Sockets and fifos belong to running systems, not images.
            continue;
        }
        let _ = std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()));
        if !kind.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io_err("chmod", &dst))?;
        }
    }
    Ok(())
}

fn tree_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// True for an ELF executable without a program interpreter (static).
fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false; // only 64-bit little-endian ELF
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap_or_default()) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        bytes
            .get(at..at + 4)
            .map(|t| u32::from_le_bytes(t.try_into().unwrap_or_default()) != PT_INTERP)
            .unwrap_or(false)
    })
}

/// Applets linked when the name table cannot be found in the binary.
const FALLBACK_APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "true", "false", "sleep", "ps", "kill", "mkdir", "rm", "cp", "mv",
    "ln", "chmod", "chown", "grep", "sed", "awk", "head", "tail", "wc", "env", "id", "hostname",
    "mount", "umount", "ip", "ping", "wget", "nc", "vi", "tty", "stty", "pwd", "readlink",
    "chroot", "dd", "find", "sort", "uniq", "cut", "tr", "date", "uname", "which", "test", "expr",
    "seq", "yes", "su", "top", "touch", "mknod",
];

/// Busybox keeps its applet names as one block of sorted, NUL-terminated
/// strings starting with "[" and "[["; reads them without running it.
fn applet_names(binary: &[u8]) -> Option<Vec<String>> {
    let start = binary.windows(5).position(|w| w == b"[\0[[\0")?;
    let mut names = Vec::new();
    for raw in binary[start..].split(|&b| b == 0) {
        if raw.is_empty() {
            break;
        }
        let name = std::str::from_utf8(raw).ok()?;
        let valid = name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '[' | '-')
        });
        if !valid
            || names
                .last()
                .is_some_and(|last: &String| last.as_str() >= name)
        {
            break;
        }
        names.push(name.to_string());
    }
    (names.len() >= 50 && names.iter().any(|n| n == "sh") && names.iter().any(|n| n == "ls"))
        .then_some(names)
}

/// The built-in image's files.
fn write_busybox_rootfs(
    rootfs: &Path,
    busybox: &[u8],
    applets: &[String],
) -> Result<(), ImageError> {
    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("var", 0o755),
        ("run", 0o755),
    ] {
        let path = rootfs.join(dir);
        fs::create_dir_all(&path).map_err(io_err("create", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", &path))?;
    }
    let binary = rootfs.join("bin/busybox");
    fs::write(&binary, busybox).map_err(io_err("write", &binary))?;
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod", &binary))?;
    for applet in applets.iter().filter(|a| a.as_str() != "busybox") {
        let link = rootfs.join("bin").join(applet);
        symlink("/bin/busybox", &link).map_err(io_err("create", &link))?;
    }
    for (file, content) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"),
        ("etc/hosts", ""),
        ("etc/resolv.conf", ""),
        ("etc/hostname", ""),
    ] {
        let path = rootfs.join(file);
        fs::write(&path, content).map_err(io_err("write", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["alpine", "alpine:3.19", "my-image_1.0", "9lives"] {
            validate_name(good).unwrap();
        }
        let long = "a".repeat(200);
        for bad in [
            "",
            "Alpine",
            "a/b",
            "..",
            ".hidden",
            "has space",
            "x:",
            "x:a/b",
            long.as_str(),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    fn rootfs_tar(gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            builder.append_data(&mut header, path, data).unwrap();
        };
        add("./bin/sh", b"#!", 0o755);
        add("etc/os-release", b"ID=test\n", 0o644);
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_uid(0);
        link.set_gid(0);
        link.set_mtime(0);
        link.set_cksum();
        builder.append_link(&mut link, "bin/ash", "sh").unwrap();
        let raw = builder.into_inner().unwrap();
        if !gzip {
            return raw;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &raw).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn imports_plain_and_gzip_tarballs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        for (name, gzip) in [("plain", false), ("zipped", true)] {
            let tarball = dir.path().join(format!("{name}.tar"));
            fs::write(&tarball, rootfs_tar(gzip)).unwrap();
            let info = store.import(name, &tarball).unwrap();
            assert_eq!(info.name, name);
            let rootfs = store.resolve(name).unwrap();
            assert!(rootfs.join("bin/sh").is_file());
            assert_eq!(
                fs::read_link(rootfs.join("bin/ash")).unwrap(),
                Path::new("sh")
            );
            assert_eq!(
                fs::metadata(rootfs.join("bin/sh")).unwrap().mode() & 0o777,
                0o755
            );
        }
        assert_eq!(store.list().unwrap().len(), 2);
        assert!(matches!(
            store.import("plain", &dir.path().join("plain.tar")),
            Err(ImageError::Exists(_))
        ));
        store.remove("plain").unwrap();
        assert!(matches!(store.get("plain"), Err(ImageError::NotFound(_))));
    }

    #[test]
    fn refuses_non_rootfs_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert!(matches!(
            store.import("x", &empty),
            Err(ImageError::NotRootfs(_))
        ));
        assert_eq!(fs::read_dir(dir.path().join("images")).unwrap().count(), 0);
    }

    #[test]
    fn directory_import_keeps_symlinks_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/tool"), b"x").unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o750)).unwrap();
        symlink("/etc/passwd", src.join("link")).unwrap();
        let store = ImageStore::new(dir.path());
        store.import("copy", &src).unwrap();
        let rootfs = store.rootfs("copy");
        assert_eq!(
            fs::metadata(rootfs.join("bin/tool")).unwrap().mode() & 0o777,
            0o750
        );
        assert_eq!(
            fs::read_link(rootfs.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
    }

    #[test]
    fn resolves_paths_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let err = store.resolve("/no/such/rootfs").unwrap_err().to_string();
        assert!(err.contains("/no/such/rootfs"), "{err}");
        assert!(store
            .resolve("nothere")
            .unwrap_err()
            .to_string()
            .contains("nothere"));
    }

    #[test]
    fn parses_applet_names() {
        let mut blob = b"junk\0".to_vec();
        let mut names: Vec<String> = (0..60).map(|i| format!("ap{i:02}")).collect();
        names.extend(["ls".to_string(), "sh".to_string()]);
        names.sort();
        blob.extend_from_slice(b"[\0[[\0");
        for n in &names {
            blob.extend_from_slice(n.as_bytes());
            blob.push(0);
        }
        blob.push(0);
        let found = applet_names(&blob).unwrap();
        assert_eq!(found.len(), names.len() + 2);
        if let Ok(real) = fs::read(HOST_BUSYBOX) {
            let applets = applet_names(&real).expect("applet table of the host's busybox");
            for needed in ["sh", "ps", "top", "ip", "nc", "wget", "dd"] {
                assert!(applets.iter().any(|a| a == needed), "{needed}");
            }
            assert!(is_static_elf(&real));
        }
        assert!(
            !is_static_elf(&fs::read("/proc/self/exe").unwrap())
                || cfg!(target_feature = "crt-static")
        );
    }
}
