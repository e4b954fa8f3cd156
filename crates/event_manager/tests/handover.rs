//! Quiesce, export, release, import, resume — against real sockets,
//! eventfds and timers: the same pfds and operation ids mean the same
//! things afterwards, no byte is lost or repeated, nothing is closed or
//! leaked, and a snapshot that does not fit is refused with a reason.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::fd_count;
use event_manager::{
    Completion, CompletionKind, Config, DescriptorCheck, Error, EventManager, OpId, Pfd, PfdInfo,
    SnapshotError,
};

const TAG_ACCEPT: u64 = 1;
const TAG_RECV: u64 = 2;
const TAG_EVENT: u64 = 3;
const TAG_TIMER: u64 = 4;
const TAG_WRITE: u64 = 5;

/// What the tests' handler saw.
#[derive(Default, Debug)]
struct Seen {
    accepted: Vec<Pfd>,
    data: Vec<u8>,
    recv_ends: usize,
    accept_ends: usize,
    events: Vec<(u64, u64)>,
    timers: Vec<(OpId, Result<(), Error>)>,
    writes: Vec<(usize, Result<usize, Error>)>,
}

impl Seen {
    fn on(&mut self, c: Completion) {
        match c.kind {
            CompletionKind::Accept { result, .. } => self.accepted.push(result.unwrap()),
            CompletionKind::AcceptEnd { .. } => self.accept_ends += 1,
            CompletionKind::Recv { buf, .. } => self.data.extend_from_slice(&buf),
            CompletionKind::RecvEnd { .. } => self.recv_ends += 1,
            CompletionKind::EventFd { info, result, .. } => {
                self.events.push((c.user, info));
                result.unwrap();
            }
            CompletionKind::Timeout { result } => self.timers.push((c.op, result)),
            CompletionKind::Write {
                written, result, ..
            } => self.writes.push((written, result)),
            _ => {}
        }
    }
}

/// Turns the loop until `done` holds (bounded: every test is).
fn turn_until(
    em: &mut EventManager,
    seen: &mut Seen,
    what: &str,
    mut done: impl FnMut(&EventManager, &Seen) -> bool,
) {
    let limit = Instant::now() + Duration::from_secs(10);
    while !done(em, seen) {
        assert!(Instant::now() < limit, "timed out waiting for {what}");
        em.turn(
            &mut |_: &mut EventManager, c: Completion| seen.on(c),
            Some(Duration::from_millis(50)),
        )
        .unwrap();
    }
}

fn quiesce(em: &mut EventManager, seen: &mut Seen) {
    em.quiesce();
    turn_until(em, seen, "the quiesce", |em, _| em.is_quiesced());
}

/// Exports, releases and imports into a fresh manager (which starts
/// quiesced).
fn hand_over(em: EventManager) -> EventManager {
    let snap = em.export().unwrap();
    let fds = em.release();
    assert_eq!(fds.len(), snap.fds.len());
    EventManager::import(Config::default(), &snap.bytes, fds)
        .map_err(|(e, _)| e)
        .unwrap()
}

fn table(em: &EventManager) -> Vec<(Pfd, event_manager::FdKind, u32)> {
    em.pfds()
        .map(|i: PfdInfo| (i.pfd, i.kind, i.inflight))
        .collect()
}

