//! The [`EventManager`] itself: ring setup, the submit/reap/dispatch loop,
//! the pfd table, stop and trigger handles, and teardown. The operations and
//! their completion processing live in `op.rs`.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use io_uring::{opcode, squeue, types, IoUring};
use slab::Slab;

use crate::buf_ring::BufRing;
use crate::op::{Op, OpState, CANCEL_UD};
use crate::pfd::{PfdTable, SlotState};
use crate::{sys, Completion, Error, FdKind, Handler, Pfd, PfdInfo};

/// Sizes and policies of one event manager. `Default` gives values suited to
/// a server thread.
#[derive(Debug, Clone)]
pub struct Config {
    /// Submission queue entries (rounded up to a power of two by the kernel).
    /// A full queue is flushed and retried, so this bounds batching, not the
    /// number of operations in flight. Default 1024.
    pub sq_entries: u32,
    /// Completion queue entries; default 8192 (8 × `sq_entries`). Overflow
    /// is handled (the kernel keeps overflowed completions and we flush
    /// them). Its size also sizes the kernel's table of armed receives
    /// (2^(log2(cq) − 5) hash buckets, at most 256, reached at 8192): a
    /// quiesce cancels each receive by a walk of one bucket, so with 10,000
    /// connections 8192 entries cut the quiesce from 19–22 ms to 14 ms
    /// (`bench/handover.sh`) for 64 KiB more ring memory than 4096.
    pub cq_entries: u32,
    /// Buffers in the provided-buffer ring used by multishot receive (a power
    /// of two ≤ 32768). Default 16.
    pub recv_buffers: u16,
    /// Size of each receive buffer. Default 256 KiB: with an incremental
    /// ring a receive takes only the bytes it got, so the pool (4 MiB by
    /// default, resident from the start) is shared by all connections at
    /// byte granularity, and large buffers mean a message is seldom cut
    /// where one buffer ends (16 KiB echo: +3.5% over 64 × 64 KiB).
    pub recv_buffer_size: u32,
    /// Register the ring as incremental (`IOU_PBUF_RING_INC`, Linux 6.12)
    /// when the kernel supports it. Otherwise every receive takes a whole
    /// buffer: when this is `true` but the kernel lacks the feature, the
    /// same memory is split into more, smaller buffers (down to 4 KiB:
    /// 16 × 256 KiB becomes 1024 × 4 KiB); when it is `false`, the sizes are
    /// used as they are. Default `true`. See
    /// [`RingFeatures::incremental_recv_buffers`].
    pub incremental_recv_buffers: bool,
    /// Bytes one arming of a multishot receive may take before it ends and
    /// is re-armed by the event manager (Linux ≥ 6.17; older kernels ignore
    /// it). While receives wait for buffers, one that used up its share
    /// re-arms behind them, so a socket holding more data than the whole
    /// pool cannot keep every buffer to itself and starve the others.
    /// 0 = no cap. Default 256 KiB.
    pub recv_arm_bytes: u32,
    /// How long a multishot accept waits before re-arming after running out
    /// of descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`).
    /// Default 10 ms.
    pub accept_retry_delay: Duration,
    /// Upper bound on how long dropping the event manager waits for the
    /// kernel to give back cancelled operations' buffers. Default 5 s.
    pub teardown_timeout: Duration,
}

/// Both clocks, read together at most once per loop turn.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    wall: SystemTime,
}

