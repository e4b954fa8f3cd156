//! Every operation: what it owns while in flight ([`OpState`]), the
//! submission entry built from that state, the public method that submits
//! it, and the processing of its completions.
//!
//! `user_data` of every entry is the op's slab key in the low 32 bits and
//! the op's generation in the high 32 bits; `u64::MAX` is reserved for the
//! event manager's own cancel requests, whose completions are ignored.
//!
//! A cancel requested with [`EventManager::cancel`] is *sticky*: the op is
//! marked, and whatever completion comes next — even one the kernel posted
//! before it saw the cancel (a multishot that ended on its own, `ENOBUFS`,
//! a short write) — ends the op instead of re-arming, parking or
//! resubmitting it. A caller that asked for a cancel therefore always gets
//! the op's final completion soon, and never a re-armed operation.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types};

use crate::manager::{wake_fd, RawCqe};
use crate::pfd::{SlotRecv, SlotState};
use crate::{
    Completion, CompletionKind, Error, EventManager, FdKind, FileStat, Handler, OutBuf, Pfd,
};

/// `user_data` of internal cancel requests.
pub(crate) const CANCEL_UD: u64 = u64::MAX;

/// `user_data` of the cancel requests of a quiesce (counted until their
/// completions are back). No operation has it: an operation's is
/// `generation << 32 | key` with a generation of at least 1, and
/// [`SLOT_RECV`]'s bit is clear.
pub(crate) const QUIESCE_CANCEL_UD: u64 = 1;

/// `user_data` bit of a receive kept in its pfd's slot rather than in the
/// operation table; the rest is the whole pfd: `generation << 31 | index`
/// (all 32 generation bits; pfd indexes stay below 2^31, see
/// [`crate::pfd::MAX_SLOTS`]). Operation generations stay below 2^31, so
/// no operation's `user_data` has it.
pub(crate) const SLOT_RECV: u64 = 1 << 63;

/// The `user_data` of `pfd`'s slot receive.
pub(crate) fn slot_recv_user_data(pfd: Pfd) -> u64 {
    slot_recv_ud(pfd)
}

fn slot_recv_ud(pfd: Pfd) -> u64 {
    debug_assert!(pfd.index() < crate::pfd::MAX_SLOTS);
    SLOT_RECV | (u64::from(pfd.generation()) << 31) | u64::from(pfd.index())
}

/// The pfd named by a slot receive's `user_data` (inverse of
/// `slot_recv_ud`): `(index, generation)`.
fn slot_recv_pfd(ud: u64) -> (u32, u32) {
    ((ud & 0x7fff_ffff) as u32, ((ud >> 31) & 0xffff_ffff) as u32)
}

/// Where a multishot receive is kept.
#[derive(Debug, Clone, Copy)]
enum Rx {
    /// In the operation table, at this key.
    Op(usize),
    /// In its pfd's slot.
    Slot,
}

pub(crate) fn slot_recv_op_id(pfd: Pfd) -> OpId {
    OpId(std::num::NonZeroU64::new(slot_recv_ud(pfd)).expect("SLOT_RECV is set"))
}

/// A multishot receive into buffer group `bgid` that ends itself (a
/// completion without `MORE`) after `cap` bytes, so that the event manager
/// decides who receives next (see `Config::recv_arm_bytes`); 0 = no cap.
fn recv_multi(fd: types::Fd, bgid: u16, cap: u32) -> squeue::Entry {
    let mut entry = opcode::RecvMulti::new(fd, bgid).build();
    if cap > 0 {
        // The io-uring crate has no setter for it: the cap is the SQE's
        // `optlen` (Linux 6.17, "multishot receive len cap"), the u32 at
        // byte 44 of the 64-byte `struct io_uring_sqe` (kernel ABI).
        const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);
        let p = (&mut entry as *mut squeue::Entry).cast::<u8>();
        // SAFETY: `Entry` is `repr(C)` around `io_uring_sqe` (64 bytes,
        // checked above); bytes 44..48 are its `optlen` union member, a
        // plain u32 with no invariants; the write is unaligned-safe.
        unsafe { p.add(44).cast::<u32>().write_unaligned(cap) };
    }
    entry
}

/// Largest iovec count handed to one writev/sendmsg/readv (Linux `IOV_MAX`);
/// longer lists are written in several submissions.
const IOV_MAX: usize = 1024;

/// Names one submitted operation, for [`EventManager::cancel`]. Plain data.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct OpId(std::num::NonZeroU64);

impl OpId {
    /// The raw value (as used for the ring's `user_data`).
    pub fn to_u64(self) -> u64 {
        self.0.get()
    }

    /// Inverse of [`OpId::to_u64`] (`None` for 0, which is never an id):
    /// for ids carried across a handover.
    pub fn from_u64(v: u64) -> Option<OpId> {
        std::num::NonZeroU64::new(v).map(OpId)
    }
}

#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) user: u64,
    pub(crate) gen: u32,
    /// [`EventManager::cancel`] was called: the next completion ends the op
    /// (no re-arm, park or resubmission). Sits in `gen`'s padding.
    pub(crate) cancel_requested: bool,
    /// Where the op is in a quiesce (see `handover.rs`). Also in the padding.
    pub(crate) suspend: Suspend,
    pub(crate) state: OpState,
}

/// An operation's part in [`EventManager::quiesce`]: only those that the
/// event manager can take up again by itself (multishot accept and receive,
/// eventfd reads, timers, no-ops) are suspended; the rest run to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspend {
    /// Running normally.
    No,
    /// A cancel was pushed for the quiesce: the completion that stops it
    /// suspends it instead of ending, re-arming or parking it.
    Requested,
    /// Not in the kernel; resubmitted by [`EventManager::resume`].
    Suspended,
}

/// A timer: the timespec the kernel reads, and when it is due (to keep the
/// remaining time when it is suspended).
#[derive(Debug)]
pub(crate) struct TimerState {
    pub(crate) ts: types::Timespec,
    pub(crate) deadline: std::time::Instant,
    /// What `ts` says: the time from submission to `deadline`.
    pub(crate) after: Duration,
}

/// What an operation owns while the kernel may use it. Everything a
/// submission entry points at is behind a heap pointer (`Vec`, `Box`,
/// `CString`, `Bytes`) so it does not move when the slab grows.
#[derive(Debug)]
pub(crate) enum OpState {
    Nop,
    Accept {
        listener: Pfd,
        /// Waiting on the retry timer (the entry in flight is a timeout).
        retry_timer: Option<Box<types::Timespec>>,
    },
    Recv {
        pfd: Pfd,
    },
    Read(Box<ReadState>),
    Readv(Box<ReadvState>),
    Write(Box<WriteState>),
    Writev(Box<WritevState>),
    Shutdown {
        pfd: Pfd,
        how: i32,
    },
    Close {
        pfd: Pfd,
    },
    EventRead {
        pfd: Pfd,
        /// `[value read, info]`.
        value: Box<[u64; 2]>,
    },
    Open(Box<OpenState>),
    Stat(Box<StatState>),
    Fstat {
        pfd: Pfd,
        out: Box<MaybeUninit<libc::statx>>,
    },
    /// The path and whether it names a directory.
    Unlink(Box<(CString, bool)>),
    Timeout(Box<TimerState>),
    /// A `splice(2)` between two pfds (one of them a pipe).
    Splice(Box<SpliceState>),
    /// Internal: the read on the stop eventfd.
    Wake {
        value: Box<u64>,
    },
}

// Operation states larger than 16 bytes are boxed, so that the slab slot
// every operation takes — an armed receive per idle connection included —
// stays at 40 bytes. (Whatever the kernel reads or writes inside them stays
// put: it is on the heap.)

#[derive(Debug)]
pub(crate) struct ReadState {
    pfd: Pfd,
    buf: Vec<u8>,
    offset: u64,
}

#[derive(Debug)]
pub(crate) struct WriteState {
    pfd: Pfd,
    buf: OutBuf,
    written: usize,
    offset: u64,
}

/// What [`EventManager::splice`] moves: `len` bytes from `from` (at
/// `from_offset`, `None` = its position, required for a pipe) to `to`
/// (likewise).
#[derive(Debug, Clone, Copy)]
pub struct SpliceArgs {
    /// The source pfd.
    pub from: Pfd,
    /// Offset in `from`; `None` for a pipe or to use its position.
    pub from_offset: Option<u64>,
    /// The destination pfd.
    pub to: Pfd,
    /// Offset in `to`; `None` for a pipe or a socket.
    pub to_offset: Option<u64>,
    /// Most bytes to move.
    pub len: u32,
}

