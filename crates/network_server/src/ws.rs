//! WebSocket connections: the upgrade from HTTP, reading frames and
//! assembling messages (through `protocol::ws`), automatic pongs, the close
//! handshake, sending, broadcast of one shared frame to many clients,
//! topics, the slow-client policy, idle pings, and the permessage-deflate
//! state: per event loop where no context is kept between messages, per
//! connection (allocated on first use) where it is.

use bytes::Bytes;
use event_manager::{EventManager, OutBuf, Pfd};
use protocol::ws::{self as pws, CloseCode, ControlFrame, Opcode};

use crate::app::{CloseReason, WsOpcode};
use crate::connections::{output_blocked, ClientKind, Phase, Proto};
use crate::out_queue::Owner;
use crate::server::Core;
use crate::{Application, ClientId, Ctx, Error, Request, SlowClientPolicy};
use event_manager::SnapshotError;

/// What a broadcast or publish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Clients the frame was queued for.
    pub sent: usize,
    /// Ids that were stale, not WebSocket, or closing.
    pub skipped: usize,
    /// Slow clients the message was dropped for
    /// ([`SlowClientPolicy::DropMessage`]).
    pub dropped: usize,
    /// Slow clients closed ([`SlowClientPolicy::Close`]).
    pub closed: usize,
}

/// Per-connection WebSocket state. Rarely used parts (the message reader,
/// compression state, topics) are boxed and allocated when used.
#[derive(Debug)]
pub(crate) struct WsConn {
    /// Decoder and message buffer; `None` once the periodic sweep found
    /// them idle (no message in progress: an idle client holds neither),
    /// recreated by the next receive.
    pub(crate) reader: Option<Box<Reader>>,
    /// What a client holds only sometimes — its own (de)compressor (see
    /// [`Extra`]) and its topic ids — behind one pointer: `None` while it
    /// has neither (one pointer where two cost every idle client's slot 8
    /// more bytes), freed again once both are gone.
    pub(crate) extra: Option<Box<Extra>>,
    /// Status for the close callback.
    pub(crate) close_code: Option<u16>,
    pub(crate) close_sent: bool,
    pub(crate) ping_outstanding: bool,
    /// The agreed permessage-deflate parameters (two bytes).
    pub(crate) deflate: Agreed,
}

impl WsConn {
    /// Called by the periodic sweep: drops the reader and any
    /// decompressor that keeps no context when no message is in progress.
    /// What keeps context (a compressor without
    /// `server_no_context_takeover`, a decompressor without
    /// `client_no_context_takeover`) stays: the peer's next message may
    /// refer to it. Returns whether anything was freed.
    pub(crate) fn release_if_idle(&mut self) -> bool {
        if !self.reader.as_ref().is_none_or(|r| r.is_idle()) {
            return false;
        }
        let mut freed = self.reader.take().is_some();
        let no_context = self
            .deflate
            .get()
            .is_some_and(|a| a.client_no_context_takeover);
        if let Some(c) = self.extra.as_mut() {
            // Between messages (the decoder is idle), a decompressor that is
            // reset after every message holds nothing a new one would not.
            if no_context && c.inflater.take().is_some() {
                freed = true;
            }
            if c.is_empty() {
                self.extra = None;
            }
        }
        freed
    }
}

/// The receiving side of a WebSocket client while it is active.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) decoder: pws::Decoder,
    /// Payload of the message being assembled (fragments, or a frame that
    /// spans several receives).
    pub(crate) msg: Vec<u8>,
    /// Received bytes not decoded yet because the connection's output is
    /// over its pause level (its peer is not reading): decoded, in order,
    /// once the output is below half of it. Bounded by what was already
    /// received when reading stopped.
    pub(crate) stash: Vec<u8>,
    /// The compressed bytes so far of a compressed message that spans
    /// pieces (frames or receives), kept while it is in progress: the
    /// decompressor's state cannot be exported, so a handover carries
    /// these and the importing side inflates them again. Empty otherwise.
    pub(crate) compressed: Vec<u8>,
    /// Whether that message is text.
    pub(crate) compressed_text: bool,
}

impl Reader {
    pub(crate) fn new(limits: &pws::Config, compression: bool) -> Box<Reader> {
        Box::new(Reader {
            decoder: pws::Decoder::new(limits, compression),
            msg: Vec::new(),
            stash: Vec::new(),
            compressed: Vec::new(),
            compressed_text: false,
        })
    }

    /// Between messages with nothing buffered: dropping it loses nothing (a
    /// new decoder starts in the same state).
    pub(crate) fn is_idle(&self) -> bool {
        self.msg.is_empty()
            && self.stash.is_empty()
            && self.compressed.is_empty()
            && self.decoder.is_idle()
    }
}

/// The agreed permessage-deflate parameters packed into two bytes (0: not
/// negotiated), so that agreeing costs an idle connection nothing: bit 0
/// negotiated, bit 1 `server_no_context_takeover`, bit 2
/// `client_no_context_takeover`, bits 3–6 `server_max_window_bits` and
/// bits 7–10 `client_max_window_bits` (0 for absent, else 8..=15).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Agreed(u16);

impl Agreed {
    /// Inverse of the packing: `None` for bits no agreement has.
    pub(crate) fn from_bits(bits: u16) -> Option<Agreed> {
        let window = |shift: u16| matches!((bits >> shift) & 0xF, 0 | 8..=15);
        let ok = bits >> 11 == 0 && (bits & 1 != 0 || bits == 0) && window(3) && window(7);
        ok.then_some(Agreed(bits))
    }

    /// The packed bits.
    pub(crate) fn bits(self) -> u16 {
        self.0
    }

    fn pack(agreed: Option<pws::PerMessageDeflate>) -> Agreed {
        let Some(a) = agreed else {
            return Agreed(0);
        };
        let bits = |b: Option<u8>| u16::from(b.unwrap_or(0) & 0xF);
        Agreed(
            1 | u16::from(a.server_no_context_takeover) << 1
                | u16::from(a.client_no_context_takeover) << 2
                | bits(a.server_max_window_bits) << 3
                | bits(a.client_max_window_bits) << 7,
        )
    }

    pub(crate) fn is_on(self) -> bool {
        self.0 & 1 != 0
    }

