//! Response heads: [`ResponseHead::write`] appends a status line and header
//! fields to the caller's `Vec<u8>`; the body stays a separate buffer so the
//! server can write head and body as two iovecs. Also the reason phrases
//! ([`reason_phrase`]) and the few fixed byte strings a server writes as is.

use crate::fields::{is_field_value_byte, is_token};
use crate::{Error, Version};

/// A complete `100 Continue` interim response (RFC 9110 §15.2.1), for a
/// request with [`expect_continue`](crate::RequestHead::expect_continue).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// The CRLF that ends each chunk's data in a chunked response.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk and the empty trailer section that end a chunked response.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How the response body is delimited; decides the framing field the writer
/// adds (RFC 9112 §6.3, RFC 9110 §8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyLength {
    /// No framing field: for 1xx, 204 and 304 responses, which never have a
    /// body. Required for 1xx and 204.
    None,
    /// `Content-Length: n`. For a HEAD request or a 304, the length the GET
    /// would have had; the body itself is not sent.
    Known(u64),
    /// `Transfer-Encoding: chunked`; frame the body with
    /// [`write_chunk_header`], [`CHUNK_END`] and [`LAST_CHUNK`]. HTTP/1.1
    /// clients only.
    Chunked,
    /// No framing field; the body ends when the connection closes, so the
    /// writer also sends `Connection: close`. The fallback for an HTTP/1.0
    /// client and a body of unknown length.
    CloseDelimited,
}

