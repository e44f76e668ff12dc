//! The parent's side once the command runs: signals forwarded to it, its
//! terminal relayed, its exit status turned into ours.
//!
//! Signals arrive through a signalfd, not handlers: they are blocked
//! before the fork (so none is lost, and none kills this process with its
//! default action, between the fork and the relay), and read back as data
//! in the same `poll()` loop as the terminal. The child unblocks every
//! signal before its exec.

use std::os::unix::io::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{read, write, Pid};

use mcm_common::terminal::{copy_window_size, RawMode};

/// Signals passed on to the command as they are.
pub use mcm_common::exec::FORWARDED_SIGNALS as FORWARDED;

/// Once the command has exited, output still arriving within this delay is
/// relayed; a pty kept open by a leftover background process does not
/// keep us waiting longer than that.
const DRAIN_AFTER_EXIT_MS: u16 = 100;

/// The blocked signals and the descriptor that reads them.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks the forwarded signals, SIGWINCH and SIGCHLD, and opens a
    /// close-on-exec, non-blocking signalfd for them.
    pub fn block() -> Result<Signals, String> {
        let mut mask = SigSet::empty();
        for signal in FORWARDED {
            mask.add(signal);
        }
        mask.add(Signal::SIGWINCH);
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| format!("cannot block signals: {e}"))?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| format!("cannot create a signalfd: {e}"))?;
        Ok(Signals { fd })
    }

    /// Handles every pending signal: SIGCHLD reaps, SIGWINCH resizes the
    /// pty `master` (if any) like our terminal, the rest go to the child.
    fn dispatch(&self, child: &mut Child, master: Option<RawFd>) {
        while let Ok(Some(info)) = self.fd.read_signal() {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match signal {
                Signal::SIGCHLD => child.reap(),
                Signal::SIGWINCH => {
                    if let Some(master) = master {
                        copy_window_size(0, master);
                    }
                }
                // Until it is reaped the child's PID cannot be reused, so
                // this cannot hit another process.
                _ if child.code.is_none() => {
                    let _ = kill(child.pid, signal);
                }
                _ => {}
            }
        }
    }
}

/// The forked command, and its exit code once reaped.
pub struct Child {
    pid: Pid,
    code: Option<i32>,
}

impl Child {
    pub fn new(pid: Pid) -> Child {
        Child { pid, code: None }
    }

    /// Reaps the child if it has ended: its code, or 128+N when killed by
    /// signal N.
    fn reap(&mut self) {
        while self.code.is_none() {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => self.code = Some(code),
                Ok(WaitStatus::Signaled(_, signal, _)) => self.code = Some(128 + signal as i32),
                Err(Errno::EINTR) => continue,
                Ok(WaitStatus::StillAlive) => return,
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("mcm: cannot wait for the command: {e}");
                    self.code = Some(crate::EXIT_FAILED);
                }
            }
        }
    }
}

/// Waits for the child, forwarding signals; returns its exit code.
pub fn wait(signals: &Signals, child: &mut Child) -> i32 {
    loop {
        child.reap();
        if let Some(code) = child.code {
            return code;
        }
        let mut fds = [PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => signals.dispatch(child, None),
            Err(e) => {
                eprintln!("mcm: cannot wait for signals: {e}");
                return crate::EXIT_FAILED;
            }
        }
    }
}

/// `--tty`: relays stdin to the pty master and the master to stdout, with
/// our terminal (if stdin is one) in raw mode, until the command's side of
/// the pty is closed; then waits for the command. Returns its exit code.
pub fn tty(master: OwnedFd, signals: &Signals, child: &mut Child) -> i32 {
    {
        // Restored when this block ends, on every path.
        let _raw = RawMode::enter(0);
        if let Err(e) = copy_terminal(&master, signals, child) {
            eprintln!("mcm: terminal relay failed: {e}");
        }
    }
    drop(master);
    wait(signals, child)
}

fn copy_terminal(master: &OwnedFd, signals: &Signals, child: &mut Child) -> Result<(), Errno> {
    let flags = OFlag::from_bits_truncate(fcntl(master.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(
        master.as_raw_fd(),
        FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
    )?;
    // SAFETY: fds 0 and 1 are open for the whole life of this process
    // (inherited stdio; nothing here closes them).
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut stdin_open = true;
    let mut stdout_open = true;
    // Input read from stdin, not yet accepted by the master: stdin is not
    // read again before it is, and the master is never written blocking
    // (a command that does not read its input must not stall its output).
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let timeout = match child.code {
            None => PollTimeout::NONE,
            Some(_) => PollTimeout::from(DRAIN_AFTER_EXIT_MS),
        };
        let master_events = if pending.is_empty() {
            PollFlags::POLLIN
        } else {
            PollFlags::POLLIN | PollFlags::POLLOUT
        };
        let mut fds = vec![
            PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(master.as_fd(), master_events),
        ];
        let read_stdin = stdin_open && pending.is_empty();
        if read_stdin {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            // The command is gone and its pty went quiet.
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
        let ready = |fd: &PollFd| fd.revents().unwrap_or(PollFlags::empty());
        let (signal_ready, master_ready) = (ready(&fds[0]), ready(&fds[1]));
        let stdin_ready = fds.get(2).map(ready).unwrap_or(PollFlags::empty());
        drop(fds);

        if !signal_ready.is_empty() {
            signals.dispatch(child, Some(master.as_raw_fd()));
        }
        if master_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            // Drain everything readable; EIO (or EOF) once every slave
            // descriptor is closed and all output has been read.
            loop {
                match read(master.as_raw_fd(), &mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        if stdout_open && write_all(stdout, &buf[..n]).is_err() {
                            // A closed stdout: keep draining, drop the output.
                            stdout_open = false;
                        }
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    Err(_) => return Ok(()),
                }
            }
        }
        if master_ready.contains(PollFlags::POLLOUT) && !pending.is_empty() {
            match write(master, &pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => {
                    pending.clear();
                    stdin_open = false;
                }
            }
        }
        if !stdin_ready.is_empty() {
            match read(stdin.as_raw_fd(), &mut buf) {
                // At EOF we only stop reading: the master stays open, the
                // command keeps running and its output keeps coming.
                Ok(0) => stdin_open = false,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

/// Writes all of `data`, waiting when `fd` is non-blocking and full.
fn write_all(fd: BorrowedFd, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                poll(&mut fds, PollTimeout::NONE)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
