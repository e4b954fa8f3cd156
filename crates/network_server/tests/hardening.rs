//! Hostile and unlucky peers (issue 11): a pause of reading that must not
//! be lost, peers that never read what they ask for, a body cut off by the
//! peer, and an application callback that panics. Every test drives the
//! real server over loopback sockets.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect, read_response, spawn, wait_until};
use network_server::{
    Application, ClientId, CloseReason, Ctx, EventId, HttpEvent, OutBuf, ServerConfig, ServerStats,
    WsOpcode,
};

/// What the test applications report back to the test thread.
#[derive(Debug, Default)]
struct Report {
    stats: ServerStats,
    closes: Vec<(ClientId, CloseReason)>,
}

/// Writes `total` bytes of `chunk` repeated on a clone of `s` from a thread,
/// counting what the kernel took; returns the count and a stop flag.
fn flood(s: &TcpStream, chunk: Vec<u8>, total: usize) -> (Arc<AtomicUsize>, Arc<AtomicBool>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (sent2, stop2) = (sent.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut off = 0;
        while sent2.load(Ordering::Relaxed) < total && !stop2.load(Ordering::Relaxed) {
            match w.write(&chunk[off..]) {
                Ok(n) => {
                    sent2.fetch_add(n, Ordering::Relaxed);
                    off = (off + n) % chunk.len();
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
    });
    (sent, stop)
}

/// Waits until `sent` stops growing for `quiet` or reaches `cap` (bounded
/// by 30 s); returns the final count.
fn settle(sent: &AtomicUsize, cap: usize, quiet: Duration) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = sent.load(Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = sent.load(Ordering::Relaxed);
        if now >= cap || Instant::now() > deadline {
            return now;
        }
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
    }
}

// ----- 1. a pause of reading is never lost ---------------------------------

/// Answers nothing until its eventfd fires, then answers every request
/// at once (the pending ones and all later ones).
struct AnswerLater {
    pending: Vec<ClientId>,
    open: bool,
    report: Arc<Mutex<Report>>,
}

impl Application for AnswerLater {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        if let HttpEvent::Request(_) = ev {
            if self.open {
                ctx.http_respond(client, 200, &[], &b"ok"[..]).unwrap();
            } else {
                self.pending.push(client);
            }
        }
        self.report.lock().unwrap().stats = ctx.stats();
    }
    fn on_event(&mut self, ctx: &mut Ctx<'_>, _ev: EventId, _info: u64, _count: u64) {
        self.open = true;
        for client in self.pending.drain(..) {
            ctx.http_respond(client, 200, &[], &b"ok"[..]).unwrap();
        }
        self.report.lock().unwrap().stats = ctx.stats();
    }
}

/// A 1 KiB pipelined request.
fn padded_get() -> Vec<u8> {
    let mut r = b"GET /p HTTP/1.1\r\nHost: a\r\nX-Pad: ".to_vec();
    r.resize(1024 - 4, b'a');
    r.extend_from_slice(b"\r\n\r\n");
    r
}

