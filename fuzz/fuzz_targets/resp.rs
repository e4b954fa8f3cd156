//! `protocol::resp::parse` (the Redis protocol, as the cluster bridge reads
//! it) never panics on any input, under tight limits and the defaults; a
//! value it returns used no more bytes than it was given, is what it parses
//! again from those bytes alone, and `push` classifies it without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::resp::{parse, push, Limits};

fuzz_target!(|data: &[u8]| {
    let tight = Limits {
        max_bulk: 64,
        max_array: 8,
        max_depth: 3,
        max_line: 32,
    };
    for limits in [Limits::default(), tight] {
        let mut at = 0;
        // Values back to back, as a connection's buffer holds them.
        while at < data.len() {
            match parse(&data[at..], &limits) {
                Ok(Some((v, used))) => {
                    assert!(used > 0 && at + used <= data.len());
                    let again = parse(&data[at..at + used], &limits).unwrap().unwrap();
                    assert_eq!(again, (v.clone(), used));
                    let _ = push(v);
                    at += used;
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
});
