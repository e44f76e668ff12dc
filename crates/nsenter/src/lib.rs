//! `mcm-nsenter`: runs a command inside a running container, exactly as if
//! it had been started there: same namespaces, root, cgroup and hardening.
//!
//! Order matters: mark this process non-dumpable (the container must never
//! reach this host binary through /proc/PID/exe), open every namespace of
//! the container's init, then check the init is still the recorded process
//! (a recycled PID is refused), join the cgroups, then the namespaces (user
//! first, mount last: after it, `/` and the cwd are the container's root),
//! and fork, because a PID namespace applies to children only. The child
//! becomes the command; the parent relays signals, the terminal and the
//! exit status.

mod args;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::OFlag;
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};

use mcm_common::exec::{self, describe_failure, read_failure, CommandSpec};
use mcm_common::proc;
use mcm_common::security::{Hardening, SeccompMode};
use mcm_common::terminal;

pub use args::{Args, USAGE};

/// Exit code when mcm-nsenter itself fails.
const EXIT_FAILED: i32 = 125;

/// Namespaces joined, in order: user first (it grants the rights to join
/// the rest), mount last (it changes the root).
const NAMESPACES: [(&str, CloneFlags); 6] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// The child's host PID, for the signal handlers.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The pty master, for the SIGWINCH handler.
static MASTER: AtomicI32 = AtomicI32::new(-1);

/// The helper's `main`: returns the exit code.
pub fn main_entry() -> i32 {
    // First of all: nothing in the container may open /proc/<us>/exe.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        return fail(&format!("cannot mark the helper non-dumpable: {e}"));
    }
    let args = match Args::parse(std::env::args().skip(1)) {
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

fn enter_and_run(args: &Args) -> Result<i32, String> {
    let namespaces = open_namespaces(args)?;
    // Compiled before joining the mount namespace: the profile is a host path.
    let hardening = prepare_hardening(args)?;
    join_cgroups(&args.cgroup_procs)?;
    for (fd, flag) in namespaces {
        setns(&fd, flag)
            .map_err(|e| format!("cannot join the container's namespace ({flag:?}): {e}"))?;
    }
    let pty = if args.tty { Some(open_pty()?) } else { None };
    let (report_read, report_write) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("cannot create a pipe: {e}"))?;
    let spec = CommandSpec {
        user: args.user,
        ..CommandSpec::new(
            &args.command,
            &args.env,
            &args.cwd,
            pty.as_ref().map(|(_, slave)| slave.clone()),
            &hardening,
        )
        .ok_or("command, environment or working directory holds a NUL byte")?
    };
    // SAFETY: this helper is single-threaded, so the child may run any code.
    match unsafe { fork() }.map_err(|e| format!("cannot fork: {e}"))? {
        ForkResult::Child => {
            drop(report_read);
            if args.detach && !args.tty {
                detach_stdio();
            }
            exec::exec(&spec, report_write)
        }
        ForkResult::Parent { child } => {
            drop(report_write);
            CHILD.store(child.as_raw(), Ordering::SeqCst);
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
            forward_signals(pty.as_ref().map(|(master, _)| master.as_raw_fd()));
            if let Some((master, _)) = pty {
                terminal::relay(master, true);
            }
            Ok(wait_exit_code(child))
        }
    }
}

/// Opens the init's namespaces, then checks it is still the same process:
/// once the descriptors are open, a recycled PID no longer matters.
fn open_namespaces(args: &Args) -> Result<Vec<(File, CloneFlags)>, String> {
    let mut opened = Vec::new();
    for (name, flag) in NAMESPACES {
        if flag == CloneFlags::CLONE_NEWUSER && !args.userns {
            continue;
        }
        let path = format!("/proc/{}/ns/{name}", args.pid);
        let file = File::open(&path)
            .map_err(|e| format!("cannot open {path}: {e} (container stopped?)"))?;
        opened.push((file, flag));
    }
    match proc::stat(args.pid) {
        Some(stat) if stat.start_time == args.start_time && stat.state != 'Z' => Ok(opened),
        _ => Err(format!(
            "container init PID {} is gone (container stopped?)",
            args.pid
        )),
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

/// A pty from the container's own devpts (we are in its mount namespace),
/// sized like the caller's terminal.
fn open_pty() -> Result<(OwnedFd, PathBuf), String> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot open the container's /dev/ptmx: {e}"))?;
    grantpt(&master).map_err(|e| format!("cannot grant the pty: {e}"))?;
    unlockpt(&master).map_err(|e| format!("cannot unlock the pty: {e}"))?;
    let slave = ptsname_r(&master).map_err(|e| format!("cannot name the pty: {e}"))?;
    // SAFETY: into_raw_fd hands over sole ownership of the open master.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    terminal::copy_window_size(0, master.as_raw_fd());
    Ok((master, PathBuf::from(slave)))
}

/// `--detach`: a new session with stdio on /dev/null (of the container).
fn detach_stdio() {
    let _ = nix::unistd::setsid();
    if let Ok(null) = nix::fcntl::open(
        Path::new("/dev/null"),
        OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    ) {
        for fd in 0..=2 {
            let _ = nix::unistd::dup2(null, fd);
        }
    }
}

extern "C" fn forward(signal: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, signal) };
    }
}

extern "C" fn resize(_: libc::c_int) {
    let master = MASTER.load(Ordering::SeqCst);
    if master >= 0 {
        terminal::copy_window_size(0, master);
    }
}

/// SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 go to the command;
/// SIGWINCH resizes its terminal. Handlers only call async-signal-safe
/// functions (kill, ioctl).
fn forward_signals(master: Option<i32>) {
    if let Some(fd) = master {
        MASTER.store(fd, Ordering::SeqCst);
    }
    let handlers: [(Signal, extern "C" fn(libc::c_int)); 7] = [
        (Signal::SIGINT, forward),
        (Signal::SIGTERM, forward),
        (Signal::SIGHUP, forward),
        (Signal::SIGQUIT, forward),
        (Signal::SIGUSR1, forward),
        (Signal::SIGUSR2, forward),
        (Signal::SIGWINCH, resize),
    ];
    for (signal, handler) in handlers {
        let action = SigAction::new(
            SigHandler::Handler(handler),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handlers are async-signal-safe (see above).
        let _ = unsafe { sigaction(signal, &action) };
    }
}

/// The command's exit code, 128+N when killed by signal N.
fn wait_exit_code(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return fail(&format!("cannot wait for the command: {e}")),
        }
    }
}
