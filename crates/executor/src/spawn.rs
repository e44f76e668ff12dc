//! The executor's side of a start: cgroup, clone, handshake, and then
//! either detach or wait for the container.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsFd, AsRawFd, OwnedFd};
use std::time::SystemTime;

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{pipe2, Pid};

use mcm_common::cgroups::Cgroup;
use mcm_common::container::{unix_nanos, ContainerConfig, ExitRecord, NetworkMode, RunState};
use mcm_common::paths::ContainerDir;
use mcm_common::proc;
use mcm_common::security::Hardening;
use mcm_common::store;
use mcm_common::sync::{Channel, Message};

use crate::container::{self, ChildSetup};
use crate::error::{SetupError, SetupResult};
use crate::init;
use crate::namespaces::{clone_into, container_flags, Cloned};
use crate::Options;
use mcm_common::exec::{describe_failure, read_failure};

/// Starts the container; returns the executor's exit code.
pub fn run(options: &Options, sync: Channel) -> i32 {
    let dir = ContainerDir::new(&options.state_dir);
    match start(options, &dir, &sync) {
        Ok(Launched::Failed { exit_code, message }) => {
            let _ = sync.send(&Message::Failed { exit_code, message });
            exit_code
        }
        Ok(Launched::Running { pid, init }) => {
            let _ = sync.send(&Message::Started { pid: pid.as_raw() });
            drop(sync);
            if options.foreground {
                wait_and_record(pid, &dir)
            } else if !init {
                // Without mcm's init, the command is PID 1 and only its
                // parent can learn its exit code: stay, out of the caller's
                // session, until it ends.
                let _ = nix::unistd::setsid();
                log_to(&dir.executor_log());
                wait_and_record(pid, &dir)
            } else {
                0
            }
        }
        Err(e) => {
            let _ = sync.send(&Message::Failed {
                exit_code: 125,
                message: e.to_string(),
            });
            125
        }
    }
}

/// How far a start got.
enum Launched {
    Running { pid: Pid, init: bool },
    Failed { exit_code: i32, message: String },
}

