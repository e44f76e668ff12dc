//! The attached side of `-t` (`mcm run -t`, `mcm exec -t`): the user's
//! terminal in raw mode, relayed to and from the container's pty master.

use std::io::{Read, Write};
use std::os::unix::io::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// Puts a terminal in raw mode until dropped.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode on `fd` if it is a terminal; `None` otherwise.
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: fd 0 stays open for the life of the process.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = tcgetattr(borrowed).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(borrowed, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        let borrowed = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = tcsetattr(borrowed, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// The size of the terminal on `fd`, as (rows, cols).
pub fn window_size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain old data.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize to a valid pointer.
    let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0).then_some((size.ws_row, size.ws_col))
}

/// Copies the window size of terminal `from` onto pty `to`.
pub fn copy_window_size(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain old data.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read or write a winsize through a
    // valid pointer; bad descriptors only make them fail.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &size);
        }
    }
}

/// Relays stdin (when `forward_stdin`) to the master and the master to
/// stdout until the container side of the pty is closed.
pub fn relay(master: OwnedFd, forward_stdin: bool) {
    let stdin = std::io::stdin();
    let _raw = if forward_stdin && nix::unistd::isatty(stdin.as_raw_fd()).unwrap_or(false) {
        RawMode::enter(stdin.as_raw_fd())
    } else {
        None
    };
    let mut master = std::fs::File::from(master);
    let mut stdout = std::io::stdout().lock();
    let mut stdin_open = forward_stdin;
    let mut buf = [0u8; 8192];
    loop {
        let master_fd = master.as_fd();
        let stdin_fd = stdin.as_fd();
        let mut fds = vec![PollFd::new(master_fd, PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
            Ok(_) => {}
        }
        let master_ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ready = fds
            .get(1)
            .and_then(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        if !master_ready.is_empty() {
            // EIO once every slave descriptor is closed: the container's
            // side is gone and everything it wrote has been read.
            match master.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let _ = stdout.write_all(&buf[..n]);
                    let _ = stdout.flush();
                }
            }
        }
        if !stdin_ready.is_empty() {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    if master.write_all(&buf[..n]).is_err() {
                        stdin_open = false;
                    }
                }
            }
        }
    }
}
