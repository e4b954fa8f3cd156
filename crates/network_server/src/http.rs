//! HTTP/1.1 on a connection: parsing requests out of received bytes
//! (without copying when a request arrives whole), streaming bodies to the
//! application, keep-alive and pipelining (one request answered at a time,
//! in order), `Expect: 100-continue`, error answers, timeouts, and the
//! response operations of [`Ctx`].

use event_manager::{EventManager, OutBuf, Pfd};
use protocol::{BodyDecoder, BodyLength, Limits, Parsed, Version};

use crate::app::{CloseReason, HttpEvent};
use crate::connections::{output_blocked, ClientKind, Conn, PauseReason, Phase, Proto};
use crate::out_queue::Owner;
use crate::server::Core;
use crate::{Application, ClientId, Ctx, Error};
use event_manager::SnapshotError;

/// A request head as the application sees it (borrowed, valid for the
/// callback only).
pub type Request<'a> = protocol::RequestHead<'a, 'a>;

/// A body up to this size given to [`Ctx::http_respond`] is copied next to
/// the head rather than written from its own buffer.
const SMALL_BODY: usize = 1024;

/// Header storage per parse; [`crate::ServerConfig::max_headers`] is capped
/// at this.
const HEADER_SLOTS: usize = 256;

use protocol::{CHUNK_END, CONTINUE as CONTINUE_100, LAST_CHUNK};

/// Where the request currently being received is.
#[derive(Debug, Default)]
pub(crate) enum ReqState {
    /// Waiting for a request head.
    #[default]
    Head,
    /// Receiving the body.
    Body(Box<BodyDecoder>),
    /// Fully received.
    Complete,
}

/// Where the answer to the current request is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RespState {
    /// No request in progress.
    #[default]
    Idle,
    /// A request is in progress and nothing has been answered yet.
    Pending,
    /// Head sent; body being streamed.
    Streaming {
        chunked: bool,
        /// Bytes still owed under a Content-Length.
        remaining: Option<u64>,
    },
    /// The answer is complete (possibly still being written).
    Done,
}

/// Per-connection HTTP state.
#[derive(Debug, Default)]
pub(crate) struct HttpConn {
    /// Received bytes not yet consumed (a partial head, pipelined requests).
    pub(crate) inbuf: Vec<u8>,
    pub(crate) req: ReqState,
    pub(crate) resp: RespState,
    /// Whether the connection stays open after this answer.
    pub(crate) keep_alive: bool,
    /// The client asked to close (or is HTTP/1.0 without keep-alive).
    client_close: bool,
    head: bool,
    version10: bool,
    /// `Expect: 100-continue` seen and `100 Continue` not sent yet.
    expect_continue: bool,
    /// Body bytes are discarded, not delivered (the answer came first).
    discard_body: bool,
    /// Between requests on a kept-alive connection (idle timeout applies).
    idle: bool,
    /// Requests answered on this connection.
    pub(crate) served: u64,
    /// The current request line, kept for the access log (only when
    /// [`crate::ServerConfig::access_log`] is on).
    pub(crate) request_line: Option<Box<str>>,
    /// The peer's address, for the access log.
    pub(crate) peer: Option<std::net::SocketAddr>,
    /// The current request's body being collected
    /// ([`Ctx::http_collect_body`]).
    pub(crate) collect: Option<Box<Collect>>,
    /// The current request's access-log record (only when
    /// [`crate::ServerConfig::access_log`] is on).
    pub(crate) access: Option<Box<crate::access_log::Access>>,
}

/// A request body collected for the application ([`Ctx::http_collect_body`]).
#[derive(Debug, Default)]
pub(crate) struct Collect {
    /// Most bytes the body may have (past it: 413).
    pub(crate) limit: u64,
    /// The body so far.
    pub(crate) buf: Vec<u8>,
}

impl HttpConn {
    fn version(&self) -> Version {
        if self.version10 {
            Version::Http10
        } else {
            Version::Http11
        }
    }

    /// `Ok` if a request is waiting for its answer and nothing of the answer
    /// was sent yet.
    pub(crate) fn check_unanswered(&self, client: ClientId) -> Result<(), Error> {
        match self.resp {
            RespState::Pending => Ok(()),
            _ => Err(self.answer_error(client)),
        }
    }

    /// Why an answer operation does not apply in the current state: no
    /// request, or an answer already given (or started).
    pub(crate) fn answer_error(&self, client: ClientId) -> Error {
        if self.resp == RespState::Idle {
            Error::NoRequest(client)
        } else {
            Error::AlreadyResponded(client)
        }
    }

