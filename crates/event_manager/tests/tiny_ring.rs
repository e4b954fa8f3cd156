//! A ring of depth 4 carrying 10,000 operations loses none: a full
//! submission queue is flushed and retried, and an overflowing completion
//! queue (8 entries here) loses nothing.

mod common;

use std::time::Duration;

use common::run_bounded;
use event_manager::{Completion, CompletionKind, Config, EventManager};

const N: usize = 10_000;

fn tiny() -> EventManager {
    EventManager::with_config(Config {
        sq_entries: 4,
        cq_entries: 8,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn ten_thousand_nops_through_a_depth_four_ring() {
    let mut em = tiny();
    for i in 0..N {
        em.nop(i as u64);
    }
    assert!(em.stats().sq_full_flushes > 0, "the queue must have filled");
    let mut seen = vec![false; N];
    let mut count = 0;
    run_bounded(&mut em, Duration::from_secs(30), |em, c: Completion| {
        assert!(matches!(c.kind, CompletionKind::Nop));
        assert!(
            !seen[c.user as usize],
            "completion {} delivered twice",
            c.user
        );
        seen[c.user as usize] = true;
        count += 1;
        if count == N {
            em.stop();
        }
    });
    assert!(seen.iter().all(|&s| s));
    assert_eq!(em.stats().cq_dropped, 0);
    assert_eq!(em.ops_in_flight(), 0);
}

#[test]
fn ten_thousand_timers_firing_together_overflow_the_completion_queue_without_loss() {
    // All timers expire at about the same moment while nobody is reaping,
    // so far more than 8 completions are posted at once.
    let mut em = tiny();
    for i in 0..N {
        em.timeout(Duration::from_millis(300), i as u64);
    }
    std::thread::sleep(Duration::from_millis(400));
    let mut seen = vec![false; N];
    let mut count = 0;
    run_bounded(&mut em, Duration::from_secs(30), |em, c: Completion| {
        match c.kind {
            CompletionKind::Timeout { result } => assert_eq!(result, Ok(())),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!seen[c.user as usize]);
        seen[c.user as usize] = true;
        count += 1;
        if count == N {
            em.stop();
        }
    });
    assert!(seen.iter().all(|&s| s));
    assert_eq!(em.stats().cq_dropped, 0);
    assert!(
        em.stats().cq_overflows > 0,
        "the completion queue must have overflowed"
    );
}

#[test]
fn operations_submitted_from_inside_callbacks_through_a_full_queue() {
    // Each completion submits two more until 10,000 have run: submissions
    // happen while completions are being dispatched.
    let mut em = tiny();
    em.nop(0);
    let mut submitted = 1;
    let mut done = 0;
    run_bounded(&mut em, Duration::from_secs(30), |em, _c: Completion| {
        done += 1;
        for _ in 0..2 {
            if submitted < N {
                em.nop(submitted as u64);
                submitted += 1;
            }
        }
        if done == N {
            em.stop();
        }
    });
    assert_eq!(done, N);
}
