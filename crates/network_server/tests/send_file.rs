//! `Ctx::http_send_file` against real clients: curl (ranges, conditional
//! requests), Python's `http.client` + `email` (multipart/byteranges), raw
//! sockets (byte-for-byte random ranges, a slow reader, a client that
//! leaves mid-transfer), and the file cache seeing changes.

mod common;
mod send_file_support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{connect, read_response, request, wait_until};
use network_server::{FileConfig, FileRootOptions, ServerConfig, UploadOptions};
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

struct Site {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    small: Vec<u8>,
    big: Vec<u8>,
}

/// A root with `index.html`, `small.txt` (10 000 random bytes — cached),
/// `big.bin` (3 MiB + 7 — streamed), `empty.txt`, `sub/index.html`,
/// `noindex/`, and a custom not-found page.
fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("noindex")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(root.join("sub/index.html"), "<h1>sub</h1>\n").unwrap();
    std::fs::write(root.join("empty.txt"), "").unwrap();
    let small = random_bytes(10_000, 1);
    std::fs::write(root.join("small.txt"), &small).unwrap();
    let big = random_bytes(3 * 1024 * 1024 + 7, 2);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("404.html"), "<h1>nothing here</h1>\n").unwrap();
    // Last-Modified must lie in the past to be a strong validator (If-Range).
    for f in ["small.txt", "big.bin"] {
        let ok = Command::new("touch")
            .args(["-d", "2024-01-02 03:04:05"])
            .arg(root.join(f))
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    Site {
        root,
        small,
        big,
        _dir: dir,
    }
}

fn serve(site: &Site, config: ServerConfig) -> FileServer {
    let up = site._dir.path().join("up");
    std::fs::create_dir_all(&up).unwrap();
    let opts = FileRootOptions {
        not_found_page: Some(site._dir.path().join("404.html")),
        ..Default::default()
    };
    spawn_files(
        config,
        site.root.clone(),
        opts,
        up,
        UploadOptions::default(),
    )
}

fn get(fs: &FileServer, path: &str, extra: &str) -> common::Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
    request(fs.server.addr, req.as_bytes()).expect("a response")
}

#[test]
fn whole_files_head_mime_validators_and_one_completion_each() {
    let _guard = shared();
    let site = site();
    let fs = serve(&site, ServerConfig::default());
    // Keep-alive: several answers on one connection.
    let mut s = connect(fs.server.addr);
    let mut buf = Vec::new();
    s.write_all(
        b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /empty.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, site.small);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), site.big.len());
    assert!(r.body == site.big, "big file bytes differ");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let r = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(&*site.big.len().to_string())
    );
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!((r.status, r.body.len()), (200, 0));
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.body, b"<h1>home</h1>\n");
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert!(buf.is_empty());
    drop(s);
    assert!(wait_until(Duration::from_secs(10), || {
        fs.seen.lock().unwrap().done_ok == 5
    }));
    // Directories, redirects, 404 page, 405.
    let r = get(&fs, "/sub/", "");
    assert_eq!((r.status, &r.body[..]), (200, &b"<h1>sub</h1>\n"[..]));
    let r = get(&fs, "/sub?x=1", "");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/?x=1"));
    assert_eq!(get(&fs, "/noindex/", "").status, 403);
    let r = get(&fs, "/missing.txt", "");
    assert_eq!(r.status, 404);
    assert_eq!(r.body, b"<h1>nothing here</h1>\n");
    assert_eq!(r.header("content-type"), Some("text/html"));
    let r = request(
        fs.server.addr,
        b"DELETE /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert!(wait_until(Duration::from_secs(10), || {
        fs.seen.lock().unwrap().done_ok == 10
    }));
    assert!(wait_until(Duration::from_secs(10), || stat(&fs).1 == 0));
    let seen = fs.seen.lock().unwrap();
    assert_eq!((seen.done_ok, seen.done_err), (10, 0));
}

