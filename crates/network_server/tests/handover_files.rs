//! Send-file transfers and uploads carried across handovers: while curl
//! downloads a 32 MiB file through `Ctx::http_send_file`, asks for three
//! ranges of it (`multipart/byteranges`), and uploads a 16 MiB file with
//! `-F` into an upload directory — all rate-limited so that each spans
//! many handovers — the server is handed over to a fresh `Server` every
//! ~100 ms (and rolled back in place every fifth time). Every byte must
//! arrive exactly once and in order, the stored upload must be identical
//! to its source, and no descriptor may be left open. The download and the
//! ranges are spliced (file → pipe → socket, the default): each quiesce
//! closes the pipes and moves the transfers' offsets back over what they
//! held.

mod common;
mod send_file_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::fd_count;
use network_server::{
    Application, ClientId, Ctx, FileEvent, FileRootId, FileRootOptions, HttpEvent, OutBuf,
    Protocol, Server, ServerConfig, UploadData, UploadDirId, UploadEvent, UploadOptions,
    SEND_FILE_DONE,
};
use send_file_support::{curl, random_bytes};

const BIG: usize = 32 << 20;
const UPLOAD: usize = 16 << 20;

#[derive(Default)]
struct Seen {
    send_file_ok: u64,
    send_file_err: u64,
    uploads: Vec<Result<PathBuf, String>>,
}

struct App {
    root: FileRootId,
    dir: UploadDirId,
    seen: Arc<Mutex<Seen>>,
}

impl Application for App {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        match ev {
            HttpEvent::Request(req) if req.method == "POST" => {
                let opts = UploadOptions::default();
                ctx.http_upload_begin(client, req, self.dir, opts).unwrap();
            }
            HttpEvent::Request(req) => {
                ctx.http_send_file(client, self.root, req.path, req)
                    .unwrap();
            }
            HttpEvent::Body(chunk) => {
                if ctx.http_upload_active(client) {
                    ctx.http_upload_feed(client, chunk).unwrap();
                }
            }
            HttpEvent::BodyEnd => {
                if ctx.http_upload_active(client) {
                    ctx.http_upload_end(client).unwrap();
                }
            }
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
            let mut seen = self.seen.lock().unwrap();
            match result {
                Ok(()) => seen.send_file_ok += 1,
                Err(_) => seen.send_file_err += 1,
            }
        }
    }

    fn on_file(&mut self, ctx: &mut Ctx<'_>, ev: FileEvent) {
        let FileEvent::Upload { client, event } = ev else {
            return;
        };
        let outcome = match event {
            UploadEvent::Done(parts) => {
                let path = parts.iter().find_map(|p| match &p.data {
                    UploadData::File { path, .. } => Some(path.clone()),
                    UploadData::Field(_) => None,
                });
                let body = path
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string());
                ctx.http_respond(client, 201, &[], body).unwrap();
                path.ok_or_else(|| "no file part".to_string())
            }
            UploadEvent::Failed { status, reason } => Err(format!("{status} {reason}")),
            _ => return,
        };
        self.seen.lock().unwrap().uploads.push(outcome);
    }
}

/// Checks a `multipart/byteranges` body against the file: one part per
/// range, each with its `Content-Range` and exactly the file's bytes, then
/// the closing delimiter. Returns the number of parts.
fn check_byteranges(body: &[u8], file: &[u8]) -> usize {
    let find = |from: usize, pat: &[u8]| {
        body[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|i| from + i)
    };
    let mut pos = 0;
    let mut parts = 0;
    while let Some(at) = find(pos, b"Content-Range: bytes ") {
        let line_end = find(at, b"\r\n").expect("part head line");
        let spec = std::str::from_utf8(&body[at + 21..line_end]).unwrap();
        let (range, total) = spec.split_once('/').unwrap();
        assert_eq!(total.parse::<usize>().unwrap(), file.len());
        let (a, b) = range.split_once('-').unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let data = find(at, b"\r\n\r\n").expect("end of part head") + 4;
        let end = data + (b - a + 1);
        assert!(
            body[data..end] == file[a..=b],
            "range {a}-{b} differs from the file"
        );
        pos = end;
        parts += 1;
    }
    assert!(
        body[pos..].starts_with(b"\r\n--") && body.ends_with(b"--\r\n"),
        "no closing delimiter"
    );
    parts
}

