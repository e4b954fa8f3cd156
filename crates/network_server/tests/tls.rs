//! HTTPS and WSS on a `Protocol::Https` listener, with rustls's own client
//! (a real peer we did not write; curl and openssl are exercised through
//! `ringtail serve` in the ringtail crate's tests) and raw sockets for the
//! hostile inputs: garbage, plain HTTP, a ClientHello one byte at a time,
//! a truncated record, a reset mid-handshake, a silent client. Every case
//! checks the counters, that other clients are served meanwhile, and that
//! no descriptor is left behind.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fd_count, read_response, spawn_on, wait_until, Running};
use network_server::rustls;
use network_server::{
    Application, ClientId, CloseReason, Ctx, HttpEvent, Protocol, ServerConfig, ServerStats,
    WsOpcode,
};

/// A certificate for `localhost` / 127.0.0.1, made for this run.
struct TestCert {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    roots: rustls::RootCertStore,
}

fn test_cert() -> TestCert {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_der = cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(signing_key.serialize_der()).unwrap();
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key_der)
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let mut client = rustls::ClientConfig::builder()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    TestCert {
        server: Arc::new(server),
        client: Arc::new(client),
        roots,
    }
}

#[derive(Default)]
struct Seen {
    stats: ServerStats,
    closes: Vec<CloseReason>,
    ws_messages: usize,
}

/// `/hello`, `/big?N` (N bytes), POST `/count` (answers the body's
/// length), POST `/echo`, `/ws` (WebSocket echo).
struct App {
    seen: Arc<Mutex<Seen>>,
    body: Vec<u8>,
    count: u64,
    echo: bool,
}

impl App {
    fn new(seen: Arc<Mutex<Seen>>) -> App {
        App {
            seen,
            body: Vec::new(),
            count: 0,
            echo: false,
        }
    }
}

impl Application for App {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        self.seen.lock().unwrap().stats = ctx.stats();
        match ev {
            HttpEvent::Request(req) => {
                self.body.clear();
                self.count = 0;
                self.echo = req.path == "/echo";
                match req.path {
                    "/ws" => {
                        ctx.ws_upgrade(client, req, None).unwrap();
                    }
                    "/big" => {
                        let n: usize = req.query.unwrap_or("0").parse().unwrap();
                        let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
                        ctx.http_respond(client, 200, &[], body).unwrap();
                    }
                    _ if !req.body.has_body() => {
                        ctx.http_respond(client, 200, &[], "hello").unwrap();
                    }
                    _ => {}
                }
            }
            HttpEvent::Body(chunk) => {
                self.count += chunk.len() as u64;
                if self.echo {
                    self.body.extend_from_slice(chunk);
                }
            }
            HttpEvent::BodyEnd => {
                let reply = if self.echo {
                    std::mem::take(&mut self.body)
                } else {
                    self.count.to_string().into_bytes()
                };
                ctx.http_respond(client, 200, &[], reply).unwrap();
            }
        }
    }

    fn on_http_close(&mut self, ctx: &mut Ctx<'_>, _client: ClientId, reason: CloseReason) {
        let mut s = self.seen.lock().unwrap();
        s.stats = ctx.stats();
        s.closes.push(reason);
    }

    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, op: WsOpcode, data: &[u8]) {
        self.seen.lock().unwrap().ws_messages += 1;
        if matches!(op, WsOpcode::Text | WsOpcode::Binary) {
            ctx.ws_send(client, op, data.to_vec()).unwrap();
        }
    }

    fn on_ws_close(&mut self, ctx: &mut Ctx<'_>, _client: ClientId, reason: CloseReason) {
        let mut s = self.seen.lock().unwrap();
        s.stats = ctx.stats();
        s.closes.push(reason);
    }
}

