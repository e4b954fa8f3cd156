//! # network_server — connections and protocols on top of `event_manager`
//!
//! The second layer of ringtail, built only on `event_manager`'s public
//! interface. A [`Server`] owns one event manager (one io_uring ring), its
//! listeners and its connections. It decides each connection's protocol —
//! HTTP/1.1 on an HTTP listener, RAW on a RAW listener or for a descriptor
//! the application hands over — parses requests, frames responses, keeps
//! per-connection state (parser progress, outgoing queue, timers, close
//! state), and calls the application through the callbacks of
//! [`Application`] (eleven for connections and eventfds, plus `on_ws_open`
//! and `on_file`; all have empty defaults).
//!
//! ```no_run
//! use network_server::{Application, ClientId, Ctx, HttpEvent, Protocol, Server, ServerConfig};
//!
//! struct Hello;
//! impl Application for Hello {
//!     fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
//!         if let HttpEvent::Request(_) = ev {
//!             let _ = ctx.http_respond(client, 200, &[("Content-Type", "text/plain")], "Hello, World!");
//!         }
//!     }
//! }
//!
//! let mut server = Server::new(ServerConfig::default())?;
//! server.listen("127.0.0.1:8080".parse().unwrap(), Protocol::Http)?;
//! server.run(&mut Hello)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The rest of this page is what an application author needs first:
//! [WebSocket](#websocket), [requests](#requests-paths-queries-and-bodies),
//! [per-client state](#per-client-state), [threads](#threads-one-server-per-thread),
//! [shutdown](#shutdown), [panics](#panics),
//! [backpressure and buffer reuse](#backpressure-and-buffer-reuse), and the
//! [examples](#examples) to run. `docs/guide.md` in the repository walks
//! through the same ground at more length.
//!
//! ## WebSocket
//!
//! A WebSocket starts as an HTTP request: answer it with
//! [`Ctx::ws_upgrade`] in [`Application::on_http_read`] (a request that is
//! not a valid handshake is answered 400/426 by the call itself). Then:
//!
//! * [`Application::on_ws_open`] — once, right after the upgrading
//!   callback returns: greet the client, subscribe it to topics;
//! * [`Application::on_ws_read`] — one call per complete message (text is
//!   validated UTF-8; pings are answered for you);
//! * [`Ctx::ws_send`] / [`Ctx::ws_sendv`] to one client,
//!   [`Ctx::ws_broadcast`] to any list of clients, or [`Ctx::ws_subscribe`]
//!   + [`Ctx::ws_publish`] by topic (the frame is encoded once for all);
//! * [`Ctx::ws_close`] to close with a code;
//!   [`Application::on_ws_close`] fires exactly once either way.
//!
//! ```no_run
//! use network_server::{Application, ClientId, Ctx, HttpEvent, Protocol, Server, ServerConfig, WsOpcode};
//!
//! struct Room;
//! impl Application for Room {
//!     fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
//!         match ev {
//!             HttpEvent::Request(req) if req.path == "/ws" => {
//!                 let _ = ctx.ws_upgrade(client, req, None);
//!             }
//!             HttpEvent::Request(_) => {
//!                 let _ = ctx.http_respond(client, 404, &[], "Not Found\n");
//!             }
//!             _ => {}
//!         }
//!     }
//!     fn on_ws_open(&mut self, ctx: &mut Ctx<'_>, client: ClientId) {
//!         let _ = ctx.ws_subscribe(client, "room");
//!         let _ = ctx.ws_send(client, WsOpcode::Text, "welcome");
//!     }
//!     fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, _client: ClientId, op: WsOpcode, data: &[u8]) {
//!         if op == WsOpcode::Text {
//!             ctx.ws_publish("room", op, data); // to every member, the sender too
//!         }
//!     }
//! }
//!
//! let mut server = Server::new(ServerConfig::default())?;
//! server.listen("127.0.0.1:8080".parse()?, Protocol::Http)?;
//! server.run(&mut Room)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Requests: paths, queries and bodies
//!
//! A [`Request`] is the parsed head, borrowed for the callback:
//! `method`, `target`, `path` (raw), `query` (raw), `headers`
//! ([`Request::header`]). [`Request::path_decoded`] percent-decodes the
//! path; [`Request::query_pairs`] and [`Request::query_param`] read the
//! query as form pairs. A body arrives as [`HttpEvent::Body`] pieces and
//! one [`HttpEvent::BodyEnd`] — streamed, never buffered whole — unless
//! the application asks for it whole with [`Ctx::http_collect_body`] (up
//! to a limit; 413 past it). Files are answered with
//! [`Ctx::http_send_file`] (ranges, conditional requests, a cache) and
//! `multipart/form-data` uploads go to disk with [`Ctx::http_upload_begin`].
//! Answer with [`Ctx::http_respond`], or stream with
//! [`Ctx::http_respond_head`], [`Ctx::http_write`] and [`Ctx::http_end`];
//! an answer may come later, from another callback (an eventfd, a file
//! operation): the connection waits, bounded by its timeouts.
//!
//! ## Per-client state
//!
//! Client ids are small copyable values, so an application may keep a
//! `HashMap<ClientId, _>`; for the common case of one number per client —
//! a room, an index into the application's own table — the server keeps
//! it: [`Ctx::set_user_data`] and [`Ctx::user_data`] (readable until the
//! close callback returns, carried through a handover).
//!
//! ## Threads: one server per thread
//!
//! A [`Server`] is one event loop on one thread (its io_uring ring is not
//! shared); it is not `Send`: create it on the thread that runs it. To use
//! several cores, run one server per thread, each with its own listener on
//! the same address — [`Server::listen_reuseport_exclusive`] for the first
//! (it refuses an address something else already serves),
//! [`Server::listen_reuseport`] for the others on the first one's
//! [`Server::local_addr`] — and the kernel spreads new connections between
//! them. A client stays on the thread that accepted it. Threads share
//! nothing on the request path; to reach another loop, send it a message
//! through your own channel and wake it with an eventfd
//! ([`Ctx::eventfd_open`], [`Ctx::eventfd_prepare`], and an
//! [`EventTrigger`] from [`Ctx::eventfd_trigger_handle`], which is `Send`):
//! its [`Application::on_event`] runs on its own thread.
//!
//! ```no_run
//! use network_server::{Application, Protocol, Server, ServerConfig};
//! # struct App; impl Application for App {}
//! type Res = Result<(), Box<dyn std::error::Error + Send + Sync>>;
//! let (tx, rx) = std::sync::mpsc::channel();
//! let mut loops = vec![std::thread::spawn(move || -> Res {
//!     let mut server = Server::new(ServerConfig::default())?;
//!     let l = server.listen_reuseport_exclusive("127.0.0.1:8080".parse()?, Protocol::Http)?;
//!     tx.send(server.local_addr(l))?; // the others join once it is bound
//!     server.run(&mut App)?;
//!     Ok(())
//! })];
//! let addr = rx.recv()?;
//! for _ in 1..4 {
//!     loops.push(std::thread::spawn(move || -> Res {
//!         let mut server = Server::new(ServerConfig::default())?;
//!         server.listen_reuseport(addr, Protocol::Http)?;
//!         server.run(&mut App)?;
//!         Ok(())
//!     }));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Shutdown
//!
//! [`Server::shutdown_handle`] gives a [`ShutdownHandle`] that any thread
//! (a signal thread, typically) can use to start a graceful shutdown:
//! listeners close, requests in progress finish, WebSockets close with
//! 1001, and [`Server::run`] returns when every client is closed or the
//! grace period is over. [`Server::shutdown_handle`] shows a Ctrl-C /
//! SIGTERM recipe; from inside a callback, [`Ctx::shutdown`] does the same
//! ([`Ctx::is_shutting_down`] tells). [`Server::stop_handle`] /
//! [`Ctx::stop`] stop the loop at once instead (clients stay open; `run`
//! may be called again). With one server per thread, shut each one down.
//!
//! ## Panics
//!
//! A panic in a callback does not take the loop down: by default
//! ([`PanicPolicy::CloseClient`], [`ServerConfig::on_panic`]) it is caught
//! at the callback boundary, logged with the client and the callback's
//! name, counted ([`ServerStats::app_panics`]), and only the client it was
//! about is closed — 500 for an unanswered request, 1011 for a WebSocket,
//! [`CloseReason::Panic`] in its close callback. The application's own
//! state is what the panicking callback left. [`PanicPolicy::Abort`] aborts
//! the process instead.
//!
//! ## Backpressure and buffer reuse
//!
//! Writes never block: they queue, and each connection writes one batch
//! at a time. What bounds the queue:
//!
//! * past [`ServerConfig::pause_reading_above`] queued bytes the server
//!   stops reading from the connection (its peer is not reading what it
//!   asked for) until the queue is under half — no new requests, no new
//!   messages from it meanwhile;
//! * past [`ServerConfig::max_queued_bytes`] writes are refused with
//!   [`Error::Backpressure`]; [`Ctx::queued_bytes`] tells where a client
//!   stands;
//! * a WebSocket over [`WsConfig::max_queued_bytes`] gets the
//!   [`WsConfig::slow_client`] policy (drop the message, or close with
//!   1008/1013); [`Ctx::ws_broadcast`] reports drops and closes;
//! * a connection whose peer takes no byte for
//!   [`ServerConfig::write_progress_timeout`] is closed.
//!
//! Buffers given to a write (`http_respond`'s body, `http_write`,
//! `ws_send`, `raw_write`, …) come back, one group per call, in the
//! matching write-complete callback — [`Application::on_http_write`],
//! [`Application::on_ws_write`], [`Application::on_raw_write`] — after they
//! were written, also when the write failed or the connection closed
//! first. That is where an application reuses them
//! ([`OutBuf::into_vec`]), so a steady stream allocates nothing:
//! `examples/ws_echo.rs` keeps a free list of echo buffers this way. Small
//! bodies and frames are copied next to their head (one `send` per batch);
//! larger ones are written from the application's buffer as their own
//! iovec, never copied.
//!
//! ## Examples
//!
//! In the repository's `examples/`, each runnable with `cargo run --release
//! --example NAME`:
//!
//! * `hello` — the smallest HTTP server (above);
//! * `ws_echo` — WebSocket echo reusing its buffers through `on_ws_write`;
//! * `ws_broadcast` — every client subscribed to one topic, every message
//!   published to all;
//! * `static_files` — a directory served with [`Ctx::http_send_file`], and
//!   uploads with [`Ctx::http_upload_begin`];
//! * `raw_echo` — a TCP echo on the `event_manager` layer alone.
//!
//! ## Client ids
//!
//! A client id is the event manager's pfd for the connection: every
//! operation on a closed (stale) id fails with [`Error::Stale`] and never
//! touches a connection that reused the slot.
//!
//! ## The close sequence
//!
//! HTTP connections close gracefully: queued bytes are written, the write
//! side is shut down, lingering input is read and discarded (bounded in
//! bytes and time), then the descriptor is closed. RAW clients are closed at
//! once. Either way exactly one close callback of the client's kind fires.

