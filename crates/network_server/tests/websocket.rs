//! WebSocket (RFC 6455, RFC 7692) against clients we did not write — Python's
//! `websockets` and the `tungstenite` crate — plus raw sockets for malformed
//! frames; broadcast to 1,000 clients; the slow-client policy; topics.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::spawn;
use network_server::protocol::ws as pws;
use network_server::{
    Application, ClientId, CloseReason, Ctx, HttpEvent, ServerConfig, SlowClientPolicy, WsConfig,
    WsOpcode,
};

#[derive(Debug, Default)]
struct WsSeen {
    closes: Vec<(ClientId, CloseReason)>,
    queued_high_water: u64,
    messages: u64,
    upgrades: u64,
}

/// `/echo` echoes; `/chat` subscribes to "chat" and publishes what it gets;
/// `/feed` subscribes to "feed" and, when `feed_clients` have joined,
/// publishes `feed_messages` numbered messages — all at once, or, when a
/// ticker eventfd is set up (`feed_batch` > 0), `feed_batch` per tick.
struct WsApp {
    seen: Arc<Mutex<WsSeen>>,
    feed_clients: usize,
    feed_messages: usize,
    feed_size: usize,
    feed_batch: usize,
    fed: usize,
    feeding: bool,
}

impl WsApp {
    fn feed(&mut self, ctx: &mut Ctx<'_>, count: usize) {
        let end = (self.fed + count).min(self.feed_messages);
        for i in self.fed..end {
            let mut msg = format!("{i:08}").into_bytes();
            msg.resize(self.feed_size.max(8), b'.');
            ctx.ws_publish("feed", WsOpcode::Binary, &msg);
        }
        self.fed = end;
    }
}

impl Application for WsApp {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        let HttpEvent::Request(req) = ev else { return };
        match req.path {
            "/echo" | "/chat" | "/feed" => {
                if ctx.ws_upgrade(client, req, None).is_err() {
                    return;
                }
                self.seen.lock().unwrap().upgrades += 1;
                if req.path == "/chat" {
                    ctx.ws_subscribe(client, "chat").unwrap();
                }
                if req.path == "/feed" {
                    ctx.ws_subscribe(client, "feed").unwrap();
                    if ctx.ws_topic_size("feed") == self.feed_clients {
                        if self.feed_batch == 0 {
                            self.feed(ctx, self.feed_messages);
                        } else {
                            self.feeding = true;
                        }
                    }
                }
            }
            _ => {
                ctx.http_respond(client, 404, &[], "no").unwrap();
            }
        }
    }

    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, op: WsOpcode, data: &[u8]) {
        if matches!(op, WsOpcode::Ping | WsOpcode::Pong) {
            return;
        }
        self.seen.lock().unwrap().messages += 1;
        if ctx.ws_topic_size("chat") > 0 && data.starts_with(b"chat:") {
            ctx.ws_publish("chat", op, data);
        } else {
            let _ = ctx.ws_send(client, op, data.to_vec());
        }
    }

    fn on_ws_close(&mut self, _ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        self.seen.lock().unwrap().closes.push((client, reason));
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, ev: network_server::EventId, _info: u64, _n: u64) {
        if self.feeding {
            self.feed(ctx, self.feed_batch);
        }
        self.seen.lock().unwrap().queued_high_water = ctx.stats().queued_bytes_high_water;
        ctx.eventfd_prepare(ev, 0).unwrap();
    }
}

fn start(
    config: ServerConfig,
    feed: (usize, usize, usize),
) -> (common::Running, Arc<Mutex<WsSeen>>) {
    let (server, seen, _) = start_paced(config, feed, 0);
    (server, seen)
}

/// Like `start`, with a ticker eventfd: the returned handle, triggered by
/// the test, publishes `batch` feed messages per trigger.
fn start_paced(
    config: ServerConfig,
    feed: (usize, usize, usize),
    batch: usize,
) -> (
    common::Running,
    Arc<Mutex<WsSeen>>,
    network_server::EventTrigger,
) {
    let seen = Arc::new(Mutex::new(WsSeen::default()));
    let s2 = seen.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let server = spawn(config, move |server| {
        let mut ctx = server.ctx();
        let ev = ctx.eventfd_open().unwrap();
        ctx.eventfd_prepare(ev, 0).unwrap();
        tx.send(ctx.eventfd_trigger_handle(ev).unwrap()).unwrap();
        WsApp {
            seen: s2,
            feed_clients: feed.0,
            feed_messages: feed.1,
            feed_size: feed.2,
            feed_batch: batch,
            fed: 0,
            feeding: false,
        }
    });
    (server, seen, rx.recv().unwrap())
}

