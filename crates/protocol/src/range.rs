//! Byte ranges (RFC 9110 §14): [`parse_range`] turns a `Range` field value
//! into the ranges to send — or says to ignore it (200) or that none of it
//! can be satisfied (416); [`if_range_matches`] evaluates `If-Range`; and
//! [`ByteRangesWriter`] frames a `multipart/byteranges` body whose length is
//! known before the first byte is sent, so the server can write part heads
//! and file pieces as separate iovecs (or splices) without buffering.
//!
//! Decisions (see `docs/files.md`): an invalid `Range` is ignored rather
//! than answered with 416 (RFC 9110 §14.2 allows both); more than
//! [`RangeLimits::max_ranges`] ranges are ignored (the CVE-2011-3192 shape);
//! overlapping, adjacent and nearly adjacent ranges are coalesced, so the
//! bytes sent never exceed the file plus the part heads.

use std::fmt;
use std::io::Write;
use std::time::SystemTime;

use crate::conditional::{unix_seconds, EntityTag, Validators};
use crate::fields::{is_field_value_byte, is_ows, is_tchar};
use crate::parse_http_date;

/// Default [`RangeLimits::max_ranges`]: 16 ranges in one `Range` field.
pub const DEFAULT_MAX_RANGES: usize = 16;
/// Default [`RangeLimits::coalesce_gap`]: 80 bytes, about what one more
/// part head of a `multipart/byteranges` body costs.
pub const DEFAULT_COALESCE_GAP: u64 = 80;

/// Bounds on what a `Range` field may ask for.
///
/// ```
/// let mut limits = protocol::RangeLimits::default();
/// limits.max_ranges = 4;
/// assert_eq!(limits.coalesce_gap, 80);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RangeLimits {
    /// Most range-specs in one field (empty list members are not counted;
    /// unsatisfiable ones are). More → [`RangeError::TooManyRanges`]: the
    /// field is ignored and the whole file is sent (RFC 9110 §14.2 MAY
    /// ignore; Apache's answer to CVE-2011-3192). `0` disables ranges.
    pub max_ranges: usize,
    /// Two ranges whose gap is at most this many bytes are sent as one
    /// (RFC 9110 §15.3.7.2 allows coalescing ranges "separated by a gap that
    /// is smaller than the overhead of sending multiple parts"). Overlapping
    /// and adjacent ranges are always coalesced.
    pub coalesce_gap: u64,
}

impl RangeLimits {
    /// The defaults: 16 ranges, 80-byte gaps coalesced.
    pub const DEFAULT: RangeLimits = RangeLimits {
        max_ranges: DEFAULT_MAX_RANGES,
        coalesce_gap: DEFAULT_COALESCE_GAP,
    };
}

impl Default for RangeLimits {
    fn default() -> Self {
        RangeLimits::DEFAULT
    }
}

/// Why a `Range` field does not give a 206. [`RangeError::status`] says
/// whether to ignore it (send the whole representation with 200) or answer
/// 416.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RangeError {
    /// The range unit is not `bytes` (RFC 9110 §14.2: an origin server MUST
    /// ignore a unit it does not understand). Ignore → 200.
    UnknownUnit,
    /// The value is not `bytes=` followed by a list of `first-last`,
    /// `first-` and `-suffix` specs, or a spec has `last < first`
    /// (RFC 9110 §14.1.1: the whole ranges-specifier is then invalid).
    /// Ignore → 200 (§14.2 allows ignoring or rejecting).
    Invalid,
    /// More range-specs than [`RangeLimits::max_ranges`]. Ignore → 200.
    TooManyRanges,
    /// Valid, but no range overlaps the representation: every `first` is at
    /// or past its length, or every suffix is `-0` (RFC 9110 §14.1.1). Answer
    /// 416 with `Content-Range: bytes */length`
    /// ([`write_unsatisfied_range`]).
    Unsatisfiable,
    /// The representation is empty and a suffix range asked for its last
    /// bytes: satisfiable by §14.1.1 but selecting nothing, which no
    /// `Content-Range` can express. Ignore → 200 with the empty body.
    EmptyRepresentation,
}

impl RangeError {
    /// The status to answer: 200 (send the whole representation as if there
    /// were no `Range`) or 416.
    pub const fn status(&self) -> u16 {
        match self {
            RangeError::Unsatisfiable => 416,
            RangeError::UnknownUnit
            | RangeError::Invalid
            | RangeError::TooManyRanges
            | RangeError::EmptyRepresentation => 200,
        }
    }

