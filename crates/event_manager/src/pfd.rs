//! Pseudo file descriptors (pfds) and the table that maps them to real ones.
//!
//! A [`Pfd`] is a slot index plus a generation. The table refuses any pfd
//! whose generation does not match the slot's current one, so a pfd that was
//! closed — even if its slot now holds another descriptor — can never touch
//! the new occupant. A slot is only freed (and its generation bumped) once the
//! close has completed, which the event manager only submits after every
//! operation referencing the slot has completed.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::os::fd::RawFd;

use crate::Error;

/// A pseudo file descriptor: the handle the layers above use for every
/// descriptor the event manager owns.
///
/// Plain data (`Copy`, 8 bytes); it can cross a library boundary as a `u64`
/// with [`Pfd::to_u64`] / [`Pfd::from_u64`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pfd {
    index: u32,
    generation: u32,
}

impl Pfd {
    /// Builds a pfd from its parts (used when importing a listed table).
    pub const fn new(index: u32, generation: u32) -> Self {
        Pfd { index, generation }
    }
    /// The slot index.
    pub const fn index(self) -> u32 {
        self.index
    }
    /// The generation of the slot this pfd was issued for.
    pub const fn generation(self) -> u32 {
        self.generation
    }
    /// Packs the pfd into one integer: generation in the high half.
    pub const fn to_u64(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }
    /// Inverse of [`Pfd::to_u64`].
    pub const fn from_u64(v: u64) -> Self {
        Pfd {
            index: v as u32,
            generation: (v >> 32) as u32,
        }
    }
}

impl fmt::Debug for Pfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfd{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for Pfd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What kind of object a pfd refers to. It decides which opcode a write uses
/// (`send`/`sendmsg` with `MSG_NOSIGNAL` for sockets, `write`/`writev`
/// otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FdKind {
    /// A socket (listening or connected, any family).
    Socket,
    /// A regular file or directory.
    File,
    /// An eventfd opened by [`crate::EventManager::eventfd_open`].
    EventFd,
    /// A pipe, FIFO, character device or anything else.
    Other,
}

/// One row of [`crate::EventManager::pfds`]: enough to take the table over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PfdInfo {
    /// The pfd as issued.
    pub pfd: Pfd,
    /// The kernel descriptor behind it.
    pub fd: RawFd,
    /// What it refers to.
    pub kind: FdKind,
    /// Operations submitted on it whose final completion has not arrived.
    pub inflight: u32,
    /// Whether a close has been requested.
    pub closing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    Free,
    Open,
    /// Close requested; new operations are refused. The close's tag waits
    /// in [`PfdTable::close_users`] (kept out of the slot, which every open
    /// descriptor holds, to keep it small).
    Closing {
        close_submitted: bool,
    },
}

/// The multishot receive kept in a pfd's own slot (see
/// `EventManager::recv_multishot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRecv {
    None,
    /// Armed in the kernel.
    Armed,
    /// Stopped by `ENOBUFS`; re-armed when buffers come back.
    Parked,
    /// Armed in the kernel, with a cancel requested: its next completion
    /// that would re-arm or park it ends it instead.
    Cancelling,
    /// Armed in the kernel, asked to stop so that receives parked for
    /// buffers get their turn: when it stops it parks instead of ending.
    Yielding,
    /// Armed in the kernel, asked to stop by [`crate::EventManager::quiesce`]:
    /// when it stops it is kept suspended instead of ending.
    Suspending,
    /// Not in the kernel; re-armed by [`crate::EventManager::resume`] (or
    /// after an import). Still counts as in flight on its pfd.
    Suspended,
}

/// Slot indexes stay below 2^31 - 1, so that a slot receive's `user_data`
/// can carry the index and all 32 generation bits under its marker bit, and
/// is never `u64::MAX` (the event manager's own cancels).
pub(crate) const MAX_SLOTS: u32 = (1 << 31) - 1;

#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) fd: RawFd,
    pub(crate) generation: u32,
    pub(crate) kind: FdKind,
    pub(crate) state: SlotState,
    pub(crate) recv: SlotRecv,
    pub(crate) inflight: u32,
    /// The `user` tag of the slot's receive.
    pub(crate) recv_user: u64,
}

/// Generational table of descriptors. Freed indexes are reused in the order
/// they were freed (FIFO), so one busy slot does not cycle through its
/// generations while others sit free; generations only grow, and a slot
/// whose generation has reached `u32::MAX` is retired (never reused), so an
/// index + generation pair is never issued twice.
#[derive(Debug, Default)]
pub(crate) struct PfdTable {
    slots: Vec<Slot>,
    free: VecDeque<u32>,
    /// Slots retired at the end of their generations.
    retired: usize,
    open: usize,
    /// The `user` tag of each requested close, by slot index, until the
    /// close is submitted.
    close_users: HashMap<u32, u64>,
}

