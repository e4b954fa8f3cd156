//! `Application::on_ws_open` and the per-client user data
//! (`Ctx::set_user_data` / `Ctx::user_data`), with real clients on
//! loopback (tungstenite, raw sockets): the open comes once per upgrade,
//! before the client's first message (even one sent in the same packet as
//! the upgrade request) and before its close; a failed upgrade has none;
//! the value is readable until the close callback returns and then stale;
//! it goes with the client through a handover to a fresh server and a
//! fresh application.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::read_response;
use network_server::{
    Application, ClientId, ClientKind, CloseReason, Ctx, Error, HttpEvent, Protocol, Server,
    ServerConfig, WsOpcode,
};

/// Records what it was told, in order, with each client's user data.
#[derive(Default)]
struct App {
    events: Vec<String>,
    closed: Vec<ClientId>,
}

impl Application for App {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        let HttpEvent::Request(req) = ev else { return };
        if let Some(tag) = req.path.strip_prefix("/ws/") {
            let tag: u64 = tag.parse().unwrap();
            match ctx.ws_upgrade(client, req, None) {
                Ok(()) => {
                    ctx.set_user_data(client, tag).unwrap();
                    self.events.push(format!("upgraded {tag}"));
                }
                Err(e) => self.events.push(format!("refused {tag}: {e}")),
            }
        } else if let Some(v) = req.path.strip_prefix("/set/") {
            ctx.set_user_data(client, v.parse().unwrap()).unwrap();
            ctx.http_respond(client, 200, &[], "set").unwrap();
        } else {
            let v = ctx.user_data(client).unwrap();
            ctx.http_respond(client, 200, &[], v.to_string()).unwrap();
        }
    }

    fn on_ws_open(&mut self, ctx: &mut Ctx<'_>, client: ClientId) {
        assert_eq!(ctx.client_kind(client), Ok(ClientKind::WebSocket));
        let v = ctx.user_data(client).unwrap();
        self.events.push(format!("open {v}"));
        ctx.ws_send(client, WsOpcode::Text, format!("hello {v}").into_bytes())
            .unwrap();
    }

    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, op: WsOpcode, data: &[u8]) {
        let v = ctx.user_data(client).unwrap();
        let text = String::from_utf8_lossy(data);
        self.events.push(format!("read {v} {text}"));
        if op == WsOpcode::Text {
            ctx.ws_send(client, op, format!("{v}: {text}").into_bytes())
                .unwrap();
        }
    }

    fn on_ws_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, _reason: CloseReason) {
        let v = ctx.user_data(client).unwrap();
        self.events.push(format!("close {v}"));
        // Leaving: it can be read, not set.
        assert_eq!(ctx.set_user_data(client, 1), Err(Error::Stale(client)));
        self.closed.push(client);
    }

    fn on_http_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, _reason: CloseReason) {
        let v = ctx.user_data(client).unwrap();
        self.events.push(format!("http close {v}"));
    }
}

fn server() -> (Server, SocketAddr) {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let l = server
        .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
        .unwrap();
    let addr = server.local_addr(l);
    (server, addr)
}

/// Runs the server until `done` says so (bounded).
fn pump(server: &mut Server, app: &mut App, what: &str, mut done: impl FnMut(&App) -> bool) {
    let limit = Instant::now() + Duration::from_secs(20);
    while !done(app) {
        assert!(
            Instant::now() < limit,
            "timed out waiting for {what}: {:?}",
            app.events
        );
        server
            .run_until(app, Instant::now() + Duration::from_millis(10))
            .unwrap();
    }
}

