//! [`Limits`]: every bound the parsers enforce, with their defaults. One value
//! is shared by the head parser and the body decoders of a server.

/// Default [`Limits::max_head_size`]: 16 KiB.
pub const DEFAULT_MAX_HEAD_SIZE: usize = 16 * 1024;
/// Default [`Limits::max_headers`]: 100 field lines.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default [`Limits::max_body_size`]: 1 GiB.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 1 << 30;
/// Default [`Limits::max_chunk_extension_size`]: 1 KiB per chunk-size line.
pub const DEFAULT_MAX_CHUNK_EXTENSION_SIZE: usize = 1024;
/// Default [`Limits::max_trailer_size`]: 16 KiB.
pub const DEFAULT_MAX_TRAILER_SIZE: usize = 16 * 1024;

/// Bounds on what a peer may send. Exceeding one is an [`crate::Error`]
/// whose [`status`](crate::Error::status) is 413 or 431 (400 for chunk
/// extensions).
///
/// ```
/// let mut limits = protocol::Limits::default();
/// limits.max_body_size = 64 << 20;
/// assert_eq!(limits.max_head_size, 16 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest request head in bytes: optional leading empty lines, request
    /// line, field lines and the final CRLF. A longer request-target is
    /// covered by this too. Exceeding it → [`crate::Error::HeadTooLarge`] (431).
    pub max_head_size: usize,
    /// Most field lines in a head. The effective bound is the smaller of this
    /// and the header storage handed to [`crate::parse_request`]. Exceeding
    /// it → [`crate::Error::TooManyHeaders`] (431).
    pub max_headers: usize,
    /// Largest request body: checked against Content-Length when the head is
    /// parsed, and against the running total of chunk sizes while a chunked
    /// body is decoded. Exceeding it → [`crate::Error::BodyTooLarge`] (413).
    pub max_body_size: u64,
    /// Most bytes of chunk extensions (everything after the hex size, before
    /// the CRLF) on one chunk-size line. Extensions are validated and then
    /// ignored. Exceeding it → [`crate::Error::ChunkExtensionTooLong`] (400).
    pub max_chunk_extension_size: usize,
    /// Largest trailer section of a chunked body, in bytes including the
    /// final CRLF. Trailer fields are validated and then skipped. Exceeding
    /// it → [`crate::Error::TrailersTooLarge`] (431).
    pub max_trailer_size: usize,
}

impl Limits {
    /// The defaults: 16 KiB head, 100 fields, 1 GiB body, 1 KiB of chunk
    /// extensions per chunk, 16 KiB of trailers.
    pub const DEFAULT: Limits = Limits {
        max_head_size: DEFAULT_MAX_HEAD_SIZE,
        max_headers: DEFAULT_MAX_HEADERS,
        max_body_size: DEFAULT_MAX_BODY_SIZE,
        max_chunk_extension_size: DEFAULT_MAX_CHUNK_EXTENSION_SIZE,
        max_trailer_size: DEFAULT_MAX_TRAILER_SIZE,
    };

    /// Checks a declared body length against [`Limits::max_body_size`].
    ///
    /// [`crate::parse_request`] already applies this to Content-Length; it is
    /// public for callers that learn a length some other way.
    pub const fn check_body_size(&self, len: u64) -> Result<(), crate::Error> {
        if len > self.max_body_size {
            Err(crate::Error::BodyTooLarge)
        } else {
            Ok(())
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
