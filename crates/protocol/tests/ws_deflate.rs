//! permessage-deflate: the RFC 7692 examples, round trips for every
//! negotiated parameter (context takeover or not, each window size, with a
//! check that the compressor never reaches back further than the agreed
//! window — 256 bytes for `server_max_window_bits=8`), compressed messages
//! through the decoder in any split, the decompressed-size limit against a
//! 1 GiB zip bomb, invalid data and UTF-8.

use protocol::ws::{
    write_client_frame, Config, Decoder, Deflater, Error, Event, Inflater, MessageKind, Opcode,
    PerMessageDeflate,
};

/// A minimal DEFLATE decoder (after zlib's `puff`), used only to look at
/// the distances a compressed stream uses. Decodes every block of `data`
/// onto `out` (which holds earlier messages, for context takeover) and
/// returns the largest distance seen.
mod puff {
    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl Bits<'_> {
        fn bit(&mut self) -> u32 {
            let b = (self.data[self.pos / 8] >> (self.pos % 8)) & 1;
            self.pos += 1;
            u32::from(b)
        }
        fn bits(&mut self, n: u32) -> u32 {
            (0..n).fold(0, |acc, i| acc | (self.bit() << i))
        }
    }

    struct Huffman {
        counts: [u16; 16],
        symbols: Vec<u16>,
    }

    impl Huffman {
        fn new(lengths: &[u8]) -> Huffman {
            let mut counts = [0u16; 16];
            for &l in lengths {
                counts[usize::from(l)] += 1;
            }
            counts[0] = 0;
            let mut offs = [0u16; 16];
            for len in 1..15 {
                offs[len + 1] = offs[len] + counts[len];
            }
            let mut symbols = vec![0; lengths.len()];
            for (sym, &l) in lengths.iter().enumerate() {
                if l != 0 {
                    symbols[usize::from(offs[usize::from(l)])] = sym as u16;
                    offs[usize::from(l)] += 1;
                }
            }
            Huffman { counts, symbols }
        }

        fn decode(&self, b: &mut Bits<'_>) -> u16 {
            let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
            for len in 1..16 {
                code |= b.bit() as i32;
                let count = i32::from(self.counts[len]);
                if code - count < first {
                    return self.symbols[(index + (code - first)) as usize];
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            panic!("bad code");
        }
    }

    const LBASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEXT: [u32; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DBASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DEXT: [u32; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];

    pub fn inflate(data: &[u8], out: &mut Vec<u8>) -> usize {
        let mut b = Bits { data, pos: 0 };
        let mut max_dist = 0;
        while b.pos + 7 < data.len() * 8 {
            let last = b.bit();
            match b.bits(2) {
                0 => {
                    b.pos = b.pos.div_ceil(8) * 8;
                    let len = b.bits(16);
                    assert_eq!(b.bits(16), !len & 0xffff);
                    for _ in 0..len {
                        let byte = b.bits(8) as u8;
                        out.push(byte);
                    }
                }
                kind => {
                    let (lit, dist) = if kind == 1 {
                        let mut l = [8u8; 288];
                        l[144..256].fill(9);
                        l[256..280].fill(7);
                        (Huffman::new(&l), Huffman::new(&[5; 30]))
                    } else {
                        let nlen = b.bits(5) as usize + 257;
                        let ndist = b.bits(5) as usize + 1;
                        let ncode = b.bits(4) as usize + 4;
                        const ORDER: [usize; 19] = [
                            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                        ];
                        let mut cl = [0u8; 19];
                        for &i in &ORDER[..ncode] {
                            cl[i] = b.bits(3) as u8;
                        }
                        let clh = Huffman::new(&cl);
                        let mut lengths = Vec::new();
                        while lengths.len() < nlen + ndist {
                            match clh.decode(&mut b) {
                                s @ 0..=15 => lengths.push(s as u8),
                                16 => {
                                    let prev = *lengths.last().unwrap();
                                    let n = 3 + b.bits(2);
                                    lengths.extend((0..n).map(|_| prev));
                                }
                                17 => {
                                    let n = 3 + b.bits(3);
                                    lengths.extend((0..n).map(|_| 0));
                                }
                                _ => {
                                    let n = 11 + b.bits(7);
                                    lengths.extend((0..n).map(|_| 0));
                                }
                            }
                        }
                        (
                            Huffman::new(&lengths[..nlen]),
                            Huffman::new(&lengths[nlen..]),
                        )
                    };
                    loop {
                        let sym = lit.decode(&mut b);
                        if sym < 256 {
                            out.push(sym as u8);
                        } else if sym == 256 {
                            break;
                        } else {
                            let i = usize::from(sym - 257);
                            let len = usize::from(LBASE[i]) + b.bits(LEXT[i]) as usize;
                            let d = usize::from(dist.decode(&mut b));
                            let d = usize::from(DBASE[d]) + b.bits(DEXT[d]) as usize;
                            max_dist = max_dist.max(d);
                            for _ in 0..len {
                                out.push(out[out.len() - d]);
                            }
                        }
                    }
                }
            }
            if last == 1 {
                break;
            }
        }
        max_dist
    }
}

const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

fn agreed(
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<u8>,
) -> PerMessageDeflate {
    PerMessageDeflate {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    }
}

/// Inflates one whole message.
fn inflate_one(
    inflater: &mut Inflater,
    kind: MessageKind,
    payload: &[u8],
    max: u64,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    inflater.inflate(kind, payload, true, &mut out, max)?;
    Ok(out)
}

/// Messages with something for every window: repeats at short and long
/// distances, text, binary, empty.
fn messages() -> Vec<Vec<u8>> {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 24) as u8
            })
            .collect()
    };
    let chunk = noise(300);
    let mut far = Vec::new();
    for _ in 0..40 {
        far.extend_from_slice(&chunk); // repeats 300 bytes apart
        far.extend_from_slice(&noise(20));
    }
    let text: Vec<u8> = "The quick brown fox jumps over the lazy dog. Καλημέρα κόσμε! "
        .repeat(300)
        .into_bytes();
    let random = noise(5000);
    vec![
        b"Hello".to_vec(),
        b"Hello".to_vec(),
        Vec::new(),
        text.clone(),
        far,
        random.clone(),
        random,
        text,
        vec![0; 100_000],
    ]
}

