//! `mcm inspect`: Docker-shaped JSON.

use mcm::runtime::Container;
use mcm::{Result, Runtime, Status};
use mcm_common::container::from_unix_nanos;
use serde_json::{json, Value};

use super::print;
use crate::args::Ids;

pub fn inspect(runtime: &Runtime, ids: Ids) -> Result<i32> {
    let mut out = Vec::new();
    let mut code = 0;
    for id in ids.all()? {
        match runtime.inspect(&id) {
            Ok(container) => {
                let mut value = to_json(&container);
                value["State"]["OOMKilled"] = runtime.oom_killed(&container).into();
                out.push(value);
            }
            Err(e) => {
                eprintln!("mcm: {e}");
                code = e.exit_code();
            }
        }
    }
    let text = serde_json::to_string_pretty(&out).unwrap_or_default();
    print(&format!("{text}\n"))?;
    Ok(code)
}

fn rfc3339(nanos: Option<u128>) -> Value {
    match nanos {
        Some(n) if n > 0 => {
            Value::String(humantime::format_rfc3339_nanos(from_unix_nanos(n)).to_string())
        }
        _ => Value::Null,
    }
}

/// The inspect object of one container.
pub fn to_json(c: &Container) -> Value {
    let config = &c.config;
    let (exit_code, finished) = match c.status {
        Status::Exited {
            exit_code,
            finished_at,
        } => (exit_code, finished_at),
        _ => (0, None),
    };
    let pid = if c.status.is_alive() {
        c.run.as_ref().map(|r| r.pid).unwrap_or(0)
    } else {
        0
    };
    let limits = &config.limits;
    let nano_cpus = match (limits.cpu_quota, limits.cpu_period) {
        (Some(quota), Some(period)) if quota > 0 && period > 0 => {
            (quota as i128 * 1_000_000_000 / period as i128) as i64
        }
        _ => 0,
    };
    json!({
        "Id": config.id,
        "Name": config.name,
        "Created": rfc3339(Some(config.created)),
        "Path": config.command.first(),
        "Args": config.command.get(1..).unwrap_or_default(),
        "Image": config.image,
        "State": {
            "Status": c.status.name(),
            "Running": c.status.is_alive(),
            "Paused": c.status == Status::Paused,
            "Pid": pid,
            "ExitCode": exit_code,
            "StartedAt": rfc3339(c.run.as_ref().map(|r| r.started_at)),
            "FinishedAt": rfc3339(finished),
        },
        "Config": {
            "Hostname": config.hostname,
            "Env": config.env,
            "Cmd": config.command,
            "WorkingDir": config.workdir,
            "Tty": config.tty,
            "OpenStdin": config.interactive,
        },
        "HostConfig": {
            "NetworkMode": config.network,
            "AutoRemove": config.auto_remove,
            "Init": config.init,
            "CgroupParent": config.cgroup_parent,
            "Resources": config.limits,
            // Docker's names and units; 0 (null for PidsLimit) is unset.
            "Memory": limits.memory.unwrap_or(0),
            // No swap beyond the memory limit unless --memory-swap says so.
            "MemorySwap": limits
                .memory_swap
                .or(limits.memory.map(|m| m as i64))
                .unwrap_or(0),
            "NanoCpus": nano_cpus,
            "CpuQuota": limits.cpu_quota.unwrap_or(0),
            "CpuPeriod": limits.cpu_period.unwrap_or(0),
            "CpuShares": limits.cpu_shares.unwrap_or(0),
            "CpusetCpus": limits.cpuset_cpus.clone().unwrap_or_default(),
            "PidsLimit": limits.pids.filter(|p| *p > 0),
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": config.rootfs,
                "UpperDir": c.dir.upper(),
                "WorkDir": c.dir.work(),
                "MergedDir": c.dir.merged(),
            }
        },
        "StateDir": c.dir.path(),
        "LogPath": c.dir.log(),
        "ExecutorLogPath": c.dir.executor_log(),
    })
}