fn py(args: &[&str]) -> String {
    common::run_python("ws_client.py", args)
}

#[test]
fn python_websockets_echo_every_length_and_fragments() {
    let (server, _seen) = start(ServerConfig::default(), (0, 0, 0));
    let out = py(&["echo", &format!("ws://{}/echo", server.addr)]);
    assert!(out.contains("OK echo"), "{out}");
    server.stop();
}

#[test]
fn python_websockets_permessage_deflate_with_each_parameter() {
    let (server, _seen) = start(ServerConfig::default(), (0, 0, 0));
    let url = format!("ws://{}/echo", server.addr);
    for params in [
        "",
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=10",
        "client_max_window_bits=9",
        "server_no_context_takeover,client_no_context_takeover,server_max_window_bits=12,client_max_window_bits=12",
    ] {
        let out = py(&["deflate", &url, params]);
        assert!(out.contains("OK deflate permessage-deflate"), "{params}: {out}");
        for p in params.split(',').filter(|p| !p.is_empty() && !p.starts_with("client_max")) {
            let name = p.split('=').next().unwrap();
            assert!(out.contains(name), "{params}: response lacks {name}: {out}");
        }
    }
    server.stop();
}

/// With context takeover allowed both ways (not the default), each
/// connection gets its own compressor and decompressor, kept across
/// messages; a client that does not ask for `*_no_context_takeover` is not
/// asked either.
#[test]
fn python_websockets_permessage_deflate_with_context_takeover() {
    let mut config = ServerConfig::default();
    config.ws.deflate.server_no_context_takeover = false;
    config.ws.deflate.client_no_context_takeover = false;
    let (server, _seen) = start(config, (0, 0, 0));
    let url = format!("ws://{}/echo", server.addr);
    for (params, absent) in [
        (
            "",
            &["server_no_context_takeover", "client_no_context_takeover"][..],
        ),
        ("client_max_window_bits=9", &["no_context_takeover"]),
        ("server_max_window_bits=10", &["no_context_takeover"]),
        (
            "server_no_context_takeover",
            &["client_no_context_takeover"],
        ),
        (
            "client_no_context_takeover",
            &["server_no_context_takeover"],
        ),
    ] {
        let out = py(&["deflate", &url, params]);
        assert!(
            out.contains("OK deflate permessage-deflate"),
            "{params}: {out}"
        );
        for p in params.split(',').filter(|p| !p.is_empty()) {
            let name = p.split('=').next().unwrap();
            assert!(out.contains(name), "{params}: response lacks {name}: {out}");
        }
        for name in absent {
            assert!(!out.contains(name), "{params}: response has {name}: {out}");
        }
    }
    server.stop();
}

#[test]
fn python_websockets_close_handshake() {
    let (server, seen) = start(ServerConfig::default(), (0, 0, 0));
    let out = py(&["close", &format!("ws://{}/echo", server.addr)]);
    assert!(out.contains("OK close 1000"), "{out}");
    assert!(common::wait_until(Duration::from_secs(5), || {
        seen.lock()
            .unwrap()
            .closes
            .iter()
            .any(|(_, r)| *r == CloseReason::WebSocket(1000))
    }));
    server.stop();
}

// ----- raw sockets -----------------------------------------------------------

/// Opens a WebSocket by hand; returns the stream after the 101.
fn raw_ws(addr: SocketAddr) -> TcpStream {
    raw_ws_offering(addr, "").0
}

/// Opens a WebSocket by hand with `extra` header lines (each ending in
/// CRLF) in the request; returns the stream after the 101 and the 101 head.
fn raw_ws_offering(addr: SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!(
            "GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    (s, head)
}

/// A client frame, masked with a fixed key.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![first];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65536 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// Reads one server frame: (first byte, payload).
fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).ok()?;
    assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).ok()?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).ok()?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0; len];
    s.read_exact(&mut p).ok()?;
    Some((h[0], p))
}