    /// A short lowercase description, the same text as [`fmt::Display`].
    pub const fn as_str(&self) -> &'static str {
        match self {
            RangeError::UnknownUnit => "range unit is not bytes",
            RangeError::Invalid => "invalid Range",
            RangeError::TooManyRanges => "too many ranges",
            RangeError::Unsatisfiable => "range not satisfiable",
            RangeError::EmptyRepresentation => "range of an empty representation",
        }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for RangeError {}

/// One satisfiable range: bytes `start..=end` of the representation, with
/// `start <= end < length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset of the last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes, `end - start + 1`.
    pub const fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always `false`: a `ByteRange` holds at least one byte.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Appends the `Content-Range` field value `bytes start-end/complete_len`
    /// (RFC 9110 §14.4).
    pub fn write_content_range(&self, complete_len: u64, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "bytes {}-{}/{}", self.start, self.end, complete_len);
    }
}

/// Appends the `Content-Range` value of a 416 answer, `bytes */complete_len`
/// (RFC 9110 §14.4, §15.5.17).
pub fn write_unsatisfied_range(complete_len: u64, out: &mut Vec<u8>) {
    let _ = write!(out, "bytes */{complete_len}");
}

/// The ranges to send for a `Range` field, in the order to send them.
///
/// One range → a 206 with `Content-Range` and that slice of the file; more
/// → a 206 with a `multipart/byteranges` body ([`ByteRangesWriter`]).
/// Ranges never overlap and are never closer than
/// [`RangeLimits::coalesce_gap`]; they keep the order the client asked for
/// unless some were coalesced, in which case they are in ascending order
/// (RFC 9110 §15.3.7.2 allows coalescing "regardless of the order").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<ByteRange>,
    complete_len: u64,
}

impl RangeSet {
    /// The ranges, at least one.
    pub fn ranges(&self) -> &[ByteRange] {
        &self.ranges
    }

    /// The one range, when there is exactly one (answer without multipart).
    pub fn single(&self) -> Option<ByteRange> {
        match self.ranges[..] {
            [r] => Some(r),
            _ => None,
        }
    }

    /// The length of the whole representation the ranges select from.
    pub const fn complete_len(&self) -> u64 {
        self.complete_len
    }

    /// Sum of the range lengths (at most [`complete_len`](Self::complete_len)).
    pub fn total_len(&self) -> u64 {
        self.ranges.iter().map(ByteRange::len).sum()
    }
}

/// A range-spec as written, before it meets the representation length.
#[derive(Debug, Clone, Copy)]
enum Spec<'a> {
    /// `first-last` or `first-` (digits, leading zeros allowed).
    From(&'a [u8], Option<&'a [u8]>),
    /// `-suffix`.
    Suffix(&'a [u8]),
}

/// Decimal digits as a `u64`, saturating at `u64::MAX` (a first-pos past
/// any length is unsatisfiable; a last-pos past it is clamped; a suffix past
/// it means the whole representation — so saturation is exact).
fn saturating_decimal(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

/// Whether decimal `a < b`, exactly, for any number of digits.
fn decimal_lt(a: &[u8], b: &[u8]) -> bool {
    let strip = |s: &[u8]| -> usize { s.iter().position(|&d| d != b'0').unwrap_or(s.len()) };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    (a.len(), a) < (b.len(), b)
}

fn parse_spec(spec: &[u8]) -> Option<Spec<'_>> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if first.is_empty() {
        digits(last).then_some(Spec::Suffix(last))
    } else if !digits(first) {
        None
    } else if last.is_empty() {
        Some(Spec::From(first, None))
    } else if digits(last) && !decimal_lt(last, first) {
        Some(Spec::From(first, Some(last)))
    } else {
        None
    }
}

