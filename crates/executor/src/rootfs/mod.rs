//! The container's root: OverlayFS over the image, the kernel filesystems,
//! the generated /etc files, then pivot_root into it.
//!
//! Runs in the cloned child, inside its fresh mount namespace, before the
//! command exists; nothing here is visible on the host because `/` is made
//! private first.

mod dev;
pub mod etc;
mod masks;
mod pivot;
mod volumes;

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use crate::error::{SetupError, SetupResult};

/// Everything needed to build the root.
pub struct RootfsPlan<'a> {
    /// The image's root filesystem (read-only lower layer).
    pub lower: &'a Path,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    /// Files bound over `/etc/<name>` (hostname, hosts, resolv.conf).
    pub etc_files: Vec<etc::EtcFile>,
    /// Every host device in /dev (`--privileged`).
    pub host_devices: bool,
    /// Extra host devices (`--device`).
    pub devices: &'a [mcm_common::container::DeviceConfig],
    /// User mounts, placed after the container's own.
    pub mounts: &'a [mcm_common::container::MountConfig],
    /// Mount the root read-only.
    pub read_only: bool,
    /// The writable layer is thrown away after the run (`--rm`): overlay
    /// need not sync it to disk when it is unmounted.
    pub disposable: bool,
    /// Hide and write-protect the host's kernel interfaces (all but `--privileged`).
    pub mask_kernel_paths: bool,
}

/// Builds the root and pivots into it; afterwards `/` is the container's.
pub fn build(plan: &RootfsPlan) -> SetupResult<()> {
    // Nothing mounted from here on may propagate back to the host.
    mount_at(
        None::<&str>,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    mount_overlay(plan)?;
    mount_kernel_filesystems(&plan.merged, plan)?;
    etc::bind_all(&plan.merged, &plan.etc_files)?;
    volumes::mount_all(&plan.merged, plan.mounts)?;
    if plan.mask_kernel_paths {
        masks::apply(&plan.merged)?;
    }
    if plan.read_only {
        volumes::make_root_read_only(&plan.merged)?;
    }
    pivot::pivot_into(&plan.merged)
}

fn mount_overlay(plan: &RootfsPlan) -> SetupResult<()> {
    let layers = format!(
        "lowerdir={},upperdir={},workdir={}",
        plan.lower.display(),
        plan.upper.display(),
        plan.work.display()
    );
    // nodev: device nodes the container creates cannot be opened.
    let mount_with = |data: &str| {
        mount_at(
            Some("overlay"),
            &plan.merged,
            Some("overlay"),
            MsFlags::MS_NODEV,
            Some(data),
        )
    };
    if !plan.disposable {
        return mount_with(&layers);
    }
    // A disposable layer is never synced: without `volatile`, unmounting
    // the overlay syncs the whole upper file system, the slowest step of a
    // `run --rm`. Overlay refuses to mount a work dir that was once
    // mounted volatile until its marker (`work/incompat/volatile/dirty`) is gone; the layer is thrown away
    // anyway, so a marker left by an interrupted run is simply removed.
    let _ = fs::remove_dir_all(plan.work.join("work/incompat"));
    match mount_with(&format!("{layers},volatile")) {
        // Kernels before 5.10 do not know the option.
        Err(SetupError::Mount {
            errno: nix::errno::Errno::EINVAL,
            ..
        }) => mount_with(&layers),
        result => result,
    }
}

fn mount_kernel_filesystems(root: &Path, plan: &RootfsPlan) -> SetupResult<()> {
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    // /proc of the new PID namespace: this process is its PID 1.
    mount_at(
        Some("proc"),
        &ensure_dir(root, "proc")?,
        Some("proc"),
        nosuid_noexec_nodev,
        None,
    )?;
    dev::populate(&ensure_dir(root, "dev")?, plan.host_devices, plan.devices)?;
    mount_at(
        Some("sysfs"),
        &ensure_dir(root, "sys")?,
        Some("sysfs"),
        nosuid_noexec_nodev | MsFlags::MS_RDONLY,
        None,
    )
}

/// `root/name`, created as a directory when missing.
pub(crate) fn ensure_dir(root: &Path, name: &str) -> SetupResult<PathBuf> {
    let dir = root.join(name);
    match fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(SetupError::io("create directory", &dir, e)),
    }
}

/// mount(2) with an error that says what was mounted where.
pub(crate) fn mount_at<S: nix::NixPath + ?Sized + AsRef<std::ffi::OsStr>>(
    source: Option<&S>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> SetupResult<()> {
    mount(source, target, fstype, flags, data).map_err(|errno| SetupError::Mount {
        source_name: source
            .map(|s| s.as_ref().to_string_lossy().into_owned())
            .unwrap_or_else(|| "none".into()),
        target: target.to_path_buf(),
        fstype: fstype.unwrap_or("bind").to_string(),
        data: data.unwrap_or("").to_string(),
        errno,
    })
}
