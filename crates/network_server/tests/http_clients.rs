//! HTTP/1.1 against real clients we did not write: curl and the `ureq`
//! crate; pipelining over a raw socket.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{connect, read_response, spawn_test_app};
use network_server::ServerConfig;

/// Runs curl with a time bound; returns (stdout, stderr).
fn curl(args: &[&str]) -> (Vec<u8>, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/install-test-deps");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curl_keep_alive_reuses_one_connection() {
    let (server, seen) = spawn_test_app(ServerConfig::default());
    let base = format!("http://{}", server.addr);
    let (body, err) = curl(&["-v", &format!("{base}/one"), &format!("{base}/two?x=1")]);
    assert_eq!(body, b"GET /one HTTP/1.1GET /two?x=1 HTTP/1.1");
    assert!(err.contains("Re-using existing connection"), "{err}");
    // curl has exited and closed its connection: exactly one close callback.
    assert!(common::wait_until(Duration::from_secs(10), || {
        seen.lock().unwrap().http_closes.len() == 1
    }));
    server.stop();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.accepted, 1);
    assert_eq!(
        seen.http_closes.len(),
        1,
        "one close callback per connection"
    );
    assert_eq!(seen.http_closes[0].1, network_server::CloseReason::Peer);
}

#[test]
fn curl_http10_closes_unless_keep_alive_is_asked() {
    let (server, seen) = spawn_test_app(ServerConfig::default());
    let base = format!("http://{}", server.addr);
    let (body, err) = curl(&[
        "-v",
        "--http1.0",
        &format!("{base}/a"),
        &format!("{base}/b"),
    ]);
    assert_eq!(body, b"GET /a HTTP/1.0GET /b HTTP/1.0");
    assert!(err.contains("< Connection: close"), "{err}");
    assert!(!err.contains("Re-using"), "{err}");
    let (body, err) = curl(&[
        "-v",
        "--http1.0",
        "-H",
        "Connection: keep-alive",
        &format!("{base}/c"),
        &format!("{base}/d"),
    ]);
    assert_eq!(body, b"GET /c HTTP/1.0GET /d HTTP/1.0");
    assert!(err.contains("< Connection: keep-alive"), "{err}");
    assert!(err.contains("Re-using existing connection"), "{err}");
    server.stop();
    assert_eq!(seen.lock().unwrap().accepted, 3);
}

#[test]
fn curl_head_gets_headers_only() {
    let (server, _seen) = spawn_test_app(ServerConfig::default());
    let url = format!("http://{}/h", server.addr);
    let (out, _) = curl(&["-I", &url]);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    // The length of the GET body ("HEAD /h HTTP/1.1" is 16 bytes), no body.
    assert!(text.contains("Content-Length: 16\r\n"), "{text}");
    assert!(text.contains("Date: "), "{text}");
    assert!(text.ends_with("\r\n\r\n"));
    // Over a raw socket: nothing follows the head, and the connection is
    // still usable for a GET.
    let mut s = connect(server.addr);
    s.write_all(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let head = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(head.header("content-length"), Some("16"));
    let get = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(get.body, b"GET /y HTTP/1.1");
    server.stop();
}

#[test]
fn curl_chunked_upload_and_100_continue() {
    let (server, _seen) = spawn_test_app(ServerConfig::default());
    let url = format!("http://{}/echo", server.addr);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payload");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, &payload).unwrap();
    let file_arg = format!("@{}", path.display());

    let (body, err) = curl(&[
        "-v",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &file_arg,
        &url,
    ]);
    assert!(err.contains("> Transfer-Encoding: chunked"), "{err}");
    assert!(body == payload, "chunked upload echoed back intact");

    let (body, err) = curl(&[
        "-v",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &file_arg,
        &url,
    ]);
    assert!(err.contains("< HTTP/1.1 100 Continue"), "{err}");
    assert!(body == payload, "100-continue upload echoed back intact");
    server.stop();
}

#[test]
fn huge_streamed_upload_is_never_held_in_memory() {
    // 512 MiB through curl from stdin (chunked), counted by the app: the
    // server's memory must not grow with the body.
    let config = ServerConfig {
        max_body_size: 1 << 40,
        ..Default::default()
    };
    let (server, seen) = spawn_test_app(config);
    let url = format!("http://{}/count", server.addr);
    let rss_before = common::rss_kib();
    let script = format!(
        "head -c 536870912 /dev/zero | curl --silent --show-error --max-time 120 -T - -X POST {url}"
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "536870912");
    let grown_mib = common::rss_kib().saturating_sub(rss_before) / 1024;
    assert!(
        grown_mib < 64,
        "RSS grew by {grown_mib} MiB for a 512 MiB body"
    );
    server.stop();
    assert_eq!(seen.lock().unwrap().body_bytes, 536_870_912);
}

#[test]
fn ureq_client_gets_and_posts_over_a_pooled_connection() {
    let (server, seen) = spawn_test_app(ServerConfig::default());
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let base = format!("http://{}", server.addr);
    for i in 0..20 {
        let r = agent.get(&format!("{base}/item/{i}")).call().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.into_string().unwrap(), format!("GET /item/{i} HTTP/1.1"));
    }
    let r = agent
        .post(&format!("{base}/echo"))
        .send_bytes(b"ureq body")
        .unwrap();
    assert_eq!(r.into_string().unwrap(), "ureq body");
    server.stop();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.accepted, 1, "ureq pooled one connection");
    assert_eq!(seen.requests.len(), 21);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (server, seen) = spawn_test_app(ServerConfig::default());
    let mut s = connect(server.addr);
    let mut batch = Vec::new();
    for i in 0..50 {
        if i % 10 == 5 {
            write!(
                batch,
                "POST /p{i} HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nbody{i:02}"
            )
            .unwrap();
        } else if i % 10 == 7 {
            write!(
                batch,
                "PUT /p{i} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
            )
            .unwrap();
        } else {
            write!(batch, "GET /p{i} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        }
    }
    // Everything in one write: the server must answer one after the other.
    s.write_all(&batch).unwrap();
    let mut buf = Vec::new();
    for i in 0..50 {
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.status, 200);
        let want = match i % 10 {
            5 => format!("body{i:02}"),
            7 => "abcde".to_string(),
            _ => format!("GET /p{i} HTTP/1.1"),
        };
        assert_eq!(String::from_utf8(r.body).unwrap(), want, "response {i}");
    }
    server.stop();
    assert_eq!(seen.lock().unwrap().requests.len(), 50);
}

#[test]
fn connection_close_is_honoured() {
    let (server, seen) = spawn_test_app(ServerConfig::default());
    let mut s = connect(server.addr);
    s.write_all(b"GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(common::closed_by_peer(&mut s));
    server.stop();
    assert_eq!(seen.lock().unwrap().requests, ["GET /bye HTTP/1.1"]);
}
