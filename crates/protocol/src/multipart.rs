//! `multipart/form-data` request bodies (RFC 7578, framed per RFC 2046
//! §5.1): [`boundary_from_content_type`] takes the boundary from the
//! request's `Content-Type`, and [`Multipart`] is a resumable push parser
//! that is fed the body in whatever pieces arrive and hands back events —
//! a part's head, runs of its data, its end, the end of the form.
//!
//! It is written here rather than taken from crates.io because none of the
//! maintained parsers fits a completion-driven server that feeds decoded
//! body pieces as they arrive: `multer` (and `multipart_async_stream`,
//! `multra`) pull from an async `Stream` of owned `Bytes`; `multipart` 0.18
//! pulls from a blocking `Read` and has been unmaintained since 2021;
//! `form-net` is push-based but young, changes its API from release to
//! release and routes data through its own sinks and buffers. Here the
//! caller keeps control: no callbacks, no I/O, and no copy of part data.
//!
//! Part data comes back as slices of the fed input. The one exception is a
//! piece that ended in what might have been the start of a delimiter
//! (`CRLF--bou`): those bytes are held back (at most the delimiter's length,
//! 74 bytes) and, if the next piece shows they were data after all, handed
//! out from the parser's own copy of the delimiter — they are by
//! construction a prefix of it. Part heads are copied into one buffer of at
//! most [`MultipartLimits::max_part_header_size`] bytes, reused for every
//! part; nothing else is allocated after [`Multipart::new`].

use std::fmt;

use memchr::memmem;
use serde::{Deserialize, Serialize};

use crate::fields::{is_field_value_byte, is_ows, is_tchar, trim_ows};
use crate::range::{is_bchar_nospace, is_valid_boundary};
use crate::snapshot::{check, to_usize, ImportError};

use MultipartPhase as State;

/// Default [`MultipartLimits::max_parts`]: 1000 parts (Go's limit since
/// CVE-2023-24536).
pub const DEFAULT_MAX_PARTS: usize = 1000;
/// Default [`MultipartLimits::max_part_header_size`]: 8 KiB per part head.
pub const DEFAULT_MAX_PART_HEADER_SIZE: usize = 8 * 1024;
/// Default [`MultipartLimits::max_total_size`]: 1 GiB, the default
/// [`crate::Limits::max_body_size`].
pub const DEFAULT_MAX_MULTIPART_SIZE: u64 = crate::DEFAULT_MAX_BODY_SIZE;
/// Default [`MultipartLimits::max_field_name_len`]: 256 bytes.
pub const DEFAULT_MAX_FIELD_NAME_LEN: usize = 256;

/// Bounds on a `multipart/form-data` body. Exceeding one is an error whose
/// [`status`](MultipartError::status) is 413.
///
/// ```
/// let mut limits = protocol::MultipartLimits::default();
/// limits.max_parts = 10;
/// assert_eq!(limits.max_part_header_size, 8 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MultipartLimits {
    /// Most parts in one body. Exceeding it →
    /// [`MultipartError::TooManyParts`].
    pub max_parts: usize,
    /// Largest head of one part, in bytes from the first field line to the
    /// empty line that ends it (both CRLFs included). Exceeding it →
    /// [`MultipartError::PartHeaderTooLarge`].
    pub max_part_header_size: usize,
    /// Largest body, every byte counted: preamble, delimiters, heads, data
    /// and epilogue. Exceeding it → [`MultipartError::BodyTooLarge`].
    pub max_total_size: u64,
    /// Longest field name (the `name` parameter, after unquoting).
    /// Exceeding it → [`MultipartError::FieldNameTooLong`].
    pub max_field_name_len: usize,
}

impl MultipartLimits {
    /// The defaults: 1000 parts, 8 KiB per part head, 1 GiB in total,
    /// 256-byte field names.
    pub const DEFAULT: MultipartLimits = MultipartLimits {
        max_parts: DEFAULT_MAX_PARTS,
        max_part_header_size: DEFAULT_MAX_PART_HEADER_SIZE,
        max_total_size: DEFAULT_MAX_MULTIPART_SIZE,
        max_field_name_len: DEFAULT_MAX_FIELD_NAME_LEN,
    };
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits::DEFAULT
    }
}

/// Why a `multipart/form-data` body (or its `Content-Type`) was refused.
/// [`MultipartError::status`] gives the status to answer.
///
/// Serializable, as part of the parser states (see
/// [`STATE_VERSION`](crate::STATE_VERSION)): the encoding numbers the
/// variants in order, so add new ones at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum MultipartError {
    /// The `Content-Type` is not `multipart/form-data` (RFC 7578 §4):
    /// 415.
    NotFormData,
    /// The `Content-Type` is malformed, has no `boundary` parameter or more
    /// than one, or the boundary is not 1–70 RFC 2046 `bchars` ending in a
    /// non-space (a quoted boundary with a backslash is refused too): 400.
    InvalidBoundary,
    /// A boundary delimiter is followed by something other than optional
    /// whitespace and CRLF, or `--` (RFC 2046 §5.1.1): 400.
    InvalidDelimiter,
    /// A part head has a malformed line: no colon, a name that is not a
    /// token, whitespace before the colon, a control byte, a bare CR or LF,
    /// or obsolete line folding (RFC 9110 §5, RFC 9112 §2.2, §5): 400.
    InvalidPartHeader,
    /// A part has no `Content-Disposition`, or more than one, or more than
    /// one `Content-Type` (RFC 7578 §4.2): 400.
    MissingContentDisposition,
    /// `Content-Disposition` is not `form-data` with a `name` parameter, its
    /// parameters are malformed or repeated, or `filename*` is not a valid
    /// RFC 8187 ext-value (RFC 7578 §4.2): 400.
    InvalidContentDisposition,
    /// The body ended before the close delimiter ([`Multipart::finish`]):
    /// 400.
    Incomplete,
    /// More than [`MultipartLimits::max_parts`] parts: 413.
    TooManyParts,
    /// A part head longer than [`MultipartLimits::max_part_header_size`]:
    /// 413.
    PartHeaderTooLarge,
    /// A body longer than [`MultipartLimits::max_total_size`]: 413.
    BodyTooLarge,
    /// A field name longer than [`MultipartLimits::max_field_name_len`]:
    /// 413.
    FieldNameTooLong,
}

