//! TEMPORARY stub until the image store lands.
use std::path::{Path, PathBuf};
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {0}")]
    Other(String),
}
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub name: String,
    pub size: u64,
    pub source: String,
}
pub struct ImageStore {
    dir: PathBuf,
}
impl ImageStore {
    pub fn new(root: &Path) -> Self {
        ImageStore {
            dir: root.join("images"),
        }
    }
    pub fn import(&self, name: &str, _s: &Path) -> Result<ImageInfo, ImageError> {
        Err(ImageError::Other(name.into()))
    }
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        Ok(vec![])
    }
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        Err(ImageError::Other(name.into()))
    }
    pub fn resolve(&self, r: &str) -> Result<PathBuf, ImageError> {
        if r.contains('/') {
            return Ok(PathBuf::from(r));
        }
        let rootfs = self.dir.join(r).join("rootfs");
        if !rootfs.exists() {
            if r != "busybox" {
                return Err(ImageError::Other(format!("{r} not found")));
            }
            std::fs::create_dir_all(rootfs.join("bin")).unwrap();
            for d in ["etc", "proc", "sys", "dev", "tmp", "root"] {
                std::fs::create_dir_all(rootfs.join(d)).unwrap();
            }
            std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
            for a in [
                "sh", "echo", "cat", "ls", "sleep", "true", "hostname", "ps", "readlink", "grep",
                "tty", "stty", "awk", "head", "wc", "mkdir", "chroot", "ping", "pwd", "rm", "kill",
                "id", "env",
            ] {
                let _ = std::os::unix::fs::symlink("/bin/busybox", rootfs.join("bin").join(a));
            }
            std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        }
        Ok(rootfs)
    }
}
