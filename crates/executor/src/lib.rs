//! `mcm-executor`: starts one container.
//!
//! `mcm` runs it once per start, with the container's state directory and
//! one end of a sync channel on a descriptor:
//!
//! ```text
//! mcm-executor --state-dir DIR --sync-fd N [--foreground] [--tty-size ROWS,COLS]
//! ```
//!
//! It creates the cgroup, clone()s the container's first process into new
//! namespaces, waits until that process has built the root, places it in
//! the cgroup, lets it start the command, and reports `Started` once the
//! command's exec succeeded (or `Failed` with the reason). Detached, it
//! then exits and leaves only the container's init behind; in the
//! foreground it waits for the container and exits with its code.

mod container;
mod error;
mod footprint;
mod init;
mod namespaces;
mod network;
mod rootfs;
mod spawn;
mod tty;

use std::path::PathBuf;
use std::process::ExitCode;

use mcm_common::sync::Channel;

use crate::error::SetupError;
use crate::tty::TermSize;

/// Parsed command line.
pub struct Options {
    pub state_dir: PathBuf,
    pub sync_fd: i32,
    pub foreground: bool,
    pub tty_size: Option<TermSize>,
}

impl Options {
    /// Parses the executor's arguments (without the program name).
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, SetupError> {
        let mut state_dir = None;
        let mut sync_fd = None;
        let mut foreground = false;
        let mut tty_size = None;
        let usage = |what: &str| SetupError::Usage(format!("mcm-executor: {what}"));
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--state-dir" => state_dir = args.next().map(PathBuf::from),
                "--sync-fd" => sync_fd = args.next().and_then(|v| v.parse().ok()),
                "--foreground" => foreground = true,
                "--tty-size" => {
                    tty_size = Some(
                        args.next()
                            .and_then(|v| TermSize::parse(&v))
                            .ok_or_else(|| usage("--tty-size takes ROWS,COLS"))?,
                    )
                }
                other => return Err(usage(&format!("unknown argument {other:?}"))),
            }
        }
        Ok(Options {
            state_dir: state_dir.ok_or_else(|| usage("--state-dir is required"))?,
            sync_fd: sync_fd.ok_or_else(|| usage("--sync-fd is required"))?,
            foreground,
            tty_size,
        })
    }
}

/// The executor's `main`.
pub fn main_entry() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(125);
        }
    };
    if options.sync_fd < 3 {
        eprintln!("mcm-executor: --sync-fd must not be a standard stream");
        return ExitCode::from(125);
    }
    // SAFETY: mcm passes the descriptor for us alone; nothing else in this
    // process has adopted it.
    let sync = unsafe { Channel::from_raw_fd(options.sync_fd) };
    // Keep it from the container's processes.
    let _ = nix::fcntl::fcntl(
        sync.raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    ExitCode::from(spawn::run(&options, sync) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, SetupError> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_all_options() {
        let o = parse(&[
            "--state-dir",
            "/s",
            "--sync-fd",
            "3",
            "--foreground",
            "--tty-size",
            "30,100",
        ])
        .unwrap();
        assert_eq!(o.state_dir, PathBuf::from("/s"));
        assert_eq!(o.sync_fd, 3);
        assert!(o.foreground);
        assert_eq!(
            o.tty_size,
            Some(TermSize {
                rows: 30,
                cols: 100
            })
        );
    }

    #[test]
    fn refuses_missing_and_unknown() {
        assert!(parse(&["--sync-fd", "3"]).is_err());
        assert!(parse(&["--state-dir", "/s"]).is_err());
        assert!(parse(&["--state-dir", "/s", "--sync-fd", "3", "--bogus"]).is_err());
    }
}
