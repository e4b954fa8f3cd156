//! The network server's error type, returned by [`crate::Ctx`] operations
//! and carried by completion callbacks.

use std::fmt;

use crate::ClientId;

/// Why a server operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The client id is stale: the client was closed (its close callback has
    /// fired or is about to) and the id may have been reused.
    Stale(ClientId),
    /// The operation does not apply to this client's protocol (e.g. an HTTP
    /// response on a RAW client).
    WrongProtocol(ClientId),
    /// There is no request to answer on this connection right now.
    NoRequest(ClientId),
    /// The current request has already been answered (or its answer started).
    AlreadyResponded(ClientId),
    /// The streamed body would exceed the announced Content-Length.
    BodyOverrun(ClientId),
    /// Part of the request body was already delivered
    /// ([`crate::Ctx::http_collect_body`] must come first).
    BodyStarted(ClientId),
    /// The connection is closing; nothing more can be written.
    Closing(ClientId),
    /// The connection's outgoing queue is over
    /// [`crate::ServerConfig::max_queued_bytes`].
    Backpressure(ClientId),
    /// A response header was invalid (not a token name, CR/LF/NUL in the
    /// value, or a field the server writes itself such as Content-Length).
    InvalidHeader(ClientId),
    /// A WebSocket upgrade request was invalid; the server answered it with
    /// this HTTP status (400, or 426 for an unsupported version) and closes.
    Handshake(u16),
    /// The client is not an IP socket — a file, pipe or eventfd, or a Unix
    /// socket, adopted as a RAW client — so it has no socket address
    /// ([`crate::Ctx::peer_addr`], [`crate::Ctx::local_addr`]).
    NotIpSocket(ClientId),
    /// The event manager refused or failed the operation.
    Io(event_manager::Error),
    /// A quiesce, export or resume cannot go on: why (see
    /// [`crate::Server::quiesce`]).
    Handover(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Stale(c) => write!(f, "client {c} is closed"),
            Error::WrongProtocol(c) => {
                write!(f, "operation does not apply to client {c}'s protocol")
            }
            Error::NoRequest(c) => write!(f, "client {c} has no request waiting for an answer"),
            Error::AlreadyResponded(c) => write!(f, "client {c}'s request was already answered"),
            Error::BodyOverrun(c) => write!(f, "body for client {c} exceeds its Content-Length"),
            Error::BodyStarted(c) => {
                write!(f, "client {c}'s request body was already partly delivered")
            }
            Error::Closing(c) => write!(f, "client {c} is closing"),
            Error::Backpressure(c) => write!(f, "client {c} has too many bytes queued"),
            Error::InvalidHeader(c) => write!(f, "invalid response header for client {c}"),
            Error::Handover(why) => write!(f, "cannot hand the server over: {why}"),
            Error::Handshake(s) => write!(f, "WebSocket handshake refused with {s}"),
            Error::NotIpSocket(c) => {
                write!(
                    f,
                    "client {c} is not an IP socket and has no socket address"
                )
            }
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<event_manager::Error> for Error {
    fn from(e: event_manager::Error) -> Self {
        match e {
            event_manager::Error::Stale(p) => Error::Stale(p),
            other => Error::Io(other),
        }
    }
}