#[test]
fn a_flood_of_pipelined_requests_behind_a_late_answer_stays_bounded_with_one_receive_buffer() {
    // One receive buffer: a multishot receive runs out of buffers (ENOBUFS)
    // all the time, which is where a cancel used to get lost.
    let mut config = ServerConfig {
        max_pipelined_bytes: 8 * 1024,
        ..Default::default()
    };
    config.ring.recv_buffers = 1;
    config.ring.recv_buffer_size = 16 * 1024;
    let report = Arc::new(Mutex::new(Report::default()));
    let (tx, rx) = std::sync::mpsc::channel();
    let r2 = report.clone();
    let server = spawn(config, move |server| {
        let mut ctx = server.ctx();
        let ev = ctx.eventfd_open().unwrap();
        ctx.eventfd_prepare(ev, 0).unwrap();
        tx.send(ctx.eventfd_trigger_handle(ev).unwrap()).unwrap();
        AnswerLater {
            pending: Vec::new(),
            open: false,
            report: r2,
        }
    });
    let trigger = rx.recv().unwrap();
    let mut s = connect(server.addr);
    let req = padded_get();
    let chunk: Vec<u8> = req.iter().copied().cycle().take(64 * req.len()).collect();
    // More than loopback's socket buffers can hold (about 10 MiB): a server
    // that keeps reading takes it all.
    let total = 48 << 20;
    let (sent, _stop) = flood(&s, chunk, total);
    let held = settle(&sent, total, Duration::from_millis(500));
    assert!(
        held < total,
        "the server kept reading: {held} bytes of pipelined requests taken while the first waited"
    );
    let buffered = report.lock().unwrap().stats.input_high_water;
    assert!(
        buffered <= 8 * 1024 + 2 * 16 * 1024,
        "{buffered} bytes of input buffered on one connection (limit 8 KiB + a receive)"
    );
    // Now answer: every request is answered, in order, and reading resumes
    // without waiting for any timeout (the writer finishes everything).
    trigger.trigger().unwrap();
    let n = total / req.len();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    for i in 0..n {
        let r = read_response(&mut s, &mut buf, false)
            .unwrap_or_else(|| panic!("response {i} of {n} missing"));
        assert_eq!(r.status, 200);
    }
    assert_eq!(sent.load(Ordering::Relaxed), total);
    let stats = report.lock().unwrap().stats;
    assert!(
        stats.input_high_water <= 8 * 1024 + 2 * 16 * 1024,
        "{stats:?}"
    );
    drop(server);
}

// ----- 2. peers that never read --------------------------------------------

/// Echoes WebSocket messages; answers `GET /big` with 256 KiB, a request
/// with a body after the body, and anything else with a short body;
/// upgrades `/ws`.
struct Echo {
    report: Arc<Mutex<Report>>,
    big: bytes::Bytes,
}

impl Application for Echo {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        let _ = match ev {
            // A body is answered once it has arrived.
            HttpEvent::Request(req) if req.body.has_body() => Ok(()),
            HttpEvent::Request(req) if req.path == "/ws" => ctx.ws_upgrade(client, req, None),
            HttpEvent::Request(req) if req.path == "/big" => {
                ctx.http_respond(client, 200, &[], OutBuf::Bytes(self.big.clone()))
            }
            HttpEvent::Request(_) | HttpEvent::BodyEnd => {
                ctx.http_respond(client, 200, &[], &b"hello"[..])
            }
            HttpEvent::Body(_) => Ok(()),
        };
        self.report.lock().unwrap().stats = ctx.stats();
    }
    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, op: WsOpcode, data: &[u8]) {
        if matches!(op, WsOpcode::Text | WsOpcode::Binary) {
            let _ = ctx.ws_send(client, op, data.to_vec());
        }
        self.report.lock().unwrap().stats = ctx.stats();
    }
    fn on_http_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        let mut r = self.report.lock().unwrap();
        r.stats = ctx.stats();
        r.closes.push((client, reason));
    }
    fn on_ws_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        let mut r = self.report.lock().unwrap();
        r.stats = ctx.stats();
        r.closes.push((client, reason));
    }
}

fn spawn_echo(config: ServerConfig) -> (common::Running, Arc<Mutex<Report>>) {
    let report = Arc::new(Mutex::new(Report::default()));
    let r2 = report.clone();
    let server = spawn(config, move |_| Echo {
        report: r2,
        big: bytes::Bytes::from(vec![b'x'; 256 * 1024]),
    });
    (server, report)
}

/// Opens a WebSocket to `/ws` and reads the 101 answer.
fn ws_connect(addr: std::net::SocketAddr) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A masked client frame.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let mask = [1u8, 2, 3, 4];
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
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The server still answers a fresh client.
fn still_serving(addr: std::net::SocketAddr) {
    let mut s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).expect("an answer");
    assert_eq!(r.body, b"hello");
}

