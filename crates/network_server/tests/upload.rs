//! Streaming `multipart/form-data` uploads with curl `-F`: 1 byte, 10 MiB,
//! a body larger than the memory bound (1 GiB from a sparse file) with the
//! server's RSS watched, limits answered with 413/400/415, and a client
//! leaving mid-upload (its partial file removed).

mod common;
mod send_file_support;

use std::io::Write;
use std::time::Duration;

use common::wait_until;
use network_server::{FileRootOptions, ServerConfig, UploadData, UploadOptions};
use send_file_support::{curl, random_bytes, spawn_files, stat, FileServer};

/// Tests of one binary share a process: the test that measures RSS runs
/// alone (write lock), the others together (read locks).
static RSS_LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    RSS_LOCK.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> std::sync::RwLockWriteGuard<'static, ()> {
    RSS_LOCK.write().unwrap_or_else(|e| e.into_inner())
}

struct Dirs {
    dir: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        std::fs::create_dir_all(dir.path().join("up")).unwrap();
        Dirs { dir }
    }
    fn up(&self) -> std::path::PathBuf {
        self.dir.path().join("up")
    }
    fn serve(&self, config: ServerConfig, opts: UploadOptions) -> FileServer {
        spawn_files(
            config,
            self.dir.path().join("www"),
            FileRootOptions::default(),
            self.up(),
            opts,
        )
    }
    fn uploaded_files(&self) -> usize {
        std::fs::read_dir(self.up()).unwrap().count()
    }
}

fn post(fs: &FileServer, args: &[&str]) -> (u16, String) {
    let url = format!("{}/upload", fs.base);
    let mut a = vec!["-w", "\n%{http_code}"];
    a.extend_from_slice(args);
    a.push(&url);
    let (_ok, out, err) = curl(&a);
    let out = String::from_utf8_lossy(&out).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", "000"));
    (code.parse().unwrap_or(0), format!("{body}{err}"))
}

