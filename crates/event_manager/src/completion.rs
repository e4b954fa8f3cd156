//! What the event manager hands to the layer above: one [`Completion`] per
//! finished operation (several for multishot ones), delivered through
//! [`Handler::on_completion`].

use std::ffi::CString;

use crate::{Error, EventManager, OpId, OutBuf, Pfd, RecvBuf};

/// The layer above implements this to receive completions. The handler gets
/// the event manager back so it can submit further operations from inside
/// the callback. Closures `FnMut(&mut EventManager, Completion)` implement it.
pub trait Handler {
    /// Called once per completion, in the order the kernel posted them
    /// (except that the cancelled completions of a closing pfd always come
    /// before its close completion).
    fn on_completion(&mut self, em: &mut EventManager, completion: Completion);
}

impl<F: FnMut(&mut EventManager, Completion)> Handler for F {
    fn on_completion(&mut self, em: &mut EventManager, completion: Completion) {
        self(em, completion)
    }
}

/// A finished operation: the `user` tag it was submitted with, the id it was
/// given, and what happened.
#[derive(Debug)]
pub struct Completion {
    /// The caller's tag, passed through untouched.
    pub user: u64,
    /// The id [`EventManager`] returned when the operation was submitted.
    pub op: OpId,
    /// The outcome, carrying back every buffer the operation owned.
    pub kind: CompletionKind,
}

/// File metadata from `statx`, as plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Inode number.
    pub ino: u64,
    /// Device id (major, minor).
    pub dev: (u32, u32),
    /// Hard links.
    pub nlink: u32,
    /// Last modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
}

impl FileStat {
    pub(crate) fn from_statx(s: &libc::statx) -> FileStat {
        FileStat {
            size: s.stx_size,
            mode: s.stx_mode as u32,
            ino: s.stx_ino,
            dev: (s.stx_dev_major, s.stx_dev_minor),
            nlink: s.stx_nlink,
            mtime_sec: s.stx_mtime.tv_sec,
            mtime_nsec: s.stx_mtime.tv_nsec,
            uid: s.stx_uid,
            gid: s.stx_gid,
        }
    }
    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

/// How an operation ended. Every variant gives back what the operation owned.
#[derive(Debug)]
#[non_exhaustive]
pub enum CompletionKind {
    /// A [`EventManager::nop`] came back.
    Nop,
    /// One connection accepted by a multishot accept (or a non-fatal accept
    /// error such as `ECONNABORTED`/`EMFILE`, after which the accept stays
    /// armed). `Ok` carries the new connection's pfd.
    Accept {
        /// The listening pfd.
        listener: Pfd,
        /// The accepted connection, or a transient error.
        result: Result<Pfd, Error>,
    },
    /// The multishot accept ended for good: cancelled (by close or cancel)
    /// or a fatal error. Exactly one per [`EventManager::accept_multishot`].
    AcceptEnd {
        /// The listening pfd.
        listener: Pfd,
        /// Why it ended.
        result: Result<(), Error>,
    },
    /// Bytes received by a multishot receive. Drop the buffer to give it back.
    Recv {
        /// The connection.
        pfd: Pfd,
        /// The bytes (never empty).
        buf: RecvBuf,
    },
    /// The multishot receive ended: `Ok(())` at end of stream, `Err` for an
    /// error or cancellation. Exactly one per [`EventManager::recv_multishot`].
    RecvEnd {
        /// The connection.
        pfd: Pfd,
        /// `Ok` at EOF.
        result: Result<(), Error>,
    },
    /// A [`EventManager::read`] finished; `buf`'s length grew by the count.
    Read {
        /// The descriptor read.
        pfd: Pfd,
        /// The caller's buffer, with the bytes read appended.
        buf: Vec<u8>,
        /// Bytes read (0 at end of file).
        result: Result<usize, Error>,
    },
    /// A [`EventManager::readv`] finished; the bytes were spread over the
    /// buffers in order and each buffer's length grew accordingly.
    Readv {
        /// The descriptor read.
        pfd: Pfd,
        /// The caller's buffers.
        bufs: Vec<Vec<u8>>,
        /// Total bytes read.
        result: Result<usize, Error>,
    },
    /// A [`EventManager::write`] finished. Short writes are completed by the
    /// event manager, so `Ok(n)` always means the whole buffer (`n` bytes).
    Write {
        /// The descriptor written.
        pfd: Pfd,
        /// The caller's buffer, given back.
        buf: OutBuf,
        /// Bytes written before the operation ended (also on error).
        written: usize,
        /// `Ok(len)` when everything was written.
        result: Result<usize, Error>,
    },
    /// A [`EventManager::writev`] finished; same rules as `Write`.
    Writev {
        /// The descriptor written.
        pfd: Pfd,
        /// The caller's buffers, given back.
        bufs: Vec<OutBuf>,
        /// Bytes written before the operation ended (also on error).
        written: usize,
        /// `Ok(total)` when everything was written.
        result: Result<usize, Error>,
    },
    /// A [`EventManager::shutdown`] finished.
    Shutdown {
        /// The socket.
        pfd: Pfd,
        /// Outcome.
        result: Result<(), Error>,
    },
    /// A [`EventManager::close`] finished: the pfd is stale from now on and
    /// every operation that was in flight on it has already completed.
    Close {
        /// The pfd that was closed.
        pfd: Pfd,
        /// Outcome of `close(2)` (the descriptor is released either way).
        result: Result<(), Error>,
    },
    /// An armed eventfd was triggered (or the arm was cancelled).
    EventFd {
        /// The eventfd.
        pfd: Pfd,
        /// The `u64` given to [`EventManager::eventfd_arm`].
        info: u64,
        /// The counter value read (triggers since the last read).
        result: Result<u64, Error>,
    },
    /// An [`EventManager::open`] finished; the new file is a pfd.
    Open {
        /// The path opened.
        path: CString,
        /// The new pfd.
        result: Result<Pfd, Error>,
    },
    /// An [`EventManager::stat`] finished.
    Stat {
        /// The path.
        path: CString,
        /// Metadata.
        result: Result<FileStat, Error>,
    },
    /// An [`EventManager::fstat`] finished.
    Fstat {
        /// The descriptor.
        pfd: Pfd,
        /// Metadata.
        result: Result<FileStat, Error>,
    },
    /// An [`EventManager::unlink`] finished.
    Unlink {
        /// The path.
        path: CString,
        /// Outcome.
        result: Result<(), Error>,
    },
    /// A [`EventManager::splice`] finished: `Ok(n)` bytes moved (0 at the
    /// end of a file; may be fewer than asked), or the error.
    Splice {
        /// The source.
        from: Pfd,
        /// The destination.
        to: Pfd,
        /// Bytes moved.
        result: Result<usize, Error>,
    },
    /// A [`EventManager::timeout`] fired (`Ok`) or was cancelled.
    Timeout {
        /// `Ok` when the time elapsed.
        result: Result<(), Error>,
    },
}
