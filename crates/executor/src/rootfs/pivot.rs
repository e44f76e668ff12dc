//! pivot_root into the new root and detach the old one, so the host's
//! filesystem is no longer reachable (unlike chroot, which can be escaped).

use std::path::Path;

use nix::mount::{umount2, MntFlags};
use nix::unistd::{chdir, pivot_root};

use crate::error::{SetupError, SetupResult};

/// Makes `new_root` (a mount point) the root of this mount namespace.
pub fn pivot_into(new_root: &Path) -> SetupResult<()> {
    chdir(new_root).map_err(|errno| SetupError::io("chdir", new_root, errno.into()))?;
    // pivot_root(".", ".") stacks the old root on top of the new one at "/",
    // with no directory needed for it; unmounting "." then drops it.
    pivot_root(".", ".").map_err(|errno| SetupError::Pivot { errno })?;
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(|errno| SetupError::io("detach old root", Path::new("/"), errno.into()))?;
    chdir("/").map_err(|errno| SetupError::io("chdir", Path::new("/"), errno.into()))
}
