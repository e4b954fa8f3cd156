//! What the event loops share: cross-loop publishing (a message published on
//! one loop reaches the topic's subscribers on every loop, woken by each
//! loop's eventfd), the number of chat clients across loops, and each loop's
//! latest counters for `/metrics`.
//!
//! Nothing here is on the request path except a publish, which takes one
//! short lock per other loop.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

use network_server::{event_manager, ClientCounts, EventTrigger, ServerStats};

/// One loop's inbox and the counters it last reported.
#[derive(Default)]
struct Loop {
    inbox: Mutex<Vec<(String, Vec<u8>)>>,
    trigger: Mutex<Option<EventTrigger>>,
    tick_due: AtomicBool,
    stats: Mutex<LoopStats>,
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
}

/// Shared by all loops of the process.
pub struct Hub {
    loops: Vec<Loop>,
    chat_clients: AtomicI64,
}

impl Hub {
    /// A hub for `n` loops.
    pub fn new(n: usize) -> Hub {
        Hub {
            loops: (0..n).map(|_| Loop::default()).collect(),
            chat_clients: AtomicI64::new(0),
        }
    }

    /// Loop `i` registers the trigger of its hub eventfd.
    pub fn register(&self, i: usize, trigger: EventTrigger) {
        *self.loops[i].trigger.lock().unwrap() = Some(trigger);
    }

    /// Wakes loop `i` (used by the ticker, and after queueing a message).
    pub fn wake(&self, i: usize) {
        if let Some(t) = self.loops[i].trigger.lock().unwrap().as_ref() {
            let _ = t.trigger();
        }
    }

    /// Queues `(topic, message)` for every loop except `from` and wakes
    /// them. The caller publishes on its own loop itself.
    pub fn publish_others(&self, from: usize, topic: &str, message: &[u8]) {
        for (i, l) in self.loops.iter().enumerate() {
            if i != from {
                l.inbox
                    .lock()
                    .unwrap()
                    .push((topic.to_string(), message.to_vec()));
                self.wake(i);
            }
        }
    }

    /// The ticker: marks a tick due on every loop and wakes them.
    pub fn tick_all(&self) {
        for (i, l) in self.loops.iter().enumerate() {
            l.tick_due.store(true, Ordering::Relaxed);
            self.wake(i);
        }
    }

    /// Whether a tick is due on loop `i` (and clears it).
    pub fn take_tick(&self, i: usize) -> bool {
        self.loops[i].tick_due.swap(false, Ordering::Relaxed)
    }

    /// Messages other loops published for loop `i`.
    pub fn take_inbox(&self, i: usize) -> Vec<(String, Vec<u8>)> {
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

    /// Every loop's last report.
    pub fn reports(&self) -> Vec<LoopStats> {
        self.loops
            .iter()
            .map(|l| *l.stats.lock().unwrap())
            .collect()
    }
}
