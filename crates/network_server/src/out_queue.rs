//! A connection's outgoing queue.
//!
//! A stream socket must have at most one write in flight: io_uring does not
//! order two sends on the same socket, and the event manager resubmits short
//! writes. So every write of a connection goes through this queue; whatever
//! has accumulated while a write was in flight leaves in the next single
//! `writev`. Small pieces (heads, small bodies and frames) are copied into
//! one *copy buffer* ([`OutQueue::append_with`]); larger buffers go out as
//! their own iovecs, uncopied. When a write completes, each application
//! write's buffers are handed back as one group.
//!
//! An idle connection's queue is one null pointer: the queue's state is
//! boxed on the first write and freed by the periodic sweep once nothing is
//! queued or in flight, so busy connections keep theirs between writes.

use std::collections::VecDeque;

use event_manager::{OpId, OutBuf};

use crate::timers::Tick;

/// Largest number of buffers per `writev`.
const MAX_IOVECS: usize = 512;

/// Largest batch vector (in buffers) a queue keeps for its next batch.
const SPARE_BATCH_MAX: usize = 64;

/// [`OutQueue::append_with`] appends to a queued buffer of the server's
/// while it stays within this size.
const COALESCE_LIMIT: usize = 16 * 1024;

/// The size of one queued item (see [`OutQueue::footprint`]).
pub(crate) const ITEM_SIZE: usize = std::mem::size_of::<Item>();

/// Who gets a queued buffer back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The server's own bytes (heads, chunk framing); dropped after writing.
    Server,
    /// An application write; `last` marks the final buffer of that write,
    /// where its write-complete callback fires.
    App { last: bool },
}

#[derive(Debug)]
struct Item {
    buf: OutBuf,
    owner: Owner,
    /// Given back without being written (e.g. the body of a HEAD answer).
    skip: bool,
    /// Made by [`OutQueue::append_with`]: more may be appended.
    copied: bool,
    /// Bytes `start..end` of the broadcast chunk being filled (see
    /// [`OutQueue::push_shared`]); `buf` is an empty placeholder until
    /// [`OutQueue::resolve_shared`] puts the sealed chunk's slice there.
    shared: Option<(u32, u32)>,
}

impl Item {
    /// Bytes this item puts on the wire (unless skipped).
    fn len(&self) -> usize {
        match self.shared {
            Some((start, end)) => (end - start) as usize,
            None => self.buf.len(),
        }
    }
}

/// One application write's buffers, handed back after the write.
pub(crate) type AppWrite = Vec<OutBuf>;

/// A connection's output queue: `None` until the first write and again
/// after [`OutQueue::release_if_idle`].
#[derive(Debug, Default)]
pub(crate) struct OutQueue(Option<Box<Queue>>);

impl OutQueue {
    pub(crate) fn push(&mut self, buf: OutBuf, owner: Owner, skip: bool) {
        self.0.get_or_insert_default().push(buf, owner, skip);
    }

    /// Queues a copy of `bytes` (the server's own, e.g. a small broadcast
    /// frame) with [`OutQueue::append_with`]. Many small frames queued
    /// behind a write in flight then leave as one buffer: one iovec and no
    /// per-frame reference count, for the price of copying a few bytes.
    pub(crate) fn push_copy(&mut self, bytes: &[u8]) {
        let r = self.append_with(bytes.len(), |v| {
            v.extend_from_slice(bytes);
            Ok::<(), std::convert::Infallible>(())
        });
        debug_assert!(r.is_ok());
    }

    /// Appends what `write` puts into a buffer of the server's (about
    /// `size` bytes): the last buffer queued for writing, if it is such a
    /// copy with room left, else a new one at the end. Skipped buffers
    /// queued after it do not count: they put nothing on the wire, so bytes
    /// appended before them still go out in order (their write-complete
    /// callback waits for the batch that carries them). If `write` fails,
    /// whatever it wrote is taken back and nothing is queued.
    pub(crate) fn append_with<E>(
        &mut self,
        size: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let q = self.0.get_or_insert_default();
        let reuse = q.last_unskipped().filter(|&t| {
            matches!(&q.queued[t], Item { buf: OutBuf::Vec(v), copied: true, .. }
                if v.len() + size <= COALESCE_LIMIT)
        });
        let (index, created) = match reuse {
            Some(t) => (t, false),
            None => {
                q.queued.push_back(Item {
                    buf: OutBuf::Vec(Vec::with_capacity(size.max(1024))),
                    owner: Owner::Server,
                    skip: false,
                    copied: true,
                    shared: None,
                });
                (q.queued.len() - 1, true)
            }
        };
        let OutBuf::Vec(v) = &mut q.queued[index].buf else {
            unreachable!("a copy is a Vec")
        };
        let start = v.len();
        match write(v) {
            Ok(()) => {
                q.bytes += v.len() - start;
                if created {
                    q.tail_skipped = 0;
                    q.back_range_end = None;
                }
                Ok(())
            }
            Err(e) => {
                v.truncate(start);
                if created {
                    q.queued.pop_back();
                }
                Err(e)
            }
        }
    }

