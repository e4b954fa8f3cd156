//! The connection table and what one connection is: [`Conn`] (its slot:
//! protocol state, output queue, receive and pause state, close phase,
//! deadline), [`Phase`], [`Proto`], the public [`ClientId`] and
//! [`ClientKind`], and [`Connections`] — the slots indexed by pfd plus the
//! lists of connections with work deferred until the current callback
//! returns (`ready`, `dirty`).

use event_manager::{OpId, Pfd};

use crate::app::CloseReason;
use crate::http::HttpConn;
use crate::out_queue::OutQueue;
use crate::stats::ClientCounts;
use crate::timers::Tick;

/// A client (connection or adopted descriptor): its pfd. Stale ids are
/// refused by every operation.
pub type ClientId = Pfd;
/// Which callbacks a client's events go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// HTTP connection.
    Http,
    /// WebSocket connection (after an upgrade).
    WebSocket,
    /// RAW descriptor (accepted on a RAW listener, adopted, or an opened file).
    Raw,
}

/// A reason for a connection not to read. [`Core::update_recv`] keeps the
/// receive of an open HTTP or WebSocket connection armed exactly when none
/// holds.
///
/// [`Core::update_recv`]: crate::server::Core::update_recv
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PauseReason {
    /// Pipelined input waits for the current answer (input buffered past
    /// `max_pipelined_bytes`).
    Pipeline,
    /// An upload's bytes wait for the disk.
    Upload,
    /// Too much output queued (the peer is not reading): set past
    /// `pause_reading_above`, cleared under half of it.
    Output,
}

/// The set of [`PauseReason`]s that hold for a connection (one byte).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pauses(u8);

impl Pauses {
    const fn bit(reason: PauseReason) -> u8 {
        match reason {
            PauseReason::Pipeline => 1,
            PauseReason::Upload => 2,
            PauseReason::Output => 4,
        }
    }

    /// Whether `reason` holds.
    pub(crate) fn has(self, reason: PauseReason) -> bool {
        self.0 & Self::bit(reason) != 0
    }

    /// Sets (`on`) or clears `reason`.
    pub(crate) fn set(&mut self, reason: PauseReason, on: bool) {
        if on {
            self.0 |= Self::bit(reason);
        } else {
            self.0 &= !Self::bit(reason);
        }
    }

    /// Whether no reason holds.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set as one byte (for a handover).
    pub(crate) fn bits(self) -> u8 {
        self.0
    }

    /// Inverse of [`Pauses::bits`]; `None` for bits no reason has.
    pub(crate) fn from_bits(bits: u8) -> Option<Pauses> {
        (bits & !7 == 0).then_some(Pauses(bits))
    }
}

/// Where a connection's multishot receive is. The receive's [`OpId`], while
/// it is in the ring (`Armed`, `Cancelling`), is kept beside this in
/// [`Conn`] (an enum carrying it would take 16 bytes instead of 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvState {
    /// No receive; one may be armed.
    Off,
    /// A multishot receive is armed.
    Armed,
    /// A cancel of the armed receive was requested; its `RecvEnd` is on
    /// the way.
    Cancelling,
    /// The peer ended its stream (a receive ended with EOF): no receive,
    /// and none is armed again.
    Eof,
}

/// Whether a connection's output is over the level at which it stops taking
/// new work (reading, answering pipelined requests): above `high`
/// ([`ServerConfig::pause_reading_above`]), or paused for it and not yet
/// back below half.
///
/// [`ServerConfig::pause_reading_above`]: crate::ServerConfig::pause_reading_above
pub(crate) fn output_blocked(conn: &Conn, high: usize) -> bool {
    conn.pause.has(PauseReason::Output) || conn.out.bytes() > high
}

/// Where a connection is in the notes' close sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Open,
    /// Close requested: waiting for queued bytes to drain, then shutdown.
    Draining,
    /// `shutdown(SHUT_WR)` submitted.
    ShutdownSent,
    /// Write side shut; discarding input until EOF, a byte bound or a timeout.
    Lingering,
    /// `close` submitted; the close callback follows its completion.
    Closing,
}

#[derive(Debug)]
pub(crate) enum Proto {
    Http(Box<HttpConn>),
    /// Inline: an idle WebSocket client's whole state is its `Conn` slot.
    WebSocket(crate::ws::WsConn),
    Raw,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) pfd: Pfd,
    pub(crate) proto: Proto,
    pub(crate) out: OutQueue,
    /// The multishot receive's id while it is in the ring (`Armed` or
    /// `Cancelling`; see [`Conn::recv_state`]).
    recv_op: Option<OpId>,
    /// Where the receive is; changed only through the `recv_*` methods,
    /// which keep it and `recv_op` in step.
    recv: RecvState,
    /// Why reading is paused.
    pub(crate) pause: Pauses,
    pub(crate) phase: Phase,
    pub(crate) reason: CloseReason,
    pub(crate) deadline: Option<Tick>,
    /// Bytes read and discarded while lingering (saturating).
    pub(crate) linger_bytes: u32,
    /// [`Conn::DIRTY`] and [`Conn::TLS`] (one byte: the slot stays 72
    /// bytes).
    flags: u8,
}