impl PfdTable {
    pub(crate) fn insert(&mut self, fd: RawFd, kind: FdKind) -> Pfd {
        self.open += 1;
        if let Some(index) = self.free.pop_front() {
            let slot = &mut self.slots[index as usize];
            debug_assert_eq!(slot.state, SlotState::Free);
            slot.fd = fd;
            slot.kind = kind;
            slot.state = SlotState::Open;
            slot.recv = SlotRecv::None;
            slot.inflight = 0;
            Pfd::new(index, slot.generation)
        } else {
            let index = u32::try_from(self.slots.len())
                .ok()
                .filter(|&i| i < MAX_SLOTS)
                .expect("more than 2^31 - 1 pfds");
            self.slots.push(Slot {
                fd,
                generation: 0,
                kind,
                state: SlotState::Open,
                recv: SlotRecv::None,
                inflight: 0,
                recv_user: 0,
            });
            Pfd::new(index, 0)
        }
    }

    /// The slot of a live (open, not closing) pfd.
    pub(crate) fn get(&self, pfd: Pfd) -> Result<&Slot, Error> {
        match self.slots.get(pfd.index as usize) {
            Some(s) if s.generation == pfd.generation && s.state == SlotState::Open => Ok(s),
            _ => Err(Error::Stale(pfd)),
        }
    }

    /// The slot of a pfd that is open or closing (used by completions).
    pub(crate) fn slot_mut(&mut self, pfd: Pfd) -> Option<&mut Slot> {
        match self.slots.get_mut(pfd.index as usize) {
            Some(s) if s.generation == pfd.generation && s.state != SlotState::Free => Some(s),
            _ => None,
        }
    }

    /// The open or closing pfd at `index` with generation `generation` (how
    /// a slot receive's `user_data` names it).
    pub(crate) fn by_index(&self, index: u32, generation: u32) -> Option<Pfd> {
        let pfd = Pfd::new(index, generation);
        self.slot(pfd).map(|_| pfd)
    }

    /// The slot of a pfd that is open or closing, read-only.
    pub(crate) fn slot(&self, pfd: Pfd) -> Option<&Slot> {
        match self.slots.get(pfd.index as usize) {
            Some(s) if s.generation == pfd.generation && s.state != SlotState::Free => Some(s),
            _ => None,
        }
    }

    /// Marks a live pfd as closing with the close's tag `user`.
    pub(crate) fn start_close(&mut self, pfd: Pfd, user: u64) {
        if let Some(slot) = self.slot_mut(pfd) {
            slot.state = SlotState::Closing {
                close_submitted: false,
            };
            self.close_users.insert(pfd.index, user);
        }
    }

    /// For a closing pfd whose close is not submitted yet: marks it
    /// submitted and returns the close's tag.
    pub(crate) fn take_close(&mut self, pfd: Pfd) -> Option<u64> {
        let slot = self.slot_mut(pfd)?;
        match &mut slot.state {
            SlotState::Closing { close_submitted } if !*close_submitted => {
                *close_submitted = true;
                self.close_users.remove(&pfd.index)
            }
            _ => None,
        }
    }

    /// Frees the slot after its close completed; the generation moves on so
    /// every outstanding copy of `pfd` is stale from now on.
    pub(crate) fn free(&mut self, pfd: Pfd) {
        let slot = &mut self.slots[pfd.index as usize];
        debug_assert_eq!(slot.generation, pfd.generation);
        debug_assert_eq!(slot.inflight, 0);
        slot.state = SlotState::Free;
        slot.fd = -1;
        self.close_users.remove(&pfd.index);
        self.open -= 1;
        match slot.generation.checked_add(1) {
            Some(g) => {
                slot.generation = g;
                self.free.push_back(pfd.index);
            }
            // Every generation of this index has been issued: retire it
            // (24 bytes) rather than let an old pfd become valid again.
            None => self.retired += 1,
        }
    }

    /// Every slot in index order (free and retired ones too), and the free
    /// list in reuse order: what an export writes down.
    pub(crate) fn parts(&self) -> (&[Slot], &VecDeque<u32>) {
        (&self.slots, &self.free)
    }

    /// A table rebuilt from an import's checked rows.
    pub(crate) fn restore(slots: Vec<Slot>, free: VecDeque<u32>) -> PfdTable {
        let open = slots.iter().filter(|s| s.state != SlotState::Free).count();
        let retired = slots
            .iter()
            .filter(|s| s.state == SlotState::Free && s.generation == u32::MAX)
            .count();
        PfdTable {
            slots,
            free,
            retired,
            open,
            close_users: HashMap::new(),
        }
    }

