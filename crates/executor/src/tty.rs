//! The container's pseudo-terminal, allocated from its own devpts instance
//! (after pivot_root, /dev/ptmx is the container's), so the command sees a
//! /dev/pts/N that exists inside it.

use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

use crate::error::{SetupError, SetupResult};

/// Rows and columns of the caller's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub rows: u16,
    pub cols: u16,
}

impl TermSize {
    /// Parses `ROWS,COLS`.
    pub fn parse(text: &str) -> Option<TermSize> {
        let (rows, cols) = text.split_once(',')?;
        Some(TermSize {
            rows: rows.parse().ok()?,
            cols: cols.parse().ok()?,
        })
    }
}

/// Opens a new pty pair; returns the master and the slave's path.
pub fn open_pty(size: Option<TermSize>) -> SetupResult<(OwnedFd, PathBuf)> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(SetupError::sys("open /dev/ptmx"))?;
    grantpt(&master).map_err(SetupError::sys("grant the pty"))?;
    unlockpt(&master).map_err(SetupError::sys("unlock the pty"))?;
    let slave = ptsname_r(&master).map_err(SetupError::sys("name the pty slave"))?;
    if let Some(size) = size {
        let winsize = libc::winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer; the
        // descriptor is the pty master we just opened.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
    }
    // SAFETY: into_raw_fd hands over sole ownership of the open master.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    Ok((master, PathBuf::from(slave)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(
            TermSize::parse("24,80"),
            Some(TermSize { rows: 24, cols: 80 })
        );
        assert_eq!(TermSize::parse("24x80"), None);
        assert_eq!(TermSize::parse("a,b"), None);
    }
}