impl SpliceArgs {
    fn state(self, link: bool) -> SpliceState {
        SpliceState {
            from: self.from,
            from_off: offset_arg(self.from_offset),
            to: self.to,
            to_off: offset_arg(self.to_offset),
            len: self.len,
            link,
        }
    }
}

/// A splice: from `from` (at `from_off`, `u64::MAX` = its position) to
/// `to` (likewise), `len` bytes. It holds both pfds: `to` is the
/// operation's own (the kernel's `req->file`, which cancel-by-descriptor
/// matches), `from` the second hold.
#[derive(Debug)]
pub(crate) struct SpliceState {
    from: Pfd,
    from_off: u64,
    to: Pfd,
    to_off: u64,
    len: u32,
    /// Linked to the operation submitted right after it (`IOSQE_IO_LINK`).
    link: bool,
}

#[derive(Debug)]
pub(crate) struct OpenState {
    path: CString,
    flags: i32,
    mode: u32,
    /// `openat2` relative to this directory with these `RESOLVE_*` flags;
    /// `None` = `openat(AT_FDCWD, …)`.
    beneath: Option<(Pfd, types::OpenHow)>,
}

#[derive(Debug)]
pub(crate) struct StatState {
    path: CString,
    out: MaybeUninit<libc::statx>,
}

/// A scattering read.
#[derive(Debug)]
pub(crate) struct ReadvState {
    pfd: Pfd,
    bufs: Vec<Vec<u8>>,
    iov: Vec<libc::iovec>,
    offset: u64,
}

/// A gathering write; `msg`, which the kernel reads, must not move while
/// the operation is in flight.
#[derive(Debug)]
pub(crate) struct WritevState {
    pfd: Pfd,
    bufs: Vec<OutBuf>,
    iov: Vec<libc::iovec>,
    /// First iovec not yet fully written.
    iov_start: usize,
    msg: libc::msghdr,
    written: usize,
    total: usize,
    offset: u64,
}

impl OpState {
    /// Whether a quiesce suspends this operation (and takes it up again on
    /// resume or import) rather than letting it run to its end: the ones
    /// whose whole state is a descriptor, a tag and a few integers.
    pub(crate) fn suspendable(&self) -> bool {
        matches!(
            self,
            OpState::Nop
                | OpState::Accept { .. }
                | OpState::Recv { .. }
                | OpState::EventRead { .. }
                | OpState::Timeout(_)
                | OpState::Wake { .. }
        )
    }

    /// The pfd this operation counts against (its `inflight`), if any.
    pub(crate) fn pfd(&self) -> Option<Pfd> {
        match self {
            OpState::Accept { listener, .. } => Some(*listener),
            OpState::Read(r) => Some(r.pfd),
            OpState::Readv(r) => Some(r.pfd),
            OpState::Write(w) => Some(w.pfd),
            OpState::Writev(w) => Some(w.pfd),
            OpState::Open(o) => o.beneath.as_ref().map(|(dir, _)| *dir),
            OpState::Splice(s) => Some(s.to),
            OpState::Recv { pfd }
            | OpState::Shutdown { pfd, .. }
            | OpState::EventRead { pfd, .. }
            | OpState::Fstat { pfd, .. } => Some(*pfd),
            // A close is what the pfd waits for, not something it waits on.
            OpState::Close { .. } => None,
            _ => None,
        }
    }

    /// A second pfd the operation holds (the source of a splice).
    pub(crate) fn pfd2(&self) -> Option<Pfd> {
        match self {
            OpState::Splice(s) => Some(s.from),
            _ => None,
        }
    }
}

fn offset_arg(offset: Option<u64>) -> u64 {
    // -1: "use and advance the file position" (required for pipes/sockets).
    offset.unwrap_or(u64::MAX)
}

fn advance(offset: u64, by: usize) -> u64 {
    if offset == u64::MAX {
        offset
    } else {
        offset + by as u64
    }
}

fn path_cstring(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidPath)
}

fn ok_or_err(res: i32) -> Result<(), Error> {
    if res < 0 {
        Err(Error::from_res(res))
    } else {
        Ok(())
    }
}

/// Points `iov` at the spare capacity of each buffer.
fn spare_iovecs(bufs: &mut [Vec<u8>]) -> Vec<libc::iovec> {
    bufs.iter_mut()
        .map(|b| {
            let spare = b.spare_capacity_mut();
            libc::iovec {
                iov_base: spare.as_mut_ptr().cast(),
                iov_len: spare.len(),
            }
        })
        .collect()
}

impl EventManager {
    // ----- submission helpers ----------------------------------------------

    fn op_id(&self, key: usize) -> OpId {
        // Generations start at 1, so the value is never zero (and an
        // `Option<OpId>` is 8 bytes).
        let id = ((self.ops[key].gen as u64) << 32) | key as u64;
        OpId(std::num::NonZeroU64::new(id).expect("op generations are never 0"))
    }

    /// Registers a new op against `pfd` (which must be live) and submits it
    /// — or, while quiescing, keeps it suspended if it is one the event
    /// manager can resume by itself, and refuses it otherwise.
    fn start(&mut self, user: u64, state: OpState) -> Result<OpId, Error> {
        for pfd in [state.pfd(), state.pfd2()].into_iter().flatten() {
            self.pfds.get(pfd)?;
        }
        if self.quiescing && !state.suspendable() {
            return Err(Error::Quiescing);
        }
        let holds = [state.pfd(), state.pfd2()];
        if matches!(state, OpState::Splice(_)) {
            self.splices += 1;
        }
        let key = self.insert_op(user, state);
        for pfd in holds.into_iter().flatten() {
            if let Some(slot) = self.pfds.slot_mut(pfd) {
                slot.inflight += 1;
            }
        }
        if self.quiescing {
            self.ops[key].suspend = Suspend::Suspended;
        } else {
            self.submit_op(key);
        }
        Ok(self.op_id(key))
    }