    pub(crate) fn get(self) -> Option<pws::PerMessageDeflate> {
        let bits = |shift: u16| match (self.0 >> shift) & 0xF {
            0 => None,
            b => Some(b as u8),
        };
        self.is_on().then(|| pws::PerMessageDeflate {
            server_no_context_takeover: self.0 & 2 != 0,
            client_no_context_takeover: self.0 & 4 != 0,
            server_max_window_bits: bits(3),
            client_max_window_bits: bits(7),
        })
    }
}

/// What a WebSocket connection holds only sometimes: the topic ids it is
/// subscribed to (in subscription order), and its own compression state,
/// each part allocated on first use:
///
/// * `deflater`: only without `server_no_context_takeover` (its window
///   carries over to the next message); never freed. With it, messages are
///   compressed by the event loop's [`SharedCodecs`].
/// * `inflater`: without `client_no_context_takeover`, from the first
///   compressed message on, never freed (the client's next message may
///   refer to this one). With it, a message that arrives whole in one
///   receive is inflated by the event loop's shared decompressor; one that
///   spans receives or frames needs its own until it ends (other
///   connections' messages come in between), freed by the sweep once the
///   connection is idle.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    inflater: Option<pws::Inflater>,
    deflater: Option<pws::Deflater>,
    pub(crate) topics: Vec<u32>,
}

impl Extra {
    /// Nothing held: the box can go.
    fn is_empty(&self) -> bool {
        self.inflater.is_none() && self.deflater.is_none() && self.topics.is_empty()
    }
}

/// The (de)compressors one event loop shares among its connections that
/// keep no compression context, allocated on first use (then kept: a
/// compressor is about 320 KB with a 32 KiB window at level 6, the
/// decompressor up to about 50 KB, once per loop). Each use compresses or
/// inflates one whole message, after which the codec is reset, so nothing
/// of one connection's message reaches another's.
#[derive(Debug, Default)]
pub(crate) struct SharedCodecs {
    /// Window 15: decodes any client window (a larger window always
    /// decodes a smaller one's output).
    inflater: Option<Box<pws::Inflater>>,
    /// One per compression window, 9..=15 (the server's window must not
    /// exceed what the client allowed).
    deflaters: [Option<Box<pws::Deflater>>; 7],
}

impl SharedCodecs {
    fn deflater(&mut self, agreed: &pws::PerMessageDeflate, level: u32) -> &mut pws::Deflater {
        let bits = agreed.compress_window_bits();
        self.deflaters[usize::from(bits - 9)]
            .get_or_insert_with(|| Box::new(pws::Deflater::with_window_bits(bits, true, level)))
    }
}

