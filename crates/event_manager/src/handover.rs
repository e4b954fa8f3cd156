//! Quiesce, export, import: handing the whole event manager — its pfd
//! table and the operations it can take up again by itself — to a fresh
//! one (in this process, or in another through `SCM_RIGHTS`) without
//! closing a descriptor or losing a byte.
//!
//! 1. [`EventManager::quiesce`] stops everything that would go on by
//!    itself: multishot receives and accepts, eventfd reads, timers. Each
//!    is cancelled in the kernel and, when its last completion comes back,
//!    kept *suspended* in place (same [`OpId`](crate::OpId), same tag,
//!    timers with their remaining time) instead of ending: the layer above
//!    sees no `RecvEnd`/`AcceptEnd`. Bytes the kernel had already received
//!    are delivered as usual (they are the owner's now); bytes still in
//!    the socket stay there. Writes, reads, opens and the rest are
//!    cancelled too and end with what they did (a write with the exact
//!    count written). From the call on nothing new is submitted:
//!    new receives, accepts, eventfd reads, timers and no-ops are created
//!    suspended; other operations are refused with [`Error::Quiescing`]
//!    (the owner keeps that work for later). Closing still works.
//! 2. Once [`EventManager::is_quiesced`] (nothing of ours in the kernel),
//!    [`EventManager::export`] writes a [`Snapshot`]: plain bytes plus the
//!    descriptors, in pfd order. It closes nothing; [`EventManager::resume`]
//!    goes on as before (a rollback). [`EventManager::release`] then gives
//!    the descriptors up and drops the manager without closing them.
//! 3. [`EventManager::import`] builds a fresh manager from the bytes and
//!    the descriptors: every pfd (index + generation) names the same
//!    descriptor as before, free slots keep their generations and their
//!    reuse order (so a stale pfd stays stale), suspended operations keep
//!    their ids. It starts quiesced; [`EventManager::resume`] re-arms.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::types;
use serde::{Deserialize, Serialize};
use slab::Slab;

use crate::op::{Op, OpState, Suspend, TimerState};
use crate::pfd::{PfdTable, Slot, SlotRecv, SlotState, MAX_SLOTS};
use crate::snapshot::{self, SnapshotError};
use crate::{Config, Error, EventManager, FdKind, Pfd};

/// The event manager's snapshot magic and format versions (see
/// [`crate::snapshot`] for the compatibility rule).
const MAGIC: [u8; 4] = *b"RTEM";
const VERSION: u16 = 1;
const OLDEST_VERSION: u16 = 1;

/// Largest operation-table key an import accepts: a quiesced manager's
/// suspended operations are a few per listener, eventfd and timer, and the
/// table is rebuilt at the same keys, so this bounds what a hostile
/// snapshot could make it allocate (2^20 × 40 bytes).
const MAX_OP_KEYS: u32 = 1 << 20;

/// Longest remaining time of an imported timer (100 years).
const MAX_TIMER_NS: u64 = 100 * 365 * 86_400 * 1_000_000_000;

/// An exported event manager: [`EventManager::export`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The versioned encoding of the pfd table and the suspended
    /// operations (no descriptor numbers in it).
    pub bytes: Vec<u8>,
    /// The descriptors behind the open pfds, in pfd-index order; still
    /// owned by the exporting manager until [`EventManager::release`].
    pub fds: Vec<RawFd>,
}

/// What a snapshot holds, from [`EventManager::check_snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The format version it was written in.
    pub version: u16,
    /// pfd slots (open, free and retired).
    pub slots: usize,
    /// Open pfds, i.e. descriptors the import needs.
    pub descriptors: usize,
    /// Suspended operations (receives kept in pfd slots included).
    pub suspended: usize,
}

// ----- the format, version 1 ------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotV1 {
    /// Every slot, in index order.
    slots: Vec<SlotV1>,
    /// Free slot indexes in reuse order.
    free: Vec<u32>,
    next_op_gen: u32,
    /// One past the largest operation key in `ops`.
    op_keys: u32,
    ops: Vec<OpV1>,
}

