//! Range requests: the table of `Range` values and what each gives (206
//! ranges, ignore → 200, or 416), the DoS shapes (CVE-2011-3192, many small
//! or overlapping ranges), randomised checks of the coalescing invariants
//! against a brute-force model, `If-Range`, and the `multipart/byteranges`
//! framing whose announced length must equal what is written.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::Rng;
use protocol::{
    if_range_matches, parse_range, write_unsatisfied_range, ByteRange, ByteRangesWriter,
    RangeError, RangeLimits, Validators, BYTERANGES_BOUNDARY_LEN,
};

fn r(start: u64, end: u64) -> ByteRange {
    ByteRange { start, end }
}

#[rustfmt::skip]
fn good() -> Vec<(&'static str, u64, Vec<ByteRange>)> {
    vec![
        // RFC 9110 §14.1.2's examples, on a 10000-byte representation.
        ("bytes=0-499", 10_000, vec![r(0, 499)]),
        ("bytes=500-999", 10_000, vec![r(500, 999)]),
        ("bytes=-500", 10_000, vec![r(9_500, 9_999)]),
        ("bytes=9500-", 10_000, vec![r(9_500, 9_999)]),
        ("bytes=0-0,-1", 10_000, vec![r(0, 0), r(9_999, 9_999)]),
        ("bytes=500-600,601-999", 10_000, vec![r(500, 999)]),
        ("bytes=500-700,601-999", 10_000, vec![r(500, 999)]),
        // Unit case, whitespace around commas, empty members, leading zeros.
        ("BYTES=0-1", 10, vec![r(0, 1)]),
        ("Bytes=0-1", 10, vec![r(0, 1)]),
        ("bytes= 0-1 ,\t200-201 ,, ", 1_000, vec![r(0, 1), r(200, 201)]),
        ("bytes=,0-1", 10, vec![r(0, 1)]),
        ("bytes=000-0001", 10, vec![r(0, 1)]),
        ("bytes=0-0", 1, vec![r(0, 0)]),
        ("bytes=-1", 1, vec![r(0, 0)]),
        // Clamping, and numbers past 64 bits.
        ("bytes=0-99999", 10_000, vec![r(0, 9_999)]),
        ("bytes=5-18446744073709551615", 10, vec![r(5, 9)]),
        ("bytes=5-99999999999999999999999", 10, vec![r(5, 9)]),
        ("bytes=-99999", 10_000, vec![r(0, 9_999)]),
        ("bytes=-99999999999999999999999", 10, vec![r(0, 9)]),
        ("bytes=0-", u64::MAX, vec![r(0, u64::MAX - 1)]),
        ("bytes=-1", u64::MAX, vec![r(u64::MAX - 1, u64::MAX - 1)]),
        // Unsatisfiable specs are dropped when another one is satisfiable.
        ("bytes=20000-,0-1", 10_000, vec![r(0, 1)]),
        ("bytes=-0,0-1", 10_000, vec![r(0, 1)]),
        // Order is kept when nothing merges…
        ("bytes=5000-5001,0-1", 10_000, vec![r(5_000, 5_001), r(0, 1)]),
        ("bytes=0-1,200-300", 10_000, vec![r(0, 1), r(200, 300)]),
        // …and ascending once something does (gap of 8 ≤ 80 bytes).
        ("bytes=5000-5001,0-1,10-20", 10_000, vec![r(0, 20), r(5_000, 5_001)]),
        ("bytes=0-1,82-90", 10_000, vec![r(0, 90)]),
        ("bytes=0-1,83-90", 10_000, vec![r(0, 1), r(83, 90)]),
        // Overlap amplification collapses to the file (CVE-2011-3192 with
        // few enough ranges to pass the count limit).
        ("bytes=0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-,0-", 1 << 30, vec![r(0, (1 << 30) - 1)]),
        ("bytes=-1,-2,-3,-4,-5,-6,-7,-8,-9,-10,-11,-12,-13,-14,-15,-16", 1 << 20, vec![r((1 << 20) - 16, (1 << 20) - 1)]),
        ("bytes=1000-1999,900-1099,800-1199,0-99", 1 << 20, vec![r(0, 99), r(800, 1_999)]),
    ]
}