fn start(options: &Options, dir: &ContainerDir, sync: &Channel) -> SetupResult<Launched> {
    let config: ContainerConfig = store::read_json(&dir.config())?.ok_or_else(|| {
        SetupError::io("read", &dir.config(), std::io::ErrorKind::NotFound.into())
    })?;
    // Blocked before the clone so the init inherits them blocked and loses
    // none; in the foreground mcm itself proxies them to the container.
    init::handled_signals()
        .thread_block()
        .map_err(SetupError::sys("block signals"))?;
    // Compiled once here; the forked command applies it right before exec.
    let hardening = Hardening::prepare(&config.security, &dir.seccomp_profile())?;
    let cgroup = Cgroup::for_host(&config.cgroup_parent, &config.id)?;
    // On v2 the child is born in its cgroup (CLONE_INTO_CGROUP), which must
    // exist by then. On v1 it is moved there after the clone, so the
    // cgroup is made meanwhile, while the child builds its root.
    if cgroup.unified_dir().is_some() {
        prepare_cgroup(&cgroup, &config)?;
    }

    let (parent_end, child_end) =
        Channel::pair(false).map_err(|e| SetupError::io("create sync channel", dir.path(), e))?;
    let (exec_read, exec_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(SetupError::sys("create exec pipe"))?;
    let own_network = config.network == NetworkMode::None;
    // On v2 the child is born in its cgroup; on v1 it is moved there below.
    let cgroup_dir = cgroup
        .unified_dir()
        .map(|dir| File::open(dir).map_err(|e| SetupError::io("open", dir, e)))
        .transpose()?;
    let cloned = clone_into(
        container_flags(own_network, config.userns.is_some()),
        cgroup_dir.as_ref().map(|f| f.as_fd()),
    )
    .map_err(|e| SetupError::io("clone the container process", dir.path(), e))?;
    let (pid, _pidfd) = match cloned {
        Cloned::Child => {
            drop(parent_end);
            drop(exec_read);
            container::child_main(
                ChildSetup {
                    config: &config,
                    dir,
                    exec_report: exec_write,
                    tty_size: options.tty_size,
                    hardening: &hardening,
                    attached: options.foreground,
                },
                child_end,
            )
        }
        Cloned::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_end);
    drop(exec_write);

    match handshake(pid, &config, dir, &cgroup, &parent_end, sync, exec_read) {
        Ok(Some((exit_code, message))) | Err(SetupFailure { exit_code, message }) => {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Ok(Launched::Failed { exit_code, message })
        }
        Ok(None) => Ok(Launched::Running {
            pid,
            init: config.init,
        }),
    }
}

/// Creates the container's cgroup with its limits and device rules.
fn prepare_cgroup(cgroup: &Cgroup, config: &ContainerConfig) -> SetupResult<()> {
    cgroup.create()?;
    cgroup.apply(&config.limits)?;
    if !config.security.privileged {
        cgroup.allow_only_devices(&device_rules(config))?;
    }
    Ok(())
}

/// The devices a container may open: the standard ones, its ptys, and
/// those given with `--device`.
fn device_rules(config: &ContainerConfig) -> Vec<String> {
    const STANDARD: [&str; 9] = [
        "c 1:3 rwm",   // null
        "c 1:5 rwm",   // zero
        "c 1:7 rwm",   // full
        "c 1:8 rwm",   // random
        "c 1:9 rwm",   // urandom
        "c 5:0 rwm",   // tty
        "c 5:1 rwm",   // console
        "c 5:2 rwm",   // ptmx
        "c 136:* rwm", // pty slaves
    ];
    STANDARD
        .iter()
        .map(|rule| rule.to_string())
        .chain(
            config
                .devices
                .iter()
                .map(|d| format!("{} {}:{} {}", d.kind, d.major, d.minor, d.access)),
        )
        .collect()
}

/// A failure after the clone, with the exit code the user sees.
struct SetupFailure {
    exit_code: i32,
    message: String,
}

impl From<SetupError> for SetupFailure {
    fn from(e: SetupError) -> Self {
        SetupFailure {
            exit_code: 125,
            message: e.to_string(),
        }
    }
}

/// Drives the child from its clone to its command's exec. Returns the
/// exec failure (code, message), if any.
fn handshake(
    pid: Pid,
    config: &ContainerConfig,
    dir: &ContainerDir,
    cgroup: &Cgroup,
    child: &Channel,
    sync: &Channel,
    exec_read: OwnedFd,
) -> Result<Option<(i32, String)>, SetupFailure> {
    if let Some(mapping) = config.userns {
        // The child waits for its ids before touching anything.
        for (file, map) in [
            ("uid_map", mapping.uid_map()),
            ("gid_map", mapping.gid_map()),
        ] {
            let path = std::path::PathBuf::from(format!("/proc/{pid}/{file}"));
            std::fs::write(&path, map).map_err(|e| SetupError::io("write", &path, e))?;
        }
        child
            .send(&Message::IdsMapped)
            .map_err(|e| SetupError::io("write to", dir.path(), e))?;
    }
    // The child builds its root meanwhile; it starts the command only
    // after `Proceed`, so the command is in the cgroup from its first
    // instruction.
    if cgroup.unified_dir().is_none() {
        prepare_cgroup(cgroup, config)?;
        cgroup.add_pid(pid.as_raw()).map_err(SetupError::from)?;
    }
    // Opened after the clone, while the child is busy: creating it is slow
    // on some file systems. Emptied before the new state is written, so no
    // reader pairs the new state with the last run's exit.
    let exit_file = open_exit_file(dir)?;
    let state = RunState {
        pid: pid.as_raw(),
        start_time: proc::start_time(pid.as_raw())
            .map_err(|e| SetupError::io("read start time of", std::path::Path::new("/proc"), e))?,
        boot_id: proc::boot_id(),
        started_at: unix_nanos(SystemTime::now()),
        own_netns: config.network == NetworkMode::None,
    };
    store::write_json_volatile(&dir.state(), &state).map_err(SetupError::from)?;
    loop {
        match child
            .recv()
            .map_err(|e| SetupError::io("read from", dir.path(), e))?
        {
            Some((Message::PtyMaster, Some(master))) => {
                sync.send_with_fd(
                    &Message::PtyMaster,
                    Some(std::os::unix::io::AsRawFd::as_raw_fd(&master)),
                )
                .map_err(|e| SetupError::io("pass the pty to mcm through", dir.path(), e))?;
            }
            Some((Message::RootReady, _)) => break,
            Some((Message::Failed { exit_code, message }, _)) => {
                return Err(SetupFailure { exit_code, message })
            }
            Some((other, _)) => {
                return Err(SetupFailure {
                    exit_code: 125,
                    message: format!("unexpected message from the container process: {other:?}"),
                })
            }
            None => {
                return Err(SetupFailure {
                    exit_code: 125,
                    message: "the container process died during setup".into(),
                })
            }
        }
    }
    child
        .send_with_fd(&Message::Proceed, Some(exit_file.as_raw_fd()))
        .map_err(|e| SetupError::io("write to", dir.path(), e))?;
    drop(exit_file);
    Ok(read_failure(exec_read).map(|(step, errno)| {
        let command = config.command.first().map(String::as_str).unwrap_or("");
        describe_failure(step, errno, command, &config.workdir)
    }))
}

/// The exit file, emptied for this run; the init receives it to record the
/// command's exit without reaching any other host path.
fn open_exit_file(dir: &ContainerDir) -> SetupResult<File> {
    let path = dir.exit();
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| SetupError::io("open", &path, e))
}

/// Waits for the container's PID 1 and makes sure its exit is recorded
/// (mcm's init records it itself; a command that is PID 1, or an init that
/// was killed, cannot).
fn wait_and_record(pid: Pid, dir: &ContainerDir) -> i32 {
    let code = loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(code) = init::exit_code(status) {
                    break code;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break mcm_common::container::UNKNOWN_EXIT_CODE,
        }
    };
    if let Err(e) = store::record_exit_if_missing(&dir.exit(), &ExitRecord::now(code)) {
        eprintln!("mcm-executor: cannot record exit code {code}: {e}");
    }
    code
}

/// Sends this process's own messages to `path` (the executor log that
/// `mcm inspect` shows as ExecutorLogPath) once nobody reads its stderr.
fn log_to(path: &std::path::Path) {
    if let Ok(file) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = nix::unistd::dup2(std::os::unix::io::AsRawFd::as_raw_fd(&file), 2);
    }
}
