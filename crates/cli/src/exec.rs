//! `exec`: a new process in a running container, through `mcm-nsenter`.

use std::process::Command;

use mcm_common::container::Status;
use mcm_common::security::SeccompMode;

use crate::error::{Error, Result};
use crate::helpers::{self, NSENTER};
use crate::runtime::Runtime;
use crate::spec::merge_env;

/// How to run the new process.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub command: Vec<String>,
    /// `KEY=VALUE` pairs on top of the container's environment.
    pub env: Vec<String>,
    /// Defaults to the container's working directory.
    pub workdir: Option<String>,
    /// `UID[:GID]`, numeric.
    pub user: Option<String>,
    pub tty: bool,
    pub detach: bool,
}

impl Runtime {
    /// The `mcm-nsenter` command that runs `spec` in the container named by
    /// `query`; the caller spawns it or execs into it. Refused unless the
    /// container is running (a paused one would hang the caller).
    pub fn exec_command(&self, query: &str, spec: &ExecSpec) -> Result<Command> {
        let container = self.inspect(query)?;
        let refuse = |hint| Error::WrongState {
            id: container.config.short_id().to_string(),
            state: container.status.name(),
            hint,
        };
        let run = match (&container.status, &container.run) {
            (Status::Running, Some(run)) => run,
            (Status::Paused, _) => return Err(refuse("unpause it before exec")),
            _ => return Err(refuse("start it before exec")),
        };
        if spec.command.is_empty() {
            return Err(Error::InvalidValue {
                what: "exec command",
                value: String::new(),
                reason: "no command given".into(),
            });
        }
        if let Some(user) = &spec.user {
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let valid = match user.split_once(':') {
                Some((uid, gid)) => numeric(uid) && numeric(gid),
                None => numeric(user),
            };
            if !valid {
                return Err(Error::InvalidValue {
                    what: "user",
                    value: user.clone(),
                    reason: "expected UID or UID:GID (numeric)".into(),
                });
            }
        }
        let mut env = container.config.env.clone();
        if spec.tty {
            merge_env(&mut env, &["TERM=xterm".to_string()]);
        }
        merge_env(&mut env, &spec.env);

        let mut command = Command::new(helpers::locate(NSENTER)?);
        command
            .arg("--pid")
            .arg(run.pid.to_string())
            .arg("--start-time")
            .arg(run.start_time.to_string());
        for procs in self.cgroup_procs_files(&container.config)? {
            command.arg("--cgroup-procs").arg(procs);
        }
        for pair in env {
            command.arg("--env").arg(pair);
        }
        command
            .arg("--cwd")
            .arg(spec.workdir.as_deref().unwrap_or(&container.config.workdir));
        if container.config.userns.is_some() {
            command.arg("--userns");
        }
        match (&spec.user, container.config.userns) {
            (Some(user), _) => {
                command.arg("--user").arg(user);
            }
            // Joining a user namespace leaves our ids unmapped: be its root.
            (None, Some(_)) => {
                command.arg("--user").arg("0:0");
            }
            (None, None) => {}
        }
        if spec.tty {
            command.arg("--tty");
        }
        // The same hardening as the container's own processes.
        let security = &container.config.security;
        let mask = security
            .capability_mask()
            .map_err(|e| Error::InvalidValue {
                what: "capabilities of",
                value: container.config.short_id().to_string(),
                reason: e.to_string(),
            })?;
        command.arg("--caps").arg(format!("{mask:x}"));
        let seccomp = match (security.privileged, &security.seccomp) {
            (true, _) | (_, SeccompMode::Unconfined) => "unconfined".into(),
            (false, SeccompMode::Default) => "default".into(),
            (false, SeccompMode::Profile) => container.dir.seccomp_profile().display().to_string(),
        };
        command.arg("--seccomp").arg(seccomp);
        if security.no_new_privileges {
            command.arg("--no-new-privs");
        }
        if spec.detach {
            command.arg("--detach");
        }
        command.arg("--").args(&spec.command);
        Ok(command)
    }
}
