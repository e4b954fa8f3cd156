//! The chunked decoder on its own: good bodies, limits, and the property that
//! feeding a body split anywhere (every one-, two- and random-piece split,
//! and byte by byte) gives exactly what feeding it whole gives — same data,
//! same consumed length, same error.

mod common;

use common::Rng;
use protocol::{ChunkedDecoder, Error, Limits};

/// What decoding a stream produced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    data: Vec<u8>,
    /// Input bytes consumed in total (0 after an error).
    consumed: usize,
    done: bool,
    error: Option<Error>,
}

/// Feeds `pieces` in order; once done, stops consuming.
fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, limits: &Limits) -> Run {
    let mut dec = ChunkedDecoder::new(limits);
    let mut out = Run {
        data: Vec::new(),
        consumed: 0,
        done: false,
        error: None,
    };
    for piece in pieces {
        let mut input = piece;
        while !input.is_empty() && !out.done {
            match dec.decode(input) {
                Ok(step) => {
                    assert!(step.data.end <= step.consumed && step.consumed <= input.len());
                    out.data.extend_from_slice(step.data(input));
                    out.consumed += step.consumed;
                    out.done = step.done;
                    assert_eq!(dec.is_done(), step.done);
                    input = &input[step.consumed..];
                }
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(dec.decode(b"0\r\n\r\n"), Err(e));
                    out.error = Some(e);
                    // Where an error was noticed is not part of the result.
                    out.consumed = 0;
                    return out;
                }
            }
        }
    }
    assert_eq!(dec.body_len(), out.data.len() as u64);
    out
}

fn whole(input: &[u8], limits: &Limits) -> Run {
    run([input], limits)
}

/// Checks every way of cutting `input` into one, two and (for short inputs)
/// three pieces, and byte by byte, against feeding it whole.
fn assert_split_invariant(input: &[u8], limits: &Limits) -> Run {
    let expected = whole(input, limits);
    assert_eq!(run(input.chunks(1), limits), expected, "bytewise {input:?}");
    for a in 0..=input.len() {
        let got = run([&input[..a], &input[a..]], limits);
        assert_eq!(got, expected, "split at {a}: {input:?}");
        if input.len() <= 48 {
            for b in a..=input.len() {
                let got = run([&input[..a], &input[a..b], &input[b..]], limits);
                assert_eq!(got, expected, "split at {a},{b}: {input:?}");
            }
        }
    }
    expected
}

