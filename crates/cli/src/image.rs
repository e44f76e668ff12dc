//! The image store: root filesystems kept under
//! `<root>/images/<name>/rootfs`, with their record in
//! `<root>/images/<name>/image.json`, used read-only as OverlayFS lower
//! layers.
//!
//! An image comes from a tarball (plain or gzip-compressed, e.g. from
//! `docker export` or an Alpine minirootfs), from a directory holding a
//! root filesystem, or, for the built-in `busybox`, from the host's
//! statically linked busybox. Every image is built in a hidden temporary
//! directory of the store and renamed into place, so a half-written image
//! is never visible, a failed one leaves nothing behind, and of two
//! concurrent builds of one name exactly one wins. The same goes for the
//! copies owned by a user namespace's host ids that `--userns=remap` runs
//! on ([`ImageStore::shifted`]).
//!
//! An image's `rootfs` directory itself is mode 0700: host users cannot
//! reach the files inside, set-user-ID ones included. Containers do not
//! see that mode, since the root of an overlay mount takes its owner and
//! mode from the upper layer.

mod archive;
mod busybox;
mod tree;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mcm_common::container::IdMapping;
use serde::{Deserialize, Serialize};

use tree::Owners;

/// The name of the built-in image, made from the host's static busybox.
pub const BUSYBOX: &str = "busybox";

/// Longest image name: a file name's limit.
const NAME_MAX: usize = 255;
/// Longest name part (before `:`) and tag part (after it).
const PART_MAX: usize = 128;

/// What went wrong with an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image name breaks the naming rules (see [`ImageStore::import`]).
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No image has this name.
    #[error("no such image: {0}")]
    NotFound(String),
    /// An image of this name exists already.
    #[error("image {0} already exists; remove it first")]
    Exists(String),
    /// A root filesystem path that does not exist.
    #[error("no such root filesystem directory: {}", .0.display())]
    NoSuchPath(PathBuf),
    /// A source or path with neither `bin/` nor `usr/bin/`.
    #[error("{} is not a root filesystem (no bin/ or usr/bin/)", .0.display())]
    NotRootfs(PathBuf),
    /// A source that cannot be imported, for the reason given.
    #[error("cannot import {}: {reason}", path.display())]
    BadSource {
        /// The source.
        path: PathBuf,
        /// Why not, and what to do instead.
        reason: String,
    },
    /// The busybox the built-in image is made from is missing or not
    /// statically linked.
    #[error("{}", busybox::hint(.0))]
    NoStaticBusybox(PathBuf),
    /// A file operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, as a verb.
        op: &'static str,
        /// To what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// Maps an I/O error on `path` to [`ImageError::Io`].
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// An image's record, kept in its `image.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The image's name, as given to [`ImageStore::import`].
    pub name: String,
    /// When it was built, RFC 3339 in UTC to the second.
    pub created: String,
    /// Where it came from: the imported path (absolute when it could be
    /// resolved), or `built-in from <binary>` for `busybox`.
    pub source: String,
    /// Apparent size of its regular files and symlinks in bytes, each
    /// hard-linked file counted once.
    pub size: u64,
}

/// The images of one state root, under `<root>/images`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

impl ImageStore {
    /// The store of state root `root` (nothing is created until an image
    /// is).
    pub fn new(root: &Path) -> Self {
        ImageStore {
            dir: root.join("images"),
        }
    }

