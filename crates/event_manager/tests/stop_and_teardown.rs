//! `stop()` ends the loop cleanly, from inside and from another thread, and
//! dropping the event manager with work in flight leaks no descriptor.
//! (Its own test binary: it counts the process's descriptors.)

mod common;

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use common::{fd_count, pipe};
use event_manager::{Completion, EventManager};

#[test]
fn stop_from_another_thread_then_drop_with_operations_in_flight() {
    let before = fd_count();
    {
        let mut em = EventManager::new().unwrap();
        let stopper = em.stop_handle().unwrap();
        // Work that never completes on its own: a listener with an armed
        // accept, a pipe read, a connection with a multishot receive, a long
        // timer and an armed eventfd.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let lst = em.adopt(OwnedFd::from(l)).unwrap();
        em.accept_multishot(lst, 0).unwrap();
        let (r, _w) = pipe();
        let r = em.adopt(r).unwrap();
        em.read(r, Vec::with_capacity(64), None, 0).unwrap();
        em.timeout(Duration::from_secs(3600), 0);
        let ev = em.eventfd_open().unwrap();
        em.eventfd_arm(ev, 1, 0).unwrap();
        let _client = TcpStream::connect(addr).unwrap();

        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stopper.stop().unwrap();
        });
        let mut accepted = 0;
        let start = Instant::now();
        let stopped = em
            .run_until(
                &mut |em: &mut EventManager, c: Completion| {
                    if let event_manager::CompletionKind::Accept { result, .. } = c.kind {
                        accepted += 1;
                        em.recv_multishot(result.unwrap(), 0).unwrap();
                    }
                },
                Instant::now() + Duration::from_secs(20),
            )
            .unwrap();
        assert!(stopped, "the stop handle ends the loop");
        assert!(start.elapsed() < Duration::from_secs(20));
        t.join().unwrap();
        assert_eq!(accepted, 1);
        assert!(em.ops_in_flight() >= 5);
        // Dropping cancels everything, waits for the kernel, closes all.
    }
    assert_eq!(fd_count(), before, "descriptors leaked");
}
