//! The network server's snapshot reader: arbitrary bytes are refused with
//! an error or accepted — every connection's protocol state checked
//! against the configuration's limits — never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use network_server::{Server, ServerConfig};

fuzz_target!(|data: &[u8]| {
    let _ = Server::check_snapshot(&ServerConfig::default(), data);
});
