//! `mcm-nsenter`: runs a command inside a running container, exactly as if
//! it had been started there: same namespaces, root, cgroup and hardening.
//!
//! Order matters: mark this process non-dumpable (the container must never
//! reach this host binary through /proc/PID/exe), open every namespace of
//! the container's init, then check the init is still the recorded process
//! (with the descriptors open, a recycled PID no longer matters), join the
//! cgroups, then the namespaces (user first, mount last: after it, `/` and
//! the cwd are the container's root), and fork, because a PID namespace
//! applies to children only. The child becomes the command; the parent
//! relays signals, the terminal and the exit status (see [`relay`]).
//!
//! Single-threaded throughout: `setns` into a user namespace requires it,
//! and the forked child may then run any code before its exec.

mod args;
mod relay;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::sched::{setns, CloneFlags};
use nix::sys::wait::waitpid;
use nix::unistd::{dup2, fork, pipe2, setsid, ForkResult};

use mcm_common::exec::{self, describe_failure, read_failure, CommandSpec};
use mcm_common::proc;
use mcm_common::security::{Hardening, SeccompMode};
use mcm_common::terminal::copy_window_size;

pub use args::{Args, USAGE};

/// Exit code when mcm-nsenter itself fails.
pub const EXIT_FAILED: i32 = 125;

/// Namespaces joined, in order: user first (it grants the rights to join
/// the rest), mount last (it changes the root). The cgroup namespace is
/// left out: the cgroups are joined through `--cgroup-procs`.
const NAMESPACES: [(&str, CloneFlags); 6] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// The helper's `main`: returns the exit code.
pub fn main_entry() -> i32 {
    // First of all: nothing in the container may open /proc/<us>/exe.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        return fail(&format!("cannot mark the helper non-dumpable: {e}"));
    }
    let argv: Result<Vec<String>, String> = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| format!("argument {arg:?} is not valid UTF-8"))
        })
        .collect();
    let args = match argv.and_then(Args::parse) {
        Ok(args) => args,
        Err(e) => return fail(&format!("{e}\n{USAGE}")),
    };
    match enter_and_run(&args) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> i32 {
    eprintln!("mcm: {message}");
    EXIT_FAILED
}

/// Where the command's stdio comes from.
enum Stdio {
    /// The caller's descriptors, as they are.
    Inherited,
    /// A pty of the container's devpts: the master (kept by the relay) and
    /// the slave's path (opened by the child).
    Terminal(OwnedFd, PathBuf),
    /// `--detach`: the container's /dev/null, in a new session.
    Detached(File),
}

fn enter_and_run(args: &Args) -> Result<i32, String> {
    let namespaces = open_namespaces(args)?;
    // Compiled before joining the mount namespace: a profile is a host path.
    let hardening = prepare_hardening(args)?;
    join_cgroups(&args.cgroup_procs)?;
    for (fd, flag) in namespaces {
        setns(&fd, flag)
            .map_err(|e| format!("cannot join the container's namespace ({flag:?}): {e}"))?;
    }
    // From here on, every path is the container's.
    let stdio = if args.detach {
        // No pty with --detach: nobody would hold its master, and closing
        // it would hang up the command.
        let null = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| format!("cannot open the container's /dev/null: {e}"))?;
        Stdio::Detached(null)
    } else if args.tty {
        let (master, slave) = open_pty()?;
        Stdio::Terminal(master, slave)
    } else {
        Stdio::Inherited
    };
    let slave = match &stdio {
        Stdio::Terminal(_, slave) => Some(slave.clone()),
        _ => None,
    };
    let spec = CommandSpec {
        user: args.user,
        ..CommandSpec::new(&args.command, &args.env, &args.cwd, slave, &hardening)
            .ok_or("command, environment or working directory holds a NUL byte")?
    };
    let (report_read, report_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"))?;
    let signals = relay::Signals::block()?;
    // SAFETY: this process is single-threaded, so the child may allocate
    // and run any code until its exec.
    match unsafe { fork() }.map_err(|e| format!("cannot fork: {e}"))? {
        ForkResult::Child => {
            drop(report_read);
            if let Stdio::Detached(null) = &stdio {
                let _ = setsid();
                for fd in 0..=2 {
                    let _ = dup2(null.as_raw_fd(), fd);
                }
            }
            // Resets signals, attaches the terminal, changes to the
            // working directory, applies the hardening (capabilities,
            // seccomp, no_new_privs) and the user, then execs; a failure
            // is written to `report_write`.
            exec::exec(&spec, report_write)
        }
        ForkResult::Parent { child } => {
            drop(report_write);
            // EOF (the pipe is close-on-exec) means the exec succeeded.
            if let Some((step, errno)) = read_failure(report_read) {
                let command = args.command.first().map(String::as_str).unwrap_or("");
                let (code, message) = describe_failure(step, errno, command, &args.cwd);
                let _ = waitpid(child, None);
                eprintln!("mcm: {message}");
                return Ok(code);
            }
            if args.detach {
                return Ok(0);
            }
            let mut child = relay::Child::new(child);
            Ok(match stdio {
                Stdio::Terminal(master, _) => relay::tty(master, &signals, &mut child),
                _ => relay::wait(&signals, &mut child),
            })
        }
    }
}