/// Parses a `Range` field value against a representation of
/// `complete_len` bytes (RFC 9110 §14.1.1–§14.2).
///
/// Accepts `bytes=` (unit case-insensitive, no whitespace around `=`)
/// followed by a comma list of `first-last`, `first-` and `-suffix`, with
/// optional whitespace around commas and empty members skipped (§5.6.1).
/// `last` past the end is clamped to `complete_len - 1`; a suffix longer
/// than the representation selects all of it. Specs that start at or past
/// the end, and `-0`, are dropped as unsatisfiable. The rest are
/// [coalesced](RangeSet).
///
/// Errors say what to answer instead ([`RangeError::status`]): 200 (ignore
/// the field) for another unit, a malformed value (including `last <
/// first` anywhere), or too many specs; 416 when none is satisfiable.
///
/// Range handling is defined only for GET (§14.2): call this for GET
/// requests, after the preconditions and `If-Range` allowed it.
///
/// ```
/// use protocol::{parse_range, ByteRange, RangeError, RangeLimits};
///
/// let limits = RangeLimits::default();
/// let set = parse_range(b"bytes=0-99, -100", 10_000, &limits)?;
/// assert_eq!(
///     set.ranges(),
///     [ByteRange { start: 0, end: 99 }, ByteRange { start: 9_900, end: 9_999 }]
/// );
/// assert_eq!(parse_range(b"bytes=500-", 100, &limits), Err(RangeError::Unsatisfiable));
/// assert_eq!(parse_range(b"bytes=5-1", 100, &limits).unwrap_err().status(), 200);
/// # Ok::<(), RangeError>(())
/// ```
pub fn parse_range(
    value: &[u8],
    complete_len: u64,
    limits: &RangeLimits,
) -> Result<RangeSet, RangeError> {
    let eq = value
        .iter()
        .position(|&b| b == b'=')
        .ok_or(RangeError::Invalid)?;
    let (unit, set) = (&value[..eq], &value[eq + 1..]);
    if unit.is_empty() || !unit.iter().all(|&b| is_tchar(b)) {
        return Err(RangeError::Invalid);
    }
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return Err(RangeError::UnknownUnit);
    }

    let mut ranges: Vec<ByteRange> = Vec::new();
    let mut count = 0usize;
    let mut empty_suffix = false;
    for member in set.split(|&b| b == b',') {
        let member = trim(member);
        if member.is_empty() {
            continue;
        }
        count += 1;
        if count > limits.max_ranges {
            return Err(RangeError::TooManyRanges);
        }
        match parse_spec(member).ok_or(RangeError::Invalid)? {
            Spec::From(first, last) => {
                let start = saturating_decimal(first);
                if start < complete_len {
                    let end = last.map_or(u64::MAX, saturating_decimal);
                    ranges.push(ByteRange {
                        start,
                        end: end.min(complete_len - 1),
                    });
                }
            }
            Spec::Suffix(n) => {
                let n = saturating_decimal(n);
                if n > 0 && complete_len > 0 {
                    ranges.push(ByteRange {
                        start: complete_len - n.min(complete_len),
                        end: complete_len - 1,
                    });
                } else if n > 0 {
                    empty_suffix = true;
                }
            }
        }
    }
    if count == 0 {
        // `bytes=` or `bytes=,`: `1#range-spec` needs one.
        return Err(RangeError::Invalid);
    }
    if ranges.is_empty() {
        return Err(if empty_suffix {
            RangeError::EmptyRepresentation
        } else {
            RangeError::Unsatisfiable
        });
    }
    coalesce(&mut ranges, limits.coalesce_gap);
    Ok(RangeSet {
        ranges,
        complete_len,
    })
}

/// Strips OWS (SP, HTAB) from both ends.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Merges ranges that overlap, touch, or are at most `gap` bytes apart.
/// Leaves `ranges` in request order when nothing merges; otherwise sorted.
fn coalesce(ranges: &mut Vec<ByteRange>, gap: u64) {
    if ranges.len() < 2 {
        return;
    }
    let mut sorted = ranges.clone();
    sorted.sort_unstable_by_key(|r| (r.start, r.end));
    let mut merged: Vec<ByteRange> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match merged.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(1).saturating_add(gap) => {
                last.end = last.end.max(r.end);
            }
            _ => merged.push(r),
        }
    }
    if merged.len() < ranges.len() {
        *ranges = merged;
    }
}

/// Evaluates an `If-Range` field value (RFC 9110 §13.1.5): whether the
/// `Range` field of the same request applies. When it does not, ignore
/// `Range` and send the whole representation with 200.
///
/// * An entity tag matches only by **strong** comparison with
///   [`Validators::etag`] (a weak tag never matches).
/// * An HTTP-date matches only if it equals [`Validators::last_modified`]
///   (at one-second resolution) **and** that time is a strong validator:
///   at least one second before `now`, so the file cannot still change
///   within the same second (§8.8.2.2).
/// * Anything else (including an invalid value) does not match.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use protocol::{if_range_matches, ETag, Validators};
///
/// let mtime = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// let now = mtime + Duration::from_secs(60);
/// let etag = ETag::for_file(1, 2, mtime);
/// let current = Validators::for_file(&etag, mtime);
/// assert!(if_range_matches(etag.as_bytes(), &current, now));
/// assert!(if_range_matches(b"Sun, 06 Nov 1994 08:49:37 GMT", &current, now));
/// assert!(!if_range_matches(b"Sun, 06 Nov 1994 08:49:38 GMT", &current, now));
/// ```
pub fn if_range_matches(value: &[u8], current: &Validators<'_>, now: SystemTime) -> bool {
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match (EntityTag::parse(value), current.entity_tag()) {
            (Some(given), Some(cur)) => given.strong_eq(&cur),
            _ => false,
        };
    }
    match (parse_http_date(value), current.last_modified) {
        (Some(date), Some(lm)) => {
            let lm = unix_seconds(lm);
            lm == unix_seconds(date) && lm < unix_seconds(now)
        }
        _ => false,
    }
}