/// A response head to write.
///
/// The writer owns the framing and connection fields: it adds
/// `Content-Length` or `Transfer-Encoding` from [`body`](Self::body), and
/// `Connection: close` / `Connection: keep-alive` from
/// [`keep_alive`](Self::keep_alive) and [`version`](Self::version); the
/// caller's [`headers`](Self::headers) must not contain those fields (except
/// `Connection` on a 101, e.g. `Connection: Upgrade`).
///
/// ```
/// use protocol::{BodyLength, ResponseHead, Version};
///
/// let date = *b"Sun, 06 Nov 1994 08:49:37 GMT";
/// let mut head = ResponseHead::new(200);
/// head.date = Some(&date);
/// head.body = BodyLength::Known(5);
/// head.headers = &[("Content-Type", b"text/plain")];
/// head.version = Version::Http10;
/// let mut out = Vec::new();
/// head.write(&mut out)?;
/// assert_eq!(
///     out,
///     b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
///       Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
/// );
/// # Ok::<(), protocol::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// Status code, 100..=999.
    pub status: u16,
    /// Reason phrase; `None` uses [`reason_phrase`] (empty for unknown
    /// codes).
    pub reason: Option<&'a str>,
    /// The version of the request being answered (the status line always
    /// says HTTP/1.1, RFC 9110 §6.2). HTTP/1.0 clients that keep the
    /// connection open get `Connection: keep-alive`.
    pub version: Version,
    /// Whether the connection stays open after this response; usually the
    /// request's [`keep_alive`](crate::RequestHead::keep_alive). `false`
    /// writes `Connection: close`.
    pub keep_alive: bool,
    /// A pre-formatted IMF-fixdate, e.g. from [`crate::DateCache`]; written
    /// as the `Date` field when present.
    pub date: Option<&'a [u8; 29]>,
    /// Body framing.
    pub body: BodyLength,
    /// Other fields, in order: `(name, value)`.
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl<'a> ResponseHead<'a> {
    /// A head with `status`, its standard reason, HTTP/1.1, keep-alive, no
    /// date, no body and no fields.
    pub const fn new(status: u16) -> Self {
        ResponseHead {
            status,
            reason: None,
            version: Version::Http11,
            keep_alive: true,
            date: None,
            body: BodyLength::None,
            headers: &[],
        }
    }

    /// Whether the written head lets the connection carry another request:
    /// `keep_alive`, unless the body is close-delimited.
    pub const fn keeps_alive(&self) -> bool {
        self.keep_alive && !matches!(self.body, BodyLength::CloseDelimited)
    }

    /// Appends the head (status line, fields, final CRLF) to `out`.
    ///
    /// Checks everything first and appends nothing on error:
    /// [`Error::InvalidResponseHead`] for a status outside 100..=999, a
    /// reason with control bytes, a body length on a 1xx/204, or chunked
    /// framing for an HTTP/1.0 client; [`Error::InvalidResponseHeader`] for a
    /// field that is not `token: field-value` (CR, LF or NUL in a value
    /// would let a caller inject fields — response splitting) or is one the
    /// writer owns.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.check()?;
        let reason = self.reason.or(reason_phrase(self.status)).unwrap_or("");
        let fields: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        out.reserve(64 + reason.len() + fields);

        out.extend_from_slice(b"HTTP/1.1 ");
        let s = self.status;
        out.extend_from_slice(&[
            b'0' + (s / 100) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(date) = self.date {
            out.extend_from_slice(b"Date: ");
            out.extend_from_slice(date);
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match self.body {
            BodyLength::Known(n) => {
                out.extend_from_slice(b"Content-Length: ");
                write_decimal(out, n);
                out.extend_from_slice(b"\r\n");
            }
            BodyLength::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            BodyLength::None | BodyLength::CloseDelimited => {}
        }
        // Interim responses (1xx) say nothing about the connection; a 101
        // carries the caller's `Connection: Upgrade`.
        if self.status >= 200 {
            if !self.keeps_alive() {
                out.extend_from_slice(b"Connection: close\r\n");
            } else if self.version == Version::Http10 {
                out.extend_from_slice(b"Connection: keep-alive\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    fn check(&self) -> Result<(), Error> {
        let bad_head = Err(Error::InvalidResponseHead);
        if !(100..=999).contains(&self.status) {
            return bad_head;
        }
        if let Some(reason) = self.reason {
            if !reason.bytes().all(is_field_value_byte) {
                return bad_head;
            }
        }
        let no_body = self.status < 200 || self.status == 204;
        if no_body && self.body != BodyLength::None {
            return bad_head;
        }
        if self.version == Version::Http10 && self.body == BodyLength::Chunked {
            return bad_head;
        }
        for (name, value) in self.headers {
            let owned = name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
                || (self.status != 101 && name.eq_ignore_ascii_case("connection"));
            if owned || !is_token(name.as_bytes()) || !value.iter().all(|&b| is_field_value_byte(b))
            {
                return Err(Error::InvalidResponseHeader);
            }
        }
        Ok(())
    }
}

/// Appends the chunk-size line for a chunk of `len` bytes (`{len:X}\r\n`) to
/// `out`. The chunk is then its data and [`CHUNK_END`]; `len` must not be 0
/// (that is [`LAST_CHUNK`]).
pub fn write_chunk_header(out: &mut Vec<u8>, len: u64) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut n = len;
    loop {
        i -= 1;
        buf[i] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
    out.extend_from_slice(b"\r\n");
}

fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// The reason phrase registered for `status` in the IANA HTTP Status Code
/// Registry (RFC 9110 §15 and the RFCs it points to), or `None`.
pub const fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(head: &ResponseHead<'_>) -> String {
        let mut out = Vec::new();
        head.write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn minimal_and_close() {
        let mut h = ResponseHead::new(404);
        h.body = BodyLength::Known(0);
        assert_eq!(
            written(&h),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        );
        h.keep_alive = false;
        assert_eq!(
            written(&h),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn framing_variants() {
        let mut h = ResponseHead::new(200);
        h.body = BodyLength::Chunked;
        assert_eq!(
            written(&h),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        h.body = BodyLength::CloseDelimited;
        h.version = Version::Http10;
        assert!(!h.keeps_alive());
        assert_eq!(written(&h), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        h.body = BodyLength::Known(u64::MAX);
        assert_eq!(
            written(&h),
            "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn interim_and_upgrade() {
        let h = ResponseHead::new(100);
        let mut out = Vec::new();
        h.write(&mut out).unwrap();
        assert_eq!(out, CONTINUE);

        let mut h = ResponseHead::new(101);
        h.headers = &[("Upgrade", b"websocket"), ("Connection", b"Upgrade")];
        assert_eq!(
            written(&h),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        );
    }

    #[test]
    fn custom_and_unknown_reason() {
        let mut h = ResponseHead::new(599);
        assert_eq!(written(&h), "HTTP/1.1 599 \r\n\r\n");
        h.reason = Some("Custom Thing");
        assert_eq!(written(&h), "HTTP/1.1 599 Custom Thing\r\n\r\n");
    }

    #[test]
    fn rejects_bad_heads_and_appends_nothing() {
        let mut out = b"keep".to_vec();
        let cases: [(ResponseHead<'_>, Error); 10] = [
            (ResponseHead::new(99), Error::InvalidResponseHead),
            (ResponseHead::new(1000), Error::InvalidResponseHead),
            (
                ResponseHead {
                    reason: Some("OK\r\nX: y"),
                    ..ResponseHead::new(200)
                },
                Error::InvalidResponseHead,
            ),
            (
                ResponseHead {
                    body: BodyLength::Known(0),
                    ..ResponseHead::new(204)
                },
                Error::InvalidResponseHead,
            ),
            (
                ResponseHead {
                    body: BodyLength::Chunked,
                    version: Version::Http10,
                    ..ResponseHead::new(200)
                },
                Error::InvalidResponseHead,
            ),
            (
                ResponseHead {
                    headers: &[("X-A", b"a\r\nSet-Cookie: evil")],
                    ..ResponseHead::new(200)
                },
                Error::InvalidResponseHeader,
            ),
            (
                ResponseHead {
                    headers: &[("X-A", b"a\0")],
                    ..ResponseHead::new(200)
                },
                Error::InvalidResponseHeader,
            ),
            (
                ResponseHead {
                    headers: &[("Bad Name", b"v")],
                    ..ResponseHead::new(200)
                },
                Error::InvalidResponseHeader,
            ),
            (
                ResponseHead {
                    headers: &[("content-length", b"5")],
                    ..ResponseHead::new(200)
                },
                Error::InvalidResponseHeader,
            ),
            (
                ResponseHead {
                    headers: &[("Connection", b"close")],
                    ..ResponseHead::new(200)
                },
                Error::InvalidResponseHeader,
            ),
        ];
        for (head, err) in cases {
            assert_eq!(head.write(&mut out), Err(err), "{head:?}");
            assert_eq!(err.status(), 500);
        }
        assert_eq!(out, b"keep");
    }

    #[test]
    fn chunk_headers() {
        let mut out = Vec::new();
        write_chunk_header(&mut out, 1);
        write_chunk_header(&mut out, 0x1a2b);
        write_chunk_header(&mut out, u64::MAX);
        assert_eq!(out, b"1\r\n1A2B\r\nFFFFFFFFFFFFFFFF\r\n");
    }

    #[test]
    fn reason_phrases() {
        for code in 100..=999u16 {
            if let Some(r) = reason_phrase(code) {
                assert!(
                    !r.is_empty() && r.bytes().all(is_field_value_byte),
                    "{code}"
                );
            }
        }
        assert_eq!(reason_phrase(413), Some("Content Too Large"));
        assert_eq!(reason_phrase(431), Some("Request Header Fields Too Large"));
        assert_eq!(reason_phrase(306), None);
        assert_eq!(
            (100..=999).filter(|&c| reason_phrase(c).is_some()).count(),
            62
        );
    }
}
