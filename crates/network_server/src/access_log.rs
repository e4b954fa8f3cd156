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
//! end up (stderr, a file) is the subscriber's business. With an
//! [`AccessLogSink`] ([`crate::ServerConfig::access_log_sink`]) they go to
//! it instead, in batches: [`AccessLines`] gathers them in one buffer and
//! hands the buffer over when [`BATCH_BYTES`] have gathered, at each tick of
//! the timeout sweep, and when the loop stops or is exported — no `tracing`
//! event (its dispatch and formatting) and no allocation per line.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::app::CloseReason;
use crate::timers::Tick;

/// A batch is handed to the sink once it holds this many bytes (a few
/// hundred lines); smaller ones wait for the next sweep tick.
pub(crate) const BATCH_BYTES: usize = 32 * 1024;

/// Where access-log lines go instead of `tracing`: called with a batch of
/// whole lines, each ending in `\n`, from the event loop's thread (so it
/// must not block: hand the bytes to a writer thread).
///
/// ```
/// use std::sync::{mpsc, Arc};
/// let (tx, rx) = mpsc::channel::<Vec<u8>>();
/// let mut config = network_server::ServerConfig::default();
/// config.access_log = true;
/// config.access_log_sink = Some(network_server::AccessLogSink::new(move |lines| {
///     let _ = tx.send(lines);
/// }));
/// # drop(rx);
/// ```
#[derive(Clone)]
pub struct AccessLogSink(Arc<dyn Fn(Vec<u8>) + Send + Sync>);

impl AccessLogSink {
    /// A sink calling `f` with each batch.
    pub fn new(f: impl Fn(Vec<u8>) + Send + Sync + 'static) -> AccessLogSink {
        AccessLogSink(Arc::new(f))
    }
}

impl std::fmt::Debug for AccessLogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessLogSink(..)")
    }
}

/// A loop's access-log output: straight to `tracing`, or gathered for the
/// sink.
#[derive(Debug, Default)]
pub(crate) struct AccessLines {
    sink: Option<AccessLogSink>,
    batch: Vec<u8>,
}

impl AccessLines {
    pub(crate) fn new(sink: Option<AccessLogSink>) -> AccessLines {
        AccessLines {
            sink,
            batch: Vec::new(),
        }
    }

    /// Writes one line (see [`write_line`]); a full batch goes to the sink.
    pub(crate) fn write(
        &mut self,
        peer: Option<SocketAddr>,
        line: &str,
        a: &Access,
        now: Tick,
        date: &[u8; 29],
        closed: Option<CloseReason>,
    ) {
        if self.sink.is_none() {
            let mut out = Vec::with_capacity(160 + line.len());
            write_line(&mut out, peer, line, a, now, date, closed);
            // Every piece is ASCII or came from a `&str`.
            let text = String::from_utf8_lossy(&out[..out.len() - 1]);
            return tracing::info!(target: "access", "{text}");
        }
        if self.batch.capacity() == 0 {
            self.batch.reserve(BATCH_BYTES + 1024);
        }
        write_line(&mut self.batch, peer, line, a, now, date, closed);
        if self.batch.len() >= BATCH_BYTES {
            self.flush();
        }
    }

    /// Hands the lines gathered so far to the sink.
    pub(crate) fn flush(&mut self) {
        if let Some(sink) = &self.sink {
            if !self.batch.is_empty() {
                (sink.0)(std::mem::take(&mut self.batch));
            }
        }
    }
}

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

/// Appends `"Fri, 04 Dec 2026 12:47:49 GMT"` as `04/Dec/2026:12:47:49 +0000`.
fn push_clf_date(out: &mut Vec<u8>, d: &[u8; 29]) {
    out.extend_from_slice(&d[5..7]);
    out.push(b'/');
    out.extend_from_slice(&d[8..11]);
    out.push(b'/');
    out.extend_from_slice(&d[12..16]);
    out.push(b':');
    out.extend_from_slice(&d[17..25]);
    out.extend_from_slice(b" +0000");
}