#[test]
fn good_ranges() {
    let limits = RangeLimits::default();
    for (value, len, expected) in good() {
        let set = parse_range(value.as_bytes(), len, &limits)
            .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(set.ranges(), expected, "{value:?}");
        assert_eq!(set.complete_len(), len);
        assert_eq!(set.single(), (expected.len() == 1).then(|| expected[0]));
        assert_eq!(
            set.total_len(),
            expected.iter().map(ByteRange::len).sum::<u64>()
        );
    }
}

#[rustfmt::skip]
fn bad() -> Vec<(&'static str, u64, RangeError)> {
    use RangeError::*;
    let mut v = vec![
        ("items=0-1", 10, UnknownUnit),
        ("none=", 10, UnknownUnit),
        ("bytes 0-1", 10, Invalid),
        ("bytes =0-1", 10, Invalid),
        ("bytes= 0 -1", 10, Invalid),
        ("=0-1", 10, Invalid),
        ("", 10, Invalid),
        ("bytes=", 10, Invalid),
        ("bytes=,", 10, Invalid),
        ("bytes= , ", 10, Invalid),
        ("bytes=1-0", 10, Invalid),
        ("bytes=0-1,5-2", 10, Invalid),
        ("bytes=0-1,x", 10, Invalid),
        ("bytes=a-b", 10, Invalid),
        ("bytes=0x1-2", 10, Invalid),
        ("bytes=--1", 10, Invalid),
        ("bytes=-", 10, Invalid),
        ("bytes=1", 10, Invalid),
        ("bytes=0-1-2", 10, Invalid),
        ("bytes=+1-2", 10, Invalid),
        ("bytes=0- 1", 10, Invalid),
        ("bytes=0-1;x", 10, Invalid),
        ("bytes=-+1", 10, Invalid),
        ("bytes=0-1 2", 10, Invalid),
        // last < first, told apart exactly past 64 bits.
        ("bytes=100000000000000000000001-100000000000000000000000", 10, Invalid),
        ("bytes=18446744073709551616-18446744073709551615", 10, Invalid),
        // Nothing overlaps the representation.
        ("bytes=10-", 10, Unsatisfiable),
        ("bytes=10-20", 10, Unsatisfiable),
        ("bytes=-0", 10, Unsatisfiable),
        ("bytes=10-,-0,99999999999999999999999-", 10, Unsatisfiable),
        ("bytes=0-", 0, Unsatisfiable),
        ("bytes=-0", 0, Unsatisfiable),
        ("bytes=-5", 0, EmptyRepresentation),
        ("bytes=0-,-5", 0, EmptyRepresentation),
    ];
    // Unknown units are ignored before anything else is looked at.
    v.push(("Items=5-1,junk", 10, UnknownUnit));
    v
}

#[test]
fn ignored_and_unsatisfiable_ranges() {
    let limits = RangeLimits::default();
    for (value, len, err) in bad() {
        assert_eq!(
            parse_range(value.as_bytes(), len, &limits),
            Err(err),
            "{value:?}"
        );
    }
    assert_eq!(RangeError::Unsatisfiable.status(), 416);
    for e in [
        RangeError::UnknownUnit,
        RangeError::Invalid,
        RangeError::TooManyRanges,
        RangeError::EmptyRepresentation,
    ] {
        assert_eq!(e.status(), 200, "{e}");
    }
    let mut out = Vec::new();
    write_unsatisfied_range(10_000, &mut out);
    assert_eq!(out, b"bytes */10000");
}

fn list(specs: impl IntoIterator<Item = String>) -> String {
    format!("bytes={}", specs.into_iter().collect::<Vec<_>>().join(","))
}

