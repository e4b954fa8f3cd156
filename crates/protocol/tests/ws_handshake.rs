//! The WebSocket opening handshake: which upgrade requests are accepted and
//! which are refused with which status (a table of each), the accept key,
//! subprotocols, the 101 response, and permessage-deflate negotiation (a
//! table of offers and the response each gets).

use protocol::ws::{
    accept, accept_key, is_websocket_request, negotiate_deflate, Config, DeflateConfig, Error,
    PerMessageDeflate,
};
use protocol::{header_storage, parse_request, Limits, Parsed, RequestHead};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &[u8; 28] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Parses `request` and runs `f` on its head.
fn with_head<T>(request: &str, f: impl FnOnce(&RequestHead<'_, '_>) -> T) -> T {
    let mut headers = header_storage::<32>();
    match parse_request(request.as_bytes(), &mut headers, &Limits::default()) {
        Ok(Parsed::Complete(head, n)) => {
            assert_eq!(n, request.len());
            f(&head)
        }
        other => panic!("not a complete head: {other:?}\n{request}"),
    }
}

/// A valid upgrade request with `fields` added after the standard ones.
fn upgrade(fields: &str) -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{fields}\r\n"
    )
}

/// The 101 response to `request` (no subprotocol), or the error.
fn respond(request: &str, config: &Config) -> Result<String, Error> {
    with_head(request, |head| {
        let hs = accept(head, config)?;
        assert_eq!(&hs.accept_key, ACCEPT);
        let mut out = Vec::new();
        hs.write_response(None, &[], &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    })
}

#[test]
fn rfc_6455_example() {
    assert_eq!(&accept_key(KEY.as_bytes()), ACCEPT);
    let request = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    with_head(request, |head| {
        assert!(is_websocket_request(head));
        let hs = accept(head, &Config::default()).unwrap();
        assert_eq!(hs.accept_key_str(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(hs.origin, Some(&b"http://example.com"[..]));
        assert_eq!(hs.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
        assert_eq!(hs.select_protocol(&["superchat", "chat"]), Some("chat"));
        assert_eq!(hs.select_protocol(&["other"]), None);
        assert_eq!(hs.deflate, None);
        let mut out = Vec::new();
        hs.write_response(Some("chat"), &[("Set-Cookie", b"a=b")], &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\
             Set-Cookie: a=b\r\n\r\n"
        );
    });
}

#[test]
fn accepted_requests() {
    let plain = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let table: &[&str] = &[
        &upgrade(""),
        // Case-insensitive tokens, lists, several lines.
        "GET / HTTP/1.1\r\nHost: x\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c, websocket\r\nConnection: close\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        "GET /?q=1 HTTP/1.1\r\nHost: x\r\nUpgrade: foo/2\r\nUpgrade: websocket\r\n\
         Connection: upgrade\r\nSec-WebSocket-Key:   dGhlIHNhbXBsZSBub25jZQ==  \r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        &upgrade("Sec-WebSocket-Protocol: a, , b\r\nSec-WebSocket-Protocol: c\r\n"),
        &upgrade("Sec-WebSocket-Protocol:\r\n"),
        // Extensions are not even parsed when the server offers none.
        &upgrade("Sec-WebSocket-Extensions: permessage-deflate; x=\"\r\n"),
        &upgrade("Origin: https://a.example\r\nCookie: x=y\r\n"),
    ];
    for request in table {
        assert_eq!(
            respond(request, &Config::default()).as_deref(),
            Ok(plain),
            "{request}"
        );
    }
}

#[test]
fn refused_requests() {
    let v13 = "Sec-WebSocket-Version: 13\r\n";
    let key = format!("Sec-WebSocket-Key: {KEY}\r\n");
    let table: &[(String, Error, u16)] = &[
        (upgrade("").replacen("GET", "POST", 1), Error::NotGet, 400),
        (upgrade("").replacen("GET", "get", 1), Error::NotGet, 400),
        (
            upgrade("").replacen("HTTP/1.1", "HTTP/1.0", 1),
            Error::NotHttp11,
            400,
        ),
        (
            upgrade("").replacen("Upgrade: websocket", "Upgrade: h2c", 1),
            Error::NotWebSocketUpgrade,
            400,
        ),
        (
            upgrade("").replacen("Upgrade: websocket", "Upgrade: websocket/13", 1),
            Error::NotWebSocketUpgrade,
            400,
        ),
        (
            upgrade("").replacen("Upgrade: websocket\r\n", "", 1),
            Error::NotWebSocketUpgrade,
            400,
        ),
        (
            upgrade("").replacen("Connection: Upgrade", "Connection: keep-alive", 1),
            Error::MissingConnectionUpgrade,
            400,
        ),
        (
            upgrade("").replacen("Connection: Upgrade\r\n", "", 1),
            Error::MissingConnectionUpgrade,
            400,
        ),
        (upgrade("").replacen(v13, "", 1), Error::MissingVersion, 400),
        (
            upgrade("").replacen(v13, "Sec-WebSocket-Version: 8\r\n", 1),
            Error::UnsupportedVersion,
            426,
        ),
        (
            upgrade("").replacen(v13, "Sec-WebSocket-Version: 13, 8\r\n", 1),
            Error::UnsupportedVersion,
            426,
        ),
        (
            upgrade("").replacen(v13, "Sec-WebSocket-Version: 013\r\n", 1),
            Error::UnsupportedVersion,
            426,
        ),
        (upgrade(v13), Error::UnsupportedVersion, 426),
        // The version is checked before the key (another version may have
        // another key format).
        (
            upgrade("")
                .replacen(v13, "Sec-WebSocket-Version: 7\r\n", 1)
                .replacen(&key, "", 1),
            Error::UnsupportedVersion,
            426,
        ),
        (upgrade("").replacen(&key, "", 1), Error::MissingKey, 400),
        (upgrade(&key), Error::InvalidKey, 400),
        (
            upgrade("").replacen(KEY, "dGhlIHNhbXBsZSBub25jZQ", 1),
            Error::InvalidKey,
            400,
        ),
        (
            upgrade("").replacen(KEY, "dGhlIHNhbXBsZSBub25jZR==", 1),
            Error::InvalidKey,
            400,
        ),
        (
            // 17 bytes.
            upgrade("").replacen(KEY, "dGhlIHNhbXBsZSBub25jZQE=", 1),
            Error::InvalidKey,
            400,
        ),
        (
            upgrade("").replacen(KEY, "dGhlIHNhbXBsZSBub25j", 1),
            Error::InvalidKey,
            400,
        ),
        (
            upgrade("").replacen(KEY, "dGhlIHNhbXBsZSBub25jZQ==dGhl", 1),
            Error::InvalidKey,
            400,
        ),
        (
            upgrade("").replacen(KEY, "dGhlIHNhbXBsZSBub25j*Q==", 1),
            Error::InvalidKey,
            400,
        ),
        (
            upgrade("").replacen(KEY, "dGhlIHNhbXBsZSBub25jZQ=\"", 1),
            Error::InvalidKey,
            400,
        ),
        (
            upgrade("Sec-WebSocket-Protocol: chat, super chat\r\n"),
            Error::InvalidProtocolHeader,
            400,
        ),
        (
            upgrade("Sec-WebSocket-Protocol: \"chat\"\r\n"),
            Error::InvalidProtocolHeader,
            400,
        ),
    ];
    let mut deflate = Config::default();
    deflate.deflate = Some(DeflateConfig::default());
    for (request, expected, status) in table {
        let got = respond(request, &deflate);
        assert_eq!(got, Err(*expected), "{request}");
        assert_eq!(expected.status(), *status);
        assert!(expected.is_handshake());
        let extra = expected.response_headers();
        assert_eq!(extra.is_empty(), *status != 426);
    }
    for bad in [
        "permessage-deflate; x=\"",
        "permessage-deflate;",
        "permessage-deflate server_no_context_takeover",
        "a b",
    ] {
        let request = upgrade(&format!("Sec-WebSocket-Extensions: {bad}\r\n"));
        assert_eq!(
            respond(&request, &deflate),
            Err(Error::InvalidExtensionsHeader),
            "{bad}"
        );
    }
}

#[test]
fn refusals_fit_a_response_head() {
    let err = Error::UnsupportedVersion;
    let mut head = protocol::ResponseHead::new(err.status());
    head.headers = err.response_headers();
    head.keep_alive = false;
    let mut out = Vec::new();
    head.write(&mut out).unwrap();
    assert_eq!(
        out,
        b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn is_websocket_request_looks_at_upgrade_only() {
    for (request, expected) in [
        (upgrade(""), true),
        (
            "POST / HTTP/1.0\r\nUpgrade: WEBSOCKET\r\n\r\n".to_owned(),
            true,
        ),
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(), false),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n".to_owned(),
            false,
        ),
    ] {
        assert_eq!(
            with_head(&request, is_websocket_request),
            expected,
            "{request}"
        );
    }
}

#[test]
fn response_checks_the_caller() {
    let request = upgrade("Sec-WebSocket-Protocol: chat\r\n");
    with_head(&request, |head| {
        let hs = accept(head, &Config::default()).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            hs.write_response(Some("superchat"), &[], &mut out),
            Err(Error::ProtocolNotOffered)
        );
        assert_eq!(Error::ProtocolNotOffered.status(), 500);
        for bad in [
            ("Upgrade", &b"x"[..]),
            ("connection", b"close"),
            ("Sec-WebSocket-Extensions", b"x"),
            ("sec-websocket-accept", b"x"),
            ("Content-Length", b"0"),
            ("Bad Name", b"x"),
            ("X", b"a\r\nInjected: 1"),
            ("X", b"\0"),
        ] {
            assert_eq!(
                hs.write_response(None, &[bad], &mut out),
                Err(Error::InvalidResponseHeader),
                "{bad:?}"
            );
        }
        assert!(out.is_empty(), "nothing written on error");
    });
}

/// The `Sec-WebSocket-Extensions` response for `offers` under `config`.
fn negotiated(offers: &[&str], config: &DeflateConfig) -> Option<String> {
    let agreed = negotiate_deflate(offers.iter().map(|o| o.as_bytes()), config).unwrap()?;
    let mut out = Vec::new();
    agreed.write_response_value(&mut out);
    Some(String::from_utf8(out).unwrap())
}

#[test]
fn deflate_negotiation_table() {
    let mut takeover = DeflateConfig::default();
    takeover.server_no_context_takeover = false;
    takeover.client_no_context_takeover = false;
    let mut small = DeflateConfig::default();
    small.server_max_window_bits = 10;
    small.client_max_window_bits = 11;
    small.client_no_context_takeover = true;
    let default = DeflateConfig::default();
    let pmd = "permessage-deflate";
    let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    let table: &[(&[&str], &DeflateConfig, Option<&str>)] = &[
        (&[], &default, None),
        (&["x-webkit-deflate-frame"], &default, None),
        (&[pmd], &default, Some(both)),
        (&[pmd], &takeover, Some(pmd)),
        (&["PerMessage-Deflate"], &takeover, Some(pmd)),
        // What browsers send.
        (
            &["permessage-deflate; client_max_window_bits"],
            &takeover,
            Some(pmd),
        ),
        (
            &["permessage-deflate; client_max_window_bits"],
            &small,
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11"),
        ),
        // The client's limits are kept, and its wishes granted.
        (
            &["permessage-deflate; server_max_window_bits=12; client_max_window_bits=9"],
            &takeover,
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=9"),
        ),
        (
            &["permessage-deflate; server_max_window_bits=12"],
            &small,
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"),
        ),
        (
            &["permessage-deflate; server_max_window_bits=8"],
            &takeover,
            Some("permessage-deflate; server_max_window_bits=8"),
        ),
        (
            &["permessage-deflate; server_max_window_bits=\"9\""],
            &takeover,
            Some("permessage-deflate; server_max_window_bits=9"),
        ),
        (
            &["permessage-deflate; client_no_context_takeover; server_no_context_takeover"],
            &takeover,
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        (
            &["permessage-deflate;client_max_window_bits=15"],
            &takeover,
            Some(pmd),
        ),
        // Declined offers: the next acceptable one wins.
        (
            &["permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits=10"],
            &takeover,
            Some("permessage-deflate; client_max_window_bits=10"),
        ),
        (&["permessage-deflate; server_max_window_bits=16"], &default, None),
        (&["permessage-deflate; server_max_window_bits=08"], &default, None),
        (&["permessage-deflate; server_max_window_bits"], &default, None),
        (&["permessage-deflate; client_max_window_bits=0"], &default, None),
        (&["permessage-deflate; client_max_window_bits=\"\\1\\5\""], &takeover, Some(pmd)),
        (&["permessage-deflate; server_no_context_takeover=1"], &default, None),
        (&["permessage-deflate; client_no_context_takeover=x"], &default, None),
        (&["permessage-deflate; unknown"], &default, None),
        (
            &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
            &default,
            None,
        ),
        (
            &["permessage-deflate; client_max_window_bits; client_max_window_bits=10"],
            &default,
            None,
        ),
        (
            &["permessage-deflate; server_max_window_bits=10; SERVER_MAX_WINDOW_BITS=10"],
            &default,
            None,
        ),
        // Offers across several field lines, in order.
        (
            &["foo; bar=1", "permessage-deflate; bad", "permessage-deflate; server_max_window_bits=11"],
            &takeover,
            Some("permessage-deflate; server_max_window_bits=11"),
        ),
        (
            &["permessage-deflate", "permessage-deflate; server_max_window_bits=11"],
            &takeover,
            Some(pmd),
        ),
    ];
    for (offers, config, expected) in table {
        assert_eq!(
            negotiated(offers, config).as_deref(),
            *expected,
            "{offers:?} {config:?}"
        );
    }
}

#[test]
fn negotiated_handshake_response() {
    let mut config = Config::default();
    config.deflate = Some(DeflateConfig::default());
    let request = upgrade(
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-webkit-deflate-frame\r\n",
    );
    assert_eq!(
        respond(&request, &config).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         client_no_context_takeover\r\n\r\n"
    );
    with_head(&request, |head| {
        let hs = accept(head, &config).unwrap();
        assert_eq!(
            hs.deflate,
            Some(PerMessageDeflate {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: None,
                client_max_window_bits: None,
            })
        );
    });
}
