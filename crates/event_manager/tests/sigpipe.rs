//! Writing to a peer that went away returns an error; SIGPIPE never kills
//! the process. (Its own test binary: it changes the signal disposition.)

mod common;

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{pipe, run_bounded};
use event_manager::{Completion, CompletionKind, Error, EventManager};

fn sigpipe_disposition() -> libc::sighandler_t {
    // SAFETY: querying the disposition into a zeroed struct.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old),
            0
        );
        old.sa_sigaction
    }
}

fn set_sigpipe_default() {
    // SAFETY: installs the default disposition; no handler pointer.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = libc::SIG_DFL;
        assert_eq!(
            libc::sigaction(libc::SIGPIPE, &new, std::ptr::null_mut()),
            0
        );
    }
}

#[test]
fn peer_reset_and_closed_pipe_give_errors_not_sigpipe() {
    // A host program (unlike a Rust binary) may leave SIGPIPE at default.
    set_sigpipe_default();
    let mut em = EventManager::new().unwrap();
    assert_eq!(
        sigpipe_disposition(),
        libc::SIG_IGN,
        "creating the ring ignores SIGPIPE"
    );

    // 1. A pipe whose reader is gone: EPIPE (the pipe path relies on the
    //    ignored disposition).
    let (r, w) = pipe();
    drop(r);
    let w = em.adopt(w).unwrap();
    em.write(w, vec![1u8; 1024], None, 1).unwrap();
    run_bounded(
        &mut em,
        Duration::from_secs(10),
        |em, c: Completion| match c.kind {
            CompletionKind::Write {
                result, written, ..
            } => {
                assert_eq!(result, Err(Error::Os(libc::EPIPE)));
                assert_eq!(written, 0);
                em.stop();
            }
            other => panic!("unexpected {other:?}"),
        },
    );

    // 2. A socket reset by its peer, with SIGPIPE back at its default: the
    //    socket path sends with MSG_NOSIGNAL, so the process must survive.
    set_sigpipe_default();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let (server, _) = l.accept().unwrap();
    // SO_LINGER {on, 0}: close sends RST.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid socket and a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&client),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
    assert_eq!(rc, 0);
    drop(client);
    let s = em.adopt(OwnedFd::from(server)).unwrap();
    em.write(s, vec![2u8; 256 * 1024], None, 2).unwrap();
    let mut errors = 0;
    run_bounded(
        &mut em,
        Duration::from_secs(10),
        |em, c: Completion| match c.kind {
            CompletionKind::Write { result, pfd, .. } => match result {
                Err(Error::Os(e)) if e == libc::EPIPE || e == libc::ECONNRESET => {
                    errors += 1;
                    if errors == 3 {
                        em.stop();
                    } else {
                        // Keep writing into the dead connection.
                        em.write(pfd, vec![3u8; 1024], None, 2).unwrap();
                    }
                }
                other => panic!("expected EPIPE/ECONNRESET, got {other:?}"),
            },
            CompletionKind::Writev { .. } => unreachable!(),
            other => panic!("unexpected {other:?}"),
        },
    );
    // writev (sendmsg) takes the same care.
    em.writev(s, vec![vec![4u8; 100].into()], None, 3).unwrap();
    run_bounded(
        &mut em,
        Duration::from_secs(10),
        |em, c: Completion| match c.kind {
            CompletionKind::Writev { result, .. } => {
                assert!(matches!(
                    result,
                    Err(Error::Os(libc::EPIPE | libc::ECONNRESET))
                ));
                em.stop();
            }
            other => panic!("unexpected {other:?}"),
        },
    );
}
