//! The close sequence (the notes' `close_pfd`) and stale pfds.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{pipe, run_bounded};
use event_manager::{Completion, CompletionKind, Error, EventManager, OutBuf};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn stale_pfd_is_refused_and_never_touches_the_new_occupant() {
    let mut em = EventManager::new().unwrap();
    let (r1, w1) = pipe();
    let old = em.adopt(w1).unwrap();
    em.close(old, 1).unwrap();
    // From the close call on, the pfd is stale for new operations.
    assert!(matches!(em.write(old, b"x", None, 0), Err((Error::Stale(p), _)) if p == old));
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Close { pfd, result } => {
            assert_eq!(pfd, old);
            result.unwrap();
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });

    // The slot is reused by a new descriptor under a new generation.
    let (r2, w2) = pipe();
    let new = em.adopt(w2).unwrap();
    assert_eq!(new.index(), old.index());
    assert_ne!(new.generation(), old.generation());

    // Every operation on the old pfd fails with Stale and gives the buffer back.
    match em.write(old, b"must not arrive".to_vec(), None, 0) {
        Err((Error::Stale(p), buf)) => {
            assert_eq!(p, old);
            assert_eq!(buf.as_slice(), b"must not arrive");
        }
        other => panic!("expected Stale, got {other:?}"),
    }
    assert!(matches!(
        em.writev(old, vec![OutBuf::from("x")], None, 0),
        Err((Error::Stale(_), _))
    ));
    assert!(matches!(
        em.read(old, Vec::with_capacity(1), None, 0),
        Err((Error::Stale(_), _))
    ));
    assert!(matches!(
        em.readv(old, vec![], None, 0),
        Err((Error::Stale(_), _))
    ));
    assert_eq!(em.recv_multishot(old, 0), Err(Error::Stale(old)));
    assert_eq!(em.accept_multishot(old, 0), Err(Error::Stale(old)));
    assert_eq!(
        em.shutdown(old, std::net::Shutdown::Both, 0),
        Err(Error::Stale(old))
    );
    assert_eq!(em.fstat(old, 0), Err(Error::Stale(old)));
    assert_eq!(em.close(old, 0), Err(Error::Stale(old)));
    assert_eq!(em.raw_fd(old), Err(Error::Stale(old)));
    assert_eq!(em.eventfd_trigger(old), Err(Error::Stale(old)));

    // The new occupant works and received nothing from the stale writes.
    em.write(new, b"new".to_vec(), None, 2).unwrap();
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Write { result, .. } => {
            assert_eq!(result, Ok(3));
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
    drop(em); // closes `new`
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(r2), &mut got).unwrap();
    assert_eq!(got, b"new");
    // The first pipe's writer was closed by `close`: its reader sees EOF.
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut std::fs::File::from(r1), &mut got).unwrap();
    assert!(got.is_empty());
}

