//! Unmasking client payloads (RFC 6455 §5.3): `apply_mask` (32-byte blocks
//! of `u64` words) against the byte-at-a-time reference and a plain
//! 8-byte-word loop, at the sizes a server sees; plus the whole `Decoder`
//! on small text frames and a 16 KiB binary frame. Results are recorded in
//! `docs/websocket.md`.
//!
//! ```sh
//! cargo bench -p protocol --bench ws_unmask
//! ```

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use protocol::ws::{apply_mask, apply_mask_reference, write_client_frame, Config, Decoder, Opcode};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The obvious word-at-a-time version, for comparison: 8 bytes per step.
fn mask_u64(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = buf.chunks_exact_mut(8);
    for lane in &mut words {
        let v = u64::from_ne_bytes(lane.try_into().unwrap()) ^ word;
        lane.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_unmask");
    for size in [16usize, 125, 1024, 16 * 1024, 1 << 20] {
        let mut buf = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("apply_mask", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 1))
        });
        group.bench_with_input(BenchmarkId::new("u64_words", size), &size, |b, _| {
            b.iter(|| mask_u64(black_box(&mut buf), KEY, 1))
        });
        group.bench_with_input(BenchmarkId::new("reference", size), &size, |b, _| {
            b.iter(|| apply_mask_reference(black_box(&mut buf), KEY, 1))
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_decode");
    let config = Config::default();

    // 1000 small text messages in one buffer, as a busy chat connection
    // would read them.
    let mut small = Vec::new();
    for i in 0..1000u32 {
        write_client_frame(
            &mut small,
            true,
            false,
            Opcode::Text,
            b"hello, world 1234",
            i.to_be_bytes(),
        );
    }
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000_text_frames_17B", |b| {
        let mut buf = small.clone();
        b.iter(|| {
            buf.copy_from_slice(&small);
            let mut dec = Decoder::new(&config, false);
            let mut input = &mut buf[..];
            let mut n = 0;
            loop {
                let step = dec.decode(input).unwrap();
                if step.event.is_none() {
                    break;
                }
                n += 1;
                input = &mut input[step.consumed..];
            }
            black_box(n)
        })
    });

    let mut big = Vec::new();
    write_client_frame(&mut big, true, false, Opcode::Binary, &[7; 16 * 1024], KEY);
    group.throughput(Throughput::Bytes(16 * 1024));
    group.bench_function("binary_frame_16KiB", |b| {
        let mut buf = big.clone();
        b.iter(|| {
            buf.copy_from_slice(&big);
            let mut dec = Decoder::new(&config, false);
            let step = dec.decode(&mut buf).unwrap();
            black_box(step.consumed)
        })
    });
    group.finish();
}

criterion_group!(benches, unmask, decode);
criterion_main!(benches);