/// Opens the init's namespaces, then checks it is still the same process:
/// once the descriptors are open, a recycled PID no longer matters.
fn open_namespaces(args: &Args) -> Result<Vec<(File, CloneFlags)>, String> {
    let gone = || {
        format!(
            "container init PID {} is gone (container stopped?)",
            args.pid
        )
    };
    let mut opened = Vec::with_capacity(NAMESPACES.len());
    for (name, flag) in NAMESPACES {
        if flag == CloneFlags::CLONE_NEWUSER && !args.userns {
            continue;
        }
        let path = format!("/proc/{}/ns/{name}", args.pid);
        // std opens with O_CLOEXEC.
        match File::open(&path) {
            Ok(file) => opened.push((file, flag)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
            Err(e) => return Err(format!("cannot open {path}: {e}")),
        }
    }
    match proc::stat(args.pid) {
        Some(stat) if stat.start_time == args.start_time && !matches!(stat.state, 'Z' | 'X') => {
            Ok(opened)
        }
        _ => Err(gone()),
    }
}

fn prepare_hardening(args: &Args) -> Result<Hardening, String> {
    let (mode, profile) = match args.seccomp.as_str() {
        "default" => (SeccompMode::Default, PathBuf::new()),
        "unconfined" => (SeccompMode::Unconfined, PathBuf::new()),
        path => (SeccompMode::Profile, PathBuf::from(path)),
    };
    Hardening::with_mask(args.caps, &mode, &profile, args.no_new_privs).map_err(|e| e.to_string())
}

/// Puts this process in the container's cgroups, so the command is there
/// from its first instruction (the fork inherits them).
fn join_cgroups(files: &[PathBuf]) -> Result<(), String> {
    let pid = std::process::id().to_string();
    for file in files {
        OpenOptions::new()
            .write(true)
            .open(file)
            .and_then(|mut f| f.write_all(pid.as_bytes()))
            .map_err(|e| format!("cannot join cgroup {}: {e}", file.display()))?;
    }
    Ok(())
}

/// A pty from the container's own devpts (we are in its mount namespace:
/// /dev/ptmx is the container's), sized like the caller's terminal.
fn open_pty() -> Result<(OwnedFd, PathBuf), String> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot open the container's /dev/ptmx: {e}"))?;
    grantpt(&master).map_err(|e| format!("cannot grant the pty: {e}"))?;
    unlockpt(&master).map_err(|e| format!("cannot unlock the pty: {e}"))?;
    let slave = ptsname_r(&master).map_err(|e| format!("cannot name the pty: {e}"))?;
    // SAFETY: into_raw_fd hands over sole ownership of the open master.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    // Does nothing when our stdin is not a terminal.
    copy_window_size(0, master.as_raw_fd());
    Ok((master, PathBuf::from(slave)))
}
