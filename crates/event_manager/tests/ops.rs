//! Every operation against real kernel objects: loopback TCP sockets, pipes,
//! temporary files, eventfds triggered from other threads, timers.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{pipe, run_bounded};
use event_manager::{Completion, CompletionKind, Error, EventManager, FdKind, OutBuf, Pfd};

const LIMIT: Duration = Duration::from_secs(20);

fn listener(em: &mut EventManager) -> (Pfd, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let pfd = em.adopt(OwnedFd::from(l)).unwrap();
    assert_eq!(em.kind(pfd).unwrap(), FdKind::Socket);
    (pfd, addr)
}

#[test]
fn tcp_accept_recv_send_writev_shutdown_close() {
    let mut em = EventManager::new().unwrap();
    let (lst, addr) = listener(&mut em);
    em.accept_multishot(lst, 1).unwrap();

    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"ping").unwrap();
        // The server answers with write("pong:") + writev(["a","bc",""]) and
        // then shuts down its write side.
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });

    let mut conn = None;
    let mut received = Vec::new();
    let mut events = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Accept { listener, result } => {
            assert_eq!(listener, lst);
            assert_eq!(c.user, 1);
            let pfd = result.unwrap();
            conn = Some(pfd);
            em.recv_multishot(pfd, 2).unwrap();
        }
        CompletionKind::Recv { pfd, buf } => {
            received.extend_from_slice(&buf);
            if received == b"ping" {
                em.write(pfd, b"pong:", None, 3).unwrap();
                let v: Vec<OutBuf> = vec![b"a".to_vec().into(), "bc".into(), Vec::new().into()];
                em.writev(pfd, v, None, 4).unwrap();
                em.shutdown(pfd, Shutdown::Write, 5).unwrap();
            }
        }
        CompletionKind::Write {
            result,
            buf,
            written,
            ..
        } => {
            assert_eq!(result, Ok(5));
            assert_eq!(written, 5);
            assert_eq!(buf.as_slice(), b"pong:");
            events.push("write");
        }
        CompletionKind::Writev { result, bufs, .. } => {
            assert_eq!(result, Ok(3));
            assert_eq!(bufs.len(), 3, "every buffer comes back, empty ones too");
            events.push("writev");
        }
        CompletionKind::Shutdown { result, .. } => {
            result.unwrap();
            events.push("shutdown");
        }
        CompletionKind::RecvEnd { pfd, result } => {
            // The client closed after reading to EOF.
            assert_eq!(result, Ok(()));
            em.close(pfd, 6).unwrap();
        }
        CompletionKind::Close { pfd, result } => {
            result.unwrap();
            assert_eq!(Some(pfd), conn);
            assert_eq!(c.user, 6);
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(client.join().unwrap(), b"pong:abc");
    assert_eq!(events, ["write", "writev", "shutdown"]);
    // Only the listener is left.
    assert_eq!(em.pfd_count(), 1);
}

