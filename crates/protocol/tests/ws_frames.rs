//! The WebSocket [`Decoder`]: frame headers (every length encoding, reserved
//! bits, opcodes, masking), control frames, fragmentation, UTF-8 across
//! fragments, close codes and limits — and the property that feeding a
//! stream split anywhere (every one- and two-cut split for short streams,
//! byte by byte, random pieces for long ones) gives exactly the events and
//! the error that feeding it whole gives.

use protocol::ws::{
    write_client_frame, Config, Decoder, Error, Event, MessageKind, Opcode, MAX_CONTROL_PAYLOAD,
};

/// What the application would see, with messages reassembled.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Message(MessageKind, Vec<u8>, bool),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    /// Complete messages and control frames, in order. A message cut short
    /// by an error is not included (where it is cut depends on the split).
    events: Vec<Ev>,
    error: Option<Error>,
    closed: bool,
    /// Bytes left unconsumed after a Close.
    after_close: usize,
}

fn run<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, config: &Config, deflate: bool) -> Outcome {
    let mut dec = Decoder::new(config, deflate);
    let mut out = Outcome {
        events: Vec::new(),
        error: None,
        closed: false,
        after_close: 0,
    };
    let mut message: Option<(MessageKind, bool, Vec<u8>)> = None;
    for piece in pieces {
        // The decoder unmasks in place: every run works on its own copy.
        let mut buf = piece.to_vec();
        let mut at = 0;
        loop {
            let step = match dec.decode(&mut buf[at..]) {
                Ok(step) => step,
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(dec.decode(&mut []).err(), Some(e));
                    out.error = Some(e);
                    return out;
                }
            };
            let consumed = step.consumed;
            assert!(consumed <= buf.len() - at);
            match step.event {
                None => {
                    if dec.is_closed() {
                        out.after_close += buf.len() - at - consumed;
                    } else {
                        assert_eq!(at + consumed, buf.len(), "no event but input left");
                    }
                    break;
                }
                Some(Event::Data(d)) => {
                    assert!(d.data.end <= consumed);
                    assert!(!d.data.is_empty() || d.fin, "empty data piece without fin");
                    let (kind, compressed, data) =
                        message.get_or_insert_with(|| (d.kind, d.compressed, Vec::new()));
                    assert_eq!((*kind, *compressed), (d.kind, d.compressed));
                    data.extend_from_slice(&buf[at..][d.data.clone()]);
                    if d.fin {
                        let (kind, compressed, data) = message.take().unwrap();
                        out.events.push(Ev::Message(kind, data, compressed));
                    }
                }
                Some(Event::Ping(p)) => out.events.push(Ev::Ping(p.to_vec())),
                Some(Event::Pong(p)) => out.events.push(Ev::Pong(p.to_vec())),
                Some(Event::Close(c)) => out
                    .events
                    .push(Ev::Close(c.map(|(code, r)| (code.0, r.to_owned())))),
            }
            at += consumed;
        }
    }
    out.closed = dec.is_closed();
    if out.error.is_none() && !out.closed && dec.is_idle() {
        assert!(message.is_none() && dec.open_message().is_none());
    }
    out
}

/// Feeds `input` whole, byte by byte, cut once everywhere and (when short)
/// cut twice everywhere, and checks that every way gives the same outcome.
fn check(input: &[u8], config: &Config, deflate: bool) -> Outcome {
    let expected = run([input], config, deflate);
    assert_eq!(
        run(input.chunks(1), config, deflate),
        expected,
        "bytewise {input:x?}"
    );
    for a in 0..=input.len() {
        let got = run([&input[..a], &input[a..]], config, deflate);
        assert_eq!(got, expected, "split at {a}: {input:x?}");
        if input.len() <= 40 {
            for b in a..=input.len() {
                let got = run([&input[..a], &input[a..b], &input[b..]], config, deflate);
                assert_eq!(got, expected, "split at {a},{b}: {input:x?}");
            }
        }
    }
    expected
}

fn default() -> Config {
    Config::default()
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame.
fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_client_frame(&mut out, fin, false, opcode, payload, MASK);
    out
}