fn hostile_config() -> ServerConfig {
    ServerConfig {
        write_progress_timeout: Duration::from_secs(2),
        timer_tick: Duration::from_millis(50),
        ..Default::default()
    }
}

/// Most a peer in these tests may make the server queue: the pause level
/// (256 KiB by default) plus one answer (`/big`: 256 KiB and its head);
/// pongs are not queued past the level, and WebSocket input received
/// before reading stopped waits undecoded.
const QUEUE_BOUND: u64 = (256 << 10) + (256 << 10) + 4096;

#[test]
fn websocket_peer_that_pings_and_never_reads_cannot_grow_the_queue_and_is_closed() {
    let (server, report) = spawn_echo(hostile_config());
    let s = ws_connect(server.addr);
    let ping = client_frame(0x9, &[7u8; 125]);
    let chunk: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(512 * ping.len())
        .collect();
    let total = 256 << 20;
    let (sent, stop) = flood(&s, chunk, total);
    let taken = settle(&sent, total, Duration::from_millis(500));
    assert!(
        taken < total,
        "the server took {taken} bytes of pings from a peer that never reads"
    );
    still_serving(server.addr);
    let high = report.lock().unwrap().stats.queued_bytes_high_water;
    assert!(
        high <= QUEUE_BOUND,
        "{high} bytes queued for one pinging peer"
    );
    // Nothing written for the write-progress timeout: closed.
    assert!(
        wait_until(Duration::from_secs(20), || {
            report
                .lock()
                .unwrap()
                .closes
                .iter()
                .any(|(_, r)| *r == CloseReason::Timeout)
        }),
        "the stalled WebSocket was not closed"
    );
    let stats = report.lock().unwrap().stats;
    assert!(stats.write_timeouts >= 1, "{stats:?}");
    assert!(stats.output_pauses >= 1, "{stats:?}");
    stop.store(true, Ordering::Relaxed);
    drop(server);
}

#[test]
fn websocket_echo_peer_that_never_reads_is_paused_not_buffered() {
    let (server, report) = spawn_echo(hostile_config());
    let s = ws_connect(server.addr);
    let msg = client_frame(0x2, &[9u8; 16 * 1024]);
    let chunk: Vec<u8> = msg.iter().copied().cycle().take(16 * msg.len()).collect();
    let total = 256 << 20;
    let (sent, stop) = flood(&s, chunk, total);
    let taken = settle(&sent, total, Duration::from_millis(500));
    assert!(
        taken < total,
        "the server took {taken} bytes from a peer that never reads"
    );
    still_serving(server.addr);
    let high = report.lock().unwrap().stats.queued_bytes_high_water;
    assert!(high <= QUEUE_BOUND, "{high} bytes queued for one echo peer");
    // Held by flow control, then closed for making no write progress —
    // not dropped by the slow-client policy (1008) as if it were reading
    // slowly.
    assert!(
        wait_until(Duration::from_secs(20), || {
            report
                .lock()
                .unwrap()
                .closes
                .iter()
                .any(|(_, r)| *r != CloseReason::Peer)
        }),
        "the stalled WebSocket was not closed"
    );
    let (closes, stats) = {
        let r = report.lock().unwrap();
        (r.closes.clone(), r.stats)
    };
    assert!(
        closes.iter().any(|(_, r)| *r == CloseReason::Timeout)
            && closes
                .iter()
                .all(|(_, r)| matches!(r, CloseReason::Timeout | CloseReason::Peer)),
        "{closes:?} {stats:?}"
    );
    stop.store(true, Ordering::Relaxed);
    drop(server);
}

