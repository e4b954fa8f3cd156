//! Frame layout (RFC 6455 §5.2) and the server's encoders.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               | Masking-key, if MASK set to 1 |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! The server sends unmasked frames (RFC 6455 §5.1). [`encode_header`] puts
//! a data frame's header in a 10-byte stack buffer, so the server writes it
//! and the payload as two iovecs without copying the payload;
//! [`ControlFrame`] holds a whole control frame (at most 127 bytes);
//! [`write_frame`] appends header and payload to one buffer, for a frame
//! encoded once and written to many clients. [`write_client_frame`] writes a
//! masked frame as a client would (tests, fuzz seeds, a client).

use super::{apply_mask, CloseCode, Error};

/// A frame's opcode (RFC 6455 §5.2). The reserved values 0x3–0x7 and
/// 0xB–0xF have no variant: receiving one is [`Error::UnknownOpcode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Opcode {
    /// 0x0: a later fragment of a text or binary message.
    Continuation,
    /// 0x1: the first (or only) frame of a text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: Close.
    Close,
    /// 0x9: Ping.
    Ping,
    /// 0xA: Pong.
    Pong,
}

impl Opcode {
    /// The opcode for the low 4 bits of `bits`, if it is not reserved.
    pub const fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits & 0x0F {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit value.
    pub const fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong: at most 125 bytes of payload, never fragmented
    /// (RFC 6455 §5.5).
    pub const fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// The type of a data message: text (UTF-8) or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MessageKind {
    /// Opcode 0x1: the message must be valid UTF-8 (RFC 6455 §5.6).
    Text,
    /// Opcode 0x2: arbitrary bytes.
    Binary,
}

impl MessageKind {
    /// The opcode of the first frame of such a message.
    pub const fn opcode(self) -> Opcode {
        match self {
            MessageKind::Text => Opcode::Text,
            MessageKind::Binary => Opcode::Binary,
        }
    }
}

/// The longest server (unmasked) frame header: 2 bytes plus a 64-bit
/// extended length.
pub const MAX_HEADER_LEN: usize = 10;

/// The longest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// An encoded frame header, on the stack: see [`encode_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedHeader {
    buf: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl EncodedHeader {
    /// The header's bytes: 2, 4 or 10 of them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for EncodedHeader {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The first two header bytes and the extended length, shared by the
/// encoders. Returns the header length (2, 4 or 10; the mask is not
/// included).
fn fill_header(buf: &mut [u8], fin: bool, rsv1: bool, opcode: Opcode, len: u64) -> usize {
    buf[0] = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.bits();
    if len < 126 {
        buf[1] = len as u8;
        2
    } else if len <= 0xFFFF {
        buf[1] = 126;
        buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        buf[1] = 127;
        buf[2..10].copy_from_slice(&len.to_be_bytes());
        10
    }
}

/// Encodes the header of an unmasked (server) frame with a payload of `len`
/// bytes, in the minimal length encoding (RFC 6455 §5.2).
///
/// `rsv1` marks the first frame of a compressed message (RFC 7692 §6). For
/// a control opcode, `fin` must be set and `len` at most 125 — use
/// [`ControlFrame`], which checks. `len` must be below 2^63.
///
/// ```
/// use protocol::ws::{encode_header, Opcode};
///
/// assert_eq!(encode_header(true, false, Opcode::Text, 5).as_bytes(), b"\x81\x05");
/// assert_eq!(encode_header(true, false, Opcode::Binary, 256).as_bytes(), b"\x82\x7e\x01\x00");
/// assert_eq!(
///     encode_header(false, true, Opcode::Text, 65536).as_bytes(),
///     b"\x41\x7f\x00\x00\x00\x00\x00\x01\x00\x00"
/// );
/// ```
pub fn encode_header(fin: bool, rsv1: bool, opcode: Opcode, len: u64) -> EncodedHeader {
    debug_assert!(len >> 63 == 0, "payload length must be below 2^63");
    let mut buf = [0; MAX_HEADER_LEN];
    let n = fill_header(&mut buf, fin, rsv1, opcode, len);
    EncodedHeader { buf, len: n as u8 }
}

/// Appends a whole unmasked frame — header and payload — to `out`: for a
/// frame that is encoded once and written to many clients (broadcast), or
/// small frames where one buffer is simpler than two iovecs.
///
/// ```
/// use protocol::ws::{write_frame, Opcode};
///
/// let mut out = Vec::new();
/// write_frame(&mut out, true, false, Opcode::Text, b"Hello");
/// assert_eq!(out, b"\x81\x05Hello"); // RFC 6455 §5.7
/// ```
pub fn write_frame(out: &mut Vec<u8>, fin: bool, rsv1: bool, opcode: Opcode, payload: &[u8]) {
    let header = encode_header(fin, rsv1, opcode, payload.len() as u64);
    out.reserve(header.as_bytes().len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
}

/// Appends a whole masked frame, as a client sends it, to `out`: the header
/// with the MASK bit and `mask`, then the payload XORed with it. The
/// server never sends these (RFC 6455 §5.1); they are for tests, fuzz
/// seeds and a client.
///
/// ```
/// use protocol::ws::{write_client_frame, Opcode};
///
/// let mut out = Vec::new();
/// write_client_frame(&mut out, true, false, Opcode::Text, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
/// assert_eq!(out, b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"); // RFC 6455 §5.7
/// ```
pub fn write_client_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: [u8; 4],
) {
    let mut buf = [0; MAX_HEADER_LEN + 4];
    let n = fill_header(&mut buf, fin, rsv1, opcode, payload.len() as u64);
    buf[1] |= 0x80;
    buf[n..n + 4].copy_from_slice(&mask);
    out.reserve(n + 4 + payload.len());
    out.extend_from_slice(&buf[..n + 4]);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
}

/// A complete unmasked control frame (Close, Ping or Pong) on the stack:
/// header and payload together, at most 127 bytes, written as one iovec.
///
/// ```
/// use protocol::ws::{CloseCode, ControlFrame};
///
/// assert_eq!(ControlFrame::ping(b"Hello")?.as_bytes(), b"\x89\x05Hello"); // RFC 6455 §5.7
/// assert_eq!(ControlFrame::close(CloseCode::NORMAL, "bye")?.as_bytes(), b"\x88\x05\x03\xe8bye");
/// assert_eq!(ControlFrame::close_empty().as_bytes(), b"\x88\x00");
/// # Ok::<(), protocol::ws::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ControlFrame {
    buf: [u8; 2 + MAX_CONTROL_PAYLOAD],
    len: u8,
}

impl std::fmt::Debug for ControlFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ControlFrame")
            .field(&self.as_bytes())
            .finish()
    }
}