#![warn(missing_docs)]

// The code in the README and in docs/guide.md compiles (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide.md")]
struct GuideDoctests;

mod access_log;
mod app;
mod config;
mod connections;
mod error;
mod file_cache;
mod fs_helper;
mod handover;
mod head;
mod http;
mod listeners;
mod op_tag;
mod out_queue;
mod send_file;
mod server;
mod stats;
mod timers;
pub mod tls;
mod tls_conn;
mod tls_io;
mod tls_records;
mod topics;
mod upload;
mod ws;

pub use access_log::AccessLogSink;
pub use app::{Application, CloseReason, FileEvent, HttpEvent, WsOpcode};
pub use config::{PanicPolicy, ServerConfig, SlowClientPolicy, WsConfig};
pub use connections::{ClientId, ClientKind};
pub use error::Error;
pub use fs_helper::{DirEntry, DirEntryKind};
pub use handover::ServerSnapshot;
pub use http::Request;
pub use listeners::{ListenerId, Protocol};
pub use send_file::{FileConfig, FileRootId, FileRootOptions, SEND_FILE_DONE};
pub use server::{Ctx, EventId, ReadBufs, Server, ShutdownHandle};
pub use stats::{ClientCounts, ServerStats};
pub use upload::{UploadData, UploadDirId, UploadEvent, UploadOptions, UploadedPart};
pub use ws::BroadcastReport;

pub use event_manager::{self, EventTrigger, FileStat, OutBuf, SnapshotError, StopHandle};
pub use protocol::{self, BodyFraming, Method, Version};
/// The TLS library (its `ServerConfig` goes into [`ServerConfig::tls`]).
pub use rustls;

/// Entry points for the fuzz targets in `fuzz/` (not part of the API).
#[doc(hidden)]
pub mod fuzzing {
    /// See the `tls_records` fuzz target.
    pub fn tls_records(data: &[u8]) {
        crate::tls_records::fuzz(data);
    }
}
