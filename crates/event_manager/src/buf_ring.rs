//! The provided-buffer ring used by multishot receive.
//!
//! One ring of `entries` buffers of `buf_size` bytes each is registered with
//! the kernel. A multishot receive takes a buffer out of the ring for every
//! completion; the completion hands it to the layer above as a [`RecvBuf`],
//! and dropping that `RecvBuf` puts the buffer back at the ring's tail. An idle
//! connection therefore holds no read buffer at all. The pool is faulted in
//! when it is created (see [`Mapping::new`]): its memory is resident from
//! the start, a fixed cost of the event loop that does not grow with
//! connections, and the receive path never takes a page fault.
//!
//! Ownership: a buffer id is either *in the ring* (the kernel may write into
//! it at any time, user space never reads it) or *held* by exactly one
//! `RecvBuf` (the kernel will not touch it until it is recycled). The memory
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
    /// Buffers currently in the ring (not held by any `RecvBuf`).
    available: Cell<u32>,
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

    /// Puts buffer `bid` back at the tail and publishes the new tail.
    fn push(&self, bid: u16) {
        let tail = self.tail.get();
        let entries = self.ring.as_ptr().cast::<BufRingEntry>();
        // SAFETY: `tail & mask` < entries, so the entry is inside the ring
        // mapping. The kernel only reads entries between its head and the
        // published tail; this one is past the published tail, so we are its
        // only writer. The setters leave the entry's `resv` field alone, which
        // for entry 0 is the shared tail.
        unsafe {
            let e = &mut *entries.add((tail & self.mask) as usize);
            e.set_addr(self.buf_ptr(bid) as u64);
            e.set_len(self.buf_size);
            e.set_bid(bid);
        }
        let new_tail = tail.wrapping_add(1);
        self.tail.set(new_tail);
        // SAFETY: the tail lives in entry 0's `resv` field (offset 14), which
        // is 2-byte aligned inside the page-aligned ring mapping; the kernel
        // reads it with acquire semantics, so the release store publishes the
        // entry written above.
        unsafe {
            let tail_ptr = BufRingEntry::tail(entries).cast_mut();
            AtomicU16::from_ptr(tail_ptr).store(new_tail, Ordering::Release);
        }
        self.available.set(self.available.get() + 1);
    }
}

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

    /// Takes ownership of buffer `bid`, which a completion reported as
    /// filled with `len` bytes.
    pub(crate) fn take(&self, bid: u16, len: u32) -> RecvBuf {
        assert!(bid < self.entries && len <= self.inner.buf_size);
        self.inner.available.set(self.inner.available.get() - 1);
        RecvBuf {
            inner: self.inner.clone(),
            bid,
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
    len: u32,
}

impl RecvBuf {
    /// The received bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: this `RecvBuf` is the only holder of buffer `bid`: the
        // kernel took it out of the ring for the completion that created us
        // and it is not pushed back until `drop`. `len` ≤ buf_size bytes were
        // written by the kernel before the completion was posted.
        unsafe { std::slice::from_raw_parts(self.inner.buf_ptr(self.bid), self.len as usize) }
    }
    /// The received bytes, writable in place (e.g. to unmask a WebSocket
    /// payload without copying it).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as for `as_slice`; `&mut self` makes this the only live
        // reference to the buffer's bytes.
        unsafe { std::slice::from_raw_parts_mut(self.inner.buf_ptr(self.bid), self.len as usize) }
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
            .field("len", &self.len)
            .finish()
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        self.inner.push(self.bid);
    }
}
