//! RAW clients (an adopted pipe, an adopted Unix socket pair, a RAW TCP
//! listener), eventfds triggered from many threads, and file operations —
//! all through the application callbacks.

mod common;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use network_server::{
    Application, ClientId, CloseReason, Ctx, Error, EventId, FileEvent, OutBuf, Protocol, ReadBufs,
    Server, ServerConfig,
};

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid 2-element array for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn run(server: &mut Server, app: &mut impl Application) {
    let stopped = server
        .run_until(app, Instant::now() + Duration::from_secs(30))
        .unwrap();
    assert!(stopped, "test did not finish in time");
}

/// Copies everything from one RAW client to another, then closes both.
#[derive(Default)]
struct Copier {
    from: Option<ClientId>,
    to: Option<ClientId>,
    copied: Vec<u8>,
    written_back: usize,
    eof: bool,
    closes: Vec<(ClientId, CloseReason)>,
}

impl Application for Copier {
    fn on_raw_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: ReadBufs,
        result: Result<usize, Error>,
    ) {
        assert_eq!(Some(client), self.from);
        let ReadBufs::One(buf) = bufs else {
            panic!("raw_read gives one buffer")
        };
        match result.unwrap() {
            0 => {
                // End of input. RAW clients close at once (no draining), so
                // the destination is closed when its writes have completed.
                ctx.raw_close(client).unwrap();
                self.eof = true;
                if self.written_back == self.copied.len() {
                    ctx.raw_close(self.to.unwrap()).unwrap();
                }
            }
            n => {
                assert_eq!(buf.len(), n);
                self.copied.extend_from_slice(&buf);
                ctx.raw_write(self.to.unwrap(), buf).unwrap();
                ctx.raw_read(client, Vec::with_capacity(1000), None)
                    .unwrap();
            }
        }
    }

    fn on_raw_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: Vec<OutBuf>,
        result: Result<(), Error>,
    ) {
        assert_eq!(Some(client), self.to);
        result.unwrap();
        self.written_back += bufs.iter().map(OutBuf::len).sum::<usize>();
        if self.eof && self.written_back == self.copied.len() {
            ctx.raw_close(client).unwrap();
        }
    }

    fn on_raw_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        self.closes.push((client, reason));
        assert_eq!(
            ctx.raw_write(client, b"late".to_vec()),
            Err(Error::Stale(client))
        );
        if self.closes.len() == 2 {
            ctx.stop();
        }
    }
}

#[test]
fn raw_pipe_to_unix_socket_through_the_callbacks() {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let (pipe_r, pipe_w) = pipe();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut ctx = server.ctx();
    let from = ctx.adopt(pipe_r).unwrap();
    let to = ctx.adopt(OwnedFd::from(ours)).unwrap();
    assert_eq!(
        ctx.client_kind(from).unwrap(),
        network_server::ClientKind::Raw
    );
    ctx.raw_read(from, Vec::with_capacity(1000), None).unwrap();
    // HTTP operations on a RAW client are refused.
    assert_eq!(
        ctx.http_respond(from, 200, &[], "x"),
        Err(Error::WrongProtocol(from))
    );

    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || {
            let mut w = std::fs::File::from(pipe_w);
            w.write_all(&data).unwrap();
            // Dropping the write end gives the server EOF.
        })
    };
    let reader = std::thread::spawn(move || {
        let mut theirs = theirs;
        theirs
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        got
    });
    let mut app = Copier {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    run(&mut server, &mut app);
    writer.join().unwrap();
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes arrive intact and in order");
    assert_eq!(app.written_back, data.len());
    assert_eq!(app.closes.len(), 2, "one close callback per RAW client");
    assert_eq!(server.client_count(), 0);
}

/// RAW TCP listener: echo with readv/writev.
#[derive(Default)]
struct RawEcho {
    accepted: u32,
    closed: u32,
}

