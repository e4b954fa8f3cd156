//! Conditional requests (RFC 9110 §13): a strong [`ETag`] for a file, entity
//! tags and their two comparison functions ([`EntityTag`]), the four
//! precondition fields (`If-Match`, `If-None-Match`, `If-Modified-Since`,
//! `If-Unmodified-Since`) and [`evaluate_preconditions`], which applies them
//! in the order of RFC 9110 §13.2.2 and says whether to go on, answer 304 or
//! answer 412. `If-Range` is in [`crate::if_range_matches`].
//!
//! Nothing here fails: a precondition field that cannot be parsed is handled
//! the way RFC 9110 asks (an invalid date is ignored) or, for entity-tag
//! lists, as a list that matches nothing — so a broken `If-Match` fails
//! closed (412) and a broken `If-None-Match` fails open (a full answer).

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fields::is_ows;
use crate::Header;

/// Longest [`ETag`]: two quotes, 16 + 16 + 32 hex digits and two dashes.
pub const ETAG_MAX_LEN: usize = 68;

/// A strong entity tag for a file, built from its inode number, size and
/// modification time in nanoseconds: `"<ino>-<size>-<mtime ns>"`, each in
/// lowercase hex. Send it as the `ETag` field value, quotes included.
///
/// Strong (RFC 9110 §8.8.3) because any write that changes the content also
/// changes the size or the nanosecond mtime, and replacing the file (the
/// usual way to deploy) changes the inode. The one gap is two same-size
/// writes within one tick of the file system's clock (a few milliseconds on
/// some file systems); nginx and Apache accept the same gap at a whole
/// second.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let mtime = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
/// let etag = protocol::ETag::for_file(0x1234, 5000, mtime);
/// assert_eq!(etag.as_bytes(), b"\"1234-1388-17979cfe362a0005\"");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ETag {
    buf: [u8; ETAG_MAX_LEN],
    len: u8,
}

impl ETag {
    /// The tag for a file with inode `ino`, `size` bytes and modification
    /// time `mtime` (nanoseconds count; a time before 1970 gives a negative
    /// count, written as its two's complement).
    pub fn for_file(ino: u64, size: u64, mtime: SystemTime) -> ETag {
        let nanos: i128 = match mtime.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        let mut buf = [0; ETAG_MAX_LEN];
        let mut w = &mut buf[..];
        // At most 2 + 16 + 1 + 16 + 1 + 32 = 68 bytes: always fits.
        let written = write!(w, "\"{ino:x}-{size:x}-{:x}\"", nanos as u128).is_ok();
        debug_assert!(written);
        let len = ETAG_MAX_LEN - w.len();
        ETag {
            buf,
            len: len as u8,
        }
    }

    /// The field value, quotes included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for ETag {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ETag({})", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// `etagc` of RFC 9110 §8.8.3: `%x21 / %x23-7E / obs-text`.
const fn is_etagc(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x7e | 0x80..=0xff)
}

/// One entity tag, `[ W/ ] DQUOTE *etagc DQUOTE` (RFC 9110 §8.8.3),
/// borrowing its opaque part from the parsed value.
///
/// ```
/// use protocol::EntityTag;
///
/// let strong = EntityTag::parse(b"\"v1\"").unwrap();
/// let weak = EntityTag::parse(b"W/\"v1\"").unwrap();
/// assert!(weak.weak_eq(&strong));
/// assert!(!weak.strong_eq(&strong));
/// assert!(EntityTag::parse(b"v1").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Parses a value that is exactly one entity tag (no surrounding
    /// whitespace; header values are trimmed already). `W/` is
    /// case-sensitive.
    pub fn parse(value: &'a [u8]) -> Option<Self> {
        match parse_tag(value, 0) {
            Some((tag, end)) if end == value.len() => Some(tag),
            _ => None,
        }
    }

    /// Whether the tag has the `W/` prefix.
    pub const fn is_weak(&self) -> bool {
        self.weak
    }

    /// The characters between the quotes.
    pub const fn opaque(&self) -> &'a [u8] {
        self.opaque
    }

    /// Strong comparison (RFC 9110 §8.8.3.2): neither tag is weak and the
    /// opaque parts are identical.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison (RFC 9110 §8.8.3.2): the opaque parts are identical,
    /// whether or not either is weak.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// An entity tag starting at `value[at]`; returns it and the index after