#[test]
fn pipe_read_write_readv_writev() {
    let mut em = EventManager::new().unwrap();
    let (r, w) = pipe();
    let r = em.adopt(r).unwrap();
    let w = em.adopt(w).unwrap();
    assert_eq!(em.kind(r).unwrap(), FdKind::Other);

    em.write(w, b"hello ".to_vec(), None, 10).unwrap();
    let bufs: Vec<OutBuf> = vec!["wor".into(), b"ld".to_vec().into()];
    em.writev(w, bufs, None, 11).unwrap();
    let mut phase = 0;
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Write { result, .. } => {
            assert_eq!(result, Ok(6));
            phase += 1;
        }
        CompletionKind::Writev { result, .. } => {
            assert_eq!(result, Ok(5));
            phase += 1;
            // Both writes are in the pipe: read 4 bytes, then readv the rest
            // into buffers of capacity 3 and 10.
            em.read(r, Vec::with_capacity(4), None, 12).unwrap();
        }
        CompletionKind::Read { buf, result, pfd } => {
            assert_eq!(pfd, r);
            assert_eq!(result, Ok(4));
            assert_eq!(buf, b"hell");
            let bufs = vec![Vec::with_capacity(3), b"x".to_vec()];
            // The second buffer already holds "x"; readv appends after it.
            let mut second = bufs;
            second[1].reserve_exact(9);
            em.readv(r, second, None, 13).unwrap();
        }
        CompletionKind::Readv { bufs, result, .. } => {
            assert_eq!(result, Ok(7));
            assert_eq!(bufs[0], b"o w");
            assert_eq!(bufs[1], b"xorld");
            assert_eq!(phase, 2);
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
}

#[test]
fn files_open_write_read_fstat_stat_unlink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let mut em = EventManager::new().unwrap();
    em.open(&path, libc::O_CREAT | libc::O_RDWR | libc::O_EXCL, 0o600, 1)
        .unwrap();
    let mut file = None;
    let mut step = 0;
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let expected = content.clone();
    let mut content = Some(content);
    run_bounded(&mut em, LIMIT, |em, c: Completion| {
        step += 1;
        match c.kind {
            CompletionKind::Open { result, path: p } => {
                assert_eq!(p.to_bytes(), path.as_os_str().as_encoded_bytes());
                let pfd = result.unwrap();
                assert_eq!(em.kind(pfd).unwrap(), FdKind::File);
                file = Some(pfd);
                em.write(pfd, content.take().unwrap(), Some(0), 2).unwrap();
            }
            CompletionKind::Write { result, .. } => {
                assert_eq!(result, Ok(100_000));
                em.fstat(file.unwrap(), 3).unwrap();
            }
            CompletionKind::Fstat { result, .. } => {
                let st = result.unwrap();
                assert_eq!(st.size, 100_000);
                assert!(st.is_file());
                em.read(file.unwrap(), Vec::with_capacity(200_000), Some(50_000), 4)
                    .unwrap();
            }
            CompletionKind::Read { result, buf, .. } => {
                assert_eq!(result, Ok(50_000));
                assert_eq!(buf[..], expected[50_000..]);
                em.stat(&path, 5).unwrap();
            }
            CompletionKind::Stat { result, .. } if c.user == 5 => {
                assert_eq!(result.unwrap().size, 100_000);
                em.unlink(&path, false, 6).unwrap();
            }
            CompletionKind::Unlink { result, .. } => {
                result.unwrap();
                assert!(!path.exists());
                em.stat(&path, 7).unwrap();
            }
            CompletionKind::Stat { result, .. } => {
                assert_eq!(c.user, 7);
                assert_eq!(result, Err(Error::Os(libc::ENOENT)));
                em.close(file.unwrap(), 8).unwrap();
            }
            CompletionKind::Close { result, .. } => {
                result.unwrap();
                em.stop();
            }
            other => panic!("unexpected {other:?}"),
        }
    });
    assert_eq!(step, 8);
}

#[test]
fn stat_of_missing_path_reports_enoent_and_nul_path_is_refused() {
    let mut em = EventManager::new().unwrap();
    em.stat(std::path::Path::new("/nonexistent/ringtail"), 1)
        .unwrap();
    assert_eq!(
        em.open(std::path::Path::new("a\0b"), libc::O_RDONLY, 0, 2),
        Err(Error::InvalidPath)
    );
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Stat { result, .. } => {
            assert_eq!(result, Err(Error::Os(libc::ENOENT)));
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
}

#[test]
fn eventfd_triggered_from_eight_threads_delivers_every_trigger_with_info() {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 1250;
    let mut em = EventManager::new().unwrap();
    let ev = em.eventfd_open().unwrap();
    assert_eq!(em.kind(ev).unwrap(), FdKind::EventFd);
    em.eventfd_arm(ev, 0xfeed, 1).unwrap();
    let trigger = em.eventfd_trigger_handle(ev).unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let t = trigger.clone();
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    t.trigger().unwrap();
                }
            })
        })
        .collect();
    let mut total = 0;
    let mut completions = 0;
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::EventFd { pfd, info, result } => {
            assert_eq!((pfd, info), (ev, 0xfeed));
            total += result.unwrap();
            completions += 1;
            if total == THREADS * PER_THREAD {
                em.stop();
            } else {
                em.eventfd_arm(ev, 0xfeed, 1).unwrap();
            }
        }
        other => panic!("unexpected {other:?}"),
    });
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(total, THREADS * PER_THREAD);
    assert!(completions >= 1);
    // The eventfd operations refuse other kinds of pfd.
    let (r, _w) = pipe();
    let r = em.adopt(r).unwrap();
    assert_eq!(em.eventfd_arm(r, 0, 0), Err(Error::WrongKind(r)));
    assert!(matches!(
        em.eventfd_trigger_handle(r),
        Err(Error::WrongKind(_))
    ));
}