fn download(addr: SocketAddr, want: &[u8]) -> String {
    let url = format!("http://{addr}/big.bin");
    let (ok, out, err) = curl(&["--fail", "--limit-rate", "8M", "-o", "-", &url]);
    assert!(ok, "download: {err}");
    assert_eq!(out.len(), want.len(), "download length");
    assert!(out == want, "the download differs from the file");
    format!("download {} bytes", out.len())
}

fn ranges(addr: SocketAddr, want: &[u8]) -> String {
    let url = format!("http://{addr}/big.bin");
    let spec = "0-999,5000000-6048575,30000000-32000000";
    let (ok, out, err) = curl(&["--fail", "--limit-rate", "1M", "-r", spec, "-o", "-", &url]);
    assert!(ok, "ranges: {err}");
    let parts = check_byteranges(&out, want);
    assert_eq!(parts, 3);
    format!("ranges {} bytes in {parts} parts", out.len())
}

fn upload(addr: SocketAddr, src: &Path, want: &[u8]) -> String {
    let url = format!("http://{addr}/upload");
    let form = format!("file=@{}", src.display());
    let (ok, out, err) = curl(&[
        "--fail",
        "--limit-rate",
        "4M",
        "-H",
        "Expect:",
        "-F",
        &form,
        &url,
    ]);
    assert!(ok, "upload: {err}");
    let stored = PathBuf::from(String::from_utf8(out).unwrap());
    let got = std::fs::read(&stored).unwrap();
    assert_eq!(got.len(), want.len(), "stored upload length");
    assert!(got == want, "the stored upload differs from its source");
    format!("upload {} bytes", got.len())
}

#[test]
fn transfers_and_uploads_survive_twenty_handovers() {
    let fds_before = fd_count();
    let tmp = tempfile::tempdir().unwrap();
    let (www, up) = (tmp.path().join("www"), tmp.path().join("up"));
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&up).unwrap();
    let big = random_bytes(BIG, 0x5eed);
    std::fs::write(www.join("big.bin"), &big).unwrap();
    let src = tmp.path().join("upload.bin");
    let src_data = random_bytes(UPLOAD, 0xfeed);
    std::fs::write(&src, &src_data).unwrap();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let server = {
        let (seen, stop, www, up) = (seen.clone(), stop.clone(), www.clone(), up.clone());
        std::thread::spawn(move || {
            let config = ServerConfig::default();
            let mut server = Server::new(config.clone()).unwrap();
            let l = server
                .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
                .unwrap();
            let mut ctx = server.ctx();
            let root = ctx
                .file_root_open(&www, FileRootOptions::default())
                .unwrap();
            let dir = ctx.upload_dir_open(&up).unwrap();
            let mut app = App { root, dir, seen };
            tx.send(server.local_addr(l)).unwrap();
            let (mut handovers, mut rollbacks, mut busy) = (0, 0, 0);
            let limit = Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::Relaxed) {
                assert!(Instant::now() < limit, "the clients did not finish");
                server
                    .run_until(&mut app, Instant::now() + Duration::from_millis(100))
                    .unwrap();
                let ctx = server.ctx();
                if ctx.file_transfers_active() + ctx.uploads_active() > 0 {
                    busy += 1;
                }
                server.quiesce(&mut app).unwrap();
                let snap = server.export(&mut app).unwrap();
                if (handovers + rollbacks) % 5 == 4 {
                    server.resume(&mut app).unwrap();
                    rollbacks += 1;
                    continue;
                }
                Server::check_snapshot(&config, &snap.bytes).unwrap();
                let fds = server.release();
                assert_eq!(fds.len(), snap.fds.len());
                server = Server::import(config.clone(), &snap.bytes, fds, &mut app)
                    .map_err(|(e, _)| e)
                    .unwrap();
                server.resume(&mut app).unwrap();
                handovers += 1;
            }
            // Let the last file closes finish.
            let limit = Instant::now() + Duration::from_secs(5);
            loop {
                server
                    .run_until(&mut app, Instant::now() + Duration::from_millis(20))
                    .unwrap();
                let ctx = server.ctx();
                if ctx.file_transfers_active() + ctx.uploads_active() == 0 {
                    break;
                }
                assert!(Instant::now() < limit, "transfers or uploads left over");
            }
            let stats = server.stats();
            drop(server);
            (handovers, rollbacks, busy, stats)
        })
    };
    let addr: SocketAddr = rx.recv().unwrap();
    let clients = {
        let (b1, b2, b3) = (big.clone(), big.clone(), src_data.clone());
        let src = src.clone();
        vec![
            std::thread::spawn(move || download(addr, &b1)),
            std::thread::spawn(move || ranges(addr, &b2)),
            std::thread::spawn(move || upload(addr, &src, &b3)),
        ]
    };
    let results: Vec<String> = clients
        .into_iter()
        .map(|c| c.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let (handovers, rollbacks, busy, stats) = server.join().unwrap();
    eprintln!(
        "{handovers} handovers, {rollbacks} rollbacks, {busy} with a transfer or upload \
         in progress; {results:?}; {} pipes, {} bytes spliced, {} of pipes rewound \
         by a quiesce",
        stats.file_splices, stats.spliced_bytes, stats.pipe_bytes_rewound
    );
    // The download and the ranges went through pipes (the default), and
    // each handover made its transfers splice again from a new one.
    assert!(stats.file_splices >= 2, "{stats:?}");
    assert!(stats.spliced_bytes > 0, "{stats:?}");
    let seen = seen.lock().unwrap();
    assert_eq!((seen.send_file_ok, seen.send_file_err), (2, 0));
    assert_eq!(seen.uploads.len(), 1);
    assert!(seen.uploads[0].is_ok(), "{:?}", seen.uploads[0]);
    assert!(handovers >= 20, "only {handovers} handovers");
    assert!(busy >= 20, "only {busy} handovers found work in progress");
    // Only the stored upload is in the upload directory.
    assert_eq!(std::fs::read_dir(&up).unwrap().count(), 1);
    assert_eq!(fd_count(), fds_before, "descriptors leaked or closed twice");
}