/// Reads until a Close frame; returns its code (None = no code / no frame).
fn close_code(s: &mut TcpStream) -> Option<u16> {
    while let Some((b0, p)) = read_frame(s) {
        if b0 & 0x0f == 0x8 {
            return (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
        }
    }
    None
}

#[test]
fn malformed_frames_get_the_right_close_code() {
    let config = ServerConfig {
        ws: WsConfig {
            max_message_size: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let (server, _seen) = start(config, (0, 0, 0));
    let mut cases: Vec<(String, Vec<u8>, u16)> = vec![
        ("unmasked frame".into(), b"\x81\x02hi".to_vec(), 1002),
        ("RSV1 without deflate".into(), frame(0xC1, b"hi"), 1002),
        ("RSV2".into(), frame(0xA1, b"hi"), 1002),
        ("RSV3".into(), frame(0x91, b"hi"), 1002),
        ("ping over 125 bytes".into(), frame(0x89, &[0; 126]), 1002),
        ("fragmented ping".into(), frame(0x09, b"x"), 1002),
        ("continuation without start".into(), frame(0x80, b"x"), 1002),
        (
            "new message inside a fragmented one".into(),
            [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
            1002,
        ),
        ("invalid UTF-8".into(), frame(0x81, b"\xff\xfe"), 1007),
        (
            "invalid UTF-8 split across fragments".into(),
            [frame(0x01, b"ok \xe2\x82"), frame(0x80, b"\x28")].concat(),
            1007,
        ),
        ("overlong UTF-8".into(), frame(0x81, b"\xc0\xaf"), 1007),
        ("close with 1-byte body".into(), frame(0x88, b"\x03"), 1002),
        (
            "close with invalid UTF-8 reason".into(),
            frame(0x88, b"\x03\xe8\xff"),
            1007,
        ),
        (
            "message over the limit".into(),
            frame(0x82, &vec![0; (1 << 20) + 1]),
            1009,
        ),
        (
            "fragments over the limit".into(),
            [
                frame(0x02, &vec![0; 1 << 19]),
                frame(0x80, &vec![0; (1 << 19) + 1]),
            ]
            .concat(),
            1009,
        ),
    ];
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.push((
            format!("reserved opcode {op:#x}"),
            frame(0x80 | op, b""),
            1002,
        ));
    }
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        cases.push((
            format!("invalid close code {code}"),
            frame(0x88, &code.to_be_bytes()),
            1002,
        ));
    }
    let mut failures = Vec::new();
    for (name, bytes, want) in &cases {
        let mut s = raw_ws(server.addr);
        let _ = s.write_all(bytes);
        let got = close_code(&mut s);
        if got != Some(*want) {
            failures.push(format!("{name}: got {got:?}, want {want}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    server.stop();
}

#[test]
fn valid_close_codes_are_echoed_and_messages_of_every_length_round_trip() {
    let (server, seen) = start(ServerConfig::default(), (0, 0, 0));
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
    ] {
        let mut s = raw_ws(server.addr);
        s.write_all(&frame(0x88, &[&code.to_be_bytes()[..], b"reason"].concat()))
            .unwrap();
        assert_eq!(close_code(&mut s), Some(code), "code {code}");
    }
    // A close without a body is answered with a close without a code.
    let mut s = raw_ws(server.addr);
    s.write_all(&frame(0x88, b"")).unwrap();
    assert_eq!(close_code(&mut s), None);
    assert!(common::wait_until(Duration::from_secs(5), || {
        seen.lock()
            .unwrap()
            .closes
            .iter()
            .any(|(_, r)| *r == CloseReason::WebSocket(1005))
    }));

    // Lengths around each encoding boundary, with a ping between fragments.
    let mut s = raw_ws(server.addr);
    for n in [0usize, 125, 126, 65535, 65536, 70_000] {
        let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        s.write_all(&frame(0x82, &payload)).unwrap();
        let (b0, got) = read_frame(&mut s).unwrap();
        assert_eq!(b0, 0x82);
        assert!(got == payload, "length {n}");
    }
    s.write_all(
        &[
            frame(0x01, b"frag"),
            frame(0x89, b"p"),
            frame(0x80, b"mented"),
        ]
        .concat(),
    )
    .unwrap();
    let (b0, pong) = read_frame(&mut s).unwrap();
    assert_eq!(
        (b0, pong.as_slice()),
        (0x8A, &b"p"[..]),
        "pong first, with the ping's payload"
    );
    let (b0, msg) = read_frame(&mut s).unwrap();
    assert_eq!((b0, msg.as_slice()), (0x81, &b"fragmented"[..]));
    // Byte by byte: the decoder resumes anywhere.
    s.set_nodelay(true).unwrap();
    for b in frame(0x81, b"slowly") {
        s.write_all(&[b]).unwrap();
    }
    assert_eq!(read_frame(&mut s).unwrap().1, b"slowly");
    server.stop();
}

/// The periodic sweep (every 250 ms) frees an idle client's decoder and
/// message buffer, and only an idle one's: a frame header cut in two, a
/// fragmented message with a pause between fragments, and a client that
/// went quiet and comes back all keep working across sweeps.
#[test]
fn decoder_state_survives_sweeps_and_an_idle_client_resumes() {
    let (server, _seen) = start(ServerConfig::default(), (0, 0, 0));
    let sweep = Duration::from_millis(600);
    let mut s = raw_ws(server.addr);
    s.set_nodelay(true).unwrap();
    // Header split after its first byte, across two sweeps.
    let f = frame(0x82, b"split header");
    s.write_all(&f[..1]).unwrap();
    std::thread::sleep(sweep);
    s.write_all(&f[1..4]).unwrap();
    std::thread::sleep(sweep);
    s.write_all(&f[4..]).unwrap();
    assert_eq!(
        read_frame(&mut s).unwrap(),
        (0x82, b"split header".to_vec())
    );
    // A fragmented text message, a code point split between fragments,
    // with sweeps between the fragments.
    let text = "caf\u{e9} ok";
    let (a, b) = text.as_bytes().split_at(4); // inside the 2-byte é
    s.write_all(&frame(0x01, a)).unwrap();
    std::thread::sleep(sweep);
    s.write_all(&frame(0x80, b)).unwrap();
    assert_eq!(
        read_frame(&mut s).unwrap(),
        (0x81, text.as_bytes().to_vec())
    );
    // Idle across sweeps (reader freed), then a large message.
    std::thread::sleep(sweep);
    let big: Vec<u8> = (0..100_000).map(|i| (i % 253) as u8).collect();
    s.write_all(&frame(0x82, &big)).unwrap();
    let (b0, got) = read_frame(&mut s).unwrap();
    assert!(b0 == 0x82 && got == big, "large message after idling");
    server.stop();
}

/// Compression state across sweeps. With the defaults (no context
/// takeover either way) an idle connection holds none: messages before and
/// after sweeps, and a fragmented compressed message with sweeps between
/// its fragments, all round-trip. With context takeover allowed both ways
/// the server keeps each connection's windows across sweeps: a message
/// repeated after idling decodes against the client's earlier one (the
/// client compresses it by reference), and the server's echo of it is
/// compressed by reference to its own earlier one (a fraction of the size).
#[test]
fn deflate_state_survives_sweeps_where_context_is_kept() {
    let sweep = Duration::from_millis(600);
    // Text that does not compress much on its own (so that a reference to
    // an earlier message is visible in the size).
    let mut x: u32 = 12345;
    let text: String = (0..3000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            char::from(b'a' + ((x >> 16) % 26) as u8)
        })
        .collect();
    for keep_context in [false, true] {
        let mut config = ServerConfig::default();
        config.ws.deflate.server_no_context_takeover = !keep_context;
        config.ws.deflate.client_no_context_takeover = !keep_context;
        let (server, _seen) = start(config, (0, 0, 0));
        let (mut s, head) = raw_ws_offering(
            server.addr,
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        );
        let agreed = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
            .unwrap_or_else(|| panic!("deflate not agreed: {head}"));
        let expected = if keep_context {
            "permessage-deflate"
        } else {
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        };
        assert_eq!(agreed, expected);
        let reset = !keep_context;
        let mut deflater = pws::Deflater::with_window_bits(15, reset, 6);
        let mut inflater = pws::Inflater::with_window_bits(15, reset);
        // Sends `pieces` as one compressed text message (a fragment per
        // piece, with a sweep between fragments); returns the compressed
        // size of the server's echo after checking it.
        let mut echo = |s: &mut TcpStream, pieces: &[&str]| -> usize {
            for (i, piece) in pieces.iter().enumerate() {
                let fin = i + 1 == pieces.len();
                let mut payload = Vec::new();
                deflater
                    .compress(piece.as_bytes(), fin, &mut payload)
                    .unwrap();
                let first = match (i == 0, fin) {
                    (true, true) => 0xC1,
                    (true, false) => 0x41,
                    (false, true) => 0x80,
                    (false, false) => 0x00,
                };
                s.write_all(&frame(first, &payload)).unwrap();
                if !fin {
                    std::thread::sleep(sweep);
                }
            }
            let (b0, compressed) = read_frame(s).expect("echo");
            assert_eq!(b0, 0xC1, "a compressed text echo");
            let mut out = Vec::new();
            inflater
                .inflate(pws::MessageKind::Text, &compressed, true, &mut out, 1 << 20)
                .unwrap();
            assert_eq!(out, pieces.concat().as_bytes());
            compressed.len()
        };
        let first = echo(&mut s, &[&text]);
        std::thread::sleep(sweep);
        let again = echo(&mut s, &[&text]);
        if keep_context {
            assert!(
                again * 4 < first,
                "echo not compressed against the previous one: {again} vs {first} bytes"
            );
        }
        std::thread::sleep(sweep);
        let (a, b) = text.split_at(1000);
        echo(&mut s, &[a, b]);
        std::thread::sleep(sweep);
        echo(&mut s, &[&text]);
        server.stop();
    }
}

#[test]
fn handshake_errors_get_400_or_426() {
    let (server, _seen) = start(ServerConfig::default(), (0, 0, 0));
    let version12 =
        b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n";
    let r = common::request(server.addr, version12).unwrap();
    assert_eq!(r.status, 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    let no_key = b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    assert_eq!(common::request(server.addr, no_key).unwrap().status, 400);
    let bad_key = b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n";
    assert_eq!(common::request(server.addr, bad_key).unwrap().status, 400);
    server.stop();
}

// ----- broadcast ---------------------------------------------------------------

#[test]
fn broadcast_to_a_thousand_clients_delivers_every_message_in_order() {
    const CLIENTS: usize = 1000;
    const MESSAGES: usize = 1000;
    let (server, seen) = start(ServerConfig::default(), (CLIENTS, MESSAGES, 32));
    let addr = server.addr;
    // tungstenite clients, 100 per thread; each reads its whole stream.
    let threads: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                let mut socks = Vec::new();
                for _ in 0..CLIENTS / 10 {
                    let stream = TcpStream::connect(addr).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(60)))
                        .unwrap();
                    let (ws, resp) =
                        tungstenite::client(format!("ws://{addr}/feed"), stream).unwrap();
                    assert_eq!(resp.status(), 101);
                    socks.push(ws);
                }
                for ws in &mut socks {
                    for i in 0..MESSAGES {
                        let m = ws.read().unwrap();
                        let data = m.into_data();
                        assert_eq!(
                            &data[..8],
                            format!("{i:08}").as_bytes(),
                            "in order, none missing"
                        );
                        assert_eq!(data.len(), 32);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(seen.lock().unwrap().upgrades as usize, CLIENTS);
    server.stop();
}

#[test]
fn a_stalled_client_hits_the_slow_client_policy_while_others_get_everything() {
    // 4,000 messages of 4 KiB (16 MiB each), 16 per tick (64 KiB, well
    // under the limit for a reader).
    stalled_client_case(4000, 4096, 16, 64 * 1024 + 4200);
}

#[test]
fn a_stalled_client_hits_the_slow_client_policy_with_small_broadcast_frames() {
    // Small frames go through the broadcast chunk and topic runs: 60,000
    // messages of 64 B (3.8 MiB each), 512 per tick (33 KiB). A frame is
    // queued only while the client's queue stays under the limit, so the
    // limit holds to the frame.
    stalled_client_case(60_000, 64, 512, 128);
}

/// Three clients of "feed", one of which never reads; `messages` of `size`
/// bytes once all have joined, `per_tick` per tick: the two readers get
/// every message in order, the stalled one is closed with 1008 and its
/// queue never holds more than `slack` bytes over the limit.
fn stalled_client_case(messages: usize, size: usize, per_tick: usize, slack: u64) {
    let config = ServerConfig {
        ws: WsConfig {
            max_queued_bytes: 256 * 1024,
            slow_client: SlowClientPolicy::Close(1008),
            ..Default::default()
        },
        // The stalled client never reads again: its close completes when the
        // drain deadline passes without progress.
        drain_timeout: Duration::from_millis(500),
        timer_tick: Duration::from_millis(50),
        ..Default::default()
    };
    let (server, seen, ticker) = start_paced(config, (3, messages, size), per_tick);
    let addr = server.addr;

    let ticking = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let tick_thread = {
        let ticking = ticking.clone();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while ticking.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < deadline
            {
                ticker.trigger().unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let stalled = {
        // A tiny receive buffer, so the kernel cannot absorb the backlog.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&addr.into()).unwrap();
        let (ws, _) =
            tungstenite::client(format!("ws://{addr}/feed"), TcpStream::from(sock)).unwrap();
        ws // never read from
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                let (mut ws, _) = tungstenite::client(format!("ws://{addr}/feed"), stream).unwrap();
                for i in 0..messages {
                    let data = ws.read().unwrap().into_data();
                    assert_eq!(&data[..8], format!("{i:08}").as_bytes());
                    assert_eq!(data.len(), size);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    ticking.store(false, std::sync::atomic::Ordering::Relaxed);
    tick_thread.join().unwrap();
    // No connection ever held more than the limit plus the slack (the
    // stalled one's backlog is bounded).
    let high_water = seen.lock().unwrap().queued_high_water;
    assert!(
        high_water <= 256 * 1024 + slack,
        "queued bytes reached {high_water}"
    );
    assert!(
        high_water > 128 * 1024,
        "the stalled client did back up ({high_water})"
    );
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            seen.lock()
                .unwrap()
                .closes
                .iter()
                .any(|(_, r)| *r == CloseReason::WebSocket(1008))
        }),
        "the stalled client was closed with 1008: {:?}",
        seen.lock().unwrap().closes
    );
    drop(stalled);
    server.stop();
}

#[test]
fn chat_topic_reaches_every_subscriber_and_forgets_closed_ones() {
    let (server, seen) = start(ServerConfig::default(), (0, 0, 0));
    let addr = server.addr;
    let connect = || {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        tungstenite::client(format!("ws://{addr}/chat"), stream)
            .unwrap()
            .0
    };
    let mut a = connect();
    let mut b = connect();
    let c = connect();
    drop(c); // closes its TCP connection: it must leave the topic
    assert!(common::wait_until(Duration::from_secs(5), || seen
        .lock()
        .unwrap()
        .closes
        .len()
        == 1));
    a.send(tungstenite::Message::text("chat: hello from a"))
        .unwrap();
    for ws in [&mut a, &mut b] {
        assert_eq!(
            ws.read().unwrap().into_text().unwrap().as_str(),
            "chat: hello from a"
        );
    }
    server.stop();
}

#[test]
fn idle_peer_is_pinged_and_closed_when_it_never_answers() {
    let config = ServerConfig {
        timer_tick: Duration::from_millis(50),
        ws: WsConfig {
            ping_interval: Duration::from_millis(200),
            pong_timeout: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    };
    let (server, seen) = start(config, (0, 0, 0));
    // A raw client that reads the ping but never answers it.
    let mut silent = raw_ws(server.addr);
    let (b0, payload) = read_frame(&mut silent).expect("a ping after the idle interval");
    assert_eq!(b0, 0x89, "ping frame");
    assert!(!payload.is_empty());
    // A tungstenite client answers pings (it does so while reading).
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut live, _) = tungstenite::client(format!("ws://{}/echo", server.addr), stream).unwrap();
    assert!(common::wait_until(Duration::from_secs(5), || {
        let _ = live.read(); // answers pings; times out otherwise
        seen.lock()
            .unwrap()
            .closes
            .iter()
            .any(|(_, r)| *r == CloseReason::Timeout)
    }));
    // The answering client is still open: an echo works.
    live.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    live.send(tungstenite::Message::text("still here")).unwrap();
    loop {
        match live.read().unwrap() {
            tungstenite::Message::Text(t) => {
                assert_eq!(t.as_str(), "still here");
                break;
            }
            _ => continue, // pings
        }
    }
    assert_eq!(
        seen.lock().unwrap().closes.len(),
        1,
        "only the silent client was closed"
    );
    server.stop();
}

/// Publishes to two topics with overlapping members, sends to one member
/// directly and changes subscriptions, all in one callback: the frames a
/// topic's run collects must reach each client in the order they were
/// published relative to everything else it was sent, and every report
/// must count each member.
struct MixApp {
    clients: Vec<ClientId>,
    want: usize,
    /// Reports that did not count every member, as text.
    wrong: Arc<Mutex<Vec<String>>>,
}

/// Iterations of [`MixApp`]'s script; the membership changes at `MIX_SWITCH`.
const MIX_STEPS: usize = 300;
const MIX_SWITCH: usize = 150;

impl Application for MixApp {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        let HttpEvent::Request(req) = ev else { return };
        ctx.ws_upgrade(client, req, None).unwrap();
        let j = self.clients.len();
        self.clients.push(client);
        ctx.ws_subscribe(client, "a").unwrap();
        if j % 2 == 1 {
            ctx.ws_subscribe(client, "b").unwrap();
        }
        if self.clients.len() < self.want {
            return;
        }
        let c = self.clients.clone();
        let mut wrong = self.wrong.lock().unwrap();
        for i in 0..MIX_STEPS {
            if i == MIX_SWITCH {
                ctx.ws_unsubscribe(c[1], "a").unwrap();
                ctx.ws_subscribe(c[2], "b").unwrap();
            }
            let size = ctx.ws_topic_size("a");
            let r = ctx.ws_publish("a", WsOpcode::Text, format!("a{i}").as_bytes());
            if r.sent != size || r.skipped + r.dropped + r.closed != 0 {
                wrong.push(format!("a{i}: {r:?} for {size} members"));
            }
            if i % 7 == 0 {
                ctx.ws_send(c[0], WsOpcode::Text, format!("d{i}").into_bytes())
                    .unwrap();
            }
            if i % 5 == 0 {
                let size = ctx.ws_topic_size("b");
                let r = ctx.ws_publish("b", WsOpcode::Text, format!("b{i}").as_bytes());
                if r.sent != size {
                    wrong.push(format!("b{i}: {r:?} for {size} members"));
                }
            }
        }
        // The end of the script.
        for &client in &c {
            ctx.ws_send(client, WsOpcode::Text, b"end".to_vec())
                .unwrap();
        }
    }
}

/// What client `j` of [`MixApp`] must receive, in order.
fn mix_expected(j: usize) -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..MIX_STEPS {
        if j != 1 || i < MIX_SWITCH {
            v.push(format!("a{i}"));
        }
        if j == 0 && i % 7 == 0 {
            v.push(format!("d{i}"));
        }
        if i % 5 == 0 && (j % 2 == 1 || (j == 2 && i >= MIX_SWITCH)) {
            v.push(format!("b{i}"));
        }
    }
    v.push("end".into());
    v
}

#[test]
fn topic_runs_keep_order_with_direct_sends_other_topics_and_subscription_changes() {
    const CLIENTS: usize = 4;
    let wrong = Arc::new(Mutex::new(Vec::new()));
    let w2 = wrong.clone();
    let server = spawn(ServerConfig::default(), move |_| MixApp {
        clients: Vec::new(),
        want: CLIENTS,
        wrong: w2,
    });
    let addr = server.addr;
    // Connected one after another, so that client j is the server's j-th.
    let mut socks = Vec::new();
    for _ in 0..CLIENTS {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let (ws, resp) = tungstenite::client(format!("ws://{addr}/mix"), stream).unwrap();
        assert_eq!(resp.status(), 101);
        socks.push(ws);
    }
    for (j, ws) in socks.iter_mut().enumerate() {
        let mut got = Vec::new();
        loop {
            let text = ws.read().unwrap().into_text().unwrap().to_string();
            got.push(text);
            if got.last().unwrap() == "end" {
                break;
            }
        }
        assert_eq!(got, mix_expected(j), "client {j}");
    }
    assert_eq!(*wrong.lock().unwrap(), Vec::<String>::new());
    server.stop();
}
