//! The opening handshake, server side (RFC 6455 §4.2): [`accept`] checks
//! that a parsed request head is a valid WebSocket upgrade, computes
//! `Sec-WebSocket-Accept`, reads the offered subprotocols and negotiates
//! permessage-deflate; [`Handshake::write_response`] writes the
//! `101 Switching Protocols` head.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::fields::{is_field_value_byte, is_token, list_members};
use crate::{Header, RequestHead, Version};

use super::{negotiate_deflate, Config, Error, PerMessageDeflate};

/// The GUID appended to the client's key before hashing (RFC 6455 §1.3).
pub const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: the base64
/// of the SHA-1 of the key (as received, without surrounding whitespace)
/// followed by [`WEBSOCKET_GUID`] (RFC 6455 §4.2.2 item 5.4).
///
/// ```
/// // RFC 6455 §1.3
/// let accept = protocol::ws::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(&accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let digest = Sha1::new()
        .chain_update(key)
        .chain_update(WEBSOCKET_GUID)
        .finalize();
    let mut out = [0; 28];
    let n = BASE64
        .encode_slice(digest, &mut out)
        .expect("20 bytes encode to 28");
    debug_assert_eq!(n, 28);
    out
}

/// Whether a request asks for a WebSocket: one of its `Upgrade` fields
/// lists `websocket` (ASCII case-insensitive). Such a request goes to
/// [`accept`], which answers the rest (method, version, Connection, key);
/// any other request is plain HTTP.
pub fn is_websocket_request(head: &RequestHead<'_, '_>) -> bool {
    head.headers_named("upgrade")
        .flat_map(list_members)
        .any(|p| p.eq_ignore_ascii_case(b"websocket"))
}

/// An accepted opening handshake. Borrows the request head's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handshake<'b, 'h> {
    /// The `Sec-WebSocket-Accept` value (ASCII base64).
    pub accept_key: [u8; 28],
    /// The agreed permessage-deflate parameters, if the server offers
    /// compression ([`Config::deflate`]) and the client made an acceptable
    /// offer. Set it to `None` to decline. Decoders and codecs are built
    /// from it.
    pub deflate: Option<PerMessageDeflate>,
    /// The `Origin` field, for the application to check (RFC 6455 §10.2);
    /// browsers always send it.
    pub origin: Option<&'b [u8]>,
    /// The request's fields, for [`protocols`](Handshake::protocols).
    headers: &'h [Header<'b>],
}

/// Checks that `head` is a valid WebSocket upgrade request (RFC 6455
/// §4.2.1) and prepares the answer.
///
/// In order: GET ([`Error::NotGet`]), HTTP/1.1 ([`Error::NotHttp11`]), an
/// `Upgrade` listing `websocket` ([`Error::NotWebSocketUpgrade`]), a
/// `Connection` listing `upgrade` ([`Error::MissingConnectionUpgrade`]),
/// `Sec-WebSocket-Version` exactly `13` ([`Error::MissingVersion`] → 400,
/// anything else [`Error::UnsupportedVersion`] → 426), one
/// `Sec-WebSocket-Key` that is the base64 of 16 bytes ([`Error::MissingKey`],
/// [`Error::InvalidKey`]), `Sec-WebSocket-Protocol` a list of tokens
/// ([`Error::InvalidProtocolHeader`]), and — when `config.deflate` is set —
/// `Sec-WebSocket-Extensions` well formed
/// ([`Error::InvalidExtensionsHeader`]). Tokens compare ASCII
/// case-insensitively. Host was already required by the HTTP parser.
///
/// ```
/// use protocol::{header_storage, parse_request, Limits, Parsed};
/// use protocol::ws::{accept, Config};
///
/// let request = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n";
/// let mut headers = header_storage::<16>();
/// let Ok(Parsed::Complete(head, _)) = parse_request(request, &mut headers, &Limits::default())
/// else { unreachable!() };
/// let handshake = accept(&head, &Config::default())?;
/// let protocol = handshake.select_protocol(&["superchat"]);
/// let mut out = Vec::new();
/// handshake.write_response(protocol, &[], &mut out)?;
/// assert_eq!(
///     out,
///     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: superchat\r\n\r\n"
/// );
/// # Ok::<(), protocol::ws::Error>(())
/// ```
pub fn accept<'b, 'h>(
    head: &RequestHead<'b, 'h>,
    config: &Config,
) -> Result<Handshake<'b, 'h>, Error> {
    if head.method != "GET" {
        return Err(Error::NotGet);
    }
    if head.version != Version::Http11 {
        return Err(Error::NotHttp11);
    }
    if !is_websocket_request(head) {
        return Err(Error::NotWebSocketUpgrade);
    }
    if !head
        .headers_named("connection")
        .flat_map(list_members)
        .any(|o| o.eq_ignore_ascii_case(b"upgrade"))
    {
        return Err(Error::MissingConnectionUpgrade);
    }

    let mut versions = head.headers_named("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (None, _) => return Err(Error::MissingVersion),
        (Some(b"13"), None) => {}
        _ => return Err(Error::UnsupportedVersion),
    }

    let mut keys = head.headers_named("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (None, _) => return Err(Error::MissingKey),
        (Some(key), None) => key,
        (Some(_), Some(_)) => return Err(Error::InvalidKey),
    };
    // 16 bytes are 24 base64 characters, the last two `==`. The standard
    // engine also refuses non-zero padding bits (a non-canonical key).
    let mut nonce = [0; 18];
    if key.len() != 24 || BASE64.decode_slice(key, &mut nonce) != Ok(16) {
        return Err(Error::InvalidKey);
    }

    if !head
        .headers_named("sec-websocket-protocol")
        .flat_map(list_members)
        .all(is_token)
    {
        return Err(Error::InvalidProtocolHeader);
    }

    let deflate = match &config.deflate {
        Some(deflate) => {
            negotiate_deflate(head.headers_named("sec-websocket-extensions"), deflate)?
        }
        None => None,
    };

    Ok(Handshake {
        accept_key: accept_key(key),
        deflate,
        origin: head.header("origin"),
        headers: head.headers,
    })
}

