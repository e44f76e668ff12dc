//! `--userns=remap`: the container's root is an unprivileged host id.

use std::fs;

use mcm_common::container::IdMapping;

/// Host ids for `--userns=remap`: the `mcm` entries of /etc/subuid and
/// /etc/subgid, or 100000-165535 when there are none.
pub fn remap_ids() -> IdMapping {
    const DEFAULT_START: u32 = 100_000;
    const DEFAULT_SIZE: u32 = 65_536;
    let lookup = |file: &str| -> Option<(u32, u32)> {
        fs::read_to_string(file).ok()?.lines().find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == "mcm").then_some(())?;
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
    };
    let (host_uid, uid_size) = lookup("/etc/subuid").unwrap_or((DEFAULT_START, DEFAULT_SIZE));
    let (host_gid, gid_size) = lookup("/etc/subgid").unwrap_or((DEFAULT_START, DEFAULT_SIZE));
    IdMapping {
        host_uid,
        host_gid,
        size: uid_size.min(gid_size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_range_without_subid_entries() {
        let ids = remap_ids();
        assert!(ids.size > 0);
        assert!(ids.host_uid > 0 && ids.host_gid > 0);
    }
}