const HANDSHAKE: &str = "Host: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A masked client text frame.
fn frame(text: &str) -> Vec<u8> {
    assert!(text.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Reads one unmasked, uncompressed server text frame (after the 101 head,
/// which `buf` may still hold).
fn read_text(s: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if buf.len() >= 2 {
            assert_eq!(buf[0], 0x81, "a final text frame");
            let len = usize::from(buf[1] & 0x7f);
            assert!(len < 126);
            if buf.len() >= 2 + len {
                let text = String::from_utf8(buf[2..2 + len].to_vec()).unwrap();
                buf.drain(..2 + len);
                return text;
            }
        }
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "the server closed");
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Reads the 101 head; what follows it stays in `buf`.
fn read_101(s: &mut TcpStream, buf: &mut Vec<u8>) {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut tmp = [0u8; 4096];
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&tmp[..n]);
    };
    assert!(
        buf.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(buf)
    );
    buf.drain(..end);
}

#[test]
fn the_open_comes_before_the_first_message_even_in_the_same_packet() {
    let (mut server, addr) = server();
    let mut app = App::default();
    let (tx, rx) = mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // The upgrade request and a first message in one write.
        let mut out = format!("GET /ws/7 HTTP/1.1\r\n{HANDSHAKE}").into_bytes();
        out.extend_from_slice(&frame("early"));
        s.write_all(&out).unwrap();
        let mut buf = Vec::new();
        read_101(&mut s, &mut buf);
        let first = read_text(&mut s, &mut buf);
        let second = read_text(&mut s, &mut buf);
        tx.send((first, second)).unwrap();
        // A close frame (masked, no payload), then wait for the server's.
        s.write_all(&[0x88, 0x80, 0, 0, 0, 0]).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    pump(&mut server, &mut app, "the close", |a| !a.closed.is_empty());
    let (first, second) = rx.recv().unwrap();
    assert_eq!(first, "hello 7", "on_ws_open's greeting goes first");
    assert_eq!(second, "7: early");
    assert_eq!(
        app.events,
        ["upgraded 7", "open 7", "read 7 early", "close 7"]
    );
    // After its close callback the client and its value are gone.
    let gone = app.closed[0];
    assert_eq!(server.ctx().user_data(gone), Err(Error::Stale(gone)));
    client.join().unwrap();
}

#[test]
fn a_refused_upgrade_has_no_open_and_http_clients_keep_their_value() {
    let (mut server, addr) = server();
    let mut app = App::default();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = Vec::new();
        // A keep-alive client: 0 until set, then what was set.
        s.write_all(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let a = read_response(&mut s, &mut buf, false).unwrap().body;
        s.write_all(b"GET /set/99 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        read_response(&mut s, &mut buf, false).unwrap();
        s.write_all(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let b = read_response(&mut s, &mut buf, false).unwrap().body;
        // Not a handshake: 400 and closed, and no open.
        s.write_all(b"GET /ws/5 HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let refused = read_response(&mut s, &mut buf, false).unwrap().status;
        (a, b, refused)
    });
    pump(&mut server, &mut app, "the HTTP close", |a| {
        a.events.iter().any(|e| e.starts_with("http close"))
    });
    let (a, b, refused) = client.join().unwrap();
    assert_eq!(
        (a.as_slice(), b.as_slice(), refused),
        (&b"0"[..], &b"99"[..], 400)
    );
    assert_eq!(app.events.len(), 2, "{:?}", app.events);
    assert!(app.events[0].starts_with("refused 5"), "{:?}", app.events);
    assert_eq!(app.events[1], "http close 99");
}

/// A WebSocket and a keep-alive HTTP client, each with its value, through
/// quiesce → export → release → import (a fresh server *and* a fresh
/// application, as in a new process) → resume.
#[test]
fn user_data_goes_with_its_client_through_a_handover() {
    let (mut server, addr) = server();
    let mut app = App::default();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let ws_client = std::thread::spawn(move || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws/42"), s).unwrap();
        let hello = ws.read().unwrap().into_text().unwrap().to_string();
        go_rx.recv().unwrap();
        ws.send(tungstenite::Message::text("after")).unwrap();
        let reply = ws.read().unwrap().into_text().unwrap().to_string();
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
        (hello, reply)
    });
    let mut http = TcpStream::connect(addr).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    http.write_all(b"GET /set/7 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut http2 = http.try_clone().unwrap();
    let (resp_tx, resp_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        for _ in 0..2 {
            let r = read_response(&mut http2, &mut buf, false).unwrap();
            resp_tx.send(r.body).unwrap();
        }
    });
    pump(&mut server, &mut app, "the open", |a| {
        a.events.contains(&"open 42".to_string())
    });
    let limit = Instant::now() + Duration::from_secs(20);
    let set = loop {
        if let Ok(b) = resp_rx.try_recv() {
            break b;
        }
        assert!(Instant::now() < limit);
        server
            .run_until(&mut app, Instant::now() + Duration::from_millis(10))
            .unwrap();
    };
    assert_eq!(set, b"set");

    server.quiesce(&mut app).unwrap();
    let snap = server.export(&mut app).unwrap();
    assert_eq!(&snap.bytes[4..6], &4u16.to_le_bytes(), "format version 4");
    assert_eq!(
        Server::check_snapshot(&ServerConfig::default(), &snap.bytes),
        Ok(2)
    );
    let fds = server.release();
    let mut app = App::default();
    let mut server = Server::import(ServerConfig::default(), &snap.bytes, fds, &mut app)
        .map_err(|(e, _)| e)
        .unwrap();
    server.resume(&mut app).unwrap();

    go_tx.send(()).unwrap();
    http.write_all(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    pump(&mut server, &mut app, "the WebSocket close", |a| {
        !a.closed.is_empty()
    });
    let got = loop {
        if let Ok(b) = resp_rx.try_recv() {
            break b;
        }
        assert!(Instant::now() < limit);
        server
            .run_until(&mut app, Instant::now() + Duration::from_millis(10))
            .unwrap();
    };
    assert_eq!(got, b"7", "the HTTP client's value came over");
    let (hello, reply) = ws_client.join().unwrap();
    assert_eq!(hello, "hello 42");
    assert_eq!(reply, "42: after", "the WebSocket's value came over");
    // The imported clients were opened before the handover: no second open.
    assert_eq!(app.events, ["read 42 after", "close 42"]);
    drop(http);
    reader.join().unwrap();
}