#[test]
fn close_with_read_in_flight_delivers_cancelled_read_then_close() {
    let mut em = EventManager::new().unwrap();
    let (r, _w) = pipe();
    let r = em.adopt(r).unwrap();
    em.read(r, Vec::with_capacity(16), None, 1).unwrap();
    em.read(r, Vec::with_capacity(16), None, 2).unwrap();
    em.nop(3);
    let mut order = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Nop => em.close(r, 4).unwrap(),
        CompletionKind::Read { result, pfd, .. } => {
            assert_eq!(pfd, r);
            assert_eq!(result, Err(Error::Cancelled));
            order.push(c.user);
        }
        CompletionKind::Close { pfd, result } => {
            assert_eq!(pfd, r);
            result.unwrap();
            order.push(c.user);
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
    // Both cancelled reads come first (in either order), the close last.
    assert_eq!(order.len(), 3);
    assert_eq!(order[2], 4);
    assert_eq!(em.pfd_count(), 0);
    assert_eq!(em.ops_in_flight(), 0);
}

#[test]
fn close_ends_multishot_accept_and_recv_before_close() {
    let mut em = EventManager::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let lst = em.adopt(OwnedFd::from(l)).unwrap();
    em.accept_multishot(lst, 1).unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"x").unwrap();
    let mut log = Vec::new();
    let mut conn = None;
    run_bounded(&mut em, LIMIT, |em, c: Completion| {
        match c.kind {
            CompletionKind::Accept { result, .. } => {
                let p = result.unwrap();
                conn = Some(p);
                em.recv_multishot(p, 2).unwrap();
                log.push("accept");
            }
            CompletionKind::Recv { pfd, .. } => {
                log.push("recv");
                // Close both while their multishots are armed.
                em.close(pfd, 3).unwrap();
                em.close(lst, 4).unwrap();
            }
            CompletionKind::RecvEnd { result, .. } => {
                assert_eq!(result, Err(Error::Cancelled));
                log.push("recv-end");
            }
            CompletionKind::AcceptEnd { result, .. } => {
                assert_eq!(result, Err(Error::Cancelled));
                log.push("accept-end");
            }
            CompletionKind::Close { pfd, .. } => {
                log.push(if Some(pfd) == conn {
                    "close-conn"
                } else {
                    "close-listener"
                });
            }
            other => panic!("unexpected {other:?}"),
        }
        if log.len() == 6 {
            em.stop();
        }
    });
    let pos = |s| log.iter().position(|x| *x == s).unwrap();
    assert!(pos("recv-end") < pos("close-conn"), "{log:?}");
    assert!(pos("accept-end") < pos("close-listener"), "{log:?}");
    assert_eq!(em.pfd_count(), 0);
}

#[test]
fn close_of_a_starved_receive_cancels_it() {
    // One buffer, held by the handler: the receive parks, then the close
    // must end it even though it is not in the kernel.
    let config = event_manager::Config {
        recv_buffers: 1,
        recv_buffer_size: 8,
        ..Default::default()
    };
    let mut em = EventManager::with_config(config).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let lst = em.adopt(OwnedFd::from(l)).unwrap();
    em.accept_multishot(lst, 0).unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(&[7; 64]).unwrap();
    let mut held = None;
    let mut log = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Accept { result, .. } => {
            em.recv_multishot(result.unwrap(), 0).unwrap();
        }
        CompletionKind::Recv { pfd, buf } => {
            held = Some(buf);
            log.push("recv");
            // Let the receive hit ENOBUFS, then close.
            em.timeout(Duration::from_millis(50), pfd.to_u64());
        }
        CompletionKind::Timeout { .. } => {
            em.close(event_manager::Pfd::from_u64(c.user), 0).unwrap();
        }
        CompletionKind::RecvEnd { result, .. } => {
            assert_eq!(result, Err(Error::Cancelled));
            log.push("recv-end");
        }
        CompletionKind::Close { .. } => {
            log.push("close");
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(log, ["recv", "recv-end", "close"]);
    drop(held);
}

#[test]
fn each_close_completes_exactly_once() {
    let mut em = EventManager::new().unwrap();
    let mut pfds = Vec::new();
    for _ in 0..100 {
        let (r, w) = pipe();
        pfds.push(em.adopt(r).unwrap());
        pfds.push(em.adopt(w).unwrap());
    }
    for (i, p) in pfds.iter().enumerate() {
        if i % 2 == 0 {
            em.read(*p, Vec::with_capacity(8), None, 0).unwrap();
        }
        em.close(*p, i as u64).unwrap();
        assert_eq!(
            em.close(*p, 0),
            Err(Error::Stale(*p)),
            "second close refused"
        );
    }
    let mut closed = vec![0u32; pfds.len()];
    let mut reads = 0;
    run_bounded(&mut em, LIMIT, |em, c: Completion| {
        match c.kind {
            CompletionKind::Close { .. } => closed[c.user as usize] += 1,
            CompletionKind::Read { .. } => reads += 1,
            other => panic!("unexpected {other:?}"),
        }
        if closed.iter().sum::<u32>() == 200 {
            em.stop();
        }
    });
    assert!(closed.iter().all(|&n| n == 1));
    assert_eq!(reads, 100);
    assert_eq!(em.pfd_count(), 0);
}
