//! Upgrading to a new binary: the old process hands every loop's snapshot
//! and every descriptor to a new one over a private socket pair, and the
//! new one takes over without a connection dropped.
//!
//! The old process starts the new binary with the same arguments (and the
//! same environment, plus `RINGTAIL_UPGRADE=1`), its standard input being
//! one end of a `SOCK_SEQPACKET` socket pair: nothing but the two processes
//! ever sees the snapshots or the descriptors. Then:
//!
//! 1. new → old `Hello` (pid, version, build id, loops it will run);
//! 2. the old process pauses every loop: `Server::quiesce`, then
//!    `Server::export` (quiesce all first, so no loop publishes into
//!    another's inbox while they are exported);
//! 3. old → new `Begin` (per loop: snapshot size, descriptor count, chat
//!    messages still waiting in its inbox; the listen addresses; whether the
//!    control socket comes too), `Data` chunks, `Fds` batches of at most
//!    [`FDS_PER_MESSAGE`] descriptors (`SCM_RIGHTS`; the control socket
//!    last), `End`;
//! 4. the new process imports each snapshot on its own loop thread
//!    (quiesced, nothing submitted yet) → `Imported`, or `Refused` with a
//!    reason;
//! 5. old → new `Commit`: from here on the new process owns everything. The
//!    old one closes its copies of the descriptors (`Server::release`);
//! 6. the new process resumes its loops, starts any extra loops it was
//!    asked for, rewrites the pid file, tells systemd, → `Going`; the old
//!    process answers `ctl upgrade` and exits.
//!
//! Until `Commit` the old process can roll back: if the new binary cannot
//! start, exits, does not answer within `--upgrade-timeout`, or refuses a
//! snapshot, the old process kills it (if it still runs), waits for it, and
//! resumes its loops — they were only quiesced. The new process touches no
//! socket before `Commit` (its imported servers are quiesced), so a rollback
//! loses and repeats nothing.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

/// Version of this exchange; both sides must speak the same.
pub const PROTOCOL: u32 = 1;
/// Descriptors per `SCM_RIGHTS` message (the kernel's limit is 253).
pub const FDS_PER_MESSAGE: usize = 253;
/// Snapshot bytes per `Data` message.
const CHUNK: usize = 60 * 1024;
/// Set in the new process's environment: its standard input is the
/// handover socket.
pub const ENV: &str = "RINGTAIL_UPGRADE";

/// Message kinds (the first byte of every message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = b'H',
    Begin = b'B',
    Data = b'D',
    Fds = b'F',
    End = b'E',
    Imported = b'I',
    Refused = b'R',
    Commit = b'C',
    Going = b'G',
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            b'H' => Kind::Hello,
            b'B' => Kind::Begin,
            b'D' => Kind::Data,
            b'F' => Kind::Fds,
            b'E' => Kind::End,
            b'I' => Kind::Imported,
            b'R' => Kind::Refused,
            b'C' => Kind::Commit,
            b'G' => Kind::Going,
            _ => return None,
        })
    }
}

/// New → old, first.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub pid: u32,
    pub version: String,
    pub build: String,
    /// Loops the new process will run.
    pub threads: usize,
}

/// Old → new: what follows.
#[derive(Debug, Serialize, Deserialize)]
pub struct Begin {
    pub old_pid: u32,
    pub loops: Vec<LoopPlan>,
    /// The HTTP and RAW listen addresses (extra loops join them).
    pub http: SocketAddr,
    pub raw: Option<SocketAddr>,
    /// The HTTPS listen address (none from a process without TLS, or
    /// from one before TLS existed).
    #[serde(default)]
    pub https: Option<SocketAddr>,
    /// The control socket is the last descriptor.
    pub control: bool,
    /// How long the old process waits at each step (the new one waits as
    /// long for `Commit`).
    pub timeout_ms: u64,
    /// `CLOCK_MONOTONIC` (ns) when the old process began to pause.
    pub paused_at_ns: u64,
    /// The old process's cluster instance id (`--cluster`), which the new
    /// one goes on with.
    #[serde(default)]
    pub cluster_id: Option<u64>,
}

/// One loop's part of the transfer.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoopPlan {
    /// Snapshot bytes (in `Data`, loop after loop).
    pub bytes: usize,
    /// Descriptors (in `Fds`, loop after loop).
    pub fds: usize,
    /// Messages other loops published that this loop had not yet taken
    /// from its inbox: topic and payload.
    pub messages: Vec<(String, Vec<u8>)>,
}

/// New → old: the snapshots are imported (quiesced).
#[derive(Debug, Serialize, Deserialize)]
pub struct Imported {
    pub connections: usize,
}

/// New → old: serving.
#[derive(Debug, Serialize, Deserialize)]
pub struct Going {
    pub pid: u32,
    pub build: String,
    pub connections: usize,
    /// `CLOCK_MONOTONIC` (ns) when the snapshots were in, every loop had
    /// imported its own, the commit came, and every imported loop had
    /// resumed.
    pub received_at_ns: u64,
    pub imported_at_ns: u64,
    pub committed_at_ns: u64,
    pub resumed_at_ns: u64,
}

