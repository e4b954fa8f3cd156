//! Parser snapshots (issue 12): every stateful parser exports its state,
//! the state goes through postcard, and a fresh parser imported from it
//! continues exactly where the first one stopped.
//!
//! The round-trip tests cut valid (and some invalid) streams at every
//! position, at random pairs of positions and byte by byte; at each cut the
//! parser is exported, encoded, decoded and imported. The run must equal
//! the same cuts without snapshots step for step, and feeding the stream
//! whole in the merged output (data, events, error). The invalid-state
//! tests change one field of a real exported state and expect `import` to
//! name it.

mod common;

use common::Rng;
use protocol::ws::{
    write_client_frame, Config, Decoder, DecoderPhase, DecoderState, Event, MessageKind, Opcode,
    Utf8State, Utf8Validator,
};
use protocol::{
    BodyDecoder, BodyFraming, BodyState, ChunkedDecoder, ChunkedPhase, ChunkedState, Error,
    ImportError, LengthDecoder, LengthState, Limits, Multipart, MultipartError, MultipartEvent,
    MultipartLimits, MultipartPhase, MultipartState,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes and decodes `state` with postcard.
fn via_postcard<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(state: &T) -> T {
    let bytes = postcard::to_allocvec(state).expect("encodes");
    let back: T = postcard::from_bytes(&bytes).expect("decodes");
    assert_eq!(&back, state);
    back
}

/// Every one-cut split, some random two-cut splits, and byte by byte.
fn cut_sets(len: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut sets: Vec<Vec<usize>> = (0..=len).map(|i| vec![i]).collect();
    for _ in 0..24 {
        let (a, b) = (rng.below(len + 1), rng.below(len + 1));
        sets.push(vec![a.min(b), a.max(b)]);
    }
    sets.push((1..len).collect());
    sets
}

fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in cuts.iter().chain(Some(&input.len())) {
        out.push(&input[start..c]);
        start = c;
    }
    out
}

fn http_limits(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut l = Limits::DEFAULT;
    f(&mut l);
    l
}

fn mp_limits(f: impl FnOnce(&mut MultipartLimits)) -> MultipartLimits {
    let mut l = MultipartLimits::DEFAULT;
    f(&mut l);
    l
}

fn field(e: Result<impl std::fmt::Debug, ImportError>) -> &'static str {
    match e {
        Ok(v) => panic!("import accepted an invalid state: {v:?}"),
        Err(e) => {
            assert!(e.to_string().contains(e.field()));
            e.field()
        }
    }
}

// ----- HTTP bodies ----------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct BodyRun {
    /// (consumed, data, done) of every step.
    steps: Vec<(usize, Vec<u8>, bool)>,
    data: Vec<u8>,
    /// Total consumed, or the error.
    result: Result<usize, Error>,
    done: bool,
    body_len: u64,
}

fn restore_body(dec: &BodyDecoder, limits: &Limits) -> BodyDecoder {
    let state = dec.export();
    let moved = BodyDecoder::import(via_postcard(&state), limits).expect("valid state");
    assert_eq!(moved.export(), state, "export ∘ import is the identity");
    assert_eq!(moved.is_done(), dec.is_done());
    assert_eq!(moved.body_len(), dec.body_len());
    moved
}

fn body_run(
    framing: BodyFraming,
    limits: &Limits,
    input: &[u8],
    cuts: &[usize],
    snapshot: bool,
) -> BodyRun {
    let mut dec = BodyDecoder::new(framing, limits);
    let mut run = BodyRun {
        steps: Vec::new(),
        data: Vec::new(),
        result: Ok(0),
        done: false,
        body_len: 0,
    };
    let mut total = 0;
    'pieces: for piece in pieces(input, cuts) {
        let mut rest = piece;
        loop {
            match dec.decode(rest) {
                Err(e) => {
                    if snapshot {
                        let mut moved = restore_body(&dec, limits);
                        assert_eq!(moved.decode(b"0\r\n\r\n"), Err(e), "the error survives");
                    }
                    run.result = Err(e);
                    break 'pieces;
                }
                Ok(step) => {
                    let data = step.data(rest).to_vec();
                    run.data.extend_from_slice(&data);
                    run.steps.push((step.consumed, data, step.done));
                    total += step.consumed;
                    rest = &rest[step.consumed..];
                    if step.done {
                        run.done = true;
                        run.result = Ok(total);
                        break 'pieces;
                    }
                    if rest.is_empty() {
                        break;
                    }
                }
            }
        }
        run.result = Ok(total);
        if snapshot {
            dec = restore_body(&dec, limits);
        }
    }
    run.body_len = dec.body_len();
    run
}

fn check_body(framing: BodyFraming, limits: &Limits, input: &[u8], rng: &mut Rng) -> BodyRun {
    let whole = body_run(framing, limits, input, &[], false);
    for cuts in cut_sets(input.len(), rng) {
        let plain = body_run(framing, limits, input, &cuts, false);
        let moved = body_run(framing, limits, input, &cuts, true);
        assert_eq!(moved, plain, "{framing:?} {input:?} cut at {cuts:?}");
        assert_eq!(
            (&moved.data, &moved.result, moved.done, moved.body_len),
            (&whole.data, &whole.result, whole.done, whole.body_len),
            "{input:?} cut at {cuts:?}"
        );
    }
    whole
}