#[test]
fn rfc_7692_examples() {
    let no = agreed(false, false, None, None);
    let hello = |payload: &[u8]| {
        let mut inflater = Inflater::new(&no);
        inflate_one(&mut inflater, MessageKind::Text, payload, 100)
    };
    // §7.2.3.1, §7.2.3.3 (stored block), §7.2.3.4 (BFINAL), §7.2.3.5 (two blocks).
    for payload in [
        &b"\xf2\x48\xcd\xc9\xc9\x07\x00"[..],
        b"\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00",
        b"\xf3\x48\xcd\xc9\xc9\x07\x00\x00",
        b"\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00",
    ] {
        assert_eq!(hello(payload).as_deref(), Ok(&b"Hello"[..]), "{payload:x?}");
    }
    // §7.2.3.2: the second message refers to the first.
    let mut inflater = Inflater::new(&no);
    let first = inflate_one(
        &mut inflater,
        MessageKind::Text,
        b"\xf2\x48\xcd\xc9\xc9\x07\x00",
        100,
    );
    let second = inflate_one(
        &mut inflater,
        MessageKind::Text,
        b"\xf2\x00\x11\x00\x00",
        100,
    );
    assert_eq!(
        (first.unwrap(), second.unwrap()),
        (b"Hello".to_vec(), b"Hello".to_vec())
    );
    // Without context takeover the second cannot be decoded.
    let mut inflater = Inflater::new(&agreed(false, true, None, None));
    inflate_one(
        &mut inflater,
        MessageKind::Text,
        b"\xf2\x48\xcd\xc9\xc9\x07\x00",
        100,
    )
    .unwrap();
    assert_eq!(
        inflate_one(
            &mut inflater,
            MessageKind::Text,
            b"\xf2\x00\x11\x00\x00",
            100
        ),
        Err(Error::InvalidCompressedData)
    );
    // A BFINAL block ends the message's stream; the next message works.
    let mut inflater = Inflater::new(&no);
    for payload in [
        &b"\xf3\x48\xcd\xc9\xc9\x07\x00\x00"[..],
        b"\xf3\x48\xcd\xc9\xc9\x07\x00",
        b"\xf2\x48\xcd\xc9\xc9\x07\x00",
    ] {
        assert_eq!(
            inflate_one(&mut inflater, MessageKind::Text, payload, 100).as_deref(),
            Ok(&b"Hello"[..])
        );
    }
    // Our compressor gives the RFC's bytes for "Hello".
    let mut deflater = Deflater::new(&no, 6);
    let mut out = Vec::new();
    deflater.compress(b"Hello", true, &mut out).unwrap();
    assert_eq!(out, b"\xf2\x48\xcd\xc9\xc9\x07\x00");
    // And an empty message is one byte (§7.2.3.6).
    out.clear();
    deflater.compress(b"", true, &mut out).unwrap();
    assert_eq!(out, b"\x00");
    let mut inflater = Inflater::new(&no);
    assert_eq!(
        inflate_one(&mut inflater, MessageKind::Binary, b"\x00", 0),
        Ok(Vec::new())
    );
}