/// A frame built byte by byte: first byte, length field bytes as given
/// (7-bit value with the MASK bit added, then any extended length), mask,
/// payload masked.
fn raw(first: u8, len_field: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first, len_field[0] | 0x80];
    out.extend_from_slice(&len_field[1..]);
    out.extend_from_slice(&MASK);
    let start = out.len();
    out.extend_from_slice(payload);
    protocol::ws::apply_mask(&mut out[start..], MASK, 0);
    out
}

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn text(s: &[u8]) -> Ev {
    Ev::Message(MessageKind::Text, s.to_vec(), false)
}

fn binary(s: &[u8]) -> Ev {
    Ev::Message(MessageKind::Binary, s.to_vec(), false)
}

fn err(input: &[u8]) -> Option<Error> {
    check(input, &default(), false).error
}

#[test]
fn rfc_6455_examples() {
    // §5.7: a single-frame masked text message.
    let o = check(
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        &default(),
        false,
    );
    assert_eq!(o.events, [text(b"Hello")]);
    // A fragmented unmasked text message is refused: clients must mask.
    assert_eq!(err(b"\x01\x03Hel\x80\x02lo"), Some(Error::UnmaskedFrame));
    // The same, masked.
    let input = cat(&[
        frame(false, Opcode::Text, b"Hel"),
        frame(true, Opcode::Continuation, b"lo"),
    ]);
    assert_eq!(check(&input, &default(), false).events, [text(b"Hello")]);
    // A ping with "Hello" and a pong answering it.
    let input = cat(&[
        frame(true, Opcode::Ping, b"Hello"),
        frame(true, Opcode::Pong, b"Hello"),
    ]);
    assert_eq!(
        check(&input, &default(), false).events,
        [Ev::Ping(b"Hello".to_vec()), Ev::Pong(b"Hello".to_vec())]
    );
}

#[test]
fn every_length_encoding() {
    // (payload length, the length field a client sends)
    let table: &[(usize, &[u8])] = &[
        (0, &[0]),
        (1, &[1]),
        (125, &[125]),
        (126, &[126, 0, 126]),
        (127, &[126, 0, 127]),
        (65535, &[126, 0xff, 0xff]),
        (65536, &[127, 0, 0, 0, 0, 0, 1, 0, 0]),
        (16 << 20, &[127, 0, 0, 0, 0, 1, 0, 0, 0]),
    ];
    for &(len, field) in table {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let wire = frame(true, Opcode::Binary, &payload);
        assert_eq!(
            &wire[1..1 + field.len()],
            &[&[field[0] | 0x80], &field[1..]].concat()[..]
        );
        assert_eq!(wire, raw(0x82, field, &payload));
        let expected = [binary(&payload)];
        if len <= 200 {
            assert_eq!(check(&wire, &default(), false).events, expected, "{len}");
        } else {
            // Long payloads: whole, the header byte by byte then the rest,
            // and pieces of awkward sizes.
            assert_eq!(run([&wire[..]], &default(), false).events, expected);
            let head = wire.len() - len;
            let mut pieces: Vec<&[u8]> = wire[..head].chunks(1).collect();
            pieces.push(&wire[head..]);
            assert_eq!(run(pieces, &default(), false).events, expected);
            for size in [3, 4093, 65537] {
                if size < 100 && len > 100_000 {
                    continue; // millions of calls in a debug build
                }
                assert_eq!(
                    run(wire.chunks(size), &default(), false).events,
                    expected,
                    "{len} in pieces of {size}"
                );
            }
        }
    }
}