#[test]
fn http_peer_that_pipelines_large_gets_and_never_reads_is_bounded_and_closed() {
    let (server, report) = spawn_echo(hostile_config());
    let s = connect(server.addr);
    let get = b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    let chunk: Vec<u8> = get.iter().copied().cycle().take(100 * get.len()).collect();
    let total = 64 << 20;
    let (sent, stop) = flood(&s, chunk, total);
    let taken = settle(&sent, total, Duration::from_millis(500));
    assert!(
        taken < total,
        "the server took {taken} bytes from a peer that never reads"
    );
    still_serving(server.addr);
    let high = report.lock().unwrap().stats.queued_bytes_high_water;
    assert!(
        high <= QUEUE_BOUND,
        "{high} bytes queued for one pipelining peer"
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            report
                .lock()
                .unwrap()
                .closes
                .iter()
                .any(|(_, r)| *r == CloseReason::Timeout)
        }),
        "the stalled connection was not closed"
    );
    stop.store(true, Ordering::Relaxed);
    drop(server);
}

// ----- 4. a body cut off by the peer -----------------------------------------

#[test]
fn end_of_stream_inside_a_body_ends_the_request_at_once() {
    // Timeouts far away: only the end of stream can close it in time.
    let config = ServerConfig {
        header_read_timeout: Duration::from_secs(120),
        ..Default::default()
    };
    let (server, report) = spawn_echo(config);
    let mut s = connect(server.addr);
    s.write_all(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nabc")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            report
                .lock()
                .unwrap()
                .closes
                .iter()
                .any(|(_, r)| *r == CloseReason::IncompleteBody)
        }),
        "not closed with IncompleteBody: {:?}",
        report.lock().unwrap().closes
    );
    // Nothing was answered to a peer that has gone.
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    drop(server);
}

// ----- 6. a panicking callback ------------------------------------------------

struct Panicky {
    report: Arc<Mutex<Report>>,
}

impl Application for Panicky {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        if let HttpEvent::Request(req) = ev {
            match req.path {
                "/panic" => panic!("the application failed on purpose"),
                "/ws" => ctx.ws_upgrade(client, req, None).unwrap(),
                _ => ctx.http_respond(client, 200, &[], &b"hello"[..]).unwrap(),
            }
        }
    }
    fn on_ws_read(&mut self, _ctx: &mut Ctx<'_>, _client: ClientId, _op: WsOpcode, data: &[u8]) {
        if data == b"panic" {
            panic!("a WebSocket handler failed on purpose");
        }
    }
    fn on_http_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        let mut r = self.report.lock().unwrap();
        r.stats = ctx.stats();
        r.closes.push((client, reason));
    }
    fn on_ws_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        let mut r = self.report.lock().unwrap();
        r.stats = ctx.stats();
        r.closes.push((client, reason));
    }
}

#[test]
fn a_panicking_callback_closes_only_its_client() {
    let report = Arc::new(Mutex::new(Report::default()));
    let r2 = report.clone();
    let server = spawn(ServerConfig::default(), move |_| Panicky { report: r2 });
    // A bystander with a kept-alive connection.
    let mut other = connect(server.addr);
    other
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut obuf = Vec::new();
    other
        .write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut other, &mut obuf, false).unwrap().status,
        200
    );

    // HTTP: the request that panicked gets a 500 and its connection closes.
    let mut s = connect(server.addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).expect("an answer");
    assert_eq!(r.status, 500);
    assert!(common::closed_by_peer(&mut s));

    // WebSocket: closed with 1011.
    let mut ws = ws_connect(server.addr);
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ws.write_all(&client_frame(0x1, b"panic")).unwrap();
    let mut frame = [0u8; 4];
    ws.read_exact(&mut frame).unwrap();
    assert_eq!(frame[0], 0x88, "a Close frame");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1011);

    // The bystander is still served on the same connection.
    other
        .write_all(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut other, &mut obuf, false).unwrap().status,
        200
    );
    assert!(wait_until(Duration::from_secs(10), || {
        let r = report.lock().unwrap();
        r.closes
            .iter()
            .filter(|(_, c)| *c == CloseReason::Panic)
            .count()
            == 2
    }));
    assert_eq!(report.lock().unwrap().stats.app_panics, 2);
    drop(server);
}
