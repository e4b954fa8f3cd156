//! A server handed over to a fresh `Server` (and `EventManager`) again and
//! again while clients keep working: quiesce → export → release → import →
//! resume, at least 20 times in a row. Real clients — Python's
//! `websockets` (echo with fragmented and compressed messages, ticks
//! broadcast every 10 ms), curl (a large download), raw sockets
//! (keep-alive and pipelined requests) — must see no disconnect and every
//! byte exactly once and in order; afterwards no descriptor is left open.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{fd_count, read_response};
use network_server::{
    Application, ClientId, Ctx, EventId, HttpEvent, Protocol, Server, ServerConfig, WsOpcode,
};
use std::io::Read;

/// The large download: 8 MiB that differ everywhere.
fn big_body() -> Vec<u8> {
    (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

struct App {
    big: event_manager::Bytes,
    ticks: u64,
}

impl Application for App {
    fn on_accept(&mut self, ctx: &mut Ctx<'_>, client: ClientId, _l: network_server::ListenerId) {
        if ctx.client_kind(client) == Ok(network_server::ClientKind::Raw) {
            ctx.raw_read(client, Vec::with_capacity(4096), None)
                .unwrap();
        }
    }

    fn on_raw_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: network_server::ReadBufs,
        result: Result<usize, network_server::Error>,
    ) {
        let network_server::ReadBufs::One(buf) = bufs else {
            return;
        };
        match result {
            Ok(n) if n > 0 => {
                ctx.raw_write(client, buf).unwrap();
                ctx.raw_read(client, Vec::with_capacity(4096), None)
                    .unwrap();
            }
            // The client went away at the end of the test.
            Ok(_) => ctx.raw_close(client).unwrap(),
            // A read cut by a handover must never reach the application.
            Err(e) => panic!("RAW read failed: {e}"),
        }
    }

    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        let HttpEvent::Request(req) = ev else { return };
        if req.path == "/ws" {
            ctx.ws_upgrade(client, req, None).unwrap();
        } else if req.path == "/big" {
            ctx.http_respond(client, 200, &[], self.big.clone())
                .unwrap();
        } else if let Some(n) = req.path.strip_prefix("/seq/") {
            ctx.http_respond(client, 200, &[], n.to_string()).unwrap();
        } else {
            ctx.http_respond(client, 404, &[], "").unwrap();
        }
    }

    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, op: WsOpcode, data: &[u8]) {
        if data == b"sub" {
            ctx.ws_subscribe(client, "ticks").unwrap();
        } else {
            ctx.ws_send(client, op, data.to_vec()).unwrap();
        }
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: EventId, _info: u64, _count: u64) {
        // One tick per delivery (a delivery may stand for several triggers):
        // what the clients check is that none is lost or repeated.
        self.ticks += 1;
        let msg = format!("tick:{}", self.ticks);
        ctx.ws_publish("ticks", WsOpcode::Text, msg.as_bytes());
        ctx.eventfd_prepare(event, 0).unwrap();
    }
}

/// Keep-alive requests one at a time, each answer checked.
fn keep_alive(addr: SocketAddr, until: Instant) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        s.write_all(format!("GET /seq/{n} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).expect("keep-alive connection closed");
        assert_eq!(r.body, n.to_string().as_bytes());
        n += 1;
    }
    n
}

/// 16 requests written at once, 16 answers read back in order.
fn pipelined(addr: SocketAddr, until: Instant) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        let mut batch = Vec::new();
        for i in n..n + 16 {
            write!(batch, "GET /seq/{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        }
        s.write_all(&batch).unwrap();
        for i in n..n + 16 {
            let r = read_response(&mut s, &mut buf, false).expect("pipelined connection closed");
            assert_eq!(r.body, i.to_string().as_bytes());
        }
        n += 16;
    }
    n
}

/// Numbered lines through the RAW echo, each read back in order.
fn raw_echo(addr: SocketAddr, until: Instant) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    let mut n = 0;
    while Instant::now() < until {
        let line = format!("line {n}\n");
        s.write_all(line.as_bytes()).unwrap();
        let mut got = vec![0u8; line.len()];
        s.read_exact(&mut got).expect("RAW connection closed");
        assert_eq!(got, line.as_bytes());
        n += 1;
    }
    n
}

/// curl downloads, each compared with the expected bytes.
fn downloads(addr: SocketAddr, until: Instant, want: &[u8]) -> usize {
    let mut n = 0;
    while Instant::now() < until || n == 0 {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "--max-time",
                "30",
                "--limit-rate",
                "20M",
                "-o",
                "-",
            ])
            .arg(format!("http://{addr}/big"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == want,
            "download {n} differs ({} bytes)",
            out.stdout.len()
        );
        n += 1;
    }
    n
}

fn websocket(addr: SocketAddr, seconds: f64, compression: &str) -> String {
    let url = format!("ws://{addr}/ws");
    common::run_python("ws_seq.py", &[&url, &seconds.to_string(), compression])
}