    /// A request is in progress whose answer is not complete.
    pub(crate) fn awaiting_answer(&self) -> bool {
        matches!(self.resp, RespState::Pending | RespState::Streaming { .. })
    }
}

fn http(conn: &mut Conn) -> Option<&mut HttpConn> {
    match &mut conn.proto {
        Proto::Http(h) => Some(h),
        _ => None,
    }
}

fn reason_phrase_body(status: u16) -> &'static str {
    match status {
        400 => "Bad Request\n",
        408 => "Request Timeout\n",
        413 => "Content Too Large\n",
        // Only an upload answers 415 (`Ctx::http_upload_begin`).
        415 => "Unsupported Media Type: expected a multipart/form-data body\n",
        417 => "Expectation Failed\n",
        431 => "Request Header Fields Too Large\n",
        501 => "Not Implemented\n",
        505 => "HTTP Version Not Supported\n",
        _ => "Error\n",
    }
}

impl Core {
    pub(crate) fn limits(&self) -> Limits {
        http_limits(&self.config)
    }

    /// Feeds newly received bytes (or, with `None`, just the buffered ones)
    /// through the HTTP state machine of connection `pfd`.
    pub(crate) fn process_http<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        new: Option<&[u8]>,
    ) {
        let now = self.timers.now;
        let header_timeout = self.config.header_read_timeout;
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase != Phase::Open {
            return;
        }
        let Some(h) = http(conn) else { return };
        if h.idle && new.is_some_and(|d| !d.is_empty()) {
            // First byte of the next request: the head timeout starts.
            h.idle = false;
            conn.deadline = Some(now + header_timeout);
        }
        let Some(h) = http(conn) else { return };
        let mut owned = std::mem::take(&mut h.inbuf);
        let data: &[u8] = if owned.is_empty() {
            new.unwrap_or(&[])
        } else {
            if let Some(d) = new {
                owned.extend_from_slice(d);
            }
            &owned
        };
        let consumed = self.consume(em, app, pfd, data);
        let rest = &data[consumed..];
        let max_pipelined = self.config.max_pipelined_bytes;
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase != Phase::Open {
            return;
        }
        if matches!(conn.proto, Proto::WebSocket(_)) {
            // Upgraded: frames that came right behind the request.
            if !rest.is_empty() {
                let mut rest = rest.to_vec();
                self.ws_feed(em, app, pfd, &mut rest);
            }
            return;
        }
        let Some(h) = http(conn) else { return };
        if !rest.is_empty() {
            if owned.is_empty() {
                h.inbuf = rest.to_vec();
            } else {
                owned.drain(..consumed);
                h.inbuf = owned;
            }
        } else if !owned.is_empty() {
            owned.clear();
            // Keep a modest buffer around for the next partial head.
            if owned.capacity() <= 4096 {
                h.inbuf = owned;
            }
        }
        let buffered = h.inbuf.len();
        self.stats.input_high_water = self.stats.input_high_water.max(buffered as u64);
        self.set_pause(em, pfd, PauseReason::Pipeline, buffered > max_pipelined);
    }

    /// The parsing loop. Returns how many bytes of `data` were used.
    fn consume<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        data: &[u8],
    ) -> usize {
        let now = self.timers.now;
        let limits = self.limits();
        let header_timeout = self.config.header_read_timeout;
        let access_log = self.config.access_log;
        let pause_above = self.config.pause_reading_above;
        let mut pos = 0;
        loop {
            let Some(conn) = self.conn(pfd) else {
                return data.len();
            };
            if conn.phase != Phase::Open {
                return data.len();
            }
            let blocked = output_blocked(conn, pause_above);
            let Some(h) = http(conn) else {
                // Upgraded to WebSocket by the callback: what follows the
                // request is the first frames (`process_http` feeds them).
                return pos;
            };
            match &mut h.req {
                ReqState::Head => {
                    if h.resp != RespState::Idle || pos == data.len() {
                        return pos;
                    }
                    if blocked {
                        // The peer is not reading its answers: the next
                        // request waits (buffered, bounded by the pipeline
                        // limit) until the output is below half the level.
                        return pos;
                    }
                    let mut storage = protocol::header_storage::<HEADER_SLOTS>();
                    let parsed = protocol::parse_request(&data[pos..], &mut storage, &limits);
                    let (head, n) = match parsed {
                        Ok(Parsed::Partial) => return pos,
                        Ok(Parsed::Complete(head, n)) => (head, n),
                        Err(e) => {
                            self.http_error(em, pfd, e.status());
                            return data.len();
                        }
                    };
                    pos += n;
                    if access_log {
                        // Built to its exact size (no `format!`: it
                        // grows its buffer as it goes).
                        let version = head.version.as_str();
                        let mut line = String::with_capacity(
                            head.method.len() + head.target.len() + version.len() + 2,
                        );
                        for (i, part) in [head.method, head.target, version].iter().enumerate() {
                            if i > 0 {
                                line.push(' ');
                            }
                            line.push_str(part);
                        }
                        h.request_line = Some(line.into_boxed_str());
                        h.access = Some(Box::new(crate::access_log::Access::of(&head, now)));
                    }
                    h.keep_alive = head.keep_alive;
                    h.client_close = !head.keep_alive;
                    h.head = head.method == "HEAD";
                    h.version10 = head.version == Version::Http10;
                    h.discard_body = false;
                    h.collect = None;
                    h.idle = false;
                    h.resp = RespState::Pending;
                    let has_body = head.body.has_body();
                    h.expect_continue = head.expect_continue && has_body;
                    h.req = if has_body {
                        ReqState::Body(Box::new(BodyDecoder::new(head.body, &limits)))
                    } else {
                        ReqState::Complete
                    };
                    // While a body is expected, the head timeout doubles as a
                    // body inactivity timeout.
                    conn.deadline = has_body.then(|| now + header_timeout);
                    self.stats.requests += 1;
                    let request: Request<'_> = head;
                    self.guard(em, Some(pfd), "on_http_read", |ctx| {
                        app.on_http_read(ctx, pfd, HttpEvent::Request(&request))
                    });
                    self.after_request_callback(em, pfd);
                }
                ReqState::Body(decoder) => {
                    if pos == data.len() {
                        return pos;
                    }
                    let step = match decoder.decode(&data[pos..]) {
                        Ok(step) => step,
                        Err(e) => {
                            self.http_error(em, pfd, e.status());
                            return data.len();
                        }
                    };
                    let mut chunk = step.data(&data[pos..]);
                    pos += step.consumed;
                    let discard = h.discard_body;
                    // A collected body is delivered whole, at its end.
                    let collected = match h.collect.as_mut().filter(|_| !discard) {
                        None => None,
                        Some(c) if (c.buf.len() + chunk.len()) as u64 > c.limit => {
                            self.http_error(em, pfd, 413);
                            return data.len();
                        }
                        Some(c) => {
                            c.buf.extend_from_slice(chunk);
                            chunk = &[];
                            step.done.then(|| std::mem::take(&mut c.buf))
                        }
                    };
                    if step.done {
                        h.collect = None;
                        h.req = ReqState::Complete;
                        conn.deadline = None;
                    } else {
                        conn.deadline = Some(now + header_timeout);
                    }
                    if let Some(body) = collected.filter(|b| !b.is_empty()) {
                        self.guard(em, Some(pfd), "on_http_read", |ctx| {
                            app.on_http_read(ctx, pfd, HttpEvent::Body(&body))
                        });
                    }
                    if !chunk.is_empty() && !discard {
                        self.guard(em, Some(pfd), "on_http_read", |ctx| {
                            app.on_http_read(ctx, pfd, HttpEvent::Body(chunk))
                        });
                    }
                    if step.done {
                        if !discard {
                            self.guard(em, Some(pfd), "on_http_read", |ctx| {
                                app.on_http_read(ctx, pfd, HttpEvent::BodyEnd)
                            });
                        }
                        self.maybe_retire(em, pfd);
                    }
                }
                ReqState::Complete => {
                    // Waiting for the answer; the rest stays buffered.
                    return pos;
                }
            }
        }
    }

    /// After the application saw a request head: send `100 Continue` if the
    /// client waits for it and no answer was given, or retire the request.
    fn after_request_callback(&mut self, em: &mut EventManager, pfd: Pfd) {
        let Some(conn) = self.conn(pfd) else { return };
        let Some(h) = http(conn) else { return };
        if h.expect_continue && h.resp == RespState::Pending {
            h.expect_continue = false;
            self.queue(
                em,
                pfd,
                [(OutBuf::Static(CONTINUE_100), Owner::Server, false)],
            );
        }
        self.maybe_retire(em, pfd);
    }

    /// A request whose body is in and whose answer is complete is done:
    /// keep the connection for the next one, or close it.
    pub(crate) fn maybe_retire(&mut self, em: &mut EventManager, pfd: Pfd) {
        let now = self.timers.now;
        let keepalive = self.config.keepalive_timeout;
        let header_timeout = self.config.header_read_timeout;
        let shutting_down = self.shutting_down();
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase != Phase::Open {
            return;
        }
        let Some(h) = http(conn) else { return };
        if h.resp != RespState::Done {
            return;
        }
        if !matches!(h.req, ReqState::Complete) {
            // Answered before the body was read. If the client is waiting for
            // 100 Continue it will not send the body: close after the answer.
            // Otherwise read and discard the body to keep the connection.
            if h.expect_continue {
                h.keep_alive = false;
            } else {
                h.discard_body = true;
                return;
            }
        }
        h.served += 1;
        if h.request_line.is_some() && self.config.access_log {
            self.log_request(pfd);
        }
        let Some(conn) = self.conn(pfd) else { return };
        let Some(h) = http(conn) else { return };
        if !h.keep_alive || shutting_down {
            let reason = if shutting_down {
                CloseReason::Shutdown
            } else if h.client_close {
                CloseReason::Peer
            } else {
                CloseReason::Application
            };
            return self.begin_close(em, pfd, reason);
        }
        h.req = ReqState::Head;
        h.resp = RespState::Idle;
        h.expect_continue = false;
        h.discard_body = false;
        let pending_input = !h.inbuf.is_empty();
        h.idle = !pending_input;
        conn.deadline = Some(
            now + if pending_input {
                header_timeout
            } else {
                keepalive
            },
        );
        if pending_input {
            self.conns.push_ready(pfd);
        } else if conn.peer_eof() {
            self.begin_close(em, pfd, CloseReason::Peer);
        } else {
            self.update_recv(em, pfd);
        }
    }

    /// Answers a protocol error with `status` and `Connection: close`, then
    /// closes; if an answer was already started, just closes.
    pub(crate) fn http_error(&mut self, em: &mut EventManager, pfd: Pfd, status: u16) {
        self.stats.protocol_errors += 1;
        self.response_started(pfd, status);
        let Some(conn) = self.conn(pfd) else { return };
        let Some(h) = http(conn) else { return };
        tracing::debug!(%pfd, status, "protocol error");
        let reason = CloseReason::ProtocolError(status);
        if matches!(h.resp, RespState::Idle | RespState::Pending) {
            h.resp = RespState::Done;
            h.req = ReqState::Complete;
            h.keep_alive = false;
            let body = reason_phrase_body(status);
            let version = if h.version10 {
                Version::Http10
            } else {
                Version::Http11
            };
            let mut head = Vec::with_capacity(160);
            let written = self.write_head(
                &mut head,
                status,
                version,
                false,
                &[("Content-Type", "text/plain")],
                BodyLength::Known(body.len() as u64),
            );
            debug_assert!(written.is_ok());
            self.queue(
                em,
                pfd,
                [
                    (OutBuf::Vec(head), Owner::Server, false),
                    (OutBuf::Static(body.as_bytes()), Owner::Server, false),
                ],
            );
            self.begin_close(em, pfd, reason);
        } else if h.resp == RespState::Done {
            // Answered before the (bad) body: the answer is complete, so it
            // is still written; then the connection closes.
            h.keep_alive = false;
            self.begin_close(em, pfd, reason);
        } else {
            // A streamed answer is under way: nothing can follow it.
            self.hard_close(em, pfd, Some(reason));
        }
    }

    /// A connection's deadline passed while open.
    pub(crate) fn on_timeout(&mut self, em: &mut EventManager, pfd: Pfd) {
        let now = self.timers.now;
        let keepalive = self.config.keepalive_timeout;
        let Some(conn) = self.conn(pfd) else { return };
        if matches!(conn.proto, Proto::Http(_)) && !conn.out.is_idle() {
            // Not idle: the last answer is still being written.
            conn.deadline = Some(now + keepalive);
            return;
        }
        let (recv, pause) = (conn.recv_state(), conn.pause);
        match &mut conn.proto {
            Proto::WebSocket(_) => self.ws_timeout(em, pfd),
            Proto::Http(h) => {
                let idle_between_requests =
                    h.resp == RespState::Idle && h.inbuf.is_empty() && (h.idle || h.served == 0);
                if idle_between_requests {
                    tracing::debug!(%pfd, served = h.served, ?recv, ?pause, "idle: closing quietly");
                    // Nothing started: close quietly (RFC 9112 §9.5).
                    conn.reason = CloseReason::Timeout;
                    self.begin_close(em, pfd, CloseReason::Timeout);
                } else {
                    // A slow head or a stalled body: 408, then close.
                    self.http_error(em, pfd, 408);
                    if let Some(conn) = self.conn(pfd) {
                        conn.reason = CloseReason::Timeout;
                    }
                }
            }
            _ => self.hard_close(em, pfd, Some(CloseReason::Timeout)),
        }
    }

    /// Writes a response head for the current request of `h` into `out`.
    fn write_head(
        &mut self,
        out: &mut Vec<u8>,
        status: u16,
        version: Version,
        keep_alive: bool,
        headers: &[(&str, &str)],
        body: BodyLength,
    ) -> Result<(), protocol::Error> {
        crate::head::write_head(
            out,
            self.date.at(self.timers.wall),
            self.config.server_name.as_deref(),
            status,
            version,
            keep_alive,
            headers,
            body,
        )
    }
}

