//! The on-disk state store: atomic JSON files and advisory locks.
//!
//! Every metadata file is replaced as a whole (temp file, fsync, rename), so
//! a reader sees the old or the new copy, never a torn one, even when the
//! writer is killed midway.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::container::ExitRecord;
use crate::error::{io_context, Error, Result};

/// Writes `value` as JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    replace(path, &encode(path, value)?, true)
}

/// Writes `value` atomically but without fsync, for files a power loss
/// may take without harm: runtime state (after a new boot id it reads as
/// exited whatever it holds) and the config of a `--rm` container.
pub fn write_json_volatile<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    replace(path, &encode(path, value)?, false)
}

/// Compact JSON: quicker to read back, which `ps` does for every container.
fn encode<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| Error::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `bytes`: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, bytes, true)
}

/// Temp file in the same directory, optionally fsync, rename.
fn replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_context("write", path)(e)
    })
}

/// Reads a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_context("read", path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| Error::Corrupt {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads the exit record; `None` when absent, empty or incomplete.
pub fn read_exit(path: &Path) -> Option<ExitRecord> {
    ExitRecord::decode(&fs::read_to_string(path).ok()?)
}

/// Writes an exit record through an already open file with one write(2).
pub fn write_exit_to(file: &File, record: &ExitRecord) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let line = record.encode();
    file.set_len(0)?;
    file.write_all_at(line.as_bytes(), 0)
}

/// Records an exit in the exit file unless a record is already there.
pub fn record_exit_if_missing(path: &Path, record: &ExitRecord) -> Result<()> {
    if read_exit(path).is_some() {
        return Ok(());
    }
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_context("open", path))?;
    write_exit_to(&file, record).map_err(io_context("write", path))
}

/// An exclusive advisory lock on a directory, released on drop. Locking the
/// directory itself needs no lock file, which would cost an inode to create
/// and to remove with every container.
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<File>,
}

impl Lock {
    /// Blocks until the exclusive lock on the directory `path` is held.
    pub fn exclusive(path: &Path) -> io::Result<Lock> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_DIRECTORY)
            .open(path)?;
        let flock = Flock::lock(dir, FlockArg::LockExclusive).map_err(|(_, errno)| errno)?;
        Ok(Lock { _flock: flock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Thing {
        n: u32,
    }

    #[test]
    fn json_round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("thing.json");
        assert_eq!(read_json::<Thing>(&path).unwrap(), None);
        write_json(&path, &Thing { n: 5 }).unwrap();
        assert_eq!(read_json::<Thing>(&path).unwrap(), Some(Thing { n: 5 }));
        // No temp file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_json_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("thing.json");
        fs::write(&path, b"{\"n\": 5").unwrap();
        let err = read_json::<Thing>(&path).unwrap_err();
        assert!(err.to_string().contains("thing.json"), "{err}");
    }

    #[test]
    fn leftover_temp_file_does_not_hide_the_old_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("thing.json");
        write_json(&path, &Thing { n: 1 }).unwrap();
        // A writer killed between write and rename leaves only a temp file.
        fs::write(dir.path().join(".thing.json.tmp-999"), b"{\"n\":").unwrap();
        assert_eq!(read_json::<Thing>(&path).unwrap(), Some(Thing { n: 1 }));
    }

    #[test]
    fn exit_record_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exit");
        assert_eq!(read_exit(&path), None);
        record_exit_if_missing(
            &path,
            &ExitRecord {
                code: 3,
                finished_at: 10,
            },
        )
        .unwrap();
        record_exit_if_missing(
            &path,
            &ExitRecord {
                code: 137,
                finished_at: 20,
            },
        )
        .unwrap();
        assert_eq!(
            read_exit(&path),
            Some(ExitRecord {
                code: 3,
                finished_at: 10
            })
        );
    }

    #[test]
    fn lock_is_exclusive_between_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let held = Lock::exclusive(dir.path()).unwrap();
        let other = File::open(dir.path()).unwrap();
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        let other = File::open(dir.path()).unwrap();
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_ok());
        assert!(Lock::exclusive(&dir.path().join("missing")).is_err());
    }
}