    /// Queues bytes `start..end` of the server's broadcast chunk being
    /// filled (small broadcast frames, see `Core::queue_shared`): they
    /// extend the range queued last when it ends at `start` (consecutive
    /// frames of one chunk leave as one buffer, as a copy would, without
    /// copying), else become a new item. Returns whether a new item was
    /// queued, which [`OutQueue::resolve_shared`] must then be called for
    /// when the chunk is sealed, before anything is written.
    pub(crate) fn push_shared(&mut self, start: u32, end: u32) -> bool {
        let q = self.0.get_or_insert_default();
        q.bytes += (end - start) as usize;
        if q.back_range_end == Some(start) {
            // The back item is this chunk's range ending here (the mirror
            // says so without loading the item: with 1,000 recipients per
            // message that load missed the cache for each of them).
            if let Some(Item {
                shared: Some((_, last_end)),
                ..
            }) = q.queued.back_mut()
            {
                *last_end = end;
                q.back_range_end = Some(end);
                return false;
            }
            debug_assert!(false, "back_range_end without a range at the back");
        }
        q.queued.push_back(Item {
            buf: OutBuf::Static(&[]),
            owner: Owner::Server,
            skip: false,
            copied: false,
            shared: Some((start, end)),
        });
        q.tail_skipped = 0;
        q.back_range_end = Some(end);
        q.unresolved += 1;
        true
    }

    /// The broadcast chunk is sealed as `chunk`: every range queued from it
    /// becomes its slice (one reference each).
    ///
    /// Only the items queued since the last seal can hold a range, and they
    /// are at the back (whatever is put back at the front is already
    /// written bytes): the walk goes from the back and stops once it has
    /// resolved as many as were queued, so a slow client's long queue is
    /// not walked on every flush. (The count can only be too high — items
    /// dropped meanwhile — which makes the walk go to the front, never too
    /// low.)
    pub(crate) fn resolve_shared(&mut self, chunk: &bytes::Bytes) {
        let Some(q) = self.0.as_mut() else { return };
        q.back_range_end = None;
        let mut left = std::mem::take(&mut q.unresolved);
        if left == 0 {
            return;
        }
        for item in q.queued.iter_mut().rev() {
            if let Some((start, end)) = item.shared.take() {
                item.buf = OutBuf::Bytes(chunk.slice(start as usize..end as usize));
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
        debug_assert!(
            q.queued.iter().all(|i| i.shared.is_none()),
            "a range left unresolved"
        );
    }

    /// Bytes queued or in flight (what backpressure limits).
    pub(crate) fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.bytes)
    }