// ----- the application's HTTP operations -----------------------------------

impl Ctx<'_> {
    fn http_conn(&mut self, client: ClientId) -> Result<&mut HttpConn, Error> {
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        if conn.phase != Phase::Open {
            return Err(Error::Closing(client));
        }
        http(conn).ok_or(Error::WrongProtocol(client))
    }

    /// Answers the current request with a complete response: `status`, the
    /// given headers (ringtail adds `Date`, `Server`, `Content-Length` and,
    /// when needed, `Connection`), and `body`. The body comes back in
    /// [`Application::on_http_write`] once it is written (a small one is
    /// copied next to the head and still comes back). For `HEAD` the body is
    /// not sent (its length is).
    ///
    /// To answer with bytes you do not need back — a body formatted for
    /// this request, a fixed page — [`Ctx::http_respond_copy`] is cheaper.
    pub fn http_respond(
        &mut self,
        client: ClientId,
        status: u16,
        headers: &[(&str, &str)],
        body: impl Into<OutBuf>,
    ) -> Result<(), Error> {
        let body = body.into();
        let copy_body = body.len() <= SMALL_BODY;
        let bodiless = self.respond(client, status, headers, body.as_slice(), copy_body)?;
        // The buffer is queued even when its bytes were copied (skipped:
        // nothing more goes on the wire), so that it comes back with
        // `on_http_write` once the bytes before it are out.
        self.core.queue(
            self.em,
            client,
            [(body, Owner::App { last: true }, bodiless || copy_body)],
        );
        self.core.maybe_retire(self.em, client);
        Ok(())
    }

    /// [`Ctx::http_respond`] with the body copied into the connection's
    /// output (where its head and pipelined answers join it: one buffer, one
    /// `send`) and nothing handed back: no
    /// [`Application::on_http_write`] follows for this answer.
    ///
    /// For bodies built per request (reuse one scratch buffer) and small
    /// fixed ones; a large body you keep anyway is better given to
    /// `http_respond`, which writes it without a copy. The copy counts
    /// toward the connection's queued bytes like any write.
    ///
    /// ```no_run
    /// # use network_server::{Application, ClientId, Ctx, HttpEvent};
    /// # struct App { scratch: Vec<u8>, hits: u64 }
    /// # impl Application for App {
    /// fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
    ///     if let HttpEvent::Request(_) = ev {
    ///         use std::io::Write;
    ///         self.hits += 1;
    ///         self.scratch.clear();
    ///         let _ = writeln!(self.scratch, "hit {}", self.hits);
    ///         let _ = ctx.http_respond_copy(client, 200, &[("Content-Type", "text/plain")], &self.scratch);
    ///     }
    /// }
    /// # }
    /// ```
    pub fn http_respond_copy(
        &mut self,
        client: ClientId,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), Error> {
        self.respond(client, status, headers, body, true)?;
        self.core.maybe_retire(self.em, client);
        Ok(())
    }

    /// What [`Ctx::http_respond`] and [`Ctx::http_respond_copy`] share: the
    /// checks, the head (and, with `copy_body`, the body) queued, the
    /// answer marked complete. Returns whether the answer has no body on
    /// the wire (`HEAD`, 1xx, 204, 304).
    fn respond(
        &mut self,
        client: ClientId,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        copy_body: bool,
    ) -> Result<bool, Error> {
        self.writable(client, ClientKind::Http, body.len())?;
        let h = self.http_conn(client)?;
        h.check_unanswered(client)?;
        let no_content = status == 204 || status == 304 || (100..200).contains(&status);
        let bodiless = h.head || no_content;
        if h.expect_continue && !matches!(h.req, ReqState::Complete) {
            // Answered before asking for the body: the client will not send
            // it, so the connection cannot carry another request.
            h.keep_alive = false;
        }
        let (version, keep_alive) = (h.version(), h.keep_alive);
        let length = if no_content {
            BodyLength::None
        } else {
            BodyLength::Known(body.len() as u64)
        };
        // The head goes into the connection's copy buffer (where pipelined
        // answers join it), and so does a copied body.
        let copy_body = copy_body && !bodiless;
        let size = 128 + headers.len() * 32 + if copy_body { body.len() } else { 0 };
        let written = self
            .core
            .queue_with(client, size, |out, date, config, heads| {
                heads.write(
                    out,
                    date,
                    config.server_name.as_deref(),
                    status,
                    version,
                    keep_alive,
                    headers,
                    length,
                )?;
                if copy_body {
                    out.extend_from_slice(body);
                }
                Ok::<(), protocol::Error>(())
            });
        match written {
            Some(Ok(())) => {}
            Some(Err(_)) => return Err(Error::InvalidHeader(client)),
            None => return Err(Error::Stale(client)),
        }
        let h = self.http_conn(client)?;
        h.resp = RespState::Done;
        self.core.response_started(client, status);
        Ok(bodiless)
    }

    /// Starts a streamed answer: writes the head now; the body follows with
    /// [`Ctx::http_write`] / [`Ctx::http_writev`] and ends with
    /// [`Ctx::http_end`]. With `length: None` the body is sent chunked
    /// (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
    pub fn http_respond_head(
        &mut self,
        client: ClientId,
        status: u16,
        headers: &[(&str, &str)],
        length: Option<u64>,
    ) -> Result<(), Error> {
        self.writable(client, ClientKind::Http, 0)?;
        let h = self.http_conn(client)?;
        h.check_unanswered(client)?;
        let chunked = length.is_none() && !h.version10;
        let (version, keep_alive) = (h.version(), h.keep_alive);
        let body = match length {
            Some(n) => BodyLength::Known(n),
            None if chunked => BodyLength::Chunked,
            None => BodyLength::CloseDelimited,
        };
        let mut head = Vec::with_capacity(128 + headers.len() * 32);
        self.core
            .write_head(&mut head, status, version, keep_alive, headers, body)
            .map_err(|_| Error::InvalidHeader(client))?;
        let h = self.http_conn(client)?;
        if body == BodyLength::CloseDelimited {
            h.keep_alive = false;
        }
        h.resp = RespState::Streaming {
            chunked,
            remaining: length,
        };
        self.core.response_started(client, status);
        self.core
            .queue(self.em, client, [(OutBuf::Vec(head), Owner::Server, false)]);
        Ok(())
    }

    /// Writes part of a streamed body. The buffer comes back in
    /// [`Application::on_http_write`].
    pub fn http_write(&mut self, client: ClientId, buf: impl Into<OutBuf>) -> Result<(), Error> {
        self.http_writev(client, vec![buf.into()])
    }

    /// Writes several buffers of a streamed body, without copying them
    /// together.
    pub fn http_writev(&mut self, client: ClientId, bufs: Vec<OutBuf>) -> Result<(), Error> {
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        self.writable(client, ClientKind::Http, len as usize)?;
        let h = self.http_conn(client)?;
        let RespState::Streaming { chunked, remaining } = &mut h.resp else {
            return Err(h.answer_error(client));
        };
        if let Some(r) = remaining {
            if len > *r {
                return Err(Error::BodyOverrun(client));
            }
            *r -= len;
        }
        let skip = h.head;
        if *chunked && len > 0 && !skip {
            let mut size_line = Vec::with_capacity(18);
            protocol::write_chunk_header(&mut size_line, len);
            self.core.queue(
                self.em,
                client,
                [(OutBuf::Vec(size_line), Owner::Server, false)],
            );
            self.queue_app(client, bufs, false);
            self.core.queue(
                self.em,
                client,
                [(OutBuf::Static(CHUNK_END), Owner::Server, false)],
            );
        } else {
            self.queue_app(client, bufs, skip);
        }
        Ok(())
    }

    /// Ends a streamed answer. If fewer bytes than the announced
    /// Content-Length were written, the connection is closed afterwards (the
    /// client could not otherwise tell).
    pub fn http_end(&mut self, client: ClientId) -> Result<(), Error> {
        let h = self.http_conn(client)?;
        let RespState::Streaming { chunked, remaining } = h.resp else {
            return Err(h.answer_error(client));
        };
        if remaining.is_some_and(|r| r > 0) {
            h.keep_alive = false;
        }
        h.resp = RespState::Done;
        if chunked && !h.head {
            self.core.queue(
                self.em,
                client,
                [(OutBuf::Static(LAST_CHUNK), Owner::Server, false)],
            );
        }
        self.core.maybe_retire(self.em, client);
        Ok(())
    }

    /// Checks that `client` has a request without a body waiting for its
    /// answer (an upgrade request) and marks it answered.
    pub(crate) fn http_take_over(&mut self, client: ClientId) -> Result<(), Error> {
        let h = self.http_conn(client)?;
        h.check_unanswered(client)?;
        if !matches!(h.req, ReqState::Complete) {
            // A request with a body cannot be upgraded (RFC 6455 §4.1: GET).
            return Err(Error::WrongProtocol(client));
        }
        h.resp = RespState::Done;
        Ok(())
    }

    /// Collects the body of `client`'s current request — at most `limit`
    /// bytes — and delivers it whole: one [`HttpEvent::Body`] with every
    /// byte (none for an empty body), then [`HttpEvent::BodyEnd`], instead
    /// of a `Body` event per piece as it arrives. For small bodies (a form,
    /// a JSON document) whose pieces the application would only glue
    /// together. Call it from the [`HttpEvent::Request`] callback, before
    /// any of the body was delivered.
    ///
    /// A body longer than `limit` is answered `413 Content Too Large` and
    /// the connection closed ([`crate::CloseReason::ProtocolError`]`(413)`):
    /// at once when its `Content-Length` says so (nothing of it is read),
    /// else as soon as the bytes received cross it (chunked). The server
    /// holds at most `limit` bytes for the connection meanwhile (and never
    /// more than [`crate::ServerConfig::max_body_size`], which still
    /// applies). A request without a body has no `Body` or `BodyEnd`
    /// events, as always. A body being collected goes with the connection
    /// through a handover.
    ///
    /// Fails with [`Error::NoRequest`] / [`Error::AlreadyResponded`] when
    /// there is no unanswered request, and [`Error::BodyStarted`] once body
    /// bytes were delivered.
    ///
    /// ```no_run
    /// # use network_server::{Application, ClientId, Ctx, HttpEvent};
    /// struct Form;
    /// impl Application for Form {
    ///     fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
    ///         match ev {
    ///             HttpEvent::Request(req) if req.body.has_body() => {
    ///                 let _ = ctx.http_collect_body(client, 64 * 1024);
    ///             }
    ///             HttpEvent::Request(_) => {
    ///                 let _ = ctx.http_respond(client, 400, &[], "a body, please\n");
    ///             }
    ///             HttpEvent::Body(whole) => {
    ///                 let reply = format!("{} bytes\n", whole.len());
    ///                 let _ = ctx.http_respond(client, 200, &[], reply);
    ///             }
    ///             HttpEvent::BodyEnd => {}
    ///         }
    ///     }
    /// }
    /// ```
    pub fn http_collect_body(&mut self, client: ClientId, limit: usize) -> Result<(), Error> {
        let h = self.http_conn(client)?;
        h.check_unanswered(client)?;
        let limit = limit as u64;
        let declared = match &h.req {
            ReqState::Body(d) if d.body_len() > 0 || h.collect.is_some() => {
                return Err(Error::BodyStarted(client))
            }
            ReqState::Body(d) => match d.export() {
                protocol::BodyState::Length(l) => Some(l.len),
                protocol::BodyState::Chunked(_) => None,
            },
            // No body (or all of it delivered): nothing to collect.
            ReqState::Head | ReqState::Complete => return Ok(()),
        };
        if declared.is_some_and(|n| n > limit) {
            self.core.http_error(self.em, client, 413);
            return Ok(());
        }
        h.collect = Some(Box::new(Collect {
            limit,
            buf: Vec::new(),
        }));
        Ok(())
    }

    /// Closes an HTTP connection gracefully: what is queued is written, the
    /// write side shut down, then the connection closed;
    /// [`Application::on_http_close`] follows once.
    pub fn http_close(&mut self, client: ClientId) -> Result<(), Error> {
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        if !matches!(conn.proto, Proto::Http(_)) {
            return Err(Error::WrongProtocol(client));
        }
        self.core
            .begin_close(self.em, client, CloseReason::Application);
        Ok(())
    }
}

