//! `parse_range` never panics, and what it returns holds together: ranges
//! inside the representation, at most `max_ranges`, never overlapping or
//! closer than the coalescing gap, covering every byte a brute-force reading
//! of RFC 9110 selects (for representations up to 256 bytes) and nothing
//! outside the gaps; the `multipart/byteranges` length announced up front is
//! what gets written. The same value also goes through `If-Range`, the
//! entity-tag lists and the HTTP-date parser, which must not panic.
//!
//! Input layout: `[len selector][len byte][gap][max ranges][Range value]`.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use protocol::{
    if_match, if_none_match, if_range_matches, parse_http_date, parse_range, ByteRangesWriter,
    EntityTag, RangeLimits, Validators,
};

/// The bytes `value` selects by RFC 9110 §14.1.1, or `None` if it is
/// invalid, has too many specs or selects nothing.
fn model(value: &[u8], len: u64, max: usize) -> Option<Vec<bool>> {
    let value = std::str::from_utf8(value).ok()?;
    let (unit, set) = value.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut selected = vec![false; len as usize];
    let (mut count, mut any) = (0, false);
    for m in set
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
    {
        count += 1;
        let (a, b) = m.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        // Past u64: saturate, as every such number is beyond the length.
        let num = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
        let (start, end) = if a.is_empty() {
            if !digits(b) {
                return None;
            }
            let n = num(b);
            if n == 0 || len == 0 {
                continue;
            }
            (len.saturating_sub(n), len - 1)
        } else {
            if !digits(a) || !(b.is_empty() || digits(b)) {
                return None;
            }
            // last < first, compared exactly however many digits.
            let lt = |x: &str, y: &str| {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                (x.len(), x) < (y.len(), y)
            };
            if !b.is_empty() && lt(b, a) {
                return None;
            }
            let (start, end) = (num(a), if b.is_empty() { u64::MAX } else { num(b) });
            if start >= len {
                continue;
            }
            (start, end.min(len - 1))
        };
        any = true;
        for i in start..=end {
            selected[i as usize] = true;
        }
    }
    (count > 0 && count <= max && any).then_some(selected)
}

fuzz_target!(|input: &[u8]| {
    let [sel, lb, gap, max, value @ ..] = input else {
        return;
    };
    let len = match sel % 4 {
        0 | 1 => u64::from(*lb),
        2 => u64::from(*lb) << 32 | u64::from(*sel),
        _ => u64::MAX - u64::from(*lb),
    };
    let mut limits = RangeLimits::default();
    limits.coalesce_gap = u64::from(*gap);
    limits.max_ranges = usize::from(*max % 24);

    match parse_range(value, len, &limits) {
        Ok(set) => {
            let ranges = set.ranges();
            assert!(!ranges.is_empty() && ranges.len() <= limits.max_ranges);
            assert_eq!(set.complete_len(), len);
            for r in ranges {
                assert!(r.start <= r.end && r.end < len);
            }
            let mut sorted = ranges.to_vec();
            sorted.sort_by_key(|r| r.start);
            for w in sorted.windows(2) {
                assert!(w[0].end < w[1].start && w[1].start - w[0].end - 1 > limits.coalesce_gap);
            }
            assert!(set.total_len() <= len);
            // Order is the client's unless coalescing happened (sorted).
            if len <= 256 {
                let want = model(value, len, limits.max_ranges).expect("model agrees it is valid");
                let mut covered = vec![false; len as usize];
                for r in ranges {
                    assert!(want[r.start as usize] && want[r.end as usize]);
                    for i in r.start..=r.end {
                        covered[i as usize] = true;
                    }
                }
                for i in 0..len as usize {
                    assert!(!want[i] || covered[i], "byte {i} not sent");
                }
            }
            let boundary = ByteRangesWriter::boundary_from_seed(len);
            let w = ByteRangesWriter::new(&boundary, Some(b"text/plain"), len).unwrap();
            let mut out = Vec::new();
            let mut data = 0u128;
            for r in ranges {
                w.write_part_head(r, &mut out);
                data += u128::from(r.len());
            }
            w.write_closing(&mut out);
            let expected = u64::try_from(out.len() as u128 + data).ok();
            assert_eq!(expected, w.content_length(ranges));
        }
        Err(e) => {
            assert!(matches!(e.status(), 200 | 416));
            if len <= 256 {
                assert!(model(value, len, limits.max_ranges).is_none(), "{e}");
            }
        }
    }

    // The other validators' parsers on the same bytes.
    let mtime = UNIX_EPOCH + Duration::from_secs(u64::from(*lb) << 20);
    let current = Validators {
        exists: sel & 1 == 0,
        etag: Some(b"\"v1\""),
        last_modified: Some(mtime),
    };
    let _ = if_range_matches(value, &current, mtime + Duration::from_secs(5));
    let _ = EntityTag::parse(value);
    let _ = parse_http_date(value);
    let m = if_match([value], &current);
    let n = if_none_match([value], &current);
    assert!(m.is_some() && n.is_some());
});