#[test]
fn twenty_handovers_keep_every_pfd_op_and_byte() {
    let fds_before = fd_count();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut em = EventManager::new().unwrap();
    let lpfd = em.adopt(OwnedFd::from(listener)).unwrap();
    let accept_op = em.accept_multishot(lpfd, TAG_ACCEPT).unwrap();
    let ev = em.eventfd_open().unwrap();
    em.eventfd_arm(ev, 42, TAG_EVENT).unwrap();
    // A pfd closed before the handovers: it must stay stale after them.
    let gone = em.eventfd_open().unwrap();
    em.close(gone, 0).unwrap();
    // A timer that outlives every handover, and one that fires between.
    let long_timer = em.timeout(Duration::from_secs(3600), TAG_TIMER);
    let mut seen = Seen::default();

    let mut client = TcpStream::connect(addr).unwrap();
    turn_until(&mut em, &mut seen, "the accept", |_, s| {
        s.accepted.len() == 1
    });
    let conn = seen.accepted[0];
    let recv_op = em.recv_multishot(conn, TAG_RECV).unwrap();

    let mut expected = Vec::new();
    for round in 0..20u32 {
        // Bytes sent before, during and after the quiesce all arrive once,
        // in order.
        let before = format!("[{round} before]");
        client.write_all(before.as_bytes()).unwrap();
        expected.extend_from_slice(before.as_bytes());
        let short_timer = em.timeout(Duration::from_millis(1), TAG_TIMER);
        em.quiesce();
        let during = format!("[{round} during]");
        client.write_all(during.as_bytes()).unwrap();
        expected.extend_from_slice(during.as_bytes());
        turn_until(&mut em, &mut seen, "the quiesce", |em, _| em.is_quiesced());
        // Quiescing: writes are refused, receives are accepted suspended.
        match em.write(conn, b"x".to_vec(), None, TAG_WRITE) {
            Err((Error::Quiescing, buf)) => assert_eq!(buf.as_slice(), b"x"),
            other => panic!("write while quiesced: {other:?}"),
        }
        let table_before = table(&em);
        em = hand_over(em);
        assert_eq!(table(&em), table_before, "round {round}: pfd table changed");
        assert_eq!(em.raw_fd(gone), Err(Error::Stale(gone)));
        let after = format!("[{round} after]");
        client.write_all(after.as_bytes()).unwrap();
        expected.extend_from_slice(after.as_bytes());
        em.resume().unwrap();
        turn_until(&mut em, &mut seen, "the bytes", |_, s| {
            s.data.len() == expected.len()
        });
        assert_eq!(seen.data, expected, "round {round}");
        // The short timer either fired before the quiesce or carried over
        // with its id; either way exactly once.
        turn_until(&mut em, &mut seen, "the short timer", |_, s| {
            s.timers.iter().any(|(op, _)| *op == short_timer)
        });
        // The eventfd read carried over with its info.
        em.eventfd_trigger(ev).unwrap();
        turn_until(&mut em, &mut seen, "the eventfd", |_, s| {
            s.events.len() == round as usize + 1
        });
        assert_eq!(seen.events.last(), Some(&(TAG_EVENT, 42)));
        em.eventfd_arm(ev, 42, TAG_EVENT).unwrap();
    }
    assert_eq!(seen.recv_ends, 0, "the receive ended during a handover");
    assert_eq!(seen.accept_ends, 0, "the accept ended during a handover");
    assert_eq!(seen.timers.len(), 20);
    assert!(seen
        .timers
        .iter()
        .all(|(op, r)| *op != long_timer && r.is_ok()));

    // The accept still works, with its tag, on the imported manager.
    let second = TcpStream::connect(addr).unwrap();
    turn_until(&mut em, &mut seen, "the second accept", |_, s| {
        s.accepted.len() == 2
    });
    // The receive and the long timer still have their ids.
    em.cancel(recv_op).unwrap();
    em.cancel(long_timer).unwrap();
    em.cancel(accept_op).unwrap();
    turn_until(&mut em, &mut seen, "the cancels", |_, s| {
        s.recv_ends == 1 && s.accept_ends == 1 && s.timers.iter().any(|(op, _)| *op == long_timer)
    });
    // Writing through the imported manager reaches the same client.
    em.write(conn, b"bye".to_vec(), None, TAG_WRITE).unwrap();
    turn_until(&mut em, &mut seen, "the write", |_, s| !s.writes.is_empty());
    let mut got = [0u8; 3];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"bye");
    drop(em);
    drop(client);
    drop(second);
    assert_eq!(fd_count(), fds_before, "descriptors leaked or closed twice");
}

#[test]
fn a_write_to_a_peer_that_does_not_read_is_cut_at_the_exact_count() {
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut em = EventManager::new().unwrap();
    let pfd = em.adopt(OwnedFd::from(a)).unwrap();
    let mut seen = Seen::default();
    let payload: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    em.write(pfd, payload.clone(), None, TAG_WRITE).unwrap();
    // Let the kernel take what the socket buffer holds; the write then
    // waits for a reader that never comes.
    for _ in 0..3 {
        em.turn(
            &mut |_: &mut EventManager, c: Completion| seen.on(c),
            Some(Duration::from_millis(20)),
        )
        .unwrap();
    }
    assert!(seen.writes.is_empty());
    // The quiesce cuts it at the byte it reached.
    em.quiesce();
    turn_until(&mut em, &mut seen, "the quiesce", |em, _| em.is_quiesced());
    let (written, result) = seen.writes[0];
    assert_eq!(result, Err(Error::Cancelled));
    assert!(written > 0 && written < payload.len(), "written {written}");
    // The peer gets exactly the bytes reported written, then nothing more.
    b.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match b.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.len(), written);
    assert_eq!(got, payload[..written]);
    // And the manager goes on after a resume.
    em.resume().unwrap();
    em.write(pfd, b"rest".to_vec(), None, TAG_WRITE).unwrap();
    turn_until(&mut em, &mut seen, "the second write", |_, s| {
        s.writes.len() == 2
    });
    assert_eq!(seen.writes[1].1, Ok(4));
}

