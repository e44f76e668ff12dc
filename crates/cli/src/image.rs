//! The image store: root filesystems kept read-only under
//! `<root>/images/<name>/rootfs` and used as OverlayFS lower layers.
//!
//! Imports and the built-in `busybox` image are built in a temporary
//! directory and renamed into place, so a half-written image is never
//! visible and, of two concurrent builds, one wins and both succeed.
//! The same goes for the copies owned by a user namespace's host ids
//! that `--userns=remap` runs on ([`ImageStore::shifted`]).

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mcm_common::container::IdMapping;
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
    ///
    /// An existing `name` is refused; but when a concurrent import of the
    /// same name finishes first while this one is running, this one is
    /// discarded and the winner's image returned.
    pub fn import(&self, name: &str, source: &Path) -> Result<ImageInfo, ImageError> {
        validate_name(name)?;
        self.clear_incomplete(name);
        if fs::symlink_metadata(self.dir.join(name)).is_ok() {
            return Err(ImageError::Exists(name.to_string()));
        }
        let meta = fs::metadata(source).map_err(io_err("read", source))?;
        let origin = source.display().to_string();
        let built = self.build(name, &origin, |rootfs| {
            if meta.is_dir() {
                copy_rootfs(source, rootfs, Owners::Same)
            } else {
                unpack_tar(source, rootfs)
            }
        })?;
        match built {
            Some(info) => Ok(info),
            None => self.get(name),
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

    /// Moves away and deletes `images/<name>` when it has no image.json:
    /// images appear whole by rename, so such a directory is debris (of an
    /// older mcm, or of a hand edit) and would block the name for ever.
    fn clear_incomplete(&self, name: &str) {
        let dir = self.dir.join(name);
        if dir.is_dir() && !dir.join("image.json").exists() {
            let debris = self
                .dir
                .join(format!(".rm-{name}-{}", uuid::Uuid::new_v4().simple()));
            if fs::rename(&dir, &debris).is_ok() {
                let _ = fs::remove_dir_all(&debris);
            }
        }
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

    /// Builds the built-in busybox image unless it exists, from the
    /// host's static busybox (`/bin/busybox`, or `$MCM_BUSYBOX`).
    pub fn ensure_busybox(&self) -> Result<ImageInfo, ImageError> {
        if let Ok(info) = self.get(BUSYBOX) {
            return Ok(info);
        }
        self.clear_incomplete(BUSYBOX);
        let binary = std::env::var_os("MCM_BUSYBOX")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(HOST_BUSYBOX));
        self.build_busybox(&binary)
    }

    /// Builds the built-in image from `binary`, which must be a static
    /// ELF executable; the applets are read from its name table.
    fn build_busybox(&self, binary: &Path) -> Result<ImageInfo, ImageError> {
        let refused = || {
            ImageError::Busybox(if binary == Path::new(HOST_BUSYBOX) {
                BUSYBOX_HINT.to_string()
            } else {
                format!(
                    "{BUSYBOX_HINT} (or point MCM_BUSYBOX, now {}, at one)",
                    binary.display()
                )
            })
        };
        let bytes = fs::read(binary).map_err(|_| refused())?;
        if !is_static_elf(&bytes) {
            return Err(refused());
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

    /// A copy of `rootfs` (as [`resolve`](Self::resolve) returns it)
    /// whose files belong to the host ids that `mapping` gives the
    /// container's ids, for `--userns=remap`: the container's root then
    /// owns its files without being the host's root. Built once per
    /// rootfs and mapping: inside the image's directory for an image
    /// (removed with it), under `images/.shifted/` for a rootfs path
    /// (keyed by the path, so a changed directory is not noticed).
    pub fn shifted(&self, rootfs: &Path, mapping: IdMapping) -> Result<PathBuf, ImageError> {
        let tag = format!("{}-{}-{}", mapping.host_uid, mapping.host_gid, mapping.size);
        let home = match self.image_of(rootfs) {
            Some(image) => image.join(format!("shifted-{tag}")),
            None => self.dir.join(".shifted").join(format!(
                "{:016x}-{tag}",
                fnv1a(rootfs.as_os_str().as_encoded_bytes())
            )),
        };
        let shifted = home.join("rootfs");
        if fs::symlink_metadata(&home).is_ok() {
            return Ok(shifted);
        }
        if let Some(parent) = home.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        self.place("shift", &home, |tmp| {
            let into = tmp.join("rootfs");
            fs::create_dir(&into).map_err(io_err("create", &into))?;
            copy_rootfs(rootfs, &into, Owners::Shifted(mapping))
        })?;
        Ok(shifted)
    }

    /// The image directory holding `rootfs`, when it is an image's.
    fn image_of(&self, rootfs: &Path) -> Option<PathBuf> {
        let image = rootfs.parent()?;
        (rootfs.file_name()? == "rootfs" && image.parent()? == self.dir)
            .then(|| image.to_path_buf())
    }

    /// Fills a temporary directory of the store with `fill`, then
    /// renames it to `target`; false when another process put `target`
    /// there first (this copy is then discarded). Nothing is left behind
    /// on failure.
    fn place(
        &self,
        label: &str,
        target: &Path,
        fill: impl FnOnce(&Path) -> Result<(), ImageError>,
    ) -> Result<bool, ImageError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        let tmp = self
            .dir
            .join(format!(".tmp-{label}-{}", uuid::Uuid::new_v4().simple()));
        let result = fs::create_dir(&tmp)
            .map_err(io_err("create", &tmp))
            .and_then(|()| fill(&tmp))
            .and_then(|()| match fs::rename(&tmp, target) {
                Ok(()) => Ok(true),
                // ENOTEMPTY or EEXIST: targets only ever appear whole, by
                // rename, so another process finished first.
                Err(_) if fs::symlink_metadata(target).is_ok() => Ok(false),
                Err(e) => Err(io_err("create", target)(e)),
            });
        if !matches!(result, Ok(true)) {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Builds image `name` with `fill` writing its root filesystem;
    /// `None` when another process put `name` there first.
    fn build(
        &self,
        name: &str,
        source: &str,
        fill: impl FnOnce(&Path) -> Result<(), ImageError>,
    ) -> Result<Option<ImageInfo>, ImageError> {
        let mut built = None;
        let placed = self.place(name, &self.dir.join(name), |tmp| {
            let rootfs = tmp.join("rootfs");
            fs::create_dir(&rootfs).map_err(io_err("create", &rootfs))?;
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
                .map_err(|e| io_err("write", tmp)(io::Error::other(e)))?;
            let path = tmp.join("image.json");
            fs::write(&path, json).map_err(io_err("write", &path))?;
            built = Some(info);
            Ok(())
        })?;
        Ok(built.filter(|_| placed))
    }
}

/// 64-bit FNV-1a, to name a path's shifted copy.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Who owns copied files.
#[derive(Debug, Clone, Copy)]
enum Owners {
    /// As in the source; best effort, since only root may give files
    /// away.
    Same,
    /// The source's ids moved into a user namespace's host range; ids
    /// beyond the range become the namespace's `nobody` (65534, or the
    /// range's last id). Required.
    Shifted(IdMapping),
}

impl Owners {
    fn apply(self, path: &Path, meta: &fs::Metadata) -> Result<(), ImageError> {
        match self {
            Owners::Same => {
                let _ = std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()));
                Ok(())
            }
            Owners::Shifted(m) => {
                let (uid, gid) = (
                    shift_id(meta.uid(), m.host_uid, m.size),
                    shift_id(meta.gid(), m.host_gid, m.size),
                );
                std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_err("chown", path))
            }
        }
    }
}

/// The host id of container id `id` in a range of `size` ids from `host`.
fn shift_id(id: u32, host: u32, size: u32) -> u32 {
    let inside = if id < size {
        id
    } else {
        size.saturating_sub(1).min(65534)
    };
    host.saturating_add(inside)
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

/// A root filesystem has `bin` (possibly a symlink, as on merged-/usr
/// systems, which is not followed: it may be absolute) or `usr/bin`.
fn is_rootfs(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join("bin")).is_ok()
        || fs::symlink_metadata(dir.join("usr/bin")).is_ok()
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
    // Only root may give files away; anyone else gets them as their own.
    archive.set_preserve_ownerships(nix::unistd::geteuid().is_root());
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

/// Copies a root filesystem directory, including the mode and owner of
/// its top directory.
fn copy_rootfs(from: &Path, to: &Path, owners: Owners) -> Result<(), ImageError> {
    copy_tree(from, to, owners)?;
    let meta = fs::metadata(from).map_err(io_err("read", from))?;
    owners.apply(to, &meta)?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(io_err("chmod", to))
}

/// Copies a directory tree without following symlinks; hard links
/// become copies.
fn copy_tree(from: &Path, to: &Path, owners: Owners) -> Result<(), ImageError> {
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
            copy_tree(&src, &dst, owners)?;
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
        // Before chmod, since chown clears the set-id bits.
        owners.apply(&dst, &meta)?;
        if !kind.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io_err("chmod", &dst))?;
        }
    }
    Ok(())
}