#[derive(Debug, Serialize, Deserialize)]
enum SlotV1 {
    Free {
        generation: u32,
    },
    /// Every generation used; never reused.
    Retired,
    Open {
        generation: u32,
        kind: KindV1,
        /// The tag of the suspended receive kept in the slot, if any.
        recv: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum KindV1 {
    Socket,
    File,
    EventFd,
    Other,
}

#[derive(Debug, Serialize, Deserialize)]
struct OpV1 {
    key: u32,
    gen: u32,
    user: u64,
    what: OpKindV1,
}

#[derive(Debug, Serialize, Deserialize)]
enum OpKindV1 {
    Nop,
    Accept { listener: u64 },
    Recv { pfd: u64 },
    EventRead { pfd: u64, info: u64 },
    Timeout { remaining_ns: u64 },
}

impl From<FdKind> for KindV1 {
    fn from(k: FdKind) -> KindV1 {
        match k {
            FdKind::Socket => KindV1::Socket,
            FdKind::File => KindV1::File,
            FdKind::EventFd => KindV1::EventFd,
            FdKind::Other => KindV1::Other,
        }
    }
}

impl From<KindV1> for FdKind {
    fn from(k: KindV1) -> FdKind {
        match k {
            KindV1::Socket => FdKind::Socket,
            KindV1::File => FdKind::File,
            KindV1::EventFd => FdKind::EventFd,
            KindV1::Other => FdKind::Other,
        }
    }
}

fn invalid(m: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(m.into())
}

impl SnapshotV1 {
    /// Decodes and checks every invariant an import relies on; pure.
    fn read(bytes: &[u8]) -> Result<(u16, SnapshotV1), SnapshotError> {
        let (version, body) = snapshot::open(bytes, MAGIC, OLDEST_VERSION, VERSION)?;
        let s: SnapshotV1 = snapshot::decode(body)?;
        s.check()?;
        Ok((version, s))
    }

    fn check(&self) -> Result<(), SnapshotError> {
        if self.slots.len() > MAX_SLOTS as usize {
            return Err(invalid(format!("{} pfd slots", self.slots.len())));
        }
        let mut free_rows = 0;
        for (i, row) in self.slots.iter().enumerate() {
            if let SlotV1::Free { generation } = row {
                if *generation == u32::MAX {
                    return Err(invalid(format!(
                        "free slot {i} at the last generation (it is retired)"
                    )));
                }
                free_rows += 1;
            }
        }
        let mut seen = HashSet::with_capacity(self.free.len());
        for &i in &self.free {
            match self.slots.get(i as usize) {
                Some(SlotV1::Free { .. }) => {}
                _ => {
                    return Err(invalid(format!(
                        "free list names slot {i}, which is not free"
                    )))
                }
            }
            if !seen.insert(i) {
                return Err(invalid(format!("free list names slot {i} twice")));
            }
        }
        if seen.len() != free_rows {
            return Err(invalid("a free slot is missing from the free list"));
        }
        let gen_ok = |g: u32| (1..(1 << 31)).contains(&g);
        if !gen_ok(self.next_op_gen) {
            return Err(invalid("next operation generation out of range"));
        }
        if self.op_keys > MAX_OP_KEYS {
            return Err(invalid(format!("{} operation keys", self.op_keys)));
        }
        let mut keys = HashSet::with_capacity(self.ops.len());
        for op in &self.ops {
            if op.key >= self.op_keys || !keys.insert(op.key) {
                return Err(invalid(format!(
                    "operation key {} out of range or repeated",
                    op.key
                )));
            }
            if !gen_ok(op.gen) {
                return Err(invalid(format!(
                    "operation {} generation out of range",
                    op.key
                )));
            }
            let needs = |pfd: u64, want: Option<KindV1>| -> Result<(), SnapshotError> {
                let p = Pfd::from_u64(pfd);
                match self.slots.get(p.index() as usize) {
                    Some(SlotV1::Open {
                        generation, kind, ..
                    }) if *generation == p.generation() && want.is_none_or(|w| w == *kind) => {
                        Ok(())
                    }
                    _ => Err(invalid(format!(
                        "operation {} names {p}, not an open pfd of the right kind",
                        op.key
                    ))),
                }
            };
            match op.what {
                OpKindV1::Nop => {}
                OpKindV1::Accept { listener } => needs(listener, Some(KindV1::Socket))?,
                OpKindV1::Recv { pfd } => needs(pfd, None)?,
                OpKindV1::EventRead { pfd, .. } => needs(pfd, Some(KindV1::EventFd))?,
                OpKindV1::Timeout { remaining_ns } => {
                    if remaining_ns > MAX_TIMER_NS {
                        return Err(invalid(format!("timer {} too long", op.key)));
                    }
                }
            }
        }
        Ok(())
    }

    fn open_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, SlotV1::Open { .. }))
            .count()
    }
}