/// Server → client: compress `messages()` with the server's deflater for
/// `agreed`, decode them as a client would, and check every distance stays
/// inside the agreed window.
fn server_to_client(agreed: &PerMessageDeflate, level: u32) -> Vec<usize> {
    let window = 1usize << agreed.server_max_window_bits.unwrap_or(15);
    let mut deflater = Deflater::new(agreed, level);
    let mut client = Inflater::with_window_bits(
        agreed.server_max_window_bits.unwrap_or(15),
        agreed.server_no_context_takeover,
    );
    let mut history = Vec::new();
    let mut sizes = Vec::new();
    for message in messages() {
        let mut payload = Vec::new();
        deflater.compress(&message, true, &mut payload).unwrap();
        sizes.push(payload.len());
        // The reference decoder, with the window carried over or not.
        if agreed.server_no_context_takeover {
            history.clear();
        }
        let start = history.len();
        let max_dist = puff::inflate(&[&payload[..], &TAIL].concat(), &mut history);
        assert_eq!(history[start..], message[..]);
        assert!(
            max_dist <= window,
            "distance {max_dist} > window {window} for {agreed:?}"
        );
        let got = inflate_one(&mut client, MessageKind::Binary, &payload, 1 << 20).unwrap();
        assert_eq!(got, message);
    }
    sizes
}

#[test]
fn server_to_client_every_parameter() {
    for no_context_takeover in [false, true] {
        for bits in [
            None,
            Some(8),
            Some(9),
            Some(10),
            Some(11),
            Some(12),
            Some(13),
            Some(14),
            Some(15),
        ] {
            for level in [1, 6, 9] {
                server_to_client(&agreed(no_context_takeover, false, bits, None), level);
            }
        }
    }
}

#[test]
fn context_takeover_shrinks_repeated_messages() {
    let sizes = server_to_client(&agreed(false, false, None, None), 6);
    // messages()[6] repeats [5] (5000 random bytes), [7] repeats [3] and
    // [1] repeats [0].
    assert!(sizes[6] < sizes[5] / 10, "{sizes:?}");
    assert!(sizes[7] < sizes[3], "{sizes:?}");
    assert!(sizes[1] < sizes[0], "{sizes:?}");
    let sizes = server_to_client(&agreed(true, false, None, None), 6);
    assert_eq!(sizes[6], sizes[5], "{sizes:?}");
    assert_eq!(sizes[7], sizes[3], "{sizes:?}");
    assert_eq!(sizes[1], sizes[0], "{sizes:?}");
}

/// Client → server through the decoder: each message compressed by a
/// client deflater for `agreed`, sent as 1–3 frames with RSV1 on the
/// first, decoded and inflated by the server.
fn client_to_server(agreed: &PerMessageDeflate, fragments: usize) {
    let mut client = Deflater::with_window_bits(
        agreed.client_max_window_bits.unwrap_or(15),
        agreed.client_no_context_takeover,
        6,
    );
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    for (i, message) in messages().into_iter().enumerate() {
        let kind = if i % 2 == 0 {
            MessageKind::Binary
        } else {
            MessageKind::Text
        };
        let message = if kind == MessageKind::Text {
            String::from_utf8_lossy(&message).into_owned().into_bytes()
        } else {
            message
        };
        let mut payload = Vec::new();
        client.compress(&message, true, &mut payload).unwrap();
        let n = payload.len().div_ceil(fragments).max(1);
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![&[]]
        } else {
            payload.chunks(n).collect()
        };
        for (j, piece) in pieces.iter().enumerate() {
            let opcode = if j == 0 {
                kind.opcode()
            } else {
                Opcode::Continuation
            };
            write_client_frame(
                &mut wire,
                j + 1 == pieces.len(),
                j == 0,
                opcode,
                piece,
                [9, 8, 7, 6],
            );
        }
        sent.push((kind, message));
    }
    let received = serve(&[&wire[..]], agreed, &Config::default());
    assert_eq!(received, Ok(sent), "{agreed:?}");
}

