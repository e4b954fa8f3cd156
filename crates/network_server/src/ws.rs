//! WebSocket connections: the upgrade from HTTP, reading frames and
//! assembling messages (through `protocol::ws`), automatic pongs, the close
//! handshake, sending, broadcast of one shared frame to many clients,
//! topics, the slow-client policy, and idle pings.

use bytes::Bytes;
use event_manager::{EventManager, OutBuf, Pfd};
use protocol::ws::{self as pws, CloseCode, ControlFrame, Opcode};

use crate::app::{CloseReason, WsOpcode};
use crate::out_queue::Owner;
use crate::server::{output_blocked, ClientKind, Core, Phase, Proto};
use crate::{Application, ClientId, Ctx, Error, Request, SlowClientPolicy};

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

/// Per-connection WebSocket state. Rarely used parts (the deflate streams)
/// are boxed and only allocated when negotiated.
#[derive(Debug)]
pub(crate) struct WsConn {
    /// Decoder and message buffer; `None` once the periodic sweep found
    /// them idle (no message in progress: an idle client holds neither),
    /// recreated by the next receive.
    pub(crate) reader: Option<Box<Reader>>,
    pub(crate) deflate: Option<Box<Deflate>>,
    /// Topic ids this client is subscribed to; `None` for none. Boxed on
    /// purpose: a thin pointer costs every client's slot 8 bytes where a
    /// `Vec` would cost 24, and subscribing is rare next to idling.
    #[allow(clippy::box_collection)]
    pub(crate) topics: Option<Box<Vec<u32>>>,
    /// Status for the close callback.
    pub(crate) close_code: Option<u16>,
    pub(crate) close_sent: bool,
    pub(crate) ping_outstanding: bool,
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
}

impl Reader {
    fn new(limits: &pws::Config, compression: bool) -> Box<Reader> {
        Box::new(Reader {
            decoder: pws::Decoder::new(limits, compression),
            msg: Vec::new(),
            stash: Vec::new(),
        })
    }

    /// Between messages with nothing buffered: dropping it loses nothing (a
    /// new decoder starts in the same state).
    pub(crate) fn is_idle(&self) -> bool {
        self.msg.is_empty() && self.stash.is_empty() && self.decoder.is_idle()
    }
}

/// Negotiated permessage-deflate streams.
#[derive(Debug)]
pub(crate) struct Deflate {
    pub(crate) inflater: pws::Inflater,
    pub(crate) deflater: pws::Deflater,
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

/// The protocol crate's limits and deflate terms from the server's
/// configuration.
fn ws_limits(config: &crate::ServerConfig) -> pws::Config {
    let mut c = pws::Config::default();
    c.max_message_size = config.ws.max_message_size as u64;
    c.max_frame_size = config.ws.max_frame_size as u64;
    if config.ws.permessage_deflate {
        c.deflate = Some(pws::DeflateConfig::default());
    }
    c
}

fn ws(conn: &mut crate::server::Conn) -> Option<&mut WsConn> {
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
        let now = self.now;
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
                let compression = w.deflate.is_some();
                let reader = w
                    .reader
                    .get_or_insert_with(|| Reader::new(&limits, compression));
                reader.stash.extend_from_slice(data);
                return;
            }
            let compression = w.deflate.is_some();
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
        let Some(w) = self.conn(pfd).and_then(ws) else {
            return;
        };
        let WsConn {
            reader, deflate, ..
        } = w;
        let Some(Reader { msg, .. }) = reader.as_deref_mut() else {
            return; // data comes only out of a reader's decoder
        };
        let piece = &input[d.data.clone()];
        if d.fin && msg.is_empty() && !d.compressed {
            self.stats.ws_messages_in += 1;
            self.guard(em, Some(pfd), "on_ws_read", |ctx| {
                app.on_ws_read(ctx, pfd, d.kind.into(), piece)
            });
            return;
        }
        if d.compressed {
            let Some(deflate) = deflate.as_mut() else {
                return self.ws_fail(em, pfd, CloseCode::PROTOCOL_ERROR);
            };
            if let Err(e) = deflate.inflater.inflate(d.kind, piece, d.fin, msg, max) {
                return self.ws_fail(em, pfd, e.close_code());
            }
        } else {
            msg.extend_from_slice(piece);
        }
        if !d.fin {
            return;
        }
        let msg = std::mem::take(msg);
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
        let now = self.now;
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

