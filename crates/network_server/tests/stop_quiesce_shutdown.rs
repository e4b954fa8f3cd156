//! What a process that drives its loops from outside relies on (ringtail's
//! upgrade does): a loop stopped from a callback (`Ctx::stop`) can be
//! quiesced and resumed at once, and `Ctx::shutdown` from a callback begins
//! a graceful shutdown — refused while the server is quiesced.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::read_response;
use network_server::{
    Application, ClientId, Ctx, EventId, HttpEvent, Protocol, Server, ServerConfig,
};

#[derive(Default)]
struct App {
    /// What the next eventfd delivery does.
    stop: bool,
    shutdown: bool,
    shutdown_result: Option<Result<(), String>>,
}

impl Application for App {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        if let HttpEvent::Request(_) = ev {
            ctx.http_respond(client, 200, &[], "ok").unwrap();
        }
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: EventId, _info: u64, _count: u64) {
        ctx.eventfd_prepare(event, 0).unwrap();
        if std::mem::take(&mut self.stop) {
            ctx.stop();
        }
        if std::mem::take(&mut self.shutdown) {
            self.shutdown_result = Some(
                ctx.shutdown(Duration::from_secs(5))
                    .map_err(|e| e.to_string()),
            );
        }
    }
}

/// Runs `server` until `done` or 10 s.
fn run_until(server: &mut Server, app: &mut App, mut done: impl FnMut(&Server) -> bool) {
    let limit = Instant::now() + Duration::from_secs(10);
    while !done(server) {
        assert!(Instant::now() < limit, "timed out");
        server
            .run_until(app, Instant::now() + Duration::from_millis(20))
            .unwrap();
    }
}

fn ask(client: &mut TcpStream, server: &mut Server, app: &mut App) {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut c = client.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        read_response(&mut c, &mut buf, false).map(|r| r.body)
    });
    run_until(server, app, |_| reader.is_finished());
    assert_eq!(reader.join().unwrap().as_deref(), Some(&b"ok"[..]));
}

#[test]
fn a_loop_stopped_from_a_callback_quiesces_and_shuts_down_from_a_callback() {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let l = server
        .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
        .unwrap();
    let addr = server.local_addr(l);
    let mut ctx = server.ctx();
    let ev = ctx.eventfd_open().unwrap();
    ctx.eventfd_prepare(ev, 0).unwrap();
    let trigger = ctx.eventfd_trigger_handle(ev).unwrap();
    let mut app = App::default();
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    ask(&mut client, &mut server, &mut app);

    // Stopped from the eventfd's callback: `run` returns, and the quiesce
    // that follows completes (a pending stop must not keep it from turning).
    app.stop = true;
    trigger.trigger().unwrap();
    server.run(&mut app).unwrap();
    let t = Instant::now();
    server.quiesce(&mut app).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "quiesce waited for its limit"
    );
    assert!(
        server.ctx().shutdown(Duration::from_secs(1)).is_err(),
        "a shutdown while quiesced must be refused"
    );
    assert!(!server.ctx().is_shutting_down());
    server.resume(&mut app).unwrap();
    ask(&mut client, &mut server, &mut app);

    // A shutdown begun from a callback: the idle keep-alive client is
    // closed, the listener too, and `run` returns.
    app.shutdown = true;
    trigger.trigger().unwrap();
    server.run(&mut app).unwrap();
    assert_eq!(app.shutdown_result, Some(Ok(())));
    assert!(server.ctx().is_shutting_down());
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).unwrap(), 0, "{rest:?}");
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}