    /// What the queue holds against a WebSocket's slow-client limit: its
    /// bytes plus the size of each item not yet handed to the kernel. A
    /// broadcast range costs an item per chunk however small its frame, so
    /// a stalled subscriber of one small frame per chunk (a publisher that
    /// sends a message per loop turn) held more memory in items than the
    /// bytes counted: 1,000 of them peaked at 4.1 GiB of RSS with a 4 MiB
    /// limit each (`bench/stalled_subscribers.sh`). The frames' bytes are
    /// shared with every other subscriber, the items are this one's own.
    pub(crate) fn footprint(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |q| q.bytes + q.queued.len() * ITEM_SIZE)
    }

    /// Frees the queue when nothing is queued, in flight, partly completed or
    /// discarded, so an idle connection holds no output memory (called from
    /// the periodic sweep, not per write, so busy connections keep it).
    /// Returns whether it freed anything.
    pub(crate) fn release_if_idle(&mut self) -> bool {
        let idle = self
            .0
            .as_ref()
            .is_some_and(|q| q.is_idle() && q.partial.is_empty() && q.discarded.is_empty());
        if idle {
            self.0 = None;
        }
        idle
    }

    /// Queue and flight both empty.
    pub(crate) fn is_idle(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_idle())
    }

    /// See [`Queue::take_batch`].
    pub(crate) fn take_batch(&mut self) -> Option<Vec<OutBuf>> {
        self.0.as_mut()?.take_batch()
    }

    /// The batch taken last was submitted as write `op` at `now`: the
    /// write-progress watch starts.
    pub(crate) fn watch_write(&mut self, op: OpId, now: Tick) {
        if let Some(q) = self.0.as_mut() {
            q.watch = Some(WriteWatch {
                op,
                since: now,
                written: 0,
            });
        }
    }

    /// A write that does not go through the queue — a file transfer's
    /// splice from its pipe into the socket — was submitted as `op`: until
    /// [`OutQueue::end_external`] the queue counts as busy (nothing else is
    /// written, a close waits for it, an export is refused) and the
    /// write-progress watch follows `op`, with `since` as the time of the
    /// last progress.
    pub(crate) fn begin_external(&mut self, op: OpId, since: Tick) {
        let q = self.0.get_or_insert_default();
        debug_assert!(!q.in_flight, "an external write beside a batch");
        q.in_flight = true;
        q.external = true;
        q.watch = Some(WriteWatch {
            op,
            since,
            written: 0,
        });
    }

    /// The external write of [`OutQueue::begin_external`] completed.
    pub(crate) fn end_external(&mut self) {
        if let Some(q) = self.0.as_mut() {
            if q.external {
                q.external = false;
                q.in_flight = false;
                q.watch = None;
            }
        }
    }

    /// The write in flight, when it last made progress and how many bytes
    /// it had written then.
    pub(crate) fn write_watch(&mut self) -> Option<&mut WriteWatch> {
        self.0.as_mut()?.watch.as_mut()
    }

    /// See [`Queue::complete`].
    pub(crate) fn complete(&mut self, written: Vec<OutBuf>) -> Vec<AppWrite> {
        match self.0.as_mut() {
            Some(q) => q.complete(written),
            None => Vec::new(),
        }
    }

    /// See [`Queue::complete_partial`].
    pub(crate) fn complete_partial(&mut self, bufs: Vec<OutBuf>, written: usize) -> Vec<AppWrite> {
        match self.0.as_mut() {
            Some(q) => q.complete_partial(bufs, written),
            None => Vec::new(),
        }
    }

    /// The queue as plain data, for a handover (`None` while a write is in
    /// flight: a quiesced connection has none). Every buffer's bytes are
    /// copied; application buffers keep their place and their owner, so
    /// the importing side hands each back through its write-complete
    /// callback exactly when this side would have.
    pub(crate) fn export(&self) -> Option<QueueState> {
        let Some(q) = self.0.as_ref() else {
            return Some(QueueState::default());
        };
        if q.in_flight {
            return None;
        }
        // `Server::export` seals the broadcast chunk first; an unsealed
        // range has no bytes here, so refuse rather than lose them.
        if q.queued.iter().any(|i| i.shared.is_some()) {
            debug_assert!(false, "broadcast chunk not sealed before an export");
            return None;
        }
        let item = |i: &Item| ItemState {
            bytes: i.buf.as_slice().to_vec(),
            empty_static: matches!(i.buf, OutBuf::Static(b) if b.is_empty()),
            app_last: match i.owner {
                Owner::Server => None,
                Owner::App { last } => Some(last),
            },
            skip: i.skip,
        };
        Some(QueueState {
            queued: q.queued.iter().map(item).collect(),
            partial: q
                .partial
                .iter()
                .map(|b| serde_bytes::ByteBuf::from(b.as_slice().to_vec()))
                .collect(),
            discarded: q.discarded.iter().map(item).collect(),
        })
    }

    /// The inverse of [`OutQueue::export`].
    pub(crate) fn import(state: QueueState) -> OutQueue {
        if state.queued.is_empty() && state.partial.is_empty() && state.discarded.is_empty() {
            return OutQueue(None);
        }
        let item = |i: ItemState| Item {
            // An empty static buffer stays one: it is how the application
            // tells `SEND_FILE_DONE` from its own writes.
            buf: if i.empty_static && i.bytes.is_empty() {
                OutBuf::Static(crate::SEND_FILE_DONE)
            } else {
                OutBuf::Vec(i.bytes)
            },
            owner: match i.app_last {
                None => Owner::Server,
                Some(last) => Owner::App { last },
            },
            skip: i.skip,
            copied: false,
            shared: None,
        };
        let queued: VecDeque<Item> = state.queued.into_iter().map(item).collect();
        let bytes = queued.iter().filter(|i| !i.skip).map(|i| i.buf.len()).sum();
        let tail_skipped = count_tail_skipped(&queued);
        OutQueue(Some(Box::new(Queue {
            queued,
            inflight: Vec::new(),
            in_flight: false,
            external: false,
            partial: state
                .partial
                .into_iter()
                .map(|b| OutBuf::Vec(b.into_vec()))
                .collect(),
            discarded: state.discarded.into_iter().map(item).collect(),
            bytes,
            watch: None,
            // An import holds no range (an export refuses one).
            unresolved: 0,
            tail_skipped,
            back_range_end: None,
            spare_batch: Vec::new(),
        })))
    }

    /// See [`Queue::discard_queued`].
    pub(crate) fn discard_queued(&mut self) {
        if let Some(q) = self.0.as_mut() {
            q.discard_queued();
        }
    }

    /// See [`Queue::drain_failed`]; the queue is freed afterwards.
    pub(crate) fn drain_failed(&mut self) -> Vec<AppWrite> {
        match self.0.take() {
            Some(mut q) => q.drain_failed(),
            None => Vec::new(),
        }
    }
}

