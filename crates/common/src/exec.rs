//! The last steps of a container process before it is the command (the
//! container's own, or one started by `mcm exec`): signals back to
//! default, its terminal, working directory, hardening, user, then execve. A failure is reported to the executor over a close-on-exec
//! pipe, so EOF on that pipe means the exec succeeded.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::signal::{signal, SigHandler, SigSet, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, dup2, execve, setsid};

use crate::security::Hardening;

/// Signals every mcm process standing in front of a container command
/// (its init, an attached `mcm`, `mcm-nsenter`) passes on to it.
pub const FORWARDED_SIGNALS: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The default PATH when the container's environment sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Which step failed, as reported over the exec pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedStep {
    Terminal,
    Hardening,
    User,
    Workdir,
    Exec,
}

impl FailedStep {
    fn tag(self) -> u8 {
        match self {
            FailedStep::Terminal => b't',
            FailedStep::Hardening => b'h',
            FailedStep::User => b'u',
            FailedStep::Workdir => b'w',
            FailedStep::Exec => b'e',
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            b't' => Some(FailedStep::Terminal),
            b'h' => Some(FailedStep::Hardening),
            b'u' => Some(FailedStep::User),
            b'w' => Some(FailedStep::Workdir),
            b'e' => Some(FailedStep::Exec),
            _ => None,
        }
    }
}

/// Encodes a failure report: the step's tag and the errno.
pub fn encode_failure(step: FailedStep, errno: Errno) -> [u8; 5] {
    let mut out = [0u8; 5];
    out[0] = step.tag();
    out[1..].copy_from_slice(&(errno as i32).to_le_bytes());
    out
}

/// Decodes a failure report read from the exec pipe.
pub fn decode_failure(bytes: &[u8]) -> Option<(FailedStep, Errno)> {
    let step = FailedStep::from_tag(*bytes.first()?)?;
    let errno = i32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
    Some((step, Errno::from_raw(errno)))
}

/// The user's exit code and message for a failure report, as Docker gives
/// them: 127 for a command not found, 126 for one that cannot be invoked.
pub fn describe_failure(
    step: FailedStep,
    errno: Errno,
    command: &str,
    workdir: &str,
) -> (i32, String) {
    match step {
        FailedStep::Exec if errno == Errno::ENOENT || errno == Errno::ENOTDIR => {
            let what = if command.contains('/') {
                "no such file or directory"
            } else {
                "executable file not found in $PATH"
            };
            (127, format!("exec failed: \"{command}\": {what}"))
        }
        FailedStep::Exec => (126, format!("exec failed: \"{command}\": {}", errno.desc())),
        FailedStep::Workdir => (
            126,
            format!(
                "cannot change to working directory {workdir:?}: {}",
                errno.desc()
            ),
        ),
        FailedStep::Terminal => (125, format!("cannot set up the terminal: {}", errno.desc())),
        FailedStep::User => (
            126,
            format!("cannot switch to the requested user: {}", errno.desc()),
        ),
        FailedStep::Hardening => (
            125,
            format!(
                "cannot apply capabilities, seccomp or no_new_privs: {}",
                errno.desc()
            ),
        ),
    }
}

/// What to execute and how.
pub struct CommandSpec<'a> {
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub workdir: CString,
    /// The pty slave to make the controlling terminal, if any.
    pub tty_slave: Option<PathBuf>,
    /// Capabilities, seccomp and no_new_privs, applied last.
    pub hardening: &'a Hardening,
    /// Run as this (uid, gid) instead of root.
    pub user: Option<(u32, u32)>,
}

impl<'a> CommandSpec<'a> {
    /// Builds the spec from the container's configuration.
    pub fn new(
        command: &[String],
        env: &[String],
        workdir: &str,
        tty_slave: Option<PathBuf>,
        hardening: &'a Hardening,
    ) -> Option<Self> {
        Some(CommandSpec {
            argv: command
                .iter()
                .map(|a| CString::new(a.as_bytes()).ok())
                .collect::<Option<_>>()?,
            envp: env
                .iter()
                .map(|e| CString::new(e.as_bytes()).ok())
                .collect::<Option<_>>()?,
            workdir: CString::new(workdir).ok()?,
            tty_slave,
            hardening,
            user: None,
        })
    }

    fn path_var(&self) -> &[u8] {
        self.envp
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .unwrap_or(DEFAULT_PATH.as_bytes())
    }
}

/// Becomes the command. Never returns: on failure it reports over `report`
/// and exits with the matching code.
pub fn exec(spec: &CommandSpec, report: OwnedFd) -> ! {
    let Err((step, errno)) = try_exec(spec);
    let mut pipe = std::fs::File::from(report);
    let _ = pipe.write_all(&encode_failure(step, errno));
    let code = if step == FailedStep::Exec && errno == Errno::ENOENT {
        127
    } else {
        126
    };
    // SAFETY: _exit ends this forked child at once without running the
    // parent's atexit handlers or flushing its copied stdio buffers.
    unsafe { libc::_exit(code) }
}