#[test]
fn lengths_must_be_minimal_and_below_2_63() {
    let table: &[(&[u8], Error)] = &[
        (&[126, 0, 0], Error::NonMinimalLength),
        (&[126, 0, 125], Error::NonMinimalLength),
        (&[127, 0, 0, 0, 0, 0, 0, 0, 0], Error::NonMinimalLength),
        (&[127, 0, 0, 0, 0, 0, 0, 0, 126], Error::NonMinimalLength),
        (
            &[127, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
            Error::NonMinimalLength,
        ),
        (&[127, 0x80, 0, 0, 0, 0, 0, 0, 0], Error::LengthOverflow),
        (
            &[127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            Error::LengthOverflow,
        ),
        (
            &[127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            Error::FrameTooLarge,
        ),
    ];
    for &(field, expected) in table {
        // The error comes with the header, before any payload.
        let wire = raw(0x82, field, b"");
        assert_eq!(err(&wire), Some(expected), "{field:?}");
    }
}

#[test]
fn reserved_bits() {
    let rsv = |first: u8, deflate: bool| check(&raw(first, &[1], b"x"), &default(), deflate);
    for bit in [0x40u8, 0x20, 0x10] {
        for opcode in [0x0u8, 0x1, 0x2, 0x8, 0x9, 0xA] {
            let o = rsv(0x80 | bit | opcode, false);
            assert_eq!(o.error, Some(Error::ReservedBits), "{bit:#x} {opcode:#x}");
        }
    }
    // RSV1 starts a compressed message when permessage-deflate is on...
    for (opcode, kind) in [(1u8, MessageKind::Text), (2, MessageKind::Binary)] {
        let o = rsv(0x80 | 0x40 | opcode, true);
        // (The payload is not inflated by the decoder: "x" passes through.)
        assert_eq!(o.events, [Ev::Message(kind, b"x".to_vec(), true)]);
    }
    // ...but never on a continuation or a control frame, and RSV2/RSV3 never.
    let input = cat(&[raw(0x41, &[1], b"a"), raw(0xC0, &[1], b"b")]);
    assert_eq!(
        check(&input, &default(), true).error,
        Some(Error::ReservedBits)
    );
    let input = cat(&[raw(0x41, &[1], b"a"), raw(0x80, &[1], b"b")]);
    assert_eq!(
        check(&input, &default(), true).events,
        [Ev::Message(MessageKind::Text, b"ab".to_vec(), true)]
    );
    for first in [0xC9u8, 0xC8, 0xCA, 0xA1, 0x91, 0xE1, 0xF2] {
        assert_eq!(
            rsv(first, true).error,
            Some(Error::ReservedBits),
            "{first:#x}"
        );
    }
}

#[test]
fn reserved_opcodes() {
    for opcode in (0x3..=0x7).chain(0xB..=0xF) {
        for fin in [0x80, 0] {
            assert_eq!(
                err(&raw(fin | opcode, &[0], b"")),
                Some(Error::UnknownOpcode),
                "{opcode:#x}"
            );
        }
        // Also in the middle of a fragmented message.
        let input = cat(&[
            frame(false, Opcode::Text, b"a"),
            raw(0x80 | opcode, &[0], b""),
        ]);
        assert_eq!(err(&input), Some(Error::UnknownOpcode));
    }
}

#[test]
fn client_frames_must_be_masked() {
    for unmasked in [
        &b"\x81\x00"[..],
        b"\x81\x05Hello",
        b"\x89\x00",
        b"\x88\x02\x03\xe8",
        b"\x82\x7e\x01\x00",
    ] {
        assert_eq!(err(unmasked), Some(Error::UnmaskedFrame), "{unmasked:x?}");
    }
}

#[test]
fn control_frames() {
    for (opcode, first) in [
        (Opcode::Ping, 0x89u8),
        (Opcode::Pong, 0x8A),
        (Opcode::Close, 0x88),
    ] {
        // 126 bytes, in each length encoding that can say 126.
        assert_eq!(
            err(&raw(first, &[126, 0, 126], &[b'a'; 126])),
            Some(Error::ControlFrameTooLarge)
        );
        assert_eq!(
            err(&raw(first, &[127, 0, 0, 0, 0, 0, 1, 0, 0], b"")),
            Some(Error::ControlFrameTooLarge)
        );
        // FIN clear.
        assert_eq!(
            err(&raw(first & 0x7F, &[0], b"")),
            Some(Error::FragmentedControlFrame)
        );
        if opcode != Opcode::Close {
            let max = [b'p'; MAX_CONTROL_PAYLOAD];
            let o = check(&frame(true, opcode, &max), &default(), false);
            let expected = if opcode == Opcode::Ping {
                Ev::Ping(max.to_vec())
            } else {
                Ev::Pong(max.to_vec())
            };
            assert_eq!(o.events, [expected]);
            let o = check(&frame(true, opcode, b""), &default(), false);
            assert_eq!(o.events.len(), 1);
        }
    }
    // Control frames may come between fragments, and are delivered at once.
    let input = cat(&[
        frame(false, Opcode::Binary, b"ab"),
        frame(true, Opcode::Ping, b"1"),
        frame(false, Opcode::Continuation, b""),
        frame(true, Opcode::Pong, b"2"),
        frame(false, Opcode::Continuation, b"cd"),
        frame(true, Opcode::Continuation, b"e"),
        frame(true, Opcode::Close, b"\x03\xe8"),
    ]);
    let o = check(&input, &default(), false);
    assert_eq!(
        o.events,
        [
            Ev::Ping(b"1".to_vec()),
            Ev::Pong(b"2".to_vec()),
            binary(b"abcde"),
            Ev::Close(Some((1000, String::new()))),
        ]
    );
}

#[test]
fn fragmentation_rules() {
    let table: &[(&[&[u8]], Option<Error>)] = &[
        // (frames, error); frames are (fin, opcode, payload) encoded below.
        (&[b"c1:"], Some(Error::UnexpectedContinuation)),
        (&[b"c0:a"], Some(Error::UnexpectedContinuation)),
        (&[b"t0:a", b"t1:b"], Some(Error::ExpectedContinuation)),
        (&[b"t0:a", b"b1:b"], Some(Error::ExpectedContinuation)),
        (&[b"b0:a", b"t0:b"], Some(Error::ExpectedContinuation)),
        (&[b"t1:a", b"c1:b"], Some(Error::UnexpectedContinuation)),
        (
            &[b"t0:a", b"c0:b", b"c1:c", b"c1:d"],
            Some(Error::UnexpectedContinuation),
        ),
        (&[b"t0:a", b"c0:b", b"c1:c", b"t1:d"], None),
        (&[b"t0:", b"c0:", b"c1:"], None),
        (&[b"b0:", b"p1:", b"c1:x"], None),
    ];
    for &(frames, expected) in table {
        let wire: Vec<u8> = frames
            .iter()
            .flat_map(|f| {
                let opcode = match f[0] {
                    b't' => Opcode::Text,
                    b'b' => Opcode::Binary,
                    b'c' => Opcode::Continuation,
                    _ => Opcode::Ping,
                };
                frame(f[1] == b'1', opcode, &f[3..])
            })
            .collect();
        assert_eq!(err(&wire), expected, "{frames:?}");
    }
    let wire = cat(&[
        frame(false, Opcode::Text, b"a"),
        frame(false, Opcode::Continuation, b"b"),
        frame(true, Opcode::Continuation, b"c"),
        frame(true, Opcode::Text, b""),
        frame(true, Opcode::Binary, b"d"),
    ]);
    assert_eq!(
        check(&wire, &default(), false).events,
        [text(b"abc"), text(b""), binary(b"d")]
    );
}

#[test]
fn utf8_in_text_messages() {
    let kappa = "κ".as_bytes(); // CE BA
    let euro = "€".as_bytes(); // E2 82 AC
    let emoji = "😀".as_bytes(); // F0 9F 98 80
    let table: &[(&[&[u8]], Option<Error>)] = &[
        (&[b"hello"], None),
        (&[b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"], None),
        (&[b"\xff"], Some(Error::InvalidUtf8)),
        (&[b"a\xc0\x80"], Some(Error::InvalidUtf8)),
        (&[b"\xed\xa0\x80"], Some(Error::InvalidUtf8)),
        (&[b"\xf4\x90\x80\x80"], Some(Error::InvalidUtf8)),
        (&[b"ends inside \xe2\x82"], Some(Error::InvalidUtf8)),
        // Code points split across fragments.
        (&[&kappa[..1], &kappa[1..]], None),
        (&[&euro[..1], &euro[1..2], &euro[2..]], None),
        (&[&emoji[..1], &emoji[1..3], b"", &emoji[3..]], None),
        (&[&emoji[..2], &emoji[2..], b"!"], None),
        // Invalid across fragments.
        (&[b"\xce", b"a"], Some(Error::InvalidUtf8)),
        (&[b"ok", b"\xe2\x82", b"\x41"], Some(Error::InvalidUtf8)),
        (&[b"\xe2", b"\x82"], Some(Error::InvalidUtf8)),
        (&[b"fine", b"\x80"], Some(Error::InvalidUtf8)),
    ];
    for &(fragments, expected) in table {
        let last = fragments.len() - 1;
        let wire: Vec<u8> = fragments
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                let opcode = if i == 0 {
                    Opcode::Text
                } else {
                    Opcode::Continuation
                };
                frame(i == last, opcode, f)
            })
            .collect();
        let o = check(&wire, &default(), false);
        assert_eq!(o.error, expected, "{fragments:x?}");
        if expected.is_none() {
            assert_eq!(o.events, [text(&fragments.concat())]);
        }
        // The same bytes in a binary message are fine.
        let wire = [&[0x82u8][..], &wire[1..]].concat();
        if fragments.len() == 1 {
            assert_eq!(err(&wire), None);
        }
    }
}

#[test]
fn invalid_utf8_fails_fast() {
    // The bad byte is in the first fragment; the message never ends, and
    // the error still comes — without waiting for FIN.
    let wire = frame(false, Opcode::Text, b"abc\xc0def");
    assert_eq!(err(&wire), Some(Error::InvalidUtf8));
    // Within one frame, the error comes with the piece holding the bad
    // byte: the rest of the payload need not arrive.
    let wire = frame(
        true,
        Opcode::Text,
        &[b"\xff".to_vec(), vec![b'a'; 1000]].concat(),
    );
    assert_eq!(
        run([&wire[..9]], &default(), false).error,
        Some(Error::InvalidUtf8)
    );
    // A truncated sequence that can never be completed fails at once too.
    let wire = frame(false, Opcode::Text, b"\xf4\x90");
    assert_eq!(err(&wire), Some(Error::InvalidUtf8));
    // One that can is kept for the next fragment.
    let wire = frame(false, Opcode::Text, b"\xf4\x8f");
    assert_eq!(err(&wire), None);
}

#[test]
fn close_codes_0_to_5000() {
    for code in 0..=5000u16 {
        let wire = frame(true, Opcode::Close, &code.to_be_bytes());
        let o = run([&wire[..]], &default(), false);
        let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
        if valid {
            assert_eq!(o.events, [Ev::Close(Some((code, String::new())))], "{code}");
            assert!(o.closed);
        } else {
            assert_eq!(o.error, Some(Error::InvalidCloseCode), "{code}");
        }
    }
    for code in [5000u16, 5001, 0x7fff, 0xffff] {
        let wire = frame(true, Opcode::Close, &code.to_be_bytes());
        assert_eq!(err(&wire), Some(Error::InvalidCloseCode), "{code}");
    }
}

#[test]
fn close_payloads() {
    let reason_123 = "r".repeat(123);
    type Expected = Result<Option<(u16, &'static str)>, Error>;
    let table: &[(&[u8], Expected)] = &[
        (b"", Ok(None)),
        (b"\x03\xe8", Ok(Some((1000, "")))),
        (b"\x03\xe9going away", Ok(Some((1001, "going away")))),
        (b"\x0f\xa0\xce\xba\xcf\x8c", Ok(Some((4000, "κό")))),
        (b"\x03", Err(Error::InvalidClosePayload)),
        (b"\x03\xed", Err(Error::InvalidCloseCode)),
        (b"\x03\xe8\xff", Err(Error::InvalidUtf8)),
        (b"\x03\xe8ab\xce", Err(Error::InvalidUtf8)),
        (b"\x03\xec\xff", Err(Error::InvalidCloseCode)),
    ];
    for &(payload, ref expected) in table {
        let o = check(&frame(true, Opcode::Close, payload), &default(), false);
        match expected {
            Ok(close) => {
                assert_eq!(
                    o.events,
                    [Ev::Close(close.map(|(c, r)| (c, r.to_owned())))],
                    "{payload:x?}"
                );
                assert!(o.closed);
            }
            Err(e) => assert_eq!(o.error, Some(*e), "{payload:x?}"),
        }
    }
    let payload = [&b"\x03\xe8"[..], reason_123.as_bytes()].concat();
    let o = run(
        [&frame(true, Opcode::Close, &payload)[..]],
        &default(),
        false,
    );
    assert_eq!(o.events, [Ev::Close(Some((1000, reason_123.clone())))]);
}

#[test]
fn nothing_is_read_after_close() {
    let wire = cat(&[
        frame(true, Opcode::Text, b"a"),
        frame(true, Opcode::Close, b""),
        frame(true, Opcode::Text, b"after"),
        b"\xff\xff garbage".to_vec(),
    ]);
    let o = check(&wire, &default(), false);
    assert_eq!(o.events, [text(b"a"), Ev::Close(None)]);
    assert_eq!(o.after_close, 11 + 10);
    assert_eq!(o.error, None);
}

#[test]
fn frame_and_message_limits() {
    let mut config = Config::default();
    config.max_frame_size = 10;
    config.max_message_size = 25;
    let ok = cat(&[
        frame(false, Opcode::Binary, &[1; 10]),
        frame(false, Opcode::Continuation, &[2; 10]),
        frame(true, Opcode::Continuation, &[3; 5]),
    ]);
    let o = check(&ok, &config, false);
    assert_eq!(o.events.len(), 1);
    let table: &[(Vec<u8>, Error)] = &[
        (frame(true, Opcode::Binary, &[0; 11]), Error::FrameTooLarge),
        (frame(true, Opcode::Text, &[b'a'; 11]), Error::FrameTooLarge),
        (
            cat(&[
                frame(false, Opcode::Binary, &[1; 10]),
                frame(false, Opcode::Continuation, &[2; 10]),
                frame(true, Opcode::Continuation, &[3; 6]),
            ]),
            Error::MessageTooLarge,
        ),
    ];
    for (wire, expected) in table {
        assert_eq!(check(wire, &config, false).error, Some(*expected));
    }
    // Fail fast: the header alone is enough.
    let wire = frame(true, Opcode::Binary, &[0; 11]);
    assert_eq!(
        run([&wire[..6]], &config, false).error,
        Some(Error::FrameTooLarge)
    );
    // Control frames are not counted.
    let wire = cat(&[
        frame(false, Opcode::Text, &[b'a'; 10]),
        frame(true, Opcode::Ping, &[0; 100]),
        frame(true, Opcode::Continuation, &[b'b'; 10]),
    ]);
    assert_eq!(check(&wire, &config, false).error, None);
    // The limit is per message.
    let one = frame(true, Opcode::Binary, &[0; 10]);
    let wire = cat(&[one.clone(), one.clone(), one.clone(), one]);
    assert_eq!(run([&wire[..]], &config, false).events.len(), 4);
}

#[test]
fn random_streams_split_randomly() {
    // A deterministic mix of valid frames, fed in random pieces.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for _ in 0..50 {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..20 {
            let len = [0, 1, 5, 125, 126, 300, 70000][next(7) as usize];
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mask = (next(u64::from(u32::MAX)) as u32).to_be_bytes();
            if next(4) == 0 {
                let n = len.min(125);
                write_client_frame(&mut wire, true, false, Opcode::Ping, &payload[..n], mask);
                expected.push(Ev::Ping(payload[..n].to_vec()));
            } else {
                let cut = next(len as u64 + 1) as usize;
                write_client_frame(&mut wire, false, false, Opcode::Text, &payload[..cut], mask);
                write_client_frame(
                    &mut wire,
                    true,
                    false,
                    Opcode::Continuation,
                    &payload[cut..],
                    mask,
                );
                expected.push(text(&payload));
            }
        }
        let mut pieces = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let range = if next(2) == 0 { 16 } else { 5000 };
            let n = (1 + next(range) as usize).min(rest.len());
            pieces.push(&rest[..n]);
            rest = &rest[n..];
        }
        let o = run(pieces, &default(), false);
        assert_eq!(o.error, None);
        assert_eq!(o.events, expected);
    }
}
