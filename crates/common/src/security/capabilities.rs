//! Capability sets: Docker's default set, `--cap-add`/`--cap-drop`, and
//! applying a set to the current process (bounding, permitted, effective,
//! inheritable; ambient cleared).

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

/// Docker's default capabilities.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// A capability name that does not exist, or applying a set failed.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("unknown capability {0:?}")]
    Unknown(String),
    #[error("cannot set the {set} capabilities: {source}")]
    Apply {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
}

fn bit(cap: Capability) -> u64 {
    1u64 << cap.index()
}

/// Every capability this library knows, as a mask.
pub fn all_known() -> u64 {
    caps::all().into_iter().map(bit).fold(0, |m, b| m | b)
}

/// Parses `NET_ADMIN`, `cap_net_admin` or `CAP_NET_ADMIN`.
fn parse(name: &str) -> Result<Capability, CapabilityError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full).map_err(|_| CapabilityError::Unknown(name.to_string()))
}

/// Docker's rules: start from the default set (or nothing when `ALL` is
/// dropped), remove the drops, add the adds (`ALL` adds everything).
pub fn resolve(add: &[String], drop: &[String]) -> Result<u64, CapabilityError> {
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    let mut mask = if drop.iter().any(is_all) {
        0
    } else {
        DEFAULT_CAPABILITIES
            .into_iter()
            .map(bit)
            .fold(0, |m, b| m | b)
    };
    for name in drop.iter().filter(|n| !is_all(n)) {
        mask &= !bit(parse(name)?);
    }
    for name in add {
        mask |= if is_all(name) {
            all_known()
        } else {
            bit(parse(name)?)
        };
    }
    Ok(mask)
}

/// Limits the current process to `mask`: the bounding set first (while
/// CAP_SETPCAP is still held), then effective, permitted and inheritable,
/// and the ambient set cleared, so nothing can be regained by exec.
pub fn apply(mask: u64) -> Result<(), CapabilityError> {
    // Only what this process holds: the kernel may know fewer capabilities
    // than this library does.
    let held = caps::read(None, CapSet::Permitted).unwrap_or_default();
    let keep: CapsHashSet = held.into_iter().filter(|c| mask & bit(*c) != 0).collect();
    let fail = |set| move |source| CapabilityError::Apply { set, source };
    for cap in caps::all() {
        if !keep.contains(&cap) {
            // A capability the running kernel lacks cannot be dropped (EINVAL): skip it.
            if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap).map_err(fail("bounding"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(fail("ambient"))?;
    caps::set(None, CapSet::Effective, &keep).map_err(fail("effective"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(fail("permitted"))?;
    caps::set(None, CapSet::Inheritable, &keep).map_err(fail("inheritable"))?;
    Ok(())
}

/// The `CAP_*` names of the capabilities in `mask`.
pub fn names(mask: u64) -> std::collections::BTreeSet<String> {
    caps::all()
        .into_iter()
        .filter(|c| mask & bit(*c) != 0)
        .map(|c| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_is_dockers() {
        let mask = resolve(&[], &[]).unwrap();
        assert_eq!(mask.count_ones(), 14);
        assert_ne!(mask & bit(Capability::CAP_KILL), 0);
        assert_eq!(mask & bit(Capability::CAP_SYS_ADMIN), 0);
    }

    #[test]
    fn add_and_drop_follow_docker() {
        let mask = resolve(&["net_admin".into()], &["CAP_KILL".into()]).unwrap();
        assert_ne!(mask & bit(Capability::CAP_NET_ADMIN), 0);
        assert_eq!(mask & bit(Capability::CAP_KILL), 0);
        assert_eq!(resolve(&[], &["ALL".into()]).unwrap(), 0);
        assert_eq!(
            resolve(&["CHOWN".into()], &["all".into()]).unwrap(),
            bit(Capability::CAP_CHOWN)
        );
        assert_eq!(resolve(&["ALL".into()], &[]).unwrap(), all_known());
    }

    #[test]
    fn unknown_names_are_errors() {
        let err = resolve(&["NOT_A_CAP".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("NOT_A_CAP"));
        assert!(resolve(&[], &["bogus".into()]).is_err());
    }
}
