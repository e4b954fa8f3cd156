//! Table of valid requests and what the parser must derive from each; the
//! same requests pipelined back to back in one buffer; and the property
//! that feeding any of them split anywhere gives what feeding it whole gives.

mod common;

use common::{serve, serve_bytewise, serve_split, serve_whole, Req, Rng};
use protocol::{BodyFraming, Limits, Method, TargetForm, Version};

type Check = fn(&Req);

fn header<'a>(r: &'a Req, name: &str) -> Option<&'a [u8]> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Vec<u8>, Check)> {
    let hundred: String = (0..99).map(|i| format!("X-F{i}: v\r\n")).collect();
    vec![
        ("minimal GET", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.method.as_str(), r.target.as_str(), r.version), ("GET", "/", Version::Http11));
            assert_eq!((r.target_form, r.path.as_str(), r.query.as_deref()), (TargetForm::Origin, "/", None));
            assert_eq!(r.host.as_deref(), Some(&b"example.com"[..]));
            assert_eq!(r.authority.as_deref(), Some(&b"example.com"[..]));
            assert!(r.keep_alive && !r.expect_continue && !r.upgrade);
            assert_eq!((r.framing, r.head_len), (BodyFraming::None, 37));
        }),
        ("query", b"GET /search/a%20b?q=rust&x=1 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.path.as_str(), r.query.as_deref()), ("/search/a%20b", Some("q=rust&x=1")));
        }),
        ("empty query", b"GET /p? HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.path.as_str(), r.query.as_deref()), ("/p", Some("")));
        }),
        ("HTTP/1.0 without Host closes", b"GET /old HTTP/1.0\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.version, r.keep_alive, r.host.as_deref()), (Version::Http10, false, None));
        }),
        ("HTTP/1.0 keep-alive", b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n".to_vec(), |r| {
            assert!(r.keep_alive);
        }),
        ("HTTP/1.0 keep-alive and close", b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n".to_vec(), |r| {
            assert!(!r.keep_alive);
        }),
        ("HTTP/1.1 close", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n".to_vec(), |r| {
            assert!(!r.keep_alive);
        }),
        ("close in a second Connection line", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x-custom\r\nConnection: ,close,\r\n\r\n".to_vec(), |r| {
            assert!(!r.keep_alive);
        }),
        ("close-ish token is not close", b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n".to_vec(), |r| {
            assert!(r.keep_alive);
        }),
        ("Content-Length body", b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello".to_vec(), |r| {
            assert_eq!((r.framing, r.body.as_slice()), (BodyFraming::ContentLength(5), &b"hello"[..]));
        }),
        ("Content-Length zero", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".to_vec(), |r| {
            assert_eq!(r.framing, BodyFraming::ContentLength(0));
            assert!(!r.framing.has_body() && r.body.is_empty());
        }),
        ("Content-Length leading zeros", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0003\r\n\r\nabc".to_vec(), |r| {
            assert_eq!((r.framing, r.body.as_slice()), (BodyFraming::ContentLength(3), &b"abc"[..]));
        }),
        ("identical Content-Length list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc".to_vec(), |r| {
            assert_eq!(r.framing, BodyFraming::ContentLength(3));
        }),
        ("identical Content-Length lines", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc".to_vec(), |r| {
            assert_eq!(r.framing, BodyFraming::ContentLength(3));
        }),
        ("Content-Length on HTTP/1.0", b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi".to_vec(), |r| {
            assert_eq!(r.body, b"hi");
        }),
        ("chunked body with extensions and trailers", b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;a=1;b\r\nWiki\r\n5 ; q=\"x;\\\"y\"\r\npedia\r\n000E\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 9\r\nX-Empty:\r\n\r\n".to_vec(), |r| {
            assert_eq!(r.framing, BodyFraming::Chunked);
            assert_eq!(r.body, b"Wikipedia in\r\n\r\nchunks.");
        }),
        ("chunked, capitalised and with empty members", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , Chunked\r\n\r\n0\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.framing, r.body.len()), (BodyFraming::Chunked, 0));
        }),
        ("Expect 100-continue", b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx".to_vec(), |r| {
            assert!(r.expect_continue);
            assert_eq!(r.body, b"x");
        }),
        ("Expect ignored on HTTP/1.0", b"PUT /f HTTP/1.0\r\nExpect: 100-continue, other\r\nContent-Length: 1\r\n\r\nx".to_vec(), |r| {
            assert!(!r.expect_continue);
        }),
        ("WebSocket upgrade", b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec(), |r| {
            assert!(r.upgrade && r.keep_alive);
            assert_eq!(header(r, "upgrade"), Some(&b"websocket"[..]));
        }),
        ("Upgrade without Connection: upgrade", b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n".to_vec(), |r| {
            assert!(!r.upgrade);
        }),
        ("Upgrade ignored on HTTP/1.0", b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n".to_vec(), |r| {
            assert!(!r.upgrade);
        }),
        ("absolute-form", b"GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n".to_vec(), |r| {
            assert_eq!(r.target_form, TargetForm::Absolute);
            assert_eq!((r.path.as_str(), r.query.as_deref()), ("/a/b", Some("c=d")));
            assert_eq!(r.authority.as_deref(), Some(&b"Example.com:8080"[..]));
            assert_eq!(r.host.as_deref(), Some(&b"other"[..]));
        }),
        ("absolute-form without path", b"GET https://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.target_form, r.path.as_str()), (TargetForm::Absolute, "/"));
        }),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.target_form, r.path.as_str()), (TargetForm::Asterisk, "*"));
        }),
        ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.target_form, r.path.as_str()), (TargetForm::Authority, ""));
            assert_eq!(r.authority.as_deref(), Some(&b"example.com:443"[..]));
        }),
        ("leading empty lines", b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), |r| {
            assert_eq!(r.head_len, 4 + 27);
        }),
        ("values trimmed, empty and obs-text", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \t spaced out \t\r\nX-Empty:\r\nX-Utf8: caf\xc3\xa9\r\nX-Raw: \xff\r\n\r\n".to_vec(), |r| {
            assert_eq!(header(r, "x-a"), Some(&b"spaced out"[..]));
            assert_eq!(header(r, "X-EMPTY"), Some(&b""[..]));
            assert_eq!(header(r, "x-utf8"), Some("café".as_bytes()));
            assert_eq!(header(r, "x-raw"), Some(&b"\xff"[..]));
        }),
        ("empty Host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n".to_vec(), |r| {
            assert_eq!(r.host.as_deref(), Some(&b""[..]));
        }),
        ("IPv6 Host", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n".to_vec(), |r| {
            assert_eq!(r.host.as_deref(), Some(&b"[::1]:8080"[..]));
        }),
        ("unknown and lowercase methods are tokens", b"get / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), |r| {
            assert_eq!((r.method.as_str(), Method::from_token(&r.method)), ("get", None));
        }),
        ("extension method", b"PROPFIND /dav HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n".to_vec(), |r| {
            assert_eq!(r.method, "PROPFIND");
        }),
        ("one hundred fields", format!("GET / HTTP/1.1\r\nHost: a\r\n{hundred}\r\n").into_bytes(), |r| {
            assert_eq!(r.headers.len(), 100);
        }),
        ("printable ASCII target bytes httparse allows", b"GET /a|b{c}^`\"<> HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), |r| {
            assert_eq!(r.path, "/a|b{c}^`\"<>");
        }),
    ]
}

