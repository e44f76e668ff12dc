//! mcm's init: the container's PID 1 while its command runs.
//!
//! A PID-namespace init receives only the signals it handles, so a bare
//! pause() would ignore `docker stop`'s SIGTERM forever. This one keeps the
//! forwarded signals blocked and takes them synchronously with sigwait:
//! SIGCHLD reaps every zombie (orphans are re-parented to PID 1), the
//! others go to the command. When the command ends, the init records its
//! exit code and exits with it, which ends the whole PID namespace.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::io::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use mcm_common::container::ExitRecord;
use mcm_common::store::write_exit_to;

pub use mcm_common::exec::FORWARDED_SIGNALS as FORWARDED;

/// The signals kept blocked from before the clone, so none is lost between
/// the clone and the init's first sigwait.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in FORWARDED {
        set.add(sig);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// The exit code of a finished process, Docker style (128+N for signal N).
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Runs until `command` exits; records its exit and exits with its code.
///
/// `pty_output`: for a detached `-t` container, the pty master, whose
/// output the init copies to its stdout (the container log), so the
/// terminal never fills up and `mcm logs` shows what the command wrote.
pub fn run(command: Pid, exit_file: File, pty_output: Option<OwnedFd>) -> ! {
    crate::footprint::release_setup_pages();
    let signals = handled_signals();
    let code = match pty_output {
        None => loop {
            let Ok(sig) = signals.wait() else { continue };
            if let Some(code) = handle(sig, command) {
                break code;
            }
        },
        Some(master) => relay_until_exit(command, signals, master),
    };
    let _ = write_exit_to(&exit_file, &ExitRecord::now(code));
    drop(exit_file);
    std::process::exit(code)
}

/// Forwards `sig` or reaps on SIGCHLD; the command's code once it is gone.
fn handle(sig: Signal, command: Pid) -> Option<i32> {
    if sig != Signal::SIGCHLD {
        let _ = kill(command, sig);
        return None;
    }
    reap_all(command)
}

/// The signal loop of a detached `-t` container: signals through a
/// signalfd, polled together with the pty master.
fn relay_until_exit(command: Pid, signals: SigSet, master: OwnedFd) -> i32 {
    let Ok(signal_fd) = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC) else {
        // Without a signalfd the output is not drained, but signals still work.
        loop {
            if let Ok(sig) = signals.wait() {
                if let Some(code) = handle(sig, command) {
                    return code;
                }
            }
        }
    };
    let mut master = Some(File::from(master));
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = vec![PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let master_events = fds
            .get(1)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        let signal_ready = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        if !master_events.is_empty() {
            match master.as_mut().map(|m| m.read(&mut buf)) {
                Some(Ok(n)) if n > 0 => {
                    let _ = stdout.write_all(&buf[..n]);
                }
                // EIO: no slave is open any more.
                _ => master = None,
            }
        }
        if signal_ready {
            if let Ok(Some(info)) = signal_fd.read_signal() {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    if let Some(code) = handle(sig, command) {
                        return code;
                    }
                }
            }
        }
    }
}

/// Reaps every exited child; returns the command's exit code if it was one.
fn reap_all(command: Pid) -> Option<i32> {
    let mut command_code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return command_code,
            Ok(status) => {
                if status.pid() == Some(command) {
                    command_code = exit_code(status);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_deaths_map_to_128_plus_n() {
        let pid = Pid::from_raw(5);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }
}