#[test]
fn curl_ranges_single_suffix_open_multi_and_416() {
    let _guard = shared();
    let site = site();
    let fs = serve(&site, ServerConfig::default());
    for (file, data) in [("small.txt", &site.small), ("big.bin", &site.big)] {
        let url = format!("{}/{file}", fs.base);
        let len = data.len();
        for (spec, want) in [
            ("0-99", &data[..100]),
            ("100-", &data[100..]),
            ("-100", &data[len - 100..]),
            ("5000-5000", &data[5000..5001]),
            (
                &format!("{}-{}", len - 10, len + 1000) as &str,
                &data[len - 10..],
            ),
        ] {
            let (ok, body, err) = curl(&["-r", spec, "-D", "/dev/stderr", &url]);
            assert!(ok, "{err}");
            assert!(err.contains("HTTP/1.1 206"), "{spec}: {err}");
            assert!(body == want, "{file} {spec}: wrong bytes");
        }
        // Two ranges: multipart/byteranges (content checked in the Python test).
        let (ok, body, err) = curl(&["-r", "0-9,1000-1009", "-D", "/dev/stderr", &url]);
        assert!(
            ok && err.contains("multipart/byteranges; boundary="),
            "{err}"
        );
        assert!(body.windows(10).any(|w| w == &data[1000..1010]));
        // Unsatisfiable.
        let (ok, _, err) = curl(&["-r", &format!("{len}-"), "-D", "/dev/stderr", &url]);
        assert!(ok && err.contains("HTTP/1.1 416"), "{err}");
        assert!(
            err.contains(&format!("Content-Range: bytes */{len}")),
            "{err}"
        );
    }
    // Too many ranges: ignored, the whole file comes back with 200.
    let many: Vec<String> = (0..40)
        .map(|i| format!("{}-{}", i * 100, i * 100 + 10))
        .collect();
    let r = get(
        &fs,
        "/small.txt",
        &format!("Range: bytes={}\r\n", many.join(",")),
    );
    assert_eq!((r.status, r.body.len()), (200, site.small.len()));
    // Overlapping ranges are coalesced: never more bytes than the file.
    let r = get(&fs, "/small.txt", "Range: bytes=0-5000,10-6000,20-7000\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-7000/10000"));
    assert_eq!(r.body, &site.small[..=7000]);
    // HEAD with Range: headers only.
    let r = request(
        fs.server.addr,
        b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200, "ranges apply to GET only");
}

#[test]
fn conditional_requests_with_curl() {
    let _guard = shared();
    let site = site();
    let fs = serve(&site, ServerConfig::default());
    for file in ["small.txt", "big.bin"] {
        let url = format!("{}/{file}", fs.base);
        let r = get(&fs, &format!("/{file}"), "");
        let etag = r.header("etag").unwrap().to_string();
        let lm = r.header("last-modified").unwrap().to_string();
        let code = |args: &[&str]| -> String {
            let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}"];
            a.extend_from_slice(args);
            a.push(&url);
            let (ok, out, err) = curl(&a);
            assert!(ok, "{err}");
            String::from_utf8(out).unwrap()
        };
        assert_eq!(code(&["-H", &format!("If-None-Match: {etag}")]), "304");
        assert_eq!(code(&["-H", &format!("If-None-Match: W/{etag}")]), "304");
        assert_eq!(code(&["-H", "If-None-Match: \"other\""]), "200");
        assert_eq!(code(&["-H", "If-None-Match: *"]), "304");
        // curl -z DATE sends If-Modified-Since.
        assert_eq!(code(&["-z", &lm]), "304");
        assert_eq!(code(&["-z", "Sat, 01 Jan 2000 00:00:00 GMT"]), "200");
        assert_eq!(code(&["-H", "If-Match: \"other\""]), "412");
        assert_eq!(code(&["-H", &format!("If-Match: {etag}")]), "200");
        assert_eq!(
            code(&["-H", "If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT"]),
            "412"
        );
        // If-Range: matching validator → 206; a stale one → the whole file.
        assert_eq!(
            code(&["-r", "0-9", "-H", &format!("If-Range: {etag}")]),
            "206"
        );
        assert_eq!(code(&["-r", "0-9", "-H", "If-Range: \"old\""]), "200");
        assert_eq!(
            code(&["-r", "0-9", "-H", &format!("If-Range: {lm}")]),
            "206"
        );
        // A 304 carries the validators and no body.
        let r = get(
            &fs,
            &format!("/{file}"),
            &format!("If-None-Match: {etag}\r\n"),
        );
        assert_eq!(r.status, 304);
        assert_eq!(r.header("etag"), Some(&*etag));
        assert!(r.header("content-length").is_none());
    }
}

