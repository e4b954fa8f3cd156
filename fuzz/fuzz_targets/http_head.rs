//! The request-head parser never panics, and a head split anywhere parses as
//! it does whole: a prefix of a complete head is `Partial`, a prefix that
//! holds it gives the same head and length, and an error never turns into a
//! complete head on a prefix. The first input byte picks the split point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{header_storage, parse_request, BodyDecoder, Limits, Parsed};

fuzz_target!(|data: &[u8]| {
    let mut limits = Limits::default();
    limits.max_head_size = 2048;
    limits.max_headers = 16;
    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) * 17 % (data.len() + 1));
    let (mut whole_storage, mut cut_storage) = (header_storage::<32>(), header_storage::<32>());
    let whole = parse_request(data, &mut whole_storage, &limits);
    let prefix = parse_request(&data[..cut], &mut cut_storage, &limits);
    match whole {
        Ok(Parsed::Complete(head, len)) => {
            assert!(len <= data.len().min(limits.max_head_size));
            assert!(head.headers.len() <= limits.max_headers);
            if cut < len {
                assert_eq!(prefix, Ok(Parsed::Partial));
            } else {
                assert_eq!(prefix, Ok(Parsed::Complete(head, len)));
            }
            // Decoding the path and the query never panics either.
            let _ = head.path_decoded();
            let pairs = head.query_pairs().count();
            assert!(pairs == 0 || head.query.is_some());
            // Whatever follows must not panic the body decoder either.
            let (mut body, mut rest) = (BodyDecoder::new(head.body, &limits), &data[len..]);
            while let Ok(step) = body.decode(rest) {
                rest = &rest[step.consumed..];
                if step.done || rest.is_empty() {
                    break;
                }
            }
        }
        Ok(Parsed::Partial) => assert_eq!(prefix, Ok(Parsed::Partial)),
        Err(e) => {
            assert!(
                !matches!(prefix, Ok(Parsed::Complete(..))),
                "{e:?} vs {prefix:?}"
            );
            let _ = e.status();
        }
    }
});
