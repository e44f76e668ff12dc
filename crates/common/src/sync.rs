//! The typed channel between a parent and the process it starts: `mcm` and
//! `mcm-executor`, and the executor and the container's init.
//!
//! It runs over a `SOCK_SEQPACKET` socketpair, so each message arrives whole;
//! a file descriptor (the pty master) travels with its message as
//! `SCM_RIGHTS`. EOF means the other side died without a word.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::cmsg_space;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// What one side tells the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The container's root is ready and the pty (if any) follows.
    RootReady,
    /// Go on: the parent has placed the child in its cgroup; carries the
    /// exit file the init records the exit code in.
    Proceed,
    /// The parent has written the child's uid and gid maps.
    IdsMapped,
    /// The command really started: its exec succeeded. `pid` is the host
    /// PID of the container's PID 1.
    Started { pid: i32 },
    /// Carries the pty master as its attached descriptor.
    PtyMaster,
    /// Setting up or starting the container failed; `exit_code` is the one
    /// the user should see (125, 126 or 127).
    Failed { exit_code: i32, message: String },
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        match self {
            Message::RootReady => b"ready".to_vec(),
            Message::Proceed => b"proceed".to_vec(),
            Message::IdsMapped => b"mapped".to_vec(),
            Message::Started { pid } => format!("started {pid}").into_bytes(),
            Message::PtyMaster => b"pty".to_vec(),
            Message::Failed { exit_code, message } => {
                format!("failed {exit_code} {message}").into_bytes()
            }
        }
    }

    fn decode(bytes: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
        match word {
            "ready" => Some(Message::RootReady),
            "proceed" => Some(Message::Proceed),
            "mapped" => Some(Message::IdsMapped),
            "pty" => Some(Message::PtyMaster),
            "started" => Some(Message::Started {
                pid: rest.parse().ok()?,
            }),
            "failed" => {
                let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(Message::Failed {
                    exit_code: code.parse().ok()?,
                    message: message.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// Largest message: error texts are one line.
const MAX_MESSAGE: usize = 4096;

impl Channel {
    /// A connected pair; both ends close on exec unless `inheritable`.
    pub fn pair(inheritable: bool) -> io::Result<(Channel, Channel)> {
        let flags = if inheritable {
            SockFlag::empty()
        } else {
            SockFlag::SOCK_CLOEXEC
        };
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, flags)?;
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    /// Adopts an inherited descriptor.
    ///
    /// # Safety
    /// `fd` must be an open socket owned by nobody else in this process.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Channel {
        Channel {
            // SAFETY: the caller guarantees `fd` is open and unowned.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }

    /// The descriptor number (to pass to a child process).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Consumes the channel, returning its descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends a message.
    pub fn send(&self, message: &Message) -> io::Result<()> {
        self.send_with_fd(message, None)
    }

    /// Sends a message with a descriptor attached.
    pub fn send_with_fd(&self, message: &Message, fd: Option<RawFd>) -> io::Result<()> {
        let bytes = message.encode();
        let iov = [IoSlice::new(&bytes)];
        let fds;
        let cmsgs: &[ControlMessage] = match fd {
            Some(fd) => {
                fds = [fd];
                &[ControlMessage::ScmRights(&fds)]
            }
            None => &[],
        };
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => return other.map(|_| ()).map_err(io::Error::from),
            }
        }
    }

    /// Receives the next message; `Ok(None)` at EOF (the other side is gone).
    pub fn recv(&self) -> io::Result<Option<(Message, Option<OwnedFd>)>> {
        let mut buf = [0u8; MAX_MESSAGE];
        let mut space = cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(msg) => {
                    let mut received = None;
                    for cmsg in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for fd in fds {
                                // SAFETY: the kernel just installed `fd` in
                                // this process for us; nobody else owns it.
                                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                                received.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, received);
                }
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let message = Message::decode(&buf[..len]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "unreadable message on sync channel",
            )
        })?;
        Ok(Some((message, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let all = [
            Message::RootReady,
            Message::Proceed,
            Message::IdsMapped,
            Message::Started { pid: 1234 },
            Message::PtyMaster,
            Message::Failed {
                exit_code: 127,
                message: "exec failed: \"nosuch\": executable file not found".into(),
            },
        ];
        let (a, b) = Channel::pair(false).unwrap();
        for message in &all {
            a.send(message).unwrap();
            let (got, fd) = b.recv().unwrap().unwrap();
            assert_eq!(&got, message);
            assert!(fd.is_none());
        }
    }

    #[test]
    fn descriptor_travels_with_its_message() {
        let (a, b) = Channel::pair(false).unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        a.send_with_fd(&Message::PtyMaster, Some(file.as_raw_fd()))
            .unwrap();
        let (got, fd) = b.recv().unwrap().unwrap();
        assert_eq!(got, Message::PtyMaster);
        assert!(fd.is_some());
    }

    #[test]
    fn closed_peer_reads_as_eof() {
        let (a, b) = Channel::pair(false).unwrap();
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }
}
