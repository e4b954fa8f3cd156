//! Parser snapshots: `import` of any postcard-decodable state never panics
//! and never builds a parser that later panics. For every state `import`
//! accepts, `export` gives the same state back (imports refuse anything
//! non-canonical), and the imported parser fed the rest of the input whole
//! gives the same output (data, events, error) as fed byte by byte
//! (WebSocket: whole messages, control frames, error).
//!
//! Input layout: `[selector][state in postcard][rest]`. `selector % 5`
//! picks the parser — 0 `BodyDecoder`, 1 `Multipart`, 2 `ws::Decoder`,
//! 3 `ws::Decoder` with compression, 4 `Utf8Validator` — bit 3 small
//! limits instead of the defaults, and bit 4 the largest limits there are
//! (`u64::MAX`), where only the parsers' own arithmetic bounds the state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ws::{Config, Decoder, DecoderState, Event, Utf8State, Utf8Validator};
use protocol::{
    BodyDecoder, BodyState, Limits, Multipart, MultipartEvent, MultipartLimits, MultipartState,
};

/// `rest` one byte at a time (one empty piece if it is empty, so that a
/// parser that reports something on empty input is called in both runs).
fn bytewise(rest: &[u8]) -> Vec<&[u8]> {
    if rest.is_empty() {
        vec![rest]
    } else {
        rest.chunks(1).collect()
    }
}

fn body(dec: &BodyDecoder, pieces: &[&[u8]]) -> (Vec<u8>, Result<bool, protocol::Error>) {
    let mut dec = dec.clone();
    let mut data = Vec::new();
    for piece in pieces {
        let mut rest = *piece;
        loop {
            match dec.decode(rest) {
                Err(e) => return (data, Err(e)),
                Ok(step) => {
                    assert!(step.data.end <= step.consumed && step.consumed <= rest.len());
                    data.extend_from_slice(step.data(rest));
                    rest = &rest[step.consumed..];
                    if step.done {
                        return (data, Ok(true));
                    }
                    if rest.is_empty() {
                        break;
                    }
                }
            }
        }
    }
    (data, Ok(dec.is_done()))
}

#[derive(Debug, PartialEq)]
enum Mp {
    Start(Vec<u8>),
    Data(Vec<u8>),
    PartEnd,
    End,
}

fn multipart(m: &Multipart, pieces: &[&[u8]]) -> (Vec<Mp>, Result<(), protocol::MultipartError>) {
    let mut m = m.clone();
    let mut events: Vec<Mp> = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            let step = match m.feed(input) {
                Ok(step) => step,
                Err(e) => return (events, Err(e)),
            };
            assert!(step.consumed <= input.len());
            match step.event {
                MultipartEvent::NeedMore => break,
                MultipartEvent::PartStart(p) => events.push(Mp::Start(p.head.to_vec())),
                MultipartEvent::PartData(d) => match events.last_mut() {
                    Some(Mp::Data(acc)) => acc.extend_from_slice(d),
                    _ => events.push(Mp::Data(d.to_vec())),
                },
                MultipartEvent::PartEnd => events.push(Mp::PartEnd),
                MultipartEvent::End => {
                    // Nothing after the end is fed: in one piece the rest
                    // of that piece never is, so feeding the following
                    // pieces byte by byte (epilogue bytes still count
                    // toward the total) would compare different inputs.
                    events.push(Mp::End);
                    return (events, m.finish());
                }
            }
            input = &input[step.consumed..];
        }
    }
    (events, m.finish())
}

#[derive(Debug, PartialEq)]
enum Ws {
    Message(Vec<u8>),
    Control(Vec<u8>),
    Close,
}