/// A control-frame payload copied out of the decoder.
#[derive(Debug, Clone, Copy)]
struct Small {
    buf: [u8; pws::MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl Small {
    fn from(p: &[u8]) -> Small {
        let mut buf = [0; pws::MAX_CONTROL_PAYLOAD];
        let len = p.len().min(pws::MAX_CONTROL_PAYLOAD);
        buf[..len].copy_from_slice(&p[..len]);
        Small {
            buf,
            len: len as u8,
        }
    }
    fn as_slice(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// A decoder event with nothing borrowed from the decoder.
enum Ev {
    Data(pws::Data),
    Ping(Small),
    Pong(Small),
    Close(Option<u16>),
}

/// Inflates one piece of a compressed message into `msg` with the right
/// decompressor (see [`Extra`]): the connection's own if it has one (it may
/// be in the middle of this message), else the loop's `shared` one for a
/// message that arrives whole without context kept, else a new one of the
/// connection's own. An error is the close code to fail with.
#[allow(clippy::too_many_arguments)]
fn inflate(
    deflate: Agreed,
    codecs: &mut Option<Box<Extra>>,
    shared: &mut Option<Box<pws::Inflater>>,
    kind: pws::MessageKind,
    piece: &[u8],
    fin: bool,
    msg: &mut Vec<u8>,
    max: u64,
) -> Result<(), CloseCode> {
    let Some(agreed) = deflate.get() else {
        // RSV1 without deflate is refused by the decoder already.
        return Err(CloseCode::PROTOCOL_ERROR);
    };
    let own = codecs.as_mut().and_then(|c| c.inflater.as_mut());
    let inflater = match own {
        Some(inflater) => inflater,
        // Whole (this piece starts and ends it: a message that began in an
        // earlier piece got an inflater of its own there) and nothing kept
        // after it: the shared one, which is between messages.
        None if fin && agreed.client_no_context_takeover => {
            &mut **shared.get_or_insert_with(|| Box::new(pws::Inflater::with_window_bits(15, true)))
        }
        None => codecs
            .get_or_insert_default()
            .inflater
            .insert(pws::Inflater::new(&agreed)),
    };
    // On error the inflater resets itself (a shared one stays usable).
    inflater
        .inflate(kind, piece, fin, msg, max)
        .map_err(|e| e.close_code())
}

/// The protocol crate's limits and deflate terms from the server's
/// configuration.
pub(crate) fn ws_limits(config: &crate::ServerConfig) -> pws::Config {
    let mut c = pws::Config::default();
    c.max_message_size = config.ws.max_message_size as u64;
    c.max_frame_size = config.ws.max_frame_size as u64;
    if config.ws.permessage_deflate {
        c.deflate = Some(config.ws.deflate);
    }
    c
}

fn ws(conn: &mut crate::connections::Conn) -> Option<&mut WsConn> {
    match &mut conn.proto {
        Proto::WebSocket(w) => Some(w),
        _ => None,
    }
}

impl From<pws::MessageKind> for WsOpcode {
    fn from(k: pws::MessageKind) -> Self {
        match k {
            pws::MessageKind::Text => WsOpcode::Text,
            pws::MessageKind::Binary => WsOpcode::Binary,
        }
    }
}

impl Core {
    fn ws_activity(&mut self, pfd: Pfd) {
        let now = self.timers.now;
        let interval = self.config.ws.ping_interval;
        if let Some(conn) = self.conn(pfd) {
            let closing = ws(conn).is_some_and(|w| w.close_sent);
            if let Some(w) = ws(conn) {
                w.ping_outstanding = false;
            }
            if !closing {
                conn.deadline = Some(now + interval);
            }
        }
    }

    /// Feeds received bytes (unmasked in place) through the connection's
    /// decoder, delivering messages and answering control frames. Bytes
    /// stashed earlier (see [`Reader::stash`]) go first.
    pub(crate) fn ws_feed<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        data: &mut [u8],
    ) {
        // Bytes behind the upgrade request: the client's open comes first.
        self.ws_open_callbacks(em, app);
        self.ws_activity(pfd);
        let stashed = self
            .conn(pfd)
            .and_then(ws)
            .and_then(|w| w.reader.as_mut())
            .filter(|r| !r.stash.is_empty())
            .map(|r| std::mem::take(&mut r.stash));
        match stashed {
            Some(mut stash) => {
                stash.extend_from_slice(data);
                self.ws_decode(em, app, pfd, &mut stash);
            }
            None => self.ws_decode(em, app, pfd, data),
        }
    }

    /// Decodes what was stashed while the output was blocked (called when
    /// it is no longer).
    pub(crate) fn ws_resume<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
    ) {
        self.ws_feed(em, app, pfd, &mut []);
    }

    fn ws_decode<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        mut data: &mut [u8],
    ) {
        let limits = ws_limits(&self.config);
        let pause_above = self.config.pause_reading_above;
        while !data.is_empty() {
            let Some(conn) = self.conn(pfd) else { return };
            if conn.phase != Phase::Open {
                return; // closing: input is discarded
            }
            let blocked = output_blocked(conn, pause_above);
            let Some(w) = ws(conn) else { return };
            if blocked {
                // The peer does not read what it is sent: decode nothing
                // more (no echo, no pong) until it does. Reading has
                // stopped; this is what was already received.
                let compression = w.deflate.is_on();
                let reader = w
                    .reader
                    .get_or_insert_with(|| Reader::new(&limits, compression));
                reader.stash.extend_from_slice(data);
                return;
            }
            let compression = w.deflate.is_on();
            let decoder = &mut w
                .reader
                .get_or_insert_with(|| Reader::new(&limits, compression))
                .decoder;
            if decoder.is_closed() {
                return;
            }
            let step = match decoder.decode(data) {
                Ok(step) => step,
                Err(e) => return self.ws_fail(em, pfd, e.close_code()),
            };
            let consumed = step.consumed;
            // Copy what the event borrows from the decoder (≤ 125 bytes).
            let event = match step.event {
                None => None,
                Some(pws::Event::Data(d)) => Some(Ev::Data(d)),
                Some(pws::Event::Ping(p)) => Some(Ev::Ping(Small::from(p))),
                Some(pws::Event::Pong(p)) => Some(Ev::Pong(Small::from(p))),
                Some(pws::Event::Close(c)) => Some(Ev::Close(c.map(|(code, _)| code.0))),
            };
            if consumed == 0 && event.is_none() {
                return; // nothing more can be decoded from this input
            }
            let (now, rest) = std::mem::take(&mut data).split_at_mut(consumed);
            data = rest;
            match event {
                None => {}
                Some(Ev::Data(d)) => self.ws_data(em, app, pfd, now, d),
                Some(Ev::Ping(p)) => {
                    // A peer that pings without reading: while its output
                    // is over the pause level, the pongs already queued
                    // stand for this one (RFC 6455 §5.5.3 allows answering
                    // only the latest of several unanswered pings), so
                    // pings cannot grow the queue.
                    let blocked = self
                        .conn_ref(pfd)
                        .is_some_and(|c| output_blocked(c, self.config.pause_reading_above));
                    if !blocked {
                        let pong =
                            ControlFrame::pong(p.as_slice()).expect("ping payload ≤ 125 bytes");
                        self.queue_copy(pfd, pong.as_bytes());
                    }
                    self.guard(em, Some(pfd), "on_ws_read", |ctx| {
                        app.on_ws_read(ctx, pfd, WsOpcode::Ping, p.as_slice())
                    });
                }
                Some(Ev::Pong(p)) => {
                    self.guard(em, Some(pfd), "on_ws_read", |ctx| {
                        app.on_ws_read(ctx, pfd, WsOpcode::Pong, p.as_slice())
                    });
                }
                Some(Ev::Close(code)) => {
                    let Some(w) = self.conn(pfd).and_then(ws) else {
                        return;
                    };
                    let code = code.unwrap_or(CloseCode::NO_STATUS.0);
                    if w.close_sent {
                        // The answer to our Close: the handshake is done.
                        let ours = w.close_code.unwrap_or(code);
                        return self.begin_close(em, pfd, CloseReason::WebSocket(ours));
                    }
                    // Echo the peer's code, then close (RFC 6455 §5.5.1).
                    w.close_code = Some(code);
                    return self.ws_fail(em, pfd, CloseCode(code));
                }
            }
        }
    }

    /// One piece of message data, `&input[d.data]`. A message that arrives
    /// whole in one frame and one receive is delivered from the receive
    /// buffer itself; otherwise pieces (inflated as they come, when
    /// compressed) collect in the connection's message buffer.
    fn ws_data<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        input: &mut [u8],
        d: pws::Data,
    ) {
        let max = self.config.ws.max_message_size as u64;
        // The loop's shared decompressor, held while the connection is
        // borrowed; put back (if any) before returning.
        let mut shared = if d.compressed {
            self.ws_codecs.inflater.take()
        } else {
            None
        };
        let Some(w) = self.conn(pfd).and_then(ws) else {
            if d.compressed {
                self.ws_codecs.inflater = shared;
            }
            return;
        };
        let WsConn {
            reader,
            deflate,
            extra: codecs,
            ..
        } = w;
        let Some(Reader {
            msg,
            compressed,
            compressed_text,
            ..
        }) = reader.as_deref_mut()
        else {
            if d.compressed {
                self.ws_codecs.inflater = shared;
            }
            return; // data comes only out of a reader's decoder
        };
        if d.compressed {
            // A compressed message in pieces: its compressed bytes are kept
            // until it ends (see `Reader::compressed`).
            if d.fin {
                if compressed.capacity() > 64 * 1024 {
                    *compressed = Vec::new();
                } else {
                    compressed.clear();
                }
            } else {
                compressed.extend_from_slice(&input[d.data.clone()]);
                *compressed_text = d.kind == pws::MessageKind::Text;
            }
        }
        let piece = &input[d.data.clone()];
        if d.fin && msg.is_empty() && !d.compressed {
            self.stats.ws_messages_in += 1;
            self.guard(em, Some(pfd), "on_ws_read", |ctx| {
                app.on_ws_read(ctx, pfd, d.kind.into(), piece)
            });
            return;
        }
        let inflated = if d.compressed {
            inflate(
                *deflate,
                codecs,
                &mut shared,
                d.kind,
                piece,
                d.fin,
                msg,
                max,
            )
        } else {
            msg.extend_from_slice(piece);
            Ok(())
        };
        let done = d.fin.then(|| std::mem::take(msg));
        if d.compressed {
            self.ws_codecs.inflater = shared;
        }
        if let Err(code) = inflated {
            return self.ws_fail(em, pfd, code);
        }
        let Some(msg) = done else { return };
        self.stats.ws_messages_in += 1;
        self.guard(em, Some(pfd), "on_ws_read", |ctx| {
            app.on_ws_read(ctx, pfd, d.kind.into(), &msg)
        });
        // Keep a modest buffer for the next assembled message; an idle
        // connection should not hold a large one.
        if msg.capacity() <= 64 * 1024 {
            let mut msg = msg;
            msg.clear();
            if let Some(r) = self.conn(pfd).and_then(ws).and_then(|w| w.reader.as_mut()) {
                r.msg = msg;
            }
        }
    }

