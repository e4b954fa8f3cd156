//! Shared harness for the network_server tests: a server on its own thread
//! (port 0 on loopback), a test application that records what it saw, and
//! small blocking HTTP helpers over raw sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use network_server::{
    Application, ClientId, CloseReason, Ctx, HttpEvent, Protocol, Server, ServerConfig, StopHandle,
};

/// What the test application observed; shared with the test thread.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub requests: Vec<String>,
    pub http_closes: Vec<(ClientId, CloseReason)>,
    pub body_bytes: u64,
    pub accepted: u64,
    pub write_callbacks: u64,
}

/// Answers `GET /path` with `"{method} {target} {version}"`; answers a
/// request with a body, at its end, with the body echoed back (or, for
/// `/count`, with the number of body bytes, so huge bodies are not held).
pub struct TestApp {
    pub seen: Arc<Mutex<Seen>>,
    body: Vec<u8>,
    count: u64,
    count_only: bool,
}

impl TestApp {
    pub fn new(seen: Arc<Mutex<Seen>>) -> Self {
        TestApp {
            seen,
            body: Vec::new(),
            count: 0,
            count_only: false,
        }
    }
}

impl Application for TestApp {
    fn on_accept(&mut self, _ctx: &mut Ctx<'_>, _client: ClientId, _l: network_server::ListenerId) {
        self.seen.lock().unwrap().accepted += 1;
    }

    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        match ev {
            HttpEvent::Request(req) => {
                let line = format!("{} {} {}", req.method, req.target, req.version.as_str());
                self.seen.lock().unwrap().requests.push(line.clone());
                self.body.clear();
                self.count = 0;
                self.count_only = req.path == "/count";
                if !req.body.has_body() {
                    ctx.http_respond(client, 200, &[("Content-Type", "text/plain")], line)
                        .unwrap();
                }
            }
            HttpEvent::Body(chunk) => {
                self.seen.lock().unwrap().body_bytes += chunk.len() as u64;
                self.count += chunk.len() as u64;
                if !self.count_only {
                    self.body.extend_from_slice(chunk);
                }
            }
            HttpEvent::BodyEnd => {
                let reply = if self.count_only {
                    self.count.to_string().into_bytes()
                } else {
                    std::mem::take(&mut self.body)
                };
                ctx.http_respond(client, 200, &[], reply).unwrap();
            }
        }
    }

    fn on_http_write(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _client: ClientId,
        _bufs: Vec<network_server::OutBuf>,
        _result: Result<(), network_server::Error>,
    ) {
        self.seen.lock().unwrap().write_callbacks += 1;
    }

    fn on_http_close(&mut self, _ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        self.seen.lock().unwrap().http_closes.push((client, reason));
    }
}

/// A server running on its own thread.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<StopHandle>,
    join: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops the loop and waits for the thread (bounded).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.stop();
        }
        if let Some(j) = self.join.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !j.is_finished() {
                assert!(Instant::now() < deadline, "server thread did not stop");
                std::thread::sleep(Duration::from_millis(5));
            }
            j.join().expect("server thread panicked");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        } else if let Some(s) = self.stop.take() {
            let _ = s.stop();
        }
    }
}

/// Starts a server with `config` serving HTTP with the application `make()`
/// builds (on the server thread; applications need not be `Send`).
pub fn spawn<A, F>(config: ServerConfig, make: F) -> Running
where
    A: Application + 'static,
    F: FnOnce(&mut Server) -> A + Send + 'static,
{
    spawn_on(config, Protocol::Http, make)
}

/// [`spawn`] with a listener of `protocol`.
pub fn spawn_on<A, F>(config: ServerConfig, protocol: Protocol, make: F) -> Running
where
    A: Application + 'static,
    F: FnOnce(&mut Server) -> A + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let join = std::thread::spawn(move || {
        let mut server = Server::new(config).unwrap();
        let l = server
            .listen("127.0.0.1:0".parse().unwrap(), protocol)
            .unwrap();
        let mut app = make(&mut server);
        tx.send((server.local_addr(l), server.stop_handle().unwrap()))
            .unwrap();
        server.run(&mut app).unwrap();
    });
    let (addr, stop) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Running {
        addr,
        stop: Some(stop),
        join: Some(join),
    }
}

/// Starts the [`TestApp`]; returns the server and what the app records.
pub fn spawn_test_app(config: ServerConfig) -> (Running, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    (spawn(config, move |_| TestApp::new(s2)), seen)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A parsed response read off a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (Content-Length or chunked body; none for HEAD when
/// `head` is set) from `s`, keeping any extra bytes in `buf`.
pub fn read_response<S: Read>(s: &mut S, buf: &mut Vec<u8>, head: bool) -> Option<Response> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut tmp = [0u8; 65536];
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    buf.drain(..end);
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        while buf.len() < len {
            let mut tmp = [0u8; 65536];
            let n = s.read(&mut tmp).ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        resp.body = buf.drain(..len).collect();
    } else if resp.header("transfer-encoding") == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                let mut tmp = [0u8; 65536];
                let n = s.read(&mut tmp).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            buf.drain(..line_end + 2);
            while buf.len() < size + 2 {
                let mut tmp = [0u8; 65536];
                let n = s.read(&mut tmp).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            resp.body.extend(buf.drain(..size));
            buf.drain(..2);
            if size == 0 {
                break;
            }
        }
    } else {
        // Close-delimited.
        s.read_to_end(buf).ok()?;
        resp.body = std::mem::take(buf);
    }
    Some(resp)
}

/// Sends `req` on a new connection and reads one response.
pub fn request(addr: SocketAddr, req: &[u8]) -> Option<Response> {
    let mut s = connect(addr);
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    read_response(&mut s, &mut buf, req.starts_with(b"HEAD "))
}

/// True once the peer has closed the connection (read returns 0) within
/// the timeout.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut tmp = [0u8; 4096];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits until `cond` holds (bounded), polling.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// The Python of the test virtualenv (`scripts/install-test-deps` makes it
/// under `target/test-venv`, or `$CARGO_TARGET_DIR/test-venv`), or
/// `$RINGTAIL_TEST_PYTHON`.
pub fn python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("RINGTAIL_TEST_PYTHON") {
        return p.into();
    }
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // A relative CARGO_TARGET_DIR is taken from the workspace root.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), |t| root.join(t));
    let p = target.join("test-venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run scripts/install-test-deps (the README's test command does)",
        p.display()
    );
    p
}

/// Runs `tests/python/<script>` with `args` and returns what it printed;
/// panics with its output if it fails.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let out = std::process::Command::new(python())
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
