//! The WebSocket module's one error type. A handshake error is answered with
//! an HTTP status ([`Error::status`]); an error on an open connection is
//! answered with a Close frame carrying [`Error::close_code`], after which
//! the connection is closed (RFC 6455 §7.1.7, "_Fail the WebSocket
//! Connection_").

use std::fmt;

use super::CloseCode;

/// Why a WebSocket handshake, a frame, a message or a compressed payload was
/// rejected, or why something could not be written.
///
/// Variants are grouped by where they arise. Handshake errors come only from
/// [`accept`](super::accept) and [`Handshake::write_response`](super::Handshake::write_response)
/// and are answered with [`status`](Error::status) (plus
/// [`response_headers`](Error::response_headers)); every other error comes
/// from the [`Decoder`](super::Decoder), the [`Inflater`](super::Inflater)
/// or the encoders and is answered with a Close frame carrying
/// [`close_code`](Error::close_code). `docs/websocket.md` lists the RFC
/// section behind each one.
///
/// Serializable, as part of the parser states (see
/// [`STATE_VERSION`](crate::STATE_VERSION)): the encoding numbers the
/// variants in order, so add new ones at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Error {
    // ----- opening handshake (HTTP status) ------------------------------
    /// The upgrade request's method is not GET (RFC 6455 §4.2.1 item 1).
    NotGet,
    /// The upgrade request is not HTTP/1.1 (RFC 6455 §4.2.1 item 1; an
    /// HTTP/1.0 request cannot upgrade, RFC 9110 §7.8).
    NotHttp11,
    /// No `Upgrade` field lists `websocket` (RFC 6455 §4.2.1 item 3).
    NotWebSocketUpgrade,
    /// No `Connection` field lists the `upgrade` option (RFC 6455 §4.2.1
    /// item 4).
    MissingConnectionUpgrade,
    /// There is no `Sec-WebSocket-Key` field (RFC 6455 §4.2.1 item 5).
    MissingKey,
    /// `Sec-WebSocket-Key` is not the base64 encoding of 16 bytes, or the
    /// field appears more than once (RFC 6455 §4.2.1 item 5, §11.3.1).
    InvalidKey,
    /// There is no `Sec-WebSocket-Version` field (RFC 6455 §4.2.1 item 6).
    MissingVersion,
    /// `Sec-WebSocket-Version` is not exactly `13`: answered with 426 and
    /// `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2 item 4, §4.4).
    UnsupportedVersion,
    /// `Sec-WebSocket-Protocol` is not a comma list of tokens
    /// (RFC 6455 §4.3, §11.3.4).
    InvalidProtocolHeader,
    /// `Sec-WebSocket-Extensions` does not follow the grammar of RFC 6455
    /// §9.1 (`extension *( ";" param [ "=" (token / quoted-string) ] )`).
    InvalidExtensionsHeader,
    /// The server chose a subprotocol the client did not offer, which
    /// RFC 6455 §4.2.2 item 5 forbids (a bug in the caller: 500).
    ProtocolNotOffered,
    /// A field given to [`Handshake::write_response`](super::Handshake::write_response)
    /// is not `token: field-value`, or is one the writer owns (`Upgrade`,
    /// `Connection`, `Sec-WebSocket-*`, framing fields) (a bug in the
    /// caller: 500).
    InvalidResponseHeader,

    // ----- frames (close code 1002 unless noted) ------------------------
    /// RSV2 or RSV3 is set, or RSV1 is set without permessage-deflate, on a
    /// continuation frame or on a control frame (RFC 6455 §5.2, RFC 7692
    /// §6.1).
    ReservedBits,
    /// The opcode is one of the reserved values 0x3–0x7 or 0xB–0xF
    /// (RFC 6455 §5.2).
    UnknownOpcode,
    /// A frame from the client is not masked (RFC 6455 §5.1: the server MUST
    /// close the connection).
    UnmaskedFrame,
    /// A control frame has FIN clear (RFC 6455 §5.5: control frames MUST
    /// NOT be fragmented).
    FragmentedControlFrame,
    /// A control frame's payload is longer than 125 bytes (RFC 6455 §5.5).
    ControlFrameTooLarge,
    /// A payload length is not encoded in the minimal number of bytes
    /// (RFC 6455 §5.2: "the minimal number of bytes MUST be used").
    NonMinimalLength,
    /// A 64-bit payload length has its most significant bit set
    /// (RFC 6455 §5.2).
    LengthOverflow,
    /// A frame's payload is larger than
    /// [`Config::max_frame_size`](super::Config::max_frame_size) (close
    /// code 1009).
    FrameTooLarge,

    // ----- messages -------------------------------------------------------
    /// A continuation frame arrived with no fragmented message open
    /// (RFC 6455 §5.4).
    UnexpectedContinuation,
    /// A text or binary frame arrived while a fragmented message was still
    /// open (RFC 6455 §5.4: only control frames may be interleaved).
    ExpectedContinuation,
    /// A message, or a close reason, is larger than
    /// [`Config::max_message_size`](super::Config::max_message_size)
    /// (close code 1009, RFC 6455 §7.4.1).
    MessageTooLarge,
    /// A text message or a close reason is not valid UTF-8 (close code
    /// 1007, RFC 6455 §8.1, §5.5.1).
    InvalidUtf8,
    /// A Close frame's payload is one byte long (RFC 6455 §5.5.1: empty, or
    /// a 2-byte code and an optional reason).
    InvalidClosePayload,
    /// A Close frame carries a status code that may not appear on the wire
    /// (RFC 6455 §7.4.1–§7.4.2: 0–999, 1004–1006, 1015–2999, 5000+); also
    /// returned when asked to send one.
    InvalidCloseCode,

    // ----- permessage-deflate ----------------------------------------------
    /// A compressed message is not valid raw DEFLATE data (RFC 7692 §7.2.2;
    /// close code 1007).
    InvalidCompressedData,
    /// The compressor reported an error (close code 1011; it does not happen
    /// with valid parameters).
    CompressionFailed,

    // ----- encoders ---------------------------------------------------------
    /// A control frame to send would have a payload longer than 125 bytes
    /// (a Close reason longer than 123 bytes) (RFC 6455 §5.5).
    ControlPayloadTooLarge,
}

