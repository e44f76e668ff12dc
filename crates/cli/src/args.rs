//! The command line grammar (Docker's conventions).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A daemonless, Docker-like container manager for Linux.
#[derive(Debug, Parser)]
#[command(name = "mcm", version, about, max_term_width = 100)]
pub struct Cli {
    /// State root holding images and containers.
    #[arg(long, global = true, env = "MCM_ROOT", default_value = mcm_common::paths::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// cgroup parent under which each container gets its cgroup.
    #[arg(long, global = true, env = "MCM_CGROUP_PARENT", default_value = mcm_common::paths::DEFAULT_CGROUP_PARENT)]
    pub cgroup_parent: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start a container.
    Run(Box<RunArgs>),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop running containers (SIGTERM, then SIGKILL after a timeout).
    Stop(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Remove containers.
    #[command(alias = "delete")]
    Rm(RmArgs),
    /// List containers.
    Ps(PsArgs),
    /// List all containers (same as `ps -a`).
    List(PsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Show a container's logs.
    Logs(LogsArgs),
    /// Show low-level information on containers as JSON.
    Inspect(Ids),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Pause every process of running containers.
    #[command(alias = "freeze")]
    Pause(Ids),
    /// Resume paused containers.
    #[command(alias = "resume")]
    Unpause(Ids),
    /// Change the resource limits of containers (live when running).
    Update(UpdateArgs),
    /// Show one container's state, limits and usage.
    Status(Ids),
    /// System-wide maintenance.
    #[command(subcommand)]
    System(SystemCommand),
    /// Live resource usage of running containers.
    #[command(alias = "monitor")]
    Stats(StatsArgs),
}

/// Resource limit flags, shared by `run` and `update`.
#[derive(Debug, Args, Default)]
pub struct LimitArgs {
    /// Memory limit (e.g. 64m, 1g, 512MiB; at least 6MiB).
    #[arg(short, long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPUs the container may use, e.g. 0.5 (also --cpu).
    #[arg(
        long,
        visible_alias = "cpu",
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub cpus: Option<String>,
    /// Relative CPU weight (cgroup v1 shares; weight on v2).
    #[arg(short = 'c', long, value_name = "SHARES")]
    pub cpu_shares: Option<String>,
    /// CPUs allowed, e.g. 0-1 or 0,2.
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
}

impl LimitArgs {
    /// The flags for the library's parser.
    pub fn flags(&self) -> mcm::resources::LimitFlags {
        mcm::resources::LimitFlags {
            memory: self.memory.clone(),
            memory_swap: self.memory_swap.clone(),
            cpus: self.cpus.clone(),
            cpu_shares: self.cpu_shares.clone(),
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub ids: Ids,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one snapshot and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub ids: Ids,
}

/// Container ids, names or prefixes, positionally or with `--id`.
#[derive(Debug, Args)]
pub struct Ids {
    /// Container id, id prefix or name.
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Same as a positional ID (older CLI form).
    #[arg(long = "id", value_name = "ID")]
    pub id_flags: Vec<String>,
}

impl Ids {
    /// All ids given, or a usage error when none.
    pub fn all(&self) -> Result<Vec<String>, mcm::Error> {
        let all: Vec<String> = self.id_flags.iter().chain(&self.ids).cloned().collect();
        if all.is_empty() {
            return Err(mcm::Error::InvalidValue {
                what: "arguments",
                value: String::new(),
                reason: "at least one container ID is required".into(),
            });
        }
        Ok(all)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Network {
    /// A fresh network namespace with only lo.
    None,
    /// The host's network.
    Host,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Name of the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Hostname (default: the short id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set an environment variable (KEY=VALUE), repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Network mode.
    #[arg(long, value_enum, default_value_t = Network::None)]
    pub network: Network,
    /// Run the command itself as PID 1, without mcm's init.
    #[arg(long)]
    pub no_init: bool,
    /// Add a capability to Docker's default set (ALL for every one).
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from the default set (ALL for every one).
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// All capabilities, no seccomp, no masked paths, host devices.
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges.
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Bind mount HOST:CONTAINER[:ro].
    #[arg(short, long, value_name = "HOST:CTR[:ro]")]
    pub volume: Vec<String>,
    /// type=bind,src=...,dst=...[,readonly] or type=tmpfs,dst=...
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Mount a tmpfs: PATH[:OPTIONS], e.g. /run:size=64m.
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Add a host device: HOST[:CONTAINER][:rwm].
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// User namespace: `remap` makes the container's root an unprivileged
    /// host user (ids from the `mcm` entries of /etc/subuid and /etc/subgid,
    /// else 100000-165535).
    #[arg(long, value_name = "MODE", value_parser = ["remap", "host"])]
    pub userns: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Image name, or a path to a root filesystem directory.
    pub image: String,
    /// Command and arguments (default: sh).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach stdout/stderr and exit with the container's code.
    #[arg(short, long)]
    pub attach: bool,
    #[command(flatten)]
    pub ids: Ids,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    #[command(flatten)]
    pub ids: Ids,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send (name like TERM or SIGTERM, or number).
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[command(flatten)]
    pub ids: Ids,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill a running container first.
    #[arg(short, long)]
    pub force: bool,
    #[command(flatten)]
    pub ids: Ids,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default: running only).
    #[arg(short, long)]
    pub all: bool,
    /// Print ids only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin attached.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Set an environment variable (KEY=VALUE), repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Container (older CLI form; otherwise the first positional argument).
    #[arg(long = "id", value_name = "ID")]
    pub id: Option<String>,
    /// [ID] COMMAND [ARG...]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub rest: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow the output until the container stops.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, short = 'n')]
    pub tail: Option<usize>,
    #[command(flatten)]
    pub ids: Ids,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Remove stopped containers and leftovers (dangling cgroups, state of
    /// interrupted creates).
    Prune {
        /// Do not ask for confirmation (mcm never asks; accepted for Docker compatibility).
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import a root filesystem (.tar, .tar.gz or directory) as an image.
    Import { name: String, source: PathBuf },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Remove an image (refused while a container uses it).
    Rm { names: Vec<String> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_keeps_flags_after_the_image_for_the_command() {
        let cli = Cli::try_parse_from(["mcm", "run", "-d", "--rm", "busybox", "ls", "-l", "--all"])
            .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert!(run.detach && run.rm);
        assert_eq!(run.image, "busybox");
        assert_eq!(run.command, ["ls", "-l", "--all"]);
    }

    #[test]
    fn limit_flags_and_older_forms_parse() {
        let cli = Cli::try_parse_from([
            "mcm",
            "run",
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--cpu",
            "0.5",
            "--pids-limit",
            "-1",
            "busybox",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        let flags = run.limits.flags();
        assert_eq!(flags.memory.as_deref(), Some("64m"));
        assert_eq!(flags.memory_swap.as_deref(), Some("-1"));
        assert_eq!(flags.cpus.as_deref(), Some("0.5"));
        assert_eq!(flags.pids_limit.as_deref(), Some("-1"));
        // `--cpu=1` is `--cpus 1`; a bad number still parses here and is
        // refused with its value by the limit parser.
        for (form, value) in [("--cpu=1", "1"), ("--cpus=-1", "-1")] {
            let cli = Cli::try_parse_from(["mcm", "update", form, "c1"]).unwrap();
            let Command::Update(update) = cli.command else {
                panic!("not update")
            };
            assert_eq!(update.limits.cpus.as_deref(), Some(value));
            assert_eq!(update.ids.all().unwrap(), ["c1"]);
        }
    }

    #[test]
    fn pause_and_stats_take_older_forms() {
        for verb in ["pause", "freeze", "unpause", "resume"] {
            let cli = Cli::try_parse_from(["mcm", verb, "--id", "c1"]).unwrap();
            let (Command::Pause(ids) | Command::Unpause(ids)) = cli.command else {
                panic!("{verb} is not pause/unpause")
            };
            assert_eq!(ids.all().unwrap(), ["c1"], "{verb}");
        }
        let cli = Cli::try_parse_from(["mcm", "monitor", "--no-stream", "--id", "c1"]).unwrap();
        let Command::Stats(stats) = cli.command else {
            panic!("monitor is not stats")
        };
        assert!(stats.no_stream);
        assert_eq!(stats.ids.id_flags, ["c1"]);
        let cli = Cli::try_parse_from(["mcm", "stats", "--format", "json"]).unwrap();
        let Command::Stats(stats) = cli.command else {
            panic!("not stats")
        };
        assert_eq!(stats.format, Format::Json);
    }

    #[test]
    fn ids_come_positionally_or_with_id() {
        let cli = Cli::try_parse_from(["mcm", "stop", "--id", "abc", "def"]).unwrap();
        let Command::Stop(stop) = cli.command else {
            panic!("not stop")
        };
        assert_eq!(stop.ids.all().unwrap(), ["abc", "def"]);
    }
}