/// The server's receive path: decoder, then inflater for compressed data.
fn serve(
    pieces: &[&[u8]],
    agreed: &PerMessageDeflate,
    config: &Config,
) -> Result<Vec<(MessageKind, Vec<u8>)>, Error> {
    let mut decoder = Decoder::new(config, true);
    let mut inflater = Inflater::new(agreed);
    let mut messages = Vec::new();
    let mut current = Vec::new();
    for piece in pieces {
        let mut buf = piece.to_vec();
        let mut at = 0;
        loop {
            let step = decoder.decode(&mut buf[at..])?;
            let Some(Event::Data(d)) = step.event else {
                assert!(step.event.is_none());
                break;
            };
            let data = &buf[at..][d.data.clone()];
            if d.compressed {
                inflater.inflate(d.kind, data, d.fin, &mut current, config.max_message_size)?;
            } else {
                current.extend_from_slice(data);
            }
            if d.fin {
                messages.push((d.kind, std::mem::take(&mut current)));
            }
            at += step.consumed;
        }
    }
    Ok(messages)
}

#[test]
fn client_to_server_every_parameter() {
    for no_context_takeover in [false, true] {
        for bits in [None, Some(9), Some(12), Some(15)] {
            for fragments in [1, 3] {
                client_to_server(&agreed(false, no_context_takeover, None, bits), fragments);
            }
        }
    }
}

#[test]
fn compressed_messages_split_anywhere() {
    let no = agreed(false, false, None, None);
    let mut client = Deflater::with_window_bits(15, false, 6);
    let mut wire = Vec::new();
    for (i, m) in ["Hello", "Hello", "κόσμε κόσμε κόσμε", ""]
        .iter()
        .enumerate()
    {
        let mut payload = Vec::new();
        client.compress(m.as_bytes(), true, &mut payload).unwrap();
        if i == 2 {
            let (a, b) = payload.split_at(payload.len() / 2);
            write_client_frame(&mut wire, false, true, Opcode::Text, a, [1, 2, 3, 4]);
            write_client_frame(
                &mut wire,
                true,
                false,
                Opcode::Continuation,
                b,
                [5, 6, 7, 8],
            );
        } else {
            write_client_frame(&mut wire, true, true, Opcode::Text, &payload, [1, 2, 3, 4]);
        }
        // An uncompressed message in between.
        write_client_frame(&mut wire, true, false, Opcode::Binary, b"raw", [0; 4]);
    }
    let config = Config::default();
    let whole = serve(&[&wire[..]], &no, &config).unwrap();
    assert_eq!(whole.len(), 8);
    assert_eq!(
        whole[4],
        (MessageKind::Text, "κόσμε κόσμε κόσμε".as_bytes().to_vec())
    );
    for a in 0..=wire.len() {
        for b in (a..=wire.len()).step_by(3) {
            assert_eq!(
                serve(&[&wire[..a], &wire[a..b], &wire[b..]], &no, &config).as_ref(),
                Ok(&whole),
                "split at {a},{b}"
            );
        }
    }
}

#[test]
fn compressor_pieces_equal_whole() {
    let no = agreed(false, false, None, None);
    let message: Vec<u8> = "abcabcabc-".repeat(5000).into_bytes();
    let mut whole = Vec::new();
    Deflater::new(&no, 6)
        .compress(&message, true, &mut whole)
        .unwrap();
    let mut pieces = Vec::new();
    let mut deflater = Deflater::new(&no, 6);
    for chunk in message.chunks(777) {
        deflater.compress(chunk, false, &mut pieces).unwrap();
    }
    deflater.compress(&[], true, &mut pieces).unwrap();
    let mut inflater = Inflater::new(&no);
    for payload in [&whole, &pieces] {
        assert_eq!(
            inflate_one(&mut inflater, MessageKind::Text, payload, 1 << 20).unwrap(),
            message
        );
    }
    // Inflating in pieces gives the same as whole.
    let mut inflater = Inflater::new(&no);
    let mut out = Vec::new();
    for chunk in pieces.chunks(5) {
        inflater
            .inflate(MessageKind::Text, chunk, false, &mut out, 1 << 20)
            .unwrap();
    }
    inflater
        .inflate(MessageKind::Text, &[], true, &mut out, 1 << 20)
        .unwrap();
    assert_eq!(out, message);
}

/// 1 GiB of zeros, compressed: 1 MiB of zeros compressed and sync-flushed,
/// repeated 1024 times (each copy decodes on its own, since it starts with
/// a literal and refers back one byte at a time), tail removed.
fn zip_bomb() -> Vec<u8> {
    let mut deflater = Deflater::with_window_bits(15, false, 9);
    let mut block = Vec::new();
    deflater
        .compress(&vec![0; 1 << 20], true, &mut block)
        .unwrap();
    block.extend_from_slice(&TAIL);
    let mut bomb = block.repeat(1024);
    bomb.truncate(bomb.len() - TAIL.len());
    bomb
}