#[rustfmt::skip]
const GOOD: &[(&[u8], &[u8])] = &[
    (b"0\r\n\r\n", b""),
    (b"1\r\na\r\n0\r\n\r\n", b"a"),
    (b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n", b"Wikipedia in\r\n\r\nchunks."),
    (b"a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", b"0123456789abcdefghij"),
    (b"0000000000000003\r\nabc\r\n0\r\n\r\n", b"abc"),
    (b"3;name\r\nabc\r\n0\r\n\r\n", b"abc"),
    (b"3;name=value\r\nabc\r\n0;last\r\n\r\n", b"abc"),
    (b"3 ;\tn = v ; m\r\nabc\r\n0\r\n\r\n", b"abc"),
    (b"3;q=\"a \\\" ; b\"\r\nabc\r\n0\r\n\r\n", b"abc"),
    (b"3;q=\"\"\r\nabc\r\n0\r\n\r\n", b"abc"),
    (b"3\r\n\r\n\r\r\n0\r\n\r\n", b"\r\n\r"),
    (b"0\r\nX-Trailer: yes\r\n\r\n", b""),
    (b"2\r\nhi\r\n0\r\nA: 1\r\nB:\r\nC: \xff\t x\r\n\r\n", b"hi"),
];

#[test]
fn good_bodies_decode_whole_and_split() {
    let limits = Limits::default();
    for (wire, body) in GOOD {
        let r = assert_split_invariant(wire, &limits);
        assert_eq!(r.error, None, "{wire:?}");
        assert!(r.done, "{wire:?}");
        assert_eq!(r.data, *body, "{wire:?}");
        assert_eq!(r.consumed, wire.len());
    }
}

#[test]
fn bytes_after_the_body_are_not_consumed() {
    let limits = Limits::default();
    let wire = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    let r = assert_split_invariant(wire, &limits);
    assert!(r.done);
    assert_eq!(r.consumed, 13);

    // Once done, further input is left alone.
    let mut dec = ChunkedDecoder::new(&limits);
    let step = dec.decode(wire).unwrap();
    assert_eq!(
        (step.consumed, step.data.clone(), step.done),
        (6, 3..6, false)
    );
    let step = dec.decode(&wire[6..]).unwrap();
    assert_eq!(
        (step.consumed, step.data.is_empty(), step.done),
        (7, true, true)
    );
    let step = dec.decode(b"more").unwrap();
    assert_eq!(
        (step.consumed, step.data.is_empty(), step.done),
        (0, true, true)
    );
}

#[rustfmt::skip]
const BAD: &[(&[u8], Error)] = &[
    (b"\r\n", Error::InvalidChunkSize),
    (b"g\r\n", Error::InvalidChunkSize),
    (b"-1\r\n", Error::InvalidChunkSize),
    (b"+1\r\n", Error::InvalidChunkSize),
    (b"0x1\r\n", Error::InvalidChunkSize),
    (b" 1\r\n", Error::InvalidChunkSize),
    (b"1 \r\n", Error::InvalidChunkSize),
    (b"1 x\r\n", Error::InvalidChunkSize),
    (b"10000000000000000\r\n", Error::ChunkSizeOverflow),
    (b"00000000000000001\r\n", Error::ChunkSizeOverflow),
    (b"8000000000000000\r\n", Error::ChunkSizeOverflow),
    (b"ffffffffffffffff\r\n", Error::ChunkSizeOverflow),
    (b"7fffffffffffffff\r\n", Error::BodyTooLarge),
    (b"1\r\nab\r\n", Error::InvalidChunkDelimiter),
    (b"1\r\naX", Error::InvalidChunkDelimiter),
    (b"1\r\na\rX", Error::BareCarriageReturn),
    (b"1\ra", Error::BareCarriageReturn),
    (b"1\na\r\n", Error::BareLineFeed),
    (b"1\r\na\n", Error::BareLineFeed),
    (b"1;x\na\r\n", Error::BareLineFeed),
    (b"\n", Error::BareLineFeed),
    (b"1;\r\na\r\n", Error::InvalidChunkExtension),
    (b"1;;x\r\n", Error::InvalidChunkExtension),
    (b"1;=x\r\n", Error::InvalidChunkExtension),
    (b"1;x=\r\n", Error::InvalidChunkExtension),
    (b"1;x y\r\n", Error::InvalidChunkExtension),
    (b"1;x=y z\r\n", Error::InvalidChunkExtension),
    (b"1;x=\"y\r\n", Error::InvalidChunkExtension),
    (b"1;x=\"y\"z\r\n", Error::InvalidChunkExtension),
    (b"1;x=\"\x01\"\r\n", Error::InvalidChunkExtension),
    (b"1;x=@\r\n", Error::InvalidChunkExtension),
    (b"0\r\n\n", Error::BareLineFeed),
    (b"0\r\n\rX", Error::BareCarriageReturn),
    (b"0\r\nX\r\n\r\n", Error::InvalidTrailer),
    (b"0\r\nX :1\r\n\r\n", Error::InvalidTrailer),
    (b"0\r\n:1\r\n\r\n", Error::InvalidTrailer),
    (b"0\r\n X:1\r\n\r\n", Error::InvalidTrailer),
    (b"0\r\nX:1\r\n Y\r\n\r\n", Error::InvalidTrailer),
    (b"0\r\nX:\x00\r\n\r\n", Error::InvalidTrailer),
    (b"0\r\nX:1\n\r\n", Error::BareLineFeed),
    (b"0\r\nX:1\rY", Error::BareCarriageReturn),
];

#[test]
fn bad_bodies_fail_the_same_way_split_or_whole() {
    let limits = Limits::default();
    for (wire, err) in BAD {
        let r = assert_split_invariant(wire, &limits);
        assert_eq!(r.error, Some(*err), "{wire:?}");
    }
}

#[test]
fn limits_are_exact() {
    let mut limits = Limits::default();
    limits.max_body_size = 10;
    limits.max_chunk_extension_size = 8;
    limits.max_trailer_size = 12;

    // Body: 10 passes, 11 fails, also across chunks.
    assert_eq!(whole(b"a\r\n0123456789\r\n0\r\n\r\n", &limits).error, None);
    assert_eq!(whole(b"b\r\n", &limits).error, Some(Error::BodyTooLarge));
    let r = whole(b"5\r\n01234\r\n6\r\n", &limits);
    assert_eq!((r.error, r.data.len()), (Some(Error::BodyTooLarge), 5));

    // Extensions: 8 bytes after the size pass (";abcdefg"), 9 fail.
    assert_eq!(whole(b"1;abcdefg\r\nx\r\n0\r\n\r\n", &limits).error, None);
    assert_eq!(
        whole(b"1;abcdefgh\r\nx\r\n0\r\n\r\n", &limits).error,
        Some(Error::ChunkExtensionTooLong)
    );
    // The budget is per line.
    assert_eq!(
        whole(
            b"1;abcdefg\r\nx\r\n1;abcdefg\r\ny\r\n0;abcdefg\r\n\r\n",
            &limits
        )
        .error,
        None
    );

    // Trailers: 12 bytes including the final CRLF pass, 13 fail.
    assert_eq!(whole(b"0\r\nAb: 1234\r\n\r\n", &limits).error, None);
    assert_eq!(
        whole(b"0\r\nAbc: 1234\r\n\r\n", &limits).error,
        Some(Error::TrailersTooLarge)
    );
}

/// Builds a random valid chunked body (random chunk sizes, extensions and
/// trailers) and returns it with its decoded data.
fn random_body(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let mut wire = Vec::new();
    let mut data = Vec::new();
    for _ in 0..rng.below(6) {
        let len = 1 + rng.below(40);
        let chunk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let size = if rng.below(2) == 0 {
            format!("{len:x}")
        } else {
            format!("{len:04X}")
        };
        wire.extend_from_slice(size.as_bytes());
        match rng.below(4) {
            0 => wire.extend_from_slice(b";ext"),
            1 => wire.extend_from_slice(b" ; a=1;b=\"x y\""),
            _ => {}
        }
        wire.extend_from_slice(b"\r\n");
        wire.extend_from_slice(&chunk);
        wire.extend_from_slice(b"\r\n");
        data.extend_from_slice(&chunk);
    }
    wire.extend_from_slice(b"0\r\n");
    for i in 0..rng.below(3) {
        wire.extend_from_slice(format!("X-T{i}: v{i}\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\n");
    (wire, data)
}

#[test]
fn random_bodies_and_random_corruptions_split_anywhere() {
    let limits = Limits::default();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..300 {
        let (wire, data) = random_body(&mut rng);
        let expected = whole(&wire, &limits);
        assert_eq!(
            (expected.data.as_slice(), expected.done, expected.error),
            (data.as_slice(), true, None)
        );
        for _ in 0..8 {
            assert_eq!(run(rng.pieces(&wire), &limits), expected);
        }

        // Corrupt one byte: whatever the outcome, it must not depend on the
        // split.
        let mut bad = wire.clone();
        let at = rng.below(bad.len());
        bad[at] = rng.next() as u8;
        let expected = whole(&bad, &limits);
        for _ in 0..8 {
            assert_eq!(run(rng.pieces(&bad), &limits), expected, "{bad:?}");
        }
    }
}
