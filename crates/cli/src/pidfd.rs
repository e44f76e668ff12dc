//! Signalling a container's init safely: through a pidfd opened and then
//! checked against the recorded start time, so a recycled PID is never hit.

use std::io;
use std::os::unix::io::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use mcm_common::container::RunState;
use mcm_common::proc;

/// A handle on a live container init.
pub struct InitHandle {
    pidfd: OwnedFd,
    pid: i32,
}

impl InitHandle {
    /// Opens the init of `run` if it is still that very process.
    pub fn open(run: &RunState) -> Option<InitHandle> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, run.pid, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: the kernel just returned this new descriptor to us.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Checked after opening: if the PID was recycled before the open,
        // the start time differs; after it, the pidfd pins the process.
        proc::is_same_live_process(run.pid, run.start_time, &run.boot_id).then_some(InitHandle {
            pidfd,
            pid: run.pid,
        })
    }

    /// The host PID.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Sends `signal`; succeeds quietly if the process already exited.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, no
        // siginfo and no flags.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Waits until the process has exited; false on timeout.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let millis = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, millis) {
                Ok(n) if n > 0 => return true,
                Ok(_) => return false,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return proc::stat(self.pid).is_none_or(|s| s.state == 'Z'),
            }
        }
    }
}