#[test]
fn timeout_fires_and_cancel_cancels() {
    let mut em = EventManager::new().unwrap();
    let start = std::time::Instant::now();
    em.timeout(Duration::from_millis(20), 1);
    let long = em.timeout(Duration::from_secs(30), 2);
    let mut seen = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Timeout { result } => {
            seen.push((c.user, result));
            if c.user == 1 {
                assert!(start.elapsed() >= Duration::from_millis(20));
                em.cancel(long).unwrap();
            } else {
                em.stop();
            }
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(seen, [(1, Ok(())), (2, Err(Error::Cancelled))]);
    assert_eq!(em.cancel(long), Err(Error::NotFound), "it has ended");
    assert_eq!(em.ops_in_flight(), 0);
}

#[test]
fn cancel_read_in_flight_gives_buffer_back() {
    let mut em = EventManager::new().unwrap();
    let (r, _w) = pipe();
    let r = em.adopt(r).unwrap();
    let op = em.read(r, Vec::with_capacity(64), None, 7).unwrap();
    em.nop(8);
    let mut order = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Nop => {
            order.push("nop");
            em.cancel(op).unwrap();
        }
        CompletionKind::Read { result, buf, .. } => {
            order.push("read");
            assert_eq!(result, Err(Error::Cancelled));
            assert_eq!(buf.capacity(), 64);
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(order, ["nop", "read"]);
}

#[test]
fn recv_multishot_parks_when_buffers_run_out_and_loses_nothing() {
    for incremental in [true, false] {
        parks_when_buffers_run_out(incremental);
    }
}

fn parks_when_buffers_run_out(incremental: bool) {
    // 4 buffers of 16 bytes; the handler holds every RecvBuf until it has the
    // whole message, so the ring runs dry repeatedly.
    let config = event_manager::Config {
        recv_buffers: 4,
        recv_buffer_size: 16,
        incremental_recv_buffers: incremental,
        ..Default::default()
    };
    let mut em = EventManager::with_config(config).unwrap();
    let (lst, addr) = listener(&mut em);
    em.accept_multishot(lst, 0).unwrap();
    let message: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 % 256) as u8).collect();
    let expect = message.clone();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&message).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
    });
    let mut held = Vec::new();
    let mut got = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Accept { result, .. } => {
            em.recv_multishot(result.unwrap(), 1).unwrap();
        }
        CompletionKind::Recv { buf, .. } => {
            got.extend_from_slice(&buf);
            held.push(buf);
            if held.len() == 4 {
                // Give them back only now: the receive was starved meanwhile.
                held.clear();
            }
        }
        CompletionKind::RecvEnd { pfd, result } => {
            assert_eq!(result, Ok(()));
            em.close(pfd, 0).unwrap();
        }
        CompletionKind::Close { .. } => em.stop(),
        other => panic!("unexpected {other:?}"),
    });
    client.join().unwrap();
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "bytes arrive complete and in order");
    drop(held);
    assert_eq!(em.recv_buffers_available(), 4);
}