#[test]
fn body_decoders_continue_from_a_snapshot_at_every_byte() {
    let mut rng = Rng(0x5eed_0001);
    let limits = Limits::default();
    let chunked: &[&[u8]] = &[
        b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\nNEXT",
        b"a;name=\"quoted \\\" str\" ; b = c\r\n0123456789\r\n00000003 \t;x\r\nabc\r\n0;last\r\nTrailer-A: 1\r\nB: two words\r\n\r\nGET / HTTP/1.1",
        b"1\r\nx\r\n0\r\n\r\n",
        b"1F\r\n0123456789abcdef0123456789ABCDE\r\n1;a=\"\"\r\n!\r\n000\r\n\r\n",
        // Refused, at various points.
        b"3\r\nabcX\r\n0\r\n\r\n",
        b"5;\r\nhello\r\n",
        b"2\r\nab\r\nZZ\r\n",
        b"2\r\nab\r\n0\r\nBad Name: x\r\n\r\n",
        b"2\r\nab\r\n0\r\n\r\r",
        b"12345678901234567\r\n",
    ];
    let mut outcomes = Vec::new();
    for body in chunked {
        let run = check_body(BodyFraming::Chunked, &limits, body, &mut rng);
        outcomes.push((
            String::from_utf8(run.data).unwrap(),
            run.result.map(|_| run.done),
        ));
    }
    let ok = |s: &str| (s.to_owned(), Ok(true));
    assert_eq!(
        outcomes,
        [
            ok("Wikipedia"),
            ok("0123456789abc"),
            ok("x"),
            ok("0123456789abcdef0123456789ABCDE!"),
            ("abc".to_owned(), Err(Error::InvalidChunkDelimiter)),
            (String::new(), Err(Error::InvalidChunkExtension)),
            ("ab".to_owned(), Err(Error::InvalidChunkSize)),
            ("ab".to_owned(), Err(Error::InvalidTrailer)),
            ("ab".to_owned(), Err(Error::BareCarriageReturn)),
            (String::new(), Err(Error::ChunkSizeOverflow)),
        ]
    );
    let tight = http_limits(|l| {
        l.max_body_size = 10;
        l.max_chunk_extension_size = 8;
        l.max_trailer_size = 14;
    });
    for body in [
        &b"8\r\n12345678\r\n2\r\n90\r\n0\r\n\r\n"[..],
        b"8\r\n12345678\r\n3\r\n",
        b"1;abcdefg\r\nx\r\n1;abcdefgh\r\ny\r\n",
        b"0\r\nA: 1\r\nB: 22\r\n\r\n",
        b"0\r\nA: 1\r\nB: 2\r\n\r\n",
    ] {
        let run = check_body(BodyFraming::Chunked, &tight, body, &mut rng);
        outcomes.push((
            String::from_utf8(run.data).unwrap(),
            run.result.map(|_| run.done),
        ));
    }
    assert_eq!(
        outcomes[10..],
        [
            ok("1234567890"),
            ("12345678".to_owned(), Err(Error::BodyTooLarge)),
            ("x".to_owned(), Err(Error::ChunkExtensionTooLong)),
            (String::new(), Err(Error::TrailersTooLarge)),
            ok(""),
        ]
    );
    check_body(
        BodyFraming::ContentLength(10),
        &limits,
        b"0123456789GET /",
        &mut rng,
    );
    check_body(BodyFraming::None, &limits, b"GET /", &mut rng);
}

#[test]
fn length_state_is_validated() {
    let limits = Limits::default();
    let mut d = LengthDecoder::new(10);
    d.decode(b"abc");
    let good = d.export();
    assert_eq!(
        good,
        LengthState {
            remaining: 7,
            len: 10
        }
    );
    assert!(LengthDecoder::import(good.clone(), &limits).is_ok());
    let small = http_limits(|l| {
        l.max_body_size = 9;
    });
    assert_eq!(
        field(LengthDecoder::import(good.clone(), &small)),
        "LengthState.len"
    );
    let bad = LengthState {
        remaining: 11,
        ..good.clone()
    };
    assert_eq!(
        field(LengthDecoder::import(bad, &limits)),
        "LengthState.remaining"
    );
    // Through BodyDecoder too.
    assert_eq!(
        field(BodyDecoder::import(BodyState::Length(good), &small)),
        "LengthState.len"
    );
}

/// A chunked decoder's state after `input`.
fn chunked_after(input: &[u8], limits: &Limits) -> ChunkedState {
    let mut d = ChunkedDecoder::new(limits);
    let mut rest = input;
    while !rest.is_empty() {
        let step = d.decode(rest).expect("valid prefix");
        rest = &rest[step.consumed..];
    }
    d.export()
}

