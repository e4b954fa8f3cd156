//! What the event loops share: cross-loop publishing (a message published on
//! one loop reaches the topic's subscribers on every loop, woken by each
//! loop's eventfd), the number of chat clients across loops, and each loop's
//! latest counters for `/metrics`.
//!
//! Nothing here is on the request path except a publish, which takes one
//! short lock per other loop. Each loop's inbox is bounded
//! (`--hub-inbox-limit` messages): a message that finds it full is dropped
//! for that loop and counted (`ringtail_hub_drops_total`), as a slow
//! WebSocket client's messages are. A loop is woken only when its inbox goes
//! from empty to non-empty (it drains the whole inbox on every wake-up), so
//! a burst of messages costs one eventfd write per loop, not one per
//! message. Messages from one publisher reach every loop in the order they
//! were published (a full inbox drops the newest, never reorders).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use network_server::{event_manager, ClientCounts, EventTrigger, ServerStats};

/// A message for another loop: the topic and the payload, shared by every
/// inbox it is queued in (copied once per publish, not once per loop).
pub type Message = (Arc<str>, Arc<[u8]>);

/// How a loop is woken: its hub eventfd's trigger (or, in tests, anything
/// that counts).
type Waker = Box<dyn Fn() + Send + Sync>;

/// One loop's inbox and the counters it last reported.
#[derive(Default)]
struct Loop {
    inbox: Mutex<VecDeque<Message>>,
    /// Messages dropped because the inbox was full.
    dropped: AtomicU64,
    waker: OnceLock<Waker>,
    tick_due: AtomicBool,
    /// [`Control`] requests not yet taken by the loop (bits).
    control: AtomicU8,
    stats: Mutex<LoopStats>,
}

/// What the process asks of a loop through its hub eventfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Control {
    /// Return from `Server::run` so the loop's thread can take commands
    /// (an upgrade: quiesce, export, resume or release).
    Pause = 1,
    /// Begin a graceful shutdown (`Ctx::shutdown`).
    Shutdown = 2,
    /// The cluster-wide chat count changed: tell this loop's chat clients.
    Count = 4,
}

/// A loop's counters, as last reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopStats {
    /// Server counters.
    pub server: ServerStats,
    /// Open clients by kind.
    pub clients: ClientCounts,
    /// Ring counters.
    pub ring: event_manager::Stats,
    /// Messages from other loops dropped because this loop's inbox was full
    /// (filled in by [`Hub::reports`]).
    pub hub_drops: u64,
}

/// Shared by all loops of the process.
pub struct Hub {
    loops: Vec<Loop>,
    /// The bridge to other processes (`--cluster`), if any.
    cluster: OnceLock<Arc<crate::cluster::Cluster>>,
    /// The TLS certificates and state (`--tls-cert`), if any.
    tls: OnceLock<Arc<crate::tls::Tls>>,
    inbox_limit: usize,
    chat_clients: AtomicI64,
}

impl Hub {
    /// A hub for `n` loops, each inbox holding at most `inbox_limit`
    /// messages (at least 1).
    pub fn new(n: usize, inbox_limit: usize) -> Hub {
        Hub {
            loops: (0..n).map(|_| Loop::default()).collect(),
            cluster: OnceLock::new(),
            tls: OnceLock::new(),
            inbox_limit: inbox_limit.max(1),
            chat_clients: AtomicI64::new(0),
        }
    }

    /// Sets the bridge to other processes (once).
    pub fn set_cluster(&self, c: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(c);
    }

    /// The bridge to other processes, if `--cluster` was given.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Sets the TLS state (once).
    pub fn set_tls(&self, t: Arc<crate::tls::Tls>) {
        let _ = self.tls.set(t);
    }

    /// The TLS state, if `--tls-cert` was given.
    pub fn tls(&self) -> Option<&Arc<crate::tls::Tls>> {
        self.tls.get()
    }

    /// Loop `i` registers the trigger of its hub eventfd.
    pub fn register(&self, i: usize, trigger: EventTrigger) {
        self.register_waker(
            i,
            Box::new(move || {
                if let Err(e) = trigger.trigger() {
                    tracing::error!(error = %e, "cannot wake an event loop");
                }
            }),
        );
    }

    /// Loop `i` registers how it is woken (once; later calls are ignored).
    /// Messages queued before it could be woken wake it now.
    fn register_waker(&self, i: usize, waker: Waker) {
        let _ = self.loops[i].waker.set(waker);
        if !self.loops[i].inbox.lock().unwrap().is_empty() {
            self.wake(i);
        }
    }

