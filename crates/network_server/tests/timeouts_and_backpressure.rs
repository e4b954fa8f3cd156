//! Timeouts (slow head, stalled body, idle keep-alive), the bounded linger
//! after an error, and pausing reads while pipelined input waits for a slow
//! answer.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{closed_by_peer, connect, read_response, spawn, spawn_test_app};
use network_server::{Application, ClientId, CloseReason, Ctx, EventId, HttpEvent, ServerConfig};

fn fast_timeouts() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_millis(300),
        keepalive_timeout: Duration::from_millis(300),
        linger_timeout: Duration::from_millis(300),
        timer_tick: Duration::from_millis(50),
        ..Default::default()
    }
}

#[test]
fn slow_head_gets_408_and_is_closed() {
    let (server, seen) = spawn_test_app(fast_timeouts());
    let mut s = connect(server.addr);
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap(); // never finished
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).expect("a 408 answer");
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed_by_peer(&mut s));
    assert!(common::wait_until(Duration::from_secs(5), || {
        seen.lock()
            .unwrap()
            .http_closes
            .iter()
            .any(|(_, r)| *r == CloseReason::Timeout)
    }));
    assert!(seen.lock().unwrap().requests.is_empty());
    server.stop();
}

#[test]
fn connection_that_never_sends_is_closed_quietly() {
    let (server, _seen) = spawn_test_app(fast_timeouts());
    let mut s = connect(server.addr);
    let mut buf = Vec::new();
    assert!(
        read_response(&mut s, &mut buf, false).is_none(),
        "closed without an answer"
    );
    server.stop();
}

#[test]
fn stalled_body_gets_408() {
    let (server, _seen) = spawn_test_app(fast_timeouts());
    let mut s = connect(server.addr);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 408);
    server.stop();
}

#[test]
fn idle_keep_alive_connection_is_closed_quietly() {
    let (server, seen) = spawn_test_app(fast_timeouts());
    let mut s = connect(server.addr);
    s.write_all(b"GET /once HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
    // Then silence: the server closes without sending anything more.
    assert!(read_response(&mut s, &mut buf, false).is_none());
    assert!(buf.is_empty(), "nothing sent before the close");
    assert!(common::wait_until(Duration::from_secs(5), || {
        let seen = seen.lock().unwrap();
        seen.http_closes.len() == 1 && seen.http_closes[0].1 == CloseReason::Timeout
    }));
    server.stop();
}

#[test]
fn linger_after_error_is_bounded_for_a_client_that_keeps_sending() {
    let (server, _seen) = spawn_test_app(fast_timeouts());
    let mut s = connect(server.addr);
    s.write_all(b"GARBAGE\r\n\r\n").unwrap();
    // Keep sending after the error; the server must close anyway (bounded
    // bytes or time), so eventually a write fails or a read sees the end.
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0usize;
    let closed = loop {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break true,
        }
        if sent > 64 << 20 {
            break false;
        }
    };
    assert!(closed, "server kept reading {sent} bytes after an error");
    server.stop();
}

/// Answers each request only when a ticker eventfd fires, so pipelined
/// input piles up while an answer is pending.
struct Slow {
    pending: Vec<(ClientId, String)>,
}

impl Application for Slow {
    fn on_http_read(&mut self, _ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        if let HttpEvent::Request(req) = ev {
            self.pending.push((client, req.target.to_string()));
        }
    }
    fn on_event(&mut self, ctx: &mut Ctx<'_>, ev: EventId, _info: u64, _count: u64) {
        for (client, target) in self.pending.drain(..) {
            ctx.http_respond(client, 200, &[], target).unwrap();
        }
        ctx.eventfd_prepare(ev, 0).unwrap();
    }
}

#[test]
fn pipelined_input_beyond_the_bound_pauses_reading_and_loses_nothing() {
    let config = ServerConfig {
        max_pipelined_bytes: 512,
        ..Default::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let server = spawn(config, move |server| {
        let mut ctx = server.ctx();
        let ev = ctx.eventfd_open().unwrap();
        ctx.eventfd_prepare(ev, 0).unwrap();
        tx.send(ctx.eventfd_trigger_handle(ev).unwrap()).unwrap();
        Slow {
            pending: Vec::new(),
        }
    });
    let trigger = rx.recv().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                trigger.trigger().unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut s = connect(server.addr);
    let mut batch = Vec::new();
    for i in 0..400 {
        write!(batch, "GET /slow/{i} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    }
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&batch).unwrap())
    };
    let mut buf = Vec::new();
    for i in 0..400 {
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.body, format!("/slow/{i}").as_bytes());
    }
    writer.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    ticker.join().unwrap();
    drop(server);
}