/// Whether a descriptor that `fstat` classifies as `actual` can be the one
/// a snapshot recorded as `recorded` (eventfds look like "other").
/// Which descriptors an import checks against the kinds the snapshot
/// records ([`EventManager::import_into`]; [`EventManager::import`] checks
/// every one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorCheck {
    /// `fstat` every descriptor.
    Every,
    /// Only those the snapshot says are not sockets (eventfds, files,
    /// directories); sockets are taken as they come. For descriptors passed
    /// straight from the exporting manager in its order (a handover between
    /// processes over a private socket pair), where one system call per
    /// connection would add about 8 ms to the pause at 10,000 connections
    /// on a 2-CPU virtual machine. A list out of order still fails at its
    /// first non-socket descriptor; a socket-recorded descriptor that is
    /// not one makes its receives fail (the connection closes), nothing
    /// worse.
    NonSockets,
}

fn kind_matches(recorded: FdKind, actual: FdKind) -> bool {
    recorded == actual || (recorded == FdKind::EventFd && actual == FdKind::Other)
}

impl EventManager {
    /// Starts quiescing (see the module documentation of `handover`): every
    /// receive, accept, eventfd read and timer is cancelled in the kernel
    /// and kept suspended once it stops; every other operation in flight
    /// (writes, reads, opens, …) is cancelled and ends with what it did — a
    /// write with the exact count written; nothing new is submitted. Call
    /// [`EventManager::turn`] until [`EventManager::is_quiesced`]; the
    /// completions that still come (data already received, operations
    /// ending) go to the handler as usual. Idempotent. A stop requested
    /// before (what made [`EventManager::run`] return) is consumed.
    pub fn quiesce(&mut self) {
        // A stop that made `run` return (the usual way to get here) would
        // otherwise make every `turn` of the quiesce return at once.
        self.stop_requested = false;
        if self.quiescing {
            return;
        }
        self.quiescing = true;
        // Parked receives are not in the kernel: suspended at once.
        for key in std::mem::take(&mut self.starved) {
            self.ops[key].suspend = Suspend::Suspended;
        }
        for pfd in std::mem::take(&mut self.starved_recv) {
            if let Some(slot) = self.pfds.slot_mut(pfd) {
                slot.recv = SlotRecv::Suspended;
            }
        }
        let mut targets: Vec<u64> = Vec::new();
        for (k, o) in self.ops.iter_mut() {
            if o.cancel_requested || o.suspend != Suspend::No {
                continue;
            }
            match o.state {
                // A no-op completes by itself; a close cannot be cancelled.
                OpState::Nop | OpState::Close { .. } => continue,
                ref s if s.suspendable() => o.suspend = Suspend::Requested,
                // Sticky: its next completion ends it with what it did.
                _ => o.cancel_requested = true,
            }
            targets.push((u64::from(o.gen) << 32) | k as u64);
        }
        for (i, slot) in self.pfds.slots_mut().iter_mut().enumerate() {
            if slot.state == SlotState::Open
                && matches!(slot.recv, SlotRecv::Armed | SlotRecv::Yielding)
            {
                slot.recv = SlotRecv::Suspending;
                targets.push(crate::op::slot_recv_user_data(Pfd::new(
                    i as u32,
                    slot.generation,
                )));
            }
        }
        // One request per operation. (One request matching any operation
        // is far slower: the kernel rescans its tables from the start for
        // each operation it cancels — 775 ms instead of 21 ms for 10,000
        // receives.)
        for ud in targets {
            self.push_quiesce_cancel(ud);
        }
    }

    /// The id of `pfd`'s suspended receive (the one kept in its slot), if
    /// it has one: what an importing layer checks its own records against.
    pub fn suspended_receive(&self, pfd: Pfd) -> Option<crate::OpId> {
        let slot = self.pfds.slot(pfd)?;
        (slot.recv == SlotRecv::Suspended).then(|| crate::op::slot_recv_op_id(pfd))
    }

