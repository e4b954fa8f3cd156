//! # ws — WebSocket (RFC 6455) and permessage-deflate (RFC 7692), server side
//!
//! Everything of WebSocket that is pure bytes: no I/O, no `unsafe`, no
//! allocation on the receive path. network_server drives it; this module
//! owns the rules and decides which input is refused, with which HTTP
//! status (handshake) or close code (open connection).
//!
//! ## How the pieces fit together
//!
//! * [`accept`] — the opening handshake: checks a parsed
//!   [`RequestHead`](crate::RequestHead), computes `Sec-WebSocket-Accept`,
//!   reads the subprotocols and negotiates permessage-deflate
//!   ([`negotiate_deflate`], [`PerMessageDeflate`]).
//!   [`Handshake::write_response`] writes the 101 head; an [`Error`] gives
//!   the status and fields of a refusal.
//! * [`Decoder`] — the frames the client sends: fed any slices, it unmasks
//!   payloads in place ([`apply_mask`]) and returns [`Event`]s — message
//!   data as ranges of the input, Ping, Pong and Close with their
//!   payloads. Fragmentation, control-frame, UTF-8 ([`Utf8Validator`]),
//!   close-code ([`CloseCode`]) and size ([`Config`]) rules are enforced
//!   here.
//! * [`Inflater`] / [`Deflater`] — the permessage-deflate codec, with a hard
//!   limit on decompressed size.
//! * [`encode_header`], [`write_frame`], [`ControlFrame`] — what the server
//!   sends: headers on the stack, so that header and payload go out as two
//!   iovecs; control frames whole.
//!
//! ```
//! use protocol::ws::{write_client_frame, ControlFrame, Config, Decoder, Event, Opcode};
//!
//! let mut received = Vec::new();
//! write_client_frame(&mut received, true, false, Opcode::Ping, b"hi", [1, 2, 3, 4]);
//! write_client_frame(&mut received, true, false, Opcode::Text, b"echo me", [5, 6, 7, 8]);
//!
//! let mut decoder = Decoder::new(&Config::default(), false);
//! let mut input = &mut received[..];
//! let mut replies: Vec<Vec<u8>> = Vec::new();
//! loop {
//!     let step = decoder.decode(input)?;
//!     match step.event {
//!         None => break,
//!         Some(Event::Ping(payload)) => replies.push(ControlFrame::pong(payload)?.as_bytes().to_vec()),
//!         Some(Event::Data(d)) if d.fin => {
//!             let text = d.slice(input);
//!             let header = protocol::ws::encode_header(true, false, Opcode::Text, text.len() as u64);
//!             replies.push([header.as_bytes(), text].concat()); // two iovecs in the server
//!         }
//!         Some(_) => {}
//!     }
//!     input = &mut input[step.consumed..];
//! }
//! assert_eq!(replies, [&b"\x8a\x02hi"[..], b"\x81\x07echo me"]);
//! # Ok::<(), protocol::ws::Error>(())
//! ```
//!
//! `docs/websocket.md` in the repository records the decisions (what is
//! refused, how permessage-deflate is negotiated, window bits 8) with their
//! RFC sections, and the masking benchmark.

mod close;
mod config;
mod decoder;
mod deflate;
mod error;
mod extension;
mod frame;
mod handshake;
mod mask;
mod utf8;

pub use close::{parse_close_payload, CloseCode};
pub use config::{Config, DeflateConfig, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE};
pub use decoder::{Data, Decoder, DecoderPhase, DecoderState, Event, Step};
pub use deflate::{Deflater, Inflater};
pub use error::Error;
pub use extension::{negotiate_deflate, PerMessageDeflate};
pub use frame::{
    encode_header, write_client_frame, write_frame, ControlFrame, EncodedHeader, MessageKind,
    Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
pub use handshake::{accept, accept_key, is_websocket_request, Handshake, WEBSOCKET_GUID};
pub use mask::{apply_mask, apply_mask_reference};
pub use utf8::{validate_utf8, Utf8State, Utf8Validator};
