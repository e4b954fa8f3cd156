//! # network_server — connections and protocols on top of `event_manager`
//!
//! The second layer of ringtail. It is built only on `event_manager`'s
//! public interface and will own listeners and connections, decide each
//! connection's protocol (HTTP, WebSocket after an Upgrade, RAW for handed-
//! over descriptors) and expose the eleven callbacks to the application.
//!
//! Status: the HTTP/1.1 server and the callbacks are tracked in the
//! network_server issue; this crate only fixes the layer's place in the
//! workspace so far.

pub use event_manager;