impl MultipartError {
    /// The HTTP status to answer: 400 for malformed input, 413 for a
    /// limit, 415 for a `Content-Type` that is not `multipart/form-data`.
    pub const fn status(&self) -> u16 {
        match self {
            MultipartError::NotFormData => 415,
            MultipartError::TooManyParts
            | MultipartError::PartHeaderTooLarge
            | MultipartError::BodyTooLarge
            | MultipartError::FieldNameTooLong => 413,
            MultipartError::InvalidBoundary
            | MultipartError::InvalidDelimiter
            | MultipartError::InvalidPartHeader
            | MultipartError::MissingContentDisposition
            | MultipartError::InvalidContentDisposition
            | MultipartError::Incomplete => 400,
        }
    }

    /// A short lowercase description, the same text as [`fmt::Display`].
    pub const fn as_str(&self) -> &'static str {
        match self {
            MultipartError::NotFormData => "content type is not multipart/form-data",
            MultipartError::InvalidBoundary => "invalid multipart boundary",
            MultipartError::InvalidDelimiter => "malformed multipart delimiter line",
            MultipartError::InvalidPartHeader => "malformed part header field",
            MultipartError::MissingContentDisposition => {
                "part without exactly one Content-Disposition"
            }
            MultipartError::InvalidContentDisposition => "invalid Content-Disposition",
            MultipartError::Incomplete => "multipart body ended early",
            MultipartError::TooManyParts => "too many parts",
            MultipartError::PartHeaderTooLarge => "part header too large",
            MultipartError::BodyTooLarge => "multipart body too large",
            MultipartError::FieldNameTooLong => "field name too long",
        }
    }
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for MultipartError {}

/// Splits `type/subtype *( OWS ";" OWS name=value )` into the lowercase-
/// insensitive media type and an iterator over raw parameters. `None` if
/// the shape is wrong.
fn media_type_params(value: &[u8]) -> Option<(&[u8], Params<'_>)> {
    let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    let media = trim_ows(&value[..end]);
    let slash = media.iter().position(|&b| b == b'/')?;
    let (ty, sub) = (&media[..slash], &media[slash + 1..]);
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| is_tchar(b));
    (token(ty) && token(sub)).then_some((
        media,
        Params {
            rest: &value[end..],
        },
    ))
}

/// One parameter value: a token, or a quoted-string (still quoted).
#[derive(Debug, Clone, Copy)]
enum ParamValue<'a> {
    Token(&'a [u8]),
    /// The content between the quotes, escapes not yet removed.
    Quoted(&'a [u8]),
}

/// Iterates `*( OWS ";" OWS name "=" ( token / quoted-string ) )`, yielding
/// `Err(())` once at the first malformed parameter. Empty parameters
/// (`;;`) are skipped (RFC 9110 §5.6.6 `[ parameter ]`).
#[derive(Debug, Clone)]
struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<(&'a [u8], ParamValue<'a>), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = trim_start(self.rest);
            if s.is_empty() {
                return None;
            }
            if s[0] != b';' {
                self.rest = &[];
                return Some(Err(()));
            }
            let s = trim_start(&s[1..]);
            if s.is_empty() || s[0] == b';' {
                self.rest = s;
                continue;
            }
            let name_len = s.iter().position(|&b| !is_tchar(b)).unwrap_or(s.len());
            let (name, s) = s.split_at(name_len);
            if name.is_empty() || s.first() != Some(&b'=') {
                self.rest = &[];
                return Some(Err(()));
            }
            let s = &s[1..];
            let (value, after) = if s.first() == Some(&b'"') {
                match quoted_end(&s[1..]) {
                    Some(end) => (ParamValue::Quoted(&s[1..1 + end]), &s[end + 2..]),
                    None => {
                        self.rest = &[];
                        return Some(Err(()));
                    }
                }
            } else {
                let len = s.iter().position(|&b| !is_tchar(b)).unwrap_or(s.len());
                if len == 0 {
                    self.rest = &[];
                    return Some(Err(()));
                }
                (ParamValue::Token(&s[..len]), &s[len..])
            };
            self.rest = after;
            return Some(Ok((name, value)));
        }
    }
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    s
}

/// `qdtext` of RFC 9110 §5.6.4 (HTAB, SP, VCHAR except `"` and `\`,
/// obs-text).
const fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// Index (in `s`, which starts after the opening quote) of the closing
/// quote of a quoted-string, honouring `\` escapes.
fn quoted_end(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i),
            b'\\' => {
                let next = *s.get(i + 1)?;
                if !(next == b'\t' || next == b' ' || (0x21..=0x7e).contains(&next) || next >= 0x80)
                {
                    return None;
                }
                i += 2;
            }
            b if is_qdtext(b) => i += 1,
            _ => return None,
        }
    }
    None
}

