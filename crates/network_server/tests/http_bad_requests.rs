//! A table of bad requests, each sent on its own connection: the server
//! answers with the right status, closes that connection, and keeps serving a
//! well-behaved keep-alive client running alongside the whole time.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{closed_by_peer, connect, read_response, spawn_test_app};
use network_server::ServerConfig;

/// (what it is, bytes sent, expected status)
const CASES: &[(&str, &[u8], u16)] = &[
    // --- request smuggling shapes (RFC 9112 §6.1, §6.3) ---
    ("CL then TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE then CL", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("two different CLs", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    ("CL list with different values", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello", 400),
    ("CL with plus sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("CL negative", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    ("CL in hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400),
    ("CL with inner space", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n0123456789", 400),
    ("CL overflowing u64", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
    ("CL absurd but numeric", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000\r\n\r\n", 413),
    ("TE chunked twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    // Unknown coding alone: chunked is not the final coding, so the length
    // cannot be determined — RFC 9112 §6.3 says 400 (MUST) over §6.1's 501.
    ("TE unknown coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("TE gzip then chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("TE chunked not last", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE by obs-fold", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400),
    // --- malformed heads ---
    ("obs-fold continuation", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", 400),
    ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("header without colon", b"GET / HTTP/1.1\r\nHost a\r\n\r\n", 400),
    ("NUL in header value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400),
    ("NUL in target", b"GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("bare LF line endings", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare CR in header", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
    ("invalid method character", b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("lowercase version", b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    ("garbage version", b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/2.0 in an HTTP/1 request line", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("space inside target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("double space in request line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("missing Host in HTTP/1.1", b"GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n", 400),
    ("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("empty header name", b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400),
    ("unsupported expectation", b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417),
    // --- bad chunked bodies ---
    ("chunk size not hex", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ("chunk size negative", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
    ("chunk size empty", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 400),
    ("chunk size overflow", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n", 400),
    ("chunk data without CRLF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400),
    ("chunk size line with bare LF", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400),
    ("chunked body over the limit", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n", 413),
];

#[test]
fn bad_requests_get_their_status_and_others_are_still_served() {
    assert!(CASES.len() >= 30);
    let config = ServerConfig {
        max_body_size: 1 << 20,
        ..Default::default()
    };
    let (server, _seen) = spawn_test_app(config);
    let addr = server.addr;

    // A well-behaved keep-alive client, requesting the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let good = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            let mut s = connect(addr);
            let mut buf = Vec::new();
            for i in 0..100_000u64 {
                if stop.load(Ordering::Relaxed) && i > 0 {
                    break;
                }
                write!(s, "GET /good/{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                let r = read_response(&mut s, &mut buf, false)
                    .expect("good client lost its connection");
                assert_eq!(r.status, 200);
                assert_eq!(r.body, format!("GET /good/{i} HTTP/1.1").as_bytes());
                served.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let mut failures = Vec::new();
    for (name, bytes, want) in CASES {
        let mut s = connect(addr);
        s.write_all(bytes).unwrap();
        let mut buf = Vec::new();
        match read_response(&mut s, &mut buf, false) {
            Some(r) if r.status == *want => {
                assert_eq!(r.header("connection"), Some("close"), "{name}");
                assert!(
                    closed_by_peer(&mut s),
                    "{name}: connection must be closed after the error"
                );
            }
            Some(r) => failures.push(format!("{name}: got {}, want {want}", r.status)),
            None => failures.push(format!("{name}: no response, want {want}")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    good.join().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(served.load(Ordering::Relaxed) > 0);
    server.stop();
}

#[test]
fn oversized_head_and_too_many_headers_get_431() {
    let (server, _seen) = spawn_test_app(ServerConfig::default());
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "x".repeat(20_000)
    );
    let r = common::request(server.addr, big.as_bytes()).unwrap();
    assert_eq!(r.status, 431);
    // A head that never ends but keeps growing is cut at the limit too.
    let mut s = connect(server.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap();
    let filler = "X-Fill: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n".repeat(400);
    let _ = s.write_all(filler.as_bytes());
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 431);

    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(
        common::request(server.addr, many.as_bytes())
            .unwrap()
            .status,
        431
    );
    server.stop();
}

#[test]
fn every_bad_request_split_into_single_bytes_gets_the_same_status() {
    // The parser is fed however the bytes arrive: one byte per segment.
    let config = ServerConfig {
        max_body_size: 1 << 20,
        ..Default::default()
    };
    let (server, _seen) = spawn_test_app(config);
    for (name, bytes, want) in CASES.iter().step_by(3) {
        let mut s = connect(server.addr);
        s.set_nodelay(true).unwrap();
        for b in bytes.iter() {
            if s.write_all(&[*b]).is_err() {
                break; // the server may answer and close before the end
            }
        }
        let mut buf = Vec::new();
        let r = read_response(&mut s, &mut buf, false);
        assert_eq!(r.map(|r| r.status), Some(*want), "{name}");
    }
    std::thread::sleep(Duration::from_millis(10));
    server.stop();
}