    /// The root filesystem directory of image `name` (which may not
    /// exist).
    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("rootfs")
    }

    /// Imports `source` as image `name`.
    ///
    /// `name` is `[a-z0-9][a-z0-9._-]{0,127}`, optionally followed by
    /// `:tag` with a tag of 1 to 128 characters `[A-Za-z0-9._-]`, at most
    /// 255 characters in all. `source` is a tar archive, plain or
    /// gzip-compressed (told by its magic bytes, not its name), or a
    /// directory holding a root filesystem; either must have `bin/` or
    /// `usr/bin/`. Modes (set-id bits included), owners, symlinks and
    /// device nodes are kept; hard links are kept from a tarball and
    /// become copies from a directory.
    ///
    /// An existing `name` is refused, and so is the loser of two
    /// concurrent imports of one name.
    pub fn import(&self, name: &str, source: &Path) -> Result<ImageInfo, ImageError> {
        validate_name(name)?;
        self.clear_incomplete(name);
        if fs::symlink_metadata(self.dir.join(name)).is_ok() {
            return Err(ImageError::Exists(name.to_string()));
        }
        let meta = fs::metadata(source).map_err(io_err("read", source))?;
        if meta.is_dir() {
            self.refuse_containing_store(source)?;
        }
        let origin = source
            .canonicalize()
            .unwrap_or_else(|_| source.to_path_buf());
        self.build(name, &origin.display().to_string(), source, |rootfs| {
            if meta.is_dir() {
                tree::copy_rootfs(source, rootfs, Owners::Same)
            } else {
                archive::unpack(source, rootfs)
            }
        })?
        // Another import of the name finished while this one ran.
        .ok_or_else(|| ImageError::Exists(name.to_string()))
    }

    /// Refuses a source directory that holds this store, which would
    /// otherwise be copied into itself.
    fn refuse_containing_store(&self, source: &Path) -> Result<(), ImageError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        let store = self.dir.canonicalize().map_err(io_err("read", &self.dir))?;
        let source_dir = source.canonicalize().map_err(io_err("read", source))?;
        if store.starts_with(&source_dir) {
            return Err(ImageError::BadSource {
                path: source.to_path_buf(),
                reason: format!("it contains the image store {}", store.display()),
            });
        }
        Ok(())
    }

    /// Every image, sorted by name. Hidden entries (builds in progress,
    /// or left over by a crash) and directories without a readable
    /// record are not images.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &self.dir)(e)),
        };
        let mut images: Vec<ImageInfo> = entries
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
            .filter_map(|e| self.get(e.file_name().to_str()?).ok())
            .collect();
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// The record of image `name`.
    pub fn get(&self, name: &str) -> Result<ImageInfo, ImageError> {
        validate_name(name)?;
        let path = self.dir.join(name).join("image.json");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| io_err("parse", &path)(io::Error::other(e)))
    }

    /// Removes image `name`, with its `--userns=remap` copies. The caller
    /// checks first that no container uses it. An image directory whose
    /// record is damaged is removed too.
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        validate_name(name)?;
        // Renamed away first, so the name is free at once and a crash
        // midway leaves only a hidden directory.
        let dir = self.dir.join(name);
        let doomed = self.dir.join(format!(".rm-{}", temp_label(name)));
        match fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io_err("remove", &dir)(e)),
        }
        let removed = match fs::symlink_metadata(&doomed) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&doomed),
            _ => fs::remove_file(&doomed),
        };
        removed.map_err(io_err("remove", &doomed))
    }

    /// Moves away and deletes `images/<name>` when it is a directory
    /// without image.json: images appear whole by rename, so such a
    /// directory is debris (of an older mcm, or of a hand edit) and would
    /// block the name for ever.
    fn clear_incomplete(&self, name: &str) {
        let dir = self.dir.join(name);
        if dir.is_dir() && !dir.join("image.json").exists() {
            let debris = self.dir.join(format!(".rm-{}", temp_label(name)));
            if fs::rename(&dir, &debris).is_ok() {
                let _ = fs::remove_dir_all(&debris);
            }
        }
    }

    /// The root filesystem for an image reference, as `mcm run` takes it.
    ///
    /// A reference with a `/` or a leading `.` is a path to a root
    /// filesystem directory, used as it is (canonicalized). Anything else
    /// is an image name; the built-in `busybox` is built on first use
    /// unless an image of that name was imported.
    pub fn resolve(&self, reference: &str) -> Result<PathBuf, ImageError> {
        if reference.contains('/') || reference.starts_with('.') {
            let path = Path::new(reference);
            let rootfs = match path.canonicalize() {
                Ok(rootfs) => rootfs,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ImageError::NoSuchPath(path.to_path_buf()))
                }
                Err(e) => return Err(io_err("resolve", path)(e)),
            };
            if !rootfs.is_dir() || !is_rootfs(&rootfs) {
                return Err(ImageError::NotRootfs(path.to_path_buf()));
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

    /// The built-in `busybox` image, built first if missing.
    ///
    /// It is made from the host's statically linked busybox,
    /// `/bin/busybox` (Debian's busybox-static) or the file `MCM_BUSYBOX`
    /// names, which is refused when it is dynamically linked: `bin/busybox`
    /// and a `bin/` symlink to it for each applet (read from the binary's
    /// name table, without running it), the usual top-level directories,
    /// a minimal `/etc/passwd` and `/etc/group`, and empty `/etc/hosts`,
    /// `/etc/resolv.conf` and `/etc/hostname` for the runtime to mount
    /// over. Concurrent first uses all succeed, with one build.
    pub fn ensure_busybox(&self) -> Result<ImageInfo, ImageError> {
        self.ensure_busybox_from(&busybox::binary())
    }

    /// [`ensure_busybox`](Self::ensure_busybox) with busybox taken from
    /// `binary`.
    fn ensure_busybox_from(&self, binary: &Path) -> Result<ImageInfo, ImageError> {
        if let Ok(info) = self.get(BUSYBOX) {
            return Ok(info);
        }
        self.clear_incomplete(BUSYBOX);
        self.build_busybox(binary)
    }

    /// Builds the built-in image from `binary`.
    fn build_busybox(&self, binary: &Path) -> Result<ImageInfo, ImageError> {
        let bytes = match fs::read(binary) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::NoStaticBusybox(binary.to_path_buf()))
            }
            Err(e) => return Err(io_err("read", binary)(e)),
        };
        if !busybox::is_static_elf(&bytes) {
            return Err(ImageError::NoStaticBusybox(binary.to_path_buf()));
        }
        let applets = busybox::applet_names(&bytes).unwrap_or_else(|| {
            busybox::FALLBACK_APPLETS
                .iter()
                .map(|s| s.to_string())
                .collect()
        });
        let origin = format!("built-in from {}", binary.display());
        self.build(BUSYBOX, &origin, binary, |rootfs| {
            busybox::write_rootfs(rootfs, &bytes, &applets)
        })?;
        // Built here, or by a concurrent process that won the rename.
        self.get(BUSYBOX)
    }

    /// A copy of `rootfs` (as [`resolve`](Self::resolve) returns it)
    /// whose files belong to the host ids that `mapping` gives the
    /// container's ids, for `--userns=remap`: the container's root then
    /// owns its files without being the host's root. Built once per
    /// rootfs and mapping: inside the image's directory for an image
    /// (removed with it), under `images/.shifted/` for a rootfs path
    /// (keyed by the path, so a changed directory is not noticed). Its
    /// top directory is mode 0700, owned by the shifted owner of
    /// `rootfs`.
    pub fn shifted(&self, rootfs: &Path, mapping: IdMapping) -> Result<PathBuf, ImageError> {
        let tag = format!("{}-{}-{}", mapping.host_uid, mapping.host_gid, mapping.size);
        let home = match self.image_of(rootfs) {
            // Not created here when missing: the image was removed.
            Some(image) => image.join(format!("shifted-{tag}")),
            None => {
                let paths = self.dir.join(".shifted");
                fs::create_dir_all(&paths).map_err(io_err("create", &paths))?;
                paths.join(format!(
                    "{:016x}-{tag}",
                    fnv1a(rootfs.as_os_str().as_encoded_bytes())
                ))
            }
        };
        let shifted = home.join("rootfs");
        if fs::symlink_metadata(&home).is_ok() {
            return Ok(shifted);
        }
        self.place("shift", &home, |tmp| {
            let into = tmp.join("rootfs");
            fs::create_dir(&into).map_err(io_err("create", &into))?;
            tree::copy_rootfs(rootfs, &into, Owners::Shifted(mapping))?;
            fs::set_permissions(&into, fs::Permissions::from_mode(0o700))
                .map_err(io_err("chmod", &into))
        })?;
        Ok(shifted)
    }

    /// The image directory holding `rootfs`, when it is an image's.
    fn image_of(&self, rootfs: &Path) -> Option<PathBuf> {
        let image = rootfs.parent()?;
        (rootfs.file_name()? == "rootfs" && image.parent()? == self.dir)
            .then(|| image.to_path_buf())
    }

    /// Fills a new hidden directory `.tmp-<label>-<uuid>` of the store
    /// with `fill`, then renames it to `target`. False when another
    /// process put `target` there first: this copy is then discarded.
    /// Nothing is left behind on failure.
    fn place(
        &self,
        label: &str,
        target: &Path,
        fill: impl FnOnce(&Path) -> Result<(), ImageError>,
    ) -> Result<bool, ImageError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        let tmp = self.dir.join(format!(".tmp-{}", temp_label(label)));
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

    /// Builds image `name` from `source` (recorded as `origin`), with
    /// `fill` writing its root filesystem. `None` when another process
    /// put `name` there first.
    fn build(
        &self,
        name: &str,
        origin: &str,
        source: &Path,
        fill: impl FnOnce(&Path) -> Result<(), ImageError>,
    ) -> Result<Option<ImageInfo>, ImageError> {
        let mut built = None;
        let placed = self.place(name, &self.dir.join(name), |tmp| {
            let rootfs = tmp.join("rootfs");
            fs::create_dir(&rootfs).map_err(io_err("create", &rootfs))?;
            fill(&rootfs)?;
            if !is_rootfs(&rootfs) {
                return Err(ImageError::NotRootfs(source.to_path_buf()));
            }
            // Out of host users' reach (see the module's documentation);
            // invisible to containers.
            std::os::unix::fs::lchown(
                &rootfs,
                Some(nix::unistd::geteuid().as_raw()),
                Some(nix::unistd::getegid().as_raw()),
            )
            .map_err(io_err("chown", &rootfs))?;
            fs::set_permissions(&rootfs, fs::Permissions::from_mode(0o700))
                .map_err(io_err("chmod", &rootfs))?;
            let info = ImageInfo {
                name: name.to_string(),
                created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                source: origin.to_string(),
                size: tree::tree_size(&rootfs),
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

/// `<label>-<uuid>` for a hidden working name, with `label` cut so that
/// the whole stays within a file name's limit.
fn temp_label(label: &str) -> String {
    // Labels are image names or fixed words: ASCII, so any cut is a
    // character boundary.
    let cut = label.get(..64).unwrap_or(label);
    format!("{cut}-{}", uuid::Uuid::new_v4().simple())
}

/// 64-bit FNV-1a, to name a path's shifted copy.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Checks `name` against the rules of [`ImageStore::import`].
fn validate_name(name: &str) -> Result<(), ImageError> {
    let invalid = |reason| ImageError::InvalidName {
        name: name.to_string(),
        reason,
    };
    let (base, tag) = match name.split_once(':') {
        Some((base, tag)) => (base, Some(tag)),
        None => (name, None),
    };
    let mut chars = base.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
        _ => return Err(invalid("it must start with a lower-case letter or digit")),
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "only lower-case letters, digits, '.', '_' and '-' are allowed before the tag",
        ));
    }
    if base.len() > PART_MAX {
        return Err(invalid(
            "the part before the tag is longer than 128 characters",
        ));
    }
    if let Some(tag) = tag {
        if tag.is_empty() || tag.len() > PART_MAX {
            return Err(invalid("the tag after ':' must have 1 to 128 characters"));
        }
        if !tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(invalid(
                "the tag may only hold letters, digits, '.', '_' and '-'",
            ));
        }
    }
    if name.len() > NAME_MAX {
        return Err(invalid("it is longer than 255 characters"));
    }
    Ok(())
}

