//! # network_server — connections and protocols on top of `event_manager`
//!
//! The second layer of ringtail, built only on `event_manager`'s public
//! interface. A [`Server`] owns one event manager (one io_uring ring), its
//! listeners and its connections. It decides each connection's protocol —
//! HTTP/1.1 on an HTTP listener, RAW on a RAW listener or for a descriptor
//! the application hands over — parses requests, frames responses, keeps
//! per-connection state (parser progress, outgoing queue, timers, close
//! state), and calls the application through the eleven callbacks of
//! [`Application`].
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
//! ## Client ids
//!
//! A client id is the event manager's pfd for the connection: every
//! operation on a closed (stale) id fails with [`Error::Stale`] and never
//! touches a connection that reused the slot.
//!
//! ## Buffers
//!
//! Buffers given to a write (`http_respond`'s body, `http_write`,
//! `raw_write`, …) come back, one group per call, in the matching
//! write-complete callback — also when the write failed or the connection
//! closed first. Each connection has one write in flight at a time; what is
//! queued meanwhile leaves in the next `writev`, heads and bodies as
//! separate iovecs.
//!
//! ## Shutdown
//!
//! [`Server::shutdown_handle`] gives a [`ShutdownHandle`] that any thread
//! (a signal thread, typically) can use to start a graceful shutdown:
//! listeners close, requests in progress finish, WebSockets close with
//! 1001, and [`Server::run`] returns when every client is closed or the
//! grace period is over. [`Server::shutdown_handle`] shows a Ctrl-C /
//! SIGTERM recipe; [`Server::stop_handle`] stops the loop at once instead.
//!
//! ## The close sequence
//!
//! HTTP connections close gracefully: queued bytes are written, the write
//! side is shut down, lingering input is read and discarded (bounded in
//! bytes and time), then the descriptor is closed. RAW clients are closed at
//! once. Either way exactly one close callback of the client's kind fires.

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
mod topics;
mod upload;
mod ws;

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