/// Parses a request's `Content-Type` value and returns its boundary.
///
/// The media type must be `multipart/form-data` (case-insensitive; else
/// [`MultipartError::NotFormData`], 415) with exactly one `boundary`
/// parameter, a token or a quoted-string, that is a valid RFC 2046 boundary:
/// 1–70 characters from `0-9 A-Z a-z '()+_,-./:=?` and space, not ending in
/// a space. A quoted boundary containing a backslash is refused rather than
/// unescaped (no valid boundary needs one), so the result borrows `value`.
///
/// ```
/// use protocol::{boundary_from_content_type, MultipartError};
///
/// assert_eq!(
///     boundary_from_content_type(b"multipart/form-data; boundary=----WebKitFormBoundary7MA4"),
///     Ok(&b"----WebKitFormBoundary7MA4"[..])
/// );
/// assert_eq!(
///     boundary_from_content_type(b"Multipart/Form-Data; charset=utf-8; BOUNDARY=\"a b:c\""),
///     Ok(&b"a b:c"[..])
/// );
/// assert_eq!(
///     boundary_from_content_type(b"text/plain; boundary=x"),
///     Err(MultipartError::NotFormData)
/// );
/// ```
pub fn boundary_from_content_type(value: &[u8]) -> Result<&[u8], MultipartError> {
    let (media, params) = media_type_params(value).ok_or(MultipartError::InvalidBoundary)?;
    if !media.eq_ignore_ascii_case(b"multipart/form-data") {
        return Err(MultipartError::NotFormData);
    }
    let mut boundary = None;
    for param in params {
        let (name, value) = param.map_err(|()| MultipartError::InvalidBoundary)?;
        if !name.eq_ignore_ascii_case(b"boundary") {
            continue;
        }
        if boundary.is_some() {
            return Err(MultipartError::InvalidBoundary);
        }
        let b = match value {
            ParamValue::Token(t) => t,
            ParamValue::Quoted(q) if !q.contains(&b'\\') => q,
            ParamValue::Quoted(_) => return Err(MultipartError::InvalidBoundary),
        };
        boundary = Some(b);
    }
    match boundary {
        Some(b) if is_valid_boundary(b) => Ok(b),
        _ => Err(MultipartError::InvalidBoundary),
    }
}

/// Longest delimiter: CRLF, `--`, and a 70-byte boundary.
const MAX_DELIMITER: usize = 4 + 70;

/// The head of one part, borrowed from the parser until the next
/// [`Multipart::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'s> {
    /// The `name` parameter of `Content-Disposition`, unquoted. Not
    /// percent-decoded: browsers write `"`, CR and LF in names as `%22`,
    /// `%0D`, `%0A` (HTML's form encoding), but a literal `%22` is just as
    /// possible, so that is left to the application.
    pub name: &'s [u8],
    /// The file name: from `filename*` when present with the UTF-8 or
    /// ISO-8859-1 charset (decoded to UTF-8), else from `filename`
    /// (unquoted, bytes as sent). `Some(b"")` for a file input left empty.
    /// Never use it as a path as it is; see [`sanitize_filename`].
    pub filename: Option<&'s [u8]>,
    /// The part's `Content-Type` value, if any (RFC 7578 §4.4: default
    /// `text/plain`).
    pub content_type: Option<&'s [u8]>,
    /// The whole head as received: field lines, each ending in CRLF,
    /// without the final empty line. For other fields see
    /// [`header`](Self::header).
    pub head: &'s [u8],
}

impl<'s> Part<'s> {
    /// The value (whitespace-trimmed) of the first head field named `name`
    /// (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'s [u8]> {
        head_lines(self.head)
            .find_map(|(n, v)| n.eq_ignore_ascii_case(name.as_bytes()).then_some(v))
    }
}

/// The `(name, trimmed value)` of each line of a validated head.
fn head_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    head.split(|&b| b == b'\n').filter_map(|line| {
        let line = line.strip_suffix(b"\r")?;
        let colon = line.iter().position(|&b| b == b':')?;
        Some((&line[..colon], trim_ows(&line[colon + 1..])))
    })
}

/// The last path component of a client-supplied file name, or `None` when
/// nothing safe is left.
///
/// Splits on `/` and `\` (old browsers sent whole Windows paths, RFC 7578
/// §4.2 says to strip them) and refuses an empty result, `.`, `..`, and
/// names with control bytes (NUL, CR, LF, …) or DEL. What remains still
/// needs the application's own policy (length, reserved names, collisions)
/// before it becomes a file on disk.
///
/// ```
/// use protocol::sanitize_filename;
///
/// assert_eq!(sanitize_filename(b"C:\\Users\\me\\cat.jpg"), Some(&b"cat.jpg"[..]));
/// assert_eq!(sanitize_filename(b"../../etc/passwd"), Some(&b"passwd"[..]));
/// assert_eq!(sanitize_filename(b"dir/.."), None);
/// assert_eq!(sanitize_filename(b"a\0b"), None);
/// ```
pub fn sanitize_filename(name: &[u8]) -> Option<&[u8]> {
    let start = name
        .iter()
        .rposition(|&b| b == b'/' || b == b'\\')
        .map_or(0, |i| i + 1);
    let base = &name[start..];
    let ok = !base.is_empty()
        && base != b"."
        && base != b".."
        && base.iter().all(|&b| b >= 0x20 && b != 0x7f);
    ok.then_some(base)
}

/// What [`Multipart::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartEvent<'s> {
    /// Every byte of the input was consumed and no event completed: feed
    /// more.
    NeedMore,
    /// A part begins; its data follows in [`MultipartEvent::PartData`] events.
    PartStart(Part<'s>),
    /// A run of the current part's data (never empty): a slice of the input,
    /// or of held-back bytes that turned out not to be a delimiter.
    PartData(&'s [u8]),
    /// The current part's data is complete.
    PartEnd,
    /// The close delimiter was seen: the form is complete. Everything after
    /// it (the epilogue) is consumed and ignored, and every later call
    /// returns `End` again.
    End,
}

/// One step of [`Multipart::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartStep<'s> {
    /// Input bytes used; continue with `&input[consumed..]`. May be 0 (an
    /// event was due before any input was needed).
    pub consumed: usize,
    /// What happened.
    pub event: MultipartEvent<'s>,
}

/// Where the parser is in RFC 2046's grammar:
///
/// ```text
/// multipart-body := [preamble CRLF] dash-boundary transport-padding CRLF
///                   body-part *( delimiter transport-padding CRLF body-part )
///                   close-delimiter transport-padding [CRLF epilogue]
/// delimiter      := CRLF "--" boundary      close-delimiter := delimiter "--"
/// body-part      := MIME-part-headers [CRLF *OCTET]
/// ```
///
/// Part of [`MultipartState`]; the encoding depends on the order of the
/// variants (see [`STATE_VERSION`](crate::STATE_VERSION)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MultipartPhase {
    /// Skipping the preamble, looking for the first delimiter.
    Preamble,
    /// Just after a boundary: `--`, padding or CRLF must follow.
    AfterBoundary,
    /// Got one `-` after a boundary.
    CloseDash,
    /// In transport padding (SP/HTAB) after a boundary.
    Padding,
    /// Got the CR of the delimiter line.
    DelimiterLf,
    /// At the start of a head line (or of the empty line ending the head).
    HeadLineStart,
    /// In a head field name.
    HeadName,
    /// In a head field value.
    HeadValue,
    /// Got the CR ending a head line.
    HeadLineLf,
    /// Got the CR of the empty line ending the head.
    HeadEndLf,
    /// The head is complete; `PartStart` is due.
    HeadDone,
    /// In part data.
    Data,
    /// After the close delimiter.
    Epilogue,
}