    /// Whether a quiesce is complete: nothing of this manager is in the
    /// kernel, nothing waits to be dispatched, no pfd is closing.
    pub fn is_quiesced(&self) -> bool {
        self.quiescing
            && self.quiesce_cancels == 0
            && self.backlog.is_empty()
            && self.unpushed.is_empty()
            && self
                .ops
                .iter()
                .all(|(_, o)| o.suspend == Suspend::Suspended)
            // Newest slots first: receives are cancelled in slot order and
            // usually end in that order, so while a quiesce is under way this
            // finds one still going at once instead of walking every slot
            // on every turn (half of the quiesce's time at 10,000).
            && self.pfds.parts().0.iter().rev().all(|s| {
                !matches!(s.state, SlotState::Closing { .. })
                    && matches!(s.recv, SlotRecv::None | SlotRecv::Suspended)
            })
    }

    /// Leaves the quiesced state: every suspended operation is submitted
    /// again (timers for their remaining time), and new work is accepted.
    /// `Err(NotQuiesced)` while the quiesce is still under way.
    pub fn resume(&mut self) -> Result<(), Error> {
        if !self.quiescing {
            return Ok(());
        }
        if !self.is_quiesced() {
            return Err(Error::NotQuiesced);
        }
        self.quiescing = false;
        let now = Instant::now();
        let keys: Vec<usize> = self
            .ops
            .iter()
            .filter(|(_, o)| o.suspend == Suspend::Suspended)
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let op = &mut self.ops[key];
            op.suspend = Suspend::No;
            if let OpState::Timeout(t) = &mut op.state {
                t.deadline = now + t.after;
            }
            self.submit_op(key);
        }
        let recvs: Vec<Pfd> = self
            .pfds
            .parts()
            .0
            .iter()
            .enumerate()
            .filter(|(_, s)| s.recv == SlotRecv::Suspended)
            .map(|(i, s)| Pfd::new(i as u32, s.generation))
            .collect();
        for pfd in recvs {
            self.submit_slot_recv(pfd);
        }
        Ok(())
    }

    /// Writes the quiesced manager down: the pfd table (every slot with its
    /// generation, the free list in reuse order) and the suspended
    /// operations (ids, tags, eventfd infos, remaining timer times), plus
    /// the descriptors of the open pfds. Closes nothing and changes
    /// nothing: [`EventManager::resume`] may follow (a rollback), or
    /// [`EventManager::release`]. The internal stop eventfd is not part of
    /// it ([`crate::StopHandle`]s do not carry over).
    pub fn export(&self) -> Result<Snapshot, Error> {
        if !self.is_quiesced() {
            return Err(Error::NotQuiesced);
        }
        let (slots, free) = self.pfds.parts();
        let mut fds = Vec::new();
        let rows = slots
            .iter()
            .map(|s| match s.state {
                SlotState::Free if s.generation == u32::MAX => SlotV1::Retired,
                SlotState::Free => SlotV1::Free {
                    generation: s.generation,
                },
                _ => {
                    fds.push(s.fd);
                    SlotV1::Open {
                        generation: s.generation,
                        kind: s.kind.into(),
                        recv: (s.recv == SlotRecv::Suspended).then_some(s.recv_user),
                    }
                }
            })
            .collect();
        let mut ops = Vec::new();
        let mut op_keys = 0;
        for (key, op) in self.ops.iter() {
            let what = match &op.state {
                OpState::Nop => OpKindV1::Nop,
                OpState::Accept { listener, .. } => OpKindV1::Accept {
                    listener: listener.to_u64(),
                },
                OpState::Recv { pfd } => OpKindV1::Recv { pfd: pfd.to_u64() },
                OpState::EventRead { pfd, value } => OpKindV1::EventRead {
                    pfd: pfd.to_u64(),
                    info: value[1],
                },
                OpState::Timeout(t) => OpKindV1::Timeout {
                    remaining_ns: u64::try_from(t.after.as_nanos())
                        .unwrap_or(MAX_TIMER_NS)
                        .min(MAX_TIMER_NS),
                },
                // The stop eventfd's read is the manager's own.
                OpState::Wake { .. } => continue,
                _ => unreachable!("a quiesced manager holds only suspendable operations"),
            };
            op_keys = op_keys.max(key as u32 + 1);
            ops.push(OpV1 {
                key: key as u32,
                gen: op.gen,
                user: op.user,
                what,
            });
        }
        let body = SnapshotV1 {
            slots: rows,
            free: free.iter().copied().collect(),
            next_op_gen: self.next_op_gen,
            op_keys,
            ops,
        };
        Ok(Snapshot {
            bytes: snapshot::write(MAGIC, VERSION, &body),
            fds,
        })
    }

    /// Gives up every open pfd's descriptor — in the order of
    /// [`Snapshot::fds`] — and drops the manager without closing them.
    /// Meant for a quiesced manager after [`EventManager::export`]; any
    /// operation still in flight is cancelled as on drop, and pfds being
    /// closed are closed.
    pub fn release(mut self) -> Vec<OwnedFd> {
        self.drop_suspended();
        let n = self.pfds.parts().0.len();
        let mut out = Vec::new();
        for i in 0..n {
            if let Some(fd) = self.pfds.take_fd(i) {
                // SAFETY: an open pfd's descriptor is owned by the table
                // alone; `take_fd` removed it from the table, so this is
                // now its only owner.
                out.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        out
    }

    /// Decodes and checks a snapshot without importing it (no ring, no
    /// descriptors): what [`EventManager::import`] checks before it builds
    /// anything.
    pub fn check_snapshot(bytes: &[u8]) -> Result<SnapshotInfo, SnapshotError> {
        let (version, s) = SnapshotV1::read(bytes)?;
        let recvs = s
            .slots
            .iter()
            .filter(|r| matches!(r, SlotV1::Open { recv: Some(_), .. }))
            .count();
        Ok(SnapshotInfo {
            version,
            slots: s.slots.len(),
            descriptors: s.open_count(),
            suspended: s.ops.len() + recvs,
        })
    }

    /// A fresh manager (with `config`) that takes over an exported one:
    /// `fds` are the descriptors of [`Snapshot::fds`], in that order. Every
    /// pfd and suspended operation id means what it meant before; the
    /// manager starts quiesced — call [`EventManager::resume`] when the
    /// layer above is ready. Each descriptor's kind is checked against the
    /// snapshot. On error nothing is built and the descriptors come back.
    #[allow(clippy::result_large_err)]
    pub fn import(
        config: Config,
        bytes: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<EventManager, (SnapshotError, Vec<OwnedFd>)> {
        EventManager::import_with(bytes, fds, DescriptorCheck::Every, move || {
            EventManager::with_config(config)
        })
    }

    /// [`EventManager::import`] into this manager, which must be fresh
    /// (no pfd, no operation, never quiesced): its ring is made before the
    /// snapshot exists, so a handover's pause does not include setting one
    /// up (a few milliseconds with the receive buffers). A manager that is
    /// not fresh is refused ([`SnapshotError::Invalid`]) and dropped.
    /// `check` says which descriptors are `fstat`ed against the snapshot.
    #[allow(clippy::result_large_err)]
    pub fn import_into(
        self,
        bytes: &[u8],
        fds: Vec<OwnedFd>,
        check: DescriptorCheck,
    ) -> Result<EventManager, (SnapshotError, Vec<OwnedFd>)> {
        if !self.pfds.parts().0.is_empty() || !self.ops.is_empty() || self.quiescing {
            let m = "import_into needs a fresh event manager (no pfd, no operation)";
            return Err((SnapshotError::Invalid(m.into()), fds));
        }
        EventManager::import_with(bytes, fds, check, move || Ok(self))
    }

    /// The import: checks, then takes the manager `make` gives.
    #[allow(clippy::result_large_err)]
    fn import_with(
        bytes: &[u8],
        fds: Vec<OwnedFd>,
        check: DescriptorCheck,
        make: impl FnOnce() -> Result<EventManager, Error>,
    ) -> Result<EventManager, (SnapshotError, Vec<OwnedFd>)> {
        let s = match SnapshotV1::read(bytes) {
            Ok((_, s)) => s,
            Err(e) => return Err((e, fds)),
        };
        if s.open_count() != fds.len() {
            let m = format!("{} descriptors for {} open pfds", fds.len(), s.open_count());
            return Err((SnapshotError::Descriptors(m), fds));
        }
        let kinds = s.slots.iter().filter_map(|r| match r {
            SlotV1::Open { kind, .. } => Some(FdKind::from(*kind)),
            _ => None,
        });
        for (i, (fd, recorded)) in fds.iter().zip(kinds).enumerate() {
            if check == DescriptorCheck::NonSockets && recorded == FdKind::Socket {
                continue;
            }
            match crate::sys::fd_kind(fd.as_raw_fd()) {
                Ok(actual) if kind_matches(recorded, actual) => {}
                other => {
                    let m = format!("descriptor {i} is {other:?}, the snapshot says {recorded:?}");
                    return Err((SnapshotError::Descriptors(m), fds));
                }
            }
        }
        let mut em = match make() {
            Ok(em) => em,
            Err(e) => return Err((SnapshotError::Setup(e), fds)),
        };
        let mut fds = fds.into_iter();
        let mut slot_recvs = 0;
        let slots: Vec<Slot> = s
            .slots
            .iter()
            .map(|row| match *row {
                SlotV1::Free { generation } => free_slot(generation),
                SlotV1::Retired => free_slot(u32::MAX),
                SlotV1::Open {
                    generation,
                    kind,
                    recv,
                } => {
                    slot_recvs += usize::from(recv.is_some());
                    Slot {
                        fd: fds.next().expect("counted above").into_raw_fd(),
                        generation,
                        kind: kind.into(),
                        state: SlotState::Open,
                        recv: if recv.is_some() {
                            SlotRecv::Suspended
                        } else {
                            SlotRecv::None
                        },
                        inflight: u32::from(recv.is_some()),
                        recv_user: recv.unwrap_or(0),
                    }
                }
            })
            .collect();
        em.pfds = PfdTable::restore(slots, s.free.iter().copied().collect::<VecDeque<_>>());
        let now = Instant::now();
        let mut ops: HashMap<usize, Op> = HashMap::with_capacity(s.ops.len());
        for row in &s.ops {
            let (state, pfd) = match row.what {
                OpKindV1::Nop => (OpState::Nop, None),
                OpKindV1::Accept { listener } => {
                    let listener = Pfd::from_u64(listener);
                    (
                        OpState::Accept {
                            listener,
                            retry_timer: None,
                        },
                        Some(listener),
                    )
                }
                OpKindV1::Recv { pfd } => {
                    let pfd = Pfd::from_u64(pfd);
                    (OpState::Recv { pfd }, Some(pfd))
                }
                OpKindV1::EventRead { pfd, info } => {
                    let pfd = Pfd::from_u64(pfd);
                    (
                        OpState::EventRead {
                            pfd,
                            value: Box::new([0, info]),
                        },
                        Some(pfd),
                    )
                }
                OpKindV1::Timeout { remaining_ns } => {
                    let after = Duration::from_nanos(remaining_ns);
                    (
                        OpState::Timeout(Box::new(TimerState {
                            ts: types::Timespec::from(after),
                            deadline: now,
                            after,
                        })),
                        None,
                    )
                }
            };
            if let Some(pfd) = pfd {
                if let Some(slot) = em.pfds.slot_mut(pfd) {
                    slot.inflight += 1;
                }
            }
            ops.insert(
                row.key as usize,
                Op {
                    user: row.user,
                    gen: row.gen,
                    cancel_requested: false,
                    suspend: Suspend::Suspended,
                    state,
                },
            );
        }
        em.ops = ops.into_iter().collect::<Slab<Op>>();
        em.next_op_gen = s.next_op_gen;
        em.slot_recvs = slot_recvs;
        em.quiescing = true;
        Ok(em)
    }

    /// Forgets every suspended operation (they are not in the kernel):
    /// before a teardown or a release.
    pub(crate) fn drop_suspended(&mut self) {
        let keys: Vec<usize> = self
            .ops
            .iter()
            .filter(|(_, o)| o.suspend == Suspend::Suspended)
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let op = self.ops.remove(key);
            if let Some(slot) = op.state.pfd().and_then(|p| self.pfds.slot_mut(p)) {
                slot.inflight -= 1;
            }
            if matches!(op.state, OpState::Wake { .. }) {
                self.wake = None;
            }
        }
        for slot in self.pfds.slots_mut() {
            if slot.recv == SlotRecv::Suspended {
                slot.recv = SlotRecv::None;
                slot.inflight -= 1;
                self.slot_recvs -= 1;
            }
        }
    }
}

fn free_slot(generation: u32) -> Slot {
    Slot {
        fd: -1,
        generation,
        kind: FdKind::Other,
        state: SlotState::Free,
        recv: SlotRecv::None,
        inflight: 0,
        recv_user: 0,
    }
}