fn start(config: ServerConfig) -> (Running, Arc<Mutex<Seen>>, TestCert) {
    let cert = test_cert();
    let mut config = config;
    config.tls = Some(cert.server.clone());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let running = spawn_on(config, Protocol::Https, move |_| App::new(s2));
    (running, seen, cert)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(addr: SocketAddr, cert: &TestCert) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(cert.client.clone(), "localhost".try_into().unwrap())
        .unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

fn get(s: &mut Tls, path: &str) -> common::Response {
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    s.flush().unwrap();
    read_response(s, &mut Vec::new(), false).expect("a response")
}

fn stats(seen: &Arc<Mutex<Seen>>) -> ServerStats {
    seen.lock().unwrap().stats
}

/// A plain request after every hostile case: the server still serves.
fn still_serves(addr: SocketAddr, cert: &TestCert) {
    let mut s = tls_connect(addr, cert);
    let r = get(&mut s, "/hello");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn https_keep_alive_pipelining_and_large_bodies() {
    let fds = fd_count();
    let (server, seen, cert) = start(ServerConfig::default());
    let mut s = tls_connect(server.addr, &cert);
    // Keep-alive: three requests on one session.
    for _ in 0..3 {
        let r = get(&mut s, "/hello");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    }
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    // Pipelined: sixteen requests in one write, sixteen answers in order.
    let mut reqs = Vec::new();
    for i in 0..16 {
        write!(reqs, "GET /big?{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    }
    s.write_all(&reqs).unwrap();
    let mut buf = Vec::new();
    for i in 0..16usize {
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.body.len(), i);
    }
    // A 5 MiB answer (hundreds of records) arrives whole and in order.
    let r = get(&mut s, "/big?5242880");
    assert_eq!(r.body.len(), 5 << 20);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
    // A 3 MiB body echoed back.
    let body: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    write!(
        s,
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert!(r.body == body, "echoed body differs");
    // The client ends with close_notify: the server answers with its own
    // (a clean end of the TLS stream, not a truncation) and closes.
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    let end = s.read_to_end(&mut rest);
    assert!(end.is_ok(), "server closed without close_notify: {end:?}");
    assert!(wait_until(Duration::from_secs(5), || stats(&seen).closed >= 1));
    let st = stats(&seen);
    assert_eq!(st.tls_handshakes, 1);
    assert_eq!(st.tls_handshake_failures + st.tls_errors, 0);
    drop(s);
    server.stop();
    assert!(wait_until(Duration::from_secs(5), || fd_count() <= fds));
}

#[test]
fn server_closes_with_close_notify_after_connection_close() {
    let (server, _seen, cert) = start(ServerConfig::default());
    let mut s = tls_connect(server.addr, &cert);
    write!(
        s,
        "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s.flush().unwrap();
    let mut all = Vec::new();
    // `read_to_end` fails with UnexpectedEof if the TCP stream ends
    // without close_notify.
    s.read_to_end(&mut all).expect("a clean TLS close");
    assert!(all.starts_with(b"HTTP/1.1 200"));
    assert!(all.ends_with(b"hello"));
    server.stop();
}

#[test]
fn tls12_and_tls13_both_work() {
    let (server, seen, cert) = start(ServerConfig::default());
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut cfg = rustls::ClientConfig::builder_with_protocol_versions(&[version])
            .with_root_certificates(cert.roots.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn =
            rustls::ClientConnection::new(Arc::new(cfg), "localhost".try_into().unwrap()).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let r = get(&mut s, "/big?100000");
        assert_eq!(r.body.len(), 100000);
        assert_eq!(s.conn.protocol_version(), Some(version.version));
    }
    assert!(
        wait_until(Duration::from_secs(5), || stats(&seen).tls_handshakes >= 2) || {
            // Stats are copied at callbacks: one more request refreshes them.
            still_serves(server.addr, &cert);
            stats(&seen).tls_handshakes >= 2
        }
    );
    server.stop();
}

#[test]
fn websocket_over_tls_echoes() {
    let (server, seen, cert) = start(ServerConfig::default());
    let mut s = tls_connect(server.addr, &cert);
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), true).unwrap();
    assert_eq!(r.status, 101);
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(s, tungstenite::protocol::Role::Client, None);
    for i in 0..100 {
        let msg = format!("message {i} ").repeat(i + 1);
        ws.send(tungstenite::Message::text(msg.clone())).unwrap();
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => assert_eq!(t.as_str(), msg),
            other => panic!("unexpected {other:?}"),
        }
    }
    // A 1 MiB binary message, split over many records both ways.
    let big: Vec<u8> = (0..1u32 << 20).map(|i| i as u8).collect();
    ws.send(tungstenite::Message::binary(big.clone())).unwrap();
    match ws.read().unwrap() {
        tungstenite::Message::Binary(b) => assert!(b[..] == big[..]),
        other => panic!("unexpected {other:?}"),
    }
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    assert!(wait_until(Duration::from_secs(5), || seen
        .lock()
        .unwrap()
        .ws_messages
        >= 101));
    server.stop();
}

/// Sends `bytes` raw, then reads until the server closes; returns what it
/// sent back.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut back = Vec::new();
    let _ = s.read_to_end(&mut back);
    back
}

#[test]
fn plain_http_on_the_tls_port_gets_a_400() {
    let fds = fd_count();
    let (server, seen, cert) = start(ServerConfig::default());
    let back = raw_exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&back);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("expects TLS"), "{text}");
    still_serves(server.addr, &cert);
    let st = stats(&seen);
    assert_eq!(st.tls_plain_http, 1);
    assert!(seen.lock().unwrap().closes.contains(&CloseReason::Tls));
    server.stop();
    assert!(wait_until(Duration::from_secs(5), || fd_count() <= fds));
}

