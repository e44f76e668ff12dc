//! clone3(2) of the container's first process into all its namespaces at once.

use std::io;
use std::os::unix::io::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// clone3 flag: start the child in the cgroup given by `cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// `struct clone_args` of linux/sched.h (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which side of the clone this process is on.
pub enum Cloned {
    /// The new process, PID 1 of its PID namespace.
    Child,
    /// The caller, with the child's host PID and a pidfd for it.
    Parent { pid: Pid, pidfd: OwnedFd },
}

/// The namespaces of a container: always PID, mount, UTS and IPC; network
/// unless it shares the host's; user with `--userns=remap`.
pub fn container_flags(own_network: bool, own_user: bool) -> CloneFlags {
    let mut flags = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if own_network {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if own_user {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    flags
}

/// Forks like fork(2) (no new stack: the child runs on a copy of ours), into
/// new namespaces, returning a pidfd so the child can be signalled safely.
///
/// The caller must be single-threaded: only the calling thread is copied.
///
/// With `cgroup` (a cgroup v2 directory descriptor) the child is born in
/// that cgroup (CLONE_INTO_CGROUP): no migration, and no instant outside it.
pub fn clone_into(flags: CloneFlags, cgroup: Option<BorrowedFd>) -> io::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    let (into_cgroup, cgroup_fd) = match cgroup {
        Some(fd) => (CLONE_INTO_CGROUP, fd.as_raw_fd() as u64),
        None => (0, 0),
    };
    let args = CloneArgs {
        flags: flags.bits() as u64 | libc::CLONE_PIDFD as u64 | into_cgroup,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_fd,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed; with a zero
    // stack the child continues on a copy-on-write copy of this stack, like
    // fork(2), which is sound because the executor is single-threaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => Ok(Cloned::Parent {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: CLONE_PIDFD made the kernel store a new descriptor in
            // `pidfd`, owned by nobody else.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}
