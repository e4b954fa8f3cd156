//! The splice path of `Ctx::http_send_file` (file → pipe → socket through
//! the ring, `FileConfig::splice`) against the real kernel and real
//! clients: curl downloads and ranges compared by SHA-256 with splice on,
//! off, linked and through the smallest pipe; a peer that never reads (the
//! write-progress timeout closes it and every descriptor — socket, file,
//! both pipe ends — is released); a file truncated while it is sent; a
//! handover while the pipe holds bytes the socket has not taken (the pipe
//! is closed and the offset moved back; they are spliced again after the
//! import: nothing lost or repeated); a graceful shutdown with a peer that
//! never reads, and a server dropped mid-splice; the pipe bound and the
//! EMFILE fallback.

mod common;
mod send_file_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{fd_count, wait_until};
use network_server::{
    Application, ClientId, Ctx, FileRootId, FileRootOptions, HttpEvent, OutBuf, Protocol, Server,
    ServerConfig, ServerStats, SEND_FILE_DONE,
};
use send_file_support::{curl, random_bytes};

/// Counts send-file completions.
#[derive(Default)]
struct Done {
    ok: AtomicU64,
    err: AtomicU64,
}

struct App {
    root: FileRootId,
    done: Arc<Done>,
}

impl Application for App {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        if let HttpEvent::Request(req) = ev {
            ctx.http_send_file(client, self.root, req.path, req)
                .unwrap();
        }
    }

    fn on_http_write(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _client: ClientId,
        bufs: Vec<OutBuf>,
        result: Result<(), network_server::Error>,
    ) {
        if bufs.is_empty() || bufs == [OutBuf::Static(SEND_FILE_DONE)] {
            match result {
                Ok(()) => self.done.ok.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.done.err.fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}

/// What the test asks of the server thread.
enum Cmd {
    /// Quiesce, export, import into a fresh `Server`, resume; answers with
    /// the stats after it.
    Handover(mpsc::Sender<ServerStats>),
    /// Graceful shutdown with this grace period.
    Shutdown(Duration),
}

/// A server on its own thread, stepped in 10 ms slices; between slices it
/// publishes its stats and transfer count and takes commands.
struct Harness {
    addr: SocketAddr,
    stats: Arc<Mutex<(ServerStats, usize)>>,
    done: Arc<Done>,
    cmds: mpsc::Sender<Cmd>,
    stop: Arc<AtomicBool>,
    /// Drop the server at once when stopped, transfers in flight or not.
    abandon: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Harness {
    fn start(config: ServerConfig, root: &Path) -> Harness {
        let (tx, rx) = mpsc::channel();
        let (cmds, cmd_rx) = mpsc::channel::<Cmd>();
        // No transfer count until the server thread has published one.
        let stats = Arc::new(Mutex::new((ServerStats::default(), usize::MAX)));
        let done = Arc::new(Done::default());
        let stop = Arc::new(AtomicBool::new(false));
        let abandon = Arc::new(AtomicBool::new(false));
        let thread = {
            let abandon = abandon.clone();
            let (stats, done, stop, root) = (
                stats.clone(),
                done.clone(),
                stop.clone(),
                root.to_path_buf(),
            );
            std::thread::spawn(move || {
                let mut server = Server::new(config.clone()).unwrap();
                let l = server
                    .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
                    .unwrap();
                let root = server
                    .ctx()
                    .file_root_open(&root, FileRootOptions::default())
                    .unwrap();
                let mut app = App { root, done };
                tx.send(server.local_addr(l)).unwrap();
                let mut shut = false;
                loop {
                    let step = Instant::now() + Duration::from_millis(10);
                    server.run_until(&mut app, step).unwrap();
                    *stats.lock().unwrap() = (server.stats(), server.ctx().file_transfers_active());
                    if stop.load(Ordering::Relaxed) || (shut && server.client_count() == 0) {
                        break;
                    }
                    match cmd_rx.try_recv() {
                        Ok(Cmd::Handover(answer)) => {
                            server.quiesce(&mut app).unwrap();
                            let snap = server.export(&mut app).unwrap();
                            let fds = server.release();
                            server = Server::import(config.clone(), &snap.bytes, fds, &mut app)
                                .map_err(|(e, _)| e)
                                .unwrap();
                            server.resume(&mut app).unwrap();
                            answer.send(server.stats()).unwrap();
                        }
                        Ok(Cmd::Shutdown(grace)) => {
                            server.ctx().shutdown(grace).unwrap();
                            shut = true;
                        }
                        Err(_) => {}
                    }
                }
                // Let file closes finish before the server is dropped
                // (unless the test drops it mid-transfer on purpose).
                let limit = Instant::now() + Duration::from_secs(10);
                while !abandon.load(Ordering::Relaxed)
                    && server.ctx().file_transfers_active() > 0
                    && Instant::now() < limit
                {
                    server
                        .run_until(&mut app, Instant::now() + Duration::from_millis(10))
                        .unwrap();
                }
            })
        };
        let addr = rx.recv().unwrap();
        Harness {
            addr,
            stats,
            done,
            cmds,
            stop,
            abandon,
            thread: Some(thread),
        }
    }

    fn stats(&self) -> ServerStats {
        self.stats.lock().unwrap().0
    }

    fn transfers(&self) -> usize {
        self.stats.lock().unwrap().1
    }

    fn handover(&self) -> ServerStats {
        let (tx, rx) = mpsc::channel();
        self.cmds.send(Cmd::Handover(tx)).unwrap();
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the handover finished")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A directory with `big.bin` of `len` deterministic random bytes (written
/// in pieces) and the bytes.
fn root_with(len: usize, seed: u64) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    let data = random_bytes(len, seed);
    let mut f = std::fs::File::create(root.join("big.bin")).unwrap();
    for piece in data.chunks(1 << 20) {
        f.write_all(piece).unwrap();
    }
    (dir, root, data)
}

/// Sends `GET path`, reads the head; returns the stream, the head's
/// `Content-Length` and the body bytes that came with the head.
fn get_head(addr: SocketAddr, path: &str) -> (TcpStream, usize, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "closed before the head");
        got.extend_from_slice(&tmp[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a Content-Length")
        .trim()
        .parse()
        .unwrap();
    (s, len, got[head_end..].to_vec())
}

/// Reads until `want` bytes are in `body` or the peer closes.
fn read_to(s: &mut TcpStream, body: &mut Vec<u8>, want: usize) {
    let mut tmp = vec![0u8; 256 * 1024];
    while body.len() < want {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&tmp[..n]),
        }
    }
}

/// The settings a download is checked under.
fn configs() -> Vec<(&'static str, ServerConfig)> {
    let mut off = ServerConfig::default();
    off.files.splice = false;
    let mut linked = ServerConfig::default();
    linked.files.splice_link = true;
    let mut small = ServerConfig::default();
    // The smallest pipe spliced through: many short splices per file.
    small.files.splice_pipe_size = 16 * 1024;
    vec![
        ("splice", ServerConfig::default()),
        ("read path", off),
        ("linked", linked),
        ("16 KiB pipe", small),
    ]
}

#[test]
fn curl_downloads_and_ranges_match_with_splice_on_off_and_linked() {
    // Larger than the cache's limit (streamed) and than one pipe; odd length.
    let (dir, root, data) = root_with(12 * 1024 * 1024 + 13, 7);
    let want = sha256_of(&root.join("big.bin"));
    for (name, config) in configs() {
        let splice = config.files.splice;
        let fds0 = fd_count();
        let h = Harness::start(config, &root);
        let out = dir.path().join("out.bin");
        let url = h.url("/big.bin");
        // Whole file, twice on one connection (keep-alive after a splice).
        let out2 = dir.path().join("out2.bin");
        let (ok, _, err) = curl(&[
            "--fail",
            "-o",
            out.to_str().unwrap(),
            &url,
            "-o",
            out2.to_str().unwrap(),
            &url,
        ]);
        assert!(ok, "{name}: {err}");
        assert_eq!(sha256_of(&out), want, "{name}: whole file");
        assert_eq!(sha256_of(&out2), want, "{name}: whole file again");
        // One range, across pipe-sized pieces.
        let (ok, body, err) = curl(&["--fail", "-r", "1000-5001006", "-o", "-", &url]);
        assert!(ok, "{name}: {err}");
        assert!(body == data[1000..=5_001_006], "{name}: single range");
        // A suffix range ending at the file's last byte.
        let (ok, body, err) = curl(&["--fail", "-r", "-70000", "-o", "-", &url]);
        assert!(ok, "{name}: {err}");
        assert!(body == data[data.len() - 70000..], "{name}: suffix range");
        // Several ranges: part heads between spliced file pieces.
        let (ok, body, err) = curl(&["--fail", "-r", "0-99,3000000-4999999,-5", "-o", "-", &url]);
        assert!(ok, "{name}: {err}");
        let pieces: [(usize, usize); 3] = [
            (0, 99),
            (3_000_000, 4_999_999),
            (data.len() - 5, data.len() - 1),
        ];
        let mut at = 0;
        for (a, b) in pieces {
            let spec = format!("Content-Range: bytes {a}-{b}/{}\r\n\r\n", data.len());
            let i = body[at..]
                .windows(spec.len())
                .position(|w| w == spec.as_bytes())
                .unwrap_or_else(|| panic!("{name}: part {a}-{b} missing"))
                + at
                + spec.len();
            assert!(body[i..=i + (b - a)] == data[a..=b], "{name}: part {a}-{b}");
            at = i + (b - a) + 1;
        }
        assert!(body[at..].starts_with(b"\r\n--") && body.ends_with(b"--\r\n"));
        assert!(wait_until(Duration::from_secs(10), || h.transfers() == 0
            && h.stats().requests == 5));
        let st = h.stats();
        if splice {
            assert!(st.file_splices >= 5, "{name}: {st:?}");
            assert_eq!(st.file_splice_fallbacks, 0, "{name}");
            assert!(st.spliced_bytes >= 2 * data.len() as u64, "{name}: {st:?}");
        } else {
            assert_eq!((st.file_splices, st.spliced_bytes), (0, 0), "{name}");
        }
        assert_eq!(h.done.ok.load(Ordering::Relaxed), 5, "{name}");
        assert_eq!(h.done.err.load(Ordering::Relaxed), 0, "{name}");
        h.finish();
        assert!(
            wait_until(Duration::from_secs(5), || fd_count() == fds0),
            "{name}: descriptors left open"
        );
    }
}

#[test]
fn peer_that_never_reads_is_closed_and_pipe_and_file_are_released() {
    let (_dir, root, _) = root_with(48 * 1024 * 1024, 11);
    for link in [false, true] {
        let mut config = ServerConfig::default();
        config.files.splice_link = link;
        config.write_progress_timeout = Duration::from_secs(1);
        let fds0 = fd_count();
        let h = Harness::start(config, &root);
        // The server's own descriptors (ring, listener, root, ...).
        assert!(wait_until(Duration::from_secs(5), || h.transfers() == 0));
        let fds_idle = fd_count();
        let (mut s, len, _) = get_head(h.addr, "/big.bin");
        assert_eq!(len, 48 * 1024 * 1024);
        // The server splices until the socket buffers and the pipe are
        // full, then waits; the peer never reads another byte.
        assert!(
            wait_until(Duration::from_secs(30), || h.stats().write_timeouts == 1),
            "link {link}: no write-progress timeout: {:?}",
            h.stats()
        );
        assert_eq!(h.stats().file_splices, 1);
        assert!(wait_until(Duration::from_secs(10), || h.transfers() == 0));
        assert_eq!(h.done.err.load(Ordering::Relaxed), 1);
        // Socket, file and both pipe ends are closed: only the test's own
        // end of the connection is left.
        assert!(
            wait_until(Duration::from_secs(10), || fd_count() == fds_idle + 1),
            "link {link}: {} descriptors, {fds_idle} + 1 expected",
            fd_count()
        );
        // The peer finds the connection cut short.
        let mut body = Vec::new();
        read_to(&mut s, &mut body, len);
        assert!(body.len() < len);
        drop(s);
        h.finish();
        assert!(wait_until(Duration::from_secs(5), || fd_count() == fds0));
    }
}

#[test]
fn file_truncated_while_spliced_cuts_the_connection() {
    let (_dir, root, data) = root_with(48 * 1024 * 1024, 13);
    let fds0 = fd_count();
    let h = Harness::start(ServerConfig::default(), &root);
    let (mut s, len, mut body) = get_head(h.addr, "/big.bin");
    assert_eq!(len, data.len());
    read_to(&mut s, &mut body, 1 << 20);
    // Cut the file to 2 MiB while the rest is being sent.
    std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("big.bin"))
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    read_to(&mut s, &mut body, len);
    assert!(body.len() < len, "the whole length arrived from a cut file");
    assert!(
        wait_until(Duration::from_secs(10), || h
            .done
            .err
            .load(Ordering::Relaxed)
            == 1),
        "no failed completion"
    );
    assert_eq!(h.done.ok.load(Ordering::Relaxed), 0);
    assert!(wait_until(Duration::from_secs(10), || h.transfers() == 0
        && h.stats().file_splices >= 1));
    drop(s);
    h.finish();
    assert!(wait_until(Duration::from_secs(5), || fd_count() == fds0));
}

#[test]
fn handover_while_the_pipe_holds_bytes_loses_and_repeats_nothing() {
    let (_dir, root, data) = root_with(48 * 1024 * 1024, 17);
    for link in [false, true] {
        let mut config = ServerConfig::default();
        config.files.splice_link = link;
        let fds0 = fd_count();
        let h = Harness::start(config, &root);
        let (mut s, len, mut body) = get_head(h.addr, "/big.bin");
        assert_eq!(len, data.len());
        read_to(&mut s, &mut body, 256 * 1024);
        // The client stops reading: the socket buffers fill, a splice into
        // the socket waits, and the pipe holds what it could not take. Hand
        // over until a quiesce finds bytes in a pipe (the first usually
        // does; each import makes a new pipe and fills it again).
        let mut rewound = 0;
        let mut handovers = 0;
        while rewound == 0 {
            assert!(
                handovers < 50,
                "link {link}: no pipe held bytes at a quiesce"
            );
            std::thread::sleep(Duration::from_millis(50));
            rewound = h.handover().pipe_bytes_rewound;
            handovers += 1;
        }
        // Read the rest, handing over every ~4 MiB meanwhile.
        let mut next = body.len() + (4 << 20);
        while body.len() < len {
            read_to(&mut s, &mut body, next.min(len));
            if body.len() < len {
                h.handover();
                handovers += 1;
                next = body.len() + (4 << 20);
            }
        }
        assert_eq!(body.len(), len, "link {link}");
        assert!(body == data, "link {link}: the body differs from the file");
        assert!(
            wait_until(Duration::from_secs(10), || h
                .done
                .ok
                .load(Ordering::Relaxed)
                == 1),
            "link {link}: no completion"
        );
        assert_eq!(h.done.err.load(Ordering::Relaxed), 0);
        let st = h.stats();
        eprintln!(
            "link {link}: {handovers} handovers, {} bytes of pipes spliced again, {} transfers' pipes",
            st.pipe_bytes_rewound, st.file_splices
        );
        assert!(st.file_splices > 1, "each import splices again: {st:?}");
        drop(s);
        h.finish();
        assert!(wait_until(Duration::from_secs(5), || fd_count() == fds0));
    }
}

#[test]
fn graceful_shutdown_closes_a_stalled_splice_at_the_deadline() {
    let (_dir, root, _) = root_with(48 * 1024 * 1024, 19);
    let fds0 = fd_count();
    let h = Harness::start(ServerConfig::default(), &root);
    let (s, _, _) = get_head(h.addr, "/big.bin");
    assert!(wait_until(Duration::from_secs(10), || h
        .stats()
        .file_splices
        == 1));
    h.cmds
        .send(Cmd::Shutdown(Duration::from_millis(300)))
        .unwrap();
    // The server thread ends once its last client is closed.
    let t = Instant::now();
    while !h.thread.as_ref().unwrap().is_finished() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "shutdown never finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(h.done.err.load(Ordering::Relaxed), 1);
    drop(s);
    h.finish();
    assert!(wait_until(Duration::from_secs(5), || fd_count() == fds0));
}

#[test]
fn pipes_are_bounded_and_a_missing_pipe_falls_back_to_reading() {
    let (_dir, root, data) = root_with(32 * 1024 * 1024, 23);
    // At most one pipe: a second transfer beside a stalled one reads.
    let mut config = ServerConfig::default();
    config.files.splice_max_pipes = 1;
    let h = Harness::start(config, &root);
    let (stalled, _, _) = get_head(h.addr, "/big.bin");
    assert!(wait_until(Duration::from_secs(10), || h
        .stats()
        .file_splices
        == 1));
    let (mut s, len, mut body) = get_head(h.addr, "/big.bin");
    read_to(&mut s, &mut body, len);
    assert!(body == data, "the read-path body differs from the file");
    let st = h.stats();
    assert_eq!(
        (st.file_splices, st.file_splice_fallbacks),
        (1, 1),
        "{st:?}"
    );
    drop((s, stalled));
    h.finish();

    // No descriptor left for a pipe (EMFILE): the transfer reads instead of
    // failing. The open file takes the last free descriptor number.
    let h = Harness::start(ServerConfig::default(), &root);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert!(wait_until(Duration::from_secs(10), || h.stats().accepted == 1));
    // Fill every hole below the highest descriptor, so that the limit
    // leaves exactly one number free.
    let max_fd = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap()
    };
    let mut fillers = Vec::new();
    while (fd_count() as u64) <= max_fd() {
        fillers.push(std::fs::File::open("/dev/null").unwrap());
    }
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with valid pointers to rlimit structs.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let tight = libc::rlimit {
            rlim_cur: fd_count() as libc::rlim_t + 1,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &tight), 0);
    }
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    read_to(&mut s, &mut got, 4096);
    // SAFETY: as above; restores the limit read before.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &old), 0);
    }
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&got[..head_end])
    );
    let mut body = got[head_end..].to_vec();
    read_to(&mut s, &mut body, data.len());
    assert!(body == data, "the body differs from the file");
    let st = h.stats();
    assert_eq!(
        (st.file_splices, st.file_splice_fallbacks),
        (0, 1),
        "{st:?}"
    );
    drop((s, fillers));
    h.finish();
}

#[test]
fn dropping_the_server_mid_splice_releases_everything() {
    let (_dir, root, _) = root_with(48 * 1024 * 1024, 29);
    let fds0 = fd_count();
    let h = Harness::start(ServerConfig::default(), &root);
    // A splice into the socket waits: the peer reads nothing.
    let (s, _, _) = get_head(h.addr, "/big.bin");
    assert!(wait_until(Duration::from_secs(10), || h
        .stats()
        .file_splices
        == 1));
    std::thread::sleep(Duration::from_millis(100));
    // The event manager's teardown cancels the waiting splice (its io_uring
    // worker is interrupted) and closes socket, file and pipe.
    h.abandon.store(true, Ordering::Relaxed);
    let t = Instant::now();
    h.finish();
    assert!(t.elapsed() < Duration::from_secs(20), "teardown hung");
    drop(s);
    assert!(wait_until(Duration::from_secs(5), || fd_count() == fds0));
}
