//! `ringtail serve` with TLS against real clients we did not write, through
//! the real binary on port 0 (issue 14's test list): Python's `ssl` with
//! `websockets` over WSS (echo with permessage-deflate, broadcast and
//! topics to 60 clients, a client that never reads), curl over HTTPS
//! (a 64 MiB send-file download, single and multi-part ranges, a 24 MiB
//! streaming upload), `openssl s_client` (TLS 1.1 and 1.0 refused, a TLS
//! 1.2 renegotiation refused, plain HTTP on the TLS port), a graceful
//! shutdown with TLS connections open, and WSS and HTTPS clients kept busy
//! across three `ctl upgrade`s.
//!
//! Certificates are made by each test (rcgen, `tls_harness`); every
//! process a test starts is killed when it ends (after an upgrade, by the
//! upgrade harness's guard); every wait is bounded.

mod tls_harness;
mod upgrade_harness;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;
use tls_harness::*;

const MIB: usize = 1024 * 1024;

/// A CA and a P-256 certificate for `site.test` and 127.0.0.1 (Python's
/// `ssl` checks an address against the IP names).
fn site_pki() -> Pki {
    let pki = Pki::new();
    pki.issue(
        "site",
        "site",
        &["site.test", "127.0.0.1"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    pki
}

/// `ringtail serve` with the site certificate, `threads` loops and `extra`.
fn serve(pki: &Pki, threads: usize, extra: &[&str]) -> Serve {
    let mut args = vec![
        "--threads".to_string(),
        threads.to_string(),
        "--tls-cert".into(),
        pki.path("site.crt").to_str().unwrap().into(),
        "--tls-key".into(),
        pki.path("site.key").to_str().unwrap().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Serve::start(&args)
}

/// `tests/python/tls_ws_clients.py MODE wss://127.0.0.1:PORT CA ARGS…`
/// (bounded by the harness's 60 s): the JSON of its `OK` line.
fn ws_clients(pki: &Pki, serve: &Serve, mode: &str, args: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/tls_ws_clients.py");
    let mut cmd = Command::new(test_python());
    cmd.arg(script)
        .arg(mode)
        .arg(format!("wss://127.0.0.1:{}", serve.https.port()))
        .arg(pki.ca_file())
        .args(args);
    let out = upgrade_harness::run_bounded(cmd, &format!("tls_ws_clients.py {mode}"));
    let last = out.stdout.lines().last().unwrap_or_default();
    match last.strip_prefix("OK ") {
        Some(json) if out.status.success() => serde_json::from_str(json).unwrap(),
        _ => panic!(
            "tls_ws_clients.py {mode} failed ({}): {}\n{}",
            out.status, out.stdout, out.stderr
        ),
    }
}

/// `/metrics` over a fresh TLS connection, once `ready` holds for it (the
/// other loops report within a tick) or after 20 s.
fn metrics_when(pki: &Pki, serve: &Serve, ready: impl Fn(&str) -> bool) -> String {
    let mut s = connect(&pki.client(), serve.https, "site.test");
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(&mut s, "/metrics");
        assert_eq!(status, 200);
        if ready(&body) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The WebSocket close line of the access log for `path` (waited for):
/// bytes written to the client from the upgrade on, and bytes received.
fn ws_close_line(serve: &Serve, path: &str, close: &str) -> (u64, u64) {
    let request = format!("\"GET {path} HTTP/1.1\" 101 ");
    let close = format!("ws_close={close} ");
    serve.wait_log(&[&request, &close]);
    let log = serve.log.lock().unwrap();
    let line = log
        .iter()
        .find(|l| l.contains(&request) && l.contains(&close))
        .unwrap();
    let out = line.split(&request).nth(1).unwrap().split(' ').next();
    let inn = line.split(" in=").nth(1).and_then(|s| s.split(' ').next());
    (
        out.unwrap().parse().unwrap(),
        inn.unwrap().trim().parse().unwrap(),
    )
}

#[test]
fn python_websockets_wss_echo_with_permessage_deflate_in_order() {
    let pki = site_pki();
    let serve = serve(&pki, 2, &[]);
    let v = ws_clients(&pki, &serve, "echo", &[]);
    let ext = v["extensions"].as_str().unwrap();
    assert!(ext.starts_with("permessage-deflate"), "{v}");
    assert_eq!(v["messages"], 2003, "{v}");
    assert_eq!(v["close_code"], 1000, "{v}");
    // Compressed on the wire both ways: the access log's close line counts
    // the WebSocket bytes written and read (inside TLS), far fewer than the
    // 3.7 MB of compressible messages echoed.
    let sent = v["bytes"].as_u64().unwrap();
    assert!(sent > 3 * MIB as u64, "{v}");
    let (out, inn) = ws_close_line(&serve, "/ws/echo", "1000");
    eprintln!("echoed {sent} bytes: {out} written, {inn} read on the WebSocket");
    assert!(
        out < sent / 4 && inn < sent / 4,
        "not compressed: {sent} bytes echoed, {out} written, {inn} read"
    );
    let m = metrics_when(&pki, &serve, |m| {
        metric(m, "ringtail_tls_handshakes_total") >= 2
    });
    assert_eq!(metric(&m, "ringtail_tls_handshakes_total"), 2);
    assert_eq!(metric(&m, "ringtail_tls_errors_total"), 0);
    assert_eq!(metric(&m, "ringtail_tls_handshake_failures_total"), 0);
}

#[test]
fn sixty_wss_clients_get_every_broadcast_and_topic_message_once_in_order() {
    let pki = site_pki();
    // Two loops: every message crosses to the other loop's members.
    let serve = serve(&pki, 2, &["--access-log", "false"]);
    let (clients, senders, msgs) = (60, 3, 200);
    let v = ws_clients(
        &pki,
        &serve,
        "broadcast",
        &[
            &clients.to_string(),
            &senders.to_string(),
            &msgs.to_string(),
        ],
    );
    let got: Vec<u64> = v["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![senders * msgs; clients], "{v}");
    assert_eq!(v["deflate"], clients / 2, "{v}");

    let (pubs, msgs) = (3u64, 150u64);
    let v = ws_clients(
        &pki,
        &serve,
        "topics",
        &[&clients.to_string(), &pubs.to_string(), &msgs.to_string()],
    );
    // Client i is in t<i%3>, and even ones in "all": message k goes to
    // t<k%3>, and every fifth one to "all" too.
    let want: Vec<u64> = (0..clients as u64)
        .map(|i| {
            let mine = (0..msgs).filter(|k| k % 3 == i % 3).count() as u64;
            let all = if i % 2 == 0 {
                (0..msgs).filter(|k| k % 5 == 0).count() as u64
            } else {
                0
            };
            pubs * (mine + all)
        })
        .collect();
    let got: Vec<u64> = v["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(got, want, "{v}");
    let m = metrics_when(&pki, &serve, |m| {
        metric(m, "ringtail_tls_handshakes_total") > 2 * clients as u64
    });
    assert_eq!(
        metric(&m, "ringtail_tls_handshakes_total"),
        2 * clients as u64 + 1
    );
    assert_eq!(metric(&m, "ringtail_broadcast_drops_total"), 0);
    assert_eq!(metric(&m, "ringtail_tls_errors_total"), 0);
}

#[test]
fn a_wss_client_that_never_reads_is_closed_1008_while_the_others_get_everything() {
    let pki = site_pki();
    let serve = serve(&pki, 2, &[]);
    let metrics_url = format!("https://127.0.0.1:{}/metrics", serve.https.port());
    let (readers, msgs, size) = (3u64, 256u64, 64 * 1024u64);
    let v = ws_clients(
        &pki,
        &serve,
        "slow",
        &[
            &readers.to_string(),
            &msgs.to_string(),
            &size.to_string(),
            &metrics_url,
        ],
    );
    eprintln!("{v}");
    // Everyone else got all 16 MiB, in order (checked by the script).
    assert_eq!(
        v["readers"],
        serde_json::json!(vec![msgs; readers as usize])
    );
    // The one that never read was closed by the slow-client policy (the
    // default: 1008 once more than 4 MiB wait for it), after an in-order
    // prefix of what was sent: what had reached it before the server gave
    // up on it.
    assert_eq!(v["slow_code"], 1008, "{v}");
    assert_eq!(v["drops"], 1, "{v}");
    let seen = v["slow_seen"].as_u64().unwrap();
    assert!(seen < msgs, "{v}");
    // Its close, as the server logged it.
    let (out, _) = ws_close_line(&serve, "/ws/broadcast", "1008");
    assert!(
        out < msgs * size / 2,
        "{out} bytes written to the slow client"
    );
    let m = metrics_when(&pki, &serve, |m| {
        metric(m, "ringtail_broadcast_drops_total") >= 1
    });
    assert_eq!(metric(&m, "ringtail_broadcast_drops_total"), 1);
    assert_eq!(metric(&m, "ringtail_tls_errors_total"), 0);
}

/// Resident and peak resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// curl over HTTPS to `site.test` with the CA, allowed a minute.
fn curl_https(pki: &Pki, serve: &Serve, args: &[&str]) -> std::process::Output {
    tls_harness::curl_within(pki, serve, "site.test", 60, args)
}

/// A header's value in a response head (the last one, for a head that
/// went through a redirect or a 100 — none here).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().rev().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The parts of a `multipart/byteranges` body: each one's `Content-Range`
/// (first, last, total) and bytes.
fn byteranges(body: &[u8], boundary: &str) -> Vec<((u64, u64, u64), Vec<u8>)> {
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let delim = format!("--{boundary}");
    let mut at = find(body, delim.as_bytes(), 0).expect("no first boundary");
    let mut parts = Vec::new();
    loop {
        at += delim.len();
        if body[at..].starts_with(b"--") {
            break;
        }
        assert!(body[at..].starts_with(b"\r\n"), "no CRLF after a boundary");
        let head_end = find(body, b"\r\n\r\n", at).expect("a part head without its end");
        let head = String::from_utf8_lossy(&body[at + 2..head_end]).into_owned();
        let range = header(&head, "content-range")
            .unwrap_or_else(|| panic!("a part without Content-Range: {head}"));
        let (span, total) = range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('/'))
            .unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let r = (
            a.parse().unwrap(),
            b.parse().unwrap(),
            total.parse().unwrap(),
        );
        let data_at = head_end + 4;
        let len = (r.1 - r.0 + 1) as usize;
        parts.push((r, body[data_at..data_at + len].to_vec()));
        at = data_at + len;
        assert!(
            body[at..].starts_with(format!("\r\n{delim}").as_bytes()),
            "part {r:?} not followed by a boundary"
        );
        at += 2;
    }
    parts
}

#[test]
fn curl_downloads_64_mib_and_byte_ranges_over_https_from_the_served_root() {
    let pki = site_pki();
    let root = pki.path("www");
    std::fs::create_dir(&root).unwrap();
    let big = upgrade_harness::random_bytes(64 * MIB, 0x5851_f42d_4c95_7f2d);
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let serve = serve(&pki, 2, &["--root", root.to_str().unwrap()]);
    let url = format!("https://site.test:{}/big.bin", serve.https.port());
    let pid = serve.child.id();

    // The whole file: same SHA-256, and no whole-file buffering (the
    // server's peak memory grows by far less than the file).
    let (rss_before, _) = rss_kib(pid);
    let got = pki.path("got.bin");
    let out = curl_https(
        &pki,
        &serve,
        &[
            "-o",
            got.to_str().unwrap(),
            "-w",
            "%{http_code} %{size_download} %{ssl_verify_result}",
            &url,
        ],
    );
    assert_eq!(text(&out), format!("200 {} 0", 64 * MIB));
    let got = std::fs::read(&got).unwrap();
    assert_eq!(got.len(), big.len());
    assert_eq!(
        format!("{:x}", sha2::Sha256::digest(&got)),
        format!("{:x}", sha2::Sha256::digest(&big)),
        "the download differs"
    );
    let (_, peak) = rss_kib(pid);
    eprintln!(
        "64 MiB over TLS: server peak RSS {} KiB over the {rss_before} KiB before",
        peak.saturating_sub(rss_before)
    );
    assert!(
        peak.saturating_sub(rss_before) < 24 * 1024,
        "peak RSS {peak} KiB, {rss_before} KiB before the download"
    );

    // Single ranges: a middle one of 20 MB, a suffix, an open end.
    let total = big.len() as u64;
    for (spec, first, last) in [
        ("1000-1999", 1000, 1999),
        ("5000000-25000000", 5_000_000, 25_000_000),
        ("-4096", total - 4096, total - 1),
        ("67108000-", 67_108_000, total - 1),
    ] {
        let head = pki.path("head.txt");
        let out = curl_https(
            &pki,
            &serve,
            &["-r", spec, "-D", head.to_str().unwrap(), "-o", "-", &url],
        );
        let head = std::fs::read_to_string(&head).unwrap();
        assert!(head.starts_with("HTTP/1.1 206"), "{spec}: {head}");
        assert_eq!(
            header(&head, "content-range"),
            Some(format!("bytes {first}-{last}/{total}").as_str()),
            "{spec}"
        );
        assert!(
            out.stdout == big[first as usize..=last as usize],
            "{spec}: {} bytes that differ from the file's",
            out.stdout.len()
        );
    }

    // Several ranges at once: multipart/byteranges, each part byte for
    // byte, in the order asked.
    let head = pki.path("head.txt");
    let out = curl_https(
        &pki,
        &serve,
        &[
            "-r",
            "0-99,1000000-1999999,33554432-33558527,67108000-",
            "-D",
            head.to_str().unwrap(),
            "-o",
            "-",
            &url,
        ],
    );
    let head = std::fs::read_to_string(&head).unwrap();
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let ctype = header(&head, "content-type").unwrap();
    let boundary = ctype
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("{ctype}"));
    assert_eq!(
        header(&head, "content-length"),
        Some(out.stdout.len().to_string().as_str())
    );
    let parts = byteranges(&out.stdout, boundary);
    let spans: Vec<(u64, u64, u64)> = parts.iter().map(|p| p.0).collect();
    assert_eq!(
        spans,
        vec![
            (0, 99, total),
            (1_000_000, 1_999_999, total),
            (33_554_432, 33_558_527, total),
            (67_108_000, total - 1, total),
        ]
    );
    for ((a, b, _), bytes) in &parts {
        assert!(
            bytes[..] == big[*a as usize..=*b as usize],
            "part {a}-{b} differs from the file"
        );
    }
    // Nothing satisfiable: 416 with the length.
    let out = curl_https(
        &pki,
        &serve,
        &["-r", "70000000-", "-D", "-", "-o", "/dev/null", &url],
    );
    let head = text(&out);
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes */{total}").as_str())
    );
    let m = metrics_when(&pki, &serve, |m| {
        metric(m, "ringtail_tls_handshakes_total") >= 8
    });
    assert_eq!(metric(&m, "ringtail_tls_handshakes_total"), 8);
    assert_eq!(metric(&m, "ringtail_tls_errors_total"), 0);
}

#[test]
fn curl_streams_a_24_mib_upload_over_https_and_the_server_stores_it_whole() {
    let pki = site_pki();
    let serve = serve(&pki, 2, &[]);
    let data = upgrade_harness::random_bytes(24 * MIB, 0x2545_f491_4f6c_dd1d);
    let file = pki.path("upload.bin");
    std::fs::write(&file, &data).unwrap();
    let pid = serve.child.id();
    let (rss_before, _) = rss_kib(pid);
    let out = curl_https(
        &pki,
        &serve,
        &[
            "-F",
            &format!("file=@{}", file.display()),
            "-w",
            "\n%{http_code} %{size_upload}",
            &format!("https://site.test:{}/upload", serve.https.port()),
        ],
    );
    let page = text(&out);
    let (page, tail) = page.rsplit_once('\n').unwrap();
    let (code, sent) = tail.split_once(' ').unwrap();
    assert_eq!(code, "200", "{page}");
    assert!(sent.parse::<usize>().unwrap() > data.len(), "{tail}");
    assert!(
        page.contains(&format!("({} bytes)", data.len())),
        "the answer does not say {} bytes: {page}",
        data.len()
    );
    let stored = page
        .split("href=\"/files/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no link in {page}"))
        .to_string();
    // Streamed to disk: the server's peak memory grew by far less than the
    // upload.
    let (_, peak) = rss_kib(pid);
    eprintln!(
        "24 MiB upload over TLS: server peak RSS {} KiB over the {rss_before} KiB before",
        peak.saturating_sub(rss_before)
    );
    assert!(
        peak.saturating_sub(rss_before) < 16 * 1024,
        "peak RSS {peak} KiB, {rss_before} KiB before the upload"
    );
    let want = format!("{:x}", sha2::Sha256::digest(&data));
    let on_disk = std::fs::read(serve.uploads.path().join(&stored)).unwrap();
    assert_eq!(
        format!("{:x}", sha2::Sha256::digest(&on_disk)),
        want,
        "stored file"
    );
    // And back over HTTPS.
    let back = curl_https(
        &pki,
        &serve,
        &[&format!(
            "https://site.test:{}/files/{stored}",
            serve.https.port()
        )],
    );
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&back.stdout)), want);
}