fn ws(dec: &Decoder, pieces: &[&[u8]]) -> (Vec<Ws>, Option<protocol::ws::Error>, bool) {
    let mut dec = dec.clone();
    let mut events: Vec<Ws> = Vec::new();
    let mut message = Vec::new();
    for piece in pieces {
        let mut buf = piece.to_vec();
        let mut at = 0;
        loop {
            let step = match dec.decode(&mut buf[at..]) {
                Ok(step) => step,
                Err(e) => return (events, Some(e), dec.is_closed()),
            };
            assert!(step.consumed <= buf.len() - at);
            match step.event {
                None => break,
                Some(Event::Data(d)) => {
                    assert!(d.data.end <= step.consumed);
                    let data = &buf[at..][d.data.clone()];
                    // Only whole messages: a piece that fails UTF-8
                    // validation is not handed out, so partial data before
                    // an error depends on the split.
                    message.extend_from_slice(data);
                    if d.fin {
                        events.push(Ws::Message(std::mem::take(&mut message)));
                    }
                }
                Some(Event::Ping(p) | Event::Pong(p)) => {
                    assert!(p.len() <= 125);
                    events.push(Ws::Control(p.to_vec()));
                }
                Some(Event::Close(_)) => events.push(Ws::Close),
            }
            at += step.consumed;
        }
    }
    (events, None, dec.is_closed())
}

fuzz_target!(|input: &[u8]| {
    let [selector, rest @ ..] = input else {
        return;
    };
    let small = selector & 8 != 0;
    let huge = selector & 16 != 0;
    match selector % 5 {
        0 => {
            let Ok((state, rest)) = postcard::take_from_bytes::<BodyState>(rest) else {
                return;
            };
            let mut limits = Limits::default();
            if small {
                limits.max_body_size = 4096;
                limits.max_chunk_extension_size = 32;
                limits.max_trailer_size = 64;
            } else if huge {
                limits.max_body_size = u64::MAX;
                limits.max_chunk_extension_size = usize::MAX;
                limits.max_trailer_size = usize::MAX;
            }
            let Ok(dec) = BodyDecoder::import(state.clone(), &limits) else {
                return;
            };
            assert_eq!(dec.export(), state);
            let whole = body(&dec, &[rest]);
            let bytes = bytewise(rest);
            assert_eq!(body(&dec, &bytes), whole);
        }
        1 => {
            let Ok((state, rest)) = postcard::take_from_bytes::<MultipartState>(rest) else {
                return;
            };
            let mut limits = MultipartLimits::default();
            if small {
                limits.max_parts = 4;
                limits.max_part_header_size = 128;
                limits.max_total_size = 4096;
            } else if huge {
                limits.max_parts = usize::MAX;
                limits.max_part_header_size = usize::MAX;
                limits.max_total_size = u64::MAX;
            }
            let Ok(m) = Multipart::import(state.clone(), &limits) else {
                return;
            };
            assert_eq!(m.export(), state);
            let whole = multipart(&m, &[rest]);
            let bytes = bytewise(rest);
            assert_eq!(multipart(&m, &bytes), whole);
        }
        2 | 3 => {
            let Ok((state, rest)) = postcard::take_from_bytes::<DecoderState>(rest) else {
                return;
            };
            let mut config = Config::default();
            if small {
                (config.max_frame_size, config.max_message_size) = (64, 256);
            } else if huge {
                (config.max_frame_size, config.max_message_size) = (u64::MAX, u64::MAX);
            }
            let Ok(dec) = Decoder::import(state.clone(), &config, selector % 5 == 3) else {
                return;
            };
            assert_eq!(dec.export(), state);
            let whole = ws(&dec, &[rest]);
            let bytes = bytewise(rest);
            assert_eq!(ws(&dec, &bytes), whole);
        }
        _ => {
            let Ok((state, rest)) = postcard::take_from_bytes::<Utf8State>(rest) else {
                return;
            };
            let Ok(v) = Utf8Validator::import(state.clone()) else {
                return;
            };
            assert_eq!(v.export(), state);
            let mut whole = v;
            let mut bytewise = v;
            let a = whole.feed(rest).and_then(|()| whole.finish());
            let b = rest
                .iter()
                .try_for_each(|b| bytewise.feed(std::slice::from_ref(b)))
                .and_then(|()| bytewise.finish());
            assert_eq!(a, b);
            let mut carry = state.carry.clone();
            carry.extend_from_slice(rest);
            assert_eq!(a.is_ok(), std::str::from_utf8(&carry).is_ok());
        }
    }
});