/// its closing quote.
fn parse_tag(value: &[u8], at: usize) -> Option<(EntityTag<'_>, usize)> {
    let rest = &value[at..];
    let (weak, open) = match rest {
        [b'W', b'/', b'"', ..] => (true, at + 3),
        [b'"', ..] => (false, at + 1),
        _ => return None,
    };
    let len = value[open..].iter().position(|&b| !is_etagc(b))?;
    let close = open + len;
    (value[close] == b'"').then_some((
        EntityTag {
            weak,
            opaque: &value[open..close],
        },
        close + 1,
    ))
}

/// What an `If-Match`/`If-None-Match` field list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagList {
    /// No field line at all.
    Absent,
    /// Exactly `*`.
    Any,
    /// Entity tags; `true` when one of them matched.
    Tags(bool),
    /// Not `"*" / #entity-tag`, or an empty list: matches nothing.
    Invalid,
}

/// Walks every field line of one list field (RFC 9110 §5.3: several lines
/// are one comma-separated list) and compares each tag with `current`, by
/// strong comparison when `strong`, else weak.
fn scan_tag_list<'v>(
    lines: impl IntoIterator<Item = &'v [u8]>,
    current: Option<&EntityTag<'_>>,
    strong: bool,
) -> TagList {
    let (mut present, mut stars, mut tags, mut matched) = (false, 0usize, 0usize, false);
    for line in lines {
        present = true;
        let mut i = 0;
        loop {
            // Empty members and OWS around commas are allowed (§5.6.1).
            while i < line.len() && (is_ows(line[i]) || line[i] == b',') {
                i += 1;
            }
            if i == line.len() {
                break;
            }
            if line[i] == b'*' {
                stars += 1;
                i += 1;
            } else if let Some((tag, end)) = parse_tag(line, i) {
                tags += 1;
                matched |= current.is_some_and(|c| {
                    if strong {
                        tag.strong_eq(c)
                    } else {
                        tag.weak_eq(c)
                    }
                });
                i = end;
            } else {
                return TagList::Invalid;
            }
            while i < line.len() && is_ows(line[i]) {
                i += 1;
            }
            if i < line.len() && line[i] != b',' {
                return TagList::Invalid;
            }
        }
    }
    match (present, stars, tags) {
        (false, _, _) => TagList::Absent,
        (true, 1, 0) => TagList::Any,
        (true, 0, 1..) => TagList::Tags(matched),
        _ => TagList::Invalid,
    }
}

/// What the server knows about the selected representation, to evaluate
/// preconditions against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validators<'a> {
    /// Whether the target resource has a current representation (`false`
    /// for a PUT that would create it). `If-Match: *` is true and
    /// `If-None-Match: *` false exactly when this is set.
    pub exists: bool,
    /// The `ETag` field value the server sends for it, quotes included
    /// (e.g. [`ETag::as_bytes`]). A value that is not an entity tag counts
    /// as none.
    pub etag: Option<&'a [u8]>,
    /// Its modification time; compared at one-second resolution (the
    /// resolution of an HTTP-date, and of the `Last-Modified` field).
    pub last_modified: Option<SystemTime>,
}

impl<'a> Validators<'a> {
    /// An existing file with this tag and modification time.
    pub const fn for_file(etag: &'a ETag, mtime: SystemTime) -> Self {
        Validators {
            exists: true,
            etag: Some(etag.buf.split_at(etag.len as usize).0),
            last_modified: Some(mtime),
        }
    }

    pub(crate) fn entity_tag(&self) -> Option<EntityTag<'a>> {
        self.etag.and_then(EntityTag::parse)
    }
}

/// Whole seconds since 1970 (negative before), rounded down: the resolution
/// of an HTTP-date.
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            let secs = d.as_secs() as i64;
            if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

