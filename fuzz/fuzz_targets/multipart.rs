//! The `multipart/form-data` parser never panics, and feeding a body in
//! pieces gives exactly what feeding it whole gives: the same part heads,
//! the same data (runs merged), the same end and the same error. Data comes
//! back as slices of the input, or (at most a delimiter's length) of
//! held-back delimiter bytes. Input layout: `[b][k][k piece lengths][body]`:
//! `b` picks the boundary; the fuzzer chooses the split points; `k % 8 == 0`
//! feeds byte by byte. Small limits (4 parts, 128-byte heads, 4 KiB bodies,
//! 16-byte names) so the limit paths are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{Multipart, MultipartError, MultipartEvent, MultipartLimits};

const BOUNDARIES: [&[u8]; 4] = [b"b", b"AaB", b"--x-", b"a b"];

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Start(Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>),
    Data(Vec<u8>),
    PartEnd,
    End,
}

/// Feeds `pieces` in order: (events, error or finish result).
fn parse<'a>(
    boundary: &[u8],
    pieces: impl Iterator<Item = &'a [u8]>,
) -> (Vec<Ev>, Result<(), MultipartError>) {
    let mut limits = MultipartLimits::default();
    limits.max_parts = 4;
    limits.max_part_header_size = 128;
    limits.max_total_size = 4096;
    limits.max_field_name_len = 16;
    let mut mp = Multipart::new(boundary, &limits).unwrap();
    let delimiter = [&b"\r\n--"[..], boundary].concat();
    let mut events = Vec::new();
    for mut piece in pieces {
        loop {
            let range = piece.as_ptr_range();
            let step = match mp.feed(piece) {
                Ok(step) => step,
                Err(e) => return (events, Err(e)),
            };
            assert!(step.consumed <= piece.len());
            let (mut need_more, mut end) = (false, false);
            match step.event {
                MultipartEvent::NeedMore => {
                    assert_eq!(step.consumed, piece.len());
                    need_more = true;
                }
                MultipartEvent::PartStart(p) => {
                    assert!(p.name.len() <= 16);
                    events.push(Ev::Start(
                        p.name.to_vec(),
                        p.filename.map(<[u8]>::to_vec),
                        p.content_type.map(<[u8]>::to_vec),
                        p.head.to_vec(),
                    ));
                }
                MultipartEvent::PartData(d) => {
                    assert!(!d.is_empty());
                    let r = d.as_ptr_range();
                    let from_input = range.start <= r.start && r.end <= range.end;
                    assert!(
                        from_input
                            || (d.len() < delimiter.len()
                                && (delimiter.starts_with(d) || delimiter[2..].starts_with(d)))
                    );
                    match events.last_mut() {
                        Some(Ev::Data(prev)) => prev.extend_from_slice(d),
                        _ => events.push(Ev::Data(d.to_vec())),
                    }
                }
                MultipartEvent::PartEnd => events.push(Ev::PartEnd),
                MultipartEvent::End => {
                    end = true;
                    if events.last() != Some(&Ev::End) {
                        events.push(Ev::End);
                    }
                }
            }
            let used = step.consumed;
            piece = &piece[used..];
            if need_more || (end && piece.is_empty()) {
                break;
            }
        }
    }
    (events, mp.finish())
}

fuzz_target!(|input: &[u8]| {
    let [b, k, rest @ ..] = input else {
        return;
    };
    let boundary = BOUNDARIES[usize::from(*b) % BOUNDARIES.len()];
    let k = usize::from(k % 8).min(rest.len());
    let (lens, body) = rest.split_at(k);
    let whole = parse(boundary, std::iter::once(body));
    let mut pieces = Vec::new();
    let mut left = body;
    if k == 0 {
        pieces = body.chunks(1).collect();
    } else {
        for &len in lens.iter().cycle().take(body.len()) {
            let (a, b) = left.split_at((1 + usize::from(len) % 32).min(left.len()));
            pieces.push(a);
            left = b;
        }
        pieces.push(left);
    }
    assert_eq!(parse(boundary, pieces.into_iter()), whole);
});
