//! # event_manager — ringtail's io_uring reactor
//!
//! The bottom layer of ringtail. One [`EventManager`] owns one io_uring ring
//! and every descriptor submitted through it. It knows nothing of HTTP: it
//! moves bytes, descriptors and timers, and reports each finished operation to
//! the layer above as a [`Completion`].
//!
//! ## How the types fit together
//!
//! * [`Pfd`] — a *pseudo fd*: slot index + generation. Every descriptor the
//!   event manager owns (accepted sockets, adopted fds, opened files,
//!   eventfds) is named by one. When a pfd is closed its slot's generation
//!   moves on, so an old copy is **stale**: every operation on it fails with
//!   [`Error::Stale`] and never reaches whatever reuses the slot.
//! * Operations ([`EventManager::read`], [`EventManager::writev`],
//!   [`EventManager::accept_multishot`], …) take a `user: u64` tag and return
//!   an [`OpId`]. Their results arrive as [`Completion`]s carrying the tag.
//! * [`Handler`] — what the layer above implements (a closure works) to
//!   receive completions. It is given `&mut EventManager` back, so it can
//!   submit more work from inside the callback.
//! * [`EventManager::run`] / [`EventManager::turn`] — the loop: submit what is
//!   queued, wait, reap, dispatch.
//!
//! ```
//! use event_manager::{CompletionKind, EventManager};
//! # fn main() -> Result<(), event_manager::Error> {
//! let mut em = EventManager::new()?;
//! let ev = em.eventfd_open()?;
//! em.eventfd_arm(ev, 42, 0)?;
//! em.eventfd_trigger(ev)?;
//! em.run(&mut |em: &mut EventManager, c: event_manager::Completion| {
//!     if let CompletionKind::EventFd { info, .. } = c.kind {
//!         assert_eq!(info, 42);
//!         em.stop();
//!     }
//! })?;
//! # Ok(()) }
//! ```
//!
//! ## Operation lifecycle
//!
//! 1. **Submit.** The method checks the pfd (stale → error, nothing
//!    submitted), moves everything the kernel will touch into an operation
//!    slot, and pushes one submission entry whose `user_data` is the slot key
//!    plus a generation. A full submission queue is flushed to the kernel and
//!    the push retried: nothing is dropped and nothing panics.
//! 2. **In flight.** The slot owns the buffers. The pfd's `inflight` count
//!    includes the operation. Short writes are resubmitted for the remainder
//!    inside the event manager; multishot accept and receive re-arm
//!    themselves when the kernel ends them early.
//! 3. **Complete.** When the final completion arrives the slot is removed,
//!    the pfd's hold released, and one [`Completion`] dispatched with the
//!    buffers inside it. Multishot operations dispatch one completion per
//!    event and end with exactly one `AcceptEnd` / `RecvEnd`.
//!
//! **Close** ([`EventManager::close`], the notes' `close_pfd`): the pfd turns
//! stale at once for new operations; everything in flight on it is cancelled
//! and those completions are dispatched first; only when its `inflight` count
//! reaches zero is `close(2)` submitted, and its completion — exactly one
//! [`CompletionKind::Close`] — is the last thing dispatched for the pfd.
//! Then the slot may be reused, under a new generation.
//!
//! ## Buffer ownership
//!
//! * A buffer handed to an operation (`Vec<u8>` for reads, [`OutBuf`] for
//!   writes, and internal boxes for `statx` results, eventfd counters,
//!   timespecs, iovec arrays and `msghdr`s) is **owned by the operation
//!   until its final completion**, then given back inside that completion.
//!   The layer above cannot drop or move it meanwhile: it no longer has it.
//! * Everything a submission entry points at is heap memory whose address
//!   does not change when the operation slot moves (the slot table may grow).
//! * Receive data comes in [`RecvBuf`]s borrowed from the provided-buffer
//!   ring; dropping the `RecvBuf` returns the buffer to the kernel. An idle
//!   connection holds no read buffer.
//! * Dropping the event manager cancels every operation and **waits for the
//!   kernel to give each one back** before freeing anything (bounded by
//!   [`Config::teardown_timeout`]; past it, memory is leaked rather than
//!   freed under the kernel), then closes every pfd. No descriptor leaks.
//!
//! ## Writes and partial writes
//!
//! Writes are **completed by the layer**: a short write is resubmitted for
//! the rest, so a write completion reports either the whole length or the
//! error that stopped it, with the bytes written before it in `written`.
//! Sockets use `send`/`sendmsg` with `MSG_NOSIGNAL`; other descriptors use
//! `write`/`writev`. Creating an event manager also sets SIGPIPE to ignored
//! when it is at its default, so a pipe whose reader has gone returns `EPIPE`
//! instead of killing the process.
//!
//! ## Ring setup
//!
//! `IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN` when the kernel has them (the
//! event manager is `!Send` and must live on the thread that created it),
//! `SUBMIT_ALL`, a completion queue four times the submission queue, and
//! `IORING_FEAT_NODROP` so an overflowing completion queue loses nothing;
//! overflowed completions are flushed at the next enter.
//!
//! ## Ready for live replacement
//!
//! Only plain data crosses to the layer above: [`Pfd`]s, [`OpId`]s, `u64`
//! tags, owned buffers and [`Error`] codes. [`EventManager::pfds`] lists the
//! whole table with generations and kernel descriptors.

#![warn(missing_docs)]

mod buf;
mod buf_ring;
mod completion;
mod error;
mod handover;
mod manager;
mod op;
mod pfd;
pub mod snapshot;
mod sys;

pub use buf::OutBuf;
pub use buf_ring::RecvBuf;
pub use completion::{Completion, CompletionKind, FileStat, Handler};
pub use error::Error;
pub use handover::{DescriptorCheck, Snapshot, SnapshotInfo};
pub use manager::{Config, EventManager, EventTrigger, RingFeatures, Stats, StopHandle};
pub use op::{OpId, SpliceArgs};
pub use pfd::{FdKind, Pfd, PfdInfo};
pub use snapshot::SnapshotError;

pub use bytes::Bytes;
