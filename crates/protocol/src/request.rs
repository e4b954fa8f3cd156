//! Request heads: [`parse_request`] runs `httparse` over the bytes received so
//! far, adds the strict checks `httparse` leaves to its caller (bare LF, head
//! size, target bytes, version 505 vs 400), and derives what the connection
//! needs — keep-alive, body framing, `100-continue`, upgrade, Host — into a
//! [`RequestHead`] that borrows from the input.

use std::mem::MaybeUninit;

use crate::fields::{
    fold_content_length, is_tchar, is_token, is_valid_authority, list_members, split_absolute_form,
    trim_ows,
};
use crate::{Error, Limits};

/// One header field line: `name` is a token, `value` has its surrounding
/// whitespace trimmed. Both borrow from the parsed buffer. (This is
/// `httparse::Header`, re-exported.)
pub use httparse::Header;

/// The protocol version of a request. Only HTTP/1.0 and HTTP/1.1 are parsed;
/// any other well-formed version is [`Error::UnsupportedVersion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFraming {
    /// Neither Content-Length nor Transfer-Encoding: the request has no body.
    None,
    /// `Content-Length: n` (already checked against
    /// [`Limits::max_body_size`]); `n` may be 0.
    ContentLength(u64),
    /// `Transfer-Encoding: chunked`; decode with [`crate::ChunkedDecoder`].
    Chunked,
}

impl BodyFraming {
    /// Whether body bytes follow the head (`ContentLength(0)` has none).
    pub const fn has_body(&self) -> bool {
        !matches!(self, BodyFraming::None | BodyFraming::ContentLength(0))
    }
}

/// The form of the request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetForm {
    /// `/path?query` — the usual form.
    Origin,
    /// `http://authority/path?query` — accepted for `http` and `https`; the
    /// authority in the target wins over Host (RFC 9112 §3.2.2).
    Absolute,
    /// `host:port` — only, and always, with CONNECT.
    Authority,
    /// `*` — only with OPTIONS.
    Asterisk,
}

/// The methods of RFC 9110 §9 plus PATCH (RFC 5789). Methods are
/// case-sensitive; any other token is still a valid method and is left to
/// the application ([`RequestHead::method`] has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
}

impl Method {
    /// The method named by `token`, if it is one of the above (exact case).
    pub fn from_token(token: &str) -> Option<Method> {
        Some(match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            _ => return None,
        })
    }

    /// The method's token, e.g. `"GET"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
        }
    }
}

/// A parsed and checked request head. Every slice borrows from the buffer
/// given to [`parse_request`] (`'b`); `headers` lives in the caller's
/// header storage (`'h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestHead<'b, 'h> {
    /// The method token as received (case-sensitive), e.g. `"GET"`.
    pub method: &'b str,
    /// The request-target as received, e.g. `"/a/b?c=d"`. Printable ASCII
    /// without `#`.
    pub target: &'b str,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Every field line, in order, duplicates included.
    pub headers: &'h [Header<'b>],
    /// Which form `target` has.
    pub target_form: TargetForm,
    /// The path of an origin- or absolute-form target, without the query
    /// (`"/"` when an absolute-form target has an empty path); `"*"` for
    /// asterisk-form; empty for authority-form. Not percent-decoded.
    pub path: &'b str,
    /// The query of an origin- or absolute-form target, without the `?`.
    pub query: Option<&'b str>,
    /// The Host field value, if present (it may be empty).
    pub host: Option<&'b [u8]>,
    /// The effective authority: from the target in absolute- and
    /// authority-form (where Host is ignored, RFC 9112 §3.2.2), else the
    /// Host value.
    pub authority: Option<&'b [u8]>,
    /// Whether the connection may carry another request after this one:
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
    /// `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    /// How the body is delimited.
    pub body: BodyFraming,
    /// `Expect: 100-continue` on an HTTP/1.1 request: the client waits for a
    /// `100 Continue` (or a final status) before sending the body. Ignored in
    /// HTTP/1.0 as RFC 9110 §10.1.1 requires.
    pub expect_continue: bool,
    /// An HTTP/1.1 request with `Connection: upgrade` and an `Upgrade`
    /// field (RFC 9110 §7.8); read the protocols with
    /// [`header("upgrade")`](RequestHead::header).
    pub upgrade: bool,
}