#[test]
fn count_limit_and_dos_shapes() {
    let limits = RangeLimits::default();
    let len = 1 << 30;
    // 16 small ranges pass; 17 are ignored, satisfiable or not.
    let ranges = |n: u64| list((0..n).map(|i| format!("{}-{}", i * 1000, i * 1000)));
    assert_eq!(
        parse_range(ranges(16).as_bytes(), len, &limits)
            .unwrap()
            .ranges()
            .len(),
        16
    );
    assert_eq!(
        parse_range(ranges(17).as_bytes(), len, &limits),
        Err(RangeError::TooManyRanges)
    );
    let unsatisfiable = list((0..17).map(|_| format!("{len}-")));
    assert_eq!(
        parse_range(unsatisfiable.as_bytes(), len, &limits),
        Err(RangeError::TooManyRanges)
    );
    // Empty members are not counted.
    let sparse = format!("{},,,,", ranges(16));
    assert!(parse_range(sparse.as_bytes(), len, &limits).is_ok());

    // CVE-2011-3192: `bytes=0-,5-0,5-1,…,5-1299`: ignored (200).
    let apache_killer = format!(
        "bytes=0-,{}",
        (0..1300)
            .map(|i| format!("5-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        parse_range(apache_killer.as_bytes(), len, &limits)
            .unwrap_err()
            .status(),
        200
    );
    // The same without the invalid `5-0`…`5-4`: too many.
    let apache_killer = format!(
        "bytes=0-,{}",
        (5..1300)
            .map(|i| format!("5-{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        parse_range(apache_killer.as_bytes(), len, &limits),
        Err(RangeError::TooManyRanges)
    );

    // Many small descending ranges, each a byte apart: coalesced into one.
    let descending = list((0..16).rev().map(|i| format!("{}-{}", i * 2, i * 2)));
    assert_eq!(
        parse_range(descending.as_bytes(), len, &limits)
            .unwrap()
            .ranges(),
        [r(0, 30)]
    );

    // The limits are settings.
    let mut strict = limits;
    strict.max_ranges = 1;
    assert!(parse_range(b"bytes=0-1", len, &strict).is_ok());
    assert_eq!(
        parse_range(b"bytes=0-1,5-6", len, &strict),
        Err(RangeError::TooManyRanges)
    );
    strict.max_ranges = 0;
    assert_eq!(
        parse_range(b"bytes=0-1", len, &strict),
        Err(RangeError::TooManyRanges)
    );
    let mut tight = limits;
    tight.coalesce_gap = 0;
    assert_eq!(
        parse_range(b"bytes=0-1,3-4", 10, &tight).unwrap().ranges(),
        [r(0, 1), r(3, 4)]
    );
    assert_eq!(
        parse_range(b"bytes=0-1,2-4", 10, &tight).unwrap().ranges(),
        [r(0, 4)]
    );
}

/// A random Range value: a mix of the three spec kinds around `len`, with
/// sometimes a malformed member.
fn random_value(rng: &mut Rng, len: u64) -> String {
    let n = rng.below(20);
    let mut specs = Vec::new();
    let num = |rng: &mut Rng| (rng.next() % (len + 20)).to_string();
    for _ in 0..n {
        specs.push(match rng.below(12) {
            0..=4 => {
                let a = rng.next() % (len + 20);
                let b = a + rng.next() % 60;
                format!("{a}-{b}")
            }
            5..=7 => format!("{}-", num(rng)),
            8..=10 => format!("-{}", num(rng)),
            _ => ["", " ", "5-1", "x", "-", "1"][rng.below(6)].to_owned(),
        });
    }
    list(specs)
}

/// The bytes a value selects, by RFC 9110's definitions, or `None` when it
/// is invalid, too long or unsatisfiable.
fn model(value: &str, len: u64, max: usize) -> Option<Vec<bool>> {
    let set = value.strip_prefix("bytes=")?;
    let mut selected = vec![false; len as usize];
    let (mut count, mut any) = (0, false);
    for m in set.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        count += 1;
        let (a, b) = m.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        let (start, end) = if a.is_empty() {
            if !digits(b) {
                return None;
            }
            let n: u64 = b.parse().ok()?;
            if n == 0 {
                continue;
            }
            (len.saturating_sub(n), len.checked_sub(1)?)
        } else {
            if !digits(a) || !(b.is_empty() || digits(b)) {
                return None;
            }
            let start: u64 = a.parse().ok()?;
            let end: u64 = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().ok()?
            };
            if end < start {
                return None;
            }
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

#[test]
fn random_values_match_the_model_and_coalescing_invariants() {
    let mut rng = Rng(0xfeed_face_cafe_f00d);
    for _ in 0..20_000 {
        let len = rng.next() % 200;
        let mut limits = RangeLimits::default();
        limits.coalesce_gap = rng.next() % 100;
        let value = random_value(&mut rng, len);
        let got = parse_range(value.as_bytes(), len, &limits);
        let want = model(&value, len, limits.max_ranges);
        let Ok(set) = got else {
            assert!(want.is_none(), "{value:?} len {len}: {got:?}");
            continue;
        };
        let want = want.unwrap_or_else(|| panic!("{value:?} len {len}: {set:?}"));
        let ranges = set.ranges();
        assert!(!ranges.is_empty() && ranges.len() <= limits.max_ranges);
        let mut covered = vec![false; len as usize];
        for x in ranges {
            assert!(x.start <= x.end && x.end < len, "{value:?}: {x:?}");
            for i in x.start..=x.end {
                assert!(!covered[i as usize], "overlap in {value:?}: {ranges:?}");
                covered[i as usize] = true;
            }
        }
        // Everything asked for is sent; anything extra fills a small gap.
        for i in 0..len as usize {
            assert!(!want[i] || covered[i], "{value:?}: byte {i} missing");
        }
        let mut sorted = ranges.to_vec();
        sorted.sort_by_key(|x| x.start);
        for w in sorted.windows(2) {
            assert!(
                w[1].start - w[0].end - 1 > limits.coalesce_gap,
                "{value:?}: {ranges:?} gap {}",
                limits.coalesce_gap
            );
        }
        for x in ranges {
            assert!(
                want[x.start as usize] && want[x.end as usize],
                "{value:?}: {x:?}"
            );
        }
        assert!(set.total_len() <= len);
    }
}

#[test]
fn if_range() {
    // 1994-11-06T08:49:37.5Z: Last-Modified is that second.
    let lm = UNIX_EPOCH + Duration::from_millis(784_111_777_500);
    let etag = b"\"abc\"";
    let current = Validators {
        exists: true,
        etag: Some(etag),
        last_modified: Some(lm),
    };
    let later = lm + Duration::from_secs(10);
    #[rustfmt::skip]
    let cases: &[(&[u8], bool)] = &[
        (b"\"abc\"", true),
        (b"W/\"abc\"", false),
        (b"\"abd\"", false),
        (b"\"abc\", \"x\"", false),
        (b"\"abc", false),
        (b"*", false),
        (b"Sun, 06 Nov 1994 08:49:37 GMT", true),
        (b"Sunday, 06-Nov-94 08:49:37 GMT", true),
        (b"Sun Nov  6 08:49:37 1994", true),
        (b"Sun, 06 Nov 1994 08:49:38 GMT", false),
        (b"Sun, 06 Nov 1994 08:49:36 GMT", false),
        (b"Sun, 06 Nov 1994 08:49:37 PST", false),
        (b"yesterday", false),
        (b"", false),
    ];
    for (value, expected) in cases {
        assert_eq!(
            if_range_matches(value, &current, later),
            *expected,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
    // A date from the current second is not a strong validator yet.
    let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
    assert!(!if_range_matches(
        date,
        &current,
        lm + Duration::from_millis(400)
    ));
    assert!(if_range_matches(
        date,
        &current,
        lm + Duration::from_millis(500)
    ));
    // A weak current tag never matches; without validators nothing does.
    let weak = Validators {
        etag: Some(b"W/\"abc\""),
        ..current
    };
    assert!(!if_range_matches(b"\"abc\"", &weak, later));
    let none = Validators {
        exists: true,
        etag: None,
        last_modified: None,
    };
    assert!(!if_range_matches(b"\"abc\"", &none, later));
    assert!(!if_range_matches(date, &none, later));
}

#[test]
fn byteranges_framing_length_is_exact() {
    let mut rng = Rng(42);
    let file: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut limits = RangeLimits::default();
    limits.coalesce_gap = 0;
    for round in 0..500u64 {
        let len = 1 + rng.next() % file.len() as u64;
        let value = random_value(&mut rng, len);
        let Ok(set) = parse_range(value.as_bytes(), len, &limits) else {
            continue;
        };
        let boundary = ByteRangesWriter::boundary_from_seed(round);
        assert_eq!(boundary.len(), BYTERANGES_BOUNDARY_LEN);
        let content_type: Option<&[u8]> = if round % 2 == 0 {
            Some(b"image/png")
        } else {
            None
        };
        let w = ByteRangesWriter::new(&boundary, content_type, len).unwrap();
        let mut body = Vec::new();
        for x in set.ranges() {
            let before = body.len();
            w.write_part_head(x, &mut body);
            assert_eq!((body.len() - before) as u64, w.part_head_len(x));
            body.extend_from_slice(&file[x.start as usize..=x.end as usize]);
        }
        let before = body.len();
        w.write_closing(&mut body);
        assert_eq!((body.len() - before) as u64, w.closing_len());
        assert_eq!(
            Some(body.len() as u64),
            w.content_length(set.ranges()),
            "{value:?}"
        );

        // Parse it back: each part is the delimiter, heads, then the bytes.
        let delimiter = [&b"\r\n--"[..], &boundary].concat();
        let mut rest = &body[..];
        for x in set.ranges() {
            rest = rest
                .strip_prefix(&delimiter[..])
                .unwrap()
                .strip_prefix(b"\r\n")
                .unwrap();
            let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = std::str::from_utf8(&rest[..head_end]).unwrap();
            assert!(head.contains(&format!(
                "Content-Range: bytes {}-{}/{len}\r\n",
                x.start, x.end
            )));
            assert_eq!(
                head.contains("Content-Type: image/png\r\n"),
                content_type.is_some()
            );
            rest = &rest[head_end..];
            let n = x.len() as usize;
            assert_eq!(&rest[..n], &file[x.start as usize..=x.end as usize]);
            rest = &rest[n..];
        }
        assert_eq!(rest, [&delimiter[..], b"--\r\n"].concat());
    }
}

#[test]
fn content_range_values() {
    let mut out = Vec::new();
    r(0, 499).write_content_range(10_000, &mut out);
    assert_eq!(out, b"bytes 0-499/10000");
    out.clear();
    r(u64::MAX - 1, u64::MAX - 1).write_content_range(u64::MAX, &mut out);
    assert_eq!(
        out,
        b"bytes 18446744073709551614-18446744073709551614/18446744073709551615"
    );
    assert_eq!(r(5, 5).len(), 1);
    let w = ByteRangesWriter::new(b"b", None, u64::MAX).unwrap();
    let mut head = Vec::new();
    w.write_part_head(&r(0, u64::MAX - 1), &mut head);
    assert_eq!(head.len() as u64, w.part_head_len(&r(0, u64::MAX - 1)));
    // Two parts of a 16 EiB representation do not fit in a Content-Length.
    let huge = [r(0, u64::MAX - 100), r(u64::MAX - 50, u64::MAX - 1)];
    assert_eq!(w.content_length(&huge), None);
    assert_eq!(
        w.content_length(&[r(0, u64::MAX - 200)]),
        Some(u64::MAX - 200 + 1 + w.part_head_len(&r(0, u64::MAX - 200)) + w.closing_len())
    );
}
