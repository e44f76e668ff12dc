//! What a user asks for when running a container.

use mcm_common::cgroups::Limits;
use mcm_common::container::NetworkMode;

/// A request to create (and usually start) a container.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// Image name in the store, the built-in `busybox`, or a rootfs path.
    pub image: String,
    /// Command and arguments; empty means the default shell.
    pub command: Vec<String>,
    pub name: Option<String>,
    /// Defaults to the short id.
    pub hostname: Option<String>,
    /// `KEY=VALUE` pairs added to (or overriding) the defaults.
    pub env: Vec<String>,
    /// Defaults to `/`.
    pub workdir: Option<String>,
    pub network: NetworkMode,
    pub tty: bool,
    pub interactive: bool,
    /// `false` runs the command itself as PID 1.
    pub init: bool,
    pub auto_remove: bool,
    pub limits: Limits,
}

impl RunSpec {
    /// A spec running `command` in `image` with mcm's defaults.
    pub fn new(image: impl Into<String>, command: &[&str]) -> Self {
        RunSpec {
            image: image.into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            init: true,
            ..RunSpec::default()
        }
    }
}

/// The command run when the user gives none.
pub const DEFAULT_COMMAND: &str = "sh";

/// The environment every container starts with, then `extra` on top
/// (a later `KEY=` replaces an earlier one).
pub fn container_env(hostname: &str, tty: bool, extra: &[String]) -> Vec<String> {
    let mut env: Vec<String> = vec![
        format!(
            "PATH={}",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        format!("HOSTNAME={hostname}"),
        "HOME=/root".to_string(),
    ];
    if tty {
        env.push("TERM=xterm".to_string());
    }
    merge_env(&mut env, extra);
    env
}

/// Adds `extra` pairs to `env`, a later `KEY=` replacing an earlier one.
pub fn merge_env(env: &mut Vec<String>, extra: &[String]) {
    for pair in extra {
        let key = pair.split_once('=').map(|(k, _)| k).unwrap_or(pair);
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(pair.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_env_overrides_defaults() {
        let env = container_env("h", true, &["PATH=/x".into(), "A=1".into(), "A=2".into()]);
        assert!(env.contains(&"PATH=/x".to_string()));
        assert!(env.contains(&"TERM=xterm".to_string()));
        assert!(env.contains(&"A=2".to_string()));
        assert!(!env.contains(&"A=1".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
    }
}