impl<'b> RequestHead<'b, '_> {
    /// The method as a [`Method`], if it is a standard one.
    pub fn method_kind(&self) -> Option<Method> {
        Method::from_token(self.method)
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The values of every field named `name` (ASCII case-insensitive), in
    /// order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// [`path`](RequestHead::path) percent-decoded (`/a%20b` → `/a b`),
    /// borrowed when there was nothing to decode; `None` when the decoded
    /// bytes are not UTF-8. A `+` stays a `+` (that rule is the query's).
    ///
    /// For routing and display. `%2F` decodes to `/` and `%2E%2E` to `..`,
    /// so never join a decoded path to a directory yourself: the server's
    /// send-file (`Ctx::http_send_file`) takes the raw path and does its
    /// own decoding and checks.
    ///
    /// ```
    /// # use protocol::{header_storage, parse_request, Limits, Parsed};
    /// let mut h = header_storage::<4>();
    /// let buf = b"GET /caf%C3%A9/a%20b?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    /// let Parsed::Complete(req, _) = parse_request(buf, &mut h, &Limits::default())? else { panic!() };
    /// assert_eq!(req.path_decoded().as_deref(), Some("/café/a b"));
    /// # Ok::<(), protocol::Error>(())
    /// ```
    pub fn path_decoded(&self) -> Option<std::borrow::Cow<'b, str>> {
        percent_encoding::percent_decode_str(self.path)
            .decode_utf8()
            .ok()
    }

    /// The query as `application/x-www-form-urlencoded` name/value pairs,
    /// in order, duplicates included: `+` is a space, `%XX` is decoded, and
    /// bytes that are not UTF-8 become U+FFFD. A name without `=` has an
    /// empty value; empty pieces (`a=1&&b=2`) are skipped. Nothing when the
    /// request has no query.
    ///
    /// ```
    /// # use protocol::{header_storage, parse_request, Limits, Parsed};
    /// let mut h = header_storage::<4>();
    /// let buf = b"GET /s?q=ring+tail&lang=en&q=%F0%9F%A6%8A&flag HTTP/1.1\r\nHost: a\r\n\r\n";
    /// let Parsed::Complete(req, _) = parse_request(buf, &mut h, &Limits::default())? else { panic!() };
    /// let pairs: Vec<(String, String)> =
    ///     req.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    /// assert_eq!(pairs[0], ("q".into(), "ring tail".into()));
    /// assert_eq!(pairs[2], ("q".into(), "🦊".into()));
    /// assert_eq!(pairs[3], ("flag".into(), "".into()));
    /// assert_eq!(req.query_param("lang").as_deref(), Some("en"));
    /// assert_eq!(req.query_param("q").as_deref(), Some("ring tail")); // the first
    /// assert_eq!(req.query_param("nope"), None);
    /// # Ok::<(), protocol::Error>(())
    /// ```
    pub fn query_pairs(
        &self,
    ) -> impl Iterator<Item = (std::borrow::Cow<'b, str>, std::borrow::Cow<'b, str>)> + 'b {
        form_urlencoded::parse(self.query.unwrap_or("").as_bytes())
    }

    /// The decoded value of the first query pair named `name` (compared
    /// after decoding), as [`query_pairs`](RequestHead::query_pairs) reads
    /// them.
    pub fn query_param(&self, name: &str) -> Option<std::borrow::Cow<'b, str>> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// What [`parse_request`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'b, 'h> {
    /// The head is not complete yet and nothing wrong has been seen: call
    /// again with the same bytes plus more.
    Partial,
    /// A complete, checked head, and the number of bytes it took (leading
    /// empty lines and the final CRLF included). The body, or the next
    /// pipelined request, starts at that offset.
    Complete(RequestHead<'b, 'h>, usize),
}