/// The protocol crate's request limits from the server's configuration.
fn http_limits(config: &crate::ServerConfig) -> Limits {
    let mut l = Limits::default();
    l.max_head_size = config.max_head_size;
    l.max_headers = config.max_headers.min(HEADER_SLOTS);
    l.max_body_size = config.max_body_size;
    l
}

// ----- handover (see `handover.rs`) -------------------------------------------

/// An HTTP connection's state as plain data.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct HttpV1 {
    #[serde(with = "serde_bytes")]
    inbuf: Vec<u8>,
    req: ReqV1,
    resp: RespV1,
    keep_alive: bool,
    client_close: bool,
    head: bool,
    version10: bool,
    expect_continue: bool,
    discard_body: bool,
    idle: bool,
    served: u64,
    request_line: Option<String>,
    peer: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum ReqV1 {
    Head,
    Body(protocol::BodyState),
    Complete,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum RespV1 {
    Idle,
    Pending,
    Streaming {
        chunked: bool,
        remaining: Option<u64>,
    },
    Done,
}

impl HttpV1 {
    /// Whether the request's body is being received.
    pub(crate) fn in_body(&self) -> bool {
        matches!(self.req, ReqV1::Body(_))
    }
}

impl HttpConn {
    /// While quiescing: received bytes are kept unparsed (the resume parses
    /// them). Returns whether they begin a new request (its head timeout
    /// starts now).
    pub(crate) fn keep_input(&mut self, data: &[u8]) -> bool {
        let starts = self.idle && !data.is_empty();
        if starts {
            self.idle = false;
        }
        self.inbuf.extend_from_slice(data);
        starts
    }

    /// The connection's state as plain data.
    pub(crate) fn export(&self) -> HttpV1 {
        HttpV1 {
            inbuf: self.inbuf.clone(),
            req: match &self.req {
                ReqState::Head => ReqV1::Head,
                ReqState::Body(d) => ReqV1::Body(d.export()),
                ReqState::Complete => ReqV1::Complete,
            },
            resp: match self.resp {
                RespState::Idle => RespV1::Idle,
                RespState::Pending => RespV1::Pending,
                RespState::Streaming { chunked, remaining } => {
                    RespV1::Streaming { chunked, remaining }
                }
                RespState::Done => RespV1::Done,
            },
            keep_alive: self.keep_alive,
            client_close: self.client_close,
            head: self.head,
            version10: self.version10,
            expect_continue: self.expect_continue,
            discard_body: self.discard_body,
            idle: self.idle,
            served: self.served,
            request_line: self.request_line.as_deref().map(str::to_string),
            peer: self.peer.map(|p| p.to_string()),
        }
    }

    /// Inverse of [`HttpConn::export`], with this server's limits.
    pub(crate) fn import(
        s: HttpV1,
        config: &crate::ServerConfig,
    ) -> Result<HttpConn, SnapshotError> {
        let req = match s.req {
            ReqV1::Head => ReqState::Head,
            ReqV1::Body(b) => ReqState::Body(Box::new(
                BodyDecoder::import(b, &http_limits(config))
                    .map_err(|e| SnapshotError::Invalid(format!("HTTP body decoder: {e}")))?,
            )),
            ReqV1::Complete => ReqState::Complete,
        };
        let peer = match s.peer {
            None => None,
            Some(p) => Some(
                p.parse()
                    .map_err(|_| SnapshotError::Invalid(format!("peer address {p:?}")))?,
            ),
        };
        Ok(HttpConn {
            inbuf: s.inbuf,
            req,
            resp: match s.resp {
                RespV1::Idle => RespState::Idle,
                RespV1::Pending => RespState::Pending,
                RespV1::Streaming { chunked, remaining } => {
                    RespState::Streaming { chunked, remaining }
                }
                RespV1::Done => RespState::Done,
            },
            keep_alive: s.keep_alive,
            client_close: s.client_close,
            head: s.head,
            version10: s.version10,
            expect_continue: s.expect_continue,
            discard_body: s.discard_body,
            idle: s.idle,
            served: s.served,
            request_line: s.request_line.map(String::into_boxed_str),
            peer,
            collect: None,
            access: None,
        })
    }
}
