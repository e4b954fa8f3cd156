//! The access log ([`crate::ServerConfig::access_log`]): one line per
//! answered request, one when a WebSocket upgrade is answered and one when
//! that WebSocket closes, in the combined log format with the duration
//! after it:
//!
//! ```text
//! 127.0.0.1 - - [04/Dec/2026:12:47:49 +0000] "GET /hello HTTP/1.1" 200 151 "-" "curl/8.14.1" 0.000
//! 127.0.0.1 - - [04/Dec/2026:12:47:50 +0000] "GET /ws/chat HTTP/1.1" 101 129 "-" "Mozilla/5.0" 0.001
//! 127.0.0.1 - - [04/Dec/2026:12:48:03 +0000] "GET /ws/chat HTTP/1.1" 101 5120 "-" "Mozilla/5.0" 13.204 ws_close=1000 in=734
//! ```
//!
//! Fields: the peer's IP address; `-` `-` (identity, user); the time the
//! line is written; the request line; the status; the bytes of the answer
//! as queued, head included (for a WebSocket's close line: every byte
//! written to it from the upgrade's answer on); the `Referer` and `User-Agent`
//! fields (`-` when absent; `"` and `\` escaped, other bytes outside
//! printable ASCII as `\xNN`); seconds from the request head (for the
//! close line: from the upgrade) to the line. A WebSocket's close line adds
//! how it closed (`ws_close=` the close code, or `peer`, `timeout`,
//! `shutdown`, `io`, `panic`, `application`, `error`) and the bytes
//! received (`in=`). A request that was never answered (its peer left
//! first) is logged at its close with status `-` (and nothing if the
//! request head never arrived).
//!
//! Lines go to `tracing` at level info with target `access`; where they
//! end up (stderr, a file) is the subscriber's business.

use std::net::SocketAddr;

use crate::app::CloseReason;
use crate::timers::Tick;

/// What the access log keeps about one request (HTTP) or one WebSocket,
/// beside the request line and peer (`HttpConn` keeps those for a request).
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    pub(crate) referer: Option<Box<str>>,
    pub(crate) user_agent: Option<Box<str>>,
    /// When the request head arrived (for a WebSocket: the upgrade).
    pub(crate) start: Option<Tick>,
    /// The answer's status, once it started (0 before).
    pub(crate) status: u16,
    /// Bytes of the answer queued (HTTP) or written (WebSocket).
    pub(crate) bytes_out: u64,
    /// Bytes received (WebSocket).
    pub(crate) bytes_in: u64,
}

/// A WebSocket's access-log state (kept beside the connection table while
/// the access log is on: an idle WebSocket's slot has no room for it).
#[derive(Debug, Clone)]
pub(crate) struct WsAccess {
    pub(crate) line: Box<str>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) access: Access,
}

impl Access {
    /// The record for a request with `head`, arriving `now`.
    pub(crate) fn of(head: &crate::Request<'_>, now: Tick) -> Access {
        let field = |name| {
            head.header(name)
                .map(|v| String::from_utf8_lossy(v).into_owned().into_boxed_str())
        };
        Access {
            referer: field("referer"),
            user_agent: field("user-agent"),
            start: Some(now),
            ..Access::default()
        }
    }
}

/// `"Fri, 04 Dec 2026 12:47:49 GMT"` as `04/Dec/2026:12:47:49 +0000`.
fn clf_date(http_date: &[u8; 29]) -> String {
    let s = std::str::from_utf8(http_date).unwrap_or("Thu, 01 Jan 1970 00:00:00 GMT");
    format!(
        "{}/{}/{}:{} +0000",
        &s[5..7],
        &s[8..11],
        &s[12..16],
        &s[17..25]
    )
}

/// A quoted field's content: `-` when absent; `"`, `\` and bytes outside
/// printable ASCII escaped.
fn quoted(v: Option<&str>) -> String {
    let Some(v) = v else {
        return "-".to_string();
    };
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out
}

fn close_word(r: CloseReason) -> String {
    match r {
        CloseReason::WebSocket(code) => code.to_string(),
        CloseReason::Peer | CloseReason::IncompleteBody => "peer".into(),
        CloseReason::Timeout => "timeout".into(),
        CloseReason::Shutdown => "shutdown".into(),
        CloseReason::Io(_) => "io".into(),
        CloseReason::Panic => "panic".into(),
        CloseReason::Tls => "tls".into(),
        CloseReason::Application => "application".into(),
        CloseReason::ProtocolError(_) => "error".into(),
    }
}

/// Writes one line. `closed`: a WebSocket's close line, with how it closed.
pub(crate) fn write(
    peer: Option<SocketAddr>,
    line: &str,
    a: &Access,
    now: Tick,
    date: &[u8; 29],
    closed: Option<CloseReason>,
) {
    let peer = peer.map_or_else(|| "-".to_string(), |p| p.ip().to_string());
    let status = match a.status {
        0 => "-".to_string(),
        s => s.to_string(),
    };
    let ms = a.start.map_or(0, |s| now.millis_since(s));
    let secs = format!("{}.{:03}", ms / 1000, ms % 1000);
    let text = format!(
        "{peer} - - [{}] \"{}\" {status} {} \"{}\" \"{}\" {secs}",
        clf_date(date),
        quoted(Some(line)),
        a.bytes_out,
        quoted(a.referer.as_deref()),
        quoted(a.user_agent.as_deref()),
    );
    match closed {
        None => tracing::info!(target: "access", "{text}"),
        Some(r) => tracing::info!(
            target: "access",
            "{text} ws_close={} in={}",
            close_word(r),
            a.bytes_in
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_quoted_fields_take_the_combined_shape() {
        assert_eq!(
            clf_date(b"Fri, 04 Dec 2026 12:47:49 GMT"),
            "04/Dec/2026:12:47:49 +0000"
        );
        assert_eq!(quoted(None), "-");
        assert_eq!(
            quoted(Some("a \"b\" \\ c\u{e9}")),
            "a \\\"b\\\" \\\\ c\\xC3\\xA9"
        );
        assert_eq!(close_word(CloseReason::WebSocket(1001)), "1001");
        assert_eq!(close_word(CloseReason::Timeout), "timeout");
    }
}
