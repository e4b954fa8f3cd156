//! A requested cancel is remembered: a multishot receive whose last
//! completion (`ENOBUFS`, or data without `MORE`) was already posted when
//! the cancel was asked for ends with `RecvEnd(Cancelled)` instead of being
//! parked or re-armed, and bytes not yet received stay in the socket.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::run_bounded;
use event_manager::{CompletionKind, Config, Error, EventManager, Pfd, RecvBuf};

/// One 4 KiB receive buffer: a multishot receive of 8 KiB takes it whole,
/// then stops with `ENOBUFS` in the same kernel pass.
fn one_buffer() -> EventManager {
    EventManager::with_config(Config {
        recv_buffers: 1,
        recv_buffer_size: 4096,
        ..Default::default()
    })
    .unwrap()
}

#[derive(Debug, PartialEq)]
enum Seen {
    Data(usize),
    End(Result<(), Error>),
}

/// Arms a receive on a socket that already holds `pending` bytes, cancels
/// it from inside its first data completion (while the rest of that kernel
/// pass waits in the backlog), holds the received buffer (so no buffer can
/// come back to re-arm a parked receive with), and records everything the
/// receive delivers until a one-second timer.
fn cancel_in_first_completion(em: &mut EventManager, pfd: Pfd) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut held: Vec<RecvBuf> = Vec::new();
    let mut cancelled = false;
    em.recv_multishot(pfd, 1).unwrap();
    em.timeout(Duration::from_secs(1), 2);
    run_bounded(em, Duration::from_secs(10), |em, c| match c.kind {
        CompletionKind::Recv { buf, .. } => {
            seen.push(Seen::Data(buf.len()));
            held.push(buf);
            if !cancelled {
                cancelled = true;
                em.cancel(c.op).unwrap();
                // A second request for the same op is harmless.
                em.cancel(c.op).unwrap();
            }
            // Give the buffer back once the cancel is on record: a parked
            // receive would be re-armed by it (the old, lost-cancel bug).
            held.clear();
        }
        CompletionKind::RecvEnd { result, .. } => seen.push(Seen::End(result)),
        CompletionKind::Timeout { .. } => em.stop(),
        _ => {}
    });
    seen
}

#[test]
fn cancel_survives_an_enobufs_already_in_the_backlog() {
    let mut em = one_buffer();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    peer.write_all(&[7u8; 12 * 1024]).unwrap();
    let pfd = em.adopt(OwnedFd::from(ours)).unwrap();
    let seen = cancel_in_first_completion(&mut em, pfd);
    assert_eq!(
        seen.first(),
        Some(&Seen::Data(4096)),
        "first completion takes the one buffer: {seen:?}"
    );
    let ends: Vec<_> = seen.iter().filter(|s| matches!(s, Seen::End(_))).collect();
    assert_eq!(
        ends,
        vec![&Seen::End(Err(Error::Cancelled))],
        "exactly one RecvEnd(Cancelled) after the cancel: {seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&Seen::End(Err(Error::Cancelled))),
        "nothing delivered after the end: {seen:?}"
    );
    // What the receive did not take is still in the socket, in order.
    let taken: usize = seen
        .iter()
        .map(|s| if let Seen::Data(n) = s { *n } else { 0 })
        .sum();
    let fd = em.raw_fd(pfd).unwrap();
    // SAFETY: `fd` is owned by the event manager, which outlives this
    // borrow; nothing else reads it meanwhile (no receive is armed).
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut rest = UnixStream::from(borrowed.try_clone_to_owned().unwrap());
    rest.set_nonblocking(true).unwrap();
    let mut left = Vec::new();
    let _ = rest.read_to_end(&mut left);
    assert_eq!(taken + left.len(), 12 * 1024);
    assert_eq!(em.stats().stale_completions, 0);
}

#[test]
fn cancelled_receive_can_be_armed_again_and_reads_the_rest() {
    let mut em = one_buffer();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    peer.write_all(&[1u8; 6000]).unwrap();
    let pfd = em.adopt(OwnedFd::from(ours)).unwrap();
    let seen = cancel_in_first_completion(&mut em, pfd);
    let first: usize = seen
        .iter()
        .map(|s| if let Seen::Data(n) = s { *n } else { 0 })
        .sum();
    assert!(matches!(
        seen.last(),
        Some(Seen::End(Err(Error::Cancelled)))
    ));
    // Re-arm: the rest arrives; then EOF ends it with Ok.
    drop(peer);
    let mut total = first;
    em.recv_multishot(pfd, 1).unwrap();
    run_bounded(&mut em, Duration::from_secs(10), |em, c| match c.kind {
        CompletionKind::Recv { buf, .. } => total += buf.len(),
        CompletionKind::RecvEnd { result, .. } => {
            assert_eq!(result, Ok(()));
            em.stop();
        }
        _ => {}
    });
    assert_eq!(total, 6000);
}