/// Serves `/hide/…` from a root with the default options and `/show/…`
/// from one that allows dotfiles.
struct TwoRoots {
    hide: FileRootId,
    show: FileRootId,
}

impl Application for TwoRoots {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        if let HttpEvent::Request(req) = ev {
            let (root, rest) = match req.path.strip_prefix("/hide") {
                Some(rest) => (self.hide, rest),
                None => (self.show, req.path.strip_prefix("/show").unwrap()),
            };
            ctx.http_send_file(client, root, rest, req).unwrap();
        }
    }
}

#[test]
fn a_handover_keeps_each_roots_dotfile_setting() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(".env"), "SECRET=1").unwrap();
    let config = ServerConfig::default();
    let mut server = Server::new(config.clone()).unwrap();
    let l = server
        .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
        .unwrap();
    let addr = server.local_addr(l);
    let mut ctx = server.ctx();
    let hide = ctx
        .file_root_open(tmp.path(), FileRootOptions::default())
        .unwrap();
    let show = ctx
        .file_root_open(
            tmp.path(),
            FileRootOptions {
                dotfiles: true,
                ..Default::default()
            },
        )
        .unwrap();
    let mut app = TwoRoots { hide, show };
    server.quiesce(&mut app).unwrap();
    let snap = server.export(&mut app).unwrap();
    Server::check_snapshot(&config, &snap.bytes).unwrap();
    let fds = server.release();
    let mut server = Server::import(config, &snap.bytes, fds, &mut app)
        .map_err(|(e, _)| e)
        .unwrap();
    server.resume(&mut app).unwrap();
    let client = std::thread::spawn(move || {
        ["/hide/.env", "/show/.env"].map(|p| {
            let req = format!("GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            common::request(addr, req.as_bytes()).unwrap().status
        })
    });
    let limit = Instant::now() + Duration::from_secs(20);
    while !client.is_finished() {
        assert!(Instant::now() < limit, "no answers");
        server
            .run_until(&mut app, Instant::now() + Duration::from_millis(20))
            .unwrap();
    }
    assert_eq!(client.join().unwrap(), [404, 200]);
}
