//! /etc/hostname, /etc/hosts and /etc/resolv.conf, generated for each start
//! and bind-mounted over the image's files.
//!
//! They are written to the container's own /dev/shm tmpfs, bound into /etc,
//! and unlinked there: the bind mounts keep them alive for as long as the
//! container runs, the container sees no trace of them under /dev/shm, and
//! no file is created or removed on the state root's disk for them.

use std::fs;
use std::path::Path;

use nix::mount::MsFlags;

use super::{ensure_dir, mount_at};
use crate::error::{SetupError, SetupResult};
use mcm_common::container::{ContainerConfig, NetworkMode};

/// One generated file: its name under /etc and its content.
pub type EtcFile = (&'static str, String);

/// The files a container gets. Read before `pivot_root`, while the host's
/// /etc/resolv.conf is still reachable.
pub fn generate(config: &ContainerConfig) -> Vec<EtcFile> {
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
        config.hostname
    );
    let resolv = match config.network {
        NetworkMode::Host => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        NetworkMode::None => String::new(),
    };
    vec![
        ("hostname", format!("{}\n", config.hostname)),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ]
}

/// Binds `files` over `root/etc/<name>`, staged in `root/dev/shm` (a fresh
/// tmpfs of this container's, mounted by then).
pub fn bind_all(root: &Path, files: &[EtcFile]) -> SetupResult<()> {
    if files.is_empty() {
        return Ok(());
    }
    let etc = ensure_dir(root, "etc")?;
    let staging = root.join("dev/shm");
    for (name, content) in files {
        let target = etc.join(name);
        // The image may lack the file, or hold a symlink there (Debian's
        // resolv.conf often is one): mount over a plain file we own.
        if fs::symlink_metadata(&target)
            .map(|m| !m.is_file())
            .unwrap_or(true)
        {
            let _ = fs::remove_file(&target);
            fs::write(&target, b"").map_err(|e| SetupError::io("create", &target, e))?;
        }
        let source = staging.join(format!(".mcm-{name}"));
        fs::write(&source, content).map_err(|e| SetupError::io("write", &source, e))?;
        mount_at(Some(&source), &target, None, MsFlags::MS_BIND, None)?;
        fs::remove_file(&source).map_err(|e| SetupError::io("remove", &source, e))?;
    }
    Ok(())
}