    /// Mutable access to every slot (import and release fix up counts and
    /// descriptors).
    pub(crate) fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.slots
    }

    /// Gives up an open slot's descriptor without closing it (release):
    /// the slot is left free and never reused.
    pub(crate) fn take_fd(&mut self, index: usize) -> Option<RawFd> {
        let slot = self.slots.get_mut(index)?;
        if slot.state != SlotState::Open || slot.fd < 0 {
            return None;
        }
        let fd = slot.fd;
        slot.fd = -1;
        slot.state = SlotState::Free;
        self.open -= 1;
        Some(fd)
    }

    /// Slots retired because their generations ran out.
    #[cfg(test)]
    pub(crate) fn retired(&self) -> usize {
        self.retired
    }

    /// Open or closing pfds.
    pub(crate) fn len(&self) -> usize {
        self.open
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = PfdInfo> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            (s.state != SlotState::Free).then_some(PfdInfo {
                pfd: Pfd::new(i as u32, s.generation),
                fd: s.fd,
                kind: s.kind,
                inflight: s.inflight,
                closing: matches!(s.state, SlotState::Closing { .. }),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open descriptor holds one slot; with its armed receive in it,
    /// that is all the event manager keeps for an idle connection.
    #[test]
    fn slot_size() {
        let n = std::mem::size_of::<Slot>();
        eprintln!("Slot {n} B");
        assert!(n <= 24, "Slot grew to {n} bytes");
    }

    #[test]
    fn reused_slot_refuses_old_generation() {
        let mut t = PfdTable::default();
        let a = t.insert(10, FdKind::Other);
        t.slot_mut(a).unwrap().state = SlotState::Closing {
            close_submitted: true,
        };
        assert!(matches!(t.get(a), Err(Error::Stale(p)) if p == a));
        t.free(a);
        let b = t.insert(11, FdKind::Other);
        assert_eq!(a.index(), b.index());
        assert_ne!(a.generation(), b.generation());
        assert!(t.get(a).is_err());
        assert_eq!(t.get(b).unwrap().fd, 11);
        assert!(t.slot_mut(a).is_none());
    }

    #[test]
    fn freed_slots_are_reused_in_fifo_order() {
        let mut t = PfdTable::default();
        let pfds: Vec<Pfd> = (0..3).map(|i| t.insert(10 + i, FdKind::Other)).collect();
        for &p in &pfds {
            close(&mut t, p);
        }
        // Freed 0, 1, 2: reused 0, 1, 2 (a LIFO list would hand 2 back
        // first and keep cycling one slot).
        let again: Vec<u32> = (0..3)
            .map(|i| t.insert(20 + i, FdKind::Other).index())
            .collect();
        assert_eq!(again, vec![0, 1, 2]);
        // One busy slot does not run ahead while others are free.
        let mut t = PfdTable::default();
        let a = t.insert(1, FdKind::Other);
        let b = t.insert(2, FdKind::Other);
        close(&mut t, b);
        close(&mut t, a);
        let c = t.insert(3, FdKind::Other);
        assert_eq!(c.index(), b.index(), "the slot freed first is reused first");
    }

    fn close(t: &mut PfdTable, p: Pfd) {
        t.slot_mut(p).unwrap().state = SlotState::Closing {
            close_submitted: true,
        };
        t.free(p);
    }

    #[test]
    fn slot_is_retired_when_its_generations_run_out() {
        let mut t = PfdTable::default();
        let a = t.insert(1, FdKind::Other);
        t.slots[a.index() as usize].generation = u32::MAX;
        let last = Pfd::new(a.index(), u32::MAX);
        close(&mut t, last);
        assert_eq!(t.retired(), 1);
        // The index is not handed out again, with any generation.
        let b = t.insert(2, FdKind::Other);
        assert_ne!(b.index(), a.index());
        assert!(t.get(last).is_err());
        assert!(t.get(Pfd::new(a.index(), 0)).is_err());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn by_index_matches_all_32_generation_bits() {
        let mut t = PfdTable::default();
        let a = t.insert(1, FdKind::Other);
        t.slots[a.index() as usize].generation = 0x8000_0005;
        let p = Pfd::new(a.index(), 0x8000_0005);
        assert_eq!(t.by_index(p.index(), 0x8000_0005), Some(p));
        // The old 31-bit match would have accepted this one.
        assert_eq!(t.by_index(p.index(), 0x0000_0005), None);
    }

    #[test]
    fn u64_round_trip() {
        let p = Pfd::new(7, 0xdead_beef);
        assert_eq!(Pfd::from_u64(p.to_u64()), p);
    }
}