#[test]
fn chunked_state_is_validated() {
    let limits = Limits::default();
    let in_size = chunked_after(b"3\r\nabc\r\n1F", &limits);
    assert_eq!(
        (in_size.phase, in_size.size, in_size.digits),
        (ChunkedPhase::Size, 0x1F, 2)
    );
    let in_ext = chunked_after(b"3\r\nabc\r\n5;abc", &limits);
    assert_eq!((in_ext.phase, in_ext.ext_len), (ChunkedPhase::ExtName, 4));
    let at_lf = chunked_after(b"3\r\nabc\r\n5\r", &limits);
    let in_data = chunked_after(b"3\r\nabc\r\n5\r\nde", &limits);
    assert_eq!(
        (
            in_data.phase,
            in_data.remaining,
            in_data.declared,
            in_data.body_len
        ),
        (ChunkedPhase::Data, 3, 8, 5)
    );
    let in_trailer = chunked_after(b"0\r\nA: b", &limits);
    assert_eq!(
        (in_trailer.phase, in_trailer.trailer_len),
        (ChunkedPhase::TrailerValue, 4)
    );
    let after_data = chunked_after(b"3\r\nabc", &limits);
    assert_eq!(after_data.phase, ChunkedPhase::DataCr);
    for s in [
        &in_size,
        &in_ext,
        &at_lf,
        &in_data,
        &in_trailer,
        &after_data,
    ] {
        assert!(ChunkedDecoder::import(s.clone(), &limits).is_ok(), "{s:?}");
    }

    type Case = (&'static str, ChunkedState, Limits, &'static str);
    let with = |s: &ChunkedState, f: &dyn Fn(&mut ChunkedState)| {
        let mut s = s.clone();
        f(&mut s);
        s
    };
    let max_body = |n| {
        http_limits(|l| {
            l.max_body_size = n;
        })
    };
    let cases: Vec<Case> = vec![
        (
            "declared over the new limit",
            in_data.clone(),
            max_body(7),
            "ChunkedState.declared",
        ),
        (
            "body_len > declared",
            with(&after_data, &|s| s.body_len = 4),
            limits,
            "ChunkedState.body_len",
        ),
        (
            "remaining inconsistent",
            with(&in_data, &|s| s.remaining = 2),
            limits,
            "ChunkedState.remaining",
        ),
        (
            "remaining outside Data",
            with(&in_data, &|s| s.phase = ChunkedPhase::DataCr),
            limits,
            "ChunkedState.remaining",
        ),
        (
            "Data without remaining",
            with(&after_data, &|s| s.phase = ChunkedPhase::Data),
            limits,
            "ChunkedState.remaining",
        ),
        (
            "no digits in Size",
            with(&in_size, &|s| s.digits = 0),
            limits,
            "ChunkedState.digits",
        ),
        (
            "17 digits",
            with(&in_size, &|s| s.digits = 17),
            limits,
            "ChunkedState.digits",
        ),
        (
            "size wider than its digits",
            with(&in_size, &|s| s.size = 0x100),
            limits,
            "ChunkedState.size",
        ),
        (
            "size over 2^63 - 1",
            with(&in_size, &|s| (s.digits, s.size) = (16, u64::MAX)),
            limits,
            "ChunkedState.size",
        ),
        (
            "size over the new limit",
            at_lf.clone(),
            max_body(7),
            "ChunkedState.size",
        ),
        (
            "digits outside a size",
            with(&in_data, &|s| s.digits = 1),
            limits,
            "ChunkedState.digits",
        ),
        (
            "size outside a size",
            with(&after_data, &|s| s.size = 1),
            limits,
            "ChunkedState.size",
        ),
        (
            "extension over the new limit",
            in_ext.clone(),
            http_limits(|l| {
                l.max_chunk_extension_size = 3;
            }),
            "ChunkedState.ext_len",
        ),
        (
            "ext_len outside an extension",
            with(&at_lf, &|s| s.ext_len = 1),
            limits,
            "ChunkedState.ext_len",
        ),
        (
            "trailers over the new limit",
            in_trailer.clone(),
            http_limits(|l| {
                l.max_trailer_size = 3;
            }),
            "ChunkedState.trailer_len",
        ),
        (
            "trailer_len outside the trailers",
            with(&in_data, &|s| s.trailer_len = 1),
            limits,
            "ChunkedState.trailer_len",
        ),
        (
            "an error with a phase",
            with(&after_data, &|s| s.error = Some(Error::InvalidChunkSize)),
            limits,
            "ChunkedState.error",
        ),
    ];
    for (what, state, limits, expected) in cases {
        assert_eq!(
            field(ChunkedDecoder::import(state, &limits)),
            expected,
            "{what}"
        );
    }

    // Near u64::MAX with no body limit: refused where the total would
    // overflow, and an error (not an overflow) when the size line ends.
    let unlimited = http_limits(|l| l.max_body_size = u64::MAX);
    let near_max = |phase| ChunkedState {
        phase,
        size: 0x10,
        digits: 2,
        remaining: 0,
        declared: u64::MAX - 1,
        body_len: u64::MAX - 1,
        ext_len: 0,
        trailer_len: 0,
        error: None,
    };
    assert_eq!(
        field(ChunkedDecoder::import(
            near_max(ChunkedPhase::SizeLf),
            &unlimited
        )),
        "ChunkedState.size"
    );
    let mut d = ChunkedDecoder::import(near_max(ChunkedPhase::Size), &unlimited).expect("valid");
    assert_eq!(d.decode(b"\r\n"), Err(Error::BodyTooLarge));
}

// ----- WebSocket ------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Data {
        kind: MessageKind,
        compressed: bool,
        fin: bool,
        data: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct WsRun {
    events: Vec<Ev>,
    consumed: usize,
    error: Option<protocol::ws::Error>,
    closed: bool,
}

/// Consecutive data pieces of one message merged: what feeding it whole
/// must give, however it was split.
fn merged(events: &[Ev]) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for ev in events {
        if let (
            Some(Ev::Data {
                data: acc,
                fin: last_fin @ false,
                ..
            }),
            Ev::Data { data, fin, .. },
        ) = (out.last_mut(), ev)
        {
            acc.extend_from_slice(data);
            *last_fin = *fin;
            continue;
        }
        out.push(ev.clone());
    }
    out
}

fn restore_ws(dec: &Decoder, config: &Config, compression: bool) -> Decoder {
    let state = dec.export();
    let moved = Decoder::import(via_postcard(&state), config, compression).expect("valid state");
    assert_eq!(moved.export(), state, "export ∘ import is the identity");
    if state.error.is_none() {
        assert_eq!(moved.is_closed(), dec.is_closed());
        assert_eq!(moved.open_message(), dec.open_message());
        assert_eq!(moved.is_idle(), dec.is_idle());
    }
    moved
}

