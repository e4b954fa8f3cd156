//! The crate's one error type, and the single place that decides which HTTP
//! status answers each error ([`Error::status`]).
//!
//! Every request error is final for the connection: the framing of whatever
//! follows can no longer be trusted (RFC 9112 §6.3, §11.2), so the server
//! answers with the status and then closes.

use std::fmt;

/// Why a request head, a request body or a response head was rejected.
///
/// Variants are grouped by where they arise; [`Error::status`] gives the
/// status code to answer with. `docs/http.md` lists the RFC section behind
/// each rejection.
///
/// Serializable, as part of the parser states (see
/// [`STATE_VERSION`](crate::STATE_VERSION)): the encoding numbers the
/// variants in order, so add new ones at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Error {
    // ----- request line -------------------------------------------------
    /// The method is empty or contains a byte that is not a `tchar`
    /// (RFC 9110 §9.1, §5.6.2).
    InvalidMethod,
    /// The request-target has a byte outside printable ASCII or a `#`, has a
    /// form that does not fit the method, or is an absolute-form target with
    /// a scheme other than http/https, an empty host or userinfo
    /// (RFC 9112 §3.2).
    InvalidTarget,
    /// The request line does not have the shape `method SP target SP version`
    /// (missing part, extra space, HTTP/0.9 style).
    InvalidRequestLine,
    /// The version is not `HTTP/DIGIT.DIGIT` (e.g. `http/1.1`, `HTTP/1.1x`,
    /// `HTTP/11`).
    InvalidVersion,
    /// The version is well formed but not HTTP/1.0 or HTTP/1.1 (e.g.
    /// `HTTP/2.0`, `HTTP/1.2`, `HTTP/0.9`).
    UnsupportedVersion,

    // ----- head framing ---------------------------------------------------
    /// A line ends in a bare LF instead of CRLF (RFC 9112 §2.2; this parser
    /// takes the strict option).
    BareLineFeed,
    /// A CR is followed by something other than LF (RFC 9112 §2.2).
    BareCarriageReturn,
    /// The head did not end within [`crate::Limits::max_head_size`] bytes.
    HeadTooLarge,
    /// The head has more than [`crate::Limits::max_headers`] field lines (or
    /// more than the header storage holds).
    TooManyHeaders,

    // ----- header fields ------------------------------------------------
    /// A field line has no colon, an empty name, or a name byte that is not
    /// a `tchar` (RFC 9110 §5.1).
    InvalidHeaderName,
    /// Whitespace between a field name and its colon (RFC 9112 §5.1: MUST
    /// reject with 400).
    WhitespaceBeforeColon,
    /// A field line starts with whitespace: obsolete line folding
    /// (RFC 9112 §5.2: MUST reject with 400 or replace; rejected here).
    ObsoleteLineFolding,
    /// A field value contains NUL, a control byte or DEL (RFC 9110 §5.5).
    InvalidHeaderValue,
    /// An HTTP/1.1 request without a Host field (RFC 9112 §3.2).
    MissingHost,
    /// More than one Host field line (RFC 9112 §3.2).
    DuplicateHost,
    /// The Host value is not `uri-host [ ":" port ]` (RFC 9112 §3.2,
    /// RFC 9110 §7.2).
    InvalidHost,

    // ----- body framing -----------------------------------------------------
    /// Content-Length is not one or more digits: empty, signed, hex, with
    /// inner spaces, an empty list member, or overflowing 64 bits
    /// (RFC 9110 §8.6, RFC 9112 §6.3 item 5).
    InvalidContentLength,
    /// Content-Length values that differ, in one field or across several
    /// (RFC 9110 §8.6; identical repeats are accepted).
    ConflictingContentLength,
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.3 item 3:
    /// "ought to be handled as an error"; a smuggling shape).
    ContentLengthWithTransferEncoding,
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: framing is
    /// faulty).
    TransferEncodingInHttp10,
    /// Transfer-Encoding whose final coding is not `chunked`, that applies
    /// `chunked` more than once, is empty, or is not a list of tokens
    /// (RFC 9112 §6.3 item 4, §6.1, §7).
    InvalidTransferEncoding,
    /// Transfer-Encoding ends in `chunked` but also names a coding this
    /// server does not decode (e.g. `gzip, chunked`; RFC 9112 §6.1: 501).
    UnsupportedTransferCoding,
    /// The declared Content-Length, or the running total of chunk sizes,
    /// exceeds [`crate::Limits::max_body_size`].
    BodyTooLarge,
    /// `Expect` names an expectation other than `100-continue`
    /// (RFC 9110 §10.1.1: 417).
    UnsupportedExpectation,

    // ----- chunked body ---------------------------------------------------
    /// A chunk-size line does not start with a hex digit, or has a
    /// non-hex byte or whitespace that is not followed by `;`.
    InvalidChunkSize,
    /// A chunk size has more than 16 hex digits or exceeds 2^63 − 1.
    ChunkSizeOverflow,
    /// A chunk extension does not follow
    /// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`
    /// (RFC 9112 §7.1.1).
    InvalidChunkExtension,
    /// The chunk extensions of one chunk-size line exceed
    /// [`crate::Limits::max_chunk_extension_size`] bytes.
    ChunkExtensionTooLong,
    /// Chunk data is not followed by CRLF.
    InvalidChunkDelimiter,
    /// A trailer field line is malformed (bad name, control byte in the
    /// value, leading whitespace).
    InvalidTrailer,
    /// The trailer section exceeds [`crate::Limits::max_trailer_size`] bytes.
    TrailersTooLarge,

    // ----- response writer ------------------------------------------------
    /// A response head cannot be written as asked: status outside 100..=999,
    /// a reason phrase with control bytes, a body length on a 1xx/204
    /// response, or chunked framing for an HTTP/1.0 client.
    InvalidResponseHead,
    /// A response field has an invalid name or a value with CR, LF, NUL or
    /// another control byte, or is a framing field (`Content-Length`,
    /// `Transfer-Encoding`, and `Connection` outside 101) that the writer
    /// owns.
    InvalidResponseHeader,
}