#[test]
fn python_http_client_parses_multipart_byteranges() {
    let _guard = shared();
    let site = site();
    let fs = serve(&site, ServerConfig::default());
    let script = r#"
import http.client, email, sys
host, port, path, spec, want_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
data = open(want_file, 'rb').read()
c = http.client.HTTPConnection(host, port, timeout=20)
c.request('GET', path, headers={'Range': 'bytes=' + spec})
r = c.getresponse()
assert r.status == 206, r.status
ctype = r.getheader('Content-Type')
body = r.read()
assert len(body) == int(r.getheader('Content-Length'))
msg = email.message_from_bytes(b'Content-Type: ' + ctype.encode() + b'\r\n\r\n' + body)
assert msg.is_multipart()
n = 0
for part in msg.get_payload():
    cr = part['Content-Range']
    unit, rest = cr.split(' ')
    rng, total = rest.split('/')
    a, b = map(int, rng.split('-'))
    assert int(total) == len(data)
    payload = part.get_payload(decode=True)
    assert payload == data[a:b+1], (cr, len(payload))
    n += 1
print(n)
"#;
    let (host, port) = (
        fs.server.addr.ip().to_string(),
        fs.server.addr.port().to_string(),
    );
    for (file, spec, parts) in [
        ("small.txt", "0-9,100-199,-50", "3"),
        ("big.bin", "0-65535,1000000-1200000,3000000-", "3"),
        ("big.bin", "-1,0-0", "2"),
    ] {
        let out = Command::new("python3")
            .args(["-c", script, &host, &port, &format!("/{file}"), spec])
            .arg(site.root.join(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file} {spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), parts);
    }
}