/// A root filesystem has a `bin` or `usr/bin` directory, or symlink (as
/// on merged-/usr systems, where `bin -> usr/bin`; not followed, since it
/// may be absolute).
fn is_rootfs(dir: &Path) -> bool {
    ["bin", "usr/bin"].iter().any(|sub| {
        fs::symlink_metadata(dir.join(sub)).is_ok_and(|m| m.is_dir() || m.file_type().is_symlink())
    })
}

#[cfg(test)]
mod tests {
    use super::busybox::tests::{applet_table, elf, synthetic_applets};
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    #[test]
    fn a_directory_without_image_json_does_not_block_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        fs::create_dir_all(dir.path().join("images/debris/rootfs")).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        store.import("debris", &src).unwrap();
        assert!(store.get("debris").is_ok());
        // Nor that of the built-in image.
        fs::create_dir_all(dir.path().join("images/busybox/rootfs")).unwrap();
        let fake = dir.path().join("bb");
        fs::write(&fake, elf(1, &applet_table(&synthetic_applets()))).unwrap();
        store.ensure_busybox_from(&fake).unwrap();
    }

    #[test]
    fn names() {
        let long_part = "a".repeat(128);
        let longest = format!("{}:{}", "a".repeat(128), "T".repeat(126));
        for good in [
            "alpine",
            "alpine:3.19",
            "alpine:Latest_1.0-rc",
            "my-image_1.0",
            "9lives",
            "a",
            "a..b",
            long_part.as_str(),
            longest.as_str(),
        ] {
            validate_name(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        let too_long = format!("{longest}x");
        let long_base = "a".repeat(129);
        let long_tag = format!("a:{}", "t".repeat(129));
        for (bad, why) in [
            ("", "start"),
            ("Alpine", "start"),
            ("a/b", "allowed"),
            ("..", "start"),
            ("../etc", "start"),
            (".hidden", "start"),
            ("-dash", "start"),
            ("_under", "start"),
            ("has space", "allowed"),
            ("tab\t", "allowed"),
            ("x:", "1 to 128"),
            (":tag", "start"),
            ("x:a/b", "tag may only"),
            ("x:a:b", "tag may only"),
            ("caf\u{e9}", "allowed"),
            (long_base.as_str(), "longer than 128"),
            (long_tag.as_str(), "1 to 128"),
            (too_long.as_str(), "longer than 255"),
        ] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    use super::archive::tests::header;

    /// A docker-export-like tarball: `./`-prefixed and bare entries, a
    /// `.dockerenv`, a symlink, a hard link and an entry that tries to
    /// climb out with `..`.
    fn rootfs_tar(gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = header(tar::EntryType::Directory, 0, 0o755);
        builder.append_data(&mut dir, "./", io::empty()).unwrap();
        builder
            .append_data(&mut dir, "./bin/", io::empty())
            .unwrap();
        for (path, data, mode) in [
            ("./bin/sh", b"#!".as_slice(), 0o755),
            ("./bin/su", b"su".as_slice(), 0o4755),
            ("etc/os-release", b"ID=test\n".as_slice(), 0o640),
            (".dockerenv", b"".as_slice(), 0o755),
        ] {
            let mut file = header(tar::EntryType::Regular, data.len() as u64, mode);
            builder.append_data(&mut file, path, data).unwrap();
        }
        let mut link = header(tar::EntryType::Symlink, 0, 0o777);
        builder.append_link(&mut link, "bin/ash", "sh").unwrap();
        let mut hard = header(tar::EntryType::Link, 0, 0o755);
        builder
            .append_link(&mut hard, "./bin/bash", "./bin/sh")
            .unwrap();
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
            assert_eq!(
                info.source,
                tarball.canonicalize().unwrap().display().to_string()
            );
            // sh (and its hard link, once), su, os-release, the symlink.
            assert_eq!(info.size, 2 + 2 + 8 + 2);
            humantime::parse_rfc3339(&info.created).unwrap();
            assert_eq!(store.get(name).unwrap(), info);
            let rootfs = store.resolve(name).unwrap();
            assert_eq!(rootfs, store.rootfs(name));
            assert_eq!(fs::read(rootfs.join("bin/sh")).unwrap(), b"#!");
            assert_eq!(
                fs::read_link(rootfs.join("bin/ash")).unwrap(),
                Path::new("sh")
            );
            let mode = |p: &str| fs::symlink_metadata(rootfs.join(p)).unwrap().mode() & 0o7777;
            assert_eq!(mode("bin/sh"), 0o755);
            assert_eq!(mode("bin/su"), 0o4755);
            assert_eq!(mode("etc/os-release"), 0o640);
            // Out of host users' reach.
            assert_eq!(mode(""), 0o700);
            assert!(rootfs.join(".dockerenv").is_file());
            assert_eq!(
                fs::metadata(rootfs.join("bin/bash")).unwrap().ino(),
                fs::metadata(rootfs.join("bin/sh")).unwrap().ino()
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
        let err = store.import("evil", &tarball).unwrap_err().to_string();
        assert!(err.contains("evil.tar"), "{err}");
        assert!(!outside.join("x").exists());
        assert_eq!(fs::read_dir(dir.path().join("images")).unwrap().count(), 0);
    }

    #[test]
    fn refuses_non_rootfs_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let empty = dir.path().join("empty");
        fs::create_dir_all(empty.join("etc")).unwrap();
        // A `bin` that is a file does not count.
        fs::write(empty.join("bin"), b"").unwrap();
        let err = store.import("x", &empty).unwrap_err();
        assert!(matches!(err, ImageError::NotRootfs(_)), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a root filesystem (no bin/ or usr/bin/)",
                empty.display()
            )
        );
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
        // Not a tarball at all.
        let junk = dir.path().join("junk.tar");
        fs::write(&junk, vec![b'j'; 2000]).unwrap();
        let err = store.import("x", &junk).unwrap_err().to_string();
        assert!(err.contains("junk.tar"), "{err}");
        assert_eq!(fs::read_dir(dir.path().join("images")).unwrap().count(), 0);
        let missing = dir.path().join("nope.tar");
        let err = store.import("x", &missing).unwrap_err().to_string();
        assert!(err.contains("nope.tar"), "{err}");
        assert!(matches!(
            store.import("Bad/Name", &empty),
            Err(ImageError::InvalidName { .. })
        ));
    }

    #[test]
    fn refuses_a_directory_holding_the_store() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        let store = ImageStore::new(&dir.path().join("root"));
        let err = store.import("self", dir.path()).unwrap_err();
        assert!(matches!(err, ImageError::BadSource { .. }), "{err}");
        assert!(
            err.to_string().contains("contains the image store"),
            "{err}"
        );
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn directory_import_keeps_symlinks_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::create_dir_all(src.join("usr/lib")).unwrap();
        fs::write(src.join("bin/tool"), b"xyz").unwrap();
        fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o4750)).unwrap();
        fs::set_permissions(src.join("usr/lib"), fs::Permissions::from_mode(0o711)).unwrap();
        symlink("/etc/passwd", src.join("link")).unwrap();
        symlink("does-not-exist", src.join("dangling")).unwrap();
        // A symlink to a directory outside is copied, not followed.
        symlink(dir.path(), src.join("up")).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let store = ImageStore::new(&dir.path().join("root"));
        let info = store.import("copy", &src).unwrap();
        assert_eq!(
            info.size,
            3 + "/etc/passwd".len() as u64
                + "does-not-exist".len() as u64
                + dir.path().as_os_str().len() as u64
        );
        let rootfs = store.rootfs("copy");
        let tool = fs::metadata(rootfs.join("bin/tool")).unwrap();
        let original = fs::metadata(src.join("bin/tool")).unwrap();
        assert_eq!(tool.mode() & 0o7777, 0o4750);
        assert_eq!((tool.uid(), tool.gid()), (original.uid(), original.gid()));
        assert_eq!(
            fs::metadata(rootfs.join("usr/lib")).unwrap().mode() & 0o777,
            0o711
        );
        for (link, target) in [
            ("link", Path::new("/etc/passwd")),
            ("dangling", Path::new("does-not-exist")),
            ("up", dir.path()),
        ] {
            assert_eq!(fs::read_link(rootfs.join(link)).unwrap(), target);
        }
        assert!(fs::symlink_metadata(rootfs.join("fifo")).is_ok());
        assert_eq!(
            fs::metadata(&rootfs).unwrap().mode() & 0o7777,
            0o700,
            "out of host users' reach"
        );
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
        assert!(matches!(
            store.get("../x"),
            Err(ImageError::InvalidName { .. })
        ));
        store.remove("mid").unwrap();
        let err = store.get("mid").unwrap_err();
        assert_eq!(err.to_string(), "no such image: mid");
        assert!(matches!(store.remove("mid"), Err(ImageError::NotFound(_))));
        assert!(matches!(
            store.remove(".tmp-x-1"),
            Err(ImageError::InvalidName { .. })
        ));
        assert_eq!(store.list().unwrap().len(), 2);
        store.import("mid", &src).unwrap();
        // A damaged image is not listed, but can be removed.
        fs::write(dir.path().join("root/images/mid/image.json"), b"{").unwrap();
        assert!(store.get("mid").unwrap_err().to_string().contains("parse"));
        assert_eq!(store.list().unwrap().len(), 2);
        store.remove("mid").unwrap();
        assert!(!dir.path().join("root/images/mid").exists());
        let hidden: Vec<_> = fs::read_dir(dir.path().join("root/images"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".rm-"))
            .collect();
        assert!(hidden.is_empty());
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
        let not_rootfs = dir.path().to_str().unwrap();
        let err = store.resolve(not_rootfs).unwrap_err();
        assert!(matches!(err, ImageError::NotRootfs(_)), "{err}");
        assert!(err.to_string().contains(not_rootfs), "{err}");
        let err = store.resolve("/no/such/rootfs").unwrap_err();
        assert!(matches!(err, ImageError::NoSuchPath(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "no such root filesystem directory: /no/such/rootfs"
        );
        let err = store.resolve("./no-such-dir").unwrap_err().to_string();
        assert!(err.contains("./no-such-dir"), "{err}");
        let err = store.resolve("nothere").unwrap_err().to_string();
        assert_eq!(err, "no such image: nothere");
        assert!(matches!(
            store.resolve("Not_Valid"),
            Err(ImageError::InvalidName { .. })
        ));
    }

    #[test]
    fn builds_busybox_from_mcm_busybox() {
        let host = Path::new(busybox::HOST_BUSYBOX);
        match fs::read(host) {
            Ok(bytes) if busybox::is_static_elf(&bytes) => {}
            Ok(_) => {
                eprintln!("skipped: {} is not statically linked", host.display());
                return;
            }
            Err(e) => {
                eprintln!("skipped: cannot read {}: {e}", host.display());
                return;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        // A copy elsewhere, so that the override is what is used. This is
        // the only test that sets the variable.
        let real = dir.path().join("my-busybox");
        fs::copy(host, &real).unwrap();
        std::env::set_var("MCM_BUSYBOX", &real);
        let store = ImageStore::new(&dir.path().join("root"));
        let info = store.ensure_busybox();
        std::env::remove_var("MCM_BUSYBOX");
        let info = info.unwrap();
        assert_eq!(info.name, BUSYBOX);
        assert_eq!(info.source, format!("built-in from {}", real.display()));
        let rootfs = store.resolve(BUSYBOX).unwrap();
        assert_eq!(
            fs::read(rootfs.join("bin/busybox")).unwrap(),
            fs::read(host).unwrap()
        );
        let bin = rootfs.join("bin");
        let links = fs::read_dir(&bin).unwrap().count() - 1;
        eprintln!("busybox image: {links} applet links");
        assert!(links >= 100, "{links}");
        for applet in ["sh", "ls", "ps", "top", "ip", "nc", "wget", "["] {
            assert_eq!(
                fs::read_link(bin.join(applet)).unwrap(),
                Path::new("/bin/busybox"),
                "{applet}"
            );
        }
        assert_eq!(store.ensure_busybox().unwrap(), info);
    }

    #[test]
    fn builds_busybox_from_a_synthetic_binary() {
        let dir = tempfile::tempdir().unwrap();
        let names = synthetic_applets();
        let fake = dir.path().join("busybox");
        fs::write(&fake, elf(1, &applet_table(&names))).unwrap();
        let store = ImageStore::new(&dir.path().join("root"));
        let info = store.build_busybox(&fake).unwrap();
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
        for empty in ["sbin", "usr/bin", "usr/sbin"] {
            assert_eq!(fs::read_dir(rootfs.join(empty)).unwrap().count(), 0);
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
        assert_eq!(store.build_busybox(&fake).unwrap(), info);
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
            let err = store.build_busybox(&path).unwrap_err();
            assert!(matches!(err, ImageError::NoStaticBusybox(_)), "{err}");
            let err = err.to_string();
            assert!(err.contains("apt-get install busybox-static"), "{err}");
            assert!(err.contains(file), "{err}");
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
        for applet in busybox::FALLBACK_APPLETS {
            assert!(fs::symlink_metadata(bin.join(applet)).is_ok(), "{applet}");
        }
    }

    #[test]
    fn concurrent_builds_all_succeed_and_imports_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("busybox");
        fs::write(&fake, elf(1, &applet_table(&synthetic_applets()))).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("bin")).unwrap();
        let store = ImageStore::new(&dir.path().join("root"));
        let imported = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| store.build_busybox(&fake).unwrap());
                scope.spawn(|| match store.import("same", &src) {
                    Ok(info) => {
                        assert_eq!(info.name, "same");
                        imported.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    // Before it began or at the final rename.
                    Err(ImageError::Exists(_)) => {}
                    Err(e) => panic!("{e}"),
                });
            }
        });
        assert_eq!(imported.into_inner(), 1);
        let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, [BUSYBOX, "same"]);
        // No temporary directory is left.
        assert_eq!(
            fs::read_dir(dir.path().join("root/images"))
                .unwrap()
                .count(),
            2
        );
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
            for (file, mode) in [("", 0o700), ("bin", 0o755), ("bin/tool", 0o4755)] {
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