/// Parses an HTTP-date (RFC 9110 §5.6.7) in any of its three forms —
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// and asctime — as recipients MUST accept all three. `None` when the value
/// is none of them.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(protocol::parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
/// assert_eq!(protocol::parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
/// assert_eq!(protocol::parse_http_date(b"Sun Nov  6 08:49:37 1994"), Some(t));
/// assert_eq!(protocol::parse_http_date(b"yesterday"), None);
/// ```
pub fn parse_http_date(value: &[u8]) -> Option<SystemTime> {
    let s = std::str::from_utf8(value).ok()?;
    httpdate::parse_http_date(s).ok()
}

/// The date of a field that holds one HTTP-date: `None` when absent, and
/// also when invalid or given more than once (RFC 9110 §13.1.3, §13.1.4:
/// such a field MUST be ignored).
fn single_date<'v>(mut lines: impl Iterator<Item = &'v [u8]>) -> Option<i64> {
    let first = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    parse_http_date(first).map(unix_seconds)
}

/// Evaluates `If-Match` (RFC 9110 §13.1.1) given its field lines: `None`
/// when there are none, otherwise whether the condition is true. `*` is true
/// when the resource [exists](Validators::exists); a list is true when one
/// of its tags matches the current tag by **strong** comparison. An invalid
/// list is false.
pub fn if_match<'v>(
    lines: impl IntoIterator<Item = &'v [u8]>,
    current: &Validators<'_>,
) -> Option<bool> {
    let tag = current.entity_tag();
    match scan_tag_list(lines, tag.as_ref(), true) {
        TagList::Absent => None,
        TagList::Any => Some(current.exists),
        TagList::Tags(m) => Some(current.exists && m),
        TagList::Invalid => Some(false),
    }
}

/// Evaluates `If-None-Match` (RFC 9110 §13.1.2) given its field lines:
/// `None` when there are none, otherwise whether the condition is true. `*`
/// is false when the resource [exists](Validators::exists); a list is false
/// when one of its tags matches the current tag by **weak** comparison. An
/// invalid list matches nothing, so it is true.
pub fn if_none_match<'v>(
    lines: impl IntoIterator<Item = &'v [u8]>,
    current: &Validators<'_>,
) -> Option<bool> {
    let tag = current.entity_tag();
    match scan_tag_list(lines, tag.as_ref(), false) {
        TagList::Absent => None,
        TagList::Any => Some(!current.exists),
        TagList::Tags(m) => Some(!(current.exists && m)),
        TagList::Invalid => Some(true),
    }
}

/// What to do with a request after its preconditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precondition {
    /// Every precondition passed (or there were none): perform the request.
    /// For a GET with `Range`, evaluate `If-Range` next
    /// ([`crate::if_range_matches`]).
    Proceed,
    /// Answer `304 Not Modified` (GET and HEAD only), with the `ETag`,
    /// `Last-Modified`, `Cache-Control`, … a 200 would carry
    /// (RFC 9110 §15.4.5).
    NotModified,
    /// Answer `412 Precondition Failed`.
    Failed,
}

impl Precondition {
    /// The status to answer instead of performing the request: `None`,
    /// `Some(304)` or `Some(412)`.
    pub const fn status(self) -> Option<u16> {
        match self {
            Precondition::Proceed => None,
            Precondition::NotModified => Some(304),
            Precondition::Failed => Some(412),
        }
    }
}

