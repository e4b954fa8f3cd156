//! Exporting and importing the state of the crate's resumable parsers, so
//! that a connection can be moved to another server (issue 12).
//!
//! Every parser that keeps state between calls has a plain-data state type
//! (integers, bools, enums, `Vec<u8>`; `serde`-serializable, meant to be
//! encoded with `postcard`), an `export` that produces it and an `import`
//! that validates it and builds the parser again:
//!
//! | parser | state | import takes |
//! | --- | --- | --- |
//! | [`BodyDecoder`](crate::BodyDecoder) | [`BodyState`](crate::BodyState) | [`Limits`](crate::Limits) |
//! | [`LengthDecoder`](crate::LengthDecoder) | [`LengthState`](crate::LengthState) | [`Limits`](crate::Limits) |
//! | [`ChunkedDecoder`](crate::ChunkedDecoder) | [`ChunkedState`](crate::ChunkedState) | [`Limits`](crate::Limits) |
//! | [`Multipart`](crate::Multipart) | [`MultipartState`](crate::MultipartState) | [`MultipartLimits`](crate::MultipartLimits) |
//! | [`ws::Decoder`](crate::ws::Decoder) | [`ws::DecoderState`](crate::ws::DecoderState) | [`ws::Config`](crate::ws::Config), compression negotiated |
//! | [`ws::Utf8Validator`](crate::ws::Utf8Validator) | [`ws::Utf8State`](crate::ws::Utf8State) | — |
//!
//! Limits are not part of a state: the importing side passes its own, and
//! a state that exceeds them (a body already longer than the new limit, a
//! frame larger than the new maximum, …) is refused with an
//! [`ImportError`], as is any state the parser could never have been in.
//! An imported parser continues exactly where the exported one stopped:
//! fed the rest of the stream, it returns what the original would have.
//!
//! A parser that already failed exports its error (and as little else as
//! is meaningful); the imported one returns the same error.
//!
//! The permessage-deflate codec ([`ws::Inflater`](crate::ws::Inflater),
//! [`ws::Deflater`](crate::ws::Deflater)) has no state type: zlib streams
//! cannot be serialized. [`ws::DecoderState`](crate::ws::DecoderState)
//! records whether the open message is compressed.
//!
//! The encoding of these types (postcard encodes fields and enum variants
//! by position) is versioned by [`STATE_VERSION`]: a snapshot should carry
//! it, and an importer should refuse a version it does not know.
//!
//! ```
//! use protocol::{ChunkedDecoder, Limits};
//!
//! let limits = Limits::default();
//! let mut dec = ChunkedDecoder::new(&limits);
//! dec.decode(b"5;ext=\"a")?; // stops inside a quoted chunk extension
//! let state = dec.export();
//! let mut moved = ChunkedDecoder::import(state, &limits).expect("valid state");
//! let step = moved.decode(b"\"\r\nhello\r\n0\r\n\r\n")?;
//! assert_eq!(step.data, 3..8);
//! # Ok::<(), protocol::Error>(())
//! ```

use std::fmt;

/// The version of the state types' encoding. Bumped whenever a state type
/// (or an enum or error type inside one) changes in a way that changes its
/// postcard encoding: a field added, removed or reordered, a variant added
/// anywhere but at the end.
pub const STATE_VERSION: u32 = 1;

/// Why a parser state was refused by `import`: the state names a field
/// whose value the parser could not have produced, or that exceeds the
/// importing side's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImportError {
    field: &'static str,
    reason: &'static str,
}

impl ImportError {
    pub(crate) const fn new(field: &'static str, reason: &'static str) -> Self {
        ImportError { field, reason }
    }

    /// The state field that was refused, as `Type.field` (e.g.
    /// `"DecoderState.mask_offset"`).
    pub const fn field(&self) -> &'static str {
        self.field
    }

    /// Why, in a few words.
    pub const fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid parser state: {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ImportError {}

/// `Err(ImportError)` unless `ok`.
pub(crate) fn check(
    ok: bool,
    field: &'static str,
    reason: &'static str,
) -> Result<(), ImportError> {
    if ok {
        Ok(())
    } else {
        Err(ImportError::new(field, reason))
    }
}

/// A `u64` length from a state as `usize`, if it fits.
pub(crate) fn to_usize(v: u64, field: &'static str) -> Result<usize, ImportError> {
    usize::try_from(v).map_err(|_| ImportError::new(field, "does not fit in usize"))
}