fn ws_run(
    config: &Config,
    compression: bool,
    stream: &[u8],
    cuts: &[usize],
    snapshot: bool,
) -> WsRun {
    let mut dec = Decoder::new(config, compression);
    let mut run = WsRun {
        events: Vec::new(),
        consumed: 0,
        error: None,
        closed: false,
    };
    for piece in pieces(stream, cuts) {
        let mut buf = piece.to_vec();
        let mut at = 0;
        loop {
            let step = match dec.decode(&mut buf[at..]) {
                Ok(step) => step,
                Err(e) => {
                    run.error = Some(e);
                    if snapshot {
                        let mut moved = restore_ws(&dec, config, compression);
                        assert_eq!(moved.decode(&mut [0x81]).err(), Some(e));
                    }
                    return run;
                }
            };
            let consumed = step.consumed;
            let ev = match step.event {
                None => {
                    run.consumed += consumed;
                    break;
                }
                Some(Event::Data(d)) => Ev::Data {
                    kind: d.kind,
                    compressed: d.compressed,
                    fin: d.fin,
                    data: buf[at..][d.data.clone()].to_vec(),
                },
                Some(Event::Ping(p)) => Ev::Ping(p.to_vec()),
                Some(Event::Pong(p)) => Ev::Pong(p.to_vec()),
                Some(Event::Close(c)) => Ev::Close(c.map(|(code, r)| (code.0, r.to_owned()))),
            };
            run.events.push(ev);
            run.consumed += consumed;
            at += consumed;
        }
        if snapshot {
            dec = restore_ws(&dec, config, compression);
        }
    }
    run.closed = dec.is_closed();
    run
}

fn check_ws(config: &Config, compression: bool, stream: &[u8], cut_sets: Vec<Vec<usize>>) -> WsRun {
    let whole = ws_run(config, compression, stream, &[], false);
    for cuts in cut_sets {
        let plain = ws_run(config, compression, stream, &cuts, false);
        let moved = ws_run(config, compression, stream, &cuts, true);
        assert_eq!(moved, plain, "cut at {cuts:?}");
        assert_eq!(
            merged(&moved.events),
            merged(&whole.events),
            "cut at {cuts:?}"
        );
        assert_eq!(
            (moved.error, moved.closed),
            (whole.error, whole.closed),
            "cut at {cuts:?}"
        );
    }
    whole
}

fn frame(out: &mut Vec<u8>, fin: bool, rsv1: bool, op: Opcode, payload: &[u8], seed: u8) {
    let mask = [
        seed,
        seed.wrapping_mul(7) ^ 0x5a,
        0xa5 ^ seed,
        seed.wrapping_add(99),
    ];
    write_client_frame(out, fin, rsv1, op, payload, mask);
}

#[test]
fn ws_decoder_continues_from_a_snapshot_at_every_byte() {
    let mut rng = Rng(0x5eed_0002);
    let config = Config::default();
    let text = "κόσμε, καλημέρα — 🦀 ok".as_bytes();

    // Fragmented text split inside code points, with control frames
    // between the fragments; a 16-bit-length binary message; empty frames;
    // a Close with a reason.
    let mut s = Vec::new();
    frame(&mut s, false, false, Opcode::Text, &text[..3], 1);
    frame(&mut s, true, false, Opcode::Ping, b"are you there?", 2);
    frame(&mut s, false, false, Opcode::Continuation, &text[3..20], 3);
    frame(&mut s, true, false, Opcode::Pong, b"", 4);
    frame(&mut s, true, false, Opcode::Continuation, &text[20..], 5);
    let big: Vec<u8> = (0..300u32).map(|i| (i * 31 % 251) as u8).collect();
    frame(&mut s, true, false, Opcode::Binary, &big, 6);
    frame(&mut s, false, false, Opcode::Binary, b"", 7);
    frame(&mut s, true, false, Opcode::Continuation, b"", 8);
    frame(&mut s, true, false, Opcode::Text, b"", 9);
    frame(
        &mut s,
        true,
        false,
        Opcode::Close,
        b"\x03\xe8bye \xce\xba",
        10,
    );
    frame(&mut s, true, false, Opcode::Text, b"after close", 11);
    let cuts = cut_sets(s.len(), &mut rng);
    let run = check_ws(&config, false, &s, cuts);
    assert_eq!((run.error, run.closed), (None, true));
    let events = merged(&run.events);
    assert_eq!(events.len(), 9, "{events:?}");
    let mut message = Vec::new();
    for i in [0, 2, 4] {
        let Ev::Data {
            kind: MessageKind::Text,
            data,
            fin,
            ..
        } = &events[i]
        else {
            panic!("{events:?}")
        };
        assert_eq!(*fin, i == 4);
        message.extend_from_slice(data);
    }
    assert_eq!(message, text);
    assert_eq!(events[8], Ev::Close(Some((1000, "bye κ".to_owned()))));

    // Compressed (RSV1) messages: the payload is opaque to the decoder.
    let mut s = Vec::new();
    frame(&mut s, false, true, Opcode::Text, b"\xf2\x48\xcd", 1);
    frame(&mut s, true, false, Opcode::Ping, b"p", 2);
    frame(
        &mut s,
        true,
        false,
        Opcode::Continuation,
        b"\xc9\xc9\x07\x00",
        3,
    );
    frame(&mut s, true, true, Opcode::Binary, b"\x00\xff\x80", 4);
    frame(&mut s, true, false, Opcode::Text, "plain ✓".as_bytes(), 5);
    let cuts = cut_sets(s.len(), &mut rng);
    let run = check_ws(&config, true, &s, cuts);
    assert_eq!((run.error, merged(&run.events).len()), (None, 5));

    // Refused: invalid UTF-8 across fragments, a message over the limit.
    let mut s = Vec::new();
    frame(&mut s, false, false, Opcode::Text, b"ok \xed", 1);
    frame(&mut s, true, false, Opcode::Continuation, b"\xa0\x80", 2);
    let cuts = cut_sets(s.len(), &mut rng);
    let run = check_ws(&config, false, &s, cuts);
    assert_eq!(run.error, Some(protocol::ws::Error::InvalidUtf8));
    let mut small = Config::default();
    (small.max_frame_size, small.max_message_size) = (16, 19);
    let mut s = Vec::new();
    frame(&mut s, false, false, Opcode::Binary, b"0123456789", 1);
    frame(&mut s, true, false, Opcode::Continuation, b"0123456789", 2);
    let cuts = cut_sets(s.len(), &mut rng);
    let run = check_ws(&small, false, &s, cuts);
    assert_eq!(run.error, Some(protocol::ws::Error::MessageTooLarge));

    // A 64-bit length: cut everywhere in the headers, randomly in the
    // payload.
    let mut s = Vec::new();
    let huge: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    frame(&mut s, true, false, Opcode::Text, b"x", 1);
    frame(&mut s, true, false, Opcode::Binary, &huge, 2);
    frame(&mut s, true, false, Opcode::Ping, b"end", 3);
    let n = s.len();
    let mut cuts: Vec<Vec<usize>> = (0..24).chain(n - 12..=n).map(|i| vec![i]).collect();
    for _ in 0..16 {
        let (a, b) = (rng.below(n + 1), rng.below(n + 1));
        cuts.push(vec![a.min(b), a.max(b)]);
    }
    let run = check_ws(&config, false, &s, cuts);
    assert_eq!((run.error, run.events.len()), (None, 3));
}