/// One queued buffer as plain data (see [`OutQueue::export`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ItemState {
    #[serde(with = "serde_bytes")]
    pub(crate) bytes: Vec<u8>,
    /// An empty `OutBuf::Static` (e.g. [`crate::SEND_FILE_DONE`]).
    pub(crate) empty_static: bool,
    /// `None`: the server's own; `Some(last)`: an application write's.
    pub(crate) app_last: Option<bool>,
    pub(crate) skip: bool,
}

/// A connection's output queue as plain data (see [`OutQueue::export`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct QueueState {
    pub(crate) queued: Vec<ItemState>,
    /// Written buffers of an application write not yet complete.
    pub(crate) partial: Vec<serde_bytes::ByteBuf>,
    pub(crate) discarded: Vec<ItemState>,
}

/// The write in flight, for the write-progress timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteWatch {
    pub(crate) op: OpId,
    /// When the write was submitted or last seen to make progress.
    pub(crate) since: Tick,
    /// Bytes it had written then.
    pub(crate) written: usize,
}

#[derive(Debug, Default)]
struct Queue {
    queued: VecDeque<Item>,
    /// Metadata of the write in flight: for each item, its owner and, if it
    /// was skipped, the buffer itself (the written ones come back from the
    /// event manager in order).
    inflight: Vec<(Owner, Option<OutBuf>)>,
    in_flight: bool,
    /// The write in flight is not a batch of this queue (see
    /// [`OutQueue::begin_external`]).
    external: bool,
    /// Buffers of an application write whose last buffer has not been
    /// written yet (a write larger than one batch).
    partial: AppWrite,
    /// Application items dropped by [`OutQueue::discard_queued`].
    discarded: VecDeque<Item>,
    /// Bytes queued or in flight (what backpressure limits).
    pub(crate) bytes: usize,
    /// The write in flight (see [`OutQueue::watch_write`]).
    watch: Option<WriteWatch>,
    /// Items queued by [`OutQueue::push_shared`] since the last
    /// [`OutQueue::resolve_shared`] (at least as many as hold a range).
    unresolved: usize,
    /// How many items at the back of `queued` are skipped: where the last
    /// buffer that goes on the wire is, without walking back over them.
    /// Every answer to a pipelined request queues its (copied, so skipped)
    /// body behind the copy buffer its head went into; finding that buffer
    /// by a walk cost each answer a step per earlier answer of its batch.
    tail_skipped: usize,
    /// `Some(end)` only while the back item of `queued` is a broadcast
    /// range (not skipped) ending at `end`: what [`OutQueue::push_shared`]
    /// needs to know to extend it, kept beside the queue's other fields so
    /// that a recipient's frames of one chunk merge without reading the
    /// item. `None` is always safe (the next range becomes a new item).
    back_range_end: Option<u32>,
    /// The vector of the last completed batch, empty, for the next one.
    spare_batch: Vec<OutBuf>,
}