/// Everything up to execve; only returns on failure.
fn try_exec(spec: &CommandSpec) -> Result<std::convert::Infallible, (FailedStep, Errno)> {
    reset_signals();
    if let Some(slave) = &spec.tty_slave {
        attach_terminal(slave).map_err(|e| (FailedStep::Terminal, e))?;
    }
    chdir(spec.workdir.as_c_str()).map_err(|e| (FailedStep::Workdir, e))?;
    // Nothing of the runtime's may reach the command but stdio.
    // SAFETY: close_range only flags descriptors close-on-exec.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    let program = spec.argv.first().ok_or((FailedStep::Exec, Errno::ENOENT))?;
    spec.hardening
        .apply()
        .map_err(|e| (FailedStep::Hardening, hardening_errno(&e)))?;
    if let Some((uid, gid)) = spec.user {
        // After the hardening, which needs the capabilities a non-root
        // user loses; CAP_SETUID and CAP_SETGID are still held here.
        let gid = nix::unistd::Gid::from_raw(gid);
        nix::unistd::setgroups(&[gid]).map_err(|e| (FailedStep::User, e))?;
        nix::unistd::setgid(gid).map_err(|e| (FailedStep::User, e))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(|e| (FailedStep::User, e))?;
    }
    Err((
        FailedStep::Exec,
        exec_search(program, &spec.argv, &spec.envp, spec.path_var()),
    ))
}

/// execve through PATH like execvp, but with the container's PATH; returns
/// the most telling errno when nothing could be executed.
fn exec_search(program: &CStr, argv: &[CString], envp: &[CString], path: &[u8]) -> Errno {
    if program.to_bytes().contains(&b'/') {
        return execve(program, argv, envp).unwrap_err();
    }
    let mut best = Errno::ENOENT;
    for dir in path.split(|&b| b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let candidate = Path::new(std::ffi::OsStr::from_bytes(dir))
            .join(std::ffi::OsStr::from_bytes(program.to_bytes()));
        let Ok(candidate) = CString::new(candidate.as_os_str().as_bytes()) else {
            continue;
        };
        match execve(&candidate, argv, envp).unwrap_err() {
            Errno::ENOENT | Errno::ENOTDIR => {}
            // Found but not runnable: remember, keep looking as execvp does.
            errno => best = errno,
        }
    }
    best
}

/// The errno behind a hardening failure, for the one-number report.
fn hardening_errno(error: &crate::security::HardeningError) -> Errno {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if let Some(code) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
        {
            return Errno::from_raw(code);
        }
        source = e.source();
    }
    Errno::EPERM
}

/// Unblocks every signal and restores default dispositions: the runtime
/// blocked some, and Rust ignores SIGPIPE, neither of which the command
/// must inherit.
fn reset_signals() {
    let _ = SigSet::all().thread_unblock();
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL runs no code of ours in a handler.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
    }
}

/// Starts a session whose controlling terminal is the pty slave, on fds 0-2.
fn attach_terminal(slave: &Path) -> Result<(), Errno> {
    // A command that is the container's PID 1 (`--no-init`) already leads
    // the session the executor started for it.
    if nix::unistd::getsid(None)? != nix::unistd::getpid() {
        setsid()?;
    }
    let fd = open(slave, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: TIOCSCTTY takes an int argument; `fd` is an open terminal.
    if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Errno::last());
    }
    for target in 0..=2 {
        dup2(fd, target)?;
    }
    let _ = nix::unistd::close(fd);
    Ok(())
}

/// Reads a failure report; `None` when the pipe closed empty (exec succeeded).
pub fn read_failure(pipe: OwnedFd) -> Option<(FailedStep, Errno)> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(5);
    let mut file = std::fs::File::from(pipe);
    let _ = file.read_to_end(&mut buf);
    decode_failure(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reports_round_trip() {
        let bytes = encode_failure(FailedStep::Workdir, Errno::ENOENT);
        assert_eq!(
            decode_failure(&bytes),
            Some((FailedStep::Workdir, Errno::ENOENT))
        );
        assert_eq!(decode_failure(b""), None);
        assert_eq!(decode_failure(b"x1234"), None);
    }

    #[test]
    fn exit_codes_follow_docker() {
        assert_eq!(
            describe_failure(FailedStep::Exec, Errno::ENOENT, "nosuch", "/").0,
            127
        );
        assert!(
            describe_failure(FailedStep::Exec, Errno::ENOENT, "nosuch", "/")
                .1
                .contains("executable file not found")
        );
        assert_eq!(
            describe_failure(FailedStep::Exec, Errno::EACCES, "/etc/passwd", "/").0,
            126
        );
        assert_eq!(
            describe_failure(FailedStep::Workdir, Errno::ENOENT, "sh", "/nope").0,
            126
        );
    }

    #[test]
    fn path_comes_from_the_container_env() {
        let hardening =
            Hardening::prepare(&Default::default(), std::path::Path::new("/none")).unwrap();
        let spec = CommandSpec::new(
            &["sh".into()],
            &["PATH=/x:/y".into()],
            "/",
            None,
            &hardening,
        )
        .unwrap();
        assert_eq!(spec.path_var(), b"/x:/y");
        let spec = CommandSpec::new(&["sh".into()], &[], "/", None, &hardening).unwrap();
        assert_eq!(spec.path_var(), DEFAULT_PATH.as_bytes());
    }
}