#[test]
fn rollback_resumes_on_the_same_manager() {
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut em = EventManager::new().unwrap();
    let pfd = em.adopt(OwnedFd::from(a)).unwrap();
    let mut seen = Seen::default();
    em.recv_multishot(pfd, TAG_RECV).unwrap();
    quiesce(&mut em, &mut seen);
    let snap = em.export().unwrap();
    assert_eq!(snap.fds.len(), 1);
    assert_eq!(em.resume(), Ok(()));
    b.write_all(b"still here").unwrap();
    turn_until(&mut em, &mut seen, "the bytes", |_, s| {
        s.data == b"still here"
    });
    assert_eq!(seen.recv_ends, 0);
}

#[test]
fn closing_while_quiesced_ends_suspended_operations() {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut em = EventManager::new().unwrap();
    let pfd = em.adopt(OwnedFd::from(a)).unwrap();
    let mut seen = Seen::default();
    em.recv_multishot(pfd, TAG_RECV).unwrap();
    quiesce(&mut em, &mut seen);
    // A receive asked for while quiesced is created suspended.
    let second = em.recv_multishot(pfd, TAG_RECV).unwrap();
    assert!(em.is_quiesced());
    em.close(pfd, 9).unwrap();
    let mut closed = false;
    let limit = Instant::now() + Duration::from_secs(10);
    while !closed {
        assert!(Instant::now() < limit);
        em.turn(
            &mut |_: &mut EventManager, c: Completion| match c.kind {
                CompletionKind::Close { .. } => closed = true,
                CompletionKind::RecvEnd { result, .. } => {
                    assert_eq!(result, Err(Error::Cancelled));
                    seen.recv_ends += 1;
                }
                _ => {}
            },
            Some(Duration::from_millis(50)),
        )
        .unwrap();
    }
    assert_eq!(seen.recv_ends, 2);
    assert!(em.is_quiesced());
    assert_eq!(em.cancel(second), Err(Error::NotFound));
}

#[test]
fn export_needs_a_quiesced_manager() {
    let mut em = EventManager::new().unwrap();
    assert_eq!(em.export().err(), Some(Error::NotQuiesced));
    let ev = em.eventfd_open().unwrap();
    em.eventfd_arm(ev, 1, TAG_EVENT).unwrap();
    em.quiesce();
    // The eventfd read's cancel has not come back yet.
    assert!(!em.is_quiesced());
    assert_eq!(em.export().err(), Some(Error::NotQuiesced));
    assert_eq!(em.resume(), Err(Error::NotQuiesced));
}

/// A snapshot of a quiesced manager with a listener-like socket, an
/// eventfd and a suspended timer, and its descriptors' count.
fn sample() -> (Vec<u8>, usize) {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut em = EventManager::new().unwrap();
    let pfd = em.adopt(OwnedFd::from(a)).unwrap();
    em.recv_multishot(pfd, TAG_RECV).unwrap();
    let ev = em.eventfd_open().unwrap();
    em.eventfd_arm(ev, 7, TAG_EVENT).unwrap();
    em.timeout(Duration::from_secs(60), TAG_TIMER);
    let mut seen = Seen::default();
    quiesce(&mut em, &mut seen);
    let snap = em.export().unwrap();
    let info = EventManager::check_snapshot(&snap.bytes).unwrap();
    assert_eq!(info.descriptors, 2);
    assert_eq!(info.suspended, 3);
    (snap.bytes, snap.fds.len())
}

