//! The server's clock and timers: [`Tick`] (connection deadlines), the
//! clocks of the current turn (`now`, `wall`), the periodic tick that runs
//! the sweep, and the graceful-shutdown deadline. The sweep itself (what a
//! tick does to connections) is `Core::sweep` in `server.rs`.

use std::time::{Duration, Instant, SystemTime};

use event_manager::EventManager;

use crate::op_tag::OpTag;

/// The server's clocks and timer state.
#[derive(Debug)]
pub(crate) struct Timers {
    /// The event loop's clocks as of the current turn
    /// ([`EventManager::now`]): deadlines and `Date` headers use these
    /// instead of reading the clock per request.
    pub(crate) now: Tick,
    pub(crate) wall: SystemTime,
    /// Where [`Tick`]s count from.
    epoch: Instant,
    /// Set while shutting down gracefully: the deadline.
    shutdown: Option<Instant>,
    /// Whether the periodic tick's timeout is in the ring.
    tick_armed: bool,
}

impl Timers {
    /// Clocks starting at the event manager's current turn.
    pub(crate) fn new(em: &EventManager) -> Timers {
        let (epoch, wall) = (em.now(), em.wall_now());
        Timers {
            now: Tick::at(epoch, epoch),
            wall,
            epoch,
            shutdown: None,
            tick_armed: false,
        }
    }

    /// Takes the event loop's clocks for this turn.
    pub(crate) fn sync(&mut self, em: &EventManager) {
        self.now = Tick::at(em.now(), self.epoch);
        self.wall = em.wall_now();
    }

    /// `t` on the server's clock.
    pub(crate) fn tick_at(&self, t: Instant) -> Tick {
        Tick::at(t, self.epoch)
    }

    /// Arms the periodic tick (every `period`) unless it is armed already.
    pub(crate) fn arm_tick(&mut self, em: &mut EventManager, period: Duration) {
        if !self.tick_armed {
            self.tick_armed = true;
            em.timeout(period, OpTag::Tick.encode());
        }
    }

    /// The tick fired: arms the next one.
    pub(crate) fn rearm_tick(&mut self, em: &mut EventManager, period: Duration) {
        em.timeout(period, OpTag::Tick.encode());
    }

    /// Records the graceful-shutdown deadline (`grace` from now); `false`
    /// if a shutdown had already begun.
    pub(crate) fn begin_shutdown(&mut self, grace: Duration) -> bool {
        if self.shutdown.is_some() {
            return false;
        }
        self.shutdown = Some(Instant::now() + grace);
        true
    }

    /// Whether the periodic tick's timeout is in the ring (or suspended in
    /// it, during a handover).
    pub(crate) fn tick_armed(&self) -> bool {
        self.tick_armed
    }

    /// After an import: the tick's timeout came over with the event
    /// manager (or not).
    pub(crate) fn set_tick_armed(&mut self, armed: bool) {
        self.tick_armed = armed;
    }

    /// The graceful-shutdown deadline, while shutting down.
    pub(crate) fn shutdown_deadline(&self) -> Option<Instant> {
        self.shutdown
    }
}

/// A point on the server's clock: milliseconds since the server was
/// created, plus one (so that an `Option<Tick>` is 8 bytes, half an
/// `Option<Instant>`). Connection deadlines are kept in these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(std::num::NonZeroU64);

impl Tick {
    pub(crate) fn at(t: Instant, epoch: Instant) -> Tick {
        let ms =
            u64::try_from(t.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX - 1);
        Tick(std::num::NonZeroU64::MIN.saturating_add(ms))
    }
}

impl Tick {
    /// Milliseconds from `now` to this point (0 if it has passed).
    pub(crate) fn millis_after(self, now: Tick) -> u64 {
        self.0.get().saturating_sub(now.0.get())
    }

    /// `ms` milliseconds before this point (at most back to the start).
    pub(crate) fn minus_millis(self, ms: u64) -> Tick {
        Tick(
            std::num::NonZeroU64::new(self.0.get().saturating_sub(ms))
                .unwrap_or(std::num::NonZeroU64::MIN),
        )
    }

    /// Milliseconds from `earlier` to this point (0 if it is later).
    pub(crate) fn millis_since(self, earlier: Tick) -> u64 {
        self.0.get().saturating_sub(earlier.0.get())
    }
}

impl std::ops::Add<Duration> for Tick {
    type Output = Tick;
    fn add(self, d: Duration) -> Tick {
        Tick(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}
