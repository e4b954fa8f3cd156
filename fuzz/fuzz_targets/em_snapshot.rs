//! The event manager's snapshot reader: arbitrary bytes are refused with an
//! error or accepted as a snapshot whose every invariant holds — never a
//! panic, never an unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = event_manager::EventManager::check_snapshot(data) {
        assert!(info.descriptors <= info.slots);
    }
});
