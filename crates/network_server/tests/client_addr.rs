//! `Ctx::peer_addr` and `Ctx::local_addr` for HTTP, WebSocket and RAW TCP
//! clients over real loopback sockets (IPv4, and IPv6 `::1` where the
//! machine has it), a stale client, and clients that are no IP socket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use network_server::{
    Application, ClientId, CloseReason, Ctx, Error, HttpEvent, ListenerId, Protocol, Server,
    ServerConfig, WsOpcode,
};

/// Answers every client with "PEER LOCAL" as its `Ctx` sees them: HTTP in
/// the response body, WebSocket in a text message, RAW at accept (then
/// closes).
struct AddrApp {
    raw: ListenerId,
    clients: Arc<Mutex<Vec<ClientId>>>,
    closed: usize,
}

impl AddrApp {
    /// Stops the loop once the three clients are closed.
    fn closed(&mut self, ctx: &mut Ctx<'_>) {
        self.closed += 1;
        if self.closed == 3 {
            ctx.stop();
        }
    }
}

fn addrs(ctx: &Ctx<'_>, client: ClientId) -> String {
    format!(
        "{} {}",
        ctx.peer_addr(client).unwrap(),
        ctx.local_addr(client).unwrap()
    )
}

impl Application for AddrApp {
    fn on_accept(&mut self, ctx: &mut Ctx<'_>, client: ClientId, listener: ListenerId) {
        self.clients.lock().unwrap().push(client);
        if listener == self.raw {
            let text = addrs(ctx, client);
            ctx.raw_write(client, text.into_bytes()).unwrap();
        }
    }

    fn on_raw_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        _bufs: Vec<network_server::OutBuf>,
        _result: Result<(), Error>,
    ) {
        ctx.raw_close(client).unwrap();
    }

    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, event: HttpEvent<'_>) {
        if let HttpEvent::Request(req) = event {
            if req.path == "/ws" {
                ctx.ws_upgrade(client, req, None).unwrap();
            } else {
                let text = addrs(ctx, client);
                ctx.http_respond(client, 200, &[], text).unwrap();
            }
        }
    }

    fn on_http_close(&mut self, ctx: &mut Ctx<'_>, _c: ClientId, _r: CloseReason) {
        self.closed(ctx);
    }

    fn on_ws_close(&mut self, ctx: &mut Ctx<'_>, _c: ClientId, _r: CloseReason) {
        self.closed(ctx);
    }

    fn on_raw_close(&mut self, ctx: &mut Ctx<'_>, _c: ClientId, _r: CloseReason) {
        self.closed(ctx);
    }

    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, _op: WsOpcode, _data: &[u8]) {
        let text = addrs(ctx, client);
        ctx.ws_send(client, WsOpcode::Text, text.into_bytes())
            .unwrap();
    }
}

/// What the client side says: its own address, then the server's.
fn expected(s: &TcpStream) -> String {
    format!("{} {}", s.local_addr().unwrap(), s.peer_addr().unwrap())
}

fn check_family(ip: &str) {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let http = server
        .listen(format!("{ip}:0").parse().unwrap(), Protocol::Http)
        .unwrap();
    let raw = server
        .listen(format!("{ip}:0").parse().unwrap(), Protocol::Raw)
        .unwrap();
    let raw_id = raw;
    let (http, raw) = (server.local_addr(http), server.local_addr(raw));
    let clients = Arc::new(Mutex::new(Vec::new()));
    let mut app = AddrApp {
        raw: raw_id,
        clients: clients.clone(),
        closed: 0,
    };
    let client = std::thread::spawn(move || {
        let timeout = Some(Duration::from_secs(10));
        // HTTP
        let mut s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(timeout).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body, expected(&s), "HTTP");
        // WebSocket
        let s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(timeout).unwrap();
        let want = expected(&s);
        let (mut ws, _) = tungstenite::client(format!("ws://{http}/ws"), s).unwrap();
        ws.send(tungstenite::Message::text("?")).unwrap();
        let got = ws.read().unwrap();
        assert_eq!(got.into_text().unwrap().as_str(), want, "WebSocket");
        ws.close(None).unwrap();
        // RAW
        let mut s = TcpStream::connect(raw).unwrap();
        s.set_read_timeout(timeout).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(got, expected(&s), "RAW");
    });
    let stopped = server
        .run_until(&mut app, Instant::now() + Duration::from_secs(30))
        .unwrap();
    client.join().unwrap();
    assert!(stopped, "test did not finish in time");
    // Every client is closed by now: their ids are stale.
    let clients = clients.lock().unwrap().clone();
    assert_eq!(clients.len(), 3);
    let ctx = server.ctx();
    for c in clients {
        assert_eq!(ctx.peer_addr(c), Err(Error::Stale(c)));
        assert_eq!(ctx.local_addr(c), Err(Error::Stale(c)));
    }
}

#[test]
fn ipv4_clients_see_their_addresses() {
    check_family("127.0.0.1");
}

#[test]
fn ipv6_clients_see_their_addresses() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine: skipped");
        return;
    }
    check_family("[::1]");
}

#[test]
fn clients_that_are_not_ip_sockets_say_so() {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let mut ctx = server.ctx();
    let file = tempfile::tempfile().unwrap();
    let file = ctx.adopt(OwnedFd::from(file)).unwrap();
    assert_eq!(ctx.peer_addr(file), Err(Error::NotIpSocket(file)));
    assert_eq!(ctx.local_addr(file), Err(Error::NotIpSocket(file)));
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let unix = ctx.adopt(OwnedFd::from(a)).unwrap();
    assert_eq!(ctx.peer_addr(unix), Err(Error::NotIpSocket(unix)));
    assert_eq!(ctx.local_addr(unix), Err(Error::NotIpSocket(unix)));
    let msg = Error::NotIpSocket(file).to_string();
    assert!(msg.contains("not an IP socket"), "{msg}");
    // Closed: stale, whatever it was.
    ctx.raw_close(file).unwrap();
    assert_eq!(ctx.peer_addr(file), Err(Error::Stale(file)));
}