/// `CLOCK_MONOTONIC` in nanoseconds (the same clock in every process of
/// the machine, so the old and new processes' times compare).
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A received message.
#[derive(Debug)]
pub struct Received {
    pub kind: Kind,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Why a receive failed.
#[derive(Debug)]
pub enum RecvError {
    /// The other process closed its end (it exited).
    Closed,
    /// Nothing within the timeout.
    Timeout,
    Io(io::Error),
    Malformed(String),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Closed => f.write_str("the other process closed the handover socket"),
            RecvError::Timeout => f.write_str("timed out"),
            RecvError::Io(e) => write!(f, "{e}"),
            RecvError::Malformed(m) => write!(f, "malformed handover message: {m}"),
        }
    }
}

/// One end of the handover socket pair (`SOCK_SEQPACKET`: each message
/// arrives whole, with the descriptors sent with it).
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair: (the old process's end, the new process's end).
    pub fn pair() -> io::Result<(Channel, OwnedFd)> {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Channel { fd: a }, b))
    }

    /// The new process's end: its standard input, if that is a
    /// `SOCK_SEQPACKET` socket (as the old process made it). Standard input
    /// is then pointed at `/dev/null`.
    pub fn from_stdin() -> io::Result<Channel> {
        let stdin = io::stdin();
        let fd = stdin.as_fd().try_clone_to_owned()?;
        match rustix::net::sockopt::socket_type(&fd) {
            Ok(rustix::net::SocketType::SEQPACKET) => {}
            _ => {
                return Err(io::Error::other(format!(
                    "{ENV} is set but standard input is not the handover socket"
                )))
            }
        }
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        let null = std::fs::File::open("/dev/null")?;
        rustix::stdio::dup2_stdin(&null)?;
        Ok(Channel { fd })
    }

    /// Sends one message of `kind` with `payload` and `fds`, waiting at
    /// most `timeout` for room.
    pub fn send(
        &self,
        kind: Kind,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
        timeout: Duration,
    ) -> io::Result<()> {
        rustix::net::sockopt::set_socket_timeout(
            &self.fd,
            rustix::net::sockopt::Timeout::Send,
            Some(timeout),
        )?;
        let head = [kind as u8];
        let iov = [io::IoSlice::new(&head), io::IoSlice::new(payload)];
        let mut space =
            [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() {
            assert!(
                fds.len() <= FDS_PER_MESSAGE,
                "at most {FDS_PER_MESSAGE} descriptors per message"
            );
            if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(io::Error::other(
                    "descriptors do not fit the control buffer",
                ));
            }
        }
        let n = rustix::net::sendmsg(&self.fd, &iov, &mut control, SendFlags::NOSIGNAL)?;
        if n != 1 + payload.len() {
            return Err(io::Error::other("a handover message was cut short"));
        }
        Ok(())
    }

    /// Sends `value` as JSON.
    pub fn send_json<T: Serialize>(
        &self,
        kind: Kind,
        value: &T,
        timeout: Duration,
    ) -> io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
        self.send(kind, &bytes, &[], timeout)
    }

    /// Receives one message, waiting at most `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<Received, RecvError> {
        rustix::net::sockopt::set_socket_timeout(
            &self.fd,
            rustix::net::sockopt::Timeout::Recv,
            Some(timeout.max(Duration::from_millis(1))),
        )
        .map_err(|e| RecvError::Io(e.into()))?;
        let mut buf = vec![0u8; 1 + CHUNK.max(64 * 1024)];
        let mut space =
            [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let msg = loop {
            let mut iov = [io::IoSliceMut::new(&mut buf)];
            match rustix::net::recvmsg(&self.fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
                Ok(m) => break m,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return Err(RecvError::Timeout),
                Err(e) => return Err(RecvError::Io(e.into())),
            }
        };
        let mut fds = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(it) = m {
                fds.extend(it);
            }
        }
        if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
            return Err(RecvError::Malformed("descriptors were cut off".into()));
        }
        if msg.flags.contains(rustix::net::ReturnFlags::TRUNC) {
            return Err(RecvError::Malformed("message larger than a chunk".into()));
        }
        if msg.bytes == 0 {
            return Err(RecvError::Closed);
        }
        let kind = Kind::from_u8(buf[0])
            .ok_or_else(|| RecvError::Malformed(format!("unknown kind {}", buf[0])))?;
        buf.truncate(msg.bytes);
        buf.remove(0);
        Ok(Received {
            kind,
            payload: buf,
            fds,
        })
    }

    /// Receives a message that must be of `kind` with a JSON payload; a
    /// `Refused` instead gives its reason as the error.
    pub fn recv_json<T: for<'de> Deserialize<'de>>(
        &self,
        kind: Kind,
        timeout: Duration,
    ) -> Result<T, String> {
        let m = self.recv(timeout).map_err(|e| match e {
            RecvError::Timeout => format!("no {kind:?} within {timeout:?}"),
            other => other.to_string(),
        })?;
        if m.kind == Kind::Refused {
            return Err(String::from_utf8_lossy(&m.payload).into_owned());
        }
        if m.kind != kind {
            return Err(format!("expected {kind:?}, got {:?}", m.kind));
        }
        serde_json::from_slice(&m.payload).map_err(|e| format!("{kind:?}: {e}"))
    }

    /// Sends every loop's bytes and descriptors (and the control socket
    /// last), then `End`.
    pub fn send_snapshots(
        &self,
        loops: &[(&[u8], &[BorrowedFd<'_>])],
        control: Option<BorrowedFd<'_>>,
        timeout: Duration,
    ) -> io::Result<()> {
        for (bytes, _) in loops {
            for chunk in bytes.chunks(CHUNK) {
                self.send(Kind::Data, chunk, &[], timeout)?;
            }
        }
        let all: Vec<BorrowedFd<'_>> = loops
            .iter()
            .flat_map(|(_, fds)| fds.iter().copied())
            .chain(control)
            .collect();
        for batch in all.chunks(FDS_PER_MESSAGE) {
            self.send(
                Kind::Fds,
                &(batch.len() as u32).to_le_bytes(),
                batch,
                timeout,
            )?;
        }
        self.send(Kind::End, &[], &[], timeout)
    }

    /// Receives what [`send_snapshots`](Channel::send_snapshots) sent: all
    /// bytes and all descriptors, checked against `bytes` and `fds` totals.
    pub fn recv_snapshots(
        &self,
        bytes: usize,
        fds: usize,
        timeout: Duration,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), String> {
        let mut data = Vec::with_capacity(bytes);
        let mut got = Vec::with_capacity(fds);
        loop {
            let m = self.recv(timeout).map_err(|e| e.to_string())?;
            match m.kind {
                Kind::Data => {
                    if data.len() + m.payload.len() > bytes {
                        return Err("more snapshot bytes than announced".into());
                    }
                    data.extend_from_slice(&m.payload);
                }
                Kind::Fds => {
                    let said = m
                        .payload
                        .get(..4)
                        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize);
                    if said != Some(m.fds.len()) {
                        return Err(format!(
                            "a batch announced {said:?} descriptors and carried {}",
                            m.fds.len()
                        ));
                    }
                    if got.len() + m.fds.len() > fds {
                        return Err("more descriptors than announced".into());
                    }
                    got.extend(m.fds);
                }
                Kind::End => break,
                other => return Err(format!("unexpected {other:?} during the transfer")),
            }
        }
        if data.len() != bytes || got.len() != fds {
            return Err(format!(
                "transfer incomplete: {} of {bytes} bytes, {} of {fds} descriptors",
                data.len(),
                got.len()
            ));
        }
        Ok((data, got))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn pair() -> (Channel, Channel) {
        let (a, b) = Channel::pair().unwrap();
        (a, Channel { fd: b })
    }

    #[test]
    fn snapshots_and_hundreds_of_descriptors_cross_in_batches() {
        let (old, new) = pair();
        // 600 descriptors: three batches; each names the same file.
        let file = tempfile::tempfile().unwrap();
        let dups: Vec<OwnedFd> = (0..600)
            .map(|_| file.as_fd().try_clone_to_owned().unwrap())
            .collect();
        let a: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let b = b"second loop".to_vec();
        let borrowed: Vec<BorrowedFd<'_>> = dups.iter().map(|f| f.as_fd()).collect();
        let t = Duration::from_secs(5);
        let sender = std::thread::scope(|s| {
            let h = s.spawn(|| {
                old.send_snapshots(
                    &[(&a, &borrowed[..400]), (&b, &borrowed[400..599])],
                    Some(borrowed[599]),
                    t,
                )
            });
            let got = new.recv_snapshots(a.len() + b.len(), 600, t).unwrap();
            h.join().unwrap().unwrap();
            got
        });
        let (data, fds) = sender;
        assert_eq!(&data[..a.len()], &a[..]);
        assert_eq!(&data[a.len()..], &b[..]);
        assert_eq!(fds.len(), 600);
        let ino = |fd: BorrowedFd<'_>| rustix::fs::fstat(fd).unwrap().st_ino;
        for fd in &fds {
            assert_eq!(ino(fd.as_fd()), ino(file.as_fd()));
            assert_ne!(fd.as_raw_fd(), file.as_raw_fd());
        }
    }

    #[test]
    fn a_closed_peer_and_a_silent_one_are_told_apart() {
        let (old, new) = pair();
        assert!(matches!(
            new.recv(Duration::from_millis(50)),
            Err(RecvError::Timeout)
        ));
        drop(old);
        assert!(matches!(
            new.recv(Duration::from_secs(1)),
            Err(RecvError::Closed)
        ));
    }

    #[test]
    fn a_refusal_is_the_error_of_a_json_receive() {
        let (old, new) = pair();
        new.send(Kind::Refused, b"no room", &[], Duration::from_secs(1))
            .unwrap();
        let r: Result<Imported, String> = old.recv_json(Kind::Imported, Duration::from_secs(1));
        assert_eq!(r.unwrap_err(), "no room");
    }
}