#[test]
fn zip_bomb_stops_at_the_limit() {
    let bomb = zip_bomb();
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let no = agreed(false, false, None, None);
    // The construction is sound: a few copies decode to zeros.
    let block_len = (bomb.len() + TAIL.len()) / 1024;
    let mut inflater = Inflater::new(&no);
    let three = inflate_one(
        &mut inflater,
        MessageKind::Binary,
        &bomb[..3 * block_len - 4],
        3 << 20,
    );
    assert_eq!(three, Ok(vec![0; 3 << 20]));

    for limit in [0u64, 1, 1000, 1 << 20, 4 << 20] {
        let mut inflater = Inflater::new(&no);
        let mut out = Vec::new();
        let got = inflater.inflate(MessageKind::Binary, &bomb, true, &mut out, limit);
        assert_eq!(got, Err(Error::MessageTooLarge), "limit {limit}");
        assert!(out.len() as u64 <= limit + 1, "{} > {limit}", out.len());
        assert!(
            out.capacity() as u64 <= 2 * limit + 4096,
            "capacity {}",
            out.capacity()
        );
        // The inflater was reset and serves the next message.
        assert_eq!(
            inflate_one(
                &mut inflater,
                MessageKind::Text,
                b"\xf2\x48\xcd\xc9\xc9\x07\x00",
                5
            )
            .as_deref(),
            Ok(&b"Hello"[..])
        );
    }
    // In pieces, with a caller's buffer that already has a lot of capacity:
    // output is still cut at the limit.
    let mut inflater = Inflater::new(&no);
    let mut out = Vec::with_capacity(64 << 20);
    let mut result = Ok(());
    for piece in bomb.chunks(64 << 10) {
        result = inflater.inflate(MessageKind::Binary, piece, false, &mut out, 1 << 20);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Error::MessageTooLarge));
    assert_eq!(out.len(), (1 << 20) + 1);
}

#[test]
fn message_limit_is_exact() {
    let no = agreed(false, false, None, None);
    let mut payload = Vec::new();
    Deflater::new(&no, 6)
        .compress(&[7; 1000], true, &mut payload)
        .unwrap();
    let mut inflater = Inflater::new(&no);
    assert_eq!(
        inflate_one(&mut inflater, MessageKind::Binary, &payload, 1000),
        Ok(vec![7; 1000])
    );
    assert_eq!(
        inflate_one(&mut inflater, MessageKind::Binary, &payload, 999),
        Err(Error::MessageTooLarge)
    );
}

#[test]
fn invalid_data_and_utf8() {
    let no = agreed(false, false, None, None);
    let mut inflater = Inflater::new(&no);
    for bad in [&b"\xff\xff\xff\xff"[..], b"\x07", b"\xf2\x00\x11\x00\x00"] {
        assert_eq!(
            inflate_one(&mut inflater, MessageKind::Binary, bad, 1000),
            Err(Error::InvalidCompressedData),
            "{bad:x?}"
        );
    }
    let compress = |m: &[u8]| {
        let mut out = Vec::new();
        Deflater::new(&no, 6).compress(m, true, &mut out).unwrap();
        out
    };
    assert_eq!(
        inflate_one(&mut inflater, MessageKind::Text, &compress(b"ok \xff"), 100),
        Err(Error::InvalidUtf8)
    );
    assert_eq!(
        inflate_one(
            &mut inflater,
            MessageKind::Text,
            &compress(b"ends \xe2\x82"),
            100
        ),
        Err(Error::InvalidUtf8)
    );
    assert_eq!(
        inflate_one(
            &mut inflater,
            MessageKind::Binary,
            &compress(b"ok \xff"),
            100
        ),
        Ok(b"ok \xff".to_vec())
    );
    // A code point split between two inflate calls (stored blocks make the
    // split point exact).
    let mut out = Vec::new();
    let mut inflater = Inflater::new(&no);
    let stored = |data: &[u8]| {
        [
            &[0u8, data.len() as u8, 0, !(data.len() as u8), 0xff][..],
            data,
        ]
        .concat()
    };
    inflater
        .inflate(MessageKind::Text, &stored(b"\xce"), false, &mut out, 10)
        .unwrap();
    inflater
        .inflate(MessageKind::Text, &stored(b"\xba"), true, &mut out, 10)
        .unwrap();
    assert_eq!(out, "κ".as_bytes());
    // Through the decoder, the error closes with 1007.
    let mut wire = Vec::new();
    write_client_frame(
        &mut wire,
        true,
        true,
        Opcode::Text,
        &compress(b"\xc0\x80"),
        [1; 4],
    );
    let got = serve(&[&wire[..]], &no, &Config::default());
    assert_eq!(got, Err(Error::InvalidUtf8));
    assert_eq!(Error::InvalidCompressedData.close_code().0, 1007);
}