/// Uninitialised storage for `N` headers, for [`parse_request`]. Costs
/// nothing to create (no per-parse zeroing).
///
/// ```
/// let mut headers = protocol::header_storage::<{ protocol::DEFAULT_MAX_HEADERS }>();
/// # let _ = &mut headers;
/// ```
pub fn header_storage<'b, const N: usize>() -> [MaybeUninit<Header<'b>>; N] {
    [const { MaybeUninit::uninit() }; N]
}

/// Parses the request head at the start of `buf`.
///
/// `buf` holds everything received since the previous request ended; call
/// again with more bytes after [`Parsed::Partial`]. Nothing is copied or
/// allocated: the head borrows `buf` and `headers`. At most
/// `min(headers.len(), limits.max_headers)` fields are accepted, and at most
/// `limits.max_head_size` bytes of `buf` are looked at.
///
/// Stricter than `httparse` alone: bare LF line endings, non-ASCII or `#`
/// in the target, and every framing ambiguity are errors (see [`Error`] and
/// `docs/http.md`).
///
/// ```
/// use protocol::{parse_request, header_storage, BodyFraming, Limits, Parsed};
///
/// let buf = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
/// let mut headers = header_storage::<16>();
/// let Parsed::Complete(head, len) = parse_request(buf, &mut headers, &Limits::default())?
/// else { unreachable!() };
/// assert_eq!((head.method, head.path, len), ("POST", "/up", 49));
/// assert_eq!(head.body, BodyFraming::ContentLength(3));
/// assert!(head.keep_alive);
/// # Ok::<(), protocol::Error>(())
/// ```
pub fn parse_request<'b, 'h>(
    buf: &'b [u8],
    headers: &'h mut [MaybeUninit<Header<'b>>],
    limits: &Limits,
) -> Result<Parsed<'b, 'h>, Error> {
    let window = &buf[..buf.len().min(limits.max_head_size)];
    let cap = headers.len().min(limits.max_headers);
    let storage = &mut headers[..cap];

    let mut config = httparse::ParserConfig::default();
    // These are httparse's defaults; spelled out so an upstream change of
    // default cannot loosen this parser.
    config
        .allow_multiple_spaces_in_request_line_delimiters(false)
        .allow_space_before_first_header_name(false)
        .ignore_invalid_headers_in_requests(false);
    let mut req = httparse::Request::new(&mut []);
    match config.parse_request_with_uninit_headers(&mut req, window, storage) {
        Ok(httparse::Status::Complete(len)) => {
            check_complete_line_endings(&window[..len])?;
            let httparse::Request {
                method: Some(method),
                path: Some(target),
                version: Some(minor),
                headers,
            } = req
            else {
                return Err(Error::InvalidRequestLine);
            };
            let version = if minor == 0 {
                Version::Http10
            } else {
                Version::Http11
            };
            let head = analyze(method, target, version, headers, limits)?;
            Ok(Parsed::Complete(head, len))
        }
        Ok(httparse::Status::Partial) => {
            check_line_endings(window)?;
            partial(buf, limits)
        }
        Err(e) => {
            check_line_endings(window)?;
            diagnose(window, e)?;
            partial(buf, limits)
        }
    }
}

/// `Partial`, unless the head already fills the size limit.
fn partial<'b, 'h>(buf: &[u8], limits: &Limits) -> Result<Parsed<'b, 'h>, Error> {
    if buf.len() >= limits.max_head_size {
        Err(Error::HeadTooLarge)
    } else {
        Ok(Parsed::Partial)
    }
}

/// httparse accepts a bare LF wherever CRLF belongs (RFC 9112 §2.2 lets a
/// recipient do so); this parser does not, so that it never disagrees with
/// a CRLF-only peer about where a line ends. Every CR httparse accepted is
/// already followed by LF.
fn check_line_endings(head: &[u8]) -> Result<(), Error> {
    for i in memchr::memchr_iter(b'\n', head) {
        if i == 0 || head[i - 1] != b'\r' {
            return Err(Error::BareLineFeed);
        }
    }
    Ok(())
}

