//! The container's first process: from the clone to its command.
//!
//! It builds the root, names the host, brings up lo, opens the pty, tells
//! the executor it is ready, waits to be placed in the cgroup, and then
//! either forks the command and becomes mcm's init, or (with `--no-init`)
//! becomes the command itself.

use std::fs::File;
use std::os::unix::io::{AsRawFd, OwnedFd};

use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{fork, sethostname, ForkResult};

use mcm_common::container::{ContainerConfig, NetworkMode};
use mcm_common::paths::ContainerDir;
use mcm_common::security::Hardening;
use mcm_common::sync::{Channel, Message};

use crate::error::{SetupError, SetupResult};
use crate::init;
use crate::network;
use crate::rootfs::{self, RootfsPlan};
use crate::tty::{self, TermSize};
use mcm_common::exec::{self as command, CommandSpec};

/// What the child needs, handed over across the clone.
pub struct ChildSetup<'a> {
    pub config: &'a ContainerConfig,
    pub dir: &'a ContainerDir,
    pub exec_report: OwnedFd,
    pub tty_size: Option<TermSize>,
    pub hardening: &'a Hardening,
    /// mcm stays attached to the container's terminal.
    pub attached: bool,
}

/// Runs in the cloned child; never returns.
pub fn child_main(setup: ChildSetup, channel: Channel) -> ! {
    let Err(error) = prepare_and_start(setup, &channel);
    let _ = channel.send(&Message::Failed {
        exit_code: 125,
        message: error.to_string(),
    });
    // SAFETY: _exit ends this forked child without running the executor's
    // exit handlers.
    unsafe { libc::_exit(125) }
}

/// Everything up to the command; only returns on failure. The channel
/// stays open (close-on-exec) in the init; the executor is gone by then.
fn prepare_and_start(
    setup: ChildSetup,
    channel: &Channel,
) -> SetupResult<std::convert::Infallible> {
    let ChildSetup {
        config,
        dir,
        exec_report,
        tty_size,
        hardening,
        attached,
    } = setup;
    // Die with the executor while setting up; cleared once started.
    prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(SetupError::sys("set the parent-death signal"))?;
    // The container's processes must not reach this host binary through
    // /proc/1/exe (CVE-2019-5736); the command's exec resets this.
    prctl::set_dumpable(false).map_err(SetupError::sys("mark the init non-dumpable"))?;
    nix::unistd::setsid().map_err(SetupError::sys("start a session"))?;
    if config.userns.is_some() {
        become_namespace_root(channel)?;
    }

    rootfs::build(&RootfsPlan {
        lower: &config.rootfs,
        upper: dir.upper(),
        work: dir.work(),
        merged: dir.merged().to_path_buf(),
        etc_files: rootfs::etc::generate(config),
        mounts: &config.mounts,
        host_devices: config.security.privileged,
        devices: &config.devices,
        read_only: config.read_only,
        disposable: config.auto_remove,
        mask_kernel_paths: !config.security.privileged,
    })?;
    sethostname(&config.hostname).map_err(SetupError::sys("set the hostname"))?;
    if config.network == NetworkMode::None {
        network::bring_up_loopback()?;
    }
    // The init keeps its copy of the master open, so the terminal does not
    // hang up when the executor (or mcm) lets go of it.
    let pty = if config.tty {
        let (master, slave) = tty::open_pty(tty_size)?;
        channel
            .send_with_fd(&Message::PtyMaster, Some(master.as_raw_fd()))
            .map_err(|e| SetupError::io("pass the pty through", dir.path(), e))?;
        Some((master, slave))
    } else {
        None
    };
    channel
        .send(&Message::RootReady)
        .map_err(|e| SetupError::io("report to the executor through", dir.path(), e))?;
    let exit_file = match channel.recv() {
        Ok(Some((Message::Proceed, Some(exit_file)))) => File::from(exit_file),
        _ => {
            return Err(SetupError::Usage(
                "the executor went away during setup".into(),
            ))
        }
    };
    prctl::set_pdeathsig(None).map_err(SetupError::sys("clear the parent-death signal"))?;

    let (master, slave) = match pty {
        Some((master, slave)) => (Some(master), Some(slave)),
        None => (None, None),
    };
    let spec = CommandSpec::new(
        &config.command,
        &config.env,
        &config.workdir,
        slave,
        hardening,
    )
    .ok_or_else(|| SetupError::Usage("command, environment or workdir holds a NUL byte".into()))?;
    if !config.init {
        command::exec(&spec, exec_report);
    }
    // SAFETY: this process is single-threaded (a fork-like clone of the
    // single-threaded executor), so the child may run arbitrary code.
    match unsafe { fork() }.map_err(SetupError::sys("fork the command"))? {
        ForkResult::Child => {
            drop(exit_file);
            command::exec(&spec, exec_report)
        }
        ForkResult::Parent { child } => {
            drop(exec_report);
            // Attached, mcm relays the terminal; detached, the init drains
            // it into the log. Either way its copy keeps the pty alive.
            let (_keep_open, drain) = if attached {
                (master, None)
            } else {
                (None, master)
            };
            init::run(child, exit_file, drain)
        }
    }
}

/// In a new user namespace: waits until the executor has written the id
/// maps, then takes uid and gid 0 there (the mapped host ids).
fn become_namespace_root(channel: &Channel) -> SetupResult<()> {
    match channel.recv() {
        Ok(Some((Message::IdsMapped, _))) => {}
        _ => {
            return Err(SetupError::Usage(
                "the executor went away before mapping ids".into(),
            ))
        }
    }
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .map_err(SetupError::sys("become gid 0 in the user namespace"))?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .map_err(SetupError::sys("become uid 0 in the user namespace"))?;
    nix::unistd::setgroups(&[root_gid]).map_err(SetupError::sys("set groups in the user namespace"))
}
