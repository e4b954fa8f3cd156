//! Helpers shared by the event_manager integration tests.
#![allow(dead_code)]

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use event_manager::{Completion, EventManager};

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A pipe as (read end, write end).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid 2-element array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Runs the loop until the handler calls `stop()`; panics if that takes
/// longer than `limit` (every test is bounded in time).
pub fn run_bounded<F>(em: &mut EventManager, limit: Duration, mut f: F)
where
    F: FnMut(&mut EventManager, Completion),
{
    let stopped = em.run_until(&mut f, Instant::now() + limit).unwrap();
    assert!(stopped, "event loop did not finish within {limit:?}");
}