/// Evaluates the precondition fields among `headers` in the order of
/// RFC 9110 §13.2.2:
///
/// 1. `If-Match` present and false → 412.
/// 2. Else `If-Unmodified-Since` present, valid, and the representation
///    modified after it → 412.
/// 3. `If-None-Match` present and false → 304 for GET/HEAD, 412 otherwise.
/// 4. Else, for GET/HEAD, `If-Modified-Since` present, valid, and the
///    representation not modified after it → 304.
/// 5. Otherwise [`Precondition::Proceed`] (`If-Range` is step 5; see
///    [`crate::if_range_matches`]).
///
/// `method` is the request's method token (case-sensitive). CONNECT,
/// OPTIONS and TRACE select no representation, so their preconditions are
/// ignored (§13.2.1). Field names are matched case-insensitively; several
/// `If-Match`/`If-None-Match` lines form one list; a date field given more
/// than once, or not an HTTP-date, is ignored; a date condition is ignored
/// when [`Validators::last_modified`] is `None`.
///
/// The caller applies this only when the response without preconditions
/// would be 2xx or 412 (§13.2.1: e.g. not to a 404).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use protocol::{evaluate_preconditions, ETag, Header, Precondition, Validators};
///
/// let mtime = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// let etag = ETag::for_file(7, 42, mtime);
/// let current = Validators::for_file(&etag, mtime);
/// let headers = [Header { name: "If-None-Match", value: etag.as_bytes() }];
/// assert_eq!(evaluate_preconditions("GET", &headers, &current), Precondition::NotModified);
/// assert_eq!(evaluate_preconditions("PUT", &headers, &current), Precondition::Failed);
/// ```
pub fn evaluate_preconditions(
    method: &str,
    headers: &[Header<'_>],
    current: &Validators<'_>,
) -> Precondition {
    if matches!(method, "CONNECT" | "OPTIONS" | "TRACE") {
        return Precondition::Proceed;
    }
    let get_or_head = matches!(method, "GET" | "HEAD");
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let last_modified = current.last_modified.map(unix_seconds);

    // Steps 1 and 2.
    match if_match(named("if-match"), current) {
        Some(false) => return Precondition::Failed,
        Some(true) => {}
        None => {
            if let (Some(date), Some(lm)) =
                (single_date(named("if-unmodified-since")), last_modified)
            {
                if lm > date {
                    return Precondition::Failed;
                }
            }
        }
    }
    // Steps 3 and 4.
    match if_none_match(named("if-none-match"), current) {
        Some(false) if get_or_head => Precondition::NotModified,
        Some(false) => Precondition::Failed,
        Some(true) => Precondition::Proceed,
        None => match (single_date(named("if-modified-since")), last_modified) {
            (Some(date), Some(lm)) if get_or_head && lm <= date => Precondition::NotModified,
            _ => Precondition::Proceed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn etag_format_and_bounds() {
        let t = UNIX_EPOCH + Duration::new(1, 1);
        assert_eq!(ETag::for_file(0, 0, t).as_bytes(), b"\"0-0-3b9aca01\"");
        let max = ETag::for_file(u64::MAX, u64::MAX, UNIX_EPOCH - Duration::from_nanos(1));
        assert_eq!(max.as_bytes().len(), ETAG_MAX_LEN);
        assert!(EntityTag::parse(max.as_bytes()).is_some_and(|t| !t.is_weak()));
        assert_ne!(
            ETag::for_file(1, 2, t).as_bytes(),
            ETag::for_file(1, 2, t + Duration::from_nanos(1)).as_bytes()
        );
    }

    #[test]
    fn unix_seconds_round_down() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::new(5, 999)), 5);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::new(0, 1)), -1);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::new(2, 0)), -2);
    }

    #[test]
    fn tag_lists() {
        let cur = EntityTag::parse(b"\"a\"").unwrap();
        let scan = |v: &[u8]| scan_tag_list([v], Some(&cur), true);
        assert_eq!(scan(b"*"), TagList::Any);
        assert_eq!(scan(b" * "), TagList::Any);
        assert_eq!(scan(b"\"a\""), TagList::Tags(true));
        assert_eq!(scan(b"\"b\", \"a\""), TagList::Tags(true));
        assert_eq!(scan(b",\"b\" ,, W/\"a\","), TagList::Tags(false));
        assert_eq!(scan(b"\"a,b\""), TagList::Tags(false));
        for bad in [
            &b""[..],
            b",",
            b"*, \"a\"",
            b"*,*",
            b"a",
            b"\"a",
            b"\"a\"x",
            b"w/\"a\"",
        ] {
            assert_eq!(scan(bad), TagList::Invalid, "{bad:?}");
        }
        assert_eq!(
            scan_tag_list(std::iter::empty(), Some(&cur), true),
            TagList::Absent
        );
    }
}
