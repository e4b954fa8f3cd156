//! After 10,000 connections with a mix of good and bad requests, the
//! process's open-descriptor count and RSS return to their baseline. (Its own
//! test binary: both are per process.)

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use common::{connect, fd_count, read_response, rss_kib, spawn_test_app, wait_until};
use network_server::ServerConfig;

fn one_connection(addr: SocketAddr, i: usize) {
    let mut s = connect(addr);
    let mut buf = Vec::new();
    match i % 4 {
        0 => {
            // Two keep-alive requests, then the client closes.
            for _ in 0..2 {
                s.write_all(b"GET /k HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
                assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
            }
        }
        1 => {
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 400);
        }
        2 => {
            s.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
                .unwrap();
            assert_eq!(
                read_response(&mut s, &mut buf, false).unwrap().body,
                b"hello"
            );
        }
        _ => {
            // A half request, then the client goes away.
            s.write_all(b"GET /half HTTP/1.1\r\nHo").unwrap();
        }
    }
}

fn run_batch(addr: SocketAddr, count: usize) {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in (t..count).step_by(4) {
                    one_connection(addr, i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn ten_thousand_mixed_connections_return_fds_and_rss_to_baseline() {
    let (server, seen) = spawn_test_app(ServerConfig::default());
    // Warm-up so allocator pools and tables reach their working size.
    run_batch(server.addr, 1_000);
    assert!(wait_until(Duration::from_secs(20), || seen
        .lock()
        .unwrap()
        .http_closes
        .len()
        == 1_000));
    let fds = fd_count();
    let rss = rss_kib();

    run_batch(server.addr, 10_000);
    assert!(
        wait_until(Duration::from_secs(60), || seen
            .lock()
            .unwrap()
            .http_closes
            .len()
            == 11_000),
        "every connection gets exactly one close callback (got {})",
        seen.lock().unwrap().http_closes.len()
    );
    assert!(
        wait_until(Duration::from_secs(10), || fd_count() == fds),
        "descriptors leaked: {} → {}",
        fds,
        fd_count()
    );
    let grown = rss_kib().saturating_sub(rss);
    assert!(
        grown < 8 * 1024,
        "RSS grew by {grown} KiB over 10,000 connections"
    );
    let seen = seen.lock().unwrap();
    let mut ids: Vec<_> = seen.http_closes.iter().map(|(c, _)| *c).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 11_000, "no client id closed twice");
    drop(seen);
    server.stop();
}