    /// Wakes loop `i`.
    fn wake(&self, i: usize) {
        if let Some(w) = self.loops[i].waker.get() {
            w();
        }
    }

    /// Queues `(topic, message)` for every loop except `from`, waking those
    /// whose inbox was empty. The caller publishes on its own loop itself.
    pub fn publish_others(&self, from: usize, topic: &str, message: &[u8]) {
        if self.loops.len() < 2 {
            return;
        }
        let shared: Message = (topic.into(), message.into());
        for i in (0..self.loops.len()).filter(|&i| i != from) {
            self.queue(i, &shared);
        }
    }

    /// Queues `message` for loop `i` (or drops and counts it if the inbox
    /// is full), waking the loop if its inbox was empty.
    fn queue(&self, i: usize, message: &Message) {
        let l = &self.loops[i];
        let was_empty = {
            let mut inbox = l.inbox.lock().unwrap();
            if inbox.len() >= self.inbox_limit {
                l.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            inbox.push_back(message.clone());
            inbox.len() == 1
        };
        // A non-empty inbox already has a wake-up on its way: the loop
        // empties the inbox after being woken, so the next message to find
        // it empty wakes it again.
        if was_empty {
            self.wake(i);
        }
    }

    /// Queues `(topic, message)` for every loop (a message from another
    /// process, through the cluster bridge).
    pub fn publish_all(&self, topic: &str, message: &[u8]) {
        let shared: Message = (topic.into(), message.into());
        for i in 0..self.loops.len() {
            self.queue(i, &shared);
        }
    }

    /// The ticker: marks a tick due on every loop and wakes those that had
    /// none due.
    pub fn tick_all(&self) {
        for (i, l) in self.loops.iter().enumerate() {
            if !l.tick_due.swap(true, Ordering::AcqRel) {
                self.wake(i);
            }
        }
    }

    /// Asks loop `i` for `what` and wakes it.
    pub fn request(&self, i: usize, what: Control) {
        self.loops[i].control.fetch_or(what as u8, Ordering::AcqRel);
        self.wake(i);
    }

    /// Whether `what` was asked of loop `i` (and clears it).
    pub fn take_request(&self, i: usize, what: Control) -> bool {
        let bit = what as u8;
        self.loops[i].control.fetch_and(!bit, Ordering::AcqRel) & bit != 0
    }

    /// Number of loops.
    pub fn loops(&self) -> usize {
        self.loops.len()
    }

    /// A copy of the messages waiting for loop `i` (they stay queued): an
    /// upgrade hands them to the new process, and a rollback leaves them
    /// where they were.
    pub fn peek_inbox(&self, i: usize) -> Vec<Message> {
        self.loops[i]
            .inbox
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    /// Queues `messages` (handed over by the old process) for loop `i`,
    /// ahead of anything published since, and wakes it.
    pub fn requeue(&self, i: usize, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        {
            let mut inbox = self.loops[i].inbox.lock().unwrap();
            for m in messages.into_iter().rev() {
                inbox.push_front(m);
            }
        }
        self.wake(i);
    }

    /// Whether a tick is due on loop `i` (and clears it).
    pub fn take_tick(&self, i: usize) -> bool {
        self.loops[i].tick_due.swap(false, Ordering::AcqRel)
    }

    /// Messages other loops published for loop `i`, oldest first; the inbox
    /// is empty afterwards (the next message wakes the loop again).
    pub fn take_inbox(&self, i: usize) -> VecDeque<Message> {
        std::mem::take(&mut *self.loops[i].inbox.lock().unwrap())
    }

    /// Changes the chat client count by `delta`; returns the new total.
    pub fn chat_clients_add(&self, delta: i64) -> i64 {
        self.chat_clients.fetch_add(delta, Ordering::Relaxed) + delta
    }

    /// Loop `i` reports its counters.
    pub fn report(&self, i: usize, stats: LoopStats) {
        *self.loops[i].stats.lock().unwrap() = stats;
    }

    /// Every loop's last report, with its current hub drop count.
    pub fn reports(&self) -> Vec<LoopStats> {
        self.loops
            .iter()
            .map(|l| LoopStats {
                hub_drops: l.dropped.load(Ordering::Relaxed),
                ..*l.stats.lock().unwrap()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A hub of `n` loops whose wake-ups are counted instead of written to
    /// an eventfd.
    fn counted(n: usize, limit: usize) -> (Hub, Vec<Arc<AtomicUsize>>) {
        let hub = Hub::new(n, limit);
        let wakes: Vec<_> = (0..n).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        for (i, w) in wakes.iter().enumerate() {
            let w = w.clone();
            hub.register_waker(
                i,
                Box::new(move || {
                    w.fetch_add(1, Ordering::Relaxed);
                }),
            );
        }
        (hub, wakes)
    }

    fn texts(inbox: VecDeque<Message>) -> Vec<String> {
        inbox
            .into_iter()
            .map(|(t, m)| format!("{t}:{}", String::from_utf8_lossy(&m)))
            .collect()
    }

    #[test]
    fn a_loop_is_woken_only_when_its_inbox_becomes_non_empty() {
        let (hub, wakes) = counted(3, 100);
        for k in 0..10 {
            hub.publish_others(0, "chat", format!("m{k}").as_bytes());
        }
        // Ten messages, one wake-up per other loop; none for the publisher.
        assert_eq!(wakes[0].load(Ordering::Relaxed), 0);
        assert_eq!(wakes[1].load(Ordering::Relaxed), 1);
        assert_eq!(wakes[2].load(Ordering::Relaxed), 1);
        assert_eq!(hub.take_inbox(1).len(), 10);
        // Loop 1 drained its inbox: the next message wakes it again; loop 2
        // has not drained yet and is not woken a second time.
        hub.publish_others(0, "chat", b"again");
        assert_eq!(wakes[1].load(Ordering::Relaxed), 2);
        assert_eq!(wakes[2].load(Ordering::Relaxed), 1);
        assert_eq!(hub.take_inbox(2).len(), 11);
        assert!(hub.take_inbox(0).is_empty());
        // Ticks too: one wake-up per due tick, not per call.
        hub.tick_all();
        hub.tick_all();
        assert_eq!(wakes[0].load(Ordering::Relaxed), 1);
        assert!(hub.take_tick(0));
        assert!(!hub.take_tick(0));
        hub.tick_all();
        assert_eq!(wakes[0].load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_inbox_drops_the_newest_counts_them_and_keeps_the_order() {
        let (hub, _wakes) = counted(2, 4);
        for k in 0..10 {
            hub.publish_others(0, "chat", format!("a{k}").as_bytes());
        }
        assert_eq!(
            texts(hub.take_inbox(1)),
            ["chat:a0", "chat:a1", "chat:a2", "chat:a3"]
        );
        let reports = hub.reports();
        assert_eq!(reports[1].hub_drops, 6);
        assert_eq!(reports[0].hub_drops, 0);
        // Room again after the drain; drops keep adding up.
        for k in 0..6 {
            hub.publish_others(0, "chat", format!("b{k}").as_bytes());
        }
        assert_eq!(
            texts(hub.take_inbox(1)),
            ["chat:b0", "chat:b1", "chat:b2", "chat:b3"]
        );
        assert_eq!(hub.reports()[1].hub_drops, 8);
    }

    #[test]
    fn each_publishers_messages_arrive_in_order_across_threads() {
        let (hub, _wakes) = counted(3, 1 << 20);
        let hub = Arc::new(hub);
        let publishers: Vec<_> = [0usize, 1]
            .into_iter()
            .map(|from| {
                let hub = hub.clone();
                std::thread::spawn(move || {
                    for k in 0..2000u32 {
                        hub.publish_others(from, "t", &[from as u8, (k >> 8) as u8, k as u8]);
                    }
                })
            })
            .collect();
        // Loop 2 drains while the publishers run.
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while got.len() < 4000 {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of 4000 arrived",
                got.len()
            );
            got.extend(hub.take_inbox(2).into_iter().map(|(_, m)| m.to_vec()));
            std::thread::yield_now();
        }
        for p in publishers {
            p.join().unwrap();
        }
        for from in [0u8, 1] {
            let seq: Vec<u32> = got
                .iter()
                .filter(|m| m[0] == from)
                .map(|m| (m[1] as u32) << 8 | m[2] as u32)
                .collect();
            assert_eq!(seq, (0..2000).collect::<Vec<_>>(), "publisher {from}");
        }
        assert_eq!(hub.reports()[2].hub_drops, 0);
    }
}
