//! The provided-buffer ring used by multishot receive.
//!
//! One ring of `entries` buffers of `buf_size` bytes each is registered with
//! the kernel. Every receive completion hands the bytes it got to the layer
//! above as a [`RecvBuf`]; an idle connection holds no read buffer at all.
//!
//! Where the kernel supports it (Linux 6.12, `IOU_PBUF_RING_INC`) the ring
//! is *incremental*: a receive takes only the bytes it needs from the buffer
//! at the ring's head, and the next receive (of any connection) continues
//! in the same buffer after them. Large buffers then cost nothing for small
//! messages, and a 16 KiB WebSocket message arrives in one completion
//! instead of four. A buffer goes back to the tail once the kernel has
//! moved past it (a completion without `IORING_CQE_F_BUF_MORE`) *and* every
//! `RecvBuf` cut from it is dropped. Without the feature every completion
//! takes a whole buffer, as before 6.12. The pool is faulted in
//! when it is created (see [`Mapping::new`]): its memory is resident from
//! the start, a fixed cost of the event loop that does not grow with
//! connections, and the receive path never takes a page fault.
//!
//! Ownership: a buffer's bytes are either *the kernel's* (in the ring, or
//! past the part consumed so far of the buffer the kernel is filling: it
//! may write them at any time and user space never reads them) or *held* by
//! exactly one `RecvBuf` (a range a completion reported; the kernel never
//! writes a consumed range again until the whole buffer is recycled, which
//! waits for every holder). The memory
//! of both the ring and the buffers is a private mapping owned by an `Rc`, so
//! a `RecvBuf` kept after the event manager is gone still points at mapped
//! memory.

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use crate::sys::Mapping;
use crate::Error;

struct Inner {
    /// `entries` × `io_uring_buf` (16 bytes); shared with the kernel.
    ring: Mapping,
    /// `entries` × `buf_size` bytes of buffer memory.
    bufs: Mapping,
    mask: u16,
    buf_size: u32,
    /// Our copy of the tail; published to the kernel after each recycle.
    tail: Cell<u16>,
    /// Buffers the kernel can still receive into (in the ring, including one
    /// it is part-way through).
    available: Cell<u32>,
    /// Per buffer id: how far the kernel has filled it and who holds it.
    state: Box<[BufState]>,
}

#[derive(Default)]
struct BufState {
    /// Bytes of this buffer consumed by completions so far (the next
    /// completion's data starts here).
    consumed: Cell<u32>,
    /// Live `RecvBuf`s cut from this buffer.
    holders: Cell<u32>,
    /// The kernel has moved past this buffer: it is out of the ring, and
    /// goes back when the last holder drops.
    retired: Cell<bool>,
}

impl Inner {
    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        // SAFETY: `bid < entries`, so the offset stays inside `bufs`.
        unsafe {
            self.bufs
                .as_ptr()
                .add(bid as usize * self.buf_size as usize)
        }
    }

    /// Drops one holder of `bid`; a retired buffer with no holder left goes
    /// back to the ring.
    fn release(&self, bid: u16) {
        let st = &self.state[bid as usize];
        st.holders.set(st.holders.get() - 1);
        if st.holders.get() == 0 && st.retired.get() {
            st.retired.set(false);
            st.consumed.set(0);
            self.push(bid);
        }
    }

    /// Puts buffer `bid` back at the tail and publishes the new tail.
    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        let entries = self.ring.as_ptr().cast::<RingBuf>();
        // SAFETY: `tail & mask` < entries, so the entry is inside the ring
        // mapping. The kernel only reads entries between its head and the
        // published tail; this one is past the published tail, so we are its
        // only writer. The fields are written through raw pointers, one by
        // one, and never through a reference to the entry: entry 0's `resv`
        // is the shared tail, which the kernel may read at any time, so no
        // `&mut` may cover it. `resv` itself is left alone here.
        unsafe {
            let e = entries.add((tail & self.mask) as usize);
            std::ptr::addr_of_mut!((*e).addr).write(self.buf_ptr(bid) as u64);
            std::ptr::addr_of_mut!((*e).len).write(self.buf_size);
            std::ptr::addr_of_mut!((*e).bid).write(bid);
        }
        let new_tail = tail.wrapping_add(1);
        self.tail.set(new_tail);
        // SAFETY: the tail lives in entry 0's `resv` field (offset 14), which
        // is 2-byte aligned inside the page-aligned ring mapping; the kernel
        // reads it with acquire semantics, so the release store publishes the
        // entry written above. Only atomic accesses touch it.
        unsafe {
            let tail_ptr = std::ptr::addr_of_mut!((*entries).resv);
            AtomicU16::from_ptr(tail_ptr).store(new_tail, Ordering::Release);
        }
        self.available.set(self.available.get() + 1);
    }
}