impl ControlFrame {
    fn new(opcode: Opcode, parts: &[&[u8]]) -> Result<ControlFrame, Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MAX_CONTROL_PAYLOAD {
            return Err(Error::ControlPayloadTooLarge);
        }
        let mut buf = [0; 2 + MAX_CONTROL_PAYLOAD];
        buf[0] = 0x80 | opcode.bits();
        buf[1] = len as u8;
        let mut at = 2;
        for part in parts {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Ok(ControlFrame { buf, len: at as u8 })
    }

    /// A Ping with `payload` (at most 125 bytes, else
    /// [`Error::ControlPayloadTooLarge`]).
    pub fn ping(payload: &[u8]) -> Result<ControlFrame, Error> {
        ControlFrame::new(Opcode::Ping, &[payload])
    }

    /// A Pong with `payload`: the answer to a Ping carries the Ping's
    /// payload (RFC 6455 §5.5.3). At most 125 bytes.
    pub fn pong(payload: &[u8]) -> Result<ControlFrame, Error> {
        ControlFrame::new(Opcode::Pong, &[payload])
    }

    /// A Close with a status code and a UTF-8 reason of at most 123 bytes
    /// (RFC 6455 §5.5.1). A code that may not be sent (1005, 1006, 1015, and
    /// everything [`CloseCode::is_valid`] refuses) is
    /// [`Error::InvalidCloseCode`]; a longer reason is
    /// [`Error::ControlPayloadTooLarge`].
    pub fn close(code: CloseCode, reason: &str) -> Result<ControlFrame, Error> {
        if !code.is_valid() {
            return Err(Error::InvalidCloseCode);
        }
        ControlFrame::new(Opcode::Close, &[&code.0.to_be_bytes(), reason.as_bytes()])
    }

    /// A Close with no body, which the peer reports as 1005 (no status).
    pub fn close_empty() -> ControlFrame {
        let mut buf = [0; 2 + MAX_CONTROL_PAYLOAD];
        buf[0] = 0x80 | Opcode::Close.bits();
        ControlFrame { buf, len: 2 }
    }

    /// The whole frame: header and payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for ControlFrame {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip() {
        for bits in 0..16u8 {
            match Opcode::from_bits(bits) {
                Some(op) => {
                    assert_eq!(op.bits(), bits);
                    assert_eq!(op.is_control(), bits >= 8);
                }
                None => assert!(matches!(bits, 3..=7 | 0xB..=0xF)),
            }
        }
    }

    #[test]
    fn header_lengths_are_minimal() {
        for (len, expected) in [
            (0u64, &b"\x82\x00"[..]),
            (125, b"\x82\x7d"),
            (126, b"\x82\x7e\x00\x7e"),
            (65535, b"\x82\x7e\xff\xff"),
            (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
            (1 << 62, b"\x82\x7f\x40\x00\x00\x00\x00\x00\x00\x00"),
        ] {
            assert_eq!(
                encode_header(true, false, Opcode::Binary, len).as_bytes(),
                expected
            );
        }
        assert_eq!(
            encode_header(false, false, Opcode::Continuation, 1).as_ref(),
            b"\x00\x01"
        );
    }

    #[test]
    fn control_frames() {
        assert_eq!(ControlFrame::pong(&[7; 125]).unwrap().as_bytes().len(), 127);
        assert_eq!(
            ControlFrame::ping(&[7; 126]),
            Err(Error::ControlPayloadTooLarge)
        );
        let reason = "x".repeat(123);
        assert_eq!(
            ControlFrame::close(CloseCode(4999), &reason)
                .unwrap()
                .as_bytes()[..4],
            *b"\x88\x7d\x13\x87"
        );
        assert_eq!(
            ControlFrame::close(CloseCode::NORMAL, &format!("{reason}x")),
            Err(Error::ControlPayloadTooLarge)
        );
        for bad in [0, 999, 1005, 1006, 1015, 2999, 5000] {
            assert_eq!(
                ControlFrame::close(CloseCode(bad), ""),
                Err(Error::InvalidCloseCode)
            );
        }
        assert!(format!("{:?}", ControlFrame::close_empty()).contains("136, 0"));
    }
}
