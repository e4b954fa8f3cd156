//! The application interface: the eleven callbacks of the notes (plus
//! `on_ws_open` for a completed WebSocket upgrade and `on_file` for
//! file-operation completions), as one trait with empty defaults so an
//! application implements only what it uses.
//!
//! Every callback gets a [`Ctx`] through which it can call any server
//! operation (respond, write, close, read RAW descriptors, eventfds, file
//! operations). Callbacks never block and never see another layer's memory
//! beyond the slices they are handed for the duration of the call.

use event_manager::{FileStat, OutBuf};

use crate::{ClientId, Ctx, Error, EventId, ListenerId, ReadBufs, Request};

/// Why a connection was closed, given to the close callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The application asked for the close.
    Application,
    /// The peer closed its side (end of stream) or reset the connection.
    Peer,
    /// The server ended the connection after answering a protocol error
    /// with this HTTP status (400, 413, 431, …).
    ProtocolError(u16),
    /// A timeout fired: head read (slowloris), keep-alive idle, linger, a
    /// WebSocket peer that stopped answering pings, or a close handshake the
    /// peer never finished.
    Timeout,
    /// The WebSocket close handshake ran with this status code (the one
    /// received from the peer, or the one the server sent when it failed
    /// the connection); 1005 when the peer's Close had no code.
    WebSocket(u16),
    /// A read or write failed with this errno.
    Io(i32),
    /// The server is shutting down.
    Shutdown,
    /// The peer ended the connection (end of stream) in the middle of a
    /// request body: the request is abandoned at once (an upload's partial
    /// files are removed).
    IncompleteBody,
    /// An application callback panicked while handling this client (see
    /// [`crate::PanicPolicy`]).
    Panic,
    /// TLS failed: a handshake refused or broken off, a bad record, a
    /// fatal alert, or plain HTTP sent to a TLS port (answered 400).
    Tls,
}

/// What the HTTP read callback is told, in order, for each request:
/// one `Request`, then — only if the request has a body — any number of
/// `Body` chunks and one `BodyEnd`.
#[derive(Debug)]
pub enum HttpEvent<'a> {
    /// A complete request head. The slices borrow the connection's input and
    /// live only for this call.
    Request(&'a Request<'a>),
    /// The next piece of the request body (already de-chunked).
    Body(&'a [u8]),
    /// The body is complete.
    BodyEnd,
}

/// What [`Application::on_ws_read`] delivers: a complete message, or a
/// control frame the server has already handled (a Ping it answered, a
/// Pong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsOpcode {
    /// A UTF-8 text message (validated).
    Text,
    /// A binary message.
    Binary,
    /// A Ping from the peer (already answered with a Pong).
    Ping,
    /// A Pong from the peer.
    Pong,
}

/// The outcome of a file operation started through [`Ctx`].
#[derive(Debug)]
#[non_exhaustive]
pub enum FileEvent {
    /// [`Ctx::file_open`] finished; the file is a RAW client from now on
    /// (read it with [`Ctx::raw_read`], close it with [`Ctx::raw_close`]).
    Opened {
        /// The tag given to `file_open`.
        tag: u64,
        /// The new client, or why the open failed.
        result: Result<ClientId, Error>,
    },
    /// [`Ctx::file_stat`] or [`Ctx::file_fstat`] finished.
    Stat {
        /// The tag given to the call.
        tag: u64,
        /// Metadata, or why it failed.
        result: Result<FileStat, Error>,
    },
    /// [`Ctx::file_unlink`] finished.
    Unlinked {
        /// The tag given to the call.
        tag: u64,
        /// Outcome.
        result: Result<(), Error>,
    },
    /// [`Ctx::file_list_dir`] finished.
    Listed {
        /// The tag given to the call.
        tag: u64,
        /// The directory's entries (unsorted, without `.` and `..`), or why
        /// it could not be read.
        result: Result<Vec<crate::DirEntry>, Error>,
    },
    /// News of an upload started with [`Ctx::http_upload_begin`]: a part
    /// began, or (exactly once per upload) it ended.
    Upload {
        /// The client whose request carried the upload.
        client: ClientId,
        /// `Done` with the parts, or `Failed`.
        event: crate::UploadEvent,
    },
}