/// Skipped items at the back of `queued` (see [`Queue::tail_skipped`]),
/// counted: for the rare changes that are not a push at the back.
fn count_tail_skipped(queued: &VecDeque<Item>) -> usize {
    queued.iter().rev().take_while(|i| i.skip).count()
}

impl Queue {
    /// Index of the last queued item that is not skipped.
    fn last_unskipped(&self) -> Option<usize> {
        debug_assert_eq!(self.tail_skipped, count_tail_skipped(&self.queued));
        (self.queued.len() - self.tail_skipped).checked_sub(1)
    }

    fn push(&mut self, buf: OutBuf, owner: Owner, skip: bool) {
        self.back_range_end = None;
        if skip {
            self.tail_skipped += 1;
        } else {
            self.bytes += buf.len();
            self.tail_skipped = 0;
        }
        self.queued.push_back(Item {
            buf,
            owner,
            skip,
            copied: false,
            shared: None,
        });
    }

    /// Queue and flight both empty.
    fn is_idle(&self) -> bool {
        !self.in_flight && self.queued.is_empty()
    }

    /// Takes the next batch to write, if no write is in flight and something
    /// is queued. Returns the buffers to hand to `writev`; they may be empty
    /// (everything skipped), in which case the caller completes the batch
    /// at once with [`Queue::complete`].
    fn take_batch(&mut self) -> Option<Vec<OutBuf>> {
        if self.in_flight || self.queued.is_empty() {
            return None;
        }
        let mut bufs = std::mem::take(&mut self.spare_batch);
        bufs.reserve(self.queued.len().min(MAX_IOVECS));
        while bufs.len() < MAX_IOVECS {
            let Some(item) = self.queued.pop_front() else {
                break;
            };
            debug_assert!(
                item.shared.is_none(),
                "broadcast chunk sealed before a write"
            );
            if item.skip {
                self.inflight.push((item.owner, Some(item.buf)));
            } else {
                self.inflight.push((item.owner, None));
                bufs.push(item.buf);
            }
        }
        self.tail_skipped = self.tail_skipped.min(self.queued.len());
        if self.queued.is_empty() {
            self.back_range_end = None;
        }
        self.in_flight = true;
        Some(bufs)
    }

    /// The batch in flight finished; `written` are the buffers the event
    /// manager gave back (in order). Returns the application writes whose
    /// last buffer was in this batch, each with all its buffers.
    fn complete(&mut self, mut written: Vec<OutBuf>) -> Vec<AppWrite> {
        debug_assert!(self.in_flight);
        self.in_flight = false;
        self.watch = None;
        let mut done = Vec::new();
        let mut written_bufs = written.drain(..);
        for (owner, skipped) in self.inflight.drain(..) {
            let (buf, counted) = match skipped {
                Some(b) => (b, false),
                None => match written_bufs.next() {
                    Some(b) => (b, true),
                    None => break,
                },
            };
            if counted {
                self.bytes = self.bytes.saturating_sub(buf.len());
            }
            if let Owner::App { last } = owner {
                if last && self.partial.is_empty() {
                    // A write of one buffer (an answer's body): its own
                    // vector, of the size it needs.
                    done.push(vec![buf]);
                } else {
                    self.partial.push(buf);
                    if last {
                        done.push(std::mem::take(&mut self.partial));
                    }
                }
            }
        }
        drop(written_bufs);
        // The batch's vector (emptied: the buffers went back or were
        // dropped) serves the next batch, one allocation less per write;
        // a large one is not kept (a busy connection's queue lives on).
        if written.capacity() <= SPARE_BATCH_MAX {
            self.spare_batch = written;
        }
        done
    }

