//! mcm's init: the container's PID 1 while its command runs.
//!
//! A PID-namespace init receives only the signals it handles, so a bare
//! pause() would ignore `docker stop`'s SIGTERM forever. This one keeps the
//! forwarded signals blocked and takes them synchronously with sigwait:
//! SIGCHLD reaps every zombie (orphans are re-parented to PID 1), the
//! others go to the command. When the command ends, the init records its
//! exit code and exits with it, which ends the whole PID namespace.

use std::fs::File;

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use mcm_common::container::ExitRecord;
use mcm_common::store::write_exit_to;

/// Signals the init passes on to the command.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

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
pub fn run(command: Pid, exit_file: File) -> ! {
    let signals = handled_signals();
    let code = loop {
        let Ok(sig) = signals.wait() else { continue };
        if sig != Signal::SIGCHLD {
            let _ = kill(command, sig);
            continue;
        }
        if let Some(code) = reap_all(command) {
            break code;
        }
    };
    let _ = write_exit_to(&exit_file, &ExitRecord::now(code));
    drop(exit_file);
    std::process::exit(code)
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