/// A decoder's state after `stream`.
fn ws_after(stream: &[u8], compression: bool) -> DecoderState {
    let mut dec = Decoder::new(&Config::default(), compression);
    let mut buf = stream.to_vec();
    let mut at = 0;
    while at < buf.len() {
        let step = dec.decode(&mut buf[at..]).expect("valid prefix");
        at += step.consumed;
        if step.event.is_none() && step.consumed == 0 {
            break;
        }
    }
    dec.export()
}

#[test]
fn ws_decoder_state_is_validated() {
    let config = Config::default();
    let mut s = Vec::new();
    frame(&mut s, false, false, Opcode::Text, b"ab\xce", 1);
    frame(&mut s, true, false, Opcode::Continuation, b"\xbacdefgh", 2);
    let header_len = 2 + 4 + 3;
    // Inside the second frame's payload: 2 of 7 bytes read.
    let in_data = ws_after(&s[..s.len() - 5], false);
    assert_eq!(
        (in_data.phase, in_data.remaining, in_data.mask_offset),
        (DecoderPhase::Data, 5, 2)
    );
    // Between the frames, a code point open.
    let between = ws_after(&s[..header_len], false);
    assert_eq!(between.phase, DecoderPhase::Header);
    assert_eq!(between.utf8.carry, b"\xce");
    // Three bytes into the second frame's header.
    let in_head = ws_after(&s[..header_len + 3], false);
    assert_eq!(in_head.head.len(), 3);
    let mut p = Vec::new();
    frame(&mut p, true, false, Opcode::Ping, b"0123456789", 3);
    let in_control = ws_after(&p[..p.len() - 4], false);
    assert_eq!(
        (
            in_control.phase,
            in_control.control.as_slice(),
            in_control.remaining
        ),
        (DecoderPhase::Control, &b"012345"[..], 4)
    );
    let mut c = Vec::new();
    frame(&mut c, false, true, Opcode::Binary, b"zz", 4);
    let compressed = ws_after(&c[..c.len() - 1], true);
    assert!(compressed.compressed);
    for st in [&in_data, &between, &in_head, &in_control] {
        assert!(
            Decoder::import(st.clone(), &config, false).is_ok(),
            "{st:?}"
        );
    }
    assert!(Decoder::import(compressed.clone(), &config, true).is_ok());

    let with = |s: &DecoderState, f: &dyn Fn(&mut DecoderState)| {
        let mut s = s.clone();
        f(&mut s);
        s
    };
    let mut tiny = Config::default();
    (tiny.max_frame_size, tiny.max_message_size) = (4, 100);
    let mut tiny_msg = Config::default();
    tiny_msg.max_message_size = 9;
    type Case = (&'static str, DecoderState, Config, bool, &'static str);
    let cases: Vec<Case> = vec![
        (
            "compressed without a message",
            with(&between, &|s| {
                s.message = None;
                s.message_len = 0;
                s.utf8 = Utf8State::default();
                s.compressed = true;
            }),
            config,
            true,
            "DecoderState.compressed",
        ),
        (
            "compressed without compression",
            compressed.clone(),
            config,
            false,
            "DecoderState.compressed",
        ),
        (
            "message_len without a message",
            with(&between, &|s| {
                s.message = None;
                s.utf8 = Utf8State::default();
            }),
            config,
            false,
            "DecoderState.message_len",
        ),
        (
            "message over the new limit",
            in_data.clone(),
            tiny_msg,
            false,
            "DecoderState.message_len",
        ),
        (
            "UTF-8 carry in a binary message",
            with(&between, &|s| s.message = Some(MessageKind::Binary)),
            config,
            false,
            "DecoderState.utf8",
        ),
        (
            "UTF-8 carry not a prefix",
            with(&between, &|s| s.utf8.carry = b"\xce\xce".to_vec()),
            config,
            false,
            "Utf8State.carry",
        ),
        (
            "head outside Header",
            with(&in_data, &|s| s.head = vec![0x80]),
            config,
            false,
            "DecoderState.head",
        ),
        (
            "mask_offset outside Data",
            with(&between, &|s| s.mask_offset = 1),
            config,
            false,
            "DecoderState.mask_offset",
        ),
        (
            "control outside Control",
            with(&in_data, &|s| s.control = vec![1]),
            config,
            false,
            "DecoderState.control",
        ),
        (
            "frame fields between frames",
            with(&between, &|s| s.remaining = 3),
            config,
            false,
            "DecoderState.remaining",
        ),
        (
            "control opcode in Data",
            with(&in_data, &|s| s.opcode = Opcode::Ping),
            config,
            false,
            "DecoderState.opcode",
        ),
        (
            "Data without a message",
            with(&in_data, &|s| {
                s.message = None;
                s.message_len = 0;
                s.utf8 = Utf8State::default();
            }),
            config,
            false,
            "DecoderState.message",
        ),
        (
            "opcode not the message's kind",
            with(&in_data, &|s| s.opcode = Opcode::Binary),
            config,
            false,
            "DecoderState.opcode",
        ),
        (
            "Data with nothing remaining",
            with(&in_data, &|s| s.remaining = 0),
            config,
            false,
            "DecoderState.remaining",
        ),
        (
            "frame over the new limit",
            in_data.clone(),
            tiny,
            false,
            "DecoderState.remaining",
        ),
        (
            "remaining over message_len",
            with(&in_data, &|s| s.remaining = 12),
            config,
            false,
            "DecoderState.remaining",
        ),
        (
            "mask offset 4",
            with(&in_data, &|s| s.mask_offset = 4),
            config,
            false,
            "DecoderState.mask_offset",
        ),
        (
            "data opcode in Control",
            with(&in_control, &|s| s.opcode = Opcode::Binary),
            config,
            false,
            "DecoderState.opcode",
        ),
        (
            "control frame without FIN",
            with(&in_control, &|s| s.fin = false),
            config,
            false,
            "DecoderState.fin",
        ),
        (
            "Control with nothing remaining",
            with(&in_control, &|s| s.remaining = 0),
            config,
            false,
            "DecoderState.remaining",
        ),
        (
            "control payload over 125",
            with(&in_control, &|s| s.remaining = 120),
            config,
            false,
            "DecoderState.control",
        ),
        (
            "first header byte with RSV2",
            with(&in_head, &|s| s.head[0] |= 0x20),
            config,
            false,
            "DecoderState.head",
        ),
        (
            "Text while a message is open",
            with(&in_head, &|s| s.head[0] = 0x81),
            config,
            false,
            "DecoderState.head",
        ),
        (
            "unmasked frame",
            with(&in_head, &|s| s.head[1] &= 0x7f),
            config,
            false,
            "DecoderState.head",
        ),
        (
            "a complete header",
            with(&in_head, &|s| s.head.extend_from_slice(&[0; 3])),
            config,
            false,
            "DecoderState.head",
        ),
        (
            "longer than any header",
            with(&in_head, &|s| {
                s.head = vec![0x80, 0xff];
                s.head.resize(20, 0);
            }),
            config,
            false,
            "DecoderState.head",
        ),
        (
            "an error with a message",
            with(&between, &|s| {
                s.error = Some(protocol::ws::Error::InvalidUtf8)
            }),
            config,
            false,
            "DecoderState.error",
        ),
    ];
    for (what, state, config, compression, expected) in cases {
        assert_eq!(
            field(Decoder::import(state, &config, compression)),
            expected,
            "{what}"
        );
    }
}

