//! `ServerConfig::access_log_sink`: the access log's lines reach the sink
//! whole and in order, in batches — when 32 KiB have gathered, at the
//! sweep's tick, and when the loop stops — and none is lost.

mod common;

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use common::{connect, read_response, spawn_test_app};
use network_server::{AccessLogSink, ServerConfig};

fn config(tick: Duration) -> (ServerConfig, mpsc::Receiver<Vec<u8>>) {
    let (tx, rx) = mpsc::channel();
    let config = ServerConfig {
        access_log: true,
        timer_tick: tick,
        access_log_sink: Some(AccessLogSink::new(move |batch| {
            let _ = tx.send(batch);
        })),
        ..ServerConfig::default()
    };
    (config, rx)
}

fn lines(batches: &[Vec<u8>]) -> Vec<String> {
    let text: Vec<u8> = batches.concat();
    let text = String::from_utf8(text).expect("access lines are ASCII");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a batch ends mid-line"
    );
    text.lines().map(str::to_string).collect()
}

#[test]
fn lines_leave_in_batches_of_32_kib_and_the_rest_when_the_loop_stops() {
    // No tick during the test: only size and the stop hand lines over.
    let (config, rx) = config(Duration::from_secs(3600));
    let (server, _seen) = spawn_test_app(config);
    let agent = "a".repeat(100);
    let n = 600;
    let mut s = connect(server.addr);
    let mut requests = Vec::new();
    for i in 0..n {
        write!(
            requests,
            "GET /r/{i} HTTP/1.1\r\nHost: h\r\nUser-Agent: {agent}\r\nReferer: /from \"{i}\"\r\n\r\n"
        )
        .unwrap();
    }
    s.write_all(&requests).unwrap();
    let mut buf = Vec::new();
    for i in 0..n {
        let r = read_response(&mut s, &mut buf, false).expect("an answer");
        assert_eq!(r.status, 200, "answer {i}");
    }
    // Each line is logged when its answer is queued, before it is written:
    // the batches that filled up are with the sink already.
    let early: Vec<Vec<u8>> = rx.try_iter().collect();
    let early_lines = lines(&early).len();
    assert!(early.len() >= 3, "{} batches", early.len());
    assert!(
        early.iter().all(|b| b.len() >= 32 * 1024),
        "a batch left early"
    );
    assert!(
        early_lines < n,
        "all {early_lines} lines left before the stop"
    );

    server.stop();
    let all: Vec<Vec<u8>> = early.into_iter().chain(rx.try_iter()).collect();
    let got = lines(&all);
    assert_eq!(got.len(), n, "lines lost or repeated");
    for (i, line) in got.iter().enumerate() {
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        let tail = format!("] \"GET /r/{i} HTTP/1.1\" 200 ");
        assert!(line.contains(&tail), "line {i}: {line}");
        let quoted = format!(" \"/from \\\"{i}\\\"\" \"{agent}\" ");
        assert!(line.contains(&quoted), "line {i}: {line}");
    }
}

#[test]
fn a_few_lines_leave_at_the_next_tick() {
    let (config, rx) = config(Duration::from_millis(50));
    let (server, _seen) = spawn_test_app(config);
    let mut s = connect(server.addr);
    s.write_all(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).expect("an answer");
    assert_eq!(r.status, 200);
    // Bounded wait: the tick comes every 50 ms.
    let batch = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the line did not leave at a tick");
    let got = lines(&[batch]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("\"GET /one HTTP/1.1\" 200 "), "{got:?}");
    let (fields, secs) = got[0].rsplit_once(' ').unwrap();
    assert!(fields.ends_with(" \"-\" \"-\""), "{got:?}");
    assert!(secs.parse::<f64>().is_ok_and(|s| s < 10.0), "{got:?}");
    server.stop();
}
