//! The chunked decoder never panics, and feeding a body in pieces gives
//! exactly what feeding it whole gives: same data, same consumed length, same
//! error. Input layout: `[k][k piece lengths][body]`; with `k % 8 == 0` the
//! body is fed byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{ChunkedDecoder, Error, Limits};

/// Decodes `pieces` in order: (data, consumed, done, error).
fn decode<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<u8>, usize, bool, Option<Error>) {
    let mut limits = Limits::default();
    (
        limits.max_body_size,
        limits.max_chunk_extension_size,
        limits.max_trailer_size,
    ) = (4096, 32, 64);
    let mut dec = ChunkedDecoder::new(&limits);
    let (mut data, mut consumed) = (Vec::new(), 0);
    for mut piece in pieces {
        while !piece.is_empty() && !dec.is_done() {
            match dec.decode(piece) {
                Ok(step) => {
                    data.extend_from_slice(step.data(piece));
                    consumed += step.consumed;
                    piece = &piece[step.consumed..];
                }
                Err(e) => return (data, 0, false, Some(e)),
            }
        }
    }
    assert_eq!(dec.body_len(), data.len() as u64);
    (data, consumed, dec.is_done(), None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&k, rest)) = input.split_first() else {
        return;
    };
    let k = usize::from(k % 8).min(rest.len());
    let (lens, body) = rest.split_at(k);
    let whole = decode(std::iter::once(body));
    let mut pieces = Vec::new();
    let mut left = body;
    for &len in lens
        .iter()
        .cycle()
        .take(if k == 0 { 0 } else { body.len() })
    {
        let (a, b) = left.split_at((1 + usize::from(len) % 32).min(left.len()));
        pieces.push(a);
        left = b;
    }
    if k == 0 {
        pieces = body.chunks(1).collect();
    } else {
        pieces.push(left);
    }
    assert_eq!(decode(pieces.into_iter()), whole);
});