/// Apparent size of the files and symlinks under `dir`.
fn tree_size(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() || t.is_symlink() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// True for an ELF executable (32 or 64 bits, either byte order) that
/// has a loadable segment and no program interpreter, i.e. is static.
fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_LOAD: u64 = 1;
    const PT_INTERP: u64 = 3;
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return false;
    }
    let wide = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return false,
    };
    let little = match bytes.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return false,
    };
    let read = |at: usize, len: usize| -> Option<u64> {
        let raw = bytes.get(at..at.checked_add(len)?)?;
        let mut buf = [0u8; 8];
        if little {
            buf[..len].copy_from_slice(raw);
            Some(u64::from_le_bytes(buf))
        } else {
            buf[8 - len..].copy_from_slice(raw);
            Some(u64::from_be_bytes(buf))
        }
    };
    // e_phoff, e_phentsize and e_phnum by class.
    let (phoff, phentsize, phnum) = if wide {
        (read(32, 8), read(54, 2), read(56, 2))
    } else {
        (read(28, 4), read(42, 2), read(44, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return false;
    };
    let mut loadable = false;
    for i in 0..phnum {
        let Some(p_type) = phentsize
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| read(at, 4))
        else {
            return false;
        };
        match p_type {
            PT_INTERP => return false,
            PT_LOAD => loadable = true,
            _ => {}
        }
    }
    loadable
}