#[test]
fn utf8_validator_continues_from_a_snapshot() {
    let text = "a κ € 🦀 \u{10ffff}".as_bytes();
    let mut bad = text.to_vec();
    bad.extend_from_slice(b"\xed\xa0\x80");
    for input in [text, &bad[..]] {
        let expected = std::str::from_utf8(input).is_ok();
        for a in 0..=input.len() {
            for b in a..=input.len() {
                let mut v = Utf8Validator::new();
                let mut ok = true;
                for piece in [&input[..a], &input[a..b], &input[b..]] {
                    if v.feed(piece).is_err() {
                        ok = false;
                        break;
                    }
                    let state = v.export();
                    v = Utf8Validator::import(via_postcard(&state)).expect("valid state");
                    assert_eq!(v.export(), state);
                }
                assert_eq!(ok && v.finish().is_ok(), expected, "{input:?} at {a},{b}");
            }
        }
    }
    for (carry, ok) in [
        (&b""[..], true),
        (b"\xce", true),
        (b"\xf0\x9f\xa6", true),
        (b"\xf0\x9f\xa6\x80", false),
        (b"a", false),
        (b"\x80", false),
        (b"\xc0", false),
        (b"\xce\xce", false),
        (b"\xf4\x90", false),
    ] {
        let r = Utf8Validator::import(Utf8State {
            carry: carry.to_vec(),
        });
        if ok {
            assert!(r.is_ok(), "{carry:x?}");
        } else {
            assert_eq!(field(r), "Utf8State.carry", "{carry:x?}");
        }
    }
}

// ----- multipart ------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Mp {
    Start(Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>),
    Data(Vec<u8>),
    PartEnd,
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MpRun {
    events: Vec<Mp>,
    /// The first error, from `feed` or else from `finish`.
    error: Option<MultipartError>,
    total: u64,
    parts: usize,
}

