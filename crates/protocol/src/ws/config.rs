//! [`Config`]: the WebSocket limits and the permessage-deflate settings
//! ([`DeflateConfig`]) of a server, with their defaults.

/// Default [`Config::max_frame_size`]: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: u64 = 16 << 20;
/// Default [`Config::max_message_size`]: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 16 << 20;

/// A server's WebSocket settings: the bounds on what a client may send,
/// and whether permessage-deflate is offered.
///
/// ```
/// let mut config = protocol::ws::Config::default();
/// config.max_message_size = 1 << 20;
/// config.deflate = Some(protocol::ws::DeflateConfig::default());
/// assert_eq!(config.max_frame_size, 16 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest payload of one data frame. Checked when the frame's header
    /// arrives, before its payload. Exceeding it →
    /// [`Error::FrameTooLarge`](super::Error::FrameTooLarge) (close code
    /// 1009).
    pub max_frame_size: u64,
    /// Largest message: the sum of its frames' payloads, checked at each
    /// frame header; for a compressed message both the compressed payload
    /// and the decompressed size (checked by the
    /// [`Inflater`](super::Inflater) as it goes) are bounded by it.
    /// Exceeding it → [`Error::MessageTooLarge`](super::Error::MessageTooLarge)
    /// (1009).
    pub max_message_size: u64,
    /// `Some`: accept a client's permessage-deflate offer (RFC 7692) on
    /// these terms. `None` (the default): never compress.
    pub deflate: Option<DeflateConfig>,
}

impl Config {
    /// The defaults: 16 MiB frames, 16 MiB messages, no compression.
    pub const DEFAULT: Config = Config {
        max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        deflate: None,
    };
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// The server's side of a permessage-deflate negotiation (RFC 7692 §7.1).
///
/// These are the server's wishes and limits; the agreed parameters
/// ([`PerMessageDeflate`](super::PerMessageDeflate)) also take the client's
/// offer into account: a `*_no_context_takeover` the client asks for is
/// granted, a window the client limits is never exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Reset the compressor after every message (default `true`). Needed to
    /// compress a broadcast message once for many clients, and lets a
    /// thread share one compressor instead of keeping one (hundreds of KiB
    /// with a 32 KiB window) per connection; costs compression ratio on
    /// streams of similar small messages.
    pub server_no_context_takeover: bool,
    /// Ask the client to reset its compressor after every message (default
    /// `true`). Lets a thread share one decompressor instead of keeping one
    /// (about 40 KiB with a 32 KiB window) per connection, and leaves no
    /// compression state between messages — state that could not be
    /// carried over when a layer is replaced live. Set it to `false` for a
    /// better ratio on streams of similar client messages.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window the server compresses with, as a power of two,
    /// 8..=15 (default 15, 32 KiB); values outside are clamped. Announced
    /// as `server_max_window_bits` when below 15. 8 compresses with 9 (see
    /// [`PerMessageDeflate::compress_window_bits`](super::PerMessageDeflate::compress_window_bits)).
    pub server_max_window_bits: u8,
    /// Largest LZ77 window the server asks the client to use, 8..=15
    /// (default 15); values outside are clamped. Only a client that offers
    /// `client_max_window_bits` can be asked (RFC 7692 §7.1.2.2); others may
    /// use 32 KiB, and the server decompresses with 32 KiB for them.
    pub client_max_window_bits: u8,
    /// Compression level for [`Deflater`](super::Deflater), 0..=9 (default
    /// 6, zlib's default).
    pub level: u32,
}

impl DeflateConfig {
    /// The defaults: no context takeover either way, 32 KiB windows, level
    /// 6.
    pub const DEFAULT: DeflateConfig = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: 15,
        client_max_window_bits: 15,
        level: 6,
    };
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig::DEFAULT
    }
}
