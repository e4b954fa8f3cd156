//! The event manager's completion path: how many operations per second go
//! through submit → kernel → reap → dispatch → handler. Results and how to
//! run them are in `benches/README.md`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use event_manager::{Completion, CompletionKind, EventManager};

/// One nop submitted, one turn to get it back: the per-operation floor
/// including one `io_uring_enter`.
fn nop_round_trip(c: &mut Criterion) {
    let mut em = EventManager::new().unwrap();
    let mut g = c.benchmark_group("nop");
    g.throughput(Throughput::Elements(1));
    g.bench_function("round_trip", |b| {
        b.iter(|| {
            em.nop(0);
            let mut got = false;
            while !got {
                em.turn(&mut |_: &mut EventManager, _c: Completion| got = true, None)
                    .unwrap();
            }
        })
    });
    // A batch per enter: the cost of the completion path itself.
    for batch in [16u64, 256] {
        g.throughput(Throughput::Elements(batch));
        g.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
            b.iter(|| {
                for i in 0..batch {
                    em.nop(i);
                }
                let mut left = batch;
                while left > 0 {
                    em.turn(&mut |_: &mut EventManager, _c: Completion| left -= 1, None)
                        .unwrap();
                }
            })
        });
    }
    g.finish();
}

/// Trigger an armed eventfd and get its completion back (the cross-thread
/// wake-up path, measured on one thread).
fn eventfd_round_trip(c: &mut Criterion) {
    let mut em = EventManager::new().unwrap();
    let ev = em.eventfd_open().unwrap();
    let mut g = c.benchmark_group("eventfd");
    g.throughput(Throughput::Elements(1));
    g.bench_function("trigger_arm_complete", |b| {
        b.iter(|| {
            em.eventfd_arm(ev, 7, 0).unwrap();
            em.eventfd_trigger(ev).unwrap();
            let mut got = false;
            while !got {
                em.turn(
                    &mut |_: &mut EventManager, c: Completion| {
                        if let CompletionKind::EventFd { info, .. } = c.kind {
                            assert_eq!(info, 7);
                            got = true;
                        }
                    },
                    None,
                )
                .unwrap();
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = nop_round_trip, eventfd_round_trip
}
criterion_main!(benches);