fn restore_mp(m: &Multipart, limits: &MultipartLimits) -> Multipart {
    let state = m.export();
    let moved = Multipart::import(via_postcard(&state), limits).expect("valid state");
    assert_eq!(moved.export(), state, "export ∘ import is the identity");
    assert_eq!(moved.is_done(), m.is_done());
    assert_eq!(moved.finish(), m.finish());
    moved
}

fn mp_run(
    boundary: &[u8],
    limits: &MultipartLimits,
    body: &[u8],
    cuts: &[usize],
    snapshot: bool,
) -> MpRun {
    let mut m = Multipart::new(boundary, limits).expect("valid boundary");
    let mut run = MpRun {
        events: Vec::new(),
        error: None,
        total: 0,
        parts: 0,
    };
    'pieces: for piece in pieces(body, cuts) {
        let mut input = piece;
        loop {
            let step = match m.feed(input) {
                Ok(step) => step,
                Err(e) => {
                    run.error = Some(e);
                    if snapshot {
                        let mut moved = restore_mp(&m, limits);
                        assert_eq!(moved.feed(b"x"), Err(e));
                    }
                    break 'pieces;
                }
            };
            let consumed = step.consumed;
            match step.event {
                MultipartEvent::NeedMore => break,
                MultipartEvent::PartStart(p) => run.events.push(Mp::Start(
                    p.name.to_vec(),
                    p.filename.map(<[u8]>::to_vec),
                    p.content_type.map(<[u8]>::to_vec),
                    p.head.to_vec(),
                )),
                MultipartEvent::PartData(d) => run.events.push(Mp::Data(d.to_vec())),
                MultipartEvent::PartEnd => run.events.push(Mp::PartEnd),
                MultipartEvent::End => {
                    run.events.push(Mp::End);
                    break;
                }
            }
            input = &input[consumed..];
        }
        if snapshot {
            m = restore_mp(&m, limits);
        }
    }
    if run.error.is_none() {
        run.error = m.finish().err();
    }
    run.total = m.total_len();
    run.parts = m.parts();
    run
}

fn mp_merged(events: &[Mp]) -> Vec<Mp> {
    let mut out: Vec<Mp> = Vec::new();
    for ev in events {
        match (out.last_mut(), ev) {
            (Some(Mp::Data(acc)), Mp::Data(d)) => acc.extend_from_slice(d),
            // `End` repeats for every later piece of epilogue.
            (Some(Mp::End), Mp::End) => {}
            _ => out.push(ev.clone()),
        }
    }
    out
}

fn check_mp(boundary: &[u8], limits: &MultipartLimits, body: &[u8], rng: &mut Rng) -> MpRun {
    let whole = mp_run(boundary, limits, body, &[], false);
    for cuts in cut_sets(body.len(), rng) {
        let plain = mp_run(boundary, limits, body, &cuts, false);
        let moved = mp_run(boundary, limits, body, &cuts, true);
        assert_eq!(
            moved,
            plain,
            "{:?} cut at {cuts:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            (mp_merged(&moved.events), moved.error, moved.parts),
            (mp_merged(&whole.events), whole.error, whole.parts),
            "{:?} cut at {cuts:?}",
            String::from_utf8_lossy(body)
        );
    }
    whole
}

