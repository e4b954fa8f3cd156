//! Close frames (RFC 6455 §5.5.1, §7.4): the [`CloseCode`] status codes,
//! which of them may appear on the wire, and [`parse_close_payload`] for a
//! received Close frame's body.

use super::utf8::validate_utf8;
use super::Error;

/// A Close frame status code (RFC 6455 §7.4). The named constants are the
/// codes of §7.4.1 and the IANA registry; any `u16` can be held, and
/// [`is_valid`](CloseCode::is_valid) says whether it may be sent or
/// received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigated
    /// away).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: a protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept (e.g. binary only).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: reserved — "no status code was present"; never on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: reserved — "closed abnormally, without a Close frame"; never on
    /// the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (e.g. invalid UTF-8 in
    /// a text message).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client only) the server did not negotiate a required
    /// extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: an unexpected condition prevented the server from fulfilling
    /// the request.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: a gateway or proxy got an invalid response upstream (IANA
    /// registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: reserved — "TLS handshake failed"; never on the wire.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether the code may appear in a Close frame, sent or received:
    /// 1000–1003, 1007–1014 (RFC 6455 §7.4.1 and the IANA registry), and
    /// 3000–4999 (registered libraries and frameworks, and private use,
    /// §7.4.2). 0–999 are unused, 1004 is reserved, 1005, 1006 and 1015 are
    /// reserved for reporting and MUST NOT be sent, and 1016–2999 and 5000+
    /// are unassigned.
    pub const fn is_valid(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

/// Parses the payload of a received Close frame (RFC 6455 §5.5.1): empty
/// (`None`), or a 2-byte big-endian status code followed by a UTF-8 reason.
///
/// A 1-byte payload is [`Error::InvalidClosePayload`], a code that may not
/// be on the wire ([`CloseCode::is_valid`]) is [`Error::InvalidCloseCode`]
/// (both close code 1002), and a reason that is not UTF-8 is
/// [`Error::InvalidUtf8`] (1007). The payload is at most 125 bytes when it
/// comes from the [`Decoder`](super::Decoder).
///
/// ```
/// use protocol::ws::{parse_close_payload, CloseCode, Error};
///
/// assert_eq!(parse_close_payload(b""), Ok(None));
/// assert_eq!(parse_close_payload(b"\x03\xe8bye"), Ok(Some((CloseCode::NORMAL, "bye"))));
/// assert_eq!(parse_close_payload(b"\x03"), Err(Error::InvalidClosePayload));
/// assert_eq!(parse_close_payload(b"\x03\xed"), Err(Error::InvalidCloseCode)); // 1005
/// ```
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, Error> {
    match payload {
        [] => Ok(None),
        [_] => Err(Error::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid() {
                return Err(Error::InvalidCloseCode);
            }
            Ok(Some((code, validate_utf8(reason)?)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes() {
        let valid: Vec<u16> = (0..=u16::MAX)
            .filter(|&c| CloseCode(c).is_valid())
            .collect();
        let expected: Vec<u16> = (1000..=1003)
            .chain(1007..=1014)
            .chain(3000..=4999)
            .collect();
        assert_eq!(valid, expected);
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(!CloseCode(c).is_valid(), "{c}");
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(
            parse_close_payload(b"\x0f\xa0"),
            Ok(Some((CloseCode(4000), "")))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xce\xba"),
            Ok(Some((CloseCode::NORMAL, "\u{3ba}")))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xce"),
            Err(Error::InvalidUtf8)
        );
        assert_eq!(
            parse_close_payload(b"\x00\x00"),
            Err(Error::InvalidCloseCode)
        );
        // The code is checked before the reason.
        assert_eq!(
            parse_close_payload(b"\x03\xee\xff"),
            Err(Error::InvalidCloseCode)
        );
        assert_eq!(u16::from(CloseCode::from(1001)), 1001);
    }
}