impl MultipartPhase {
    /// Phases inside a part head, whose bytes are in the head buffer.
    const fn in_head(self) -> bool {
        matches!(
            self,
            State::HeadLineStart
                | State::HeadName
                | State::HeadValue
                | State::HeadLineLf
                | State::HeadEndLf
                | State::HeadDone
        )
    }
}

/// A [`Multipart`] parser's state as plain data: see [`Multipart::export`]
/// and [`Multipart::import`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartState {
    /// Where in the body the parser is.
    pub phase: MultipartPhase,
    /// The boundary, without the leading `--`.
    pub boundary: Vec<u8>,
    /// Bytes of the delimiter (`CRLF--boundary`) matched at the end of the
    /// input so far and held back (in the
    /// [`Preamble`](MultipartPhase::Preamble) and
    /// [`Data`](MultipartPhase::Data) phases; always fewer than the
    /// delimiter's length). They are the delimiter's first bytes, so they
    /// are not stored.
    pub held: u8,
    /// How many of the `held` bytes were never received: 2 (the CRLF
    /// assumed at the start of the body and of a part's data) or 0.
    pub virtual_held: u8,
    /// The current part head so far, in the head phases: its field lines
    /// with their CRLFs, without the CR (and LF) of the empty line that
    /// ends it.
    pub head: Vec<u8>,
    /// Parts started so far.
    pub parts: u64,
    /// Body bytes consumed so far.
    pub total: u64,
    /// The error the parser failed with; it returns it again.
    pub error: Option<MultipartError>,
}

/// A resumable `multipart/form-data` parser (RFC 7578, RFC 2046 §5.1).
///
/// Feed it the request body (after any transfer decoding) in pieces of any
/// size with [`feed`](Self::feed), which returns one [`MultipartEvent`] per call and
/// how much input it used. Call again with the rest of the input until
/// [`MultipartEvent::NeedMore`] (then wait for more body) or [`MultipartEvent::End`]. When the
/// request body ends, call [`finish`](Self::finish) to make sure the form
/// was complete. After an error every call returns the same error.
///
/// The preamble and epilogue are ignored. Zero parts (`--boundary--`) is a
/// valid, empty form. Every part needs a `Content-Disposition: form-data`
/// with a `name`; other head fields are kept in [`Part::head`], and
/// `Content-Transfer-Encoding` is not applied (RFC 7578 §4.7 deprecates it).
///
/// ```
/// use protocol::{Multipart, MultipartEvent, MultipartLimits};
///
/// let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"greeting\"\r\n\r\nhello\
///              \r\n--XyZ\r\nContent-Disposition: form-data; name=f; filename=\"a.txt\"\r\n\
///              Content-Type: text/plain\r\n\r\nfile\r\ndata\r\n--XyZ--\r\n";
/// let mut form = Multipart::new(b"XyZ", &MultipartLimits::default())?;
/// let mut seen = Vec::new();
/// for piece in body.chunks(7) {
///     let mut input = &piece[..];
///     loop {
///         let step = form.feed(input)?;
///         match step.event {
///             MultipartEvent::PartStart(part) => {
///                 seen.push(format!("{}:", String::from_utf8_lossy(part.name)))
///             }
///             MultipartEvent::PartData(data) => seen.last_mut().unwrap().push_str(std::str::from_utf8(data).unwrap()),
///             MultipartEvent::PartEnd => {}
///             MultipartEvent::End | MultipartEvent::NeedMore => break,
///         }
///         input = &input[step.consumed..];
///     }
/// }
/// form.finish()?;
/// assert_eq!(seen, ["greeting:hello", "f:file\r\ndata"]);
/// # Ok::<(), protocol::MultipartError>(())
/// ```
#[derive(Clone)]
pub struct Multipart {
    state: State,
    /// `CRLF -- boundary`, in `delimiter[..delimiter_len]`.
    delimiter: [u8; MAX_DELIMITER],
    delimiter_len: usize,
    finder: memmem::Finder<'static>,
    /// Bytes of the delimiter matched at the end of the input seen so far
    /// (in `Preamble` and `Data`). Held back: not yet handed out as data.
    held: usize,
    /// How many of the `held` bytes were never received: 2 (a CRLF) at the
    /// start of the body and of each part's data, where a boundary may
    /// follow without a CRLF of its own; 0 otherwise.
    virtual_held: usize,
    /// The current part head (field lines with their CRLFs).
    head: Vec<u8>,
    /// Bytes of the head so far, final CRLF included.
    head_len: usize,
    /// Unquoted name and decoded file name of the current part.
    scratch: Vec<u8>,
    /// Where the current part's fields are (in `head` or `scratch`).
    part: PartRanges,
    parts: usize,
    total: u64,
    limits: MultipartLimits,
    error: Option<MultipartError>,
}

impl fmt::Debug for Multipart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multipart")
            .field("state", &self.state)
            .field(
                "boundary",
                &String::from_utf8_lossy(&self.delimiter[4..self.delimiter_len]),
            )
            .field("held", &self.held)
            .field("parts", &self.parts)
            .field("total", &self.total)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// `start..end` of a field in one of the parser's buffers.
type Span = (usize, usize);

/// Byte ranges of a parsed part's fields.
#[derive(Debug, Clone, Copy, Default)]
struct PartRanges {
    /// In `scratch`.
    name: Span,
    /// In `scratch`.
    filename: Option<Span>,
    /// In `head`.
    content_type: Option<Span>,
}

