//! 5,000 connections accepted, echoed and closed leave the process's
//! open-descriptor count where it started. (Its own test binary: the count
//! is per process.)

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{fd_count, run_bounded};
use event_manager::{Completion, CompletionKind, EventManager};

const CONNECTIONS: usize = 5_000;
const CLIENT_THREADS: usize = 4;

#[test]
fn five_thousand_echo_connections_leak_no_descriptor() {
    let before = fd_count();
    let mut em = EventManager::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let lst = em.adopt(OwnedFd::from(l)).unwrap();
    em.accept_multishot(lst, 0).unwrap();

    let clients: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..CONNECTIONS / CLIENT_THREADS {
                    let mut s = TcpStream::connect(addr).unwrap();
                    let msg = format!("client {t} message {i}");
                    s.write_all(msg.as_bytes()).unwrap();
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    let mut back = String::new();
                    s.read_to_string(&mut back).unwrap();
                    assert_eq!(back, msg);
                }
            })
        })
        .collect();

    let mut closed = 0;
    let mut accepted = 0;
    run_bounded(
        &mut em,
        Duration::from_secs(120),
        |em, c: Completion| match c.kind {
            CompletionKind::Accept { result, .. } => {
                accepted += 1;
                em.recv_multishot(result.unwrap(), 0).unwrap();
            }
            CompletionKind::Recv { pfd, buf } => {
                em.write(pfd, buf.to_vec(), None, 0).unwrap();
            }
            CompletionKind::Write { result, .. } => {
                result.unwrap();
            }
            CompletionKind::RecvEnd { pfd, .. } => {
                // Peer finished sending; the echo writes were queued before, so
                // the close (which waits for them) ends the connection.
                em.close(pfd, 0).unwrap();
            }
            CompletionKind::Close { result, .. } => {
                result.unwrap();
                closed += 1;
                if closed == CONNECTIONS {
                    em.stop();
                }
            }
            other => panic!("unexpected {other:?}"),
        },
    );
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(accepted, CONNECTIONS);
    assert_eq!(em.pfd_count(), 1, "only the listener is left");
    drop(em);
    assert_eq!(fd_count(), before, "descriptors leaked");
}