/// The application: ringtail calls these from its event loop. All have
/// empty default bodies.
///
/// Exactly one close callback of the matching kind fires for every client
/// that was ever handed to the application, after which its id is stale.
#[allow(unused_variables)]
pub trait Application {
    /// 1. A connection was accepted on `listener`. The client is HTTP or RAW
    ///    according to the listener. For RAW clients, start reading with
    ///    [`Ctx::raw_read`].
    fn on_accept(&mut self, ctx: &mut Ctx<'_>, client: ClientId, listener: ListenerId) {}

    /// 2. HTTP read: a request head, body chunks, body end. Answer with
    ///    [`Ctx::http_respond`] (or the streaming calls) now or later; the
    ///    next pipelined request is delivered after the answer is complete.
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, event: HttpEvent<'_>) {}

    /// A WebSocket upgrade completed: [`Ctx::ws_upgrade`] succeeded for
    /// `client`, which speaks WebSocket from now on (its `101` answer is
    /// queued). Called once per upgrade, right after the callback that
    /// upgraded returns, and before anything else about the client reaches
    /// the application — its first [`on_ws_read`](Application::on_ws_read)
    /// (even for frames that arrived behind the upgrade request) and its
    /// [`on_ws_close`](Application::on_ws_close). The place to greet the
    /// client, subscribe it to topics, or count it; the request is gone by
    /// now, so what it said (the path, say) can be kept with
    /// [`Ctx::set_user_data`]. Not one of the notes' eleven.
    fn on_ws_open(&mut self, ctx: &mut Ctx<'_>, client: ClientId) {}

    /// 3. WebSocket read: one complete message.
    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, opcode: WsOpcode, data: &[u8]) {}

    /// 4. RAW read: a [`Ctx::raw_read`] (or `raw_readv`) finished; the
    ///    caller's buffers come back with the bytes appended (`Ok(0)` = end
    ///    of stream).
    fn on_raw_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: ReadBufs,
        result: Result<usize, Error>,
    ) {
    }

    /// 5. HTTP write complete: the buffers of one application write
    ///    (`http_respond`'s body, `http_write`, `http_writev`) come back.
    fn on_http_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: Vec<OutBuf>,
        result: Result<(), Error>,
    ) {
    }

    /// 6. WebSocket write complete.
    fn on_ws_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: Vec<OutBuf>,
        result: Result<(), Error>,
    ) {
    }

    /// 7. RAW write complete.
    fn on_raw_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: Vec<OutBuf>,
        result: Result<(), Error>,
    ) {
    }

    /// 8. An HTTP connection is closed; `client` is stale from now on.
    fn on_http_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {}

    /// 9. A WebSocket connection is closed.
    fn on_ws_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {}

    /// 10. A RAW client is closed.
    fn on_raw_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {}

    /// 11. A prepared eventfd was triggered: `info` is the value given to
    ///     [`Ctx::eventfd_prepare`], `count` the triggers since the last
    ///     delivery. Prepare it again to keep listening.
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: EventId, info: u64, count: u64) {}

    /// A file operation finished (open, stat, fstat, unlink). Not one of the
    /// notes' eleven: they were synchronous there; here they go through the
    /// ring too.
    fn on_file(&mut self, ctx: &mut Ctx<'_>, event: FileEvent) {}

    /// The server is being handed over ([`crate::Server::export`]): the
    /// application's own state that must go with it (per-client data keyed
    /// by client id — ids stay the same — topics of its own, counters), as
    /// bytes in a format of the application's choosing. Not needed when the
    /// same application object goes on with the new server in the same
    /// process. Default: nothing.
    fn export(&mut self, ctx: &mut Ctx<'_>) -> Vec<u8> {
        Vec::new()
    }

    /// The other side of [`Application::export`]: called by
    /// [`crate::Server::import`] with those bytes, after the server's own
    /// state is in place and before anything runs. An error refuses the
    /// import (it says why). Default: accepts anything.
    fn import(&mut self, ctx: &mut Ctx<'_>, state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}
