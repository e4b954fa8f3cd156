//! `ringtail serve` with TLS, end to end: the real binary on port 0 with
//! certificates made here (rcgen; a test CA signs every server
//! certificate), and real clients — curl, `openssl s_client`, rustls with
//! tungstenite over it — for the routes, SNI, resumption, reloads
//! (SIGHUP, `ctl reload-tls`), the metrics and a refused upgrade.

mod tls_harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tls_harness::*;

#[test]
fn curl_gets_the_demo_routes_over_https_beside_plain_http() {
    let pki = Pki::new();
    pki.issue(
        "site",
        "site",
        &["site.test"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let (crt, key) = (pki.path("site.crt"), pki.path("site.key"));
    let serve = Serve::start(&[
        "--threads",
        "2",
        "--tls-cert",
        crt.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    serve.wait_log(&["TLS: records are encrypted by rustls in user space"]);
    let base = format!("https://site.test:{}", serve.https.port());

    // Two requests on one connection (keep-alive), HTTP/1.1 over TLS.
    let out = curl(
        &pki,
        &serve,
        "site.test",
        &[
            "-w",
            " %{http_code} %{http_version} %{num_connects}\n",
            &format!("{base}/hello"),
            &format!("{base}/chat"),
        ],
    );
    let got = text(&out);
    assert!(got.starts_with("Hello, World! 200 1.1 1\n"), "{got}");
    assert!(
        got.contains("wss://") && got.ends_with(" 200 1.1 0\n"),
        "{got}"
    );

    // An upload, then the file back with a range.
    let upload = pki.path("upload.txt");
    std::fs::write(&upload, "0123456789abcdef").unwrap();
    let out = curl(
        &pki,
        &serve,
        "site.test",
        &[
            "-F",
            &format!("file=@{}", upload.display()),
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            &format!("{base}/upload"),
        ],
    );
    assert!(
        text(&out).starts_with('2'),
        "upload answered {}",
        text(&out)
    );
    let out = curl(&pki, &serve, "site.test", &[&format!("{base}/files/")]);
    let listing = text(&out);
    let stored = listing
        .split("href=\"/files/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no file in the listing: {listing}"))
        .to_string();
    let out = curl(
        &pki,
        &serve,
        "site.test",
        &[
            "-r",
            "4-7",
            "-w",
            " %{http_code}",
            &format!("{base}/files/{stored}"),
        ],
    );
    assert_eq!(text(&out), "4567 206");

    // Plain HTTP goes on beside it, and plain HTTP on the TLS port is
    // answered 400.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", " %{http_code}"])
        .arg(format!("http://{}/hello", serve.http))
        .arg(format!("http://{}/hello", serve.https))
        .output()
        .unwrap();
    let got = text(&out);
    assert!(got.starts_with("Hello, World! 200"), "{got}");
    assert!(got.ends_with(" 400"), "{got}");

    // The metrics, through one more TLS connection: 1 (hello and chat,
    // one connection) + 1 (upload) + 1 (listing) + 1 (range) + 1 (this
    // one) handshakes.
    // The other loop's counters are a second old at most: asked again
    // until they are in.
    let mut s = connect(&pki.client(), serve.https, "site.test");
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let (status, metrics) = get(&mut s, "/metrics");
        assert_eq!(status, 200);
        let caught_up = metric(&metrics, "ringtail_tls_handshakes_total") >= 5
            && metric(&metrics, "ringtail_tls_plain_http_total") >= 1;
        if caught_up || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(metric(&metrics, "ringtail_tls_handshakes_total"), 5);
    assert_eq!(metric(&metrics, "ringtail_tls_plain_http_total"), 1);
    assert_eq!(metric(&metrics, "ringtail_tls_handshake_failures_total"), 0);
    assert_eq!(
        metric(&metrics, "ringtail_tls_ktls"),
        u64::from(network_server::tls::ktls_available())
    );
    for name in [
        "ringtail_tls_handshake_timeouts_total",
        "ringtail_tls_errors_total",
    ] {
        assert_eq!(metric(&metrics, name), 0, "{name}");
    }
}

#[test]
fn wss_echo_and_keep_alive_over_one_tls_connection() {
    let pki = Pki::new();
    pki.issue("site", "site", &["site.test"], &rcgen::PKCS_RSA_SHA256);
    let serve = Serve::start_with_cert(&pki, "site", &["--threads", "1"]);
    let client = pki.client();
    let mut s = connect(&client, serve.https, "site.test");
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    for _ in 0..3 {
        assert_eq!(get(&mut s, "/hello"), (200, "Hello, World!".into()));
    }
    let s = connect(&client, serve.https, "site.test");
    let (mut ws, _) =
        tungstenite::client(format!("wss://site.test:{}/ws/echo", serve.https.port()), s).unwrap();
    for msg in ["first", &"x".repeat(70_000)] {
        ws.send(tungstenite::Message::text(msg)).unwrap();
        assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), msg);
    }
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
}

#[test]
fn openssl_s_client_gets_the_sni_certificate_and_resumes() {
    let pki = Pki::new();
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
    pki.issue("default", "default-cert", &["default.test"], p256);
    pki.issue("api", "api-cert", &["api.test"], &rcgen::PKCS_RSA_SHA256);
    pki.issue("wild", "wild-cert", &["*.wild.test"], p256);
    let pair = |stem: &str| {
        format!(
            "{}:{}",
            pki.path(&format!("{stem}.crt")).display(),
            pki.path(&format!("{stem}.key")).display()
        )
    };
    let serve = Serve::start(&[
        "--threads",
        "2",
        "--tls-cert",
        pki.path("default.crt").to_str().unwrap(),
        "--tls-key",
        pki.path("default.key").to_str().unwrap(),
        "--tls-sni",
        &pair("api"),
        "--tls-sni",
        &pair("wild"),
    ]);
    // `openssl s_client` with `extra`; its stdin sends one request that
    // asks the server to close (so that it reads everything the server
    // sends after the handshake — TLS 1.3 tickets — before it exits).
    let s_client = |extra: &[&str]| -> String {
        let mut child = Command::new("openssl")
            .args(["s_client", "-ign_eof", "-connect"])
            .arg(serve.https.to_string())
            .arg("-CAfile")
            .arg(pki.ca_file())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    for (sni, subject, san) in [
        (Some("api.test"), "CN = api-cert", "DNS:api.test"),
        (Some("www.wild.test"), "CN = wild-cert", "DNS:*.wild.test"),
        (
            Some("unknown.test"),
            "CN = default-cert",
            "DNS:default.test",
        ),
        (None, "CN = default-cert", "DNS:default.test"),
    ] {
        let mut args = vec!["-showcerts"];
        match sni {
            Some(name) => args.extend(["-servername", name]),
            None => args.push("-noservername"),
        }
        let out = s_client(&args);
        assert!(
            out.contains(&format!("subject={subject}")),
            "{sni:?}: {out}"
        );
        // The subjectAltName of the leaf the server sent.
        let leaf = out
            .split("-----BEGIN CERTIFICATE-----")
            .nth(1)
            .and_then(|s| s.split("-----END CERTIFICATE-----").next())
            .unwrap();
        let pem = format!("-----BEGIN CERTIFICATE-----{leaf}-----END CERTIFICATE-----\n");
        let mut x509 = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        x509.stdin
            .take()
            .unwrap()
            .write_all(pem.as_bytes())
            .unwrap();
        let san_out = x509.wait_with_output().unwrap();
        let san_text = String::from_utf8_lossy(&san_out.stdout);
        assert!(san_text.contains(san), "{sni:?}: {san_text}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{sni:?}: {out}");
    }

    // Both protocol versions, and a session resumed (possibly on the
    // other loop: the ticket keys are the process's).
    for version in ["-tls1_3", "-tls1_2"] {
        let sess = pki.path(&format!("session{version}"));
        let sess = sess.to_str().unwrap();
        let first = s_client(&[version, "-servername", "api.test", "-sess_out", sess]);
        assert!(
            first.contains(&format!("New, TLSv1.{}", &version[6..])),
            "{version}: {first}"
        );
        let again = s_client(&[version, "-servername", "api.test", "-sess_in", sess]);
        assert!(
            again.contains(&format!("Reused, TLSv1.{}", &version[6..])),
            "{version}: {again}"
        );
    }
    // ALPN: http/1.1 is chosen; h2 alone is refused.
    let out = s_client(&["-servername", "api.test", "-alpn", "h2,http/1.1"]);
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    let out = s_client(&["-servername", "api.test", "-alpn", "h2"]);
    assert!(
        out.contains("no application protocol") && out.contains("no peer certificate available"),
        "{out}"
    );
}

#[test]
fn sighup_reload_keeps_open_connections_and_new_handshakes_get_the_new_certificate() {
    let pki = Pki::new();
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
    let old = pki.issue("site", "old", &["site.test"], p256);
    let serve = Serve::start_with_cert(&pki, "site", &["--threads", "2"]);
    let client = pki.client();
    let mut before = connect(&client, serve.https, "site.test");
    assert_eq!(peer_cert(&before), old);
    assert_eq!(get(&mut before, "/hello").0, 200);

    let new = pki.issue("site", "new", &["site.test"], p256);
    serve.signal(libc::SIGHUP);
    serve.wait_log(&["SIGHUP: reloading the TLS certificates"]);
    serve.wait_log(&["TLS certificate reloaded", "site.crt"]);

    // The connection opened before goes on (same session, keep-alive).
    assert_eq!(get(&mut before, "/hello"), (200, "Hello, World!".into()));
    // A new handshake gets the new certificate (a fresh client: no
    // session to resume).
    let mut after = connect(&pki.client(), serve.https, "site.test");
    assert_eq!(peer_cert(&after), new);
    let (status, metrics) = get(&mut after, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("ringtail_tls_reloads_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
    // The process is still the one started (SIGHUP did not end it).
    assert!(serve.child.id() > 0);
    assert_eq!(get(&mut before, "/hello").0, 200);
}

#[test]
fn ctl_reload_tls_with_a_broken_key_fails_and_the_old_certificate_stays() {
    let pki = Pki::new();
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
    let old = pki.issue("site", "old", &["site.test"], p256);
    pki.issue("other", "other", &["other.test"], p256);
    let control = pki.path("control.sock");
    let serve = Serve::start_with_cert(
        &pki,
        "site",
        &["--threads", "1", "--control", control.to_str().unwrap()],
    );
    let client = pki.client();

    // A key of another certificate, then a file that is no key at all.
    std::fs::copy(pki.path("other.key"), pki.path("site.key")).unwrap();
    let out = ctl(&control, "reload-tls");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reload-tls failed")
            && err.contains("site.key: the private key does not match the certificate in")
            && err.contains("kept"),
        "{err}"
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["ok"], false);
    std::fs::write(pki.path("site.key"), "not a key\n").unwrap();
    let out = ctl(&control, "reload-tls");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("site.key: no private key in the file"),
        "{err}"
    );
    serve.wait_log(&["TLS reload failed"]);

    // The old certificate is still served.
    let mut s = connect(&client, serve.https, "site.test");
    assert_eq!(peer_cert(&s), old);
    assert_eq!(get(&mut s, "/hello").0, 200);

    // Fixed: the reload takes, and says what is served.
    let new = pki.issue("site", "new", &["site.test", "www.site.test"], p256);
    let out = ctl(&control, "reload-tls");
    assert!(out.status.success(), "{out:?}");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["ok"], true);
    let certs = reply["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(
        certs[0]["names"],
        serde_json::json!(["site.test", "www.site.test"])
    );
    assert_eq!(certs[0]["default"], true);
    assert!(certs[0]["not_after"].as_str().unwrap().ends_with('Z'));
    let s2 = connect(&pki.client(), serve.https, "site.test");
    assert_eq!(peer_cert(&s2), new);
    // … and the first connection is still served.
    assert_eq!(get(&mut s, "/hello").0, 200);
    let (_, metrics) = get(&mut s, "/metrics");
    assert!(
        metrics.contains("ringtail_tls_reloads_total{result=\"failed\"} 2\n")
            && metrics.contains("ringtail_tls_reloads_total{result=\"ok\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn an_upgrade_keeps_tls_connections_open_and_serving() {
    let pki = Pki::new();
    pki.issue(
        "site",
        "site",
        &["site.test"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let control = pki.path("control.sock");
    let serve = Serve::start_with_cert(
        &pki,
        "site",
        &["--threads", "2", "--control", control.to_str().unwrap()],
    );
    let client = pki.client();
    let mut open = connect(&client, serve.https, "site.test");
    assert_eq!(get(&mut open, "/hello").0, 200);
    let s = connect(&client, serve.https, "site.test");
    let (mut ws, _) =
        tungstenite::client(format!("wss://site.test:{}/ws/echo", serve.https.port()), s).unwrap();
    ws.send(tungstenite::Message::text("before")).unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), "before");
    let mut pids = vec![serve.child.id()];
    // Processes after the first are not this test's children: ended by
    // this guard whatever happens.
    struct KillLast(Arc<Mutex<Option<u32>>>);
    impl Drop for KillLast {
        fn drop(&mut self) {
            if let Some(pid) = *self.0.lock().unwrap() {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
    let last = Arc::new(Mutex::new(None));
    let _guard = KillLast(last.clone());
    for round in 0..2 {
        let out = ctl(&control, "upgrade");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let status = ctl(&control, "status");
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let pid = status["pid"].as_u64().unwrap() as u32;
        *last.lock().unwrap() = Some(pid);
        assert!(!pids.contains(&pid), "round {round}: pid {pid} not new");
        pids.push(pid);
        // The TLS sessions opened before go on in the new process: a
        // keep-alive request and a WebSocket message each way.
        assert_eq!(get(&mut open, "/hello").0, 200, "round {round}");
        let msg = format!("after upgrade {round} ").repeat(100 * (round + 1));
        ws.send(tungstenite::Message::text(msg.clone())).unwrap();
        assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), msg);
        // New handshakes are served by the new process.
        let mut fresh = connect(&client, serve.https, "site.test");
        assert_eq!(get(&mut fresh, "/hello").0, 200);
        let mut plain = TcpStream::connect(serve.http).unwrap();
        plain.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(get(&mut plain, "/hello").0, 200);
    }
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    // The session ends cleanly (close_notify from the third process).
    open.conn.send_close_notify();
    open.flush().unwrap();
    let mut rest = Vec::new();
    open.read_to_end(&mut rest)
        .expect("a clean TLS close after two upgrades");
}

#[test]
fn a_key_that_does_not_match_is_refused_at_start_naming_the_files() {
    let pki = Pki::new();
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
    pki.issue("a", "a", &["a.test"], p256);
    pki.issue("b", "b", &["b.test"], p256);
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tls-addr",
            "127.0.0.1:0",
        ])
        .arg("--upload-dir")
        .arg(pki.path("up"))
        .arg("--tls-cert")
        .arg(pki.path("a.crt"))
        .arg("--tls-key")
        .arg(pki.path("b.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("b.key: the private key does not match the certificate in")
            && err.contains("a.crt"),
        "{err}"
    );
}

#[test]
fn browser_chat_and_upload_over_https_with_the_test_certificate_trusted() {
    use rcgen::PublicKeyData;
    use sha2::Digest;
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: run scripts/install-test-deps"
    );
    let pki = Pki::new();
    pki.issue(
        "site",
        "site",
        &["127.0.0.1"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let key = std::fs::read_to_string(pki.path("site.key")).unwrap();
    let spki = rcgen::KeyPair::from_pem(&key)
        .unwrap()
        .subject_public_key_info();
    let spki_hash: String = sha2::Sha256::digest(&spki)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let serve = Serve::start_with_cert(&pki, "site", &["--threads", "2"]);
    let upload = pki.path("hello-over-tls.txt");
    std::fs::write(
        &upload,
        "uploaded over HTTPS by headless Chromium\n".repeat(1000),
    )
    .unwrap();
    let artefacts = target_dir().join("artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("chat-https.png");
    let _ = std::fs::remove_file(&shot);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/demo.py");
    let out = Command::new(test_python())
        .arg(script)
        .arg(format!("https://{}", serve.https))
        .arg(&shot)
        .arg(&upload)
        .arg(pki.ca_file())
        .arg(&spki_hash)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "OK chat between two tabs",
        "OK upload through the form",
        "OK listing shows",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000);
    // Every page, the WebSocket and the upload came over TLS.
    let mut s = connect(&pki.client(), serve.https, "127.0.0.1");
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, metrics) = get(&mut s, "/metrics");
        if metrics.contains("ringtail_websocket_upgrades_total 2\n") || Instant::now() > deadline {
            assert!(
                metrics.contains("ringtail_websocket_upgrades_total 2\n"),
                "{metrics}"
            );
            assert!(metric(&metrics, "ringtail_tls_handshakes_total") >= 3);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