/// Appends a quoted field's content: `-` when absent; `"`, `\` and bytes
/// outside printable ASCII escaped (so the line is ASCII). Runs of plain
/// bytes are copied whole.
fn push_quoted(out: &mut Vec<u8>, v: Option<&str>) {
    let Some(v) = v else {
        out.push(b'-');
        return;
    };
    let mut rest = v.as_bytes();
    while let Some(i) = rest
        .iter()
        .position(|&b| !(0x20..=0x7e).contains(&b) || b == b'"' || b == b'\\')
    {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.extend_from_slice(b"\\x");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
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

/// Appends one line to `out`, `\n` included. `closed`: a WebSocket's close
/// line, with how it closed.
fn write_line(
    out: &mut Vec<u8>,
    peer: Option<SocketAddr>,
    line: &str,
    a: &Access,
    now: Tick,
    date: &[u8; 29],
    closed: Option<CloseReason>,
) {
    // Numbers go through `itoa` and addresses through `push_ip`, not
    // `write!`: the formatting machinery was a sixth of a pipelined
    // server's time with the log on.
    let mut num = itoa::Buffer::new();
    match peer {
        Some(p) => push_ip(out, p.ip()),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" - - [");
    push_clf_date(out, date);
    out.extend_from_slice(b"] \"");
    push_quoted(out, Some(line));
    out.extend_from_slice(b"\" ");
    match a.status {
        0 => out.push(b'-'),
        s => out.extend_from_slice(num.format(s).as_bytes()),
    }
    out.push(b' ');
    out.extend_from_slice(num.format(a.bytes_out).as_bytes());
    out.extend_from_slice(b" \"");
    push_quoted(out, a.referer.as_deref());
    out.extend_from_slice(b"\" \"");
    push_quoted(out, a.user_agent.as_deref());
    out.extend_from_slice(b"\" ");
    let ms = a.start.map_or(0, |s| now.millis_since(s));
    out.extend_from_slice(num.format(ms / 1000).as_bytes());
    let frac = ms % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    if let Some(r) = closed {
        out.extend_from_slice(b" ws_close=");
        out.extend_from_slice(close_word(r).as_bytes());
        out.extend_from_slice(b" in=");
        out.extend_from_slice(num.format(a.bytes_in).as_bytes());
    }
    out.push(b'\n');
}

/// Appends `ip` as `Display` writes it (IPv6 through `Display` itself:
/// rare, and its compression rules are not worth copying).
fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut num = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(num.format(octet).as_bytes());
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write as _;
            // Writes into a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_quoted_fields_take_the_combined_shape() {
        let clf_date = |d: &[u8; 29]| {
            let mut v = Vec::new();
            push_clf_date(&mut v, d);
            String::from_utf8(v).unwrap()
        };
        let quoted = |q: Option<&str>| {
            let mut v = Vec::new();
            push_quoted(&mut v, q);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(
            clf_date(b"Fri, 04 Dec 2026 12:47:49 GMT"),
            "04/Dec/2026:12:47:49 +0000"
        );
        assert_eq!(quoted(None), "-");
        assert_eq!(
            quoted(Some("a \"b\" \\ c\u{e9}")),
            "a \\\"b\\\" \\\\ c\\xC3\\xA9"
        );
        assert_eq!(quoted(Some("\u{1}x\u{7f}")), "\\x01x\\x7F");
        assert_eq!(close_word(CloseReason::WebSocket(1001)), "1001");
        assert_eq!(close_word(CloseReason::Timeout), "timeout");
    }

    /// Whole lines, numbers and addresses included, byte for byte as the
    /// `write!`-based writer made them.
    #[test]
    fn whole_lines() {
        let epoch = std::time::Instant::now();
        let start = Tick::at(epoch, epoch);
        let date = b"Fri, 04 Dec 2026 12:47:49 GMT";
        let line = |peer: Option<&str>, a: &Access, ms: u64, closed| {
            let mut out = Vec::new();
            let peer = peer.map(|p| p.parse::<SocketAddr>().unwrap());
            let now = start + std::time::Duration::from_millis(ms);
            write_line(&mut out, peer, "GET /a HTTP/1.1", a, now, date, closed);
            String::from_utf8(out).unwrap()
        };
        let mut a = Access {
            start: Some(start),
            status: 200,
            bytes_out: 148,
            ..Access::default()
        };
        assert_eq!(
            line(Some("127.0.0.1:9"), &a, 0, None),
            "127.0.0.1 - - [04/Dec/2026:12:47:49 +0000] \"GET /a HTTP/1.1\" 200 148 \"-\" \"-\" 0.000\n"
        );
        a.referer = Some("http://x/\"q\"".into());
        a.user_agent = Some("curl/8.14.1".into());
        assert_eq!(
            line(Some("[2001:db8::1]:443"), &a, 1_234_567, None),
            "2001:db8::1 - - [04/Dec/2026:12:47:49 +0000] \"GET /a HTTP/1.1\" 200 148 \"http://x/\\\"q\\\"\" \"curl/8.14.1\" 1234.567\n"
        );
        a.status = 0;
        a.bytes_out = u64::MAX;
        assert_eq!(
            line(None, &a, 5, None),
            "- - - [04/Dec/2026:12:47:49 +0000] \"GET /a HTTP/1.1\" - 18446744073709551615 \"http://x/\\\"q\\\"\" \"curl/8.14.1\" 0.005\n"
        );
        a.status = 101;
        a.bytes_out = 0;
        a.bytes_in = 734;
        a.referer = None;
        assert_eq!(
            line(Some("10.255.0.1:1"), &a, 13_204, Some(CloseReason::WebSocket(1000))),
            "10.255.0.1 - - [04/Dec/2026:12:47:49 +0000] \"GET /a HTTP/1.1\" 101 0 \"-\" \"curl/8.14.1\" 13.204 ws_close=1000 in=734\n"
        );
        assert!(
            line(None, &a, 90, Some(CloseReason::Peer)).ends_with(" 0.090 ws_close=peer in=734\n")
        );
    }
}