/// Splits a multipart/byteranges body into (start, end, bytes) parts.
fn parse_byteranges(ctype: &str, body: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let boundary = ctype.split("boundary=").nth(1).unwrap();
    let delim = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    let find = |h: &[u8], n: &[u8]| h.windows(n.len()).position(|w| w == n);
    loop {
        let i = find(rest, delim.as_bytes()).unwrap();
        rest = &rest[i + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let cr = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: bytes "))
            .unwrap();
        let (a, b) = cr.split('/').next().unwrap().split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        rest = &rest[head_end + 4..];
        let n = (b - a + 1) as usize;
        parts.push((a, b, rest[..n].to_vec()));
        rest = &rest[n..];
    }
    parts
}

#[test]
fn every_random_range_equals_the_file_bytes() {
    let _guard = shared();
    let site = site();
    let fs = serve(&site, ServerConfig::default());
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for (file, data) in [("small.txt", &site.small), ("big.bin", &site.big)] {
        let len = data.len() as u64;
        let mut s = connect(fs.server.addr);
        let mut buf = Vec::new();
        for i in 0..150 {
            let nranges = if i % 3 == 0 { 1 + rnd(5) } else { 1 };
            let specs: Vec<String> = (0..nranges)
                .map(|_| match rnd(3) {
                    0 => {
                        let a = rnd(len);
                        format!("{a}-{}", a + rnd(len - a))
                    }
                    1 => format!("{}-", rnd(len)),
                    _ => format!("-{}", 1 + rnd(len)),
                })
                .collect();
            let req = format!(
                "GET /{file} HTTP/1.1\r\nHost: x\r\nRange: bytes={}\r\n\r\n",
                specs.join(",")
            );
            s.write_all(req.as_bytes()).unwrap();
            let r = read_response(&mut s, &mut buf, false).unwrap();
            assert_eq!(r.status, 206, "{req}");
            let ctype = r.header("content-type").unwrap().to_string();
            let parts = if ctype.starts_with("multipart/byteranges") {
                parse_byteranges(&ctype, &r.body)
            } else {
                let cr = r.header("content-range").unwrap();
                let (a, b) = cr["bytes ".len()..]
                    .split('/')
                    .next()
                    .unwrap()
                    .split_once('-')
                    .unwrap();
                vec![(a.parse().unwrap(), b.parse().unwrap(), r.body.clone())]
            };
            assert!(!parts.is_empty());
            let mut total = 0;
            for (a, b, bytes) in parts {
                assert!(b < len);
                assert!(
                    bytes == data[a as usize..=b as usize],
                    "{req}: {a}-{b} differs"
                );
                total += b - a + 1;
            }
            assert!(total <= len, "coalesced: never more than the file");
        }
    }
}

#[test]
fn slow_reader_keeps_server_buffers_bounded() {
    let _guard = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    // 64 MiB, written in pieces (the test never holds it).
    let mut f = std::fs::File::create(root.join("huge.bin")).unwrap();
    let piece = random_bytes(1 << 20, 3);
    for _ in 0..64 {
        f.write_all(&piece).unwrap();
    }
    drop(f);
    let up = dir.path().join("up");
    std::fs::create_dir_all(&up).unwrap();
    let fs = spawn_files(
        ServerConfig::default(),
        root,
        FileRootOptions::default(),
        up,
        UploadOptions::default(),
    );
    let rss0 = common::rss_kib();
    let mut s = connect(fs.server.addr);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut tmp = vec![0u8; 16 * 1024];
    // The head, then count body bytes.
    let mut first = Vec::new();
    let head_end = loop {
        let n = s.read(&mut tmp).unwrap();
        first.extend_from_slice(&tmp[..n]);
        if let Some(i) = first.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let mut got = (first.len() - head_end) as u64;
    let chunk = FileConfig::default().chunk_size as i64;
    let mut max_queued = 0;
    for _ in 0..20 {
        // Read a little, then let the socket buffers fill up.
        for _ in 0..4 {
            got += s.read(&mut tmp).unwrap() as u64;
        }
        std::thread::sleep(Duration::from_millis(60));
        let (queued, active, ..) = stat(&fs);
        assert_eq!(active, 1);
        max_queued = max_queued.max(queued);
    }
    let rss_mid = common::rss_kib();
    // Bounded: read-ahead (2 chunks) plus the head, never the file.
    assert!(max_queued <= 2 * chunk + 4096, "queued {max_queued}");
    assert!(
        rss_mid.saturating_sub(rss0) < 24 * 1024,
        "RSS grew {} KiB while a slow client read a 64 MiB file",
        rss_mid - rss0
    );
    // Now read the rest.
    while got < 64 << 20 {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "closed early at {got}");
        got += n as u64;
    }
    assert_eq!(got, 64 << 20);
    assert!(wait_until(Duration::from_secs(20), || fs
        .seen
        .lock()
        .unwrap()
        .done_ok
        == 1));
}

#[test]
fn client_leaving_mid_transfer_gets_one_failed_completion() {
    let _guard = shared();
    let site = site();
    // Larger than any socket buffers, so the client leaves mid-file.
    let mut f = std::fs::File::create(site.root.join("huge.bin")).unwrap();
    for _ in 0..48 {
        f.write_all(&site.big[..1 << 20]).unwrap();
    }
    drop(f);
    let fs = serve(&site, ServerConfig::default());
    let mut s = connect(fs.server.addr);
    s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut tmp = [0u8; 1024];
    s.read_exact(&mut tmp).unwrap();
    drop(s); // unread data → RST
    assert!(wait_until(Duration::from_secs(10), || {
        fs.seen.lock().unwrap().done_err == 1
    }));
    assert!(wait_until(Duration::from_secs(10), || stat(&fs).1 == 0));
    assert_eq!(fs.seen.lock().unwrap().done_ok, 0);
}

fn body_of(fs: &FileServer, path: &str) -> (u16, Vec<u8>) {
    let r = get(fs, path, "");
    (r.status, r.body)
}

#[test]
fn cache_sees_modify_replace_delete_and_stays_bounded() {
    let _guard = shared();
    let site = site();
    let mut config = ServerConfig::default();
    config.files.cache_bytes = 64 * 1024;
    let fs = serve(&site, config);
    let p = site.root.join("small.txt");
    assert_eq!(body_of(&fs, "/small.txt"), (200, site.small.clone()));
    assert_eq!(body_of(&fs, "/small.txt"), (200, site.small.clone()));
    let (_, _, _, cache_bytes, entries) = stat(&fs);
    assert_eq!((cache_bytes, entries), (10_000, 1), "cached");
    // Same size, rewritten in place: the next request sees it.
    for round in 0..5u8 {
        let mut changed = site.small.clone();
        changed[0] = round;
        changed[9_999] = round;
        std::fs::write(&p, &changed).unwrap();
        assert_eq!(body_of(&fs, "/small.txt"), (200, changed), "round {round}");
    }
    // Replaced by rename.
    let tmp = site.root.join(".new");
    std::fs::write(&tmp, b"replaced").unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    assert_eq!(body_of(&fs, "/small.txt"), (200, b"replaced".to_vec()));
    // Deleted.
    std::fs::remove_file(&p).unwrap();
    assert_eq!(body_of(&fs, "/small.txt").0, 404);
    std::fs::write(&p, b"back").unwrap();
    assert_eq!(body_of(&fs, "/small.txt"), (200, b"back".to_vec()));
    // Index through the cache follows changes too.
    assert_eq!(body_of(&fs, "/sub/").1, b"<h1>sub</h1>\n");
    std::fs::write(site.root.join("sub/index.html"), b"<h1>new</h1>\n").unwrap();
    assert_eq!(body_of(&fs, "/sub/").1, b"<h1>new</h1>\n");
    // inotify drops deleted entries on its own.
    std::fs::remove_file(&p).unwrap();
    assert!(wait_until(Duration::from_secs(5), || stat(&fs).4 == 1));
    // Bounded: twenty 10 KB files through a 64 KiB cache.
    for i in 0..20 {
        std::fs::write(site.root.join(format!("f{i}.txt")), random_bytes(10_000, i)).unwrap();
        assert_eq!(
            body_of(&fs, &format!("/f{i}.txt")).1,
            random_bytes(10_000, i)
        );
    }
    let (_, _, _, cache_bytes, entries) = stat(&fs);
    assert!(
        cache_bytes <= 64 * 1024 && entries >= 5,
        "{cache_bytes} bytes, {entries} entries"
    );
    // Watches follow entries out: nothing leaks when files go.
    let _ = Path::new("");
}

#[test]
fn directory_listing_when_enabled() {
    let _guard = shared();
    let site = site();
    let d = site.root.join("noindex");
    std::fs::write(d.join("a&b <x>.txt"), "x").unwrap();
    std::fs::create_dir_all(d.join("sub dir")).unwrap();
    std::fs::write(d.join(".hidden"), "h").unwrap();
    let up = site._dir.path().join("up");
    std::fs::create_dir_all(&up).unwrap();
    let opts = FileRootOptions {
        listing: true,
        ..Default::default()
    };
    let fs = spawn_files(
        ServerConfig::default(),
        site.root.clone(),
        opts,
        up,
        UploadOptions::default(),
    );
    let r = get(&fs, "/noindex/", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.contains("<title>Index of /noindex/</title>"), "{html}");
    assert!(html.contains("<a href=\"../\">../</a>"), "{html}");
    assert!(
        html.contains("<a href=\"a%26b%20%3Cx%3E.txt\">a&amp;b &lt;x&gt;.txt</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"sub%20dir/\">sub dir/</a>"),
        "{html}"
    );
    assert!(!html.contains("hidden"), "{html}");
    // The links work; directories with an index still get the index.
    let r = get(&fs, "/noindex/a%26b%20%3Cx%3E.txt", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]));
    assert_eq!(get(&fs, "/sub/", "").body, b"<h1>sub</h1>\n");
    assert_eq!(get(&fs, "/noindex/sub%20dir/", "").status, 200);
    assert!(wait_until(Duration::from_secs(10), || stat(&fs).1 == 0));
}

