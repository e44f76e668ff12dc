//! `mcm run`.

use mcm::spec::mounts;
use mcm::{Error, NetworkMode, Result, RunSpec, Runtime};
use mcm_common::security::{SeccompMode, SecurityConfig};

use super::print;
use crate::args::{Network, RunArgs};

pub fn run(runtime: &Runtime, args: RunArgs) -> Result<i32> {
    let mut spec = RunSpec {
        image: args.image,
        command: args.command,
        name: args.name,
        hostname: args.hostname,
        env: args.env,
        workdir: args.workdir,
        network: match args.network {
            Network::None => NetworkMode::None,
            Network::Host => NetworkMode::Host,
        },
        tty: args.tty,
        interactive: args.interactive,
        init: !args.no_init,
        auto_remove: args.rm,
        security: SecurityConfig {
            privileged: args.privileged,
            cap_add: args.cap_add,
            cap_drop: args.cap_drop,
            ..SecurityConfig::default()
        },
        mounts: args
            .volume
            .iter()
            .map(|v| mounts::volume(v))
            .chain(args.mount.iter().map(|m| mounts::mount(m)))
            .chain(args.tmpfs.iter().map(|t| mounts::tmpfs(t)))
            .collect::<Result<_>>()?,
        read_only: args.read_only,
        userns_remap: args.userns.as_deref() == Some("remap"),
        limits: args.limits.flags().parse_for_run()?,
        devices: args
            .device
            .iter()
            .map(|d| mounts::device(d))
            .collect::<Result<_>>()?,
        ..RunSpec::default()
    };
    for option in &args.security_opt {
        apply_security_opt(&mut spec, option)?;
    }
    if args.detach {
        let container = runtime.run(&spec)?;
        print(&format!("{}\n", container.config.id))?;
        return Ok(0);
    }
    let tty_size = if spec.tty { mcm::window_size(0) } else { None };
    let attached = runtime.run_attached(&spec, tty_size)?;
    let id = attached.id.clone();
    let code = attached.wait()?;
    if spec.auto_remove {
        runtime.remove(&id, true)?;
    }
    Ok(code)
}

/// `--security-opt`: `seccomp=unconfined`, `seccomp=PROFILE.json`,
/// `no-new-privileges[:true|false]` (also with `=`).
fn apply_security_opt(spec: &mut RunSpec, option: &str) -> Result<()> {
    let (key, value) = option.split_once(['=', ':']).unwrap_or((option, ""));
    match (key, value) {
        ("seccomp", "unconfined") => spec.security.seccomp = SeccompMode::Unconfined,
        ("seccomp", "") => return Err(invalid_opt(option)),
        ("seccomp", path) => {
            spec.security.seccomp = SeccompMode::Profile;
            spec.seccomp_profile = Some(path.into());
        }
        ("no-new-privileges", "" | "true") => spec.security.no_new_privileges = true,
        ("no-new-privileges", "false") => spec.security.no_new_privileges = false,
        _ => return Err(invalid_opt(option)),
    }
    Ok(())
}

fn invalid_opt(option: &str) -> Error {
    Error::InvalidValue {
        what: "security option",
        value: option.to_string(),
        reason: "expected seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges".into(),
    }
}