impl Conn {
    pub(crate) fn new(pfd: Pfd, proto: Proto) -> Conn {
        Conn {
            pfd,
            proto,
            out: OutQueue::default(),
            recv_op: None,
            recv: RecvState::Off,
            pause: Pauses::default(),
            phase: Phase::Open,
            reason: CloseReason::Application,
            deadline: None,
            linger_bytes: 0,
            flags: 0,
        }
    }
    /// Queued output not yet handed to the event manager: listed in
    /// [`Connections`]' dirty list (kept by it).
    const DIRTY: u8 = 1;
    /// A TLS connection: its state is in the server's TLS table, input is
    /// decrypted before parsing and output encrypted when flushed
    /// (`tls_conn.rs`, `tls_io.rs`).
    const TLS: u8 = 2;

    /// Whether this is a TLS connection.
    #[inline]
    pub(crate) fn is_tls(&self) -> bool {
        self.flags & Conn::TLS != 0
    }

    /// Marks this as a TLS connection (its state in the TLS table).
    pub(crate) fn set_tls(&mut self) {
        self.flags |= Conn::TLS;
    }

    /// Where the connection's receive is.
    pub(crate) fn recv_state(&self) -> RecvState {
        self.recv
    }

    /// The armed receive's id (while `Armed` or `Cancelling`).
    pub(crate) fn recv_op(&self) -> Option<OpId> {
        self.recv_op
    }

    /// Whether the peer ended its stream.
    pub(crate) fn peer_eof(&self) -> bool {
        self.recv == RecvState::Eof
    }

    /// A multishot receive `op` was armed.
    pub(crate) fn recv_armed(&mut self, op: OpId) {
        debug_assert_eq!(self.recv, RecvState::Off);
        self.recv = RecvState::Armed;
        self.recv_op = Some(op);
    }

    /// Marks the armed receive as being cancelled and returns its id to
    /// cancel; `None` if no receive is armed (or it is already being
    /// cancelled).
    pub(crate) fn recv_cancel(&mut self) -> Option<OpId> {
        if self.recv != RecvState::Armed {
            return None;
        }
        self.recv = RecvState::Cancelling;
        self.recv_op
    }

    /// The receive ended (its `RecvEnd`); `eof` if the peer ended its
    /// stream.
    pub(crate) fn recv_ended(&mut self, eof: bool) {
        self.recv_op = None;
        self.recv = if eof { RecvState::Eof } else { RecvState::Off };
    }

    pub(crate) fn kind(&self) -> ClientKind {
        match self.proto {
            Proto::Http(_) => ClientKind::Http,
            Proto::WebSocket(_) => ClientKind::WebSocket,
            Proto::Raw => ClientKind::Raw,
        }
    }
}

/// The connection table: one slot per pfd index, checked against the full
/// pfd (so a stale id misses), and the connections with deferred work.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    slots: Vec<Option<Conn>>,
    /// HTTP connections whose processing should resume after the current
    /// callback (their answer completed while pipelined input was waiting).
    ready: Vec<ClientId>,
    /// Connections with queued output to flush after the current callback
    /// (each with [`Conn::dirty`] set).
    dirty: Vec<ClientId>,
    /// The application's `u64` per client ([`crate::Ctx::set_user_data`]),
    /// by pfd index; empty until the application sets one, then as long as
    /// the highest index set (8 bytes per slot: `Conn` stays 72 bytes for
    /// applications that never use it). Cleared when the client closes.
    user: Vec<u64>,
    /// The client whose close callback is running, with its user data
    /// (taken out of `user`): readable in that callback only.
    closing: Option<(ClientId, u64)>,
}

impl Connections {
    /// The live connection `pfd`, if any.
    pub(crate) fn get(&self, pfd: Pfd) -> Option<&Conn> {
        match self.slots.get(pfd.index() as usize) {
            Some(Some(c)) if c.pfd == pfd => Some(c),
            _ => None,
        }
    }

    /// The live connection `pfd`, if any.
    pub(crate) fn get_mut(&mut self, pfd: Pfd) -> Option<&mut Conn> {
        match self.slots.get_mut(pfd.index() as usize) {
            Some(Some(c)) if c.pfd == pfd => Some(c),
            _ => None,
        }
    }

    /// Puts `conn` in its pfd's slot (which must be free).
    pub(crate) fn insert(&mut self, conn: Conn) {
        let i = conn.pfd.index() as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        debug_assert!(self.slots[i].is_none());
        self.slots[i] = Some(conn);
    }

    /// Takes the connection `pfd` out of the table; its user data stays
    /// readable (through [`Connections::user_data`]) until
    /// [`Connections::closed`].
    pub(crate) fn remove(&mut self, pfd: Pfd) -> Option<Conn> {
        let conn = match self.slots.get_mut(pfd.index() as usize) {
            Some(slot @ Some(_)) if slot.as_ref().map(|c| c.pfd) == Some(pfd) => slot.take()?,
            _ => return None,
        };
        let data = self
            .user
            .get_mut(pfd.index() as usize)
            .map_or(0, std::mem::take);
        self.closing = Some((pfd, data));
        Some(conn)
    }