impl<'b> Handshake<'b, '_> {
    /// [`accept_key`](Handshake::accept_key) as a `&str`.
    pub fn accept_key_str(&self) -> &str {
        std::str::from_utf8(&self.accept_key).expect("base64 is ASCII")
    }

    /// The subprotocols the client offered in `Sec-WebSocket-Protocol`, in
    /// its order of preference (RFC 6455 §4.1, §11.3.4). Already checked to
    /// be tokens.
    pub fn protocols(&self) -> impl Iterator<Item = &'b str> + '_ {
        self.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
            .flat_map(|h| list_members(h.value))
            .filter_map(|p| std::str::from_utf8(p).ok())
    }

    /// The first subprotocol in the client's order that is also in
    /// `supported` (exact comparison), to pass to
    /// [`write_response`](Handshake::write_response).
    pub fn select_protocol(&self, supported: &[&str]) -> Option<&'b str> {
        self.protocols().find(|p| supported.contains(p))
    }

    /// Appends the `101 Switching Protocols` response head to `out`:
    /// `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, then
    /// `Sec-WebSocket-Protocol` if `protocol` is given (it must be one the
    /// client offered, else [`Error::ProtocolNotOffered`]),
    /// `Sec-WebSocket-Extensions` if [`deflate`](Handshake::deflate) is set,
    /// and the caller's `headers` (e.g. `Set-Cookie`), which must be
    /// `token: field-value` and none of the fields above or the framing
    /// fields ([`Error::InvalidResponseHeader`]). Nothing is appended on
    /// error.
    pub fn write_response(
        &self,
        protocol: Option<&str>,
        headers: &[(&str, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if let Some(p) = protocol {
            if !self.protocols().any(|offered| offered == p) {
                return Err(Error::ProtocolNotOffered);
            }
        }
        for (name, value) in headers {
            let owned = [
                "upgrade",
                "connection",
                "content-length",
                "transfer-encoding",
            ]
            .iter()
            .any(|o| name.eq_ignore_ascii_case(o))
                || name
                    .get(..14)
                    .is_some_and(|p| p.eq_ignore_ascii_case("sec-websocket-"));
            if owned || !is_token(name.as_bytes()) || !value.iter().all(|&b| is_field_value_byte(b))
            {
                return Err(Error::InvalidResponseHeader);
            }
        }
        out.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Accept: ",
        );
        out.extend_from_slice(&self.accept_key);
        out.extend_from_slice(b"\r\n");
        if let Some(p) = protocol {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(deflate) = &self.deflate {
            out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
            deflate.write_response_value(out);
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}