/// `openssl s_client` to the TLS port with `args`, stdin closed: its
/// output (stdout and stderr) and whether it succeeded.
fn s_client(pki: &Pki, serve: &Serve, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-msg", "-connect"])
        .arg(serve.https.to_string())
        .args(["-servername", "site.test", "-CAfile"])
        .arg(pki.ca_file())
        .args(args);
    let out = upgrade_harness::run_bounded(cmd, "openssl s_client");
    (
        out.status.success(),
        format!("{}{}", out.stdout, out.stderr),
    )
}

#[test]
fn s_client_below_tls_1_2_and_renegotiation_are_refused_while_others_are_served() {
    let pki = site_pki();
    let serve = serve(&pki, 2, &[]);
    let client = pki.client();
    let mut before = connect(&client, serve.https, "site.test");
    assert_eq!(get(&mut before, "/hello").0, 200);

    // TLS 1.1 and 1.0, the client really offering them (OpenSSL's default
    // security level would not): refused with a fatal alert, no certificate.
    for version in ["-tls1_1", "-tls1"] {
        let (ok, out) = s_client(&pki, &serve, &[version, "-cipher", "DEFAULT@SECLEVEL=0"]);
        let name = if version == "-tls1" {
            "TLS 1.0"
        } else {
            "TLS 1.1"
        };
        assert!(!ok, "{version}: {out}");
        assert!(
            out.contains(&format!(">>> {name}, Handshake")) && out.contains("ClientHello"),
            "{version}: no {name} ClientHello sent: {out}"
        );
        assert!(
            out.contains("Alert [length 0002], fatal handshake_failure")
                && out.contains("no peer certificate available"),
            "{version}: {out}"
        );
        assert_eq!(get(&mut before, "/hello").0, 200, "after {version}");
    }

    // TLS 1.2, one request, then `R`: s_client asks to renegotiate.
    let mut child = Command::new("openssl")
        .args(["s_client", "-msg", "-tls1_2", "-connect"])
        .arg(serve.https.to_string())
        .args(["-servername", "site.test", "-CAfile"])
        .arg(pki.ca_file())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Its stdout (the message trace and what the server sent) and stderr
    // (its own remarks), each in order; read as they come, not by lines
    // (the body it prints ends without one).
    let (stdout, stderr) = (
        Arc::new(Mutex::new(String::new())),
        Arc::new(Mutex::new(String::new())),
    );
    let readers: Vec<_> = [
        (
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            stdout.clone(),
        ),
        (Box::new(child.stderr.take().unwrap()), stderr.clone()),
    ]
    .into_iter()
    .map(|(mut r, into)| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = r.read(&mut buf) {
                let mut o = into.lock().unwrap_or_else(|e| e.into_inner());
                o.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    })
    .collect();
    let both = || {
        format!(
            "{}\n--- stderr ---\n{}",
            stdout.lock().unwrap(),
            stderr.lock().unwrap()
        )
    };
    let mut stdin = child.stdin.take().unwrap();
    let mut child = Kill(child);
    stdin
        .write_all(b"GET /hello HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !stdout.lock().unwrap().contains("Hello, World!") {
        assert!(Instant::now() < deadline, "s_client: no answer: {}", both());
        std::thread::sleep(Duration::from_millis(20));
    }
    stdin.write_all(b"R\n").unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "s_client still runs after asking to renegotiate: {}",
            both()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    for r in readers {
        r.join().unwrap();
    }
    let out = both();
    eprintln!("{out}");
    // Refused: the server answered the new ClientHello with a
    // no_renegotiation warning; OpenSSL, which asked for it, gives up with
    // a fatal handshake_failure alert of its own (counted by the server as
    // a TLS error after the handshake).
    assert!(stderr.lock().unwrap().contains("RENEGOTIATING"), "{out}");
    assert!(stderr.lock().unwrap().contains("no renegotiation"), "{out}");
    let after = stdout.lock().unwrap();
    let after = after.split("Hello, World!").nth(1).unwrap();
    assert!(
        after.contains(">>> TLS 1.2, Handshake") && after.contains("ClientHello"),
        "{out}"
    );
    assert!(
        after.contains("<<< TLS 1.2, Alert [length 0002], warning no_renegotiation"),
        "{out}"
    );
    assert!(!after.contains("<<< TLS 1.2, Handshake"), "{out}");
    assert!(
        after.contains(">>> TLS 1.2, Alert [length 0002], fatal handshake_failure"),
        "{out}"
    );
    assert!(!status.success(), "{out}");
    drop(child);

    // Plain HTTP to the TLS port: curl gets the 400.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{}/hello", serve.https.port()))
        .output()
        .unwrap();
    assert_eq!(
        text(&out),
        "This port expects TLS: use https:// here.\n\n400"
    );

    // The others are served throughout: the connection opened before, and
    // new ones.
    assert_eq!(get(&mut before, "/hello"), (200, "Hello, World!".into()));
    let m = metrics_when(&pki, &serve, |m| {
        metric(m, "ringtail_tls_errors_total") >= 1
            && metric(m, "ringtail_tls_handshake_failures_total") >= 2
            && metric(m, "ringtail_tls_plain_http_total") >= 1
            && metric(m, "ringtail_tls_handshakes_total") >= 3
    });
    assert_eq!(metric(&m, "ringtail_tls_handshake_failures_total"), 2);
    assert_eq!(metric(&m, "ringtail_tls_errors_total"), 1);
    assert_eq!(metric(&m, "ringtail_tls_plain_http_total"), 1);
    // The first connection, s_client's and this one.
    assert_eq!(metric(&m, "ringtail_tls_handshakes_total"), 3);
    let mut fresh = connect(&client, serve.https, "site.test");
    assert_eq!(get(&mut fresh, "/hello").0, 200);
}

