//! The WebSocket receive path — `Decoder`, then `Inflater` for compressed
//! messages — never panics, keeps its invariants (data ranges inside what
//! was consumed, control payloads ≤ 125 bytes, valid close codes, complete
//! text messages valid UTF-8, messages within the limit), and feeding a
//! stream in pieces gives exactly what feeding it whole gives: same
//! messages, control frames, error and close.
//!
//! Input layout: `[flags][k][k piece lengths][stream]`. `flags` bit 0:
//! permessage-deflate negotiated (RSV1 allowed, compressed messages
//! inflated); bit 1: client_no_context_takeover; bit 2: tiny limits (64-byte
//! frames, 256-byte messages) instead of small ones (4 KiB). With
//! `k % 8 == 0` the stream is fed byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ws::{Config, Decoder, Error, Event, Inflater, MessageKind, PerMessageDeflate};

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Message(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// (events, error, closed)
type Outcome = (Vec<Ev>, Option<Error>, bool);

fn run<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    config: &Config,
    deflate: Option<&PerMessageDeflate>,
) -> Outcome {
    let mut dec = Decoder::new(config, deflate.is_some());
    let mut inflater = deflate.map(Inflater::new);
    let mut events = Vec::new();
    let mut msg = Vec::new();
    for piece in pieces {
        // The decoder unmasks in place: each run works on its own copy.
        let mut buf = piece.to_vec();
        let mut at = 0;
        loop {
            let step = match dec.decode(&mut buf[at..]) {
                Ok(step) => step,
                Err(e) => {
                    assert_eq!(dec.decode(&mut []).err(), Some(e), "errors are sticky");
                    return (events, Some(e), false);
                }
            };
            let consumed = step.consumed;
            assert!(consumed <= buf.len() - at);
            match step.event {
                None => {
                    if !dec.is_closed() {
                        assert_eq!(at + consumed, buf.len(), "no event, input left");
                    }
                    break;
                }
                Some(Event::Data(d)) => {
                    assert!(d.data.end <= consumed);
                    assert!(!d.data.is_empty() || d.fin);
                    let data = &buf[at..][d.data.clone()];
                    if d.compressed {
                        let inflater = inflater.as_mut().expect("RSV1 only with deflate");
                        let max = config.max_message_size;
                        if let Err(e) = inflater.inflate(d.kind, data, d.fin, &mut msg, max) {
                            return (events, Some(e), false);
                        }
                    } else {
                        msg.extend_from_slice(data);
                    }
                    assert!(msg.len() as u64 <= config.max_message_size);
                    if d.fin {
                        if d.kind == MessageKind::Text {
                            assert!(std::str::from_utf8(&msg).is_ok(), "text not UTF-8");
                        }
                        events.push(Ev::Message(d.kind, std::mem::take(&mut msg)));
                    }
                }
                Some(Event::Ping(p)) => {
                    assert!(p.len() <= 125);
                    events.push(Ev::Ping(p.to_vec()));
                }
                Some(Event::Pong(p)) => {
                    assert!(p.len() <= 125);
                    events.push(Ev::Pong(p.to_vec()));
                }
                Some(Event::Close(c)) => {
                    if let Some((code, _)) = c {
                        assert!(code.is_valid());
                    }
                    events.push(Ev::Close(c.map(|(code, r)| (code.0, r.to_owned()))));
                    assert!(dec.is_closed());
                }
            }
            at += consumed;
        }
    }
    (events, None, dec.is_closed())
}

fuzz_target!(|input: &[u8]| {
    let [flags, k, rest @ ..] = input else {
        return;
    };
    let mut config = Config::default();
    (config.max_frame_size, config.max_message_size) = if flags & 4 != 0 {
        (64, 256)
    } else {
        (4096, 4096)
    };
    let deflate = (flags & 1 != 0).then_some(PerMessageDeflate {
        server_no_context_takeover: false,
        client_no_context_takeover: flags & 2 != 0,
        server_max_window_bits: None,
        client_max_window_bits: None,
    });
    let k = usize::from(k % 8).min(rest.len());
    let (lens, stream) = rest.split_at(k);

    let whole = run(std::iter::once(stream), &config, deflate.as_ref());
    let mut pieces = Vec::new();
    if k == 0 {
        pieces.extend(stream.chunks(1));
    } else {
        let mut left = stream;
        for &len in lens.iter().cycle() {
            if left.is_empty() {
                break;
            }
            let (a, b) = left.split_at((1 + usize::from(len) % 64).min(left.len()));
            pieces.push(a);
            left = b;
        }
    }
    assert_eq!(run(pieces.into_iter(), &config, deflate.as_ref()), whole);
});