impl Multipart {
    /// A parser for a body whose boundary is `boundary` (without the leading
    /// `--`; e.g. from [`boundary_from_content_type`]). An invalid boundary
    /// (not 1–70 RFC 2046 `bchars`, or ending in a space) is
    /// [`MultipartError::InvalidBoundary`].
    pub fn new(boundary: &[u8], limits: &MultipartLimits) -> Result<Self, MultipartError> {
        if !is_valid_boundary(boundary) {
            return Err(MultipartError::InvalidBoundary);
        }
        debug_assert!(boundary.iter().all(|&b| b == b' ' || is_bchar_nospace(b)));
        let mut delimiter = [0; MAX_DELIMITER];
        delimiter[..4].copy_from_slice(b"\r\n--");
        delimiter[4..4 + boundary.len()].copy_from_slice(boundary);
        let delimiter_len = 4 + boundary.len();
        let finder = memmem::Finder::new(&delimiter[..delimiter_len]).into_owned();
        Ok(Multipart {
            state: State::Preamble,
            delimiter,
            delimiter_len,
            finder,
            // The body may open with `--boundary` and no CRLF: act as if a
            // CRLF had just been seen.
            held: 2,
            virtual_held: 2,
            head: Vec::new(),
            head_len: 0,
            scratch: Vec::new(),
            part: PartRanges::default(),
            parts: 0,
            total: 0,
            limits: *limits,
            error: None,
        })
    }

