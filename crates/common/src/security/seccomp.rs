//! Seccomp filters built with the `seccompiler` crate: mcm's default
//! profile (what Docker's default profile refuses, refused here too) and
//! Docker-format JSON profiles.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::Deserialize;
use serde_json::json;

/// Building or installing a filter failed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("invalid seccomp profile: {0}")]
    Profile(String),
    #[error("cannot build the seccomp filter: {0}")]
    Build(String),
    #[error("cannot install the seccomp filter: {0}")]
    Install(String),
}

/// Filters to install in order (a later one wins a tie between errnos).
pub type Filters = Vec<BpfProgram>;

fn arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| SeccompError::Build(e.to_string()))
}

/// System calls mcm's default profile refuses with EPERM, as Docker's
/// default profile does for a container without extra capabilities:
/// kernel modules and kexec, keyrings, BPF and perf, mounting and
/// namespaces, tracing other processes, clocks, swap, reboot, quotas,
/// NUMA policy, I/O ports and obsolete calls.
const DENIED: &[i64] = &[
    libc::SYS_acct,
    libc::SYS_add_key,
    libc::SYS_bpf,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_settime,
    libc::SYS_settimeofday,
    libc::SYS_delete_module,
    libc::SYS_finit_module,
    libc::SYS_init_module,
    libc::SYS_get_mempolicy,
    libc::SYS_set_mempolicy,
    libc::SYS_mbind,
    libc::SYS_move_pages,
    libc::SYS_kcmp,
    libc::SYS_kexec_file_load,
    libc::SYS_kexec_load,
    libc::SYS_keyctl,
    libc::SYS_request_key,
    libc::SYS_lookup_dcookie,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_perf_event_open,
    libc::SYS_pivot_root,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_ptrace,
    libc::SYS_quotactl,
    libc::SYS_reboot,
    libc::SYS_setns,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_unshare,
    libc::SYS_userfaultfd,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_nfsservctl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ustat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS__sysctl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_sysfs,
];

/// clone(2) flags that create namespaces: refused like `unshare`.
const NAMESPACE_FLAGS: [u64; 8] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWTIME as u64,
];

fn build_error(e: impl std::fmt::Display) -> SeccompError {
    SeccompError::Build(e.to_string())
}

/// mcm's default profile.
pub fn default_filters() -> Result<Filters, SeccompError> {
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&nr| (nr, Vec::new())).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let condition = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?;
            SeccompRule::new(vec![condition])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    denied.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(build_error)?;
    // clone3 passes its flags in memory a filter cannot read: answer
    // ENOSYS so libcs fall back to clone(2), whose flags are checked.
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(build_error)?;
    [deny, clone3]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).map_err(build_error))
        .collect()
}

/// `struct sock_fprog` of linux/filter.h.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const seccompiler::sock_filter,
}

/// Installs `filters` on the calling thread (before exec; inherited by
/// every child and kept across exec).
///
/// Installed with seccomp(2) directly rather than the crate's helper,
/// which always sets no_new_privs: Docker leaves setuid binaries working
/// unless `no-new-privileges` is asked for, and so does mcm. Without
/// no_new_privs the kernel requires CAP_SYS_ADMIN, which the runtime still
/// holds at this point.
pub fn install(filters: &Filters) -> Result<(), SeccompError> {
    for filter in filters {
        let program = SockFprog {
            len: filter.len() as libc::c_ushort,
            filter: filter.as_ptr(),
        };
        // SAFETY: `program` points at `filter`, a valid BPF program that
        // outlives the call; the kernel copies it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &program as *const SockFprog,
            )
        };
        if ret != 0 {
            return Err(SeccompError::Install(
                std::io::Error::last_os_error().to_string(),
            ));
        }
    }
    Ok(())
}

/// Docker's profile format (the parts that matter on Linux).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerProfile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<DockerRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerRule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    args: Vec<DockerArg>,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Deserialize, Default)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerArg {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

/// Docker's architecture name for this machine.
fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction, SeccompError> {
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        other => return Err(SeccompError::Profile(format!("unsupported action {other}"))),
    })
}

fn action_json(action: &SeccompAction) -> serde_json::Value {
    match action {
        SeccompAction::Allow => json!("allow"),
        SeccompAction::Errno(n) => json!({ "errno": n }),
        SeccompAction::KillThread => json!("kill_thread"),
        SeccompAction::KillProcess => json!("kill_process"),
        SeccompAction::Trap => json!("trap"),
        SeccompAction::Log => json!("log"),
        SeccompAction::Trace(n) => json!({ "trace": n }),
    }
}

fn op_json(arg: &DockerArg) -> Result<(serde_json::Value, u64), SeccompError> {
    Ok(match arg.op.as_str() {
        "SCMP_CMP_EQ" => (json!("eq"), arg.value),
        "SCMP_CMP_NE" => (json!("ne"), arg.value),
        "SCMP_CMP_LT" => (json!("lt"), arg.value),
        "SCMP_CMP_LE" => (json!("le"), arg.value),
        "SCMP_CMP_GT" => (json!("gt"), arg.value),
        "SCMP_CMP_GE" => (json!("ge"), arg.value),
        "SCMP_CMP_MASKED_EQ" => (json!({ "masked_eq": arg.value }), arg.value_two),
        other => {
            return Err(SeccompError::Profile(format!(
                "unsupported operator {other}"
            )))
        }
    })
}

