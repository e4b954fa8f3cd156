//! Sending files over HTTP (the notes' `http_send_file`): opening beneath a
//! served root, validators and conditional answers, ranges, and streaming
//! the file through the ring with bounded buffers.
//!
//! The transfer table and the three hooks the server calls live here:
//! [`Core::on_send_file`] for completions of transfer operations (tagged
//! `TAG_SEND_FILE` with the transfer key), [`Core::on_conn_written`] when a
//! connection's write completed (a transfer may send its next piece), and
//! [`Core::on_conn_closed_files`] when a connection closed (its transfers
//! end).

use event_manager::{Completion, EventManager, Pfd};

use crate::server::Core;
use crate::Application;

/// File transfers in progress.
#[derive(Debug, Default)]
pub(crate) struct Transfers {}

impl Core {
    /// A completion of a transfer operation.
    pub(crate) fn on_send_file<A: Application>(
        &mut self,
        _em: &mut EventManager,
        _app: &mut A,
        key: u64,
        c: Completion,
    ) {
        tracing::debug!(key, ?c.kind, "completion for an unknown file transfer");
    }

    /// A write on `pfd` completed.
    pub(crate) fn on_conn_written<A: Application>(
        &mut self,
        _em: &mut EventManager,
        _app: &mut A,
        _pfd: Pfd,
    ) {
    }

    /// `pfd` closed.
    pub(crate) fn on_conn_closed_files<A: Application>(
        &mut self,
        _em: &mut EventManager,
        _app: &mut A,
        _pfd: Pfd,
    ) {
    }
}
