//! A multishot accept that runs out of descriptors (EMFILE) reports it and
//! keeps the listener: once descriptors are free again, the connections still
//! waiting in the backlog are accepted. (Its own test binary: it lowers the
//! process's descriptor limit.)

mod common;

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{fd_count, run_bounded};
use event_manager::{Completion, CompletionKind, Error, EventManager};

fn set_nofile(soft: u64) -> libc::rlimit {
    // SAFETY: getrlimit/setrlimit with valid, initialised rlimit structs.
    unsafe {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
        old
    }
}

#[test]
fn accept_survives_emfile_and_resumes() {
    const CLIENTS: usize = 10;
    let mut em = EventManager::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let lst = em.adopt(OwnedFd::from(l)).unwrap();
    // The connections complete in the kernel's backlog before any accept.
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Room for three more descriptors only.
    let old = set_nofile(fd_count() as u64 + 3);
    em.accept_multishot(lst, 0).unwrap();
    let mut accepted = Vec::new();
    let mut emfile = 0;
    run_bounded(
        &mut em,
        Duration::from_secs(20),
        |em, c: Completion| match c.kind {
            CompletionKind::Accept {
                result: Ok(pfd), ..
            } => {
                accepted.push(pfd);
                if accepted.len() == CLIENTS {
                    em.stop();
                }
            }
            CompletionKind::Accept {
                result: Err(Error::Os(libc::EMFILE)),
                ..
            } => {
                emfile += 1;
                // Make room: restore the limit. The accept retries on its own.
                set_nofile(old.rlim_cur);
            }
            CompletionKind::Close { .. } => {}
            other => panic!("unexpected {other:?}"),
        },
    );
    assert!(emfile >= 1, "the limit must have been hit");
    assert_eq!(
        accepted.len(),
        CLIENTS,
        "every waiting connection accepted after EMFILE"
    );
    assert!(
        em.pfds().any(|p| p.pfd == lst),
        "the listener is still there"
    );
    drop(clients);
}