#[test]
fn dotfiles_answer_404_unless_allowed_and_well_known_is_served() {
    let _guard = shared();
    let site = site();
    let r = &site.root;
    std::fs::write(r.join(".env"), "SECRET=1").unwrap();
    std::fs::create_dir_all(r.join(".git")).unwrap();
    std::fs::write(r.join(".git/config"), "[core]").unwrap();
    std::fs::write(r.join("sub/.hidden"), "h").unwrap();
    std::fs::create_dir_all(r.join(".well-known/acme-challenge")).unwrap();
    std::fs::write(r.join(".well-known/acme-challenge/tok"), "tok.key").unwrap();
    std::fs::write(r.join(".well-known/.secret"), "s").unwrap();
    let hidden = [
        "/.env",
        "/%2eenv",
        "/.git/config",
        "/sub/.hidden",
        "/./.env",
        "/.well-known/.secret",
    ];
    // Default: 404 with the root's not-found page, as for a missing file.
    let fs = serve(&site, ServerConfig::default());
    for path in hidden {
        let got = get(&fs, path, "");
        assert_eq!(got.status, 404, "{path}");
        assert_eq!(got.body, b"<h1>nothing here</h1>\n", "{path}");
    }
    let got = get(&fs, "/.well-known/acme-challenge/tok", "");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"tok.key"[..]));
    assert_eq!(get(&fs, "/small.txt", "").status, 200);
    // Allowed: served.
    let up = site._dir.path().join("up2");
    std::fs::create_dir_all(&up).unwrap();
    let opts = FileRootOptions {
        dotfiles: true,
        ..Default::default()
    };
    let fs = spawn_files(
        ServerConfig::default(),
        site.root.clone(),
        opts,
        up,
        UploadOptions::default(),
    );
    for (path, body) in [
        ("/.env", &b"SECRET=1"[..]),
        ("/.git/config", b"[core]"),
        ("/sub/.hidden", b"h"),
        ("/.well-known/.secret", b"s"),
    ] {
        let got = get(&fs, path, "");
        assert_eq!((got.status, got.body.as_slice()), (200, body), "{path}");
    }
}