    /// Builds the entry for op `key` from its current state and pushes it.
    /// Used for first submissions and for resubmissions (short writes,
    /// re-armed multishots).
    pub(crate) fn submit_op(&mut self, key: usize) {
        let fd_of = |em: &EventManager, pfd: Pfd| -> (RawFd, FdKind) {
            em.pfds
                .slot(pfd)
                .map(|s| (s.fd, s.kind))
                .unwrap_or((-1, FdKind::Other))
        };
        let bgid = self.buf_ring.bgid;
        let wake = wake_fd(self);
        let (fd, kind) = match self.ops[key].state.pfd() {
            Some(p) => fd_of(self, p),
            None => match &self.ops[key].state {
                OpState::Close { pfd } => fd_of(self, *pfd),
                _ => (-1, FdKind::Other),
            },
        };
        let splice_from = match self.ops[key].state.pfd2() {
            Some(p) => fd_of(self, p).0,
            None => -1,
        };
        let retry_delay = self.config.accept_retry_delay;
        let recv_cap = self.recv_cap;
        let op = &mut self.ops[key];
        let ud = ((op.gen as u64) << 32) | key as u64;
        let fdt = types::Fd(fd);
        let entry: squeue::Entry = match &mut op.state {
            OpState::Nop => opcode::Nop::new().build(),
            OpState::Accept { retry_timer, .. } => match retry_timer {
                Some(ts) => {
                    **ts = types::Timespec::from(retry_delay);
                    opcode::Timeout::new(&**ts as *const _).build()
                }
                None => opcode::AcceptMulti::new(fdt)
                    .flags(libc::SOCK_CLOEXEC)
                    .build(),
            },
            OpState::Recv { .. } => recv_multi(fdt, bgid, recv_cap),
            OpState::Read(r) => {
                let spare = r.buf.spare_capacity_mut();
                let len = spare.len().min(u32::MAX as usize) as u32;
                opcode::Read::new(fdt, spare.as_mut_ptr().cast(), len)
                    .offset(r.offset)
                    .build()
            }
            OpState::Readv(r) => {
                let n = r.iov.len().min(IOV_MAX) as u32;
                opcode::Readv::new(fdt, r.iov.as_ptr(), n)
                    .offset(r.offset)
                    .build()
            }
            OpState::Write(w) => {
                let rest = &w.buf.as_slice()[w.written..];
                let len = rest.len().min(u32::MAX as usize) as u32;
                if kind == FdKind::Socket {
                    opcode::Send::new(fdt, rest.as_ptr(), len)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                } else {
                    opcode::Write::new(fdt, rest.as_ptr(), len)
                        .offset(w.offset)
                        .build()
                }
            }
            OpState::Writev(w) => {
                let WritevState {
                    iov,
                    iov_start,
                    msg,
                    offset,
                    ..
                } = &mut **w;
                let rest = &iov[*iov_start..];
                let n = rest.len().min(IOV_MAX);
                if kind == FdKind::Socket {
                    msg.msg_iov = rest.as_ptr().cast_mut();
                    msg.msg_iovlen = n;
                    opcode::SendMsg::new(fdt, &*msg as *const _)
                        .flags(libc::MSG_NOSIGNAL as u32)
                        .build()
                } else {
                    opcode::Writev::new(fdt, rest.as_ptr(), n as u32)
                        .offset(*offset)
                        .build()
                }
            }
            OpState::Shutdown { how, .. } => opcode::Shutdown::new(fdt, *how).build(),
            OpState::Close { .. } => opcode::Close::new(fdt).build(),
            OpState::EventRead { value, .. } => {
                opcode::Read::new(fdt, (&mut value[0] as *mut u64).cast(), 8).build()
            }
            OpState::Wake { value } => {
                opcode::Read::new(types::Fd(wake), (&mut **value as *mut u64).cast(), 8).build()
            }
            OpState::Open(o) => match &o.beneath {
                Some((_, how)) => {
                    opcode::OpenAt2::new(fdt, o.path.as_ptr(), how as *const _).build()
                }
                None => opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), o.path.as_ptr())
                    .flags(o.flags | libc::O_CLOEXEC)
                    .mode(o.mode)
                    .build(),
            },
            OpState::Stat(st) => opcode::Statx::new(
                types::Fd(libc::AT_FDCWD),
                st.path.as_ptr(),
                st.out.as_mut_ptr().cast(),
            )
            .mask(libc::STATX_BASIC_STATS)
            .build(),
            OpState::Fstat { out, .. } => {
                opcode::Statx::new(fdt, c"".as_ptr(), out.as_mut_ptr().cast())
                    .flags(libc::AT_EMPTY_PATH)
                    .mask(libc::STATX_BASIC_STATS)
                    .build()
            }
            OpState::Unlink(u) => {
                let (path, dir) = &**u;
                opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
                    .flags(if *dir { libc::AT_REMOVEDIR } else { 0 })
                    .build()
            }
            OpState::Timeout(t) => opcode::Timeout::new(&t.ts as *const _).build(),
            OpState::Splice(sp) => {
                let from = splice_from;
                let e = opcode::Splice::new(
                    types::Fd(from),
                    sp.from_off as i64,
                    fdt,
                    sp.to_off as i64,
                    sp.len,
                )
                .build();
                if sp.link {
                    e.flags(squeue::Flags::IO_LINK)
                } else {
                    e
                }
            }
        };
        self.push(entry.user_data(ud));
    }

    /// A quiesce's cancel of the operation with `ud` (counted in
    /// `quiesce_cancels` until its completion is reaped).
    pub(crate) fn push_quiesce_cancel(&mut self, ud: u64) {
        self.quiesce_cancels += 1;
        self.push(
            opcode::AsyncCancel2::new(types::CancelBuilder::user_data(ud))
                .build()
                .user_data(QUIESCE_CANCEL_UD),
        );
    }

    fn push_cancel(&mut self, builder: types::CancelBuilder) {
        self.push(
            opcode::AsyncCancel2::new(builder)
                .build()
                .user_data(CANCEL_UD),
        );
    }

    /// Completes an op that is not in the kernel (a parked receive) as
    /// cancelled, through the normal completion path.
    pub(crate) fn synth_cancel(&mut self, key: usize) {
        let ud = ((self.ops[key].gen as u64) << 32) | key as u64;
        self.backlog.push_back(RawCqe {
            user_data: ud,
            res: -libc::ECANCELED,
            flags: 0,
        });
    }

    // ----- the public operations -------------------------------------------

    /// Does nothing, through the ring (for benchmarks and tests).
    pub fn nop(&mut self, user: u64) -> OpId {
        self.start(user, OpState::Nop).expect("nop has no pfd")
    }

    /// Arms a multishot accept on a listening socket. Each connection comes
    /// as [`CompletionKind::Accept`] with a new pfd; the accept re-arms itself
    /// whenever the kernel ends it, retries after transient errors (EINTR,
    /// ECONNABORTED at once; EMFILE/ENFILE/ENOBUFS/ENOMEM after
    /// [`crate::Config::accept_retry_delay`]) and ends with exactly one
    /// [`CompletionKind::AcceptEnd`].
    pub fn accept_multishot(&mut self, listener: Pfd, user: u64) -> Result<OpId, Error> {
        self.start(
            user,
            OpState::Accept {
                listener,
                retry_timer: None,
            },
        )
    }

    /// Arms a multishot receive into the provided-buffer ring. Data comes as
    /// [`CompletionKind::Recv`]; the receive re-arms itself when the kernel
    /// ends it early or runs out of buffers, and ends with exactly one
    /// [`CompletionKind::RecvEnd`] (`Ok` at EOF).
    pub fn recv_multishot(&mut self, pfd: Pfd, user: u64) -> Result<OpId, Error> {
        // The first receive of a pfd lives in the pfd's slot, not in the
        // operation table: an idle connection, which has nothing else in
        // flight, then costs the event manager its slot alone. A second
        // concurrent receive on the same pfd takes an operation.
        let slot = self.pfds.get(pfd)?;
        if slot.recv != SlotRecv::None {
            return self.start(user, OpState::Recv { pfd });
        }
        let quiescing = self.quiescing;
        let slot = self.pfds.slot_mut(pfd).expect("checked live above");
        slot.recv = SlotRecv::Armed;
        slot.recv_user = user;
        slot.inflight += 1;
        self.slot_recvs += 1;
        if quiescing {
            slot.recv = SlotRecv::Suspended;
        } else {
            self.submit_slot_recv(pfd);
        }
        Ok(slot_recv_op_id(pfd))
    }

    /// (Re)submits the multishot receive kept in `pfd`'s slot.
    pub(crate) fn submit_slot_recv(&mut self, pfd: Pfd) {
        let Some(slot) = self.pfds.slot_mut(pfd) else {
            return;
        };
        if !matches!(slot.recv, SlotRecv::Cancelling | SlotRecv::Suspending) {
            slot.recv = SlotRecv::Armed;
        }
        let fd = slot.fd;
        let entry = recv_multi(types::Fd(fd), self.buf_ring.bgid, self.recv_cap)
            .user_data(slot_recv_ud(pfd));
        self.push(entry);
    }

    /// Completes the slot receive of `pfd` as cancelled, through the
    /// backlog (it is parked, so the kernel has nothing to give back).
    pub(crate) fn synth_cancel_slot_recv(&mut self, pfd: Pfd) {
        if let Some(slot) = self.pfds.slot_mut(pfd) {
            slot.recv = SlotRecv::Cancelling;
        }
        self.backlog.push_back(RawCqe {
            user_data: slot_recv_ud(pfd),
            res: -libc::ECANCELED,
            flags: 0,
        });
    }

    /// Reads into the spare capacity of `buf` (`buf.capacity() - buf.len()`
    /// bytes at most) at `offset`, or at the file position when `None`.
    pub fn read(
        &mut self,
        pfd: Pfd,
        buf: Vec<u8>,
        offset: Option<u64>,
        user: u64,
    ) -> Result<OpId, (Error, Vec<u8>)> {
        if let Err(e) = self.pfds.get(pfd) {
            return Err((e, buf));
        }
        if self.quiescing {
            return Err((Error::Quiescing, buf));
        }
        let state = OpState::Read(Box::new(ReadState {
            pfd,
            buf,
            offset: offset_arg(offset),
        }));
        Ok(self
            .start(user, state)
            .expect("pfd and quiescing checked above"))
    }

    /// Reads into the spare capacity of each buffer in turn (`readv(2)`).
    pub fn readv(
        &mut self,
        pfd: Pfd,
        mut bufs: Vec<Vec<u8>>,
        offset: Option<u64>,
        user: u64,
    ) -> Result<OpId, (Error, Vec<Vec<u8>>)> {
        if let Err(e) = self.pfds.get(pfd) {
            return Err((e, bufs));
        }
        if self.quiescing {
            return Err((Error::Quiescing, bufs));
        }
        let iov = spare_iovecs(&mut bufs);
        let state = OpState::Readv(Box::new(ReadvState {
            pfd,
            bufs,
            iov,
            offset: offset_arg(offset),
        }));
        Ok(self
            .start(user, state)
            .expect("pfd and quiescing checked above"))
    }

    /// Writes the whole buffer: `send(MSG_NOSIGNAL)` on sockets, `write(2)`
    /// otherwise. Short writes are resubmitted for the rest, so the
    /// completion reports either every byte written or the error that
    /// stopped it (with the count written before). On error the buffer is
    /// given straight back.
    pub fn write(
        &mut self,
        pfd: Pfd,
        buf: impl Into<OutBuf>,
        offset: Option<u64>,
        user: u64,
    ) -> Result<OpId, (Error, OutBuf)> {
        let buf = buf.into();
        if let Err(e) = self.pfds.get(pfd) {
            return Err((e, buf));
        }
        if self.quiescing {
            return Err((Error::Quiescing, buf));
        }
        let write = WriteState {
            pfd,
            buf,
            written: 0,
            offset: offset_arg(offset),
        };
        let state = OpState::Write(match self.write_boxes.pop() {
            Some(mut b) => {
                *b = write;
                b
            }
            None => Box::new(write),
        });
        Ok(self
            .start(user, state)
            .expect("pfd and quiescing checked above"))
    }

    /// Writes every buffer in order without copying them together:
    /// `sendmsg(MSG_NOSIGNAL)` on sockets, `writev(2)` otherwise. Short
    /// writes are completed like [`EventManager::write`].
    pub fn writev(
        &mut self,
        pfd: Pfd,
        bufs: Vec<OutBuf>,
        offset: Option<u64>,
        user: u64,
    ) -> Result<OpId, (Error, Vec<OutBuf>)> {
        if let Err(e) = self.pfds.get(pfd) {
            return Err((e, bufs));
        }
        if self.quiescing {
            return Err((Error::Quiescing, bufs));
        }
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| libc::iovec {
                iov_base: b.as_slice().as_ptr().cast_mut().cast(),
                iov_len: b.len(),
            })
            .collect();
        let total = iov.iter().map(|v| v.iov_len).sum();
        let state = OpState::Writev(Box::new(WritevState {
            pfd,
            bufs,
            iov,
            iov_start: 0,
            // SAFETY: msghdr is plain old data; all-zero is a valid empty
            // header.
            msg: unsafe { std::mem::zeroed() },
            written: 0,
            total,
            offset: offset_arg(offset),
        }));
        Ok(self
            .start(user, state)
            .expect("pfd and quiescing checked above"))
    }

    /// `shutdown(2)` on a socket.
    pub fn shutdown(&mut self, pfd: Pfd, how: Shutdown, user: u64) -> Result<OpId, Error> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        self.start(user, OpState::Shutdown { pfd, how })
    }

    /// The notes' `close_pfd`. From this call on the pfd is stale for new
    /// operations. Every operation in flight on it is cancelled and its
    /// completion (usually [`Error::Cancelled`]) is dispatched first; then
    /// the descriptor is closed and exactly one [`CompletionKind::Close`]
    /// follows. The slot is reused only after that.
    pub fn close(&mut self, pfd: Pfd, user: u64) -> Result<(), Error> {
        let slot = self.pfds.get(pfd)?;
        let (fd, inflight) = (slot.fd, slot.inflight);
        self.pfds.start_close(pfd, user);
        if inflight == 0 {
            self.submit_close(pfd);
            return Ok(());
        }
        self.push_cancel(types::CancelBuilder::fd(types::Fd(fd)).all());
        if self.splices > 0 {
            // A splice *from* this pfd is the kernel's request on its other
            // descriptor, which the cancel by descriptor does not match.
            let from_here: Vec<u64> = self
                .ops
                .iter()
                .filter(|(_, o)| o.state.pfd2() == Some(pfd))
                .map(|(k, o)| (u64::from(o.gen) << 32) | k as u64)
                .collect();
            for ud in from_here {
                self.push_cancel(types::CancelBuilder::user_data(ud));
            }
        }
        let parked: Vec<usize> = self
            .starved
            .iter()
            .copied()
            .filter(|&k| self.ops[k].state.pfd() == Some(pfd))
            .collect();
        for key in parked {
            self.starved.retain(|&k| k != key);
            self.synth_cancel(key);
        }
        if self.starved_recv.contains(&pfd) {
            self.starved_recv.retain(|&p| p != pfd);
            self.synth_cancel_slot_recv(pfd);
        }
        if self
            .pfds
            .slot(pfd)
            .is_some_and(|s| s.recv == SlotRecv::Suspended)
        {
            self.synth_cancel_slot_recv(pfd);
        }
        let suspended: Vec<usize> = self
            .ops
            .iter()
            .filter(|(_, o)| o.suspend == Suspend::Suspended && o.state.pfd() == Some(pfd))
            .map(|(k, _)| k)
            .collect();
        for key in suspended {
            self.ops[key].suspend = Suspend::No;
            self.ops[key].cancel_requested = true;
            self.synth_cancel(key);
        }
        let timers: Vec<u64> = self
            .accept_retrying
            .iter()
            .filter(|&&k| self.ops[k].state.pfd() == Some(pfd))
            .map(|&k| ((self.ops[k].gen as u64) << 32) | k as u64)
            .collect();
        for ud in timers {
            self.push_cancel(types::CancelBuilder::user_data(ud));
        }
        Ok(())
    }

    fn submit_close(&mut self, pfd: Pfd) {
        let Some(user) = self.pfds.take_close(pfd) else {
            return;
        };
        let key = self.insert_op(user, OpState::Close { pfd });
        self.submit_op(key);
    }

    /// Arms a read on an eventfd; when it is triggered a
    /// [`CompletionKind::EventFd`] carries `info` back. Arm again after each
    /// completion to keep listening.
    pub fn eventfd_arm(&mut self, pfd: Pfd, info: u64, user: u64) -> Result<OpId, Error> {
        if self.pfds.get(pfd)?.kind != FdKind::EventFd {
            return Err(Error::WrongKind(pfd));
        }
        self.start(
            user,
            OpState::EventRead {
                pfd,
                value: Box::new([0, info]),
            },
        )
    }

    /// `openat(AT_FDCWD, path, flags | O_CLOEXEC, mode)`; the file becomes a pfd.
    pub fn open(&mut self, path: &Path, flags: i32, mode: u32, user: u64) -> Result<OpId, Error> {
        let path = path_cstring(path)?;
        self.start(
            user,
            OpState::Open(Box::new(OpenState {
                path,
                flags,
                mode,
                beneath: None,
            })),
        )
    }

    /// `openat2(dir, path, {flags | O_CLOEXEC, mode, resolve})`: opens
    /// `path` relative to the directory pfd `dir` with the given
    /// `RESOLVE_*` flags. With `libc::RESOLVE_BENEATH` the kernel refuses
    /// (`EXDEV`) any path — `..`, absolute, or through a symlink — that would
    /// leave `dir`: the safe way to serve files from a root.
    pub fn open_beneath(
        &mut self,
        dir: Pfd,
        path: &Path,
        flags: i32,
        mode: u32,
        resolve: u64,
        user: u64,
    ) -> Result<OpId, Error> {
        let path = path_cstring(path)?;
        let how = types::OpenHow::new()
            .flags((flags | libc::O_CLOEXEC) as u64)
            .mode(mode as u64)
            .resolve(resolve);
        self.start(
            user,
            OpState::Open(Box::new(OpenState {
                path,
                flags,
                mode,
                beneath: Some((dir, how)),
            })),
        )
    }

    /// `statx` of a path (following symlinks).
    pub fn stat(&mut self, path: &Path, user: u64) -> Result<OpId, Error> {
        let path = path_cstring(path)?;
        self.start(
            user,
            OpState::Stat(Box::new(StatState {
                path,
                out: MaybeUninit::uninit(),
            })),
        )
    }

    /// `statx` of an open pfd.
    pub fn fstat(&mut self, pfd: Pfd, user: u64) -> Result<OpId, Error> {
        self.start(
            user,
            OpState::Fstat {
                pfd,
                out: Box::new(MaybeUninit::uninit()),
            },
        )
    }

    /// `unlinkat(AT_FDCWD, path, 0)`; with `dir` set, removes an empty
    /// directory instead.
    pub fn unlink(&mut self, path: &Path, dir: bool, user: u64) -> Result<OpId, Error> {
        let path = path_cstring(path)?;
        self.start(user, OpState::Unlink(Box::new((path, dir))))
    }

    /// A new pipe as two pfds, `(read end, write end)`, both non-blocking
    /// and close-on-exec, with a capacity of `size` bytes if the kernel
    /// grants it (`F_SETPIPE_SZ`; refused above `/proc/sys/fs/pipe-max-size`
    /// or past the user's pipe page limits — the pipe then keeps the
    /// capacity it got). Returns the capacity it has. Made synchronously
    /// (no file system is involved). For [`EventManager::splice`].
    pub fn pipe(&mut self, size: usize) -> Result<(Pfd, Pfd, usize), Error> {
        use std::os::fd::{AsRawFd, IntoRawFd};
        let (r, w) = crate::sys::pipe()?;
        let cap = crate::sys::pipe_set_size(w.as_raw_fd(), size)?;
        let r = self.pfds.insert(r.into_raw_fd(), FdKind::Other);
        let w = self.pfds.insert(w.into_raw_fd(), FdKind::Other);
        Ok((r, w, cap))
    }

    /// Bytes waiting in the pipe `pfd` (`FIONREAD`).
    pub fn pipe_len(&self, pfd: Pfd) -> Result<usize, Error> {
        crate::sys::pipe_len(self.pfds.get(pfd)?.fd)
    }

    /// Reads everything waiting in the pipe whose read end is `pfd` into
    /// `out` (synchronously: a pipe's bytes are in memory), returning the
    /// count. Refused with [`Error::Busy`] while an operation is in flight
    /// on it, so it never races a splice.
    pub fn pipe_drain(&mut self, pfd: Pfd, out: &mut Vec<u8>) -> Result<usize, Error> {
        let slot = self.pfds.get(pfd)?;
        if slot.inflight > 0 {
            return Err(Error::Busy(pfd));
        }
        crate::sys::pipe_read_all(slot.fd, out)
    }

    /// Sets `SO_SNDTIMEO` on the socket `pfd`. Ring sends never block, so it
    /// only bounds a splice into the socket, which an io_uring worker runs
    /// as a blocking send: without progress for `t` it returns with what
    /// it moved, or `EAGAIN`.
    pub fn set_send_timeout(&mut self, pfd: Pfd, t: Duration) -> Result<(), Error> {
        let slot = self.pfds.get(pfd)?;
        if slot.kind != FdKind::Socket {
            return Err(Error::WrongKind(pfd));
        }
        crate::sys::set_send_timeout(slot.fd, t)
    }

    /// `splice(2)` of up to `len` bytes from `from` (at `from_offset`, or
    /// its position when `None`; `None` for a pipe) to `to` (likewise); one
    /// of them must be a pipe. io_uring always runs a splice in one of its
    /// worker threads, as a blocking call: into a socket it waits for room
    /// (bounded by the socket's `SO_SNDTIMEO`, see
    /// [`EventManager::set_send_timeout`]), out of a file it may wait for
    /// the disk. [`CompletionKind::Splice`] gives the count moved — it may
    /// be short (end of file, a full pipe, an interruption); nothing is
    /// resubmitted. Both pfds are held until the completion: closing either
    /// cancels it first.
    pub fn splice(&mut self, args: SpliceArgs, user: u64) -> Result<OpId, Error> {
        self.start(user, OpState::Splice(Box::new(args.state(false))))
    }

    /// Two splices linked (`IOSQE_IO_LINK`): `second` starts when `first`
    /// has moved all its `len` bytes; if `first` comes back short or
    /// failed, `second` completes with [`Error::Cancelled`] without running.
    /// Each has its own completion. When the submission queue has no room
    /// for both together, only `first` is submitted and `None` comes back
    /// for `second` (the caller submits it after `first`'s completion).
    pub fn splice_linked(
        &mut self,
        first: SpliceArgs,
        first_user: u64,
        second: SpliceArgs,
        second_user: u64,
    ) -> Result<(OpId, Option<OpId>), Error> {
        for pfd in [first.from, first.to, second.from, second.to] {
            self.pfds.get(pfd)?;
        }
        if self.quiescing {
            return Err(Error::Quiescing);
        }
        if !self.sq_room(2) {
            return Ok((self.splice(first, first_user)?, None));
        }
        let a = self.start(first_user, OpState::Splice(Box::new(first.state(true))))?;
        let b = self.start(second_user, OpState::Splice(Box::new(second.state(false))))?;
        Ok((a, Some(b)))
    }

    /// A one-shot timer; completes with `Ok` after `after`, or
    /// [`Error::Cancelled`] if cancelled first.
    pub fn timeout(&mut self, after: Duration, user: u64) -> OpId {
        let timer = Box::new(TimerState {
            ts: types::Timespec::from(after),
            deadline: std::time::Instant::now() + after,
            after,
        });
        self.start(user, OpState::Timeout(timer))
            .expect("a timeout has no pfd and is never refused")
    }

    /// Asks the kernel to cancel one operation. It still completes (with
    /// [`Error::Cancelled`] unless it finished first); the multishot ones end
    /// with their `...End` completion. The request is remembered: from now
    /// on the operation is never re-armed, parked or resubmitted (a short
    /// write ends with the count written so far), so its final completion
    /// follows even when the kernel had already finished with it before
    /// seeing the cancel. Cancelling twice is harmless. `Err(NotFound)` if
    /// it already ended.
    pub fn cancel(&mut self, op: OpId) -> Result<(), Error> {
        let id = op.to_u64();
        if id & SLOT_RECV != 0 {
            let (index, gen) = slot_recv_pfd(id);
            let pfd = self.pfds.by_index(index, gen).ok_or(Error::NotFound)?;
            let recv = self.pfds.slot(pfd).map_or(SlotRecv::None, |s| s.recv);
            return match recv {
                SlotRecv::None => Err(Error::NotFound),
                SlotRecv::Cancelling => Ok(()),
                SlotRecv::Parked | SlotRecv::Suspended => {
                    self.starved_recv.retain(|&p| p != pfd);
                    self.synth_cancel_slot_recv(pfd);
                    Ok(())
                }
                SlotRecv::Armed | SlotRecv::Yielding | SlotRecv::Suspending => {
                    if let Some(slot) = self.pfds.slot_mut(pfd) {
                        slot.recv = SlotRecv::Cancelling;
                    }
                    self.push_cancel(types::CancelBuilder::user_data(id));
                    Ok(())
                }
            };
        }
        let key = (id & 0xffff_ffff) as usize;
        match self.ops.get_mut(key) {
            Some(o) if o.gen as u64 == id >> 32 => {
                if o.cancel_requested {
                    return Ok(());
                }
                o.cancel_requested = true;
            }
            _ => return Err(Error::NotFound),
        }
        if let Some(i) = self.starved.iter().position(|&k| k == key) {
            self.starved.swap_remove(i);
            self.synth_cancel(key);
            return Ok(());
        }
        if self.ops[key].suspend == Suspend::Suspended {
            // Not in the kernel: it ends as cancelled through the backlog.
            self.ops[key].suspend = Suspend::No;
            self.synth_cancel(key);
            return Ok(());
        }
        self.push_cancel(types::CancelBuilder::user_data(id));
        Ok(())
    }

    /// Bytes a write or writev in flight has written so far (it reports
    /// them all at its completion; this shows progress before that, e.g. for
    /// a write-progress timeout). `None` if `op` is not a write in flight.
    pub fn write_progress(&self, op: OpId) -> Option<usize> {
        let id = op.to_u64();
        let o = self.ops.get((id & 0xffff_ffff) as usize)?;
        if id & SLOT_RECV != 0 || o.gen as u64 != id >> 32 {
            return None;
        }
        match &o.state {
            OpState::Write(w) => Some(w.written),
            OpState::Writev(w) => Some(w.written),
            _ => None,
        }
    }

    // ----- completions ------------------------------------------------------

    /// Whether new submissions on `pfd` must stop (closing or shutting down).
    fn winding_down(&self, pfd: Pfd) -> bool {
        self.shutting_down || self.pfds.get(pfd).is_err()
    }

    /// Whether op `key` must end at its next completion rather than go on:
    /// its pfd is winding down or a cancel was requested for it.
    fn must_end(&self, key: usize, pfd: Pfd) -> bool {
        self.ops[key].cancel_requested || self.winding_down(pfd)
    }

    /// Whether op `key`, stopping now, is kept suspended (a quiesce asked
    /// for it, and no cancel or close came since).
    fn suspend_now(&self, key: usize) -> bool {
        let op = &self.ops[key];
        op.suspend == Suspend::Requested
            && !op.cancel_requested
            && op.state.pfd().is_none_or(|p| !self.winding_down(p))
    }

    /// Keeps op `key` suspended: out of the kernel, still in the table and
    /// still counted on its pfd, until resumed (see `handover.rs`).
    fn suspend(&mut self, key: usize) {
        let op = &mut self.ops[key];
        op.suspend = Suspend::Suspended;
        if let OpState::Timeout(t) = &mut op.state {
            let left = t
                .deadline
                .saturating_duration_since(std::time::Instant::now());
            t.after = left;
            t.ts = types::Timespec::from(left);
        }
        if let OpState::Accept { retry_timer, .. } = &mut op.state {
            *retry_timer = None;
            self.accept_retrying.retain(|&k| k != key);
        }
    }

    /// Removes op `key` (it has had its last completion), releases its hold
    /// on its pfd, submits the pfd's close if that was the last hold, and
    /// delivers `kind`.
    fn finish<H: Handler + ?Sized>(
        &mut self,
        key: usize,
        handler: &mut H,
        kind: impl FnOnce(OpState) -> CompletionKind,
    ) {
        let id = self.op_id(key);
        let op = self.ops.remove(key);
        if matches!(op.state, OpState::Splice(_)) {
            self.splices -= 1;
        }
        for pfd in [op.state.pfd(), op.state.pfd2()].into_iter().flatten() {
            self.release_hold(pfd);
        }
        let kind = kind(op.state);
        handler.on_completion(
            self,
            Completion {
                user: op.user,
                op: id,
                kind,
            },
        );
    }

    fn release_hold(&mut self, pfd: Pfd) {
        let Some(slot) = self.pfds.slot_mut(pfd) else {
            return;
        };
        slot.inflight -= 1;
        if slot.inflight == 0 && matches!(slot.state, SlotState::Closing { .. }) {
            if self.shutting_down {
                return; // teardown closes every descriptor itself
            }
            self.submit_close(pfd);
        }
    }

    /// Delivers a completion for op `key` that does not end it.
    fn deliver<H: Handler + ?Sized>(&mut self, key: usize, handler: &mut H, kind: CompletionKind) {
        let c = Completion {
            user: self.ops[key].user,
            op: self.op_id(key),
            kind,
        };
        handler.on_completion(self, c);
    }

    pub(crate) fn on_cqe<H: Handler + ?Sized>(&mut self, cqe: RawCqe, handler: &mut H) {
        if cqe.user_data == CANCEL_UD {
            return;
        }
        if cqe.user_data == QUIESCE_CANCEL_UD {
            self.quiesce_cancels = self.quiesce_cancels.saturating_sub(1);
            return;
        }
        if cqe.user_data & SLOT_RECV != 0 {
            return self.on_slot_recv(cqe, handler);
        }
        let key = (cqe.user_data & 0xffff_ffff) as usize;
        if self
            .ops
            .get(key)
            .is_none_or(|op| op.gen as u64 != cqe.user_data >> 32)
        {
            // Never routed to whatever occupies the slot now: dropped and
            // counted (it would be a bug in this crate).
            self.stats.stale_completions += 1;
            tracing::error!(
                user_data = cqe.user_data,
                "completion for unknown operation dropped"
            );
            return;
        }
        // A quiesce asked for this op and nothing ended it since: the
        // completion that stops it suspends it (see `handover.rs`).
        let suspends = self.suspend_now(key);
        let op = &mut self.ops[key];
        let res = cqe.res;
        let more = cqueue::more(cqe.flags);
        match &mut op.state {
            OpState::Nop => self.finish(key, handler, |_| CompletionKind::Nop),
            OpState::Accept {
                listener,
                retry_timer,
            } => {
                let listener = *listener;
                if retry_timer.is_some() {
                    *retry_timer = None;
                    self.accept_retrying.retain(|&k| k != key);
                    if !self.must_end(key, listener) && self.suspend_now(key) {
                        return self.suspend(key);
                    }
                    if res == -libc::ECANCELED || self.must_end(key, listener) {
                        return self.finish(key, handler, |_| CompletionKind::AcceptEnd {
                            listener,
                            result: Err(Error::Cancelled),
                        });
                    }
                    return self.submit_op(key);
                }
                self.on_accept(key, listener, res, more, handler)
            }
            OpState::Recv { pfd } => {
                let pfd = *pfd;
                self.on_recv(Rx::Op(key), pfd, res, cqe.flags, handler)
            }
            OpState::Read(r) => {
                let result = if res >= 0 {
                    let buf = &mut r.buf;
                    // SAFETY: the kernel wrote `res` bytes into the spare
                    // capacity starting at `len`, and `res` ≤ that capacity.
                    unsafe { buf.set_len(buf.len() + res as usize) };
                    Ok(res as usize)
                } else {
                    Err(Error::from_res(res))
                };
                self.finish(key, handler, |s| match s {
                    OpState::Read(r) => CompletionKind::Read {
                        pfd: r.pfd,
                        buf: r.buf,
                        result,
                    },
                    _ => unreachable!(),
                })
            }
            OpState::Readv(r) => {
                let result = if res >= 0 {
                    let mut left = res as usize;
                    for b in r.bufs.iter_mut() {
                        let n = left.min(b.capacity() - b.len());
                        // SAFETY: readv filled iovecs in order; this buffer's
                        // spare capacity received `n` bytes.
                        unsafe { b.set_len(b.len() + n) };
                        left -= n;
                    }
                    Ok(res as usize)
                } else {
                    Err(Error::from_res(res))
                };
                self.finish(key, handler, |s| match s {
                    OpState::Readv(r) => CompletionKind::Readv {
                        pfd: r.pfd,
                        bufs: r.bufs,
                        result,
                    },
                    _ => unreachable!(),
                })
            }
            OpState::Write(w) => {
                let WriteState {
                    pfd,
                    buf,
                    written,
                    offset,
                } = &mut **w;
                let pfd = *pfd;
                let len = buf.len();
                if res > 0 {
                    *written += res as usize;
                    *offset = advance(*offset, res as usize);
                }
                let written = *written;
                if res > 0 && written < len && !self.must_end(key, pfd) {
                    return self.submit_op(key);
                }
                let result = if written == len && res >= 0 {
                    Ok(len)
                } else if res < 0 {
                    Err(Error::from_res(res))
                } else if res == 0 {
                    Err(Error::Os(libc::EIO))
                } else {
                    Err(Error::Cancelled)
                };
                let mut spare = None;
                self.finish(key, handler, |s| match s {
                    OpState::Write(mut w) => {
                        let buf = std::mem::replace(&mut w.buf, OutBuf::Static(&[]));
                        let (pfd, written) = (w.pfd, w.written);
                        spare = Some(w);
                        CompletionKind::Write {
                            pfd,
                            buf,
                            written,
                            result,
                        }
                    }
                    _ => unreachable!(),
                });
                if let Some(b) = spare {
                    if self.write_boxes.len() < crate::manager::WRITE_BOXES_MAX {
                        self.write_boxes.push(b);
                    }
                }
            }
            OpState::Writev(w) => {
                let WritevState {
                    pfd,
                    iov,
                    iov_start,
                    written,
                    total,
                    offset,
                    ..
                } = &mut **w;
                let pfd = *pfd;
                if res > 0 {
                    let mut n = res as usize;
                    *written += n;
                    *offset = advance(*offset, n);
                    while n > 0 && *iov_start < iov.len() {
                        let v = &mut iov[*iov_start];
                        if n >= v.iov_len {
                            n -= v.iov_len;
                            *iov_start += 1;
                        } else {
                            // SAFETY: `n` < iov_len, so the advanced base is
                            // still inside the same buffer.
                            v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n).cast() };
                            v.iov_len -= n;
                            n = 0;
                        }
                    }
                }
                let (written, total) = (*written, *total);
                if res > 0 && written < total && !self.must_end(key, pfd) {
                    return self.submit_op(key);
                }
                let result = if written == total && res >= 0 {
                    Ok(total)
                } else if res < 0 {
                    Err(Error::from_res(res))
                } else if res == 0 {
                    Err(Error::Os(libc::EIO))
                } else {
                    Err(Error::Cancelled)
                };
                self.finish(key, handler, |s| match s {
                    OpState::Writev(w) => CompletionKind::Writev {
                        pfd: w.pfd,
                        bufs: w.bufs,
                        written: w.written,
                        result,
                    },
                    _ => unreachable!(),
                })
            }
            OpState::Shutdown { pfd, .. } => {
                let pfd = *pfd;
                self.finish(key, handler, |_| CompletionKind::Shutdown {
                    pfd,
                    result: ok_or_err(res),
                })
            }
            OpState::Close { pfd } => {
                let pfd = *pfd;
                self.pfds.free(pfd);
                self.finish(key, handler, |_| CompletionKind::Close {
                    pfd,
                    result: ok_or_err(res),
                })
            }
            OpState::EventRead { .. } if res == -libc::ECANCELED && suspends => self.suspend(key),
            OpState::EventRead { pfd, value } => {
                let (pfd, info) = (*pfd, value[1]);
                let result = if res == 8 {
                    Ok(value[0])
                } else if res < 0 {
                    Err(Error::from_res(res))
                } else {
                    Err(Error::Os(libc::EIO))
                };
                self.finish(key, handler, |_| CompletionKind::EventFd {
                    pfd,
                    info,
                    result,
                })
            }
            OpState::Wake { .. } => {
                if (res >= 0 || res == -libc::ECANCELED)
                    && !self.shutting_down
                    && self.suspend_now(key)
                {
                    self.stop_requested |= res >= 0;
                    self.suspend(key);
                } else if res >= 0 && !self.shutting_down {
                    self.stop_requested = true;
                    self.submit_op(key);
                } else {
                    self.ops.remove(key);
                    self.wake = None;
                }
            }
            OpState::Open(_) => {
                let result = if res >= 0 {
                    Ok(self.pfds.insert(res, FdKind::File))
                } else {
                    Err(Error::from_res(res))
                };
                self.finish(key, handler, |s| match s {
                    OpState::Open(o) => CompletionKind::Open {
                        path: o.path,
                        result,
                    },
                    _ => unreachable!(),
                })
            }
            OpState::Stat(_) | OpState::Fstat { .. } => {
                let out = match &self.ops[key].state {
                    OpState::Stat(st) => &st.out,
                    OpState::Fstat { out, .. } => &**out,
                    _ => unreachable!(),
                };
                let result = if res >= 0 {
                    // SAFETY: statx succeeded, so the kernel filled the buffer.
                    Ok(FileStat::from_statx(unsafe { out.assume_init_ref() }))
                } else {
                    Err(Error::from_res(res))
                };
                self.finish(key, handler, |s| match s {
                    OpState::Stat(st) => CompletionKind::Stat {
                        path: st.path,
                        result,
                    },
                    OpState::Fstat { pfd, .. } => CompletionKind::Fstat { pfd, result },
                    _ => unreachable!(),
                })
            }
            OpState::Unlink(_) => self.finish(key, handler, |s| match s {
                OpState::Unlink(u) => CompletionKind::Unlink {
                    path: u.0,
                    result: ok_or_err(res),
                },
                _ => unreachable!(),
            }),
            OpState::Splice(_) => {
                let result = if res >= 0 {
                    Ok(res as usize)
                } else {
                    Err(Error::from_res(res))
                };
                self.finish(key, handler, |s| match s {
                    OpState::Splice(sp) => CompletionKind::Splice {
                        from: sp.from,
                        to: sp.to,
                        result,
                    },
                    _ => unreachable!(),
                })
            }
            OpState::Timeout(_) if res == -libc::ECANCELED && suspends => self.suspend(key),
            OpState::Timeout(_) => {
                let result = if res == -libc::ETIME || res >= 0 {
                    Ok(())
                } else {
                    Err(Error::from_res(res))
                };
                self.finish(key, handler, |_| CompletionKind::Timeout { result })
            }
        }
    }

    fn on_accept<H: Handler + ?Sized>(
        &mut self,
        key: usize,
        listener: Pfd,
        res: i32,
        more: bool,
        handler: &mut H,
    ) {
        if res >= 0 {
            let pfd = self.pfds.insert(res, FdKind::Socket);
            self.deliver(
                key,
                handler,
                CompletionKind::Accept {
                    listener,
                    result: Ok(pfd),
                },
            );
        } else {
            match -res {
                libc::ECANCELED if !self.must_end(key, listener) && self.suspend_now(key) => {
                    return self.suspend(key);
                }
                libc::ECANCELED => {
                    return self.finish(key, handler, |_| CompletionKind::AcceptEnd {
                        listener,
                        result: Err(Error::Cancelled),
                    })
                }
                libc::EINTR
                | libc::EAGAIN
                | libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::ETIMEDOUT
                | libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM => {
                    self.deliver(
                        key,
                        handler,
                        CompletionKind::Accept {
                            listener,
                            result: Err(Error::Os(-res)),
                        },
                    );
                }
                _ => {
                    return self.finish(key, handler, |_| CompletionKind::AcceptEnd {
                        listener,
                        result: Err(Error::Os(-res)),
                    })
                }
            }
        }
        if more {
            return;
        }
        // The kernel ended the multishot: re-arm unless the listener is going
        // or a cancel was asked for.
        if self.must_end(key, listener) {
            return self.finish(key, handler, |_| CompletionKind::AcceptEnd {
                listener,
                result: Err(Error::Cancelled),
            });
        }
        if self.suspend_now(key) {
            return self.suspend(key);
        }
        if matches!(
            -res,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        ) {
            if let OpState::Accept { retry_timer, .. } = &mut self.ops[key].state {
                *retry_timer = Some(Box::new(types::Timespec::new()));
            }
            self.accept_retrying.push(key);
        }
        self.submit_op(key);
    }

    /// A completion of the receive kept in a pfd's slot.
    fn on_slot_recv<H: Handler + ?Sized>(&mut self, cqe: RawCqe, handler: &mut H) {
        let ud = cqe.user_data;
        let (index, gen) = slot_recv_pfd(ud);
        let found = self.pfds.by_index(index, gen).filter(|&p| {
            self.pfds.slot(p).is_some_and(|s| {
                matches!(
                    s.recv,
                    SlotRecv::Armed
                        | SlotRecv::Cancelling
                        | SlotRecv::Yielding
                        | SlotRecv::Suspending
                )
            })
        });
        let Some(pfd) = found else {
            self.stats.stale_completions += 1;
            tracing::error!(user_data = ud, "completion for unknown receive dropped");
            return;
        };
        self.on_recv(Rx::Slot, pfd, cqe.res, cqe.flags, handler)
    }

    /// Ends the slot receive of `pfd`: like [`EventManager::finish`].
    fn finish_slot_recv<H: Handler + ?Sized>(
        &mut self,
        pfd: Pfd,
        handler: &mut H,
        result: Result<(), Error>,
    ) {
        let Some(slot) = self.pfds.slot_mut(pfd) else {
            return;
        };
        slot.recv = SlotRecv::None;
        let user = slot.recv_user;
        self.slot_recvs -= 1;
        self.release_hold(pfd);
        handler.on_completion(
            self,
            Completion {
                user,
                op: slot_recv_op_id(pfd),
                kind: CompletionKind::RecvEnd { pfd, result },
            },
        );
    }

    /// A multishot receive's completion, wherever the receive is kept:
    /// deliver the bytes, re-arm when the kernel ended it early, park on
    /// `ENOBUFS`, or end it.
    fn on_recv<H: Handler + ?Sized>(
        &mut self,
        rx: Rx,
        pfd: Pfd,
        res: i32,
        flags: u32,
        handler: &mut H,
    ) {
        if res > 0 {
            let Some(bid) = cqueue::buffer_select(flags) else {
                tracing::error!("multishot receive completed without a buffer");
                return self.end_recv(rx, pfd, handler, Err(Error::Os(libc::EIO)));
            };
            let buf = self
                .buf_ring
                .take(bid, res as u32, cqueue::buffer_more(flags));
            match rx {
                Rx::Op(key) => self.deliver(key, handler, CompletionKind::Recv { pfd, buf }),
                Rx::Slot => {
                    let user = self.pfds.slot(pfd).map_or(0, |s| s.recv_user);
                    handler.on_completion(
                        self,
                        Completion {
                            user,
                            op: slot_recv_op_id(pfd),
                            kind: CompletionKind::Recv { pfd, buf },
                        },
                    );
                }
            }
            if cqueue::more(flags) {
                if matches!(rx, Rx::Slot) {
                    self.yield_if_others_wait(pfd);
                }
                return;
            }
            if self.recv_must_end(rx, pfd) {
                return self.end_recv(rx, pfd, handler, Err(Error::Cancelled));
            }
            if self.recv_suspend_now(rx, pfd) {
                return self.suspend_recv(rx, pfd);
            }
            if self.recv_yielding(rx, pfd) || self.recv_contended() {
                // It ended (its cap reached, or asked to yield) while others
                // wait for buffers: it goes behind them.
                return self.park_recv(rx, pfd);
            }
            return match rx {
                Rx::Op(key) => self.submit_op(key),
                Rx::Slot => self.submit_slot_recv(pfd),
            };
        }
        if (res == -libc::ENOBUFS || res == -libc::ECANCELED) && self.recv_must_end(rx, pfd) {
            // Out of buffers (or cancelled) after a cancel was asked for:
            // the receive ends here (parking it would lose the cancel).
            return self.end_recv(rx, pfd, handler, Err(Error::Cancelled));
        }
        if (res == -libc::ENOBUFS
            || res == -libc::ECANCELED
            || (res == -libc::EINVAL && self.recv_cap != 0))
            && self.recv_suspend_now(rx, pfd)
        {
            // Stopped for a quiesce (or out of buffers, or refusing the cap,
            // while one is under way): kept suspended; resume re-arms it.
            if res == -libc::EINVAL {
                self.recv_cap = 0;
            }
            return self.suspend_recv(rx, pfd);
        }
        if res == -libc::ENOBUFS {
            self.enobufs_turn = Some(self.turns);
        }
        if res == -libc::ENOBUFS || (res == -libc::ECANCELED && self.recv_yielding(rx, pfd)) {
            // Out of buffers, or stopped to let parked receives have their
            // turn: park until buffers come back (see rearm_starved).
            return self.park_recv(rx, pfd);
        }
        if res == -libc::EINVAL && self.recv_cap != 0 {
            // A kernel that refuses the receive cap: go on without it.
            tracing::info!("kernel refused the multishot receive cap; receiving uncapped");
            self.recv_cap = 0;
            return match rx {
                Rx::Op(key) => self.submit_op(key),
                Rx::Slot => self.submit_slot_recv(pfd),
            };
        }
        let result = if res == 0 {
            Ok(())
        } else {
            Err(Error::from_res(res))
        };
        self.end_recv(rx, pfd, handler, result)
    }

    /// Parks a receive until buffers come back: at the back of the queue,
    /// behind receives that were parked before it.
    fn park_recv(&mut self, rx: Rx, pfd: Pfd) {
        tracing::trace!(%pfd, "receive parked");
        match rx {
            Rx::Op(key) => self.starved.push(key),
            Rx::Slot => {
                if let Some(slot) = self.pfds.slot_mut(pfd) {
                    slot.recv = SlotRecv::Parked;
                }
                self.starved_recv.push(pfd);
            }
        }
    }

    /// Fair shares of the buffer pool: a multishot receive that keeps
    /// getting data (its socket holds more than the pool) would take every
    /// buffer as soon as it comes back, and receives parked for buffers
    /// would never get one. So while any receive is parked, a slot receive
    /// that got data is asked to stop (an internal cancel), and parks
    /// behind the others instead of re-arming; every parked receive is
    /// re-armed together once buffers are back.
    fn yield_if_others_wait(&mut self, pfd: Pfd) {
        if !self.recv_contended() {
            return;
        }
        let Some(slot) = self.pfds.slot_mut(pfd) else {
            return;
        };
        if slot.recv != SlotRecv::Armed {
            return; // cancelling, or already yielding
        }
        slot.recv = SlotRecv::Yielding;
        tracing::trace!(%pfd, "receive asked to yield");
        self.stats.recv_yields += 1;
        self.push_cancel(types::CancelBuilder::user_data(slot_recv_ud(pfd)));
    }

    /// Whether receives are competing for buffers: one is parked, or one
    /// ran out of buffers in this turn or the one before (its completion
    /// may come after ours in the same batch).
    fn recv_contended(&self) -> bool {
        !self.starved_recv.is_empty()
            || !self.starved.is_empty()
            || self.enobufs_turn.is_some_and(|t| self.turns - t <= 1)
    }

    /// Whether a receive was asked to yield (see `yield_if_others_wait`).
    fn recv_yielding(&self, rx: Rx, pfd: Pfd) -> bool {
        matches!(rx, Rx::Slot)
            && self
                .pfds
                .slot(pfd)
                .is_some_and(|s| s.recv == SlotRecv::Yielding)
    }

    /// Whether a receive must end rather than re-arm or park: its pfd is
    /// winding down or a cancel was requested (sticky, see the module doc).
    fn recv_must_end(&self, rx: Rx, pfd: Pfd) -> bool {
        match rx {
            Rx::Op(key) => self.must_end(key, pfd),
            Rx::Slot => {
                self.winding_down(pfd)
                    || self
                        .pfds
                        .slot(pfd)
                        .is_some_and(|s| s.recv == SlotRecv::Cancelling)
            }
        }
    }

    /// Whether a stopping receive is kept suspended for a quiesce.
    fn recv_suspend_now(&self, rx: Rx, pfd: Pfd) -> bool {
        match rx {
            Rx::Op(key) => self.suspend_now(key),
            Rx::Slot => {
                !self.winding_down(pfd)
                    && self
                        .pfds
                        .slot(pfd)
                        .is_some_and(|s| s.recv == SlotRecv::Suspending)
            }
        }
    }

    fn suspend_recv(&mut self, rx: Rx, pfd: Pfd) {
        match rx {
            Rx::Op(key) => self.suspend(key),
            Rx::Slot => {
                if let Some(slot) = self.pfds.slot_mut(pfd) {
                    slot.recv = SlotRecv::Suspended;
                }
            }
        }
    }

    /// Delivers a receive's last completion (`RecvEnd`) and releases it.
    fn end_recv<H: Handler + ?Sized>(
        &mut self,
        rx: Rx,
        pfd: Pfd,
        handler: &mut H,
        result: Result<(), Error>,
    ) {
        match rx {
            Rx::Op(key) => self.finish(key, handler, |_| CompletionKind::RecvEnd { pfd, result }),
            Rx::Slot => self.finish_slot_recv(pfd, handler, result),
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Every operation in flight holds one slot (a pfd's first receive is
    /// kept in the pfd's own slot instead): keep it from growing unnoticed
    /// (40 B today).
    #[test]
    fn op_slot_size() {
        let op = std::mem::size_of::<Op>();
        eprintln!("Op {op} B, OpState {} B", std::mem::size_of::<OpState>());
        assert!(op <= 40, "Op grew to {op} bytes");
    }

    /// A slot receive's `user_data` names the whole pfd: all 32 generation
    /// bits (the old layout kept 31, so generations 2^31 apart collided).
    #[test]
    fn slot_receive_user_data_keeps_the_whole_generation() {
        for (index, gen) in [(0, 0), (5, 0x8000_0001), (MAX - 1, u32::MAX), (77, 1)] {
            let pfd = Pfd::new(index, gen);
            let ud = slot_recv_ud(pfd);
            assert_ne!(ud & SLOT_RECV, 0);
            assert_ne!(ud, CANCEL_UD);
            assert_eq!(slot_recv_pfd(ud), (index, gen));
        }
        assert_ne!(
            slot_recv_ud(Pfd::new(5, 0x8000_0001)),
            slot_recv_ud(Pfd::new(5, 1))
        );
    }
    const MAX: u32 = crate::pfd::MAX_SLOTS;
}

#[cfg(test)]
mod stale_completion_tests {
    use super::*;
    use crate::manager::RawCqe;

    /// A completion whose generation is not the slot's current one is
    /// dropped and counted, never delivered to the slot's new occupant.
    #[test]
    fn completion_with_an_old_generation_is_dropped_and_counted() {
        let mut em = EventManager::new().unwrap();
        let ev = em.eventfd_open().unwrap();
        let op = em.eventfd_arm(ev, 7, 1).unwrap();
        let id = op.to_u64();
        // The same key under the previous generation: a completion for an
        // operation that ended before this one took the slot.
        let stale = ((id >> 32).wrapping_sub(1) << 32) | (id & 0xffff_ffff);
        em.backlog.push_back(RawCqe {
            user_data: stale,
            res: 8,
            flags: 0,
        });
        let mut delivered = 0;
        em.turn(
            &mut |_: &mut EventManager, _c: Completion| delivered += 1,
            Some(Duration::from_millis(50)),
        )
        .unwrap();
        assert_eq!(delivered, 0, "the stale completion reached a handler");
        assert_eq!(em.stats().stale_completions, 1);
        // The real operation is untouched: it still completes when triggered.
        em.eventfd_trigger(ev).unwrap();
        let mut info = None;
        for _ in 0..100 {
            em.turn(
                &mut |_: &mut EventManager, c: Completion| {
                    if let CompletionKind::EventFd { info: i, .. } = c.kind {
                        info = Some(i);
                    }
                },
                Some(Duration::from_millis(50)),
            )
            .unwrap();
            if info.is_some() {
                break;
            }
        }
        assert_eq!(info, Some(7));
    }
}