impl Clock {
    fn read() -> Clock {
        Clock {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// The same memory as `n` buffers of `size`, as more and smaller buffers
/// (halving down to 4 KiB, at most 32768 of them) for a ring where every
/// receive takes a whole buffer: 16 × 256 KiB → 1024 × 4 KiB.
fn whole_buffers(mut n: u16, mut size: u32) -> (u16, u32) {
    while size > 4096 && size % 2 == 0 && n <= 16384 {
        n *= 2;
        size /= 2;
    }
    (n, size)
}

/// Most boxes [`EventManager::write_boxes`] keeps (a write's state: a few
/// dozen bytes each).
pub(crate) const WRITE_BOXES_MAX: usize = 1024;

/// `IOU_PBUF_RING_INC` from `<linux/io_uring.h>` (the io-uring crate's
/// constant is not public).
const IOU_PBUF_RING_INC: u16 = 2;

impl Default for Config {
    fn default() -> Self {
        Config {
            sq_entries: 1024,
            cq_entries: 8192,
            recv_buffers: 16,
            recv_buffer_size: 256 * 1024,
            incremental_recv_buffers: true,
            recv_arm_bytes: 256 * 1024,
            accept_retry_delay: Duration::from_millis(10),
            teardown_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Submission queue entries pushed (including internal cancels).
    pub submitted: u64,
    /// Completion queue entries reaped.
    pub completed: u64,
    /// Times the submission queue was full and had to be flushed early.
    pub sq_full_flushes: u64,
    /// Completions the kernel reported as dropped (only without
    /// `IORING_FEAT_NODROP`; always 0 on the kernels we support).
    pub cq_dropped: u32,
    /// Largest number of completions waiting for dispatch at once.
    pub backlog_high_water: usize,
    /// Times a reap found the kernel holding overflowed completions (they are
    /// flushed by the next enter, not lost).
    pub cq_overflows: u64,
    /// Completions whose `user_data` named no operation in flight (an
    /// unknown key, or a generation that is not the slot's): dropped, never
    /// routed to the slot's current occupant. Always 0 unless there is a bug.
    pub stale_completions: u64,
    /// `io_uring_enter` failures while flushing a full submission queue
    /// (the entries were kept and submitted later; the error was returned
    /// by the next [`EventManager::turn`]).
    pub enter_errors: u64,
    /// Times a receive that kept getting data was stopped and parked so
    /// that receives waiting for buffers got their turn.
    pub recv_yields: u64,
}

/// Which optional ring features the kernel accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFeatures {
    /// `IORING_SETUP_SINGLE_ISSUER` and `IORING_SETUP_DEFER_TASKRUN`.
    pub single_issuer_defer_taskrun: bool,
    /// `IORING_FEAT_NODROP`: completions are never lost on CQ overflow.
    pub nodrop: bool,
    /// The receive-buffer ring is incremental (`IOU_PBUF_RING_INC`): see
    /// [`Config::incremental_recv_buffers`].
    pub incremental_recv_buffers: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RawCqe {
    pub(crate) user_data: u64,
    pub(crate) res: i32,
    pub(crate) flags: u32,
}

/// One io_uring ring and everything submitted on it. Single-threaded: create
/// it on the thread that runs it (it is deliberately `!Send`).
///
/// See the crate documentation for the operation lifecycle and the buffer
/// ownership rules.
pub struct EventManager {
    pub(crate) ring: IoUring,
    pub(crate) pfds: PfdTable,
    pub(crate) ops: Slab<Op>,
    pub(crate) buf_ring: BufRing,
    /// Completions reaped from the CQ but not yet dispatched.
    pub(crate) backlog: VecDeque<RawCqe>,
    /// Entries that did not fit in the submission queue because flushing it
    /// failed; pushed again (in order) at the start of the next turn.
    pub(crate) unpushed: VecDeque<squeue::Entry>,
    /// The error that left entries in `unpushed`, returned by the next turn.
    pub(crate) push_error: Option<Error>,
    /// Multishot receives parked after `ENOBUFS`, waiting for buffers.
    pub(crate) starved: Vec<usize>,
    /// Slot receives parked by `ENOBUFS` (see [`crate::pfd::SlotRecv`]).
    pub(crate) starved_recv: Vec<Pfd>,
    /// Slot receives armed or parked (teardown waits for them).
    pub(crate) slot_recvs: usize,
    /// Multishot accepts waiting on their retry timer.
    pub(crate) accept_retrying: Vec<usize>,
    pub(crate) next_op_gen: u32,
    /// [`Config::recv_arm_bytes`], or 0 once the kernel refused it.
    pub(crate) recv_cap: u32,
    /// Loop turns so far, and the turn in which a receive last ran out of
    /// buffers (receives are contended while that is recent).
    pub(crate) turns: u64,
    pub(crate) enobufs_turn: Option<u64>,
    /// The clocks as of the current turn ([`EventManager::now`]), read on
    /// first use in the turn.
    clock: std::cell::Cell<Option<Clock>>,
    pub(crate) stop_requested: bool,
    pub(crate) shutting_down: bool,
    /// [`EventManager::quiesce`] was called and [`EventManager::resume`]
    /// not yet: nothing new is submitted (see `handover.rs`).
    pub(crate) quiescing: bool,
    /// Cancel requests of the quiesce whose own completion has not come
    /// back yet: while any is out the quiesce cannot be complete, which
    /// [`EventManager::is_quiesced`] checks before it scans every operation
    /// and slot (at 10,000 connections a scan per turn was half of the
    /// quiesce's time).
    pub(crate) quiesce_cancels: usize,
    /// Splices in flight (a close then also cancels the ones reading from
    /// the closed pfd).
    pub(crate) splices: usize,
    /// Boxes of finished writes, for the next ones: a busy server starts
    /// and finishes a write per connection per turn, and reusing the box
    /// saves a malloc and a free each time (at most [`WRITE_BOXES_MAX`]).
    // The boxes themselves are what is reused (an operation holds its
    // state boxed), so a vector of boxes is the point here.
    #[allow(clippy::vec_box)]
    pub(crate) write_boxes: Vec<Box<crate::op::WriteState>>,
    /// Internal eventfd behind [`StopHandle`]s, with its armed read op.
    pub(crate) wake: Option<(Arc<OwnedFd>, usize)>,
    pub(crate) config: Config,
    pub(crate) stats: Stats,
    features: RingFeatures,
}

impl std::fmt::Debug for EventManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventManager")
            .field("pfds", &self.pfds.len())
            .field("ops_in_flight", &self.ops.len())
            .field("features", &self.features)
            .field("stats", &self.stats)
            .finish()
    }
}

impl EventManager {
    /// A ring with the default [`Config`].
    pub fn new() -> Result<EventManager, Error> {
        Self::with_config(Config::default())
    }

    /// A ring with the given sizes. Uses `SINGLE_ISSUER | DEFER_TASKRUN`
    /// when the kernel has them and falls back to a plain ring otherwise.
    /// Also sets SIGPIPE to "ignore" if it is at its default (see
    /// [`crate`] docs).
    pub fn with_config(config: Config) -> Result<EventManager, Error> {
        sys::ignore_sigpipe();
        let sq = config.sq_entries.max(1);
        let cq = config.cq_entries.max(sq * 2);
        let tuned = IoUring::builder()
            .setup_cqsize(cq)
            .setup_clamp()
            .setup_submit_all()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(sq);
        let (ring, tuned_ok) = match tuned {
            Ok(r) => (r, true),
            Err(_) => (
                IoUring::builder()
                    .setup_cqsize(cq)
                    .setup_clamp()
                    .build(sq)
                    .map_err(|e| Error::Os(e.raw_os_error().unwrap_or(libc::EIO)))?,
                false,
            ),
        };
        let mut buf_ring = BufRing::new(config.recv_buffers, config.recv_buffer_size, 0)?;
        // SAFETY: the ring and buffer memory belong to `buf_ring`, which the
        // event manager keeps until after it unregisters the group in `drop`
        // (and the mapping itself lives on while any RecvBuf holds it).
        let register = |buf_ring: &BufRing, flags: u16| unsafe {
            ring.submitter().register_buf_ring_with_flags(
                buf_ring.ring_addr(),
                buf_ring.entries(),
                buf_ring.bgid,
                flags,
            )
        };
        let incremental =
            config.incremental_recv_buffers && register(&buf_ring, IOU_PBUF_RING_INC).is_ok();
        if !incremental {
            if config.incremental_recv_buffers {
                // The kernel predates incremental rings.
                let (n, size) = whole_buffers(config.recv_buffers, config.recv_buffer_size);
                buf_ring = BufRing::new(n, size, 0)?;
            }
            register(&buf_ring, 0).map_err(|e| Error::Os(e.raw_os_error().unwrap_or(libc::EIO)))?;
        }
        let features = RingFeatures {
            single_issuer_defer_taskrun: tuned_ok,
            nodrop: ring.params().is_feature_nodrop(),
            incremental_recv_buffers: incremental,
        };
        Ok(EventManager {
            ring,
            pfds: PfdTable::default(),
            ops: Slab::with_capacity(256),
            buf_ring,
            backlog: VecDeque::with_capacity(cq as usize),
            unpushed: VecDeque::new(),
            push_error: None,
            starved: Vec::new(),
            starved_recv: Vec::new(),
            slot_recvs: 0,
            accept_retrying: Vec::new(),
            next_op_gen: 1,
            recv_cap: config.recv_arm_bytes,
            turns: 0,
            enobufs_turn: None,
            clock: std::cell::Cell::new(None),
            stop_requested: false,
            shutting_down: false,
            quiescing: false,
            quiesce_cancels: 0,
            splices: 0,
            write_boxes: Vec::new(),
            wake: None,
            config,
            stats: Stats::default(),
            features,
        })
    }

    /// Which optional ring features are in use.
    pub fn features(&self) -> RingFeatures {
        self.features
    }

    /// The time of this loop turn: the clock is read on the first call after
    /// the turn's wait and reused until the next wait, for deadlines and
    /// `Date` headers, so that handlers need not read it per completion (and
    /// a turn that never asks reads nothing). Behind the real time by at
    /// most the time spent dispatching the turn.
    pub fn now(&self) -> Instant {
        self.clock().instant
    }

    fn clock(&self) -> Clock {
        match self.clock.get() {
            Some(c) => c,
            None => {
                let c = Clock::read();
                self.clock.set(Some(c));
                c
            }
        }
    }

    /// Reads the clocks now (for work done outside a loop turn, e.g.
    /// before [`EventManager::run`]).
    pub fn update_clock(&mut self) {
        self.clock.set(Some(Clock::read()));
    }

    /// The wall-clock time read together with [`EventManager::now`].
    pub fn wall_now(&self) -> SystemTime {
        self.clock().wall
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Operations submitted whose final completion has not been dispatched.
    pub fn ops_in_flight(&self) -> usize {
        self.ops.len()
    }

    /// Receive buffers currently in the ring (not held by a [`crate::RecvBuf`]).
    pub fn recv_buffers_available(&self) -> u32 {
        self.buf_ring.available()
    }

    // ----- pfds -------------------------------------------------------------

    /// Takes ownership of an existing descriptor (a pipe, a file, a socket
    /// the caller made) and returns its pfd. Its kind is found with `fstat`.
    pub fn adopt(&mut self, fd: OwnedFd) -> Result<Pfd, Error> {
        let kind = sys::fd_kind(fd.as_raw_fd())?;
        Ok(self.pfds.insert(fd.into_raw_fd(), kind))
    }

    /// Opens an eventfd managed as a pfd. Arm it with
    /// [`EventManager::eventfd_arm`]; trigger it with
    /// [`EventManager::eventfd_trigger`] or, from any thread, with an
    /// [`EventTrigger`].
    pub fn eventfd_open(&mut self) -> Result<Pfd, Error> {
        let fd = sys::eventfd()?;
        Ok(self.pfds.insert(fd.into_raw_fd(), FdKind::EventFd))
    }

    /// Adds one to the eventfd's counter, waking an armed read.
    pub fn eventfd_trigger(&mut self, pfd: Pfd) -> Result<(), Error> {
        let slot = self.pfds.get(pfd)?;
        if slot.kind != FdKind::EventFd {
            return Err(Error::WrongKind(pfd));
        }
        sys::eventfd_add(slot.fd, 1)
    }

    /// A handle that triggers this eventfd from any thread. It holds its own
    /// duplicate of the descriptor, so it stays harmless after the pfd is
    /// closed (triggers then go nowhere) and can never hit a reused fd number.
    pub fn eventfd_trigger_handle(&self, pfd: Pfd) -> Result<EventTrigger, Error> {
        let slot = self.pfds.get(pfd)?;
        if slot.kind != FdKind::EventFd {
            return Err(Error::WrongKind(pfd));
        }
        Ok(EventTrigger {
            fd: Arc::new(sys::dup(slot.fd)?),
        })
    }

    /// The kernel descriptor behind a live pfd (for `setsockopt` and the
    /// like; do not close it — use [`EventManager::close`]).
    pub fn raw_fd(&self, pfd: Pfd) -> Result<RawFd, Error> {
        Ok(self.pfds.get(pfd)?.fd)
    }

    /// The kind of a live pfd.
    pub fn kind(&self, pfd: Pfd) -> Result<FdKind, Error> {
        Ok(self.pfds.get(pfd)?.kind)
    }

    /// Every pfd that is open or closing, with its generation and kernel
    /// descriptor: what a newer version would need to take the table over.
    pub fn pfds(&self) -> impl Iterator<Item = PfdInfo> + '_ {
        self.pfds.iter()
    }

    /// Number of open or closing pfds.
    pub fn pfd_count(&self) -> usize {
        self.pfds.len()
    }

    // ----- the loop ---------------------------------------------------------

    /// Asks [`EventManager::run`] to return after the completion being
    /// dispatched. Operations in flight stay in flight.
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }

    /// A handle that stops [`EventManager::run`] from another thread.
    pub fn stop_handle(&mut self) -> Result<StopHandle, Error> {
        if self.wake.is_none() {
            let fd = Arc::new(sys::eventfd()?);
            let key = self.insert_op(0, OpState::Wake { value: Box::new(0) });
            self.wake = Some((fd, key));
            self.submit_op(key);
        }
        let (fd, _) = self.wake.as_ref().expect("wake eventfd set above");
        Ok(StopHandle { fd: fd.clone() })
    }

    /// Runs until [`EventManager::stop`] is called (from a callback or
    /// through a [`StopHandle`]), dispatching every completion to `handler`.
    pub fn run<H: Handler + ?Sized>(&mut self, handler: &mut H) -> Result<(), Error> {
        self.stop_requested = false;
        while !self.stop_requested {
            self.turn(handler, None)?;
        }
        Ok(())
    }

    /// Like [`EventManager::run`], but returns at `deadline` at the latest.
    /// `Ok(true)` if it returned because of a stop, `Ok(false)` on the
    /// deadline.
    pub fn run_until<H: Handler + ?Sized>(
        &mut self,
        handler: &mut H,
        deadline: Instant,
    ) -> Result<bool, Error> {
        self.stop_requested = false;
        while !self.stop_requested {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            self.turn(handler, Some(deadline - now))?;
        }
        Ok(true)
    }

    /// Whether a stop was requested and not yet consumed by a new `run`.
    pub fn stop_requested(&self) -> bool {
        self.stop_requested
    }

    /// One loop turn: submits what is queued, waits for at least one
    /// completion (or `timeout`), and dispatches what arrived. Returns the
    /// number of completions dispatched.
    pub fn turn<H: Handler + ?Sized>(
        &mut self,
        handler: &mut H,
        timeout: Option<Duration>,
    ) -> Result<usize, Error> {
        self.turns += 1;
        let mut n = self.dispatch(handler);
        if self.stop_requested {
            return Ok(n);
        }
        // Entries a failed flush left over go first, in order; the failure
        // itself is reported to the caller of this turn.
        self.push_unpushed();
        if let Some(e) = self.push_error.take() {
            return Err(e);
        }
        self.rearm_starved();
        let want = if n == 0 && self.backlog.is_empty() {
            1
        } else {
            0
        };
        self.enter(want, timeout)?;
        self.clock.set(None);
        self.reap();
        n += self.dispatch(handler);
        Ok(n)
    }

    /// Submits queued entries and waits for `want` completions (bounded by
    /// `timeout`). EINTR, ETIME and EBUSY are not errors here.
    fn enter(&mut self, want: usize, timeout: Option<Duration>) -> Result<(), Error> {
        let r = match timeout {
            Some(t) if want > 0 => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            _ => self.ring.submit_and_wait(want),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::ETIME) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                    Ok(())
                }
                Some(errno) => Err(Error::Os(errno)),
                None => Err(Error::Os(libc::EIO)),
            },
        }
    }

    /// Moves every completion from the CQ to the backlog.
    pub(crate) fn reap(&mut self) {
        if self.ring.submission().cq_overflow() {
            self.stats.cq_overflows += 1;
        }
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            self.backlog.push_back(RawCqe {
                user_data: cqe.user_data(),
                res: cqe.result(),
                flags: cqe.flags(),
            });
        }
        self.stats.cq_dropped = cq.overflow();
        drop(cq);
        self.stats.backlog_high_water = self.stats.backlog_high_water.max(self.backlog.len());
    }

    fn dispatch<H: Handler + ?Sized>(&mut self, handler: &mut H) -> usize {
        let mut n = 0;
        while let Some(cqe) = self.backlog.pop_front() {
            n += 1;
            self.stats.completed += 1;
            self.on_cqe(cqe, handler);
            if self.stop_requested {
                break;
            }
        }
        n
    }

    /// Pushes one entry, flushing the submission queue to the kernel when it
    /// is full. Never drops an entry and never panics: if flushing fails
    /// (an `io_uring_enter` error other than `EINTR`/`EBUSY`/`EAGAIN`), the
    /// entry and every later one wait in `unpushed`, in order, and the next
    /// [`EventManager::turn`] retries them and returns the error. A full
    /// completion queue is drained into the backlog (not dispatched: we may
    /// be inside a callback).
    pub(crate) fn push(&mut self, entry: squeue::Entry) {
        if !self.unpushed.is_empty() {
            self.unpushed.push_back(entry);
            return;
        }
        if let Err(entry) = self.try_push(entry) {
            self.unpushed.push_back(entry);
        }
    }

    fn try_push(&mut self, entry: squeue::Entry) -> Result<(), squeue::Entry> {
        loop {
            // SAFETY: every pointer in `entry` refers to heap memory owned by
            // an operation in `self.ops` (or is null); that operation stays in
            // the table, and its memory in place, until its final completion
            // has been reaped. Entries with CANCEL_UD, QUIESCE_CANCEL_UD and slot receives
            // (SLOT_RECV: a descriptor and a buffer group) carry no pointers.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.stats.submitted += 1;
                return Ok(());
            }
            self.stats.sq_full_flushes += 1;
            if let Err(e) = self.ring.submit() {
                match e.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                    errno => {
                        self.stats.enter_errors += 1;
                        tracing::error!(error = %e, "io_uring_enter failed while flushing a full queue");
                        self.push_error = Some(Error::Os(errno.unwrap_or(libc::EIO)));
                        return Err(entry);
                    }
                }
            }
            self.reap();
        }
    }

    /// Whether `n` entries pushed now go into the same submission (room in
    /// the submission queue, flushing it once if need be, and nothing
    /// waiting in `unpushed`): what a linked chain needs.
    pub(crate) fn sq_room(&mut self, n: usize) -> bool {
        if !self.unpushed.is_empty() {
            return false;
        }
        let free = |em: &mut EventManager| {
            let sq = em.ring.submission();
            sq.capacity() - sq.len()
        };
        if free(self) >= n {
            return true;
        }
        self.stats.sq_full_flushes += 1;
        if self.ring.submit().is_ok() {
            self.reap();
        }
        free(self) >= n
    }

    /// Pushes the entries a failed flush left over, in order, until one
    /// fails again.
    fn push_unpushed(&mut self) {
        while let Some(entry) = self.unpushed.pop_front() {
            if let Err(entry) = self.try_push(entry) {
                self.unpushed.push_front(entry);
                return;
            }
        }
    }

    /// Re-arms parked multishot receives once buffers are back.
    fn rearm_starved(&mut self) {
        if self.quiescing
            || (self.starved.is_empty() && self.starved_recv.is_empty())
            || self.buf_ring.available() == 0
        {
            return;
        }
        for key in std::mem::take(&mut self.starved) {
            self.submit_op(key);
        }
        for pfd in std::mem::take(&mut self.starved_recv) {
            self.submit_slot_recv(pfd);
        }
    }

    pub(crate) fn insert_op(&mut self, user: u64, state: OpState) -> usize {
        let gen = self.next_op_gen;
        // Generations stay below 2^31, so an op's user_data never has
        // SLOT_RECV (bit 63) set, nor equals CANCEL_UD; 0 is never used
        // either, so an OpId is never zero.
        self.next_op_gen = if gen >= (1 << 31) - 1 { 1 } else { gen + 1 };
        self.ops.insert(Op {
            user,
            gen,
            cancel_requested: false,
            suspend: crate::op::Suspend::No,
            state,
        })
    }

    /// Cancels every operation and waits (bounded) for the kernel to give
    /// them back, then closes every descriptor.
    fn teardown(&mut self) {
        self.shutting_down = true;
        self.drop_suspended();
        // Entries never pushed are not in the kernel: they end as cancelled.
        for entry in std::mem::take(&mut self.unpushed) {
            let user_data = entry.get_user_data();
            if user_data != CANCEL_UD && user_data != crate::op::QUIESCE_CANCEL_UD {
                self.backlog.push_back(RawCqe {
                    user_data,
                    res: -libc::ECANCELED,
                    flags: 0,
                });
            }
        }
        for key in std::mem::take(&mut self.starved) {
            self.synth_cancel(key);
        }
        for pfd in std::mem::take(&mut self.starved_recv) {
            self.synth_cancel_slot_recv(pfd);
        }
        self.push(
            opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(CANCEL_UD),
        );
        let deadline = Instant::now() + self.config.teardown_timeout;
        let mut sink = |_: &mut EventManager, c: Completion| drop(c);
        while !self.ops.is_empty() || self.slot_recvs > 0 || !self.backlog.is_empty() {
            self.dispatch(&mut sink);
            if self.ops.is_empty() && self.slot_recvs == 0 {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                // The kernel still owns these operations' memory: leak it
                // rather than free something that may yet be written.
                tracing::error!(
                    ops = self.ops.len(),
                    receives = self.slot_recvs,
                    "event manager teardown timed out; leaking in-flight operations"
                );
                std::mem::forget(std::mem::take(&mut self.ops));
                break;
            }
            // Anything the loop re-armed before noticing shutdown gets
            // cancelled again.
            self.push(
                opcode::AsyncCancel2::new(types::CancelBuilder::any())
                    .build()
                    .user_data(CANCEL_UD),
            );
            let _ = self.enter(1, Some((deadline - now).min(Duration::from_millis(100))));
            self.reap();
        }
        let open: Vec<_> = self.pfds.iter().collect();
        for info in open {
            if info.fd >= 0 {
                sys::close(info.fd);
            }
            if let Some(slot) = self.pfds.slot_mut(info.pfd) {
                slot.state = SlotState::Closing {
                    close_submitted: true,
                };
                slot.inflight = 0;
            }
            self.pfds.free(info.pfd);
        }
        let _ = self
            .ring
            .submitter()
            .unregister_buf_ring(self.buf_ring.bgid);
    }
}