#[test]
fn twenty_handovers_under_load_lose_and_repeat_nothing() {
    const SECONDS: f64 = 8.0;
    let fds_before = fd_count();
    let big = big_body();
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_server = stop.clone();
    let big_server = big.clone();
    let server = std::thread::spawn(move || {
        let config = ServerConfig::default();
        let mut server = Server::new(config.clone()).unwrap();
        let l = server
            .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
            .unwrap();
        let mut app = App {
            big: big_server.into(),
            ticks: 0,
        };
        let mut ctx = server.ctx();
        let ev = ctx.eventfd_open().unwrap();
        ctx.eventfd_prepare(ev, 0).unwrap();
        let trigger = ctx.eventfd_trigger_handle(ev).unwrap();
        let raw = server
            .listen("127.0.0.1:0".parse().unwrap(), Protocol::Raw)
            .unwrap();
        tx.send((server.local_addr(l), server.local_addr(raw)))
            .unwrap();
        let ticking = Arc::new(AtomicBool::new(true));
        let ticker = {
            let ticking = ticking.clone();
            std::thread::spawn(move || {
                while ticking.load(Ordering::Relaxed) {
                    trigger.trigger().unwrap();
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let mut handovers = 0;
        let mut pauses = Vec::new();
        let limit = Instant::now() + Duration::from_secs(60);
        while !stop_server.load(Ordering::Relaxed) {
            assert!(Instant::now() < limit, "the clients did not finish");
            server
                .run_until(&mut app, Instant::now() + Duration::from_millis(100))
                .unwrap();
            let t = Instant::now();
            server.quiesce(&mut app).unwrap();
            let snap = server.export(&mut app).unwrap();
            let fds = server.release();
            assert_eq!(fds.len(), snap.fds.len());
            server = Server::import(config.clone(), &snap.bytes, fds, &mut app)
                .map_err(|(e, _)| e)
                .unwrap();
            server.resume(&mut app).unwrap();
            pauses.push(t.elapsed());
            handovers += 1;
        }
        ticking.store(false, Ordering::Relaxed);
        ticker.join().unwrap();
        drop(server);
        (handovers, pauses)
    });
    let (addr, raw_addr): (SocketAddr, SocketAddr) = rx.recv().unwrap();
    let until = Instant::now() + Duration::from_secs_f64(SECONDS);
    let clients = vec![
        std::thread::spawn(move || format!("keep-alive {}", keep_alive(addr, until))),
        std::thread::spawn(move || format!("pipelined {}", pipelined(addr, until))),
        std::thread::spawn(move || format!("raw {}", raw_echo(raw_addr, until))),
        std::thread::spawn(move || format!("downloads {}", downloads(addr, until, &big))),
        std::thread::spawn(move || websocket(addr, SECONDS, "deflate")),
        std::thread::spawn(move || websocket(addr, SECONDS, "none")),
    ];
    let results: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let (handovers, mut pauses) = server.join().unwrap();
    pauses.sort();
    eprintln!(
        "{handovers} handovers, pause median {:?}, max {:?}; clients: {results:?}",
        pauses[pauses.len() / 2],
        pauses.last().unwrap()
    );
    assert!(handovers >= 20, "only {handovers} handovers in {SECONDS} s");
    assert!(
        results[4].contains("permessage-deflate"),
        "deflate was not negotiated: {}",
        results[4]
    );
    assert_eq!(fd_count(), fds_before, "descriptors leaked or closed twice");
}

/// A server with one keep-alive client that sent half a request, quiesced.
fn quiesced_with_a_client() -> (Server, App, TcpStream) {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let l = server
        .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
        .unwrap();
    let addr = server.local_addr(l);
    let mut app = App {
        big: event_manager::Bytes::from_static(b"big"),
        ticks: 0,
    };
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(b"GET /seq/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /seq/2 HT")
        .unwrap();
    let mut buf = Vec::new();
    let mut got = None;
    let limit = Instant::now() + Duration::from_secs(10);
    while got.is_none() {
        assert!(Instant::now() < limit);
        server
            .run_until(&mut app, Instant::now() + Duration::from_millis(20))
            .unwrap();
        client.set_nonblocking(true).unwrap();
        let mut tmp = [0u8; 1024];
        if let Ok(n) = std::io::Read::read(&mut client, &mut tmp) {
            buf.extend_from_slice(&tmp[..n]);
        }
        client.set_nonblocking(false).unwrap();
        if buf.ends_with(b"\r\n\r\n1") {
            got = Some(());
        }
    }
    server.quiesce(&mut app).unwrap();
    (server, app, client)
}

fn finish_second_request(server: &mut Server, app: &mut App, client: &mut TcpStream) {
    client.write_all(b"TP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (tx, rx) = mpsc::channel();
    let mut c = client.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        tx.send(read_response(&mut c, &mut buf, false).map(|r| r.body))
            .unwrap();
    });
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        server
            .run_until(app, Instant::now() + Duration::from_millis(20))
            .unwrap();
        if let Ok(body) = rx.try_recv() {
            assert_eq!(body.as_deref(), Some(&b"2"[..]));
            break;
        }
        assert!(Instant::now() < limit, "no answer to the second request");
    }
    reader.join().unwrap();
}

#[test]
fn a_quiesced_server_can_roll_back_and_go_on() {
    let (mut server, mut app, mut client) = quiesced_with_a_client();
    let snap = server.export(&mut app).unwrap();
    assert_eq!(snap.fds.len(), 2, "the listener and the connection");
    server.resume(&mut app).unwrap();
    finish_second_request(&mut server, &mut app, &mut client);
}

#[test]
fn a_fresh_server_made_beforehand_takes_the_snapshot() {
    let (mut server, mut app, mut client) = quiesced_with_a_client();
    let snap = server.export(&mut app).unwrap();
    let fds = server.release();
    // A server that already holds something is refused, and gives the
    // descriptors back.
    let mut used = Server::new(ServerConfig::default()).unwrap();
    used.listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
        .unwrap();
    let (e, fds) = used
        .import_into(
            &snap.bytes,
            fds,
            event_manager::DescriptorCheck::Every,
            &mut app,
        )
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("fresh"), "{e}");
    assert_eq!(fds.len(), 2);
    let fresh = Server::new(ServerConfig::default()).unwrap();
    let mut server = fresh
        .import_into(
            &snap.bytes,
            fds,
            event_manager::DescriptorCheck::NonSockets,
            &mut app,
        )
        .map_err(|(e, _)| e)
        .unwrap();
    server.resume(&mut app).unwrap();
    finish_second_request(&mut server, &mut app, &mut client);
}

#[test]
fn snapshots_that_do_not_fit_are_refused_and_the_descriptors_come_back() {
    let (mut server, mut app, mut client) = quiesced_with_a_client();
    let snap = server.export(&mut app).unwrap();
    let config = ServerConfig::default();
    assert_eq!(Server::check_snapshot(&config, &snap.bytes), Ok(1));
    let fds = server.release();
    // A newer format version: refused, never misread.
    let mut newer = snap.bytes.clone();
    newer[4] = newer[4].wrapping_add(1);
    let (e, fds) = Server::import(config.clone(), &newer, fds, &mut app).unwrap_err();
    assert!(
        matches!(e, network_server::SnapshotError::UnsupportedVersion { .. }),
        "{e}"
    );
    // Every truncation is refused (and never panics).
    for n in 0..snap.bytes.len() {
        assert!(
            Server::check_snapshot(&config, &snap.bytes[..n]).is_err(),
            "truncated to {n}"
        );
    }
    // Too few descriptors: refused, and they all come back.
    let mut fds = fds;
    let last = fds.pop().unwrap();
    let (e, mut fds) = Server::import(config.clone(), &snap.bytes, fds, &mut app).unwrap_err();
    assert!(
        matches!(e, network_server::SnapshotError::Descriptors(_)),
        "{e}"
    );
    fds.push(last);
    // The right ones: the client's next request is answered as if nothing
    // had happened.
    let mut server = Server::import(config, &snap.bytes, fds, &mut app)
        .map_err(|(e, _)| e)
        .unwrap();
    server.resume(&mut app).unwrap();
    finish_second_request(&mut server, &mut app, &mut client);
}

/// A snapshot written by format version 1 (three clients: HTTP with a
/// pipelined partial request, HTTP inside a chunked body, WebSocket in a
/// fragmented message and subscribed to a topic) keeps reading: a change
/// to the format that breaks this needs a new version, not an edit here.
#[test]
fn a_version_1_snapshot_still_reads() {
    let bytes = include_bytes!("data/snapshot-v1.bin");
    assert_eq!(
        Server::check_snapshot(&ServerConfig::default(), bytes),
        Ok(3)
    );
}

/// The same clients written by format version 2 (version 1 plus each file
/// root's dotfile rule): pinned like version 1.
#[test]
fn a_version_2_snapshot_still_reads() {
    let bytes = include_bytes!("data/snapshot-v2.bin");
    assert_eq!(&bytes[4..6], &2u16.to_le_bytes());
    assert_eq!(
        Server::check_snapshot(&ServerConfig::default(), bytes),
        Ok(3)
    );
}

/// The same clients written by format version 3 (version 2 plus each
/// client's user value, `Ctx::set_user_data`): pinned like the others.
#[test]
fn a_version_3_snapshot_still_reads() {
    let bytes = include_bytes!("data/snapshot-v3.bin");
    assert_eq!(&bytes[4..6], &3u16.to_le_bytes());
    assert_eq!(
        Server::check_snapshot(&ServerConfig::default(), bytes),
        Ok(3)
    );
}