#[test]
fn garbage_truncation_and_resets_are_closed_and_counted() {
    let fds = fd_count();
    let (server, seen, cert) = start(ServerConfig::default());
    // Not a TLS record at all (a lower-case start is not taken for HTTP).
    let back = raw_exchange(server.addr, &[0x01; 64]);
    assert!(back.len() < 64, "no echo of garbage: {back:?}");
    // A handshake record header promising more than TLS allows.
    raw_exchange(server.addr, &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01]);
    // A ClientHello cut short, then the client closes its side.
    let hello = client_hello_bytes(&cert);
    {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(&hello[..hello.len() / 2]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut back = Vec::new();
        let _ = s.read_to_end(&mut back);
    }
    // A reset in the middle of the handshake (SO_LINGER 0).
    {
        let s = socket2::Socket::from(TcpStream::connect(server.addr).unwrap());
        s.set_linger(Some(Duration::ZERO)).unwrap();
        let mut t = TcpStream::from(s);
        t.write_all(&hello).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(t);
    }
    still_serves(server.addr, &cert);
    assert!(wait_until(Duration::from_secs(5), || {
        still_serves(server.addr, &cert);
        let st = stats(&seen);
        st.tls_handshake_failures >= 2 && st.closed >= 4
    }));
    server.stop();
    assert!(wait_until(Duration::from_secs(5), || fd_count() <= fds));
}

/// The first flight a rustls client sends (its ClientHello record).
fn client_hello_bytes(cert: &TestCert) -> Vec<u8> {
    let mut c = rustls::ClientConnection::new(cert.client.clone(), "localhost".try_into().unwrap())
        .unwrap();
    let mut out = Vec::new();
    c.write_tls(&mut out).unwrap();
    out
}