/// One filter in seccompiler's JSON form: `entries` get `on_match`,
/// everything else `mismatch`.
fn compile_filter(
    mismatch: &SeccompAction,
    on_match: &SeccompAction,
    entries: &[serde_json::Value],
) -> Result<BpfProgram, SeccompError> {
    let doc = json!({ "f": {
        "mismatch_action": action_json(mismatch),
        "match_action": action_json(on_match),
        "filter": entries,
    }});
    seccompiler::compile_from_json(doc.to_string().as_bytes(), arch()?)
        .map_err(build_error)?
        .remove("f")
        .ok_or_else(|| build_error("filter missing after compilation"))
}

/// True when this machine knows the system call `name`.
fn known_syscall(name: &str) -> bool {
    let probe = json!({ "probe": {
        "mismatch_action": "allow",
        "match_action": { "errno": 1 },
        "filter": [{ "syscall": name }],
    }});
    arch().is_ok_and(|arch| {
        seccompiler::compile_from_json(probe.to_string().as_bytes(), arch).is_ok()
    })
}

/// Compiles a Docker-format JSON profile for a container holding the
/// capabilities in `capability_names` (rules gated on capabilities or
/// other architectures are skipped as Docker skips them; system calls
/// this kernel's architecture lacks are ignored).
pub fn docker_profile_filters(
    profile: &str,
    capability_names: &BTreeSet<String>,
) -> Result<Filters, SeccompError> {
    let profile: DockerProfile =
        serde_json::from_str(profile).map_err(|e| SeccompError::Profile(e.to_string()))?;
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    let arch_name = docker_arch();
    // Rules grouped by action; each group becomes one filter.
    let mut groups: Vec<(SeccompAction, Vec<serde_json::Value>)> = Vec::new();
    for rule in &profile.syscalls {
        let caps_ok = rule
            .includes
            .caps
            .iter()
            .all(|c| capability_names.contains(c))
            && !rule
                .excludes
                .caps
                .iter()
                .any(|c| capability_names.contains(c));
        let arch_ok = (rule.includes.arches.is_empty()
            || rule.includes.arches.iter().any(|a| a == arch_name))
            && !rule.excludes.arches.iter().any(|a| a == arch_name);
        let rule_action = action(&rule.action, rule.errno_ret.or(profile.default_errno_ret))?;
        if !caps_ok || !arch_ok || rule_action == default {
            continue;
        }
        let conditions = rule
            .args
            .iter()
            .map(|arg| {
                let (op, val) = op_json(arg)?;
                Ok(json!({ "index": arg.index, "type": "qword", "op": op, "val": val }))
            })
            .collect::<Result<Vec<_>, SeccompError>>()?;
        let names = rule.names.iter().chain(rule.name.iter());
        let entries: Vec<serde_json::Value> = names
            .filter(|name| known_syscall(name))
            .map(|name| {
                if conditions.is_empty() {
                    json!({ "syscall": name })
                } else {
                    json!({ "syscall": name, "args": conditions })
                }
            })
            .collect();
        match groups.iter_mut().find(|(a, _)| *a == rule_action) {
            Some((_, list)) => list.extend(entries),
            None => groups.push((rule_action, entries)),
        }
    }
    // The largest group carries the default action; the others only add
    // their own answer on top of it and otherwise allow.
    groups.sort_by_key(|(_, entries)| std::cmp::Reverse(entries.len()));
    let mut filters = Vec::new();
    for (i, (group_action, entries)) in groups.iter().enumerate() {
        let mismatch = if i == 0 {
            default.clone()
        } else {
            SeccompAction::Allow
        };
        if mismatch == *group_action {
            continue;
        }
        filters.push(compile_filter(&mismatch, group_action, entries)?);
    }
    if filters.is_empty() && default != SeccompAction::Allow {
        // Nothing but a default: every system call gets it.
        filters.push(compile_filter(&default, &SeccompAction::Allow, &[])?);
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_compiles() {
        let filters = default_filters().unwrap();
        assert_eq!(filters.len(), 2);
        assert!(!filters[0].is_empty());
    }

    #[test]
    fn docker_profile_compiles_and_skips_unknown_and_gated_rules() {
        let profile = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "syscalls": [
                {"names": ["read", "write", "exit_group", "no_such_syscall_here"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        }"#;
        let filters = docker_profile_filters(profile, &BTreeSet::new()).unwrap();
        assert_eq!(filters.len(), 2);
    }

    #[test]
    fn bad_profiles_are_refused() {
        assert!(docker_profile_filters("{", &BTreeSet::new()).is_err());
        let bad_action = r#"{"defaultAction": "SCMP_ACT_FOO", "syscalls": []}"#;
        assert!(docker_profile_filters(bad_action, &BTreeSet::new()).is_err());
    }
}