    /// Parses from the start of `input` up to the next event.
    ///
    /// Returns how much of `input` was used and the event. Continue with
    /// `&input[consumed..]` until [`MultipartEvent::NeedMore`] (all of `input` was
    /// used) or [`MultipartEvent::End`]. The event borrows both the parser and
    /// `input`; let go of it before the next call.
    pub fn feed<'s>(&'s mut self, input: &'s [u8]) -> Result<MultipartStep<'s>, MultipartError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // Never look at the byte that would exceed the total limit: the
        // error then comes exactly when that byte would be consumed, however
        // the body is split.
        let was_epilogue = self.state == State::Epilogue;
        let allowed = self.limits.max_total_size - self.total;
        let over = input.len() as u64 > allowed;
        let input = if over {
            &input[..allowed as usize]
        } else {
            input
        };
        match self.step(input) {
            Ok((consumed, kind)) => {
                self.total += consumed as u64;
                // Out of allowed input: an error, unless an event (even the
                // close delimiter's End) came first; the next call errs.
                if over
                    && consumed == input.len()
                    && (matches!(kind, Kind::NeedMore) || was_epilogue)
                {
                    self.error = Some(MultipartError::BodyTooLarge);
                    return Err(MultipartError::BodyTooLarge);
                }
                Ok(MultipartStep {
                    consumed,
                    event: self.event(kind, input),
                })
            }
            Err(e) => {
                self.error = Some(e);
                Err(e)
            }
        }
    }

    /// The parser's state, to continue elsewhere with
    /// [`import`](Self::import). The limits are not part of it.
    pub fn export(&self) -> MultipartState {
        let boundary = self.delimiter[4..self.delimiter_len].to_vec();
        if self.error.is_some() {
            return MultipartState {
                phase: State::Preamble,
                boundary,
                held: 2,
                virtual_held: 2,
                head: Vec::new(),
                parts: self.parts as u64,
                total: self.total,
                error: self.error,
            };
        }
        MultipartState {
            phase: self.state,
            boundary,
            held: self.held as u8,
            virtual_held: self.virtual_held as u8,
            head: if self.state.in_head() {
                self.head.clone()
            } else {
                Vec::new()
            },
            parts: self.parts as u64,
            total: self.total,
            error: None,
        }
    }

    /// A parser that continues where the one that exported `state`
    /// stopped, bounded by `limits` (which may differ from the exporting
    /// side's). Refuses an invalid boundary, a state the parser could not
    /// have reached (a held-back match as long as the delimiter, a part head
    /// that is malformed or does not end in the phase given, …), and one
    /// already beyond `limits`: more parts than
    /// [`max_parts`](MultipartLimits::max_parts), a body longer than
    /// [`max_total_size`](MultipartLimits::max_total_size), a head longer
    /// than [`max_part_header_size`](MultipartLimits::max_part_header_size).
    pub fn import(state: MultipartState, limits: &MultipartLimits) -> Result<Self, ImportError> {
        let MultipartState {
            phase,
            boundary,
            held,
            virtual_held,
            head,
            parts,
            total,
            error,
        } = state;
        let mut m = Multipart::new(&boundary, limits)
            .map_err(|_| ImportError::new("MultipartState.boundary", "not a valid boundary"))?;
        let parts = to_usize(parts, "MultipartState.parts")?;
        check(
            parts <= limits.max_parts,
            "MultipartState.parts",
            "exceeds max_parts",
        )?;
        check(
            parts > 0 || !(phase.in_head() || phase == State::Data),
            "MultipartState.parts",
            "0 inside a part",
        )?;
        check(
            total <= limits.max_total_size,
            "MultipartState.total",
            "exceeds max_total_size",
        )?;
        let (held, virtual_held) = (usize::from(held), usize::from(virtual_held));
        if matches!(phase, State::Preamble | State::Data) {
            check(
                held < m.delimiter_len,
                "MultipartState.held",
                "not shorter than the delimiter",
            )?;
            check(
                virtual_held == 0 || virtual_held == 2,
                "MultipartState.virtual_held",
                "not 0 or 2",
            )?;
            check(
                virtual_held <= held,
                "MultipartState.virtual_held",
                "more than held",
            )?;
        } else {
            check(held == 0, "MultipartState.held", "not 0 in this phase")?;
            check(
                virtual_held == 0,
                "MultipartState.virtual_held",
                "not 0 in this phase",
            )?;
        }
        if error.is_some() {
            check(
                phase == State::Preamble && held == 2 && virtual_held == 2 && head.is_empty(),
                "MultipartState.error",
                "a failed parser exports only its error, boundary and counts",
            )?;
        }
        if phase.in_head() {
            // Replay the head through the grammar: it must be valid so far,
            // within the limit, and end in `phase`.
            m.state = State::HeadLineStart;
            for &b in &head {
                m.head_byte(b).map_err(|e| match e {
                    MultipartError::PartHeaderTooLarge => {
                        ImportError::new("MultipartState.head", "exceeds max_part_header_size")
                    }
                    _ => ImportError::new("MultipartState.head", "not a valid part head"),
                })?;
                check(
                    !matches!(m.state, State::HeadEndLf | State::HeadDone),
                    "MultipartState.head",
                    "holds the empty line that ends a head",
                )?;
            }
            let mut end = &b""[..];
            if phase == State::HeadEndLf {
                end = b"\r";
            } else if phase == State::HeadDone {
                end = b"\r\n";
            }
            if !end.is_empty() {
                check(
                    m.state == State::HeadLineStart,
                    "MultipartState.phase",
                    "the head does not end at a line start",
                )?;
                for &b in end {
                    m.head_byte(b).map_err(|_| {
                        ImportError::new("MultipartState.head", "exceeds max_part_header_size")
                    })?;
                }
            }
            check(
                m.state == phase,
                "MultipartState.phase",
                "does not match where the head ends",
            )?;
        } else {
            check(
                head.is_empty(),
                "MultipartState.head",
                "not empty outside a part head",
            )?;
        }
        m.state = phase;
        m.held = held;
        m.virtual_held = virtual_held;
        m.parts = parts;
        m.total = total;
        m.error = error;
        Ok(m)
    }

    /// Checks that the form was complete when the request body ended:
    /// `Ok` once the close delimiter was seen, else the error seen before,
    /// or [`MultipartError::Incomplete`].
    pub fn finish(&self) -> Result<(), MultipartError> {
        match (self.error, self.state) {
            (Some(e), _) => Err(e),
            (None, State::Epilogue) => Ok(()),
            (None, _) => Err(MultipartError::Incomplete),
        }
    }

    /// Whether the close delimiter has been seen.
    pub fn is_done(&self) -> bool {
        self.error.is_none() && self.state == State::Epilogue
    }

    /// Parts started so far.
    pub const fn parts(&self) -> usize {
        self.parts
    }

    /// Input bytes consumed so far (counted against
    /// [`MultipartLimits::max_total_size`]).
    pub const fn total_len(&self) -> u64 {
        self.total
    }

    /// Heap bytes the parser holds (its head buffer, its name/file-name
    /// buffer and the delimiter search table). Bounded by the limits: it
    /// does not grow with the size of the body.
    pub fn heap_size(&self) -> usize {
        self.head.capacity() + self.scratch.capacity() + self.delimiter_len
    }

    fn event<'s>(&'s self, kind: Kind, input: &'s [u8]) -> MultipartEvent<'s> {
        match kind {
            Kind::NeedMore => MultipartEvent::NeedMore,
            Kind::PartEnd => MultipartEvent::PartEnd,
            Kind::End => MultipartEvent::End,
            Kind::Data(a, b) => MultipartEvent::PartData(&input[a..b]),
            Kind::HeldData(a, b) => MultipartEvent::PartData(&self.delimiter[a..b]),
            Kind::PartStart => {
                let r = self.part;
                MultipartEvent::PartStart(Part {
                    name: &self.scratch[r.name.0..r.name.1],
                    filename: r.filename.map(|(a, b)| &self.scratch[a..b]),
                    content_type: r.content_type.map(|(a, b)| &self.head[a..b]),
                    head: &self.head,
                })
            }
        }
    }

    /// The state machine. Returns the bytes consumed and what to report.
    fn step(&mut self, input: &[u8]) -> Result<(usize, Kind), MultipartError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Preamble | State::Data => {
                    let emit = self.state == State::Data;
                    match self.scan(&input[pos..]) {
                        Scan::Delimiter(n) => {
                            pos += n;
                            self.state = State::AfterBoundary;
                            if emit {
                                return Ok((pos, Kind::PartEnd));
                            }
                        }
                        Scan::Data(a, b, n) => {
                            if emit && a < b {
                                return Ok((pos + n, Kind::Data(pos + a, pos + b)));
                            }
                            pos += n;
                        }
                        Scan::Held(a, b) => {
                            if emit && a < b {
                                return Ok((pos, Kind::HeldData(a, b)));
                            }
                        }
                    }
                }
                State::HeadDone => {
                    self.parse_head()?;
                    self.state = State::Data;
                    // The head's final CRLF also starts a line: a part with
                    // no data may end in `CRLF CRLF --boundary` (RFC 2046's
                    // `body-part := MIME-part-headers [CRLF *OCTET]`).
                    self.held = 2;
                    self.virtual_held = 2;
                    return Ok((pos, Kind::PartStart));
                }
                State::Epilogue => return Ok((input.len(), Kind::End)),
                _ => {
                    let Some(&b) = input.get(pos) else {
                        return Ok((pos, Kind::NeedMore));
                    };
                    pos += 1;
                    if self.framing_byte(b)? {
                        return Ok((pos, Kind::End));
                    }
                }
            }
            if pos == input.len() && matches!(self.state, State::Preamble | State::Data) {
                return Ok((pos, Kind::NeedMore));
            }
        }
    }

    /// Looks for the delimiter in `input`, given `self.held` bytes of it
    /// matched before.
    fn scan(&mut self, input: &[u8]) -> Scan {
        let d = &self.delimiter[..self.delimiter_len];
        if self.held > 0 {
            let want = &d[self.held..];
            let n = want.len().min(input.len());
            if input[..n] == want[..n] {
                if n == want.len() {
                    self.held = 0;
                    self.virtual_held = 0;
                    return Scan::Delimiter(n);
                }
                self.held += n;
                return Scan::Data(0, 0, n);
            }
            // Not a delimiter: the held bytes were data (except the virtual
            // CRLF, which was never received). They are a prefix of the
            // delimiter, whose only CR is its first byte, so no delimiter
            // can start inside them; rescan `input` from 0.
            let (a, b) = (self.virtual_held, self.held);
            self.held = 0;
            self.virtual_held = 0;
            return Scan::Held(a, b);
        }
        if let Some(i) = self.finder.find(input) {
            return if i == 0 {
                Scan::Delimiter(d.len())
            } else {
                // The data first; the delimiter is found again next call.
                Scan::Data(0, i, i)
            };
        }
        // No whole delimiter. Hold back the longest suffix that is a prefix
        // of it: the delimiter has a CR only at its start, so the suffix
        // starts at the last CR in the final `len - 1` bytes, if anywhere.
        let tail = input.len().saturating_sub(d.len() - 1);
        let held = memchr::memrchr(b'\r', &input[tail..])
            .map(|i| tail + i)
            .filter(|&p| d.starts_with(&input[p..]))
            .map_or(0, |p| input.len() - p);
        self.held = held;
        Scan::Data(0, input.len() - held, input.len())
    }

    /// One byte of delimiter-line or head framing. Returns `true` at the
    /// end of the close delimiter.
    fn framing_byte(&mut self, b: u8) -> Result<bool, MultipartError> {
        match self.state {
            State::AfterBoundary => match b {
                b'-' => self.state = State::CloseDash,
                b' ' | b'\t' => self.state = State::Padding,
                b'\r' => self.state = State::DelimiterLf,
                _ => return Err(MultipartError::InvalidDelimiter),
            },
            State::CloseDash => {
                if b != b'-' {
                    return Err(MultipartError::InvalidDelimiter);
                }
                self.state = State::Epilogue;
                return Ok(true);
            }
            State::Padding => match b {
                b' ' | b'\t' => {}
                b'\r' => self.state = State::DelimiterLf,
                _ => return Err(MultipartError::InvalidDelimiter),
            },
            State::DelimiterLf => {
                if b != b'\n' {
                    return Err(MultipartError::InvalidDelimiter);
                }
                if self.parts == self.limits.max_parts {
                    return Err(MultipartError::TooManyParts);
                }
                self.parts += 1;
                self.head.clear();
                self.head_len = 0;
                self.state = State::HeadLineStart;
            }
            _ => self.head_byte(b)?,
        }
        Ok(false)
    }

    /// One byte of a part head: `*( field-name ":" OWS field-value OWS CRLF )
    /// CRLF`, with the strictness of the request head parser.
    fn head_byte(&mut self, b: u8) -> Result<(), MultipartError> {
        self.head_len += 1;
        if self.head_len > self.limits.max_part_header_size {
            return Err(MultipartError::PartHeaderTooLarge);
        }
        let bad = MultipartError::InvalidPartHeader;
        match self.state {
            State::HeadLineStart => match b {
                b'\r' => {
                    self.state = State::HeadEndLf;
                    return Ok(());
                }
                _ if is_tchar(b) => self.state = State::HeadName,
                // Leading whitespace is obs-fold (or junk before the first
                // field); a colon here means an empty name.
                _ => return Err(bad),
            },
            State::HeadName => match b {
                b':' => self.state = State::HeadValue,
                _ if is_tchar(b) => {}
                _ => return Err(bad),
            },
            State::HeadValue => match b {
                b'\r' => self.state = State::HeadLineLf,
                _ if is_field_value_byte(b) => {}
                _ => return Err(bad),
            },
            State::HeadLineLf => {
                if b != b'\n' {
                    return Err(bad);
                }
                self.state = State::HeadLineStart;
            }
            State::HeadEndLf => {
                if b != b'\n' {
                    return Err(bad);
                }
                self.state = State::HeadDone;
                return Ok(());
            }
            _ => unreachable!("head_byte outside the head"),
        }
        self.head.push(b);
        Ok(())
    }

    /// Reads `Content-Disposition` and `Content-Type` from the finished
    /// head into `self.part`.
    fn parse_head(&mut self) -> Result<(), MultipartError> {
        let mut disposition = None;
        let mut content_type = None;
        let base = self.head.as_ptr() as usize;
        for (name, value) in head_lines(&self.head) {
            let at = value.as_ptr() as usize - base;
            let range = (at, at + value.len());
            if name.eq_ignore_ascii_case(b"content-disposition") {
                if disposition.replace(range).is_some() {
                    return Err(MultipartError::MissingContentDisposition);
                }
            } else if name.eq_ignore_ascii_case(b"content-type")
                && content_type.replace(range).is_some()
            {
                return Err(MultipartError::MissingContentDisposition);
            }
        }
        let (a, b) = disposition.ok_or(MultipartError::MissingContentDisposition)?;
        self.scratch.clear();
        let (name, filename) = parse_disposition(&self.head[a..b], &mut self.scratch)?;
        if name.1 - name.0 > self.limits.max_field_name_len {
            return Err(MultipartError::FieldNameTooLong);
        }
        self.part = PartRanges {
            name,
            filename,
            content_type,
        };
        Ok(())
    }
}

