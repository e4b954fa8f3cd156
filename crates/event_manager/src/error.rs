//! The event manager's one error type. Kernel errors keep their errno.

use std::fmt;
use std::io;

use crate::Pfd;

/// Why an operation could not be submitted, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The pfd was closed (or a close was requested) and may have been
    /// reused; nothing was done to whatever occupies its slot now.
    Stale(Pfd),
    /// The operation was cancelled (by [`crate::EventManager::cancel`], by a
    /// close of its pfd, or by shutdown) before it finished.
    Cancelled,
    /// The operation does not apply to this kind of descriptor (e.g. an
    /// eventfd operation on a socket).
    WrongKind(Pfd),
    /// A path given to open/stat/unlink contained a NUL byte.
    InvalidPath,
    /// The [`crate::OpId`] does not name an operation in flight.
    NotFound,
    /// The kernel answered with this errno (positive, e.g. `libc::EPIPE`).
    Os(i32),
    /// The event manager is quiescing or quiesced
    /// ([`crate::EventManager::quiesce`]): it submits nothing new until
    /// [`crate::EventManager::resume`]. Receives, accepts, eventfd reads,
    /// timers and no-ops asked for meanwhile are accepted and kept suspended;
    /// every other operation is refused with this.
    Quiescing,
    /// The call needs a quiesced event manager
    /// ([`crate::EventManager::is_quiesced`]).
    NotQuiesced,
    /// An operation is in flight on the pfd, and the call needs none
    /// ([`crate::EventManager::pipe_drain`]).
    Busy(Pfd),
}

impl Error {
    /// Maps a negative CQE result to an error (`-ECANCELED` → `Cancelled`).
    pub(crate) fn from_res(res: i32) -> Error {
        debug_assert!(res < 0);
        if res == -libc::ECANCELED {
            Error::Cancelled
        } else {
            Error::Os(-res)
        }
    }

    /// The errno behind this error, if it came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os(e) => Some(*e),
            Error::Cancelled => Some(libc::ECANCELED),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Stale(p) => write!(f, "{p} is stale (closed, possibly reused)"),
            Error::Cancelled => f.write_str("operation cancelled"),
            Error::WrongKind(p) => write!(f, "operation does not apply to the kind of {p}"),
            Error::Busy(p) => write!(f, "an operation is in flight on {p}"),
            Error::InvalidPath => f.write_str("path contains a NUL byte"),
            Error::NotFound => f.write_str("no such operation in flight"),
            Error::Os(e) => write!(f, "{}", io::Error::from_raw_os_error(*e)),
            Error::Quiescing => {
                f.write_str("the event manager is quiescing: nothing new is submitted")
            }
            Error::NotQuiesced => f.write_str("the event manager is not quiesced"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Os(errno) => io::Error::from_raw_os_error(errno),
            other => io::Error::other(other),
        }
    }
}