impl Application for RawEcho {
    fn on_accept(&mut self, ctx: &mut Ctx<'_>, client: ClientId, _l: network_server::ListenerId) {
        self.accepted += 1;
        ctx.raw_readv(
            client,
            vec![Vec::with_capacity(3), Vec::with_capacity(100)],
            None,
        )
        .unwrap();
    }
    fn on_raw_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: ReadBufs,
        result: Result<usize, Error>,
    ) {
        let ReadBufs::Many(bufs) = bufs else {
            panic!("readv gives many")
        };
        if result.unwrap() == 0 {
            ctx.raw_close(client).unwrap();
            return;
        }
        let out: Vec<OutBuf> = bufs.into_iter().map(OutBuf::from).collect();
        ctx.raw_writev(client, out).unwrap();
        ctx.raw_readv(
            client,
            vec![Vec::with_capacity(3), Vec::with_capacity(100)],
            None,
        )
        .unwrap();
    }
    fn on_raw_close(&mut self, ctx: &mut Ctx<'_>, _client: ClientId, _reason: CloseReason) {
        self.closed += 1;
        if self.closed == 4 {
            ctx.stop();
        }
    }
}

#[test]
fn raw_tcp_listener_echoes_with_readv_and_writev() {
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let l = server
        .listen("127.0.0.1:0".parse().unwrap(), Protocol::Raw)
        .unwrap();
    let addr = server.local_addr(l);
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let msg = format!("raw client {i} says hello through readv/writev");
                s.write_all(msg.as_bytes()).unwrap();
                let mut got = vec![0; msg.len()];
                s.read_exact(&mut got).unwrap();
                assert_eq!(got, msg.as_bytes());
            })
        })
        .collect();
    let mut app = RawEcho::default();
    run(&mut server, &mut app);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(app.accepted, 4);
}

/// Counts eventfd deliveries.
struct Events {
    event: EventId,
    info: u64,
    total: u64,
    want: u64,
    deliveries: u64,
}

impl Application for Events {
    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: EventId, info: u64, count: u64) {
        assert_eq!(event, self.event);
        assert_eq!(info, self.info, "the info given to prepare comes back");
        self.total += count;
        self.deliveries += 1;
        if self.total == self.want {
            ctx.stop();
        } else {
            ctx.eventfd_prepare(event, self.info).unwrap();
        }
    }
}

#[test]
fn eventfd_triggered_from_eight_threads_ten_thousand_times() {
    const THREADS: u64 = 8;
    const TOTAL: u64 = 10_000;
    let mut server = Server::new(ServerConfig::default()).unwrap();
    let mut ctx = server.ctx();
    let ev = ctx.eventfd_open().unwrap();
    ctx.eventfd_prepare(ev, 0xC0FFEE).unwrap();
    let trigger = ctx.eventfd_trigger_handle(ev).unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let t = trigger.clone();
            std::thread::spawn(move || {
                for _ in 0..TOTAL / THREADS {
                    t.trigger().unwrap();
                }
            })
        })
        .collect();
    let mut app = Events {
        event: ev,
        info: 0xC0FFEE,
        total: 0,
        want: TOTAL,
        deliveries: 0,
    };
    run(&mut server, &mut app);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(app.total, TOTAL, "every trigger delivered");
    assert!(app.deliveries >= 1);
}