/// Applets linked when the name table cannot be found in the binary.
const FALLBACK_APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "true", "false", "sleep", "ps", "kill", "mkdir", "rm", "cp", "mv",
    "ln", "chmod", "chown", "grep", "sed", "awk", "head", "tail", "wc", "env", "id", "hostname",
    "mount", "umount", "ip", "ping", "wget", "nc", "vi", "tty", "stty", "pwd", "readlink",
    "chroot", "dd", "find", "sort", "uniq", "cut", "tr", "date", "uname", "which", "test", "expr",
    "seq", "yes", "su", "top", "touch", "mknod",
];

/// Busybox keeps its applet names as one packed block of sorted,
/// NUL-terminated strings that starts with "[" and "[[" and ends at an
/// empty string; reads them without running the binary. Every
/// occurrence of the start is tried, and a block counts only when each
/// name is made of `[a-z0-9_.[-]`, the names strictly ascend, there are
/// at least 50 of them and `sh` and `ls` are among them.
fn applet_names(binary: &[u8]) -> Option<Vec<String>> {
    const START: &[u8] = b"[\0[[\0";
    let mut from = 0;
    while let Some(found) = binary[from..].windows(START.len()).position(|w| w == START) {
        let start = from + found;
        if let Some(names) = applet_block(&binary[start..]) {
            return Some(names);
        }
        from = start + 1;
    }
    None
}