#[test]
fn a_client_hello_one_byte_at_a_time_completes() {
    let (server, _seen, cert) = start(ServerConfig::default());
    let mut conn =
        rustls::ClientConnection::new(cert.client.clone(), "localhost".try_into().unwrap())
            .unwrap();
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    for b in &hello {
        tcp.write_all(std::slice::from_ref(b)).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let r = get(&mut s, "/hello");
    assert_eq!(r.status, 200);
    server.stop();
}

#[test]
fn a_silent_or_stalled_handshake_times_out() {
    let fds = fd_count();
    let config = ServerConfig {
        tls_handshake_timeout: Duration::from_millis(400),
        timer_tick: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let (server, seen, cert) = start(config);
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.write_all(&client_hello_bytes(&cert)[..20]).unwrap();
    // Others are served meanwhile.
    still_serves(server.addr, &cert);
    for s in [&mut silent, &mut stalled] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut back = Vec::new();
        let _ = s.read_to_end(&mut back);
    }
    assert!(wait_until(Duration::from_secs(5), || {
        stats(&seen).tls_handshake_timeouts >= 2
    }));
    let closes = seen.lock().unwrap().closes.clone();
    assert_eq!(
        closes
            .iter()
            .filter(|r| **r == CloseReason::Timeout)
            .count(),
        2,
        "{closes:?}"
    );
    // A finished handshake is not cut by the handshake timeout.
    let mut s = tls_connect(server.addr, &cert);
    get(&mut s, "/hello");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(get(&mut s, "/hello").status, 200);
    drop((silent, stalled, s));
    server.stop();
    assert!(wait_until(Duration::from_secs(5), || fd_count() <= fds));
}

#[test]
fn a_tls_peer_that_never_reads_is_closed_by_the_write_progress_timeout() {
    let fds = fd_count();
    let config = ServerConfig {
        write_progress_timeout: Duration::from_millis(500),
        timer_tick: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let (server, seen, cert) = start(config);
    let mut s = tls_connect(server.addr, &cert);
    // Handshake done, then an 8 MiB answer asked for and never read.
    get(&mut s, "/hello");
    write!(s, "GET /big?8388608 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    s.flush().unwrap();
    // Others are served while it stalls.
    still_serves(server.addr, &cert);
    assert!(wait_until(Duration::from_secs(10), || {
        seen.lock().unwrap().closes.contains(&CloseReason::Timeout)
    }));
    assert!(stats(&seen).write_timeouts >= 1);
    drop(s);
    server.stop();
    assert!(wait_until(Duration::from_secs(5), || fd_count() <= fds));
}

#[test]
fn graceful_shutdown_ends_tls_connections_with_close_notify() {
    let cert = test_cert();
    let config = ServerConfig {
        tls: Some(cert.server.clone()),
        ..ServerConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let join = std::thread::spawn(move || {
        let mut server = network_server::Server::new(config).unwrap();
        let l = server
            .listen("127.0.0.1:0".parse().unwrap(), Protocol::Https)
            .unwrap();
        let handle = server.shutdown_handle(Duration::from_secs(5)).unwrap();
        tx.send((server.local_addr(l), handle)).unwrap();
        let mut app = App::new(s2);
        server.run(&mut app).unwrap();
    });
    let (addr, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut idle = tls_connect(addr, &cert);
    assert_eq!(get(&mut idle, "/hello").status, 200);
    handle.shutdown().unwrap();
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest)
        .expect("the idle TLS connection ends with close_notify");
    assert!(rest.is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !join.is_finished() {
        assert!(std::time::Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    join.join().unwrap();
    assert!(seen.lock().unwrap().closes.contains(&CloseReason::Shutdown));
}

/// The test certificate's settings with session keys extractable, as a
/// handover needs (`network_server::tls::server_config` sets it too).
fn handover_config(cert: &TestCert) -> ServerConfig {
    let mut tls = (*cert.server).clone();
    tls.enable_secret_extraction = true;
    ServerConfig {
        tls: Some(Arc::new(tls)),
        ..ServerConfig::default()
    }
}

/// Quiesce → export → release → import into a fresh server → resume.
fn hand_over(
    mut server: network_server::Server,
    config: &ServerConfig,
    app: &mut App,
) -> network_server::Server {
    server.quiesce(app).unwrap();
    let snap = server.export(app).unwrap();
    let fds = server.release();
    let mut server = network_server::Server::import(config.clone(), &snap.bytes, fds, app)
        .map_err(|(e, _)| e)
        .unwrap();
    server.resume(app).unwrap();
    server
}

/// A client config offering only `suite` over `version`.
fn client_for(
    cert: &TestCert,
    version: &'static rustls::SupportedProtocolVersion,
    suite: rustls::SupportedCipherSuite,
) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = vec![suite];
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(cert.roots.clone())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Keep-alive requests until `until` on one TLS session of `cfg`, each
/// answer checked; then a clean close. Returns the requests made.
fn tls_keep_alive(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    until: std::time::Instant,
) -> usize {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(cfg, "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let mut n = 0;
    while std::time::Instant::now() < until {
        let size = 1 + (n * 7919) % 40_000;
        // Two pipelined requests, so some are in flight at a handover.
        write!(
            s,
            "GET /big?{size} HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        .unwrap();
        s.flush().unwrap();
        let r = read_response(&mut s, &mut buf, false).expect("an answer");
        assert_eq!(r.body.len(), size);
        assert!(r
            .body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8));
        let r = read_response(&mut s, &mut buf, false).expect("an answer");
        assert_eq!(r.body, b"hello");
        n += 2;
    }
    s.conn.send_close_notify();
    s.flush().unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("a clean TLS close after the handovers");
    n
}

#[test]
fn tls_sessions_survive_repeated_handovers() {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let fds_before = fd_count();
    let cert = test_cert();
    let config = handover_config(&cert);
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_server = stop.clone();
    let server = std::thread::spawn(move || {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut app = App::new(seen.clone());
        let mut server = network_server::Server::new(config.clone()).unwrap();
        let l = server
            .listen("127.0.0.1:0".parse().unwrap(), Protocol::Https)
            .unwrap();
        tx.send(server.local_addr(l)).unwrap();
        let mut handovers = 0;
        let limit = std::time::Instant::now() + Duration::from_secs(60);
        while !stop_server.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(
                std::time::Instant::now() < limit,
                "the clients did not finish"
            );
            server
                .run_until(
                    &mut app,
                    std::time::Instant::now() + Duration::from_millis(50),
                )
                .unwrap();
            server = hand_over(server, &config, &mut app);
            handovers += 1;
        }
        // Let the clients' closes finish.
        server
            .run_until(
                &mut app,
                std::time::Instant::now() + Duration::from_millis(300),
            )
            .unwrap();
        drop(server);
        let st = seen.lock().unwrap().stats;
        (handovers, st)
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(4);
    let mut clients = Vec::new();
    for (version, suite) in [
        (&rustls::version::TLS13, cs::TLS13_AES_128_GCM_SHA256),
        (&rustls::version::TLS13, cs::TLS13_AES_256_GCM_SHA384),
        (&rustls::version::TLS13, cs::TLS13_CHACHA20_POLY1305_SHA256),
        (
            &rustls::version::TLS12,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            &rustls::version::TLS12,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            &rustls::version::TLS12,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ] {
        let cfg = client_for(&cert, version, suite);
        clients.push(std::thread::spawn(move || {
            (format!("{suite:?}"), tls_keep_alive(addr, cfg, until))
        }));
    }
    // A WebSocket over TLS across the handovers too.
    let ws_cert = cert.client.clone();
    let ws = std::thread::spawn(move || {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ClientConnection::new(ws_cert, "localhost".try_into().unwrap()).unwrap();
        let mut s = rustls::StreamOwned::new(conn, tcp);
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            read_response(&mut s, &mut Vec::new(), true).unwrap().status,
            101
        );
        let mut ws =
            tungstenite::WebSocket::from_raw_socket(s, tungstenite::protocol::Role::Client, None);
        let mut n = 0;
        while std::time::Instant::now() < until {
            let msg = format!("message {n}");
            ws.send(tungstenite::Message::text(msg.clone())).unwrap();
            match ws.read().unwrap() {
                tungstenite::Message::Text(t) => assert_eq!(t.as_str(), msg),
                other => panic!("unexpected {other:?}"),
            }
            n += 1;
        }
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
        n
    });
    let results: Vec<(String, usize)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ws_messages = ws.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (handovers, stats) = server.join().unwrap();
    eprintln!("{handovers} handovers; {results:?}; ws {ws_messages}; {stats:?}");
    assert!(handovers >= 20, "only {handovers} handovers");
    for (suite, n) in &results {
        assert!(*n >= 20, "{suite}: only {n} requests");
    }
    assert!(ws_messages >= 20);
    assert_eq!(stats.tls_errors, 0);
    assert!(wait_until(Duration::from_secs(5), || fd_count() <= fds_before));
}

/// A write cut short by the quiesce (the peer was not reading) leaves
/// sealed records unwritten: the new server writes them first, and the
/// answer arrives whole.
#[test]
fn an_answer_cut_by_a_handover_arrives_whole() {
    let cert = test_cert();
    let config = handover_config(&cert);
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let mut app = App::new(Arc::new(Mutex::new(Seen::default())));
        let mut server = network_server::Server::new(config.clone()).unwrap();
        let l = server
            .listen("127.0.0.1:0".parse().unwrap(), Protocol::Https)
            .unwrap();
        tx.send(server.local_addr(l)).unwrap();
        // Serve until told, then one handover, then serve on.
        while go_rx.try_recv().is_err() {
            server
                .run_until(
                    &mut app,
                    std::time::Instant::now() + Duration::from_millis(20),
                )
                .unwrap();
        }
        let mut server = hand_over(server, &config, &mut app);
        // Serve until the client is done (bounded).
        let limit = std::time::Instant::now() + Duration::from_secs(20);
        while go_rx.try_recv().is_err() && std::time::Instant::now() < limit {
            server
                .run_until(
                    &mut app,
                    std::time::Instant::now() + Duration::from_millis(20),
                )
                .unwrap();
        }
    });
    let addr = rx.recv().unwrap();
    let mut s = tls_connect(addr, &cert);
    assert_eq!(get(&mut s, "/hello").status, 200);
    // 8 MiB asked for and not read yet: the server's write stops when the
    // socket buffers are full.
    write!(s, "GET /big?8388608 HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    go_tx.send(()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = read_response(&mut s, &mut Vec::new(), false).expect("the whole answer");
    assert_eq!(r.body.len(), 8 << 20);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));
    assert_eq!(get(&mut s, "/hello").status, 200);
    drop(s);
    go_tx.send(()).unwrap();
    server.join().unwrap();
}
