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

/// `pipe2(O_CLOEXEC | O_NONBLOCK)`: (read end, write end). Non-blocking so
/// that draining it with [`pipe_read_all`] never waits; a splice's own
/// blocking is decided by the file or socket on its other side.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a writable array of two descriptors, as pipe2 needs.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
        return Err(Error::Os(errno()));
    }
    // SAFETY: both descriptors were just created by pipe2 and are owned by
    // nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Asks for a pipe capacity of `size` bytes (`F_SETPIPE_SZ`; the kernel
/// rounds up to a power-of-two number of pages and refuses sizes above
/// `/proc/sys/fs/pipe-max-size` or past the user's pipe page limits), then
/// returns the capacity the pipe has, granted or not (`F_GETPIPE_SZ`).
pub(crate) fn pipe_set_size(fd: RawFd, size: usize) -> Result<usize, Error> {
    if size > 0 {
        let size = size.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: plain fcntl on a descriptor the caller keeps open; a
        // refusal is reported through the return value and changes nothing.
        let _ = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) };
    }
    // SAFETY: as above; F_GETPIPE_SZ takes no argument.
    let got = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    if got < 0 {
        return Err(Error::Os(errno()));
    }
    Ok(got as usize)
}

/// Bytes waiting in a pipe (`FIONREAD`).
pub(crate) fn pipe_len(fd: RawFd) -> Result<usize, Error> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points at
    // a live, writable stack value for the call's duration.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n as *mut libc::c_int) } < 0 {
        return Err(Error::Os(errno()));
    }
    Ok(n.max(0) as usize)
}

/// Reads everything a non-blocking pipe holds, appending it to `out`.
/// Returns the count; stops at `EAGAIN` (empty) or end of file.
pub(crate) fn pipe_read_all(fd: RawFd, out: &mut Vec<u8>) -> Result<usize, Error> {
    let mut total = 0;
    loop {
        let want = pipe_len(fd)?.max(4096);
        out.reserve(want);
        let spare = out.spare_capacity_mut();
        // SAFETY: reads at most `spare.len()` bytes into the vector's spare
        // capacity, which is allocated and writable; the length is only
        // extended below by the count the kernel reports.
        let r = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
        if r > 0 {
            let n = r as usize;
            // SAFETY: the kernel initialised exactly `n` bytes of the spare
            // capacity starting at the old length.
            unsafe { out.set_len(out.len() + n) };
            total += n;
            continue;
        }
        if r == 0 {
            return Ok(total);
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(total),
            e => return Err(Error::Os(e)),
        }
    }
}

/// `SO_SNDTIMEO` on a socket: a blocking send on it (a splice into it runs
/// as one, in an io_uring worker) gives up after `t` without progress.
pub(crate) fn set_send_timeout(fd: RawFd, t: std::time::Duration) -> Result<(), Error> {
    let tv = libc::timeval {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: passes a pointer to a live timeval and its exact size; the
    // kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(Error::Os(errno()));
    }
    Ok(())
}