/// The names of a candidate block, when it passes the checks above.
fn applet_block(block: &[u8]) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = block;
    loop {
        let end = rest.iter().position(|&b| b == 0)?;
        let raw = &rest[..end];
        rest = &rest[end + 1..];
        if raw.is_empty() {
            break;
        }
        let valid = raw.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'[' | b'-')
        });
        let name = std::str::from_utf8(raw).ok().filter(|_| valid)?;
        if names.last().is_some_and(|last| last.as_str() >= name) {
            return None;
        }
        names.push(name.to_string());
    }
    let has = |wanted: &str| names.iter().any(|n| n == wanted);
    (names.len() >= 50 && has("sh") && has("ls")).then_some(names)
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
    fn a_directory_without_image_json_does_not_block_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        fs::create_dir_all(dir.path().join("images/debris/rootfs")).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        store.import("debris", &src).unwrap();
        assert!(store.get("debris").is_ok());
    }

    #[test]
    fn names() {
        let long_ok = "a".repeat(128);
        for good in [
            "alpine",
            "alpine:3.19",
            "alpine:Latest_1.0-rc",
            "my-image_1.0",
            "9lives",
            "a",
            long_ok.as_str(),
        ] {
            validate_name(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            "Alpine",
            "a/b",
            "..",
            ".hidden",
            "-dash",
            "_under",
            "has space",
            "x:",
            ":tag",
            "x:a/b",
            "x:a:b",
            "caf\u{e9}",
            long.as_str(),
        ] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(!err.contains('\n'), "{err}");
        }
    }

    fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header
    }

    /// A docker-export-like tarball: `./`-prefixed and bare entries, a
    /// symlink and an entry that tries to climb out with `..`.
    fn rootfs_tar(gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = header(tar::EntryType::Directory, 0, 0o755);
        builder.append_data(&mut dir, "./", io::empty()).unwrap();
        builder
            .append_data(&mut dir, "./bin/", io::empty())
            .unwrap();
        for (path, data, mode) in [
            ("./bin/sh", b"#!".as_slice(), 0o755),
            ("etc/os-release", b"ID=test\n".as_slice(), 0o640),
        ] {
            let mut file = header(tar::EntryType::Regular, data.len() as u64, mode);
            builder.append_data(&mut file, path, data).unwrap();
        }
        let mut link = header(tar::EntryType::Symlink, 0, 0o777);
        builder.append_link(&mut link, "bin/ash", "sh").unwrap();
        // `append_data` refuses `..`, so the name is written by hand.
        let mut escape = header(tar::EntryType::Regular, 3, 0o644);
        escape.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        escape.set_cksum();
        builder.append(&escape, b"bad".as_slice()).unwrap();
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
        let root = dir.path().join("root");
        let store = ImageStore::new(&root);
        // Gzip is found by its magic bytes, whatever the file is called.
        for (name, gzip) in [("plain", false), ("zipped", true)] {
            let tarball = dir.path().join(format!("{name}.data"));
            fs::write(&tarball, rootfs_tar(gzip)).unwrap();
            let info = store.import(name, &tarball).unwrap();
            assert_eq!(info.name, name);
            assert_eq!(info.source, tarball.display().to_string());
            assert_eq!(info.size, 2 + 8 + 2);
            humantime::parse_rfc3339(&info.created).unwrap();
            let rootfs = store.resolve(name).unwrap();
            assert_eq!(rootfs, store.rootfs(name));
            assert_eq!(fs::read(rootfs.join("bin/sh")).unwrap(), b"#!");
            assert_eq!(
                fs::read_link(rootfs.join("bin/ash")).unwrap(),
                Path::new("sh")
            );
            assert_eq!(
                fs::metadata(rootfs.join("bin/sh")).unwrap().mode() & 0o777,
                0o755
            );
            assert_eq!(
                fs::metadata(rootfs.join("etc/os-release")).unwrap().mode() & 0o777,
                0o640
            );
        }
        // The `..` entry landed nowhere.
        assert!(!root.join("images/escape").exists());
        assert!(!root.join("escape").exists());
        assert!(!dir.path().join("escape").exists());
        assert!(!store.rootfs("plain").join("escape").exists());
    }

    #[test]
    fn tar_symlink_escape_is_refused_and_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir_entry = header(tar::EntryType::Directory, 0, 0o755);
        builder
            .append_data(&mut dir_entry, "bin/", io::empty())
            .unwrap();
        let mut link = header(tar::EntryType::Symlink, 0, 0o777);
        builder
            .append_link(&mut link, "evil", outside.to_str().unwrap())
            .unwrap();
        let mut file = header(tar::EntryType::Regular, 1, 0o644);
        builder
            .append_data(&mut file, "evil/x", b"x".as_slice())
            .unwrap();
        let tarball = dir.path().join("evil.tar");
        fs::write(&tarball, builder.into_inner().unwrap()).unwrap();
        let store = ImageStore::new(dir.path());
        assert!(store.import("evil", &tarball).is_err());
        assert!(!outside.join("x").exists());
        assert_eq!(fs::read_dir(dir.path().join("images")).unwrap().count(), 0);
    }

    #[test]
    fn refuses_non_rootfs_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let empty = dir.path().join("empty");
        fs::create_dir_all(empty.join("etc")).unwrap();
        let err = store.import("x", &empty).unwrap_err();
        assert!(matches!(err, ImageError::NotRootfs(_)), "{err}");
        assert!(err.to_string().contains("not a root filesystem"), "{err}");
        let mut builder = tar::Builder::new(Vec::new());
        let mut file = header(tar::EntryType::Regular, 1, 0o644);
        builder
            .append_data(&mut file, "etc/x", b"x".as_slice())
            .unwrap();
        let tarball = dir.path().join("x.tar");
        fs::write(&tarball, builder.into_inner().unwrap()).unwrap();
        assert!(matches!(
            store.import("x", &tarball),
            Err(ImageError::NotRootfs(_))
        ));
        assert_eq!(fs::read_dir(dir.path().join("images")).unwrap().count(), 0);
        let missing = dir.path().join("nope.tar");
        let err = store.import("x", &missing).unwrap_err().to_string();
        assert!(err.contains("nope.tar"), "{err}");
        assert!(store.import("Bad/Name", &empty).is_err());
    }

    #[test]
    fn directory_import_keeps_symlinks_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir_all(src.join("usr/lib")).unwrap();
        fs::write(src.join("bin/tool"), b"xyz").unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(src.join("usr/lib"), fs::Permissions::from_mode(0o711)).unwrap();
        symlink("/etc/passwd", src.join("link")).unwrap();
        symlink("does-not-exist", src.join("dangling")).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let store = ImageStore::new(dir.path());
        let info = store.import("copy", &src).unwrap();
        assert_eq!(
            info.size,
            3 + "/etc/passwd".len() as u64 + "does-not-exist".len() as u64
        );
        let rootfs = store.rootfs("copy");
        let tool = fs::metadata(rootfs.join("bin/tool")).unwrap();
        let original = fs::metadata(src.join("bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o777, 0o750);
        assert_eq!((tool.uid(), tool.gid()), (original.uid(), original.gid()));
        assert_eq!(
            fs::metadata(rootfs.join("usr/lib")).unwrap().mode() & 0o777,
            0o711
        );
        assert_eq!(
            fs::read_link(rootfs.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::read_link(rootfs.join("dangling")).unwrap(),
            Path::new("does-not-exist")
        );
        assert!(fs::symlink_metadata(rootfs.join("fifo")).is_err());
    }

    #[test]
    fn duplicates_list_get_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("usr/bin")).unwrap();
        let store = ImageStore::new(&dir.path().join("root"));
        assert!(store.list().unwrap().is_empty());
        for name in ["zeta", "alpha:1", "mid"] {
            store.import(name, &src).unwrap();
        }
        let err = store.import("mid", &src).unwrap_err();
        assert!(matches!(err, ImageError::Exists(_)));
        assert_eq!(err.to_string(), "image mid already exists; remove it first");
        // Leftovers of an interrupted import are not images.
        fs::create_dir_all(dir.path().join("root/images/.tmp-x-1/rootfs/bin")).unwrap();
        let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["alpha:1", "mid", "zeta"]);
        assert_eq!(store.get("alpha:1").unwrap().name, "alpha:1");
        store.remove("mid").unwrap();
        let err = store.get("mid").unwrap_err();
        assert_eq!(err.to_string(), "no such image: mid");
        assert!(matches!(store.remove("mid"), Err(ImageError::NotFound(_))));
        assert_eq!(store.list().unwrap().len(), 2);
        store.import("mid", &src).unwrap();
    }

    #[test]
    fn resolves_names_and_paths_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let rootfs = dir.path().join("fs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        store.import("named", &rootfs).unwrap();
        assert_eq!(store.resolve("named").unwrap(), store.rootfs("named"));
        let by_path = format!("{}/./fs/", dir.path().display());
        assert_eq!(
            store.resolve(&by_path).unwrap(),
            rootfs.canonicalize().unwrap()
        );
        let err = store.resolve(dir.path().to_str().unwrap()).unwrap_err();
        assert!(matches!(err, ImageError::NotRootfs(_)), "{err}");
        let err = store.resolve("/no/such/rootfs").unwrap_err().to_string();
        assert!(err.contains("/no/such/rootfs"), "{err}");
        let err = store.resolve("nothere").unwrap_err().to_string();
        assert_eq!(err, "no such image: nothere");
        assert!(store.resolve("Not_Valid").is_err());
    }

    /// A packed applet table of `names`, as busybox lays it out.
    fn applet_table(names: &[String]) -> Vec<u8> {
        let mut blob = b"[\0[[\0".to_vec();
        for n in names {
            blob.extend_from_slice(n.as_bytes());
            blob.push(0);
        }
        blob.push(0);
        blob
    }

    fn synthetic_applets() -> Vec<String> {
        let mut names: Vec<String> = (0..60).map(|i| format!("ap{i:02}")).collect();
        names.extend(["ls", "sh", "busybox", "run-parts", "ssl_client"].map(String::from));
        names.sort();
        names
    }

    #[test]
    fn parses_applet_names() {
        let names = synthetic_applets();
        // A decoy start that is not followed by a valid table.
        let mut blob = b"junk\0[\0[[\0Not Valid\0\0more".to_vec();
        blob.extend(applet_table(&names));
        blob.extend_from_slice(b"trailing\0");
        let found = applet_names(&blob).unwrap();
        assert_eq!(found[..2], ["[", "[["]);
        assert_eq!(found[2..], names[..]);

        // Too few, unsorted, missing `sh`, unterminated: all refused.
        assert!(applet_names(&applet_table(&names[..40])).is_none());
        let mut unsorted = names.clone();
        unsorted.swap(3, 4);
        assert!(applet_names(&applet_table(&unsorted)).is_none());
        let no_sh: Vec<String> = names.iter().filter(|n| *n != "sh").cloned().collect();
        assert!(applet_names(&applet_table(&no_sh)).is_none());
        let table = applet_table(&names);
        assert!(applet_names(&table[..table.len() - 1]).is_none());
        assert!(applet_names(b"").is_none());
    }

    #[test]
    fn parses_the_host_busybox() {
        let Ok(real) = fs::read(HOST_BUSYBOX) else {
            return;
        };
        if !is_static_elf(&real) {
            return; // a dynamic busybox is refused anyway
        }
        let applets = applet_names(&real).expect("applet table of the host's busybox");
        for needed in ["sh", "ls", "ps", "top", "ip", "nc", "wget"] {
            assert!(applets.iter().any(|a| a == needed), "{needed}");
        }
    }

    /// A minimal static ELF: 64-bit little-endian header with one
    /// program header of type `p_type`, followed by `tail`.
    fn elf(p_type: u32, tail: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2; // 64-bit
        bytes[5] = 1; // little-endian
        bytes[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        bytes[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        bytes[64..68].copy_from_slice(&p_type.to_le_bytes());
        bytes.extend_from_slice(tail);
        bytes
    }

    #[test]
    fn recognises_static_elf() {
        assert!(is_static_elf(&elf(1, b"")));
        assert!(!is_static_elf(&elf(3, b"")), "PT_INTERP");
        assert!(!is_static_elf(&elf(6, b"")), "no PT_LOAD");
        assert!(!is_static_elf(&elf(1, b"")[..66]), "truncated");
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        // 32-bit big-endian.
        let mut be = vec![0u8; 52 + 32];
        be[..4].copy_from_slice(b"\x7fELF");
        be[4] = 1;
        be[5] = 2;
        be[28..32].copy_from_slice(&52u32.to_be_bytes());
        be[42..44].copy_from_slice(&32u16.to_be_bytes());
        be[44..46].copy_from_slice(&1u16.to_be_bytes());
        be[52..56].copy_from_slice(&1u32.to_be_bytes());
        assert!(is_static_elf(&be));
        be[52..56].copy_from_slice(&3u32.to_be_bytes());
        assert!(!is_static_elf(&be));
    }

    #[test]
    fn builds_busybox_from_mcm_busybox() {
        let dir = tempfile::tempdir().unwrap();
        let names = synthetic_applets();
        let fake = dir.path().join("busybox");
        fs::write(&fake, elf(1, &applet_table(&names))).unwrap();
        // The only test that sets the variable.
        std::env::set_var("MCM_BUSYBOX", &fake);
        let store = ImageStore::new(&dir.path().join("root"));
        let info = store.ensure_busybox();
        std::env::remove_var("MCM_BUSYBOX");
        let info = info.unwrap();
        assert_eq!(info.name, BUSYBOX);
        assert!(info.source.contains(fake.to_str().unwrap()));
        let rootfs = store.resolve(BUSYBOX).unwrap();
        assert_eq!(
            fs::read(rootfs.join("bin/busybox")).unwrap(),
            fs::read(&fake).unwrap()
        );
        let mode = |p: &str| fs::metadata(rootfs.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("bin/busybox"), 0o755);
        assert_eq!(mode("tmp"), 0o1777);
        assert_eq!(mode("root"), 0o700);
        for applet in ["[", "[[", "sh", "ls", "run-parts", "ap00", "ap59"] {
            assert_eq!(
                fs::read_link(rootfs.join("bin").join(applet)).unwrap(),
                Path::new("/bin/busybox"),
                "{applet}"
            );
        }
        // `busybox` itself stays the binary.
        assert!(fs::symlink_metadata(rootfs.join("bin/busybox"))
            .unwrap()
            .is_file());
        for d in [
            "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "home", "var", "run",
        ] {
            assert!(rootfs.join(d).is_dir(), "{d}");
        }
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/passwd")).unwrap(),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        );
        assert_eq!(
            fs::read_to_string(rootfs.join("etc/group")).unwrap(),
            "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
        );
        for empty in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
            assert_eq!(fs::metadata(rootfs.join(empty)).unwrap().len(), 0);
        }
        // Built once, then found.
        assert_eq!(store.ensure_busybox().unwrap().created, info.created);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn busybox_fallback_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(&dir.path().join("root"));
        for (file, bytes) in [
            ("dynamic", elf(3, b"")),
            ("script", b"#!/bin/sh\n".to_vec()),
        ] {
            let path = dir.path().join(file);
            fs::write(&path, bytes).unwrap();
            let err = store.build_busybox(&path).unwrap_err().to_string();
            assert!(err.contains("apt-get install busybox-static"), "{err}");
        }
        let err = store
            .build_busybox(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("statically linked busybox"), "{err}");
        assert!(store.list().unwrap().is_empty());
        // No applet table: the documented fallback list.
        let bare = dir.path().join("bare");
        fs::write(&bare, elf(1, b"")).unwrap();
        store.build_busybox(&bare).unwrap();
        let bin = store.rootfs(BUSYBOX).join("bin");
        for applet in FALLBACK_APPLETS {
            assert!(fs::symlink_metadata(bin.join(applet)).is_ok(), "{applet}");
        }
    }

    #[test]
    fn concurrent_builds_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("busybox");
        fs::write(&fake, elf(1, &applet_table(&synthetic_applets()))).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        let store = ImageStore::new(&dir.path().join("root"));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| store.build_busybox(&fake).unwrap());
                scope.spawn(|| {
                    // Refused when the other finished before it began,
                    // the winner's image when it lost the final rename.
                    match store.import("same", &src) {
                        Ok(info) => assert_eq!(info.name, "same"),
                        Err(ImageError::Exists(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                });
            }
        });
        let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, [BUSYBOX, "same"]);
        assert_eq!(
            fs::read_dir(dir.path().join("root/images"))
                .unwrap()
                .count(),
            2
        );
    }

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
    fn shifted_copies_are_built_once_per_rootfs_and_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/tool"), b"x").unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        symlink("tool", src.join("bin/alias")).unwrap();
        let store = ImageStore::new(&dir.path().join("root"));
        store.import("img", &src).unwrap();
        let mapping = IdMapping {
            host_uid: 100_000,
            host_gid: 200_000,
            size: 65_536,
        };
        let by_name = store.shifted(&store.rootfs("img"), mapping);
        let by_path = store.shifted(&src, mapping);
        if !nix::unistd::geteuid().is_root() {
            // Giving files away needs root; nothing is left half-built.
            let err = by_name.unwrap_err().to_string();
            assert!(err.contains("chown"), "{err}");
            assert!(by_path.is_err());
            let leftovers: Vec<_> = fs::read_dir(dir.path().join("root/images"))
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
                .collect();
            assert!(leftovers.is_empty());
            return;
        }
        let by_name = by_name.unwrap();
        let by_path = by_path.unwrap();
        assert!(by_name.starts_with(dir.path().join("root/images/img")));
        assert!(by_path.starts_with(dir.path().join("root/images/.shifted")));
        for rootfs in [&by_name, &by_path] {
            for (file, mode) in [("", 0o755), ("bin", 0o755), ("bin/tool", 0o4755)] {
                let meta = fs::symlink_metadata(rootfs.join(file)).unwrap();
                let original = fs::symlink_metadata(src.join(file)).unwrap();
                assert_eq!(meta.uid(), 100_000 + original.uid(), "{file}");
                assert_eq!(meta.gid(), 200_000 + original.gid(), "{file}");
                assert_eq!(meta.mode() & 0o7777, mode, "{file}");
            }
            let alias = fs::symlink_metadata(rootfs.join("bin/alias")).unwrap();
            assert_eq!(
                alias.uid(),
                100_000 + fs::symlink_metadata(src.join("bin/alias")).unwrap().uid()
            );
            assert_eq!(
                fs::read_link(rootfs.join("bin/alias")).unwrap(),
                Path::new("tool")
            );
        }
        // Cached, per mapping; the shifted copy is not an image.
        assert_eq!(
            store.shifted(&store.rootfs("img"), mapping).unwrap(),
            by_name
        );
        let other = IdMapping {
            host_uid: 300_000,
            ..mapping
        };
        assert_ne!(store.shifted(&src, other).unwrap(), by_path);
        let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["img"]);
        store.remove("img").unwrap();
        assert!(!by_name.exists());
    }
}