#[test]
fn each_good_request_parses_as_expected() {
    let limits = Limits::default();
    for (name, input, check) in cases() {
        let out = serve_whole(&input, &limits);
        assert_eq!(out.error, None, "{name}");
        assert!(!out.incomplete, "{name}: {out:?}");
        assert_eq!(out.requests.len(), 1, "{name}");
        check(&out.requests[0]);
    }
}

/// All the good requests, back to back, plus the individual results.
fn pipeline() -> (Vec<u8>, Vec<Req>) {
    let limits = Limits::default();
    let mut all = Vec::new();
    let mut expected = Vec::new();
    for (_, input, _) in cases() {
        let out = serve_whole(&input, &limits);
        expected.extend(out.requests);
        all.extend_from_slice(&input);
    }
    (all, expected)
}

#[test]
fn pipelined_requests_parse_one_at_a_time() {
    let limits = Limits::default();
    let (all, expected) = pipeline();
    let out = serve_whole(&all, &limits);
    assert_eq!(out.error, None);
    assert!(!out.incomplete);
    assert_eq!(out.requests, expected);

    // And by hand, with the consumed lengths: each parse starts exactly
    // where the previous request's body ended.
    let mut rest = &all[..];
    for req in &expected {
        let mut storage = protocol::header_storage::<128>();
        let protocol::Parsed::Complete(head, used) =
            protocol::parse_request(rest, &mut storage, &limits).unwrap()
        else {
            panic!("partial")
        };
        assert_eq!((head.target, used), (req.target.as_str(), req.head_len));
        let body_len = match head.body {
            BodyFraming::Chunked => {
                let mut dec = protocol::ChunkedDecoder::new(&limits);
                let step = dec.decode(&rest[used..]).unwrap();
                let mut n = step.consumed;
                while !dec.is_done() {
                    n += dec.decode(&rest[used + n..]).unwrap().consumed;
                }
                n
            }
            BodyFraming::ContentLength(n) => n as usize,
            BodyFraming::None => 0,
        };
        rest = &rest[used + body_len..];
    }
    assert!(rest.is_empty());
}

#[test]
fn every_good_request_split_anywhere_equals_whole() {
    let limits = Limits::default();
    for (name, input, _) in cases() {
        let whole = serve_whole(&input, &limits);
        assert_eq!(serve_bytewise(&input, &limits), whole, "{name} bytewise");
        for at in 0..=input.len() {
            assert_eq!(serve_split(&input, at, &limits), whole, "{name} at {at}");
        }
    }
}

#[test]
fn the_pipeline_split_anywhere_equals_whole() {
    let limits = Limits::default();
    let (all, _) = pipeline();
    let whole = serve_whole(&all, &limits);
    assert_eq!(serve_bytewise(&all, &limits), whole);
    for at in 0..=all.len() {
        assert_eq!(serve_split(&all, at, &limits), whole, "at {at}");
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..200 {
        let pieces = rng.pieces(&all);
        assert_eq!(serve(pieces, &limits), whole);
    }
}

#[test]
fn a_prefix_of_a_good_request_is_partial_never_an_error() {
    let limits = Limits::default();
    for (name, input, _) in cases() {
        let full = serve_whole(&input, &limits).requests[0].head_len;
        for end in 0..full {
            let mut storage = protocol::header_storage::<128>();
            assert_eq!(
                protocol::parse_request(&input[..end], &mut storage, &limits),
                Ok(protocol::Parsed::Partial),
                "{name} prefix {end}"
            );
        }
    }
}