#[test]
fn multipart_continues_from_a_snapshot_at_every_byte() {
    let mut rng = Rng(0x5eed_0003);
    let limits = MultipartLimits::default();
    let bodies: &[(&[u8], &[u8])] = &[
        (
            b"XyZ",
            b"preamble\r\n--XyZ \t\r\nContent-Disposition: form-data; name=\"greeting\"\r\n\r\nhello\r\n--Xy\r\n--XyQ\
              \r\n--XyZ\r\nContent-Disposition: form-data; name=f; filename=\"a.txt\"\r\n\
              Content-Type: text/plain\r\n\r\nfile\r\ndata\r\n-\r\n--XyZ\r\n\
              Content-Disposition: form-data; name=e; filename*=UTF-8''%e2%82%ac.txt\r\n\r\n\
              \r\n--XyZ--\r\nepilogue",
        ),
        (b"b", b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n--b--"),
        (b"b", b"--b--"),
        // Refused.
        (b"b", b"--b\r\nContent-Disposition: form-data; name=a\r\nBad Name: x\r\n\r\n"),
        (b"b", b"--bx\r\n"),
        (b"b", b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nunfinished\r\n--"),
    ];
    let mut outcomes = Vec::new();
    for (boundary, body) in bodies {
        let run = check_mp(boundary, &limits, body, &mut rng);
        outcomes.push((run.parts, run.error));
    }
    let tight = mp_limits(|l| {
        l.max_parts = 1;
        l.max_part_header_size = 48;
        l.max_total_size = 120;
    });
    for body in [
        &b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b\r\n"[..],
        b"--b\r\nContent-Disposition: form-data; name=a; filename=long\r\n\r\n",
        b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n0123456789012345678901234567890123456789\
          0123456789012345678901234567890123456789",
    ] {
        let run = check_mp(b"b", &tight, body, &mut rng);
        outcomes.push((run.parts, run.error));
    }
    assert_eq!(
        outcomes,
        [
            (3, None),
            (1, None),
            (0, None),
            (1, Some(MultipartError::InvalidPartHeader)),
            (0, Some(MultipartError::InvalidDelimiter)),
            (1, Some(MultipartError::Incomplete)),
            (1, Some(MultipartError::TooManyParts)),
            (1, Some(MultipartError::PartHeaderTooLarge)),
            (1, Some(MultipartError::BodyTooLarge)),
        ]
    );
}

/// A multipart parser's state after `body`.
fn mp_after(body: &[u8], limits: &MultipartLimits) -> MultipartState {
    let mut m = Multipart::new(b"bnd", limits).expect("valid boundary");
    let mut input = body;
    loop {
        let step = m.feed(input).expect("valid prefix");
        input = &input[step.consumed..];
        if matches!(step.event, MultipartEvent::NeedMore | MultipartEvent::End) {
            break;
        }
    }
    m.export()
}

#[test]
fn multipart_state_is_validated() {
    let limits = MultipartLimits::default();
    let start = mp_after(b"", &limits);
    assert_eq!(
        (start.phase, start.held, start.virtual_held),
        (MultipartPhase::Preamble, 2, 2)
    );
    let part = b"--bnd\r\nContent-Disposition: form-data; name=a\r\n";
    let in_head = mp_after(part, &limits);
    assert_eq!(in_head.phase, MultipartPhase::HeadLineStart);
    assert_eq!(in_head.head, &part[7..]);
    let mut cr = part.to_vec();
    cr.push(b'\r');
    let at_end_lf = mp_after(&cr, &limits);
    assert_eq!(at_end_lf.phase, MultipartPhase::HeadEndLf);
    let mut data = cr.clone();
    data.extend_from_slice(b"\nsome data\r\n--bn");
    let in_data = mp_after(&data, &limits);
    assert_eq!(
        (in_data.phase, in_data.held, in_data.parts),
        (MultipartPhase::Data, 6, 1)
    );
    let after_boundary = mp_after(b"--bnd", &limits);
    assert_eq!(after_boundary.phase, MultipartPhase::AfterBoundary);
    for s in [&start, &in_head, &at_end_lf, &in_data, &after_boundary] {
        assert!(Multipart::import(s.clone(), &limits).is_ok(), "{s:?}");
    }
    // A HeadDone state (never left between calls, but consistent) parses
    // its head on the next feed.
    let mut done = at_end_lf.clone();
    done.phase = MultipartPhase::HeadDone;
    let mut m = Multipart::import(done, &limits).expect("valid");
    assert!(matches!(
        m.feed(b"").map(|s| s.event),
        Ok(MultipartEvent::PartStart(p)) if p.name == b"a"
    ));

    let with = |s: &MultipartState, f: &dyn Fn(&mut MultipartState)| {
        let mut s = s.clone();
        f(&mut s);
        s
    };
    let lim = |f: &dyn Fn(&mut MultipartLimits)| {
        let mut l = MultipartLimits::DEFAULT;
        f(&mut l);
        l
    };
    type Case = (&'static str, MultipartState, MultipartLimits, &'static str);
    let cases: Vec<Case> = vec![
        (
            "invalid boundary",
            with(&start, &|s| s.boundary = b"a ".to_vec()),
            limits,
            "MultipartState.boundary",
        ),
        (
            "empty boundary",
            with(&start, &|s| s.boundary.clear()),
            limits,
            "MultipartState.boundary",
        ),
        (
            "parts over the new limit",
            in_data.clone(),
            lim(&|l| l.max_parts = 0),
            "MultipartState.parts",
        ),
        (
            "no part inside a part",
            with(&in_data, &|s| s.parts = 0),
            limits,
            "MultipartState.parts",
        ),
        (
            "total over the new limit",
            in_data.clone(),
            lim(&|l| l.max_total_size = 10),
            "MultipartState.total",
        ),
        (
            "held the whole delimiter",
            with(&in_data, &|s| s.held = 7),
            limits,
            "MultipartState.held",
        ),
        (
            "virtual_held 1",
            with(&in_data, &|s| s.virtual_held = 1),
            limits,
            "MultipartState.virtual_held",
        ),
        (
            "virtual_held > held",
            with(&start, &|s| s.held = 1),
            limits,
            "MultipartState.virtual_held",
        ),
        (
            "held outside data",
            with(&after_boundary, &|s| s.held = 1),
            limits,
            "MultipartState.held",
        ),
        (
            "virtual_held outside data",
            with(&after_boundary, &|s| s.virtual_held = 2),
            limits,
            "MultipartState.virtual_held",
        ),
        (
            "an error with a phase",
            with(&in_data, &|s| s.error = Some(MultipartError::Incomplete)),
            limits,
            "MultipartState.error",
        ),
        (
            "a malformed head",
            with(&in_head, &|s| s.head.extend_from_slice(b" folded\r\n")),
            limits,
            "MultipartState.head",
        ),
        (
            "a head over the new limit",
            in_head.clone(),
            lim(&|l| l.max_part_header_size = 20),
            "MultipartState.head",
        ),
        (
            "a head holding the empty line",
            with(&in_head, &|s| s.head.extend_from_slice(b"\r\nX: y\r\n")),
            limits,
            "MultipartState.head",
        ),
        (
            "a head that ends elsewhere",
            with(&in_head, &|s| s.phase = MultipartPhase::HeadValue),
            limits,
            "MultipartState.phase",
        ),
        (
            "HeadEndLf mid-line",
            with(&in_head, &|s| {
                s.phase = MultipartPhase::HeadEndLf;
                s.head.extend_from_slice(b"X-A: 1");
            }),
            limits,
            "MultipartState.phase",
        ),
        (
            "a head outside the head",
            with(&in_data, &|s| s.head = b"A: b\r\n".to_vec()),
            limits,
            "MultipartState.head",
        ),
    ];
    for (what, state, limits, expected) in cases {
        assert_eq!(field(Multipart::import(state, &limits)), expected, "{what}");
    }
}