impl Drop for EventManager {
    /// Cancels everything in flight, waits for the kernel to release the
    /// operations' buffers (bounded by [`Config::teardown_timeout`]; past it
    /// they are leaked, never freed under the kernel), then closes every pfd.
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Triggers one eventfd from any thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventTrigger {
    fd: Arc<OwnedFd>,
}

impl EventTrigger {
    /// Adds one to the eventfd's counter.
    pub fn trigger(&self) -> Result<(), Error> {
        sys::eventfd_add(self.fd.as_raw_fd(), 1)
    }
}

/// Stops an [`EventManager::run`] loop from any thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle {
    fd: Arc<OwnedFd>,
}

impl StopHandle {
    /// Makes the loop return after its current turn.
    pub fn stop(&self) -> Result<(), Error> {
        sys::eventfd_add(self.fd.as_raw_fd(), 1)
    }
}

pub(crate) fn wake_fd(em: &EventManager) -> RawFd {
    em.wake.as_ref().map(|(fd, _)| fd.as_raw_fd()).unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::whole_buffers;

    #[test]
    fn whole_buffer_fallback_keeps_the_memory() {
        assert_eq!(whole_buffers(16, 256 * 1024), (1024, 4096));
        assert_eq!(whole_buffers(64, 64 * 1024), (1024, 4096));
        assert_eq!(whole_buffers(1024, 4096), (1024, 4096));
        assert_eq!(whole_buffers(4, 16), (4, 16));
        assert_eq!(whole_buffers(16384, 1 << 20), (32768, 1 << 19));
    }
}