#[test]
fn sigterm_ends_an_idle_tls_connection_with_close_notify_and_wss_with_1001_then_exits_0() {
    let pki = site_pki();
    let grace = 5;
    let mut serve = serve(&pki, 2, &["--grace", &grace.to_string()]);
    let client = pki.client();
    let mut idle = connect(&client, serve.https, "site.test");
    assert_eq!(get(&mut idle, "/hello").0, 200);
    let s = connect(&client, serve.https, "site.test");
    let (mut ws, _) =
        tungstenite::client(format!("wss://site.test:{}/ws/echo", serve.https.port()), s).unwrap();
    ws.send(tungstenite::Message::text("before")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "before");

    let start = Instant::now();
    serve.signal(libc::SIGTERM);
    // The idle keep-alive connection: close_notify, then the end (rustls
    // reports a close without close_notify as an error).
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest)
        .expect("the idle TLS connection ends with close_notify");
    assert!(rest.is_empty(), "{rest:?}");
    // Closed on this side too (the server waits for that, at most its
    // linger time).
    drop(idle);
    // The WebSocket: a Close frame with 1001 (going away); the handshake
    // finished, the TLS session ends cleanly too.
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!(
                frame.code,
                tungstenite::protocol::frame::coding::CloseCode::Away
            )
        }
        other => panic!("instead of a Close frame: {other:?}"),
    }
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        Ok(m) => panic!("after the Close: {m:?}"),
        Err(e) => panic!("the WSS connection did not end cleanly: {e}"),
    }
    let mut rest = Vec::new();
    ws.get_mut()
        .read_to_end(&mut rest)
        .expect("the WSS connection ends with close_notify");
    drop(ws);
    // The process exits 0, within its grace.
    let status = loop {
        if let Some(st) = serve.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(grace + 5),
            "still running {:?} after SIGTERM",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    eprintln!("exited {status} {took:?} after SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(took < Duration::from_secs(grace), "{took:?}");
    // The access log says why the WebSocket ended (the close reason, not
    // the code sent).
    serve.wait_log(&["\"GET /ws/echo HTTP/1.1\" 101 ", "ws_close=shutdown "]);
    serve.wait_log(&["shutdown complete"]);
}

/// Python's WSS clients (echo with and without deflate, chat) and HTTPS
/// keep-alive clients keep talking to `ringtail serve` through three
/// upgrades (v1 → v2 → v3 → v1): no connection closes, every message
/// and every answer comes once and in order, new handshakes are served
/// by each new process, and once the clients are gone the last process
/// holds the descriptors the first had before any came.
#[test]
fn wss_and_https_clients_lose_nothing_across_three_upgrades() {
    use upgrade_harness as uh;
    uh::become_subreaper();
    let pki = site_pki();
    let dir = pki.path("upgrade");
    std::fs::create_dir(&dir).unwrap();
    let builds = ["v1-test", "v2-test", "v3-test"];
    let bins: Vec<PathBuf> = builds
        .iter()
        .map(|b| {
            let p = dir.join(format!("ringtail-{b}"));
            uh::stamp(&uh::bin(), &p, b);
            p
        })
        .collect();
    let server = uh::Server::start(
        &dir,
        uh::Opts::new(&bins[0], 2)
            .arg("--tls-cert")
            .arg(pki.path("site.crt"))
            .arg("--tls-key")
            .arg(pki.path("site.key"))
            .arg("--tls-addr")
            .arg("127.0.0.1:0")
            .arg("--access-log")
            .arg("false"),
    );
    let https = server.https.expect("the HTTPS address");
    let fresh = uh::stable_fds(server.pid());
    // 2 echo, 2 echo with deflate, 4 chat, 2 HTTPS keep-alive.
    let mut py = uh::PyClients::start_tls("127.0.0.1", https, &pki.ca_file(), (2, 2, 4, 2));
    uh::wait_progress(&mut [], &mut py, "before the upgrades");
    let client = pki.client();
    for (round, i) in [1, 2, 0].into_iter().enumerate() {
        // Under load for a while before each upgrade: messages, echoes and
        // requests are in flight when it comes.
        std::thread::sleep(Duration::from_millis(700));
        let r = server.upgrade(&bins[i], &[], builds[i], 10);
        eprintln!("upgrade {round}: {r}");
        uh::wait_progress(&mut [], &mut py, &format!("after upgrade {round}"));
        let mut s = connect(&client, https, "site.test");
        assert_eq!(get(&mut s, "/hello").0, 200, "upgrade {round}");
    }
    let verdict = py.stop();
    eprintln!("Python clients: {verdict}");
    let kinds = verdict["kinds"].as_array().unwrap();
    let clients = verdict["clients"].as_array().unwrap();
    assert_eq!(kinds.len(), 10, "{verdict}");
    let chat: Vec<&serde_json::Value> = clients
        .iter()
        .zip(kinds)
        .filter(|(_, k)| *k == "chat")
        .map(|(c, _)| c)
        .collect();
    for (c, kind) in clients.iter().zip(kinds) {
        match kind.as_str().unwrap() {
            "echo" | "echo-deflate" => {
                assert_eq!(c["sent"], c["echoed"], "{verdict}");
                assert!(c["sent"].as_u64().unwrap() > 0, "{verdict}");
            }
            // Every member saw every sender's every message (in order:
            // checked by the script), so all saw the same.
            "chat" => {
                assert_eq!(c["per_sender"], chat[0]["per_sender"], "{verdict}");
                assert!(c["received"].as_u64().unwrap() > 0, "{verdict}");
            }
            "https" => assert!(c["requests"].as_u64().unwrap() > 0, "{verdict}"),
            k => panic!("unknown kind {k}"),
        }
    }
    let last = server.pid();
    let m = metrics_when_at(&pki, https);
    assert_eq!(metric(&m, "ringtail_tls_errors_total"), 0, "{m}");
    assert_eq!(
        metric(&m, "ringtail_tls_handshake_failures_total"),
        0,
        "{m}"
    );
    uh::wait_fds(last, &fresh, "after every client closed");
}

/// `/metrics` over TLS from whatever process serves `addr` now.
fn metrics_when_at(pki: &Pki, addr: std::net::SocketAddr) -> String {
    let mut s = connect(&pki.client(), addr, "site.test");
    let (status, body) = get(&mut s, "/metrics");
    assert_eq!(status, 200);
    body
}
