//! `EventManager::splice` and `splice_linked` against the kernel: a file
//! moved through a pipe into a TCP socket (separately and linked), a short
//! fill at the end of the file cancelling its linked drain, and a close of
//! the pipe cancelling a splice that waits on a socket whose peer does not
//! read.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::run_bounded;
use event_manager::{CompletionKind, Error, EventManager, Pfd, SpliceArgs};

const LIMIT: Duration = Duration::from_secs(20);

/// A connected pair: (the server side as a pfd, the client stream).
fn socket_pair(em: &mut EventManager) -> (Pfd, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (em.adopt(OwnedFd::from(s)).unwrap(), c)
}

fn file_with(data: &[u8]) -> (tempfile::NamedTempFile, OwnedFd) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(data).unwrap();
    let fd = OwnedFd::from(std::fs::File::open(f.path()).unwrap());
    (f, fd)
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Sends `want.len()` bytes of the file through the pipe in pipe-sized
/// steps, linked or not, and returns what the client read.
fn through_pipe(link: bool) {
    let want = data(3 * 1024 * 1024 + 5);
    let mut em = EventManager::new().unwrap();
    let (_tmp, fd) = file_with(&want);
    let file = em.adopt(fd).unwrap();
    let (r, w, cap) = em.pipe(256 * 1024).unwrap();
    assert!(cap >= 64 * 1024, "pipe capacity {cap}");
    let (sock, mut client) = socket_pair(&mut em);
    let total = want.len();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        got
    });
    let (mut off, mut sent, mut level) = (0usize, 0usize, 0usize);
    let fill = |off: usize| SpliceArgs {
        from: file,
        from_offset: Some(off as u64),
        to: w,
        to_offset: None,
        len: (total - off).min(cap) as u32,
    };
    let drain = |len: usize| SpliceArgs {
        from: r,
        from_offset: None,
        to: sock,
        to_offset: None,
        len: len as u32,
    };
    if link {
        em.splice_linked(fill(0), 1, drain(fill(0).len as usize), 2)
            .unwrap();
    } else {
        em.splice(fill(0), 1).unwrap();
    }
    run_bounded(&mut em, LIMIT, |em, c| match c.kind {
        CompletionKind::Splice { result, .. } if c.user == 1 => {
            let n = result.unwrap();
            assert!(n > 0);
            off += n;
            level += n;
            if !link {
                em.splice(drain(level), 2).unwrap();
            }
        }
        CompletionKind::Splice { result, .. } => {
            let n = result.unwrap();
            level -= n;
            sent += n;
            if sent == total {
                em.close(sock, 3).unwrap();
            } else if level > 0 {
                em.splice(drain(level), 2).unwrap();
            } else if link {
                let f = fill(off);
                em.splice_linked(f, 1, drain(f.len as usize), 2).unwrap();
            } else {
                em.splice(fill(off), 1).unwrap();
            }
        }
        CompletionKind::Close { .. } => em.stop(),
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(sent, total);
    let got = reader.join().unwrap();
    assert!(got == want, "the bytes that arrived differ from the file");
}

#[test]
fn a_file_goes_through_a_pipe_into_a_socket() {
    through_pipe(false);
}

#[test]
fn a_file_goes_through_a_pipe_into_a_socket_linked() {
    through_pipe(true);
}

#[test]
fn a_short_fill_cancels_its_linked_drain() {
    let want = data(10_000);
    let mut em = EventManager::new().unwrap();
    let (_tmp, fd) = file_with(&want);
    let file = em.adopt(fd).unwrap();
    let (r, w, _) = em.pipe(0).unwrap();
    let (sock, _client) = socket_pair(&mut em);
    // Asks for more than the file has: the fill comes back short.
    let fill = SpliceArgs {
        from: file,
        from_offset: Some(0),
        to: w,
        to_offset: None,
        len: 20_000,
    };
    let drain = SpliceArgs {
        from: r,
        from_offset: None,
        to: sock,
        to_offset: None,
        len: 20_000,
    };
    let (_, second) = em.splice_linked(fill, 1, drain, 2).unwrap();
    assert!(second.is_some());
    let mut results = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c| {
        if let CompletionKind::Splice { result, .. } = c.kind {
            results.push((c.user, result));
            if results.len() == 2 {
                em.stop();
            }
        }
    });
    assert_eq!(results, [(1, Ok(10_000)), (2, Err(Error::Cancelled))]);
    assert_eq!(em.pipe_len(r).unwrap(), 10_000);
    let mut back = Vec::new();
    assert_eq!(em.pipe_drain(r, &mut back).unwrap(), 10_000);
    assert!(back == want);
}

#[test]
fn closing_the_pipe_cancels_a_splice_waiting_on_a_full_socket() {
    let mut em = EventManager::new().unwrap();
    let (r, w, cap) = em.pipe(1 << 20).unwrap();
    let (sock, client) = socket_pair(&mut em);
    // Fill the pipe from memory through a plain write end (a file would do
    // the same), more than the socket buffers take.
    let want = data(cap);
    let wfd = em.raw_fd(w).unwrap();
    let mut left = &want[..];
    while !left.is_empty() {
        // SAFETY: writes from a live slice to the pipe's write end, which
        // the event manager keeps open for the duration of the call.
        let n = unsafe { libc::write(wfd, left.as_ptr().cast(), left.len()) };
        if n <= 0 {
            break;
        }
        left = &left[n as usize..];
    }
    let level = em.pipe_len(r).unwrap();
    assert!(level > 0);
    // The client never reads: the splice fills the socket and waits.
    let drain = SpliceArgs {
        from: r,
        from_offset: None,
        to: sock,
        to_offset: None,
        len: level as u32,
    };
    em.splice(drain, 1).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Closing the pipe's read end (the splice's source, not the kernel
    // request's own file) cancels it first, then closes.
    em.close(r, 2).unwrap();
    let mut order = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c| match c.kind {
        CompletionKind::Splice { result, .. } => {
            // Cut short: what it moved, or interrupted.
            assert!(
                matches!(result, Ok(n) if n < level) || result.is_err(),
                "{result:?}"
            );
            order.push("splice");
        }
        CompletionKind::Close { result, .. } => {
            result.unwrap();
            order.push("close");
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(order, ["splice", "close"]);
    drop(client);
}