/// Longest boundary [`ByteRangesWriter::boundary_from_seed`] makes.
pub const BYTERANGES_BOUNDARY_LEN: usize = 24;

/// Frames a `multipart/byteranges` body (RFC 9110 §14.6) around the ranges
/// of a [`RangeSet`], without touching the file data:
///
/// ```text
/// CRLF "--" boundary CRLF                      ┐ part head
/// "Content-Type: " type CRLF   (if given)      │ (write_part_head)
/// "Content-Range: bytes a-b/len" CRLF CRLF     ┘
/// <bytes a..=b of the file>
/// … one head and one slice per range …
/// CRLF "--" boundary "--" CRLF                   (write_closing)
/// ```
///
/// Every part head starts with CRLF (the delimiter is `CRLF --boundary`,
/// RFC 2046 §5.1.1), so the body starts with an empty preamble. The sum is
/// known up front ([`content_length`](Self::content_length)), so the answer
/// carries `Content-Length` and the file slices can be sent as they are.
///
/// ```
/// use protocol::{parse_range, ByteRangesWriter, RangeLimits};
///
/// let file = b"0123456789abcdefghij";
/// let mut limits = RangeLimits::default();
/// limits.coalesce_gap = 0; // else this small file would be sent as one range
/// let set = parse_range(b"bytes=0-1,-2", file.len() as u64, &limits)?;
/// let writer = ByteRangesWriter::new(b"XYZ", Some(b"text/plain"), set.complete_len()).unwrap();
///
/// let mut ct = Vec::new();
/// writer.write_content_type(&mut ct);
/// assert_eq!(ct, b"multipart/byteranges; boundary=XYZ");
///
/// let mut body = Vec::new();
/// for r in set.ranges() {
///     writer.write_part_head(r, &mut body);
///     body.extend_from_slice(&file[r.start as usize..=r.end as usize]);
/// }
/// writer.write_closing(&mut body);
/// assert_eq!(Some(body.len() as u64), writer.content_length(set.ranges()));
/// assert_eq!(
///     body,
///     b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01\
///       \r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 18-19/20\r\n\r\nij\
///       \r\n--XYZ--\r\n"
/// );
/// # Ok::<(), protocol::RangeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRangesWriter<'a> {
    boundary: &'a [u8],
    content_type: Option<&'a [u8]>,
    complete_len: u64,
}

/// `bcharsnospace` of RFC 2046 §5.1.1.
pub(crate) const fn is_bchar_nospace(b: u8) -> bool {
    matches!(b,
        b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z'
        | b'\'' | b'(' | b')' | b'+' | b'_' | b',' | b'-' | b'.' | b'/' | b':' | b'=' | b'?')
}

/// A boundary of RFC 2046 §5.1.1: 1 to 70 `bchars`, not ending in a space.
pub(crate) fn is_valid_boundary(b: &[u8]) -> bool {
    matches!(b.len(), 1..=70)
        && b.iter().all(|&c| c == b' ' || is_bchar_nospace(c))
        && b[b.len() - 1] != b' '
}