    /// The batch in flight was cut short after `written` bytes (a write
    /// cancelled for a quiesce; `bufs` are its buffers as the event manager
    /// gave them back). What was written completes as in
    /// [`Queue::complete`]; the rest goes back to the front of the queue in
    /// order. A buffer cut in the middle is requeued as a copy of its
    /// unwritten tail followed by the original, skipped: an application
    /// buffer still comes back through its write-complete callback, after
    /// its last byte has been written.
    fn complete_partial(&mut self, bufs: Vec<OutBuf>, written: usize) -> Vec<AppWrite> {
        debug_assert!(self.in_flight);
        self.in_flight = false;
        self.watch = None;
        let mut bufs = bufs.into_iter();
        let mut left = written;
        let mut done = Vec::new();
        let mut requeue: Vec<Item> = Vec::new();
        let mut finish = |partial: &mut AppWrite, owner: Owner, buf: OutBuf| {
            if let Owner::App { last } = owner {
                partial.push(buf);
                if last {
                    done.push(std::mem::take(partial));
                }
            }
        };
        for (owner, skipped) in std::mem::take(&mut self.inflight) {
            let (buf, skip) = match skipped {
                Some(b) => (b, true),
                None => match bufs.next() {
                    Some(b) => (b, false),
                    None => break,
                },
            };
            let item = |buf, skip| Item {
                buf,
                owner,
                skip,
                copied: false,
                shared: None,
            };
            if !requeue.is_empty() {
                requeue.push(item(buf, skip));
            } else if skip || left >= buf.len() {
                if !skip {
                    left -= buf.len();
                    self.bytes = self.bytes.saturating_sub(buf.len());
                }
                finish(&mut self.partial, owner, buf);
            } else {
                // The cut: `left` bytes of this buffer went out.
                self.bytes = self.bytes.saturating_sub(left);
                requeue.push(Item {
                    buf: OutBuf::Vec(buf.as_slice()[left..].to_vec()),
                    owner: Owner::Server,
                    skip: false,
                    copied: false,
                    shared: None,
                });
                left = 0;
                if matches!(owner, Owner::App { .. }) {
                    requeue.push(item(buf, true));
                }
            }
        }
        for item in requeue.into_iter().rev() {
            self.queued.push_front(item);
        }
        self.tail_skipped = count_tail_skipped(&self.queued);
        self.back_range_end = None;
        done
    }

    /// Drops everything queued but not yet handed to the kernel (the write
    /// in flight is left alone): the server's own buffers are freed, the
    /// application's are kept aside and come back, failed, from
    /// [`Queue::drain_failed`] when the connection closes. Used to put a
    /// Close frame right behind the write in flight for a slow reader.
    fn discard_queued(&mut self) {
        self.tail_skipped = 0;
        self.back_range_end = None;
        for item in self.queued.drain(..) {
            if !item.skip {
                self.bytes = self.bytes.saturating_sub(item.len());
            }
            if let Owner::App { .. } = item.owner {
                self.discarded.push_back(item);
            }
        }
    }