/// One entry of the buffer ring as the kernel lays it out (`struct
/// io_uring_buf` in `<linux/io_uring.h>`); in entry 0, `resv` is the ring's
/// tail (`struct io_uring_buf_ring`).
#[repr(C)]
struct RingBuf {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RingBuf>() == std::mem::size_of::<BufRingEntry>());
const _: () = assert!(std::mem::offset_of!(RingBuf, resv) == 14);

/// The registered provided-buffer ring (one buffer group).
pub(crate) struct BufRing {
    inner: Rc<Inner>,
    entries: u16,
    pub(crate) bgid: u16,
}

impl fmt::Debug for BufRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRing")
            .field("entries", &self.entries)
            .field("buf_size", &self.inner.buf_size)
            .field("available", &self.inner.available.get())
            .finish()
    }
}

impl BufRing {
    /// Allocates the ring and fills it with every buffer. `entries` must be a
    /// power of two ≤ 32768. Registration is the caller's job (it owns the
    /// io_uring).
    pub(crate) fn new(entries: u16, buf_size: u32, bgid: u16) -> Result<BufRing, Error> {
        assert!(entries.is_power_of_two() && entries <= 32768);
        assert!(buf_size > 0);
        let ring = Mapping::new(entries as usize * std::mem::size_of::<BufRingEntry>())?;
        let bufs = Mapping::new(entries as usize * buf_size as usize)?;
        let inner = Rc::new(Inner {
            ring,
            bufs,
            mask: entries - 1,
            buf_size,
            tail: Cell::new(0),
            available: Cell::new(0),
            state: (0..entries).map(|_| BufState::default()).collect(),
        });
        for bid in 0..entries {
            inner.push(bid);
        }
        Ok(BufRing {
            inner,
            entries,
            bgid,
        })
    }

    pub(crate) fn ring_addr(&self) -> u64 {
        self.inner.ring.as_ptr() as u64
    }

    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }

    /// Buffers the kernel can currently pick.
    pub(crate) fn available(&self) -> u32 {
        self.inner.available.get()
    }

    /// Takes the `len` bytes a completion reported in buffer `bid`, after
    /// those earlier completions took from it. `more`: the completion had
    /// `IORING_CQE_F_BUF_MORE` (an incremental ring keeps filling this
    /// buffer); otherwise the kernel is done with it.
    pub(crate) fn take(&self, bid: u16, len: u32, more: bool) -> RecvBuf {
        assert!(bid < self.entries);
        let st = &self.inner.state[bid as usize];
        let offset = st.consumed.get();
        assert!(
            !st.retired.get() && len <= self.inner.buf_size - offset,
            "completion outside buffer {bid}"
        );
        st.consumed.set(offset + len);
        st.holders.set(st.holders.get() + 1);
        if !more {
            st.retired.set(true);
            self.inner.available.set(self.inner.available.get() - 1);
        }
        RecvBuf {
            inner: self.inner.clone(),
            bid,
            offset,
            len,
        }
    }
}

/// Bytes received by a multishot receive, in a buffer borrowed from the
/// provided-buffer ring. Dropping it returns the buffer to the ring; keep it
/// only as long as needed (holding many starves receives, which then pause
/// until buffers come back).
pub struct RecvBuf {
    inner: Rc<Inner>,
    bid: u16,
    offset: u32,
    len: u32,
}

impl RecvBuf {
    fn ptr(&self) -> *mut u8 {
        // SAFETY: `offset + len ≤ buf_size` (checked in `take`), so the
        // pointer stays inside buffer `bid`.
        unsafe { self.inner.buf_ptr(self.bid).add(self.offset as usize) }
    }

    /// The received bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: this `RecvBuf` is the only holder of bytes
        // `offset..offset + len` of buffer `bid`: the kernel wrote them before
        // posting the completion that created us, and does not write them
        // again before the buffer is recycled, which waits for our `drop`
        // (the kernel may still fill the buffer *after* them: disjoint
        // memory).
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len as usize) }
    }
    /// The received bytes, writable in place (e.g. to unmask a WebSocket
    /// payload without copying it).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_slice`; `&mut self` makes this the only live
        // reference to these bytes.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len as usize) }
    }

    /// The buffer id within the ring (diagnostics).
    pub fn buffer_id(&self) -> u16 {
        self.bid
    }
}

impl Deref for RecvBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for RecvBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for RecvBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBuf")
            .field("bid", &self.bid)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        self.inner.release(self.bid);
    }
}