    /// Sends our Close (once) and closes the connection after it: used when
    /// the peer's Close arrived, or to fail the connection (RFC 6455 §7.1.7).
    pub(crate) fn ws_fail(&mut self, em: &mut EventManager, pfd: Pfd, code: CloseCode) {
        let Some(conn) = self.conn(pfd) else { return };
        let Some(w) = ws(conn) else { return };
        let close_code = *w.close_code.get_or_insert(code.0);
        if !w.close_sent {
            w.close_sent = true;
            let frame = if code == CloseCode::NO_STATUS {
                ControlFrame::close_empty()
            } else {
                ControlFrame::close(code, "").unwrap_or_else(|_| ControlFrame::close_empty())
            };
            self.queue_copy(pfd, frame.as_bytes());
        }
        self.begin_close(em, pfd, CloseReason::WebSocket(close_code));
    }

    /// A WebSocket connection's deadline passed: ping it, or give up on it.
    pub(crate) fn ws_timeout(&mut self, em: &mut EventManager, pfd: Pfd) {
        let now = self.timers.now;
        let pong_timeout = self.config.ws.pong_timeout;
        let Some(conn) = self.conn(pfd) else { return };
        let Some(w) = ws(conn) else { return };
        if w.close_sent || w.ping_outstanding {
            // The peer did not finish the close handshake or answer a ping.
            return self.hard_close(em, pfd, Some(CloseReason::Timeout));
        }
        w.ping_outstanding = true;
        conn.deadline = Some(now + pong_timeout);
        let ping = ControlFrame::ping(b"ringtail").expect("short payload");
        self.queue_copy(pfd, ping.as_bytes());
    }

    /// The compressor for `client`'s next message: the loop's shared one
    /// with `server_no_context_takeover`, else the connection's own
    /// (allocated on first use).
    fn ws_deflater(
        &mut self,
        client: Pfd,
        agreed: &pws::PerMessageDeflate,
        level: u32,
    ) -> Option<&mut pws::Deflater> {
        if agreed.server_no_context_takeover {
            return Some(self.ws_codecs.deflater(agreed, level));
        }
        let w = self.conn(client).and_then(ws)?;
        Some(
            w.extra
                .get_or_insert_default()
                .deflater
                .get_or_insert_with(|| pws::Deflater::new(agreed, level)),
        )
    }

    /// Forgets the compressor [`Core::ws_deflater`] returned.
    fn ws_drop_deflater(&mut self, client: Pfd, agreed: &pws::PerMessageDeflate) {
        if agreed.server_no_context_takeover {
            let bits = agreed.compress_window_bits();
            self.ws_codecs.deflaters[usize::from(bits - 9)] = None;
        } else if let Some(c) = self
            .conn(client)
            .and_then(ws)
            .and_then(|w| w.extra.as_mut())
        {
            c.deflater = None;
        }
    }

    /// Removes a closed client from its topics.
    pub(crate) fn ws_forget(&mut self, pfd: Pfd, topics: &[u32]) {
        self.settle_run();
        for &t in topics {
            self.topics.unsubscribe_id(t, pfd);
        }
    }

    /// Queues a frame (header + payload buffers) on a WebSocket client,
    /// applying the slow-client policy. `Ok(true)` if queued.
    fn ws_queue_frame(
        &mut self,
        em: &mut EventManager,
        pfd: Pfd,
        frame: Frame<'_>,
        len: usize,
        report: &mut BroadcastReport,
    ) -> bool {
        let (max, policy) = (self.config.ws.max_queued_bytes, self.config.ws.slow_client);
        let Some(conn) = self.conn(pfd) else {
            report.skipped += 1;
            return false;
        };
        if conn.phase != Phase::Open || ws(conn).is_none_or(|w| w.close_sent) {
            report.skipped += 1;
            return false;
        }
        // The queue's items count too (`OutQueue::footprint`).
        if conn.out.bytes() > 0 && conn.out.footprint() + len > max {
            // (No run is pending here: `ws_broadcast` settled it.)
            match policy {
                SlowClientPolicy::DropMessage => report.dropped += 1,
                SlowClientPolicy::Close(code) => {
                    report.closed += 1;
                    // Drop its backlog so the Close frame comes right after
                    // the write in flight, then close (bounded by the
                    // drain deadline if it never reads again).
                    if let Some(conn) = self.conn(pfd) {
                        conn.out.discard_queued();
                    }
                    self.ws_fail(em, pfd, CloseCode(code));
                }
            }
            return false;
        }
        match frame {
            Frame::Shared(frame) => {
                self.queue(em, pfd, [(OutBuf::Bytes(frame), Owner::Server, false)]);
            }
            Frame::Chunk(start, end) => self.queue_shared(pfd, start, end),
            Frame::Message {
                header,
                copy_payload,
                items,
            } => {
                // The header (and a small payload) go into the connection's
                // copy buffer; the payload's buffers follow, skipped if
                // copied.
                let payload = if copy_payload { len } else { 0 };
                let _ = self.queue_append(pfd, header.len() + payload, |out| {
                    out.extend_from_slice(header);
                    if copy_payload {
                        for (buf, _, _) in &items {
                            out.extend_from_slice(buf.as_slice());
                        }
                    }
                    Ok::<(), std::convert::Infallible>(())
                });
                self.queue(em, pfd, items);
            }
        }
        report.sent += 1;
        true
    }
}

// ----- the application's WebSocket operations -------------------------------

