//! permessage-deflate: `Inflater` never panics on arbitrary input, never
//! produces more than the limit (1 KiB here), and gives the same output and
//! error however the compressed message is split; and `Deflater` output
//! inflates back to the original.
//!
//! Input layout: `[flags][k][k piece lengths][data]`. `flags` bit 0: text
//! (UTF-8 checked); bits 1–3: window bits 9 + n (capped at 15); bit 4:
//! no context takeover. `data` is inflated as one message, fed in pieces
//! whose lengths come from the `k` bytes (byte by byte when `k % 8 == 0`),
//! and compressed and inflated back as a message of its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ws::{Deflater, Error, Inflater, MessageKind};

const LIMIT: u64 = 1024;

fn inflate<'a>(
    pieces: &[&'a [u8]],
    kind: MessageKind,
    bits: u8,
    reset: bool,
) -> (Vec<u8>, Option<Error>) {
    let mut inflater = Inflater::with_window_bits(bits, reset);
    let mut out = Vec::new();
    let last = pieces.len().saturating_sub(1);
    for (i, piece) in pieces.iter().enumerate() {
        if let Err(e) = inflater.inflate(kind, piece, i == last, &mut out, LIMIT) {
            assert!(out.len() as u64 <= LIMIT + 1);
            return (out, Some(e));
        }
        assert!(out.len() as u64 <= LIMIT);
    }
    if kind == MessageKind::Text {
        assert!(std::str::from_utf8(&out).is_ok());
    }
    (out, None)
}

fuzz_target!(|input: &[u8]| {
    let [flags, k, rest @ ..] = input else {
        return;
    };
    let kind = if flags & 1 != 0 {
        MessageKind::Text
    } else {
        MessageKind::Binary
    };
    let bits = (9 + ((flags >> 1) & 7)).min(15);
    let reset = flags & 16 != 0;
    let k = usize::from(k % 8).min(rest.len());
    let (lens, data) = rest.split_at(k);

    let (out, err) = inflate(&[data], kind, bits, reset);
    let mut pieces = Vec::new();
    if k == 0 {
        pieces.extend(data.chunks(1));
        pieces.push(&[]);
    } else {
        let mut left = data;
        // Empty pieces are allowed (length 0), so bound the count.
        for &len in lens.iter().cycle().take(2 * data.len() + 2) {
            if left.is_empty() {
                break;
            }
            let (a, b) = left.split_at((usize::from(len) % 48).min(left.len()));
            pieces.push(a);
            left = b;
        }
        pieces.push(left);
    }
    let (split_out, split_err) = inflate(&pieces, kind, bits, reset);
    assert_eq!(split_err, err);
    // After an error, how much output came before it may depend on where
    // the pieces ended; without one, the output is the same.
    if err.is_none() {
        assert_eq!(split_out, out);
    } else {
        let n = out.len().min(split_out.len());
        assert_eq!(split_out[..n], out[..n]);
    }

    // Round trip: the data compressed (twice, to use the window) inflates
    // back to itself.
    let mut deflater = Deflater::with_window_bits(bits, reset, u32::from(flags >> 5) * 3);
    let mut inflater = Inflater::with_window_bits(bits, reset);
    for _ in 0..2 {
        let mut compressed = Vec::new();
        deflater.compress(data, true, &mut compressed).unwrap();
        let mut back = Vec::new();
        inflater
            .inflate(
                MessageKind::Binary,
                &compressed,
                true,
                &mut back,
                data.len() as u64,
            )
            .unwrap();
        assert_eq!(back, data);
    }
});
