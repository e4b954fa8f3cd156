//! The TLS record layer that carries sessions across a handover
//! (`network_server`'s `tls_records.rs`): arbitrary received bytes fail or
//! open, never panic; what one end seals, in any pieces, the other opens
//! exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    network_server::fuzzing::tls_records(data);
});