/// [`check_line_endings`] for a head httparse accepted whole (the hot
/// path: every request goes through it). One pass without early exit, which
/// the compiler turns into vector code, instead of a `memchr` search per
/// LF (with the other one-pass checks of this commit, parsing the load
/// generator's head went from 78 to 62 ns: `docs/http.md`).
fn check_complete_line_endings(head: &[u8]) -> Result<(), Error> {
    let first_bare = head.first() == Some(&b'\n');
    let inner_bare = head
        .iter()
        .zip(&head[1.min(head.len())..])
        .fold(false, |bare, (&prev, &b)| {
            bare | (b == b'\n' && prev != b'\r')
        });
    debug_assert_eq!(first_bare || inner_bare, check_line_endings(head).is_err());
    if first_bare || inner_bare {
        Err(Error::BareLineFeed)
    } else {
        Ok(())
    }
}

/// A CR followed by something other than LF.
fn has_bare_cr(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\r', head).any(|i| head.get(i + 1).is_some_and(|&b| b != b'\n'))
}

/// The request line (leading empty lines skipped, line ending excluded),
/// and whether its end has been received.
fn request_line(head: &[u8]) -> (&[u8], bool) {
    let mut rest = head;
    while let Some(r) = rest.strip_prefix(b"\r\n") {
        rest = r;
    }
    match memchr::memchr2(b'\r', b'\n', rest) {
        Some(end) => (&rest[..end], true),
        None => (rest, false),
    }
}

/// Turns an httparse error into the most precise [`Error`]. Runs only on
/// the error path. `Ok(())` means "not an error yet": a version that may
/// still turn out well formed (e.g. `HTTP/2` waiting for `.0`), which must
/// be seen whole to choose between 505 and 400.
fn diagnose(head: &[u8], e: httparse::Error) -> Result<(), Error> {
    Err(match e {
        httparse::Error::TooManyHeaders => Error::TooManyHeaders,
        httparse::Error::Version => return version_error(head),
        httparse::Error::Token => request_line_error(head),
        _ if has_bare_cr(head) => Error::BareCarriageReturn,
        // After a valid `HTTP/1.x`, something other than CRLF.
        httparse::Error::NewLine => Error::InvalidVersion,
        httparse::Error::HeaderName => return header_line_error(head),
        httparse::Error::HeaderValue => Error::InvalidHeaderValue,
        httparse::Error::Status => Error::InvalidRequestLine,
    })
}

/// httparse rejected the method or the target (`Error::Token`).
fn request_line_error(head: &[u8]) -> Error {
    let (line, _) = request_line(head);
    let (method, rest) = match memchr::memchr(b' ', line) {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    };
    if method.iter().any(|&b| !is_tchar(b)) || (method.is_empty() && rest.is_some()) {
        return Error::InvalidMethod;
    }
    let Some(rest) = rest else {
        return Error::InvalidRequestLine;
    };
    let target = &rest[..memchr::memchr(b' ', rest).unwrap_or(rest.len())];
    if target.is_empty() {
        Error::InvalidRequestLine
    } else if target.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        Error::InvalidTarget
    } else {
        // e.g. `GET /` followed by the line end: no version (HTTP/0.9).
        Error::InvalidRequestLine
    }
}

/// httparse rejected the version (`Error::Version`): 505 for a well-formed
/// `HTTP/d.d` other than 1.0/1.1, 400 for anything else, "wait" while the
/// version seen so far can still become well formed.
fn version_error(head: &[u8]) -> Result<(), Error> {
    let (line, terminated) = request_line(head);
    let Some(version) = line.splitn(3, |&b| b == b' ').nth(2) else {
        return Err(Error::InvalidRequestLine);
    };
    let fits = version.len() <= 8
        && version.iter().enumerate().all(|(i, &b)| match i {
            5 | 7 => b.is_ascii_digit(),
            6 => b == b'.',
            _ => b == b"HTTP/"[i],
        });
    match (fits, terminated) {
        (true, true) if version.len() == 8 => Err(Error::UnsupportedVersion),
        (true, false) => Ok(()),
        _ => Err(Error::InvalidVersion),
    }
}