impl Ctx<'_> {
    /// Accepts a WebSocket upgrade for the request just delivered to
    /// [`Application::on_http_read`]: validates the handshake (RFC 6455
    /// §4.2), negotiates permessage-deflate if enabled and offered, writes
    /// the `101 Switching Protocols` answer, and turns the client into a
    /// WebSocket client (its events go to the `on_ws_*` callbacks from now
    /// on). `protocol` picks one of the client's offered subprotocols.
    ///
    /// An invalid handshake is answered by the server itself (400, or 426
    /// with `Sec-WebSocket-Version: 13`) and returns
    /// [`Error::Handshake`] with that status; to refuse a valid one, answer
    /// with [`Ctx::http_respond`] instead.
    pub fn ws_upgrade(
        &mut self,
        client: ClientId,
        req: &Request<'_>,
        protocol: Option<&str>,
    ) -> Result<(), Error> {
        let now = self.core.timers.now;
        self.writable(client, ClientKind::Http, 0)?;
        let config = ws_limits(&self.core.config);
        let hs = match pws::accept(req, &config) {
            Ok(hs) => hs,
            Err(e) => {
                let status = e.status();
                let headers: Vec<(&str, &str)> = e
                    .response_headers()
                    .iter()
                    .map(|(n, v)| (*n, std::str::from_utf8(v).unwrap_or("")))
                    .collect();
                let _ = self.http_respond(client, status, &headers, e.as_str());
                // The connection cannot continue after a failed upgrade.
                let _ = self.http_close(client);
                return Err(Error::Handshake(status));
            }
        };
        let mut head = Vec::with_capacity(256);
        hs.write_response(protocol, &[], &mut head)
            .map_err(|_| Error::InvalidHeader(client))?;
        let agreed = hs.deflate;
        self.http_take_over(client)?;
        let access_log = self.core.config.access_log;
        let logged = match self.core.conn(client).map(|c| &mut c.proto) {
            Some(Proto::Http(h)) if access_log => h
                .request_line
                .take()
                .map(|line| (line, h.peer, h.access.take().unwrap_or_default())),
            _ => None,
        };
        let interval = self.core.config.ws.ping_interval;
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        // No compression state yet: it is allocated by the first
        // compressed message, if any (see `Extra`).
        conn.proto = Proto::WebSocket(WsConn {
            reader: Some(Reader::new(&config, agreed.is_some())),
            extra: None,
            close_code: None,
            close_sent: false,
            ping_outstanding: false,
            deflate: Agreed::pack(agreed),
        });
        conn.deadline = Some(now + interval);
        self.core.stats.ws_upgrades += 1;
        self.core.ws_opened.push(client);
        if let Some((line, peer, mut access)) = logged {
            // The upgrade's line now; the WebSocket's at its close.
            access.status = 101;
            access.bytes_out = head.len() as u64;
            let date = self.core.date.at(self.core.timers.wall);
            self.core
                .access_lines
                .write(peer, &line, &access, now, date, None);
            access.start = Some(now);
            access.bytes_out = 0;
            let w = crate::access_log::WsAccess {
                line,
                peer,
                access: *access,
            };
            self.core.ws_access.insert(client, w);
        }
        self.core
            .queue(self.em, client, [(OutBuf::Vec(head), Owner::Server, false)]);
        Ok(())
    }

    fn ws_check(&mut self, client: ClientId) -> Result<&mut WsConn, Error> {
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        if conn.phase != Phase::Open {
            return Err(Error::Closing(client));
        }
        let w = ws(conn).ok_or(Error::WrongProtocol(client))?;
        if w.close_sent {
            return Err(Error::Closing(client));
        }
        Ok(w)
    }

    /// Sends one message. The payload is written as its own iovec after the
    /// frame header and comes back in [`Application::on_ws_write`]. With
    /// permessage-deflate negotiated, messages of at least
    /// [`crate::WsConfig::compress_min_size`] bytes are compressed (the
    /// original buffer still comes back). A client over its queue limit gets
    /// the slow-client policy and `Err(Backpressure)`.
    pub fn ws_send(
        &mut self,
        client: ClientId,
        kind: WsOpcode,
        payload: impl Into<OutBuf>,
    ) -> Result<(), Error> {
        self.ws_sendv(client, kind, vec![payload.into()])
    }

    /// Sends one message made of several buffers (written as separate
    /// iovecs, never copied together unless compressed).
    pub fn ws_sendv(
        &mut self,
        client: ClientId,
        kind: WsOpcode,
        bufs: Vec<OutBuf>,
    ) -> Result<(), Error> {
        let opcode = opcode_of(kind);
        let len: usize = bufs.iter().map(OutBuf::len).sum();
        let min_compress = self.core.config.ws.compress_min_size;
        let level = self.core.config.ws.deflate.level;
        let w = self.ws_check(client)?;
        if opcode.is_control() && len > pws::MAX_CONTROL_PAYLOAD {
            return Err(Error::Io(event_manager::Error::Os(libc::EMSGSIZE)));
        }
        let mut items: Vec<(OutBuf, Owner, bool)> = Vec::with_capacity(bufs.len() + 1);
        let n = bufs.len();
        let header = match w.deflate.get() {
            Some(agreed) if !opcode.is_control() && len >= min_compress => {
                let mut compressed = Vec::with_capacity(len / 2 + 16);
                let d = self
                    .core
                    .ws_deflater(client, &agreed, level)
                    .ok_or(Error::Stale(client))?;
                let mut result = Ok(());
                for (i, b) in bufs.iter().enumerate() {
                    result = d.compress(b.as_slice(), i + 1 == n, &mut compressed);
                    if result.is_err() {
                        break;
                    }
                }
                if result.is_err() {
                    // Left mid-message: start over with a fresh one (whose
                    // output any client decodes, whatever its window).
                    self.core.ws_drop_deflater(client, &agreed);
                    return Err(Error::Io(event_manager::Error::Os(libc::EIO)));
                }
                let header = pws::encode_header(true, true, opcode, compressed.len() as u64);
                items.push((OutBuf::Vec(compressed), Owner::Server, false));
                for (i, b) in bufs.into_iter().enumerate() {
                    items.push((b, Owner::App { last: i + 1 == n }, true));
                }
                (header, false)
            }
            _ => {
                // A small payload is copied behind the header (the
                // application's buffers come back skipped, after the write).
                let copy = len <= SMALL_FRAME;
                for (i, b) in bufs.into_iter().enumerate() {
                    items.push((b, Owner::App { last: i + 1 == n }, copy));
                }
                (pws::encode_header(true, false, opcode, len as u64), copy)
            }
        };
        let (header, copy_payload) = header;
        let frame = Frame::Message {
            header: header.as_bytes(),
            copy_payload,
            items,
        };
        let mut report = BroadcastReport::default();
        if self
            .core
            .ws_queue_frame(self.em, client, frame, len, &mut report)
        {
            Ok(())
        } else {
            Err(Error::Backpressure(client))
        }
    }

    /// Sends one message to every client in `clients`: the frame is encoded
    /// once into one reference-counted buffer that every write shares; it
    /// is freed when the last write completes. Stale, closing and non-
    /// WebSocket ids are skipped; slow clients get the slow-client policy.
    /// Messages are sent uncompressed (RSV1 is per message).
    pub fn ws_broadcast<I>(&mut self, clients: I, kind: WsOpcode, payload: &[u8]) -> BroadcastReport
    where
        I: IntoIterator<Item = ClientId>,
    {
        self.core.settle_run();
        let mut report = BroadcastReport::default();
        if pws::MAX_HEADER_LEN + payload.len() <= SMALL_FRAME {
            // A small frame is appended to the broadcast chunk, and each
            // recipient queues its range (joining the range it queued for
            // the frame before, if that was the chunk's previous one).
            if !self.core.bcast.fits(pws::MAX_HEADER_LEN + payload.len()) {
                self.core.seal_broadcast();
            }
            let (start, end) = self.core.bcast.append(opcode_of(kind), payload);
            for c in clients {
                let item = Frame::Chunk(start, end);
                let len = (end - start) as usize;
                self.core.ws_queue_frame(self.em, c, item, len, &mut report);
            }
        } else {
            // A large one is shared by reference.
            let frame = encode_shared(kind, payload);
            for c in clients {
                let item = Frame::Shared(frame.clone());
                self.core
                    .ws_queue_frame(self.em, c, item, frame.len(), &mut report);
            }
        }
        self.core.stats.ws_broadcast_deliveries += report.sent as u64;
        self.core.stats.ws_broadcast_drops += (report.dropped + report.closed) as u64;
        report
    }

    /// Subscribes a WebSocket client to a topic (idempotent). Subscriptions
    /// end when the client closes.
    pub fn ws_subscribe(&mut self, client: ClientId, topic: &str) -> Result<(), Error> {
        self.ws_check(client)?;
        self.core.settle_run();
        let (id, new) = self.core.topics.subscribe(topic, client);
        if new {
            if let Some(w) = self.core.conn(client).and_then(ws) {
                w.extra.get_or_insert_default().topics.push(id);
            }
        }
        Ok(())
    }

    /// Unsubscribes a client from a topic.
    pub fn ws_unsubscribe(&mut self, client: ClientId, topic: &str) -> Result<(), Error> {
        self.core.settle_run();
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        ws(conn).ok_or(Error::WrongProtocol(client))?;
        if let Some(id) = self.core.topics.lookup(topic) {
            if self.core.topics.unsubscribe_id(id, client) {
                if let Some(w) = self.core.conn(client).and_then(ws) {
                    if let Some(e) = &mut w.extra {
                        e.topics.retain(|&t| t != id);
                        if e.is_empty() {
                            w.extra = None;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Broadcasts to a topic's subscribers.
    ///
    /// A small frame (see [`Ctx::ws_broadcast`]) that every subscriber
    /// takes under its slow-client limit joins the topic's *run*: the
    /// frames published to one topic back to back, while no connection's
    /// output changes otherwise, are encoded into the broadcast chunk and
    /// queued on each subscriber once, as one range, when the run ends —
    /// before any other output is queued, a subscription changes, a client
    /// closes, or the writes start (at the latest when the callbacks of
    /// this completion have returned). A subscriber is then looked at once
    /// per run rather than once per message, as `../shared/limit` keeps a
    /// cursor per connection into shared batches. Nothing is lost or
    /// reordered, and the report is what queuing each frame at once would
    /// have said.
    pub fn ws_publish(&mut self, topic: &str, kind: WsOpcode, payload: &[u8]) -> BroadcastReport {
        let Some(id) = self.core.topics.lookup(topic) else {
            return BroadcastReport::default();
        };
        if pws::MAX_HEADER_LEN + payload.len() <= SMALL_FRAME {
            if let Some(report) = self.core.publish_in_run(id, opcode_of(kind), payload) {
                self.core.stats.ws_broadcast_deliveries += report.sent as u64;
                return report;
            }
        }
        let members = self.core.topics.members_of(id).to_vec();
        self.ws_broadcast(members, kind, payload)
    }

    /// Subscribers of a topic on this event loop.
    pub fn ws_topic_size(&self, topic: &str) -> usize {
        self.core.topics.members(topic).len()
    }

    /// Starts the close handshake with `code` and a UTF-8 `reason` of at
    /// most 123 bytes; the connection closes when the peer answers (or after
    /// [`crate::WsConfig::close_timeout`]). [`Application::on_ws_close`]
    /// follows once.
    pub fn ws_close(&mut self, client: ClientId, code: u16, reason: &str) -> Result<(), Error> {
        let now = self.core.timers.now;
        let frame = ControlFrame::close(CloseCode(code), reason)
            .map_err(|_| Error::Io(event_manager::Error::Os(libc::EINVAL)))?;
        let timeout = self.core.config.ws.close_timeout;
        let w = self.ws_check(client)?;
        w.close_sent = true;
        w.close_code = Some(code);
        if let Some(conn) = self.core.conn(client) {
            conn.deadline = Some(now + timeout);
        }
        self.core.queue_copy(client, frame.as_bytes());
        Ok(())
    }
}

/// Broadcast frames up to this size (header included, at its largest) go
/// into the broadcast chunk ([`BcastChunk`]) instead of each being shared
/// by reference.
const SMALL_FRAME: usize = 512;

/// The broadcast chunk is sealed before it would pass this size, so that
/// a range's bounds fit in `u32`s and one chunk stays small.
const CHUNK_LIMIT: usize = 64 * 1024;

/// The small broadcast frames encoded since the last flush, back to back:
/// one buffer that every recipient's queue refers to by range (the ranges
/// of consecutive frames merge, so a recipient's frames of one chunk leave
/// in one iovec), made shared when sealed — before any write starts, at
/// the next flush ([`Core::seal_broadcast`]). Each frame is encoded once
/// and no recipient copies it: a recipient costs a range per frame and a
/// reference per chunk, as in `../shared/limit`'s shared batches.
#[derive(Debug, Default)]
pub(crate) struct BcastChunk {
    buf: Vec<u8>,
    /// Connections that queued a range of `buf` as a new item (their
    /// ranges are resolved when it is sealed; ones gone meanwhile are
    /// skipped).
    users: Vec<Pfd>,
    /// Frames of `buf` published to one topic and not yet queued on its
    /// members (see [`Ctx::ws_publish`]).
    run: Option<Run>,
    /// The member list of the last run, kept for the next.
    spare: Vec<Pfd>,
}

/// A topic's run: bytes `start..end` of the broadcast chunk, frames that
/// every one of `members` takes (checked when the run started, and kept
/// true by `headroom`), queued on each of them by [`Core::settle_run`].
#[derive(Debug)]
struct Run {
    topic: u32,
    start: u32,
    end: u32,
    /// The topic's open WebSocket members when the run started, in order.
    members: Vec<Pfd>,
    /// Members left out (gone, not WebSocket, or closing).
    skipped: usize,
    /// Bytes each member could still queue then before its slow-client
    /// limit (`max_queued_bytes`): the run may grow to this length.
    headroom: usize,
}

impl BcastChunk {
    /// Encodes one unmasked frame at the end of the chunk; its range.
    /// The caller seals a chunk that would pass [`CHUNK_LIMIT`] first.
    fn append(&mut self, opcode: Opcode, payload: &[u8]) -> (u32, u32) {
        let start = self.buf.len();
        pws::write_frame(&mut self.buf, true, false, opcode, payload);
        (start as u32, self.buf.len() as u32)
    }

    /// Whether a frame of `len` bytes (at most) still fits.
    fn fits(&self, len: usize) -> bool {
        self.buf.len() + len <= CHUNK_LIMIT
    }
}

impl Core {
    /// Seals the broadcast chunk: every range queued from it becomes a
    /// reference to its bytes, and the next small broadcast starts a new
    /// one. Called before any write starts (and before an export), so no
    /// write or snapshot ever sees an unresolved range.
    pub(crate) fn seal_broadcast(&mut self) {
        self.settle_run();
        if self.bcast.buf.is_empty() {
            return;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.bcast.buf));
        let mut users = std::mem::take(&mut self.bcast.users);
        for &pfd in &users {
            if let Some(conn) = self.conns.get_mut(pfd) {
                conn.out.resolve_shared(&chunk);
            }
        }
        users.clear();
        self.bcast.users = users;
    }

    /// Publishes a small frame to topic `id` in a run (see
    /// [`Ctx::ws_publish`]): extends the topic's run if it is the current
    /// one and every member can take the frame, else ends the current run
    /// and starts one if every open member takes the frame now. `None`
    /// when some member would meet its slow-client limit: the caller
    /// queues the frame per member, applying the policy.
    fn publish_in_run(
        &mut self,
        id: u32,
        opcode: Opcode,
        payload: &[u8],
    ) -> Option<BroadcastReport> {
        // An upper bound of the encoded frame (the checks below may only
        // be stricter than the exact length, never looser).
        let len = pws::MAX_HEADER_LEN + payload.len();
        let BcastChunk { buf, run, .. } = &mut self.bcast;
        if let Some(run) = run {
            let grows = run.topic == id
                && run.end as usize == buf.len()
                && buf.len() + len <= CHUNK_LIMIT
                && (run.end - run.start) as usize + len <= run.headroom;
            if grows {
                pws::write_frame(buf, true, false, opcode, payload);
                run.end = buf.len() as u32;
                return Some(BroadcastReport {
                    sent: run.members.len(),
                    skipped: run.skipped,
                    ..BroadcastReport::default()
                });
            }
        }
        self.settle_run();
        if !self.bcast.fits(len) {
            self.seal_broadcast();
        }
        let max = self.config.ws.max_queued_bytes;
        let mut members = std::mem::take(&mut self.bcast.spare);
        members.clear();
        let (mut skipped, mut headroom) = (0, max);
        for &c in self.topics.members_of(id) {
            let open = self.conns.get(c).filter(|conn| {
                conn.phase == Phase::Open
                    && matches!(&conn.proto, Proto::WebSocket(w) if !w.close_sent)
            });
            let Some(conn) = open else {
                skipped += 1;
                continue;
            };
            // What the member holds, its queue's items included
            // (`OutQueue::footprint`); the run will add one more item.
            let held = conn.out.footprint() + crate::out_queue::ITEM_SIZE;
            if conn.out.bytes() > 0 && held + len > max {
                self.bcast.spare = members;
                return None;
            }
            headroom = headroom.min(max.saturating_sub(held));
            members.push(c);
        }
        let (start, end) = self.bcast.append(opcode, payload);
        let sent = members.len();
        self.bcast.run = Some(Run {
            topic: id,
            start,
            end,
            members,
            skipped,
            headroom,
        });
        Some(BroadcastReport {
            sent,
            skipped,
            ..BroadcastReport::default()
        })
    }

    /// Ends the current run (see [`Ctx::ws_publish`]): queues its range on
    /// each of its members. Called before anything else is queued on any
    /// connection, before a subscription changes or a client closes, and
    /// before the broadcast chunk is sealed.
    #[inline]
    pub(crate) fn settle_run(&mut self) {
        // On every queued write: one load and a branch unless a run is
        // pending.
        if self.bcast.run.is_some() {
            self.settle_pending_run();
        }
    }

    #[cold]
    #[inline(never)]
    fn settle_pending_run(&mut self) {
        let Some(mut run) = self.bcast.run.take() else {
            return;
        };
        for &pfd in &run.members {
            self.queue_shared(pfd, run.start, run.end);
        }
        run.members.clear();
        self.bcast.spare = run.members;
    }

    /// Like [`Core::queue_copy`] for bytes `start..end` of the broadcast
    /// chunk (see [`OutQueue::push_shared`]).
    ///
    /// [`OutQueue::push_shared`]: crate::out_queue::OutQueue::push_shared
    pub(crate) fn queue_shared(&mut self, pfd: Pfd, start: u32, end: u32) {
        let before = self.queued_before(pfd);
        let Some(conn) = self.conn(pfd) else { return };
        if conn.out.push_shared(start, end) {
            self.bcast.users.push(pfd);
        }
        if let Some(before) = before {
            self.count_queued(pfd, before);
        }
        self.mark_dirty(pfd);
    }
}

/// A frame to queue on one client.
enum Frame<'a> {
    /// A large broadcast frame, shared by reference.
    Shared(Bytes),
    /// A small broadcast frame: bytes `start..end` of [`Core::bcast`].
    Chunk(u32, u32),
    /// A header to copy, then the message's buffers.
    Message {
        header: &'a [u8],
        /// The items are the payload, queued as skipped: copy them too.
        copy_payload: bool,
        items: Vec<(OutBuf, Owner, bool)>,
    },
}

/// The frame opcode for what the application sends.
fn opcode_of(kind: WsOpcode) -> Opcode {
    match kind {
        WsOpcode::Text => Opcode::Text,
        WsOpcode::Binary => Opcode::Binary,
        WsOpcode::Ping => Opcode::Ping,
        WsOpcode::Pong => Opcode::Pong,
    }
}

/// One unmasked frame, header and payload in one shared buffer.
fn encode_shared(kind: WsOpcode, payload: &[u8]) -> Bytes {
    let opcode = opcode_of(kind);
    let mut frame = Vec::with_capacity(pws::MAX_HEADER_LEN + payload.len());
    pws::write_frame(&mut frame, true, false, opcode, payload);
    Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every agreement the negotiation can produce survives the two-byte
    /// packing.
    #[test]
    fn agreed_parameters_pack_into_two_bytes() {
        assert_eq!(Agreed::pack(None).get(), None);
        assert!(!Agreed::default().is_on());
        let windows = [None, Some(8), Some(9), Some(12), Some(15)];
        for s in [false, true] {
            for c in [false, true] {
                for sw in windows {
                    for cw in windows {
                        let p = pws::PerMessageDeflate {
                            server_no_context_takeover: s,
                            client_no_context_takeover: c,
                            server_max_window_bits: sw,
                            client_max_window_bits: cw,
                        };
                        assert_eq!(Agreed::pack(Some(p)).get(), Some(p), "{p:?}");
                    }
                }
            }
        }
        assert_eq!(std::mem::size_of::<Agreed>(), 2);
    }
}

// ----- handover (see `handover.rs`) -------------------------------------------

/// A WebSocket connection's state as plain data.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct WsV1 {
    reader: Option<ReaderV1>,
    topics: Vec<u32>,
    close_code: Option<u16>,
    close_sent: bool,
    ping_outstanding: bool,
    deflate: u16,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ReaderV1 {
    decoder: pws::DecoderState,
    /// The message assembled so far; empty when `compressed` is not (it is
    /// inflated again from those bytes).
    #[serde(with = "serde_bytes")]
    msg: Vec<u8>,
    #[serde(with = "serde_bytes")]
    stash: Vec<u8>,
    #[serde(with = "serde_bytes")]
    compressed: Vec<u8>,
    compressed_text: bool,
}

impl WsConn {
    /// The connection's state as plain data. A compression context kept
    /// between messages (when `*_no_context_takeover` was not agreed, which
    /// ringtail asks for by default) cannot be carried: refused.
    pub(crate) fn export(&self, _pfd: ClientId) -> Result<WsV1, Error> {
        if let Some(c) = &self.extra {
            let agreed = self.deflate.get();
            let keeps_inflate =
                c.inflater.is_some() && !agreed.is_some_and(|a| a.client_no_context_takeover);
            if c.deflater.is_some() || keeps_inflate {
                return Err(Error::Handover(
                    "a WebSocket keeps a compression context (no_context_takeover was not agreed)",
                ));
            }
        }
        let reader = self.reader.as_deref().map(|r| ReaderV1 {
            decoder: r.decoder.export(),
            msg: if r.compressed.is_empty() {
                r.msg.clone()
            } else {
                Vec::new()
            },
            stash: r.stash.clone(),
            compressed: r.compressed.clone(),
            compressed_text: r.compressed_text,
        });
        Ok(WsV1 {
            reader,
            topics: self
                .extra
                .as_ref()
                .map(|e| e.topics.clone())
                .unwrap_or_default(),
            close_code: self.close_code,
            close_sent: self.close_sent,
            ping_outstanding: self.ping_outstanding,
            deflate: self.deflate.bits(),
        })
    }

    /// Inverse of [`WsConn::export`], with this server's limits.
    pub(crate) fn import(s: WsV1, config: &crate::ServerConfig) -> Result<WsConn, SnapshotError> {
        let bad = |m: String| SnapshotError::Invalid(m);
        let deflate = Agreed::from_bits(s.deflate)
            .ok_or_else(|| bad(format!("deflate bits {}", s.deflate)))?;
        let limits = ws_limits(config);
        let max = config.ws.max_message_size as u64;
        let mut extra: Option<Box<Extra>> = None;
        let reader = match s.reader {
            None => None,
            Some(r) => {
                let decoder = pws::Decoder::import(r.decoder, &limits, deflate.is_on())
                    .map_err(|e| bad(format!("WebSocket decoder: {e}")))?;
                let mut msg = r.msg;
                if !r.compressed.is_empty() {
                    let agreed = deflate
                        .get()
                        .ok_or_else(|| bad("compressed bytes without deflate".into()))?;
                    let kind = if r.compressed_text {
                        pws::MessageKind::Text
                    } else {
                        pws::MessageKind::Binary
                    };
                    let mut inflater = pws::Inflater::new(&agreed);
                    msg.clear();
                    inflater
                        .inflate(kind, &r.compressed, false, &mut msg, max)
                        .map_err(|e| bad(format!("compressed message in progress: {e}")))?;
                    extra.get_or_insert_default().inflater = Some(inflater);
                }
                if msg.len() as u64 > max {
                    return Err(bad("message in progress over max_message_size".into()));
                }
                Some(Box::new(Reader {
                    decoder,
                    msg,
                    stash: r.stash,
                    compressed: r.compressed,
                    compressed_text: r.compressed_text,
                }))
            }
        };
        if !s.topics.is_empty() {
            extra.get_or_insert_default().topics = s.topics;
        }
        Ok(WsConn {
            reader,
            extra,
            close_code: s.close_code,
            close_sent: s.close_sent,
            ping_outstanding: s.ping_outstanding,
            deflate,
        })
    }
}
