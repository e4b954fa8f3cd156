//! `Ctx::http_collect_body`: a small body delivered whole (curl, with
//! Content-Length and chunked), 413 and a close past the limit — at once
//! for a Content-Length that says so, as soon as a chunked body crosses it —
//! and a body half collected carried through a handover.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::read_response;
use network_server::{
    Application, ClientId, CloseReason, Ctx, Error, HttpEvent, Protocol, Server, ServerConfig,
};

const LIMIT: usize = 1000;

/// Collects every body (limit 1000) and answers with how many `Body`
/// events it saw and the body.
#[derive(Default)]
struct App {
    bodies: u32,
    closes: Vec<CloseReason>,
}

impl Application for App {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        match ev {
            HttpEvent::Request(req) => {
                self.bodies = 0;
                if req.body.has_body() {
                    ctx.http_collect_body(client, LIMIT).unwrap();
                    // Once is enough; a second call is refused.
                    if req.path == "/twice" {
                        assert_eq!(
                            ctx.http_collect_body(client, LIMIT),
                            Err(Error::BodyStarted(client))
                        );
                    }
                } else {
                    ctx.http_respond(client, 200, &[], "no body").unwrap();
                }
            }
            HttpEvent::Body(whole) => {
                self.bodies += 1;
                let mut reply = format!("{} event(s): ", self.bodies).into_bytes();
                reply.extend_from_slice(whole);
                ctx.http_respond(client, 200, &[], reply).unwrap();
            }
            HttpEvent::BodyEnd => assert_eq!(self.bodies, 1, "one Body before BodyEnd"),
        }
    }

    fn on_http_close(&mut self, _ctx: &mut Ctx<'_>, _client: ClientId, reason: CloseReason) {
        self.closes.push(reason);
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

/// Runs the server until `t` finishes (bounded).
fn serve_until<T>(server: &mut Server, app: &mut App, t: std::thread::JoinHandle<T>) -> T {
    let limit = Instant::now() + Duration::from_secs(30);
    while !t.is_finished() {
        assert!(Instant::now() < limit, "the client did not finish");
        server
            .run_until(app, Instant::now() + Duration::from_millis(10))
            .unwrap();
    }
    t.join().unwrap()
}

/// curl with `args`; (status, body).
fn curl(addr: SocketAddr, path: &str, args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.to_string(), body.to_string())
}

#[test]
fn small_bodies_arrive_whole_and_large_ones_get_413() {
    let (mut server, addr) = server();
    let mut app = App::default();
    let results = serve_until(
        &mut server,
        &mut app,
        std::thread::spawn(move || {
            let exact = "x".repeat(LIMIT);
            let over = "y".repeat(LIMIT + 1);
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &over).unwrap();
            let chunked_over = format!("@{}", file.path().display());
            vec![
                curl(addr, "/", &["--data-binary", "hello"]),
                curl(addr, "/twice", &["--data-binary", &exact]),
                curl(
                    addr,
                    "/",
                    &[
                        "-H",
                        "Transfer-Encoding: chunked",
                        "--data-binary",
                        "chunked!",
                    ],
                ),
                curl(addr, "/", &["--data-binary", &over]),
                curl(
                    addr,
                    "/",
                    &[
                        "-H",
                        "Transfer-Encoding: chunked",
                        "--data-binary",
                        &chunked_over,
                    ],
                ),
                curl(addr, "/", &[]),
            ]
        }),
    );
    assert_eq!(results[0], ("200".into(), "1 event(s): hello".into()));
    assert_eq!(
        results[1],
        ("200".into(), format!("1 event(s): {}", "x".repeat(LIMIT)))
    );
    assert_eq!(results[2], ("200".into(), "1 event(s): chunked!".into()));
    assert_eq!(results[3].0, "413", "{:?}", results[3]);
    assert_eq!(results[4].0, "413", "{:?}", results[4]);
    assert_eq!(results[5], ("200".into(), "no body".into()));
    let too_large = app
        .closes
        .iter()
        .filter(|r| **r == CloseReason::ProtocolError(413))
        .count();
    assert_eq!(too_large, 2, "{:?}", app.closes);
}

#[test]
fn a_content_length_over_the_limit_is_refused_before_its_body_is_sent() {
    let (mut server, addr) = server();
    let mut app = App::default();
    let status = serve_until(
        &mut server,
        &mut app,
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            // Only the head: the answer comes without a byte of the body.
            s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
                .unwrap();
            let mut buf = Vec::new();
            read_response(&mut s, &mut buf, false).unwrap().status
        }),
    );
    assert_eq!(status, 413);
}

#[test]
fn a_body_half_collected_goes_on_after_a_handover() {
    let (mut server, addr) = server();
    let mut app = App::default();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        .unwrap();
    // Let the server take the first chunk in.
    let limit = Instant::now() + Duration::from_secs(20);
    while server.stats().bytes_in < 66 {
        assert!(Instant::now() < limit);
        server
            .run_until(&mut app, Instant::now() + Duration::from_millis(10))
            .unwrap();
    }
    server.quiesce(&mut app).unwrap();
    let snap = server.export(&mut app).unwrap();
    let fds = server.release();
    let mut app = App::default();
    let mut server = Server::import(ServerConfig::default(), &snap.bytes, fds, &mut app)
        .map_err(|(e, _)| e)
        .unwrap();
    server.resume(&mut app).unwrap();
    let body = serve_until(
        &mut server,
        &mut app,
        std::thread::spawn(move || {
            s.write_all(b"7\r\n+second\r\n0\r\n\r\n").unwrap();
            let mut buf = Vec::new();
            read_response(&mut s, &mut buf, false).unwrap().body
        }),
    );
    assert_eq!(body, b"1 event(s): first+second");
}