/// An incremental ring (Linux ≥ 6.12) packs receives of several
/// connections into one buffer: every connection still gets its own bytes,
/// complete and in order, while the handler keeps some `RecvBuf`s alive
/// across later receives into the same buffer; each buffer goes back to the
/// ring only when the kernel has moved past it and its last holder dropped.
#[test]
fn incremental_ring_packs_connections_into_shared_buffers() {
    const CLIENTS: usize = 8;
    const MESSAGES: u32 = 500;
    let config = event_manager::Config {
        recv_buffers: 8,
        recv_buffer_size: 4096,
        incremental_recv_buffers: true,
        ..Default::default()
    };
    let mut em = EventManager::with_config(config).unwrap();
    let incremental = em.features().incremental_recv_buffers;
    let (lst, addr) = listener(&mut em);
    em.accept_multishot(lst, 0).unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                for i in 0..MESSAGES {
                    // Small writes of varying length, so receives are small.
                    let n = 1 + (i as usize * 7 + c) % 40;
                    let msg: Vec<u8> = (0..n).map(|k| (c * 31 + k + i as usize) as u8).collect();
                    s.write_all(&msg).unwrap();
                }
                s.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
            })
        })
        .collect();
    let expect = |c: usize| -> Vec<u8> {
        (0..MESSAGES)
            .flat_map(|i| {
                let n = 1 + (i as usize * 7 + c) % 40;
                (0..n).map(move |k| (c * 31 + k + i as usize) as u8)
            })
            .collect()
    };
    let mut client_of = std::collections::HashMap::new();
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); CLIENTS];
    let mut held = std::collections::VecDeque::new();
    let mut shared_seen = false;
    let mut closed = 0;
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Accept { result, .. } => {
            let pfd = result.unwrap();
            let id = client_of.len() as u64;
            client_of.insert(pfd, id);
            em.recv_multishot(pfd, id).unwrap();
        }
        CompletionKind::Recv { buf, .. } => {
            got[c.user as usize].extend_from_slice(&buf);
            // Keep the last few receives alive while new ones arrive.
            if held
                .iter()
                .any(|h: &event_manager::RecvBuf| h.buffer_id() == buf.buffer_id())
            {
                shared_seen = true;
            }
            held.push_back(buf);
            if held.len() > 3 {
                held.pop_front();
            }
        }
        CompletionKind::RecvEnd { pfd, result } => {
            assert_eq!(result, Ok(()));
            em.close(pfd, 0).unwrap();
        }
        CompletionKind::Close { .. } => {
            closed += 1;
            if closed == CLIENTS {
                em.stop();
            }
        }
        other => panic!("unexpected {other:?}"),
    });
    for c in clients {
        c.join().unwrap();
    }
    let mut by_id: Vec<_> = client_of.values().copied().collect();
    by_id.sort();
    assert_eq!(by_id, (0..CLIENTS as u64).collect::<Vec<_>>());
    // Connection ids were given in accept order, clients connect in any
    // order: match each stream to the client whose bytes it carries.
    let mut expected: Vec<Vec<u8>> = (0..CLIENTS).map(expect).collect();
    for stream in &got {
        let pos = expected.iter().position(|e| e == stream);
        assert!(
            pos.is_some(),
            "a connection's bytes arrived incomplete or out of order"
        );
        expected.swap_remove(pos.unwrap());
    }
    if incremental {
        assert!(shared_seen, "live RecvBufs shared a buffer");
    }
    drop(held);
    assert_eq!(
        em.recv_buffers_available(),
        8,
        "every buffer back in the ring"
    );
}