    /// Removes a closed client from its topics.
    pub(crate) fn ws_forget(&mut self, pfd: Pfd, topics: &[u32]) {
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
        if conn.out.bytes() > 0 && conn.out.bytes() + len > max {
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
            Frame::Copy(bytes) => self.queue_copy(pfd, bytes),
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
        let now = self.core.now;
        self.writable(client, ClientKind::Http, 0)?;
        let config = ws_limits(&self.core.config);
        let level = config.deflate.map_or(6, |d| d.level);
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
        let interval = self.core.config.ws.ping_interval;
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        let deflate = agreed.map(|params| {
            Box::new(Deflate {
                inflater: pws::Inflater::new(&params),
                deflater: pws::Deflater::new(&params, level),
            })
        });
        conn.proto = Proto::WebSocket(WsConn {
            reader: Some(Reader::new(&config, deflate.is_some())),
            deflate,
            topics: None,
            close_code: None,
            close_sent: false,
            ping_outstanding: false,
        });
        conn.deadline = Some(now + interval);
        self.core.stats.ws_upgrades += 1;
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
        let w = self.ws_check(client)?;
        if opcode.is_control() && len > pws::MAX_CONTROL_PAYLOAD {
            return Err(Error::Io(event_manager::Error::Os(libc::EMSGSIZE)));
        }
        let mut items: Vec<(OutBuf, Owner, bool)> = Vec::with_capacity(bufs.len() + 1);
        let n = bufs.len();
        let header = match w.deflate.as_mut() {
            Some(d) if !opcode.is_control() && len >= min_compress => {
                let mut compressed = Vec::with_capacity(len / 2 + 16);
                for (i, b) in bufs.iter().enumerate() {
                    d.deflater
                        .compress(b.as_slice(), i + 1 == n, &mut compressed)
                        .map_err(|_| Error::Io(event_manager::Error::Os(libc::EIO)))?;
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
        let frame = encode_shared(kind, payload);
        let mut report = BroadcastReport::default();
        // A small frame is copied into each recipient's queue (where it
        // joins the frames queued before it in one buffer); a large one is
        // shared by reference.
        let small = frame.len() <= SMALL_FRAME;
        for c in clients {
            let item = if small {
                Frame::Copy(&frame)
            } else {
                Frame::Shared(frame.clone())
            };
            self.core
                .ws_queue_frame(self.em, c, item, frame.len(), &mut report);
        }
        self.core.stats.ws_broadcast_deliveries += report.sent as u64;
        self.core.stats.ws_broadcast_drops += (report.dropped + report.closed) as u64;
        report
    }

    /// Subscribes a WebSocket client to a topic (idempotent). Subscriptions
    /// end when the client closes.
    pub fn ws_subscribe(&mut self, client: ClientId, topic: &str) -> Result<(), Error> {
        self.ws_check(client)?;
        let (id, new) = self.core.topics.subscribe(topic, client);
        if new {
            if let Some(w) = self.core.conn(client).and_then(ws) {
                w.topics.get_or_insert_default().push(id);
            }
        }
        Ok(())
    }

    /// Unsubscribes a client from a topic.
    pub fn ws_unsubscribe(&mut self, client: ClientId, topic: &str) -> Result<(), Error> {
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        ws(conn).ok_or(Error::WrongProtocol(client))?;
        if let Some(id) = self.core.topics.lookup(topic) {
            if self.core.topics.unsubscribe_id(id, client) {
                if let Some(w) = self.core.conn(client).and_then(ws) {
                    if let Some(topics) = &mut w.topics {
                        topics.retain(|&t| t != id);
                        if topics.is_empty() {
                            w.topics = None;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Broadcasts to a topic's subscribers.
    pub fn ws_publish(&mut self, topic: &str, kind: WsOpcode, payload: &[u8]) -> BroadcastReport {
        let members = self.core.topics.members(topic).to_vec();
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
        let now = self.core.now;
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

/// Broadcast frames up to this size are copied into each recipient's queue
/// instead of shared by reference (see [`OutQueue::push_copy`]).
///
/// [`OutQueue::push_copy`]: crate::out_queue::OutQueue::push_copy
const SMALL_FRAME: usize = 512;

/// A frame to queue on one client.
enum Frame<'a> {
    /// A large broadcast frame, shared by reference.
    Shared(Bytes),
    /// Bytes to copy (a small broadcast frame).
    Copy(&'a [u8]),
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
