//! Starting a container: one exec of `mcm-executor`, then the typed
//! handshake on the sync channel until the command has really started.

use std::fs::{File, OpenOptions};
use std::os::unix::io::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{SigSet, Signal};

use mcm_common::store;
use mcm_common::sync::{Channel, Message};

use crate::error::{Error, Result, EXIT_MCM_FAILED};
use crate::helpers::{self, EXECUTOR};
use crate::pidfd::InitHandle;
use crate::runtime::Container;
use mcm_common::terminal;

/// Descriptor number the executor finds its end of the sync channel on.
const SYNC_FD: i32 = 3;

/// Whether the caller stays attached.
#[derive(Debug, Clone, Copy)]
pub enum LaunchMode {
    /// Output to the container's log; returns once the command started.
    Detached,
    /// stdio connected to this process; `tty_size` (rows, cols) for `-t`.
    Attached { tty_size: Option<(u16, u16)> },
}

/// A started container. For an attached one, [`Attached::wait`] relays
/// the terminal and signals and returns the container's exit code.
pub struct Attached {
    /// Host PID of the container's PID 1.
    pub pid: i32,
    /// Full id.
    pub id: String,
    executor: Child,
    pty_master: Option<OwnedFd>,
    interactive: bool,
    init: Option<InitHandle>,
}

/// Signals an attached `mcm` passes on to the container, as `docker run`
/// does with its default --sig-proxy.
const PROXIED: [Signal; 6] = mcm_common::exec::FORWARDED_SIGNALS;

impl Attached {
    /// Relays stdin/stdout through the pty (with `-t`) and proxies signals
    /// until the container ends; returns its exit code.
    pub fn wait(mut self) -> Result<i32> {
        // Blocked since the launch; taken here by the proxy thread.
        let signals = proxied_signals();
        let master_fd = self
            .pty_master
            .as_ref()
            .map(std::os::unix::io::AsRawFd::as_raw_fd);
        if let Some(init) = self.init.take() {
            std::thread::spawn(move || loop {
                let Ok(sig) = signals.wait() else { continue };
                if sig == Signal::SIGWINCH {
                    if let Some(master) = master_fd {
                        terminal::copy_window_size(0, master);
                    }
                } else {
                    let _ = init.signal(sig);
                }
            });
        }
        if let Some(master) = self.pty_master.take() {
            terminal::relay(master, self.interactive);
        }
        let status = self
            .executor
            .wait()
            .map_err(Error::io("wait for", "mcm-executor"))?;
        Ok(status.code().unwrap_or(EXIT_MCM_FAILED))
    }
}

/// The signals an attached mcm proxies (and SIGWINCH, for the terminal).
fn proxied_signals() -> SigSet {
    let mut signals = SigSet::empty();
    for sig in PROXIED {
        signals.add(sig);
    }
    signals.add(Signal::SIGWINCH);
    signals
}

/// Spawns the executor for `container` and waits for its handshake.
/// The caller holds the container's lock.
pub fn launch(container: &Container, mode: LaunchMode) -> Result<Attached> {
    let executor = helpers::locate(EXECUTOR)?;
    let config = &container.config;
    let (ours, theirs) =
        Channel::pair(false).map_err(Error::io("create sync channel for", container.dir.path()))?;
    let mut command = Command::new(&executor);
    command
        .arg("--state-dir")
        .arg(container.dir.path())
        .arg("--sync-fd")
        .arg(SYNC_FD.to_string())
        // Out of the terminal's process group: mcm proxies signals itself.
        .process_group(0);
    match mode {
        LaunchMode::Detached => {
            let log = open_log(container)?;
            let log_err = log
                .try_clone()
                .map_err(Error::io("open", container.dir.log()))?;
            command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        }
        LaunchMode::Attached { tty_size } => {
            // From now on a signal for the container waits for the proxy
            // instead of killing mcm (the executor starts with none blocked).
            let _ = proxied_signals().thread_block();
            command.arg("--foreground");
            if let (true, Some((rows, cols))) = (config.tty, tty_size) {
                command.arg("--tty-size").arg(format!("{rows},{cols}"));
            }
            if !config.interactive || config.tty {
                command.stdin(Stdio::null());
            }
        }
    }
    let theirs_fd = theirs.raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only
    // calls the async-signal-safe dup2/fcntl.
    unsafe {
        command.pre_exec(move || {
            if theirs_fd == SYNC_FD {
                nix::fcntl::fcntl(
                    SYNC_FD,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )?;
            } else {
                nix::unistd::dup2(theirs_fd, SYNC_FD)?;
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(Error::io("run", &executor))?;
    drop(theirs);

    let mut pty_master = None;
    loop {
        match ours.recv() {
            Ok(Some((Message::PtyMaster, fd))) => pty_master = fd,
            Ok(Some((Message::Started { pid }, _))) => {
                let init = store::read_json(&container.dir.state())
                    .ok()
                    .flatten()
                    .and_then(|run| InitHandle::open(&run));
                return Ok(Attached {
                    pid,
                    id: config.id.clone(),
                    executor: child,
                    pty_master,
                    interactive: config.interactive,
                    init,
                });
            }
            Ok(Some((Message::Failed { exit_code, message }, _))) => {
                let _ = child.wait();
                return Err(Error::StartFailed { exit_code, message });
            }
            Ok(Some((other, _))) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::StartFailed {
                    exit_code: EXIT_MCM_FAILED,
                    message: format!("unexpected message from mcm-executor: {other:?}"),
                });
            }
            Ok(None) | Err(_) => {
                let status = child.wait().map_err(Error::io("wait for", &executor))?;
                return Err(Error::StartFailed {
                    exit_code: EXIT_MCM_FAILED,
                    message: format!(
                        "mcm-executor exited without starting the container ({status})"
                    ),
                });
            }
        }
    }
}

fn open_log(container: &Container) -> Result<File> {
    let path = container.dir.log();
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(Error::io("open", path))
}