/// Number of decimal digits of `n`.
const fn decimal_len(mut n: u64) -> u64 {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

impl<'a> ByteRangesWriter<'a> {
    /// A writer for parts of a representation of `complete_len` bytes whose
    /// `Content-Type` is `content_type` (omitted from the part heads when
    /// `None`).
    ///
    /// The boundary must be 1–70 characters of RFC 2046 `bchars` without a
    /// space (so it needs no quoting in the `Content-Type` field); the
    /// content type must be a valid field value. Otherwise
    /// [`crate::Error::InvalidResponseHeader`] (a caller bug: 500).
    pub fn new(
        boundary: &'a [u8],
        content_type: Option<&'a [u8]>,
        complete_len: u64,
    ) -> Result<Self, crate::Error> {
        let boundary_ok = is_valid_boundary(boundary) && !boundary.contains(&b' ');
        let type_ok = content_type.is_none_or(|t| {
            !t.is_empty()
                && t.iter().all(|&b| is_field_value_byte(b))
                && !is_ows(t[0])
                && !is_ows(t[t.len() - 1])
        });
        if boundary_ok && type_ok {
            Ok(ByteRangesWriter {
                boundary,
                content_type,
                complete_len,
            })
        } else {
            Err(crate::Error::InvalidResponseHeader)
        }
    }

    /// A boundary made from `seed`: `"ringtail"` and 16 hex digits of a
    /// scrambled seed, [`BYTERANGES_BOUNDARY_LEN`] bytes. Pass something
    /// unpredictable — a boundary a file's owner can guess can be planted in
    /// the file to confuse the client's multipart parser — e.g.
    /// `std::hash::RandomState::new().hash_one(counter)`.
    pub const fn boundary_from_seed(seed: u64) -> [u8; BYTERANGES_BOUNDARY_LEN] {
        // splitmix64's finaliser: neighbouring seeds give unrelated values.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let mut out = *b"ringtail0000000000000000";
        let hex = b"0123456789abcdef";
        let mut i = 0;
        while i < 16 {
            out[8 + i] = hex[((z >> (60 - 4 * i)) & 0xf) as usize];
            i += 1;
        }
        out
    }

    /// Appends the response's `Content-Type` field value,
    /// `multipart/byteranges; boundary=<boundary>`.
    pub fn write_content_type(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"multipart/byteranges; boundary=");
        out.extend_from_slice(self.boundary);
    }

    /// Length of the head [`write_part_head`](Self::write_part_head) writes
    /// for `range`.
    pub fn part_head_len(&self, range: &ByteRange) -> u64 {
        let delimiter = 2 + 2 + self.boundary.len() as u64 + 2;
        let content_type = self
            .content_type
            .map_or(0, |t| b"Content-Type: ".len() as u64 + t.len() as u64 + 2);
        let content_range = b"Content-Range: bytes ".len() as u64
            + decimal_len(range.start)
            + 1
            + decimal_len(range.end)
            + 1
            + decimal_len(self.complete_len)
            + 2;
        delimiter + content_type + content_range + 2
    }

    /// Appends the head of the part for `range`: the delimiter line,
    /// `Content-Type`, `Content-Range` and the empty line. The range's bytes
    /// follow it.
    pub fn write_part_head(&self, range: &ByteRange, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(self.boundary);
        out.extend_from_slice(b"\r\n");
        if let Some(t) = self.content_type {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(t);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Range: ");
        range.write_content_range(self.complete_len, out);
        out.extend_from_slice(b"\r\n\r\n");
    }

    /// Length of what [`write_closing`](Self::write_closing) writes.
    pub fn closing_len(&self) -> u64 {
        2 + 2 + self.boundary.len() as u64 + 2 + 2
    }

    /// Appends the close delimiter, `CRLF --boundary-- CRLF`.
    pub fn write_closing(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(self.boundary);
        out.extend_from_slice(b"--\r\n");
    }

    /// The body's `Content-Length`: every part head, every range and the
    /// closing delimiter. `None` if that does not fit in a `u64` (only for
    /// a representation within a few KiB of 16 EiB): send it whole instead.
    pub fn content_length(&self, ranges: &[ByteRange]) -> Option<u64> {
        ranges.iter().try_fold(self.closing_len(), |sum, r| {
            sum.checked_add(self.part_head_len(r))?.checked_add(r.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_helpers() {
        assert!(decimal_lt(b"9", b"10"));
        assert!(decimal_lt(b"0009", b"10"));
        assert!(!decimal_lt(b"10", b"010"));
        assert!(!decimal_lt(b"0", b"000"));
        assert!(decimal_lt(
            b"99999999999999999999999",
            b"100000000000000000000000"
        ));
        assert_eq!(saturating_decimal(b"18446744073709551615"), u64::MAX);
        assert_eq!(saturating_decimal(b"99999999999999999999999"), u64::MAX);
        for n in [0, 9, 10, 99, 100, u64::MAX] {
            assert_eq!(decimal_len(n), n.to_string().len() as u64);
        }
    }

    #[test]
    fn boundaries() {
        let a = ByteRangesWriter::boundary_from_seed(0);
        let b = ByteRangesWriter::boundary_from_seed(1);
        assert_ne!(a, b);
        assert!(is_valid_boundary(&a));
        assert!(ByteRangesWriter::new(&a, None, 1).is_ok());
        assert!(ByteRangesWriter::new(b"a b", None, 1).is_err());
        assert!(ByteRangesWriter::new(b"", None, 1).is_err());
        assert!(ByteRangesWriter::new(&[b'a'; 71], None, 1).is_err());
        assert!(ByteRangesWriter::new(b"x", Some(b"text/plain\r\nX: y"), 1).is_err());
        assert!(ByteRangesWriter::new(b"x", Some(b""), 1).is_err());
    }
}