/// httparse rejected a field name (`Error::HeaderName`): find the line.
/// `Ok(())` ("wait") for an unfinished last line that is a name followed by
/// whitespace: whether a colon comes next decides between
/// [`Error::WhitespaceBeforeColon`] and [`Error::InvalidHeaderName`].
fn header_line_error(head: &[u8]) -> Result<(), Error> {
    let mut lines = head.split(|&b| b == b'\n').peekable();
    while lines.next_if(|l| *l == b"\r").is_some() {}
    lines.next(); // the request line
    while let Some(raw) = lines.next() {
        let unfinished = lines.peek().is_none() && !raw.ends_with(b"\r");
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Some(&first) = line.first() else { break };
        if first == b' ' || first == b'\t' {
            return Err(Error::ObsoleteLineFolding);
        }
        let name_len = line.iter().take_while(|&&b| is_tchar(b)).count();
        let rest = &line[name_len..];
        let after_ws = trim_ows(rest);
        return match rest.first() {
            Some(b':') if name_len > 0 => continue,
            Some(b' ' | b'\t') if name_len > 0 && after_ws.first() == Some(&b':') => {
                Err(Error::WhitespaceBeforeColon)
            }
            Some(b' ' | b'\t') if name_len > 0 && after_ws.is_empty() && unfinished => Ok(()),
            _ => Err(Error::InvalidHeaderName),
        };
    }
    Err(Error::InvalidHeaderName)
}

/// The semantic pass over a syntactically valid head. One walk over the
/// fields; Transfer-Encoding lines are walked again only when present.
fn analyze<'b, 'h>(
    method: &'b str,
    target: &'b str,
    version: Version,
    headers: &'h [Header<'b>],
    limits: &Limits,
) -> Result<RequestHead<'b, 'h>, Error> {
    // httparse allows obs-text (0x80-0xFF, as valid UTF-8) in the target; a
    // URI has none (RFC 3986 §2). A fragment is never sent (RFC 9112 §3.2).
    // One pass without early exit (vector code; targets are short).
    let bad_target = target
        .bytes()
        .fold(false, |bad, b| bad | !b.is_ascii() | (b == b'#'));
    if bad_target {
        return Err(Error::InvalidTarget);
    }

    let mut host = None;
    let mut content_length = None;
    let mut has_te = false;
    let (mut close, mut keep_alive, mut conn_upgrade) = (false, false, false);
    let mut upgrade_field = false;
    let mut expect_continue = false;
    for h in headers {
        let name = h.name.as_bytes();
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                host = match host {
                    None => Some(h.value),
                    Some(_) => return Err(Error::DuplicateHost),
                };
            }
            6 if name.eq_ignore_ascii_case(b"expect") && version == Version::Http11 => {
                for m in list_members(h.value) {
                    if !m.eq_ignore_ascii_case(b"100-continue") {
                        return Err(Error::UnsupportedExpectation);
                    }
                    expect_continue = true;
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => upgrade_field = true,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for m in list_members(h.value) {
                    close |= m.eq_ignore_ascii_case(b"close");
                    keep_alive |= m.eq_ignore_ascii_case(b"keep-alive");
                    conn_upgrade |= m.eq_ignore_ascii_case(b"upgrade");
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                fold_content_length(h.value, &mut content_length)?;
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => has_te = true,
            _ => {}
        }
    }

    let body = if has_te {
        if version == Version::Http10 {
            return Err(Error::TransferEncodingInHttp10);
        }
        if content_length.is_some() {
            return Err(Error::ContentLengthWithTransferEncoding);
        }
        check_transfer_encoding(headers)?;
        BodyFraming::Chunked
    } else if let Some(n) = content_length {
        BodyFraming::ContentLength(n)
    } else {
        BodyFraming::None
    };

    match host {
        None if version == Version::Http11 => return Err(Error::MissingHost),
        Some(h) if !is_valid_authority(h, true, false) => return Err(Error::InvalidHost),
        _ => {}
    }

    // A byte loop: cheaper than `split_once`'s memchr set-up on a path of a
    // few bytes.
    let split_query = |s: &'b str| match s.bytes().position(|b| b == b'?') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (target_form, path, query, authority) = if method == "CONNECT" {
        if !is_valid_authority(target.as_bytes(), false, true) {
            return Err(Error::InvalidTarget);
        }
        (TargetForm::Authority, "", None, Some(target.as_bytes()))
    } else if target.starts_with('/') {
        let (p, q) = split_query(target);
        (TargetForm::Origin, p, q, host)
    } else if target == "*" {
        if method != "OPTIONS" {
            return Err(Error::InvalidTarget);
        }
        (TargetForm::Asterisk, "*", None, host)
    } else if let Some((auth, rest)) = split_absolute_form(target) {
        let (p, q) = split_query(rest);
        let p = if p.is_empty() { "/" } else { p };
        (TargetForm::Absolute, p, q, Some(auth.as_bytes()))
    } else {
        return Err(Error::InvalidTarget);
    };

    if let BodyFraming::ContentLength(n) = body {
        limits.check_body_size(n)?;
    }

    Ok(RequestHead {
        method,
        target,
        version,
        headers,
        target_form,
        path,
        query,
        host,
        authority,
        keep_alive: match version {
            Version::Http11 => !close,
            Version::Http10 => keep_alive && !close,
        },
        body,
        expect_continue,
        upgrade: version == Version::Http11 && conn_upgrade && upgrade_field,
    })
}