impl Error {
    /// The HTTP status to answer a handshake error with.
    ///
    /// | status | errors |
    /// | --- | --- |
    /// | 400 | every malformed upgrade request |
    /// | 426 | [`UnsupportedVersion`](Error::UnsupportedVersion), with [`response_headers`](Error::response_headers) |
    /// | 500 | [`ProtocolNotOffered`](Error::ProtocolNotOffered), [`InvalidResponseHeader`](Error::InvalidResponseHeader) (the caller's bug) |
    ///
    /// Errors on an open connection have no HTTP answer; for them this is
    /// 400.
    pub const fn status(&self) -> u16 {
        match self {
            Error::UnsupportedVersion => 426,
            Error::ProtocolNotOffered | Error::InvalidResponseHeader => 500,
            _ => 400,
        }
    }

    /// Fields to add to the HTTP error response: `Sec-WebSocket-Version: 13`
    /// for [`UnsupportedVersion`](Error::UnsupportedVersion) (RFC 6455 §4.4),
    /// none otherwise. The slice fits
    /// [`ResponseHead::headers`](crate::ResponseHead::headers).
    pub const fn response_headers(&self) -> &'static [(&'static str, &'static [u8])] {
        match self {
            Error::UnsupportedVersion => &[("Sec-WebSocket-Version", b"13")],
            _ => &[],
        }
    }

    /// Whether this error comes from the opening handshake (answered with
    /// [`status`](Error::status)) rather than from an open connection
    /// (answered with [`close_code`](Error::close_code)).
    pub const fn is_handshake(&self) -> bool {
        matches!(
            self,
            Error::NotGet
                | Error::NotHttp11
                | Error::NotWebSocketUpgrade
                | Error::MissingConnectionUpgrade
                | Error::MissingKey
                | Error::InvalidKey
                | Error::MissingVersion
                | Error::UnsupportedVersion
                | Error::InvalidProtocolHeader
                | Error::InvalidExtensionsHeader
                | Error::ProtocolNotOffered
                | Error::InvalidResponseHeader
        )
    }

    /// The status code of the Close frame to send before closing the
    /// connection (RFC 6455 §7.4.1).
    ///
    /// | code | errors |
    /// | --- | --- |
    /// | 1002 protocol error | every framing and fragmentation error, bad close payloads |
    /// | 1007 invalid payload data | [`InvalidUtf8`](Error::InvalidUtf8), [`InvalidCompressedData`](Error::InvalidCompressedData) |
    /// | 1009 message too big | [`FrameTooLarge`](Error::FrameTooLarge), [`MessageTooLarge`](Error::MessageTooLarge) |
    /// | 1011 internal error | [`CompressionFailed`](Error::CompressionFailed), [`ControlPayloadTooLarge`](Error::ControlPayloadTooLarge) |
    ///
    /// Handshake errors happen before there is a WebSocket connection; for
    /// them this is 1002.
    pub const fn close_code(&self) -> CloseCode {
        match self {
            Error::InvalidUtf8 | Error::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            Error::FrameTooLarge | Error::MessageTooLarge => CloseCode::MESSAGE_TOO_BIG,
            Error::CompressionFailed | Error::ControlPayloadTooLarge => CloseCode::INTERNAL_ERROR,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A short lowercase description, the same text as [`fmt::Display`].
    pub const fn as_str(&self) -> &'static str {
        match self {
            Error::NotGet => "websocket upgrade is not a GET",
            Error::NotHttp11 => "websocket upgrade is not HTTP/1.1",
            Error::NotWebSocketUpgrade => "Upgrade does not list websocket",
            Error::MissingConnectionUpgrade => "Connection does not list upgrade",
            Error::MissingKey => "missing Sec-WebSocket-Key",
            Error::InvalidKey => "invalid Sec-WebSocket-Key",
            Error::MissingVersion => "missing Sec-WebSocket-Version",
            Error::UnsupportedVersion => "unsupported Sec-WebSocket-Version",
            Error::InvalidProtocolHeader => "invalid Sec-WebSocket-Protocol",
            Error::InvalidExtensionsHeader => "invalid Sec-WebSocket-Extensions",
            Error::ProtocolNotOffered => "subprotocol not offered by the client",
            Error::InvalidResponseHeader => "invalid handshake response field",
            Error::ReservedBits => "reserved bits set",
            Error::UnknownOpcode => "reserved opcode",
            Error::UnmaskedFrame => "client frame not masked",
            Error::FragmentedControlFrame => "fragmented control frame",
            Error::ControlFrameTooLarge => "control frame payload over 125 bytes",
            Error::NonMinimalLength => "payload length not minimally encoded",
            Error::LengthOverflow => "64-bit payload length with the top bit set",
            Error::FrameTooLarge => "frame too large",
            Error::UnexpectedContinuation => "continuation frame without a message",
            Error::ExpectedContinuation => "new message inside a fragmented message",
            Error::MessageTooLarge => "message too large",
            Error::InvalidUtf8 => "invalid UTF-8",
            Error::InvalidClosePayload => "one-byte close payload",
            Error::InvalidCloseCode => "invalid close code",
            Error::InvalidCompressedData => "invalid compressed data",
            Error::CompressionFailed => "compression failed",
            Error::ControlPayloadTooLarge => "control payload over 125 bytes",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        assert_eq!(Error::UnsupportedVersion.status(), 426);
        assert_eq!(
            Error::UnsupportedVersion.response_headers(),
            &[("Sec-WebSocket-Version", &b"13"[..])]
        );
        assert_eq!(Error::MissingVersion.status(), 400);
        assert!(Error::MissingVersion.response_headers().is_empty());
        assert_eq!(Error::ProtocolNotOffered.status(), 500);
        assert!(Error::InvalidKey.is_handshake());
        assert!(!Error::InvalidUtf8.is_handshake());
        assert_eq!(Error::InvalidUtf8.close_code().0, 1007);
        assert_eq!(Error::MessageTooLarge.close_code().0, 1009);
        assert_eq!(Error::FrameTooLarge.close_code().0, 1009);
        assert_eq!(Error::UnknownOpcode.close_code().0, 1002);
        assert_eq!(Error::CompressionFailed.close_code().0, 1011);
        assert_eq!(Error::InvalidUtf8.to_string(), "invalid UTF-8");
        assert!(crate::reason_phrase(426).is_some());
    }
}