#[test]
fn concurrent_mixed_clients_all_complete_exactly_once() {
    let _guard = shared();
    let site = site();
    let fs = serve(&site, ServerConfig::default());
    let addr = fs.server.addr;
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let small = site.small.clone();
            let big = site.big.clone();
            std::thread::spawn(move || {
                let mut s = connect(addr);
                let mut buf = Vec::new();
                let mut sent = 0u64;
                for i in 0..30u64 {
                    let (path, range, data) = match (t + i) % 5 {
                        0 => ("/small.txt", None, &small),
                        1 => ("/big.bin", None, &big),
                        2 => ("/big.bin", Some((i * 1000, i * 1000 + 70_000)), &big),
                        3 => ("/small.txt", Some((i, i + 100)), &small),
                        _ => ("/big.bin", Some((0, 9)), &big),
                    };
                    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
                    if let Some((a, b)) = range {
                        req.push_str(&format!("Range: bytes={a}-{b}\r\n"));
                    }
                    req.push_str("\r\n");
                    s.write_all(req.as_bytes()).unwrap();
                    sent += 1;
                    if t % 4 == 3 && i == 10 {
                        // Leave in the middle of a big answer.
                        return sent;
                    }
                    let r = read_response(&mut s, &mut buf, false).unwrap();
                    let want = match range {
                        Some((a, b)) => &data[a as usize..=b as usize],
                        None => &data[..],
                    };
                    assert!(r.body == want, "thread {t} request {i} {path}");
                }
                sent
            })
        })
        .collect();
    let sent: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(wait_until(Duration::from_secs(20), || {
        let seen = fs.seen.lock().unwrap();
        seen.done_ok + seen.done_err == sent
    }));
    assert!(wait_until(Duration::from_secs(10), || stat(&fs).1 == 0));
    let seen = fs.seen.lock().unwrap();
    assert!(seen.done_err <= 4, "only the four leaving clients may fail");
}