/// Open → write → fstat → read → stat → unlink → stat(ENOENT) → close.
struct Files {
    path: std::path::PathBuf,
    file: Option<ClientId>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Application for Files {
    fn on_file(&mut self, ctx: &mut Ctx<'_>, event: FileEvent) {
        let mut log = self.log.lock().unwrap();
        match event {
            FileEvent::Opened { tag, result } => {
                assert_eq!(tag, 1);
                let f = result.unwrap();
                self.file = Some(f);
                log.push("opened".into());
                ctx.raw_write(f, b"file contents".to_vec()).unwrap();
            }
            FileEvent::Stat { tag: 2, result } => {
                let st = result.unwrap();
                assert_eq!(st.size, 13);
                assert!(st.is_file());
                log.push("fstat".into());
                ctx.raw_read(self.file.unwrap(), Vec::with_capacity(64), Some(5))
                    .unwrap();
            }
            FileEvent::Stat { tag: 3, result } => {
                assert_eq!(result.unwrap().size, 13);
                log.push("stat".into());
                ctx.file_unlink(&self.path, 4).unwrap();
            }
            FileEvent::Unlinked { tag, result } => {
                assert_eq!(tag, 4);
                result.unwrap();
                log.push("unlinked".into());
                ctx.file_stat(&self.path, 5).unwrap();
            }
            FileEvent::Stat { tag: 5, result } => {
                assert_eq!(
                    result,
                    Err(Error::Io(event_manager::Error::Os(libc::ENOENT)))
                );
                log.push("gone".into());
                ctx.raw_close(self.file.unwrap()).unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    fn on_raw_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        _b: Vec<OutBuf>,
        result: Result<(), Error>,
    ) {
        result.unwrap();
        self.log.lock().unwrap().push("written".into());
        ctx.file_fstat(client, 2).unwrap();
    }
    fn on_raw_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        _c: ClientId,
        bufs: ReadBufs,
        result: Result<usize, Error>,
    ) {
        let ReadBufs::One(buf) = bufs else { panic!() };
        assert_eq!(result.unwrap(), 8);
        assert_eq!(buf, b"contents");
        self.log.lock().unwrap().push("read".into());
        ctx.file_stat(&self.path, 3).unwrap();
    }
    fn on_raw_close(&mut self, ctx: &mut Ctx<'_>, _c: ClientId, _r: CloseReason) {
        self.log.lock().unwrap().push("closed".into());
        ctx.stop();
    }
}

use network_server::event_manager;

#[test]
fn file_open_write_fstat_read_stat_unlink_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    let mut server = Server::new(ServerConfig::default()).unwrap();
    server
        .ctx()
        .file_open(&path, libc::O_CREAT | libc::O_RDWR, 0o644, 1)
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut app = Files {
        path: path.clone(),
        file: None,
        log: log.clone(),
    };
    run(&mut server, &mut app);
    assert_eq!(
        *log.lock().unwrap(),
        ["opened", "written", "fstat", "read", "stat", "unlinked", "gone", "closed"]
    );
    assert!(!path.exists());
}

/// Writes to a peer that does not read until the queue limit refuses more.
struct Flood {
    client: ClientId,
    accepted_writes: usize,
    completed_writes: usize,
    refused: bool,
    max_queued_seen: usize,
}

impl Application for Flood {
    fn on_event(&mut self, ctx: &mut Ctx<'_>, _ev: EventId, _info: u64, _count: u64) {
        // Queue 64 KiB writes until the server refuses one.
        loop {
            match ctx.raw_write(self.client, vec![7u8; 64 * 1024]) {
                Ok(()) => self.accepted_writes += 1,
                Err(Error::Backpressure(c)) => {
                    assert_eq!(c, self.client);
                    self.refused = true;
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
            self.max_queued_seen = self
                .max_queued_seen
                .max(ctx.queued_bytes(self.client).unwrap());
        }
    }
    fn on_raw_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        _c: ClientId,
        _b: Vec<OutBuf>,
        result: Result<(), Error>,
    ) {
        result.unwrap();
        self.completed_writes += 1;
        if self.refused && self.completed_writes == self.accepted_writes {
            ctx.stop();
        }
    }
}

#[test]
fn queued_bytes_are_bounded_for_a_peer_that_does_not_read() {
    let config = ServerConfig {
        max_queued_bytes: 1 << 20,
        ..Default::default()
    };
    let mut server = Server::new(config).unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut ctx = server.ctx();
    let client = ctx.adopt(OwnedFd::from(ours)).unwrap();
    let ev = ctx.eventfd_open().unwrap();
    ctx.eventfd_prepare(ev, 0).unwrap();
    ctx.eventfd_trigger(ev).unwrap();
    // The peer starts reading only after a while: until then the queue fills.
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut theirs = theirs;
        theirs
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match theirs.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    });
    let mut app = Flood {
        client,
        accepted_writes: 0,
        completed_writes: 0,
        refused: false,
        max_queued_seen: 0,
    };
    run(&mut server, &mut app);
    assert!(app.refused, "the limit refused a write");
    assert!(
        app.max_queued_seen <= (1 << 20) + 64 * 1024,
        "queue stayed bounded: {}",
        app.max_queued_seen
    );
    assert_eq!(
        app.completed_writes, app.accepted_writes,
        "every accepted write completed"
    );
    drop(server); // closes our end; the reader sees EOF
    assert_eq!(reader.join().unwrap(), app.accepted_writes * 64 * 1024);
}