#[test]
fn snapshots_that_do_not_fit_are_refused_with_a_reason() {
    let (bytes, _) = sample();
    // A newer format version is refused, never misread.
    let mut newer = bytes.clone();
    newer[4] = 2;
    assert!(matches!(
        EventManager::check_snapshot(&newer),
        Err(SnapshotError::UnsupportedVersion { found: 2, .. })
    ));
    // Another layer's snapshot.
    let mut other = bytes.clone();
    other[0] = b'X';
    assert!(matches!(
        EventManager::check_snapshot(&other),
        Err(SnapshotError::BadMagic { .. })
    ));
    // Every truncation is an error (and never a panic).
    for n in 0..bytes.len() {
        assert!(
            EventManager::check_snapshot(&bytes[..n]).is_err(),
            "truncated to {n}"
        );
    }
    // Every single-byte change either fails to check or still checks: no
    // panic either way.
    for i in 6..bytes.len() {
        for v in [0u8, 1, 0x7f, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = EventManager::check_snapshot(&b);
        }
    }
    // Too few descriptors, or the wrong kind: refused, descriptors given back.
    let (x, _y) = std::os::unix::net::UnixStream::pair().unwrap();
    let (e, back) =
        EventManager::import(Config::default(), &bytes, vec![OwnedFd::from(x)]).unwrap_err();
    assert!(matches!(e, SnapshotError::Descriptors(_)), "{e}");
    assert_eq!(back.len(), 1);
    let file = OwnedFd::from(std::fs::File::open("/proc/self/stat").unwrap());
    let (s, _t) = std::os::unix::net::UnixStream::pair().unwrap();
    // Slot order is socket, eventfd: a regular file in the socket's place.
    let (e, back) =
        EventManager::import(Config::default(), &bytes, vec![file, OwnedFd::from(s)]).unwrap_err();
    assert!(matches!(e, SnapshotError::Descriptors(_)), "{e}");
    assert_eq!(back.len(), 2);
}

#[test]
fn import_into_takes_a_fresh_manager_and_checks_what_it_is_told_to() {
    let (bytes, _) = sample();
    let socket = || OwnedFd::from(std::os::unix::net::UnixStream::pair().unwrap().0);
    let eventfd = || {
        let mut em = EventManager::new().unwrap();
        em.eventfd_open().unwrap();
        em.release().pop().unwrap()
    };
    let file = || OwnedFd::from(std::fs::File::open("/proc/self/stat").unwrap());
    // Slot order is socket, eventfd: a fresh manager takes them, every
    // descriptor checked, and goes on from the snapshot.
    let mut em = EventManager::new()
        .unwrap()
        .import_into(&bytes, vec![socket(), eventfd()], DescriptorCheck::Every)
        .unwrap();
    assert!(em.is_quiesced());
    assert_eq!(em.pfd_count(), 2);
    em.resume().unwrap();
    // A manager that is not fresh is refused; the descriptors come back.
    let mut used = EventManager::new().unwrap();
    used.eventfd_open().unwrap();
    let (e, back) = used
        .import_into(&bytes, vec![socket(), eventfd()], DescriptorCheck::Every)
        .unwrap_err();
    assert!(matches!(e, SnapshotError::Invalid(_)), "{e}");
    assert_eq!(back.len(), 2);
    // Every descriptor checked: a file in the socket's place is refused.
    let (e, back) = EventManager::new()
        .unwrap()
        .import_into(&bytes, vec![file(), eventfd()], DescriptorCheck::Every)
        .unwrap_err();
    assert!(matches!(e, SnapshotError::Descriptors(_)), "{e}");
    assert_eq!(back.len(), 2);
    // Sockets unchecked: the file passes in the socket's place (its
    // receives would fail), but a socket in the eventfd's place is refused.
    EventManager::new()
        .unwrap()
        .import_into(&bytes, vec![file(), eventfd()], DescriptorCheck::NonSockets)
        .unwrap();
    let (e, back) = EventManager::new()
        .unwrap()
        .import_into(
            &bytes,
            vec![socket(), socket()],
            DescriptorCheck::NonSockets,
        )
        .unwrap_err();
    match &e {
        SnapshotError::Descriptors(m) => assert!(m.starts_with("descriptor 1 "), "{m}"),
        other => panic!("{other}"),
    }
    assert_eq!(back.len(), 2);
}

/// A snapshot written by format version 1 (a listener with its accept, a
/// socket with two receives, an eventfd read, a closed pfd, a timer) must
/// keep reading as it did: a change to the format that breaks this needs a
/// new version (and a reader for this one), not an edit of this file.
#[test]
fn a_version_1_snapshot_still_reads() {
    let bytes = include_bytes!("data/snapshot-v1.bin");
    let info = EventManager::check_snapshot(bytes).unwrap();
    assert_eq!(info.version, 1);
    assert_eq!(info.descriptors, 3);
    assert_eq!(info.slots, 4);
    assert_eq!(info.suspended, 5);
}