    /// The close callback of the client last [`removed`](Connections::remove)
    /// has returned: its user data is gone.
    pub(crate) fn closed(&mut self) {
        self.closing = None;
    }

    /// The application's value for a live client (or the one whose close
    /// callback is running); 0 if never set. `None` for a stale id.
    pub(crate) fn user_data(&self, pfd: Pfd) -> Option<u64> {
        if self.get(pfd).is_some() {
            return Some(self.user.get(pfd.index() as usize).copied().unwrap_or(0));
        }
        match self.closing {
            Some((p, data)) if p == pfd => Some(data),
            _ => None,
        }
    }

    /// Sets the application's value for a live client; `false` for a stale
    /// id (or one whose close callback is running: it is gone).
    pub(crate) fn set_user_data(&mut self, pfd: Pfd, value: u64) -> bool {
        if self.get(pfd).is_none() {
            return false;
        }
        let i = pfd.index() as usize;
        if self.user.len() <= i {
            if value == 0 {
                return true;
            }
            self.user.resize(i + 1, 0);
        }
        self.user[i] = value;
        true
    }

    /// Every live client with a value other than 0, in pfd index order (for
    /// a handover).
    pub(crate) fn user_data_set(&self) -> Vec<(Pfd, u64)> {
        self.iter()
            .filter_map(|c| {
                let v = self.user.get(c.pfd.index() as usize).copied().unwrap_or(0);
                (v != 0).then_some((c.pfd, v))
            })
            .collect()
    }

    /// Every live connection.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().flatten()
    }

    /// Every live connection.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Conn> {
        self.slots.iter_mut().flatten()
    }

    /// Live connections (walks the table).
    pub(crate) fn count(&self) -> usize {
        self.iter().count()
    }

    /// Whether no connection is live (walks the table).
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.iter().all(|c| c.is_none())
    }

    /// Live connections by kind (walks the table).
    pub(crate) fn counts(&self) -> ClientCounts {
        let mut c = ClientCounts::default();
        for conn in self.iter() {
            match conn.kind() {
                ClientKind::Http => c.http += 1,
                ClientKind::WebSocket => c.websocket += 1,
                ClientKind::Raw => c.raw += 1,
            }
        }
        c
    }

    /// Processing of `pfd` resumes after the current callback.
    pub(crate) fn push_ready(&mut self, pfd: ClientId) {
        self.ready.push(pfd);
    }

    /// The next connection whose processing resumes.
    pub(crate) fn pop_ready(&mut self) -> Option<ClientId> {
        self.ready.pop()
    }

    /// Output was queued on `pfd`: lists it for the flush after the
    /// current callback (once). Its queued bytes, `None` if it is gone.
    pub(crate) fn mark_dirty(&mut self, pfd: Pfd) -> Option<usize> {
        let conn = match self.slots.get_mut(pfd.index() as usize) {
            Some(Some(c)) if c.pfd == pfd => c,
            _ => return None,
        };
        if conn.flags & Conn::DIRTY == 0 {
            conn.flags |= Conn::DIRTY;
            self.dirty.push(pfd);
        }
        Some(conn.out.bytes())
    }

    /// The next live connection to flush, its [`Conn::dirty`] cleared.
    pub(crate) fn pop_dirty(&mut self) -> Option<Pfd> {
        while let Some(pfd) = self.dirty.pop() {
            if let Some(conn) = self.get_mut(pfd) {
                conn.flags &= !Conn::DIRTY;
                return Some(pfd);
            }
        }
        None
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::out_queue::OutQueue;

    /// Per-connection memory is what an idle server holds for each client;
    /// this keeps the numbers visible (and a regression visible).
    #[test]
    fn per_connection_state_sizes() {
        let conn = std::mem::size_of::<Option<Conn>>();
        let http = std::mem::size_of::<crate::http::HttpConn>();
        let ws = std::mem::size_of::<crate::ws::WsConn>();
        let out = std::mem::size_of::<OutQueue>();
        eprintln!("Option<Conn> {conn} B, HttpConn {http} B (boxed), WsConn {ws} B (inline), OutQueue {out} B");
        assert!(conn <= 72, "Conn grew to {conn} bytes");
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    #[test]
    fn pause_reasons_are_independent() {
        let mut p = Pauses::default();
        assert!(p.is_empty());
        p.set(PauseReason::Pipeline, true);
        p.set(PauseReason::Output, true);
        assert!(p.has(PauseReason::Pipeline) && p.has(PauseReason::Output));
        assert!(!p.has(PauseReason::Upload));
        p.set(PauseReason::Pipeline, false);
        assert!(!p.has(PauseReason::Pipeline) && !p.is_empty());
        p.set(PauseReason::Output, false);
        assert!(p.is_empty());
    }
}