#[test]
fn one_byte_ten_mib_and_fields() {
    let _guard = shared();
    let d = Dirs::new();
    let fs = d.serve(ServerConfig::default(), UploadOptions::default());
    let one = d.dir.path().join("one.bin");
    std::fs::write(&one, b"x").unwrap();
    let ten = d.dir.path().join("ten.bin");
    let ten_data = random_bytes(10 << 20, 7);
    std::fs::write(&ten, &ten_data).unwrap();
    let (code, body) = post(
        &fs,
        &[
            "-F",
            &format!("file=@{}", one.display()),
            "-F",
            "greeting=hello world",
            "-F",
            &format!("big=@{};type=application/x-test", ten.display()),
        ],
    );
    assert_eq!(code, 201, "{body}");
    assert!(body.contains("field greeting hello world"), "{body}");
    let seen = fs.seen.lock().unwrap();
    let parts = seen.uploads[0].as_ref().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].name, "file");
    assert_eq!(parts[0].filename.as_deref(), Some("one.bin"));
    match &parts[0].data {
        UploadData::File { path, size } => {
            assert_eq!(*size, 1);
            assert_eq!(std::fs::read(path).unwrap(), b"x");
            assert!(path.starts_with(d.up().canonicalize().unwrap()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(parts[1].data, UploadData::Field(b"hello world".to_vec()));
    assert_eq!(parts[2].content_type.as_deref(), Some("application/x-test"));
    assert_eq!(
        seen.parts_started,
        [
            (0, "file".to_string(), Some("one.bin".to_string())),
            (1, "greeting".to_string(), None),
            (2, "big".to_string(), Some("ten.bin".to_string())),
        ]
    );
    match &parts[2].data {
        UploadData::File { path, size } => {
            assert_eq!(*size, 10 << 20);
            assert!(std::fs::read(path).unwrap() == ten_data, "10 MiB differ");
        }
        other => panic!("{other:?}"),
    }
    drop(seen);
    assert!(wait_until(Duration::from_secs(5), || stat(&fs).2 == 0));
}

#[test]
fn a_gibibyte_streams_to_disk_with_bounded_memory() {
    let _guard = exclusive();
    let d = Dirs::new();
    let config = ServerConfig {
        max_body_size: 2 << 30,
        ..Default::default()
    };
    let mut opts = UploadOptions::default();
    opts.limits.max_total_size = 2 << 30;
    let fs = d.serve(config, opts);
    // A sparse 1 GiB file: curl streams it from disk.
    let src = d.dir.path().join("zero.bin");
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    let rss0 = common::rss_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p2, d2) = (peak.clone(), done.clone());
    let watcher = std::thread::spawn(move || {
        while !d2.load(std::sync::atomic::Ordering::Relaxed) {
            p2.fetch_max(common::rss_kib(), std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (code, body) = post(&fs, &["-F", &format!("file=@{}", src.display())]);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().unwrap();
    assert_eq!(code, 201, "{body}");
    let growth = peak.load(std::sync::atomic::Ordering::Relaxed) - rss0;
    assert!(
        growth < 64 * 1024,
        "server RSS grew {growth} KiB for a 1 GiB upload"
    );
    let seen = fs.seen.lock().unwrap();
    let parts = seen.uploads[0].as_ref().unwrap();
    match &parts[0].data {
        UploadData::File { path, size } => {
            assert_eq!(*size, 1 << 30);
            assert_eq!(std::fs::metadata(path).unwrap().len(), 1 << 30);
            std::fs::remove_file(path).unwrap();
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_and_bad_bodies_are_refused_and_leave_no_files() {
    let _guard = shared();
    let d = Dirs::new();
    let mut opts = UploadOptions::default();
    opts.limits.max_parts = 3;
    opts.limits.max_total_size = 1 << 20;
    opts.max_field_size = 100;
    let fs = d.serve(ServerConfig::default(), opts);
    let big = d.dir.path().join("big.bin");
    std::fs::write(&big, random_bytes(2 << 20, 1)).unwrap();
    // Total size.
    let (code, _) = post(&fs, &["-F", &format!("f=@{}", big.display())]);
    assert_eq!(code, 413);
    // Part count.
    let (code, _) = post(&fs, &["-F", "a=1", "-F", "b=2", "-F", "c=3", "-F", "d=4"]);
    assert_eq!(code, 413);
    // Field size.
    let (code, _) = post(&fs, &["-F", &format!("a={}", "x".repeat(200))]);
    assert_eq!(code, 413);
    // Not multipart.
    let (code, _) = post(&fs, &["--data-binary", "hello"]);
    assert_eq!(code, 415);
    // Refused by the application from its PartStarted event.
    let (code, _) = post(&fs, &["-F", "refuse=@/dev/null", "-F", "b=2"]);
    assert_eq!(code, 403);
    // Truncated body (no close delimiter).
    let (code, _) = post(
        &fs,
        &[
            "-H",
            "Content-Type: multipart/form-data; boundary=XX",
            "--data-binary",
            "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\n\r\nabc",
        ],
    );
    assert_eq!(code, 400);
    assert!(wait_until(Duration::from_secs(5), || d.uploaded_files() == 0));
    // `Failed` reaches the application from a completion after the answer
    // went out: wait for the last one.
    assert!(wait_until(Duration::from_secs(5), || {
        fs.seen.lock().unwrap().uploads.len() == 6
    }));
    let seen = fs.seen.lock().unwrap();
    let statuses: Vec<u16> = seen
        .uploads
        .iter()
        .map(|u| u.as_ref().err().map_or(0, |e| e.0))
        .collect();
    assert_eq!(statuses, [413, 413, 413, 415, 403, 400]);
}

#[test]
fn client_leaving_mid_upload_removes_the_partial_file() {
    let _guard = shared();
    let d = Dirs::new();
    // A half-closed client cannot finish its body: the server gives up on
    // it when the body inactivity timeout fires.
    let config = ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let fs = d.serve(config, UploadOptions::default());
    let mut s = common::connect(fs.server.addr);
    let head =
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n\
                Content-Length: 100000000\r\n\r\n\
                --B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let chunk = random_bytes(1 << 20, 9);
    for _ in 0..3 {
        s.write_all(&chunk).unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || d.uploaded_files() == 1));
    drop(s);
    assert!(wait_until(Duration::from_secs(10), || {
        fs.seen.lock().unwrap().uploads.len() == 1
    }));
    assert!(matches!(fs.seen.lock().unwrap().uploads[0], Err((_, _))));
    assert!(wait_until(Duration::from_secs(5), || d.uploaded_files() == 0));
    assert!(wait_until(Duration::from_secs(5), || stat(&fs).2 == 0));
}

#[test]
fn tiny_disk_buffer_pauses_and_resumes_reading_many_times() {
    let _guard = shared();
    let d = Dirs::new();
    // 16 KiB may wait for the disk: reading stops and restarts constantly.
    let opts = UploadOptions {
        max_buffered: 16 * 1024,
        write_size: 8 * 1024,
        ..Default::default()
    };
    let fs = d.serve(ServerConfig::default(), opts);
    let src = d.dir.path().join("r.bin");
    let data = random_bytes(40 << 20, 11);
    std::fs::write(&src, &data).unwrap();
    let (code, body) = post(&fs, &["-F", &format!("f=@{}", src.display()), "-F", "x=y"]);
    assert_eq!(code, 201, "{body}");
    let seen = fs.seen.lock().unwrap();
    let parts = seen.uploads[0].as_ref().unwrap();
    match &parts[0].data {
        UploadData::File { path, size } => {
            assert_eq!(*size, 40 << 20);
            assert!(std::fs::read(path).unwrap() == data, "bytes differ");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(parts[1].data, UploadData::Field(b"y".to_vec()));
}

/// Starts an upload of a 100 MB body and sends 3 MiB of it; returns the
/// client once the partial file exists.
fn start_partial_upload(fs: &FileServer, d: &Dirs) -> std::net::TcpStream {
    let mut s = common::connect(fs.server.addr);
    let head =
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=B\r\n\
                Content-Length: 100000000\r\n\r\n\
                --B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.bin\"\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let chunk = random_bytes(1 << 20, 9);
    for _ in 0..3 {
        s.write_all(&chunk).unwrap();
    }
    assert!(wait_until(Duration::from_secs(5), || d.uploaded_files() == 1));
    s
}

#[test]
fn end_of_stream_mid_upload_fails_it_at_once_and_removes_the_file() {
    let _guard = shared();
    let d = Dirs::new();
    // Timeouts far away: only the end of stream can end it in time.
    let config = ServerConfig {
        header_read_timeout: Duration::from_secs(300),
        ..Default::default()
    };
    let fs = d.serve(config, UploadOptions::default());
    let s = start_partial_upload(&fs, &d);
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || {
            fs.seen.lock().unwrap().uploads.len() == 1
        }),
        "the upload did not end when its client half-closed"
    );
    assert!(matches!(fs.seen.lock().unwrap().uploads[0], Err((_, _))));
    assert!(wait_until(Duration::from_secs(5), || d.uploaded_files() == 0));
    drop(s);
}

#[test]
fn a_server_stopped_mid_upload_leaves_no_partial_file() {
    let _guard = shared();
    let d = Dirs::new();
    let fs = d.serve(ServerConfig::default(), UploadOptions::default());
    let s = start_partial_upload(&fs, &d);
    // Stop the loop while the upload is being written; dropping the server
    // must not leave the half-written file behind.
    fs.server.stop();
    assert_eq!(
        d.uploaded_files(),
        0,
        "a half-written upload was left in the upload directory"
    );
    drop(s);
}
