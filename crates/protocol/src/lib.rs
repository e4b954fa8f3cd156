//! # protocol — HTTP/1.1 parsing and framing for ringtail
//!
//! Pure functions and small state machines over byte slices: no I/O, no
//! allocation on the request path, no `unsafe`. network_server feeds it the
//! bytes a connection received and writes what it produces; this crate owns
//! the rules of RFC 9110 and RFC 9112, and decides which malformed or
//! ambiguous input is refused and with which status.
//!
//! ## How the pieces fit together
//!
//! * [`parse_request`] — the head. Runs `httparse` over the received bytes
//!   (zero-copy: every slice in the [`RequestHead`] borrows the input), adds
//!   the checks `httparse` leaves out, and derives keep-alive, body framing
//!   ([`BodyFraming`]), `Expect: 100-continue`, upgrade and Host. Returns
//!   [`Parsed::Partial`] until the head is complete.
//! * [`BodyDecoder`] — the body that follows: a [`LengthDecoder`] for
//!   Content-Length or a [`ChunkedDecoder`] for chunked, both fed arbitrary
//!   slices and returning body data as ranges of them ([`Decoded`]).
//! * [`ResponseHead::write`] — the answer's status line and fields, appended
//!   to a `Vec<u8>` apart from the body; [`DateCache`] supplies `Date`.
//! * Snapshots — every parser that keeps state between calls exports it as
//!   plain data and imports it again, validated ([`ChunkedDecoder::export`],
//!   [`ImportError`]; [`snapshot`] lists them).
//! * [`Error`] — everything that can be refused, each with the status to
//!   answer ([`Error::status`]). [`Limits`] bounds every size.
//!
//! ```
//! use protocol::{header_storage, parse_request, BodyDecoder, Limits, Parsed};
//!
//! let limits = Limits::default();
//! let received = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
//!                  3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
//! let mut headers = header_storage::<32>();
//! let Parsed::Complete(head, used) = parse_request(received, &mut headers, &limits)?
//! else { unreachable!("complete") };
//! let mut body = BodyDecoder::new(head.body, &limits);
//! let mut rest = &received[used..];
//! let mut data = Vec::new();
//! while !body.is_done() {
//!     let step = body.decode(rest)?;
//!     data.extend_from_slice(step.data(rest));
//!     rest = &rest[step.consumed..];
//! }
//! assert_eq!(data, b"abc");
//! assert!(rest.starts_with(b"GET / HTTP/1.1")); // the next pipelined request
//! # Ok::<(), protocol::Error>(())
//! ```
//!
//! ## Strictness
//!
//! Anything two HTTP implementations could read differently — and so use to
//! smuggle a request past a proxy — is rejected rather than guessed at:
//! bare LF or CR line endings, obsolete line folding, whitespace before a
//! colon, Content-Length together with Transfer-Encoding, differing
//! Content-Lengths, a final coding other than `chunked`, chunk sizes that
//! overflow. `docs/http.md` in the repository lists every rule with its RFC
//! section, and the limits with their defaults.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod chunked;
mod conditional;
mod date;
mod error;
mod fields;
mod limits;
mod multipart;
mod range;
mod request;
pub mod resp;
mod response;
pub mod snapshot;
pub mod ws;

pub use body::{BodyDecoder, BodyState, Decoded, LengthDecoder, LengthState};
pub use chunked::{ChunkedDecoder, ChunkedPhase, ChunkedState};
pub use conditional::{
    evaluate_preconditions, if_match, if_none_match, parse_http_date, ETag, EntityTag,
    Precondition, Validators, ETAG_MAX_LEN,
};
pub use date::DateCache;
pub use error::Error;
pub use limits::{
    Limits, DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_CHUNK_EXTENSION_SIZE, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_TRAILER_SIZE,
};
pub use multipart::{
    boundary_from_content_type, sanitize_filename, Multipart, MultipartError, MultipartEvent,
    MultipartLimits, MultipartPhase, MultipartState, MultipartStep, Part,
    DEFAULT_MAX_FIELD_NAME_LEN, DEFAULT_MAX_MULTIPART_SIZE, DEFAULT_MAX_PARTS,
    DEFAULT_MAX_PART_HEADER_SIZE,
};
pub use range::{
    if_range_matches, parse_range, write_unsatisfied_range, ByteRange, ByteRangesWriter,
    RangeError, RangeLimits, RangeSet, BYTERANGES_BOUNDARY_LEN, DEFAULT_COALESCE_GAP,
    DEFAULT_MAX_RANGES,
};
pub use request::{
    header_storage, parse_request, BodyFraming, Header, Method, Parsed, RequestHead, TargetForm,
    Version,
};
pub use response::{
    reason_phrase, write_chunk_header, BodyLength, ResponseHead, CHUNK_END, CONTINUE, LAST_CHUNK,
};
pub use snapshot::{ImportError, STATE_VERSION};