/// What `Multipart::step` reports; turned into a [`MultipartEvent`] with borrows.
#[derive(Debug, Clone, Copy)]
enum Kind {
    NeedMore,
    PartStart,
    Data(usize, usize),
    /// `delimiter[.0...1]`.
    HeldData(usize, usize),
    PartEnd,
    End,
}

/// What `Multipart::scan` found in its input.
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// The delimiter ends after this many input bytes.
    Delimiter(usize),
    /// Data at `.0..​.1` of the input; `.2` bytes consumed (the rest, if any,
    /// is held back).
    Data(usize, usize, usize),
    /// The held-back bytes were data: `delimiter[.0...1]` (the virtual CRLF
    /// left out); nothing consumed.
    Held(usize, usize),
}

/// Parses `form-data; name=...; filename=...; filename*=...`, writing the
/// unquoted name and the file name into `out`. Returns their ranges there.
fn parse_disposition(
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(Span, Option<Span>), MultipartError> {
    let bad = MultipartError::InvalidContentDisposition;
    let end = value.iter().position(|&b| b == b';').unwrap_or(value.len());
    if !trim_ows(&value[..end]).eq_ignore_ascii_case(b"form-data") {
        return Err(bad);
    }
    let params = Params {
        rest: &value[end..],
    };
    let (mut name, mut filename, mut filename_ext) = (None, None, None);
    for param in params {
        let (key, v) = param.map_err(|()| bad)?;
        let slot = if key.eq_ignore_ascii_case(b"name") {
            &mut name
        } else if key.eq_ignore_ascii_case(b"filename") {
            &mut filename
        } else if key.eq_ignore_ascii_case(b"filename*") {
            &mut filename_ext
        } else {
            continue;
        };
        if slot.replace(v).is_some() {
            return Err(bad);
        }
    }
    let name = unquote(name.ok_or(bad)?, out);
    let ext = match filename_ext {
        Some(ParamValue::Token(t)) => decode_ext_value(t, out)?,
        Some(ParamValue::Quoted(_)) => return Err(bad),
        None => None,
    };
    let filename = ext.or_else(|| filename.map(|f| unquote(f, out)));
    Ok((name, filename))
}

/// Appends a parameter value to `out` with quoted-string escapes removed,
/// and returns its range there.
///
/// Only `\"` and `\\` are escapes: another backslash is kept as it is, so a
/// Windows path sent unescaped (`"C:\dir\a.txt"`, as old browsers did) keeps
/// its separators — the rule Go's `mime` package follows.
fn unquote(v: ParamValue<'_>, out: &mut Vec<u8>) -> Span {
    let start = out.len();
    match v {
        ParamValue::Token(t) => out.extend_from_slice(t),
        ParamValue::Quoted(q) => {
            let mut i = 0;
            while i < q.len() {
                if q[i] == b'\\' && matches!(q.get(i + 1), Some(b'"' | b'\\')) {
                    i += 1;
                }
                out.push(q[i]);
                i += 1;
            }
        }
    }
    (start, out.len())
}

/// `attr-char` of RFC 8187 §3.2.1.
const fn is_attr_char(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// Decodes an RFC 8187 ext-value, `charset "'" [ language ] "'"
/// value-chars`, into UTF-8 appended to `out`. `Ok(None)` for a charset
/// other than UTF-8 and ISO-8859-1 (ignored, RFC 8187 §3.2.1 allows that);
/// an error for a malformed value or invalid UTF-8.
fn decode_ext_value(v: &[u8], out: &mut Vec<u8>) -> Result<Option<Span>, MultipartError> {
    let bad = MultipartError::InvalidContentDisposition;
    let mut it = v.splitn(3, |&b| b == b'\'');
    let (Some(charset), Some(lang), Some(chars)) = (it.next(), it.next(), it.next()) else {
        return Err(bad);
    };
    if charset.is_empty()
        || !charset.iter().all(|&b| is_tchar(b))
        || !lang.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(bad);
    }
    let utf8 = charset.eq_ignore_ascii_case(b"utf-8");
    let latin1 = charset.eq_ignore_ascii_case(b"iso-8859-1");
    let start = out.len();
    let mut i = 0;
    while i < chars.len() {
        let b = match chars[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    chars.get(i + 1).and_then(|&c| hex(c)),
                    chars.get(i + 2).and_then(|&c| hex(c)),
                ) else {
                    out.truncate(start);
                    return Err(bad);
                };
                i += 3;
                (h * 16 + l) as u8
            }
            c if is_attr_char(c) => {
                i += 1;
                c
            }
            _ => {
                out.truncate(start);
                return Err(bad);
            }
        };
        if latin1 && b >= 0x80 {
            // U+0080..U+00FF in UTF-8.
            out.extend_from_slice(&[0xc0 | (b >> 6), 0x80 | (b & 0x3f)]);
        } else {
            out.push(b);
        }
    }
    if !(utf8 || latin1) {
        out.truncate(start);
        return Ok(None);
    }
    if std::str::from_utf8(&out[start..]).is_err() {
        out.truncate(start);
        return Err(bad);
    }
    Ok(Some((start, out.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
        let all = |v: &[u8]| -> Result<Pairs, ()> {
            Params { rest: v }
                .map(|p| {
                    p.map(|(n, v)| {
                        let mut out = Vec::new();
                        let (a, b) = unquote(v, &mut out);
                        (n.to_vec(), out[a..b].to_vec())
                    })
                })
                .collect()
        };
        assert_eq!(all(b""), Ok(vec![]));
        assert_eq!(
            all(b"; a=1 ;b=\"x;y\\\"z\";; c=\"\""),
            Ok(vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"x;y\"z".to_vec()),
                (b"c".to_vec(), b"".to_vec()),
            ])
        );
        assert_eq!(
            all(b"; f=\"C:\\dir\\a.txt\""),
            Ok(vec![(b"f".to_vec(), b"C:\\dir\\a.txt".to_vec())])
        );
        for bad in [
            &b"x"[..],
            b"; a",
            b"; a=",
            b"; a =1",
            b"; =1",
            b"; a=\"x",
            b"; a=1 2",
        ] {
            assert!(all(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ext_values() {
        let dec = |v: &[u8]| {
            let mut out = b"prefix".to_vec();
            decode_ext_value(v, &mut out).map(|r| r.map(|(a, b)| out[a..b].to_vec()))
        };
        assert_eq!(
            dec(b"UTF-8''%e2%82%ac%20rates.txt"),
            Ok(Some("€ rates.txt".into()))
        );
        assert_eq!(dec(b"utf-8'en'a.txt"), Ok(Some(b"a.txt".to_vec())));
        assert_eq!(dec(b"iso-8859-1''caf%E9"), Ok(Some("café".into())));
        assert_eq!(dec(b"koi8-r''%c1"), Ok(None));
        for bad in [
            &b"a.txt"[..],
            b"utf-8'a.txt",
            b"utf-8''%e2%82",
            b"utf-8''%zz",
            b"utf-8''a b",
            b"''a",
        ] {
            assert_eq!(
                dec(bad),
                Err(MultipartError::InvalidContentDisposition),
                "{bad:?}"
            );
        }
    }
}