/// A pfd's first receive is kept in its slot, a second one in the operation
/// table: both deliver with their own tags, each can be cancelled by its id
/// (the other keeps going), and after both ended the pfd closes cleanly.
#[test]
fn two_receives_on_one_socket_cancel_separately() {
    let mut em = EventManager::new().unwrap();
    let (lst, addr) = listener(&mut em);
    em.accept_multishot(lst, 0).unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        // The server may close after the first ping: later writes can fail.
        for _ in 0..3 {
            if s.write_all(b"ping").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let mut ops = Vec::new();
    let mut got = 0usize;
    let mut ends = Vec::new();
    run_bounded(&mut em, LIMIT, |em, c: Completion| match c.kind {
        CompletionKind::Accept { result, .. } => {
            let pfd = result.unwrap();
            ops.push(em.recv_multishot(pfd, 1).unwrap());
            ops.push(em.recv_multishot(pfd, 2).unwrap());
            assert_ne!(ops[0], ops[1]);
        }
        CompletionKind::Recv { buf, .. } => {
            assert!(c.user == 1 || c.user == 2);
            got += buf.len();
            if got >= 4 && ends.is_empty() && ops.len() == 2 {
                // Cancel the slot receive first; the table one keeps going.
                em.cancel(ops[0]).unwrap();
            }
        }
        CompletionKind::RecvEnd { pfd, result } => {
            assert_eq!(result, Err(Error::Cancelled), "tag {}", c.user);
            ends.push(c.user);
            assert_eq!(em.cancel(c.op), Err(Error::NotFound), "an ended receive");
            if ends.len() == 1 {
                em.cancel(ops[1]).unwrap();
            } else {
                em.close(pfd, 9).unwrap();
            }
        }
        CompletionKind::Close { result, .. } => {
            assert_eq!((c.user, result), (9, Ok(())));
            em.stop();
        }
        other => panic!("unexpected {other:?}"),
    });
    client.join().unwrap();
    assert_eq!(ends, [1, 2]);
    assert!(got >= 4);
}

#[test]
fn pfd_table_lists_descriptors_with_generations() {
    let mut em = EventManager::new().unwrap();
    let (r, w) = pipe();
    let r = em.adopt(r).unwrap();
    let w = em.adopt(w).unwrap();
    let ev = em.eventfd_open().unwrap();
    let listed: Vec<_> = em.pfds().collect();
    assert_eq!(listed.len(), 3);
    for (info, pfd) in listed.iter().zip([r, w, ev]) {
        assert_eq!(info.pfd, pfd);
        assert_eq!(info.fd, em.raw_fd(pfd).unwrap());
        assert!(!info.closing);
    }
    assert_eq!(listed[2].kind, FdKind::EventFd);
}

#[test]
fn open_beneath_refuses_every_way_out_of_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/ok.txt"), b"inside").unwrap();
    std::fs::write(dir.path().join("secret"), b"outside").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("link-out")).unwrap();
    std::os::unix::fs::symlink("sub/ok.txt", root.join("link-in")).unwrap();
    let mut em = EventManager::new().unwrap();
    let root_fd = OwnedFd::from(std::fs::File::open(&root).unwrap());
    let root_pfd = em.adopt(root_fd).unwrap();
    let cases: &[(&str, bool)] = &[
        ("sub/ok.txt", true),
        ("link-in", true),
        ("sub/../sub/ok.txt", true),
        ("../secret", false),
        ("sub/../../secret", false),
        ("link-out", false),
        ("/etc/passwd", false),
    ];
    for (i, (path, _)) in cases.iter().enumerate() {
        em.open_beneath(
            root_pfd,
            std::path::Path::new(path),
            libc::O_RDONLY,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
            i as u64,
        )
        .unwrap();
    }
    let mut done = 0;
    run_bounded(&mut em, LIMIT, |em, c: Completion| {
        match c.kind {
            CompletionKind::Open { result, .. } => {
                let (path, allowed) = cases[c.user as usize];
                match result {
                    Ok(pfd) => {
                        assert!(allowed, "{path} escaped the root");
                        em.close(pfd, 100).unwrap();
                    }
                    Err(e) => {
                        assert!(!allowed, "{path} refused: {e}");
                        assert_eq!(e, Error::Os(libc::EXDEV), "{path}");
                    }
                }
                done += 1;
            }
            CompletionKind::Close { .. } => done += 1,
            other => panic!("unexpected {other:?}"),
        }
        // 7 opens and the 3 closes of the allowed ones.
        if done == cases.len() + 3 {
            em.stop();
        }
    });
}