    /// Everything queued or in flight is abandoned (the connection failed):
    /// returns the application writes not yet completed, each with the
    /// buffers still held here. Buffers of the write in flight come back
    /// through [`Queue::complete`] first; call this after it.
    fn drain_failed(&mut self) -> Vec<AppWrite> {
        let mut done = Vec::new();
        let discarded = std::mem::take(&mut self.discarded);
        self.tail_skipped = 0;
        self.back_range_end = None;
        for item in discarded.into_iter().chain(self.queued.drain(..)) {
            if let Owner::App { last } = item.owner {
                self.partial.push(item.buf);
                if last {
                    done.push(std::mem::take(&mut self.partial));
                }
            }
        }
        if !self.partial.is_empty() {
            done.push(std::mem::take(&mut self.partial));
        }
        self.bytes = 0;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> OutBuf {
        OutBuf::Static(s.as_bytes())
    }

    #[test]
    fn groups_come_back_per_application_write() {
        let mut q = OutQueue::default();
        q.push(b("head"), Owner::Server, false);
        q.push(b("body1"), Owner::App { last: false }, false);
        q.push(b("body2"), Owner::App { last: true }, false);
        q.push(b("skipped"), Owner::App { last: true }, true);
        assert_eq!(q.bytes(), 14);
        let batch = q.take_batch().unwrap();
        assert_eq!(batch.len(), 3);
        assert!(q.take_batch().is_none(), "one write in flight at a time");
        q.push(b("later"), Owner::App { last: true }, false);
        let done = q.complete(batch);
        assert_eq!(done.len(), 2);
        assert_eq!(done[0], vec![b("body1"), b("body2")]);
        assert_eq!(done[1], vec![b("skipped")]);
        assert_eq!(q.bytes(), 5);
        let batch = q.take_batch().unwrap();
        assert_eq!(batch, vec![b("later")]);
    }

    #[test]
    fn footprint_counts_the_bytes_and_each_item_waiting() {
        let mut q = OutQueue::default();
        assert_eq!(q.footprint(), 0);
        // One small frame per chunk: a range that cannot merge with the
        // last one is an item of its own, whose size outweighs its bytes.
        for i in 0..100u32 {
            assert!(q.push_shared(i * 10, i * 10 + 2));
        }
        assert_eq!(q.bytes(), 200);
        assert_eq!(q.footprint(), 200 + 100 * ITEM_SIZE);
        // A frame right after the last range extends it: bytes only.
        assert!(!q.push_shared(992, 1000));
        assert_eq!(q.footprint(), 208 + 100 * ITEM_SIZE);
        q.resolve_shared(&bytes::Bytes::from(vec![0u8; 1000]));
        // Handed to the kernel, the items are gone; the bytes count on
        // until the write completes.
        let batch = q.take_batch().unwrap();
        assert_eq!(q.footprint(), 208);
        let _ = q.complete(batch);
        assert_eq!(q.footprint(), 0);
    }

    #[test]
    fn idle_queue_releases_its_buffers_and_a_busy_one_keeps_them() {
        let mut q = OutQueue::default();
        q.push(b("x"), Owner::Server, false);
        let batch = q.take_batch().unwrap();
        q.push(b("y"), Owner::Server, false);
        q.release_if_idle();
        assert!(q.0.is_some(), "busy: kept");
        let _ = q.complete(batch);
        let batch = q.take_batch().unwrap();
        let _ = q.complete(batch);
        q.release_if_idle();
        assert!(q.0.is_none(), "idle: freed");
    }

    #[test]
    fn broadcast_ranges_merge_keep_their_place_and_resolve_before_writing() {
        let chunk = bytes::Bytes::from_static(b"aaabbbcccddd");
        let mut q = OutQueue::default();
        q.push_copy(b"first");
        assert!(q.push_shared(0, 3), "a new item");
        assert!(!q.push_shared(3, 6), "the next frame extends it");
        q.push_copy(b"own");
        // Not adjacent to the range queued last (the copy came between).
        assert!(q.push_shared(6, 9));
        assert!(q.push_shared(0, 3), "not where the last range ends");
        assert_eq!(q.bytes(), 5 + 6 + 3 + 3 + 3);
        q.resolve_shared(&chunk);
        let state = q.export().expect("no write in flight");
        let batch = q.take_batch().unwrap();
        let got: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
        assert_eq!(got, [&b"first"[..], b"aaabbb", b"own", b"ccc", b"aaa"]);
        assert!(q.complete(batch).is_empty(), "the server's own bytes");
        assert_eq!(q.bytes(), 0);
        // The export round-trips what the ranges resolved to.
        let mut q = OutQueue::import(state);
        let batch = q.take_batch().unwrap();
        assert_eq!(batch.iter().map(|b| b.len()).sum::<usize>(), 20);
        let _ = q.complete(batch);
        // Unresolved ranges count their bytes, also when discarded.
        assert!(q.push_shared(0, 3));
        assert_eq!(q.bytes(), 3);
        q.discard_queued();
        assert_eq!(q.bytes(), 0);
        assert!(q.is_idle());
    }

    #[test]
    fn resolving_takes_every_range_queued_since_the_last_seal_and_only_those() {
        let first = bytes::Bytes::from_static(b"0123456789");
        let mut q = OutQueue::default();
        for _ in 0..100 {
            assert!(q.push_shared(0, 1));
            q.push_copy(b"x");
        }
        q.resolve_shared(&first);
        // A later chunk: only the new range takes its bytes; a second
        // resolve (another range of this client in the same seal) is a
        // no-op; a range dropped before its seal leaves the count high,
        // which only makes the walk longer.
        let second = bytes::Bytes::from_static(b"abcdefghij");
        assert!(q.push_shared(2, 4));
        q.push_copy(b"!");
        q.resolve_shared(&second);
        q.resolve_shared(&second);
        let mut out = Vec::new();
        while let Some(batch) = q.take_batch() {
            for b in &batch {
                out.extend_from_slice(b.as_slice());
            }
            let _ = q.complete(batch);
        }
        assert_eq!(out, [b"0x".repeat(100), b"cd!".to_vec()].concat());
        assert!(q.push_shared(5, 6));
        q.discard_queued();
        assert!(q.push_shared(7, 8));
        q.resolve_shared(&second);
        let batch = q.take_batch().unwrap();
        assert_eq!(
            batch
                .iter()
                .map(|b| b.as_slice().to_vec())
                .collect::<Vec<_>>(),
            [b"h".to_vec()]
        );
        let _ = q.complete(batch);
    }

    #[test]
    fn small_copies_coalesce_behind_a_write_in_flight() {
        let mut q = OutQueue::default();
        q.push_copy(b"one");
        let batch = q.take_batch().unwrap();
        q.push_copy(b"two");
        q.push_copy(b"three");
        q.push(b("app"), Owner::App { last: true }, false);
        q.push_copy(b"four");
        assert_eq!(q.bytes(), 18);
        let _ = q.complete(batch);
        let batch = q.take_batch().unwrap();
        let got: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
        assert_eq!(
            got,
            [&b"twothree"[..], b"app", b"four"],
            "no copy into an application buffer"
        );
        let done = q.complete(batch);
        assert_eq!(done, vec![vec![b("app")]]);
        assert_eq!(q.bytes(), 0);
        // Appends go past skipped buffers, and a failed append leaves
        // nothing behind.
        q.push_copy(b"head1");
        q.push(b("body1"), Owner::App { last: true }, true);
        assert_eq!(
            q.append_with(5, |v| {
                v.extend_from_slice(b"junk");
                Err("invalid")
            }),
            Err("invalid")
        );
        q.push_copy(b"head2");
        let batch = q.take_batch().unwrap();
        let got: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
        assert_eq!(got, [&b"head1head2"[..]]);
        assert_eq!(
            q.complete(batch),
            vec![vec![b("body1")]],
            "the skipped body comes back"
        );
        // A full buffer starts another.
        let big = vec![7u8; COALESCE_LIMIT - 1];
        q.push_copy(&big);
        q.push_copy(b"xy");
        assert_eq!(q.take_batch().unwrap().len(), 2);
    }

    #[test]
    fn a_write_cut_short_requeues_exactly_the_unwritten_bytes() {
        for cut in 0..=14 {
            let mut q = OutQueue::default();
            q.push(b("head"), Owner::Server, false);
            q.push(b("body1"), Owner::App { last: false }, false);
            q.push(b("skip"), Owner::App { last: true }, true);
            q.push(b("body2"), Owner::App { last: true }, false);
            let batch = q.take_batch().unwrap();
            let mut wire: Vec<u8> = batch.iter().flat_map(|b| b.as_slice().to_vec()).collect();
            let mut done = q.complete_partial(batch, cut);
            assert_eq!(q.bytes(), 14 - cut, "cut {cut}");
            // Through an export and an import, as a handover would.
            let mut q = OutQueue::import(q.export().unwrap());
            let mut sent = wire[..cut].to_vec();
            while let Some(batch) = q.take_batch() {
                for b in &batch {
                    sent.extend_from_slice(b.as_slice());
                }
                done.extend(q.complete(batch));
            }
            assert_eq!(sent, wire, "cut {cut}: bytes on the wire");
            assert_eq!(q.bytes(), 0);
            // Each application write comes back once, whole, in order.
            let groups: Vec<Vec<Vec<u8>>> = done
                .iter()
                .map(|g| g.iter().map(|b| b.as_slice().to_vec()).collect())
                .collect();
            assert_eq!(
                groups,
                vec![
                    vec![b"body1".to_vec(), b"skip".to_vec()],
                    vec![b"body2".to_vec()]
                ],
                "cut {cut}"
            );
            wire.clear();
        }
    }

    #[test]
    fn failed_queue_returns_everything_once() {
        let mut q = OutQueue::default();
        q.push(b("a"), Owner::App { last: false }, false);
        q.push(b("b"), Owner::App { last: true }, false);
        q.push(b("c"), Owner::App { last: true }, false);
        let done = q.drain_failed();
        assert_eq!(done, vec![vec![b("a"), b("b")], vec![b("c")]]);
        assert!(q.is_idle());
    }
}