impl Error {
    /// The HTTP status code to answer this error with.
    ///
    /// | status | errors |
    /// | --- | --- |
    /// | 400 | every malformed request and every smuggling shape |
    /// | 413 | [`BodyTooLarge`](Error::BodyTooLarge) |
    /// | 417 | [`UnsupportedExpectation`](Error::UnsupportedExpectation) |
    /// | 431 | [`HeadTooLarge`](Error::HeadTooLarge), [`TooManyHeaders`](Error::TooManyHeaders), [`TrailersTooLarge`](Error::TrailersTooLarge) |
    /// | 500 | the response-writer errors (a bug in the caller, not the peer) |
    /// | 501 | [`UnsupportedTransferCoding`](Error::UnsupportedTransferCoding) |
    /// | 505 | [`UnsupportedVersion`](Error::UnsupportedVersion) |
    pub const fn status(&self) -> u16 {
        match self {
            Error::BodyTooLarge => 413,
            Error::UnsupportedExpectation => 417,
            Error::HeadTooLarge | Error::TooManyHeaders | Error::TrailersTooLarge => 431,
            Error::InvalidResponseHead | Error::InvalidResponseHeader => 500,
            Error::UnsupportedTransferCoding => 501,
            Error::UnsupportedVersion => 505,
            Error::InvalidMethod
            | Error::InvalidTarget
            | Error::InvalidRequestLine
            | Error::InvalidVersion
            | Error::BareLineFeed
            | Error::BareCarriageReturn
            | Error::InvalidHeaderName
            | Error::WhitespaceBeforeColon
            | Error::ObsoleteLineFolding
            | Error::InvalidHeaderValue
            | Error::MissingHost
            | Error::DuplicateHost
            | Error::InvalidHost
            | Error::InvalidContentLength
            | Error::ConflictingContentLength
            | Error::ContentLengthWithTransferEncoding
            | Error::TransferEncodingInHttp10
            | Error::InvalidTransferEncoding
            | Error::InvalidChunkSize
            | Error::ChunkSizeOverflow
            | Error::InvalidChunkExtension
            | Error::ChunkExtensionTooLong
            | Error::InvalidChunkDelimiter
            | Error::InvalidTrailer => 400,
        }
    }

    /// A short lowercase description, the same text as [`fmt::Display`].
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::InvalidMethod => "invalid method",
            Error::InvalidTarget => "invalid request-target",
            Error::InvalidRequestLine => "malformed request line",
            Error::InvalidVersion => "malformed HTTP version",
            Error::UnsupportedVersion => "HTTP version not supported",
            Error::BareLineFeed => "line ends in a bare LF",
            Error::BareCarriageReturn => "CR not followed by LF",
            Error::HeadTooLarge => "request head too large",
            Error::TooManyHeaders => "too many header fields",
            Error::InvalidHeaderName => "invalid header field name",
            Error::WhitespaceBeforeColon => "whitespace between field name and colon",
            Error::ObsoleteLineFolding => "obsolete line folding",
            Error::InvalidHeaderValue => "invalid byte in header field value",
            Error::MissingHost => "HTTP/1.1 request without Host",
            Error::DuplicateHost => "more than one Host field",
            Error::InvalidHost => "invalid Host",
            Error::InvalidContentLength => "invalid Content-Length",
            Error::ConflictingContentLength => "conflicting Content-Length values",
            Error::ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            Error::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Error::InvalidTransferEncoding => "chunked is not the final transfer coding",
            Error::UnsupportedTransferCoding => "unsupported transfer coding",
            Error::BodyTooLarge => "request body too large",
            Error::UnsupportedExpectation => "unsupported expectation",
            Error::InvalidChunkSize => "invalid chunk size",
            Error::ChunkSizeOverflow => "chunk size too large",
            Error::InvalidChunkExtension => "invalid chunk extension",
            Error::ChunkExtensionTooLong => "chunk extension too long",
            Error::InvalidChunkDelimiter => "chunk data not followed by CRLF",
            Error::InvalidTrailer => "invalid trailer field",
            Error::TrailersTooLarge => "trailer section too large",
            Error::InvalidResponseHead => "invalid response head",
            Error::InvalidResponseHeader => "invalid response header field",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        assert_eq!(Error::HeadTooLarge.status(), 431);
        assert_eq!(Error::TooManyHeaders.status(), 431);
        assert_eq!(Error::BodyTooLarge.status(), 413);
        assert_eq!(Error::UnsupportedTransferCoding.status(), 501);
        assert_eq!(Error::UnsupportedVersion.status(), 505);
        assert_eq!(Error::InvalidTransferEncoding.status(), 400);
        assert_eq!(Error::ContentLengthWithTransferEncoding.status(), 400);
        assert_eq!(Error::BareLineFeed.to_string(), "line ends in a bare LF");
        for status in [400, 413, 417, 431, 500, 501, 505] {
            assert!(crate::reason_phrase(status).is_some());
        }
    }
}