/// Transfer-Encoding (all lines, in order, as one list) must end in exactly
/// one `chunked` without parameters (RFC 9112 §6.1, §6.3 item 4, §7):
/// anything else as the final coding, a repeated `chunked`, a parameter on
/// it, a non-token or an empty list is 400; other codings before a final
/// `chunked` are well formed but not decoded here: 501.
fn check_transfer_encoding(headers: &[Header<'_>]) -> Result<(), Error> {
    let (mut chunked, mut others, mut last_is_chunked) = (0u32, 0u32, false);
    let te = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    for h in te {
        for member in list_members(h.value) {
            let (coding, params) = match memchr::memchr(b';', member) {
                Some(i) => (trim_ows(&member[..i]), true),
                None => (member, false),
            };
            if !is_token(coding) {
                return Err(Error::InvalidTransferEncoding);
            }
            last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if last_is_chunked {
                if params {
                    return Err(Error::InvalidTransferEncoding);
                }
                chunked += 1;
            } else {
                others += 1;
            }
        }
    }
    if chunked != 1 || !last_is_chunked {
        Err(Error::InvalidTransferEncoding)
    } else if others > 0 {
        Err(Error::UnsupportedTransferCoding)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(buf: &[u8]) -> Result<Option<(Version, BodyFraming, usize)>, Error> {
        let mut storage = header_storage::<8>();
        Ok(
            match parse_request(buf, &mut storage, &Limits::default())? {
                Parsed::Partial => None,
                Parsed::Complete(h, n) => Some((h.version, h.body, n)),
            },
        )
    }

    /// Runs `f` on the head of `GET {target} HTTP/1.1`.
    fn with_target<R>(target: &str, f: impl FnOnce(&RequestHead<'_, '_>) -> R) -> R {
        let buf = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut storage = header_storage::<8>();
        match parse_request(buf.as_bytes(), &mut storage, &Limits::default()) {
            Ok(Parsed::Complete(h, _)) => f(&h),
            other => panic!("{target}: {other:?}"),
        }
    }

    #[test]
    fn paths_decode_percent_escapes_and_refuse_what_is_not_utf8() {
        let decoded = |t: &str| with_target(t, |h| h.path_decoded().map(|p| p.into_owned()));
        assert_eq!(decoded("/plain/path"), Some("/plain/path".into()));
        assert_eq!(decoded("/a%20b/c+d"), Some("/a b/c+d".into()));
        assert_eq!(decoded("/%C3%A9t%C3%A9?x=%20"), Some("/été".into()));
        assert_eq!(decoded("/a%2Fb/%2e%2E"), Some("/a/b/..".into()));
        // Not an escape: kept as it is.
        assert_eq!(decoded("/100%/%zz/%4"), Some("/100%/%zz/%4".into()));
        assert_eq!(decoded("/%FF%FE"), None);
        assert_eq!(decoded("/%C3"), None, "half a character");
        // Nothing to decode: borrowed from the request.
        with_target("/x/y", |h| {
            assert!(matches!(
                h.path_decoded(),
                Some(std::borrow::Cow::Borrowed(_))
            ));
        });
        // Absolute form: the path part only.
        assert_eq!(decoded("http://h/a%21?b"), Some("/a!".into()));
    }

    #[test]
    fn queries_read_as_form_pairs() {
        let pairs = |t: &str| {
            with_target(t, |h| {
                h.query_pairs()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
            })
        };
        assert!(pairs("/").is_empty());
        assert!(pairs("/?").is_empty());
        assert_eq!(pairs("/?a=1&b=2&a=3"), ["a=1", "b=2", "a=3"]);
        assert_eq!(pairs("/?x=a+b%2Bc&&y"), ["x=a b+c", "y="]);
        assert_eq!(pairs("/?n%C3%A4me=v%C3%A4l"), ["näme=väl"]);
        assert_eq!(pairs("/?bad=%FF"), ["bad=\u{FFFD}"]);
        assert_eq!(pairs("/?k==v=w"), ["k==v=w"]);
        with_target("/?a=1&b=&a=2&c%20d=e", |h| {
            assert_eq!(h.query_param("a").as_deref(), Some("1"));
            assert_eq!(h.query_param("b").as_deref(), Some(""));
            assert_eq!(h.query_param("c d").as_deref(), Some("e"));
            assert_eq!(h.query_param("c%20d"), None, "names compare decoded");
            assert_eq!(h.query_param("z"), None);
        });
    }

    #[test]
    fn version_waits_until_it_can_tell_505_from_400() {
        for partial in [
            &b"GET / H"[..],
            b"GET / HTTP/2",
            b"GET / HTTP/2.",
            b"GET / HTTP/2.0",
            b"GET / HTTP/9.9",
        ] {
            assert_eq!(parse(partial), Ok(None), "{partial:?}");
        }
        assert_eq!(parse(b"GET / HTTP/2.0\r"), Err(Error::UnsupportedVersion));
        assert_eq!(parse(b"GET / HTTP/2.0\r\n"), Err(Error::UnsupportedVersion));
        assert_eq!(parse(b"GET / HTTP/2.0x"), Err(Error::InvalidVersion));
        assert_eq!(parse(b"GET / HTTP/2x"), Err(Error::InvalidVersion));
        assert_eq!(parse(b"GET / HTTQ"), Err(Error::InvalidVersion));
    }

    #[test]
    fn whitespace_after_a_name_waits_for_the_colon() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-A  ";
        assert_eq!(parse(head), Ok(None));
        let mut more = head.to_vec();
        more.extend_from_slice(b": b\r\n\r\n");
        assert_eq!(parse(&more), Err(Error::WhitespaceBeforeColon));
        let mut other = head.to_vec();
        other.extend_from_slice(b"b: c\r\n\r\n");
        assert_eq!(parse(&other), Err(Error::InvalidHeaderName));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nX-A \r"),
            Err(Error::InvalidHeaderName)
        );
    }

    #[test]
    fn line_endings() {
        assert_eq!(check_line_endings(b"a\r\nb\r\n\r\n"), Ok(()));
        assert_eq!(check_line_endings(b"\n"), Err(Error::BareLineFeed));
        assert_eq!(check_line_endings(b"a\r\nb\n"), Err(Error::BareLineFeed));
        assert!(has_bare_cr(b"a\rb"));
        assert!(!has_bare_cr(b"a\r\nb\r"));
    }

    #[test]
    fn a_bare_line_feed_anywhere_in_a_whole_head_is_refused() {
        let head = b"\r\nGET /a?b HTTP/1.1\r\nHost: h:1\r\nX: y z\r\n\r\n";
        assert!(parse(head).unwrap().is_some());
        assert_eq!(check_complete_line_endings(head), Ok(()));
        // Every CRLF in turn loses its CR: httparse alone accepts each, this
        // parser refuses each.
        for (i, _) in head.iter().enumerate().filter(|(_, &b)| b == b'\r') {
            let mut bare = head.to_vec();
            bare.remove(i);
            let mut storage = header_storage::<8>();
            let mut req = httparse::Request::new(&mut []);
            let alone = httparse::ParserConfig::default().parse_request_with_uninit_headers(
                &mut req,
                &bare,
                &mut storage,
            );
            assert!(
                matches!(alone, Ok(httparse::Status::Complete(_))),
                "{bare:?}"
            );
            assert_eq!(parse(&bare), Err(Error::BareLineFeed), "{bare:?}");
        }
        assert_eq!(
            check_complete_line_endings(b"\nGET"),
            Err(Error::BareLineFeed)
        );
        assert_eq!(check_complete_line_endings(b""), Ok(()));
    }

    #[test]
    fn transfer_encoding_lists() {
        let te = |values: &[&'static str]| {
            let headers: Vec<Header<'static>> = values
                .iter()
                .map(|v| Header {
                    name: "Transfer-Encoding",
                    value: v.as_bytes(),
                })
                .collect();
            check_transfer_encoding(&headers)
        };
        assert_eq!(te(&["chunked"]), Ok(()));
        assert_eq!(te(&["CHUNKED"]), Ok(()));
        assert_eq!(te(&[" , chunked ,"]), Ok(()));
        assert_eq!(
            te(&["gzip", "chunked"]),
            Err(Error::UnsupportedTransferCoding)
        );
        assert_eq!(
            te(&["gzip;level=9, chunked"]),
            Err(Error::UnsupportedTransferCoding)
        );
        assert_eq!(
            te(&["chunked", "gzip"]),
            Err(Error::InvalidTransferEncoding)
        );
        assert_eq!(
            te(&["chunked", "chunked"]),
            Err(Error::InvalidTransferEncoding)
        );
        assert_eq!(te(&["chunked;x=1"]), Err(Error::InvalidTransferEncoding));
        assert_eq!(te(&[""]), Err(Error::InvalidTransferEncoding));
        assert_eq!(te(&["chun ked"]), Err(Error::InvalidTransferEncoding));
        assert_eq!(
            te(&["x\"y\", chunked"]),
            Err(Error::InvalidTransferEncoding)
        );
    }

    #[test]
    fn framing_and_version() {
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\n\r\n"),
            Ok(Some((Version::Http10, BodyFraming::None, 18)))
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Some((Version::Http11, BodyFraming::Chunked, 56)))
        );
        assert!(!BodyFraming::ContentLength(0).has_body());
        assert!(BodyFraming::ContentLength(1).has_body() && BodyFraming::Chunked.has_body());
    }

    #[test]
    fn head_accessors() {
        let buf = b"GET /x HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept: b\r\n\r\n";
        let mut storage = header_storage::<8>();
        let Ok(Parsed::Complete(head, _)) = parse_request(buf, &mut storage, &Limits::default())
        else {
            panic!("complete")
        };
        assert_eq!(head.method_kind(), Some(Method::Get));
        assert_eq!(head.header("ACCEPT"), Some(&b"a"[..]));
        assert_eq!(head.header("missing"), None);
        let all: Vec<&[u8]> = head.headers_named("accept").collect();
        assert_eq!(all, [&b"a"[..], b"b"]);
        for m in [
            Method::Get,
            Method::Head,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Connect,
            Method::Options,
            Method::Trace,
            Method::Patch,
        ] {
            assert_eq!(Method::from_token(m.as_str()), Some(m));
        }
        assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
    }
}
