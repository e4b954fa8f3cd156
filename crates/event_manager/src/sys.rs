//! The few direct system calls the event manager makes outside the ring:
//! creating eventfds, anonymous mappings for the provided-buffer ring,
//! `fstat` for classifying adopted descriptors, `dup`, and the SIGPIPE
//! disposition. Everything here returns `Result<_, Error>` with the errno.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use crate::{Error, FdKind};

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// `eventfd(0, EFD_CLOEXEC)`. Blocking on purpose: the ring polls it, and a
/// blocking eventfd write only waits if the counter would overflow 2^64-2.
pub(crate) fn eventfd() -> Result<OwnedFd, Error> {
    // SAFETY: plain syscall with constant arguments; no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Os(errno()));
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter.
pub(crate) fn eventfd_add(fd: RawFd, n: u64) -> Result<(), Error> {
    loop {
        // SAFETY: writes 8 bytes from a live stack value; `fd` is a descriptor
        // the caller keeps open for the duration of the call.
        let r = unsafe { libc::write(fd, (&n as *const u64).cast(), 8) };
        if r == 8 {
            return Ok(());
        }
        let e = errno();
        if e != libc::EINTR {
            return Err(Error::Os(e));
        }
    }
}

/// `dup(fd)` with close-on-exec.
pub(crate) fn dup(fd: RawFd) -> Result<OwnedFd, Error> {
    // SAFETY: plain syscall; failure is reported through the return value.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 {
        return Err(Error::Os(errno()));
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Classifies a descriptor by `fstat`.
pub(crate) fn fd_kind(fd: RawFd) -> Result<FdKind, Error> {
    // SAFETY: `st` is plain old data; fstat fills it or fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer for the call's duration.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(Error::Os(errno()));
    }
    Ok(match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFREG | libc::S_IFDIR => FdKind::File,
        _ => FdKind::Other,
    })
}

/// Closes a descriptor synchronously (used only on teardown).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
}

/// Makes writes to a pipe whose reader is gone fail with EPIPE instead of
/// killing the process. Only changes the default disposition; a handler the
/// host program installed is left alone. Sockets additionally use
/// `MSG_NOSIGNAL`, so they never raise SIGPIPE whatever the disposition.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: querying and setting a signal disposition with valid, zeroed
    // sigaction structs; no handler function pointer is installed.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_DFL
        {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = libc::SIG_IGN;
            libc::sigaction(libc::SIGPIPE, &new, std::ptr::null_mut());
        }
    }
}

/// An anonymous, page-aligned, zeroed private mapping. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// An anonymous read-write mapping of `len` bytes, faulted in at once
    /// (`MAP_POPULATE`): it is memory the kernel writes into, and a page
    /// fault in that path would cost more than touching it up front.
    pub(crate) fn new(len: usize) -> Result<Mapping, Error> {
        // SAFETY: anonymous private mapping; no file, no fixed address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Os(errno()));
        }
        Ok(Mapping {
            ptr: NonNull::new(p.cast()).expect("mmap returned null"),
            len,
        })
    }
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value created and
        // nobody else unmaps; the owner guarantees the kernel no longer uses it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
