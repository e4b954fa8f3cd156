//! The permessage-deflate codec (RFC 7692 §7.2): [`Deflater`] compresses a
//! message the server sends, [`Inflater`] decompresses one it receives.
//!
//! A compressed message is raw DEFLATE (no zlib header) ending in a sync
//! flush, with the flush's final `00 00 ff ff` removed (§7.2.1); the
//! receiver appends those 4 bytes again before decompressing the end
//! (§7.2.2). With `*_no_context_takeover` the (de)compressor is reset after
//! every message; otherwise its window carries over to the next one.
//!
//! The inflater never produces more than the message limit: it decompresses
//! into output space capped at the bytes still allowed (plus one, to see
//! that the limit is passed) and stops with [`Error::MessageTooLarge`] at
//! once, so a small "zip bomb" costs at most the limit in memory and time.
//!
//! Backend: flate2 with zlib-rs (pure Rust), which supports raw DEFLATE
//! with window sizes 9..=15; see
//! [`PerMessageDeflate::compress_window_bits`] for how 8 is handled.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{Error, MessageKind, PerMessageDeflate, Utf8Validator};

/// What a sync flush ends with, removed by the sender and restored by the
/// receiver (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Compresses the messages the server sends on one connection (or on
/// many, when `server_no_context_takeover` was agreed and each message is
/// compressed whole).
///
/// Send the result as the payload of a message whose first frame has RSV1
/// set (RFC 7692 §6).
///
/// ```
/// use protocol::ws::{Deflater, Inflater, MessageKind, PerMessageDeflate};
///
/// let agreed = PerMessageDeflate {
///     server_no_context_takeover: false,
///     client_no_context_takeover: false,
///     server_max_window_bits: None,
///     client_max_window_bits: None,
/// };
/// let mut deflater = Deflater::new(&agreed, 6);
/// let mut payload = Vec::new();
/// deflater.compress(b"Hello", true, &mut payload)?;
/// assert_eq!(payload, b"\xf2\x48\xcd\xc9\xc9\x07\x00"); // RFC 7692 §7.2.3.1
///
/// // The client side of the same stream, for the demonstration.
/// let mut inflater = Inflater::with_window_bits(15, false);
/// let mut message = Vec::new();
/// inflater.inflate(MessageKind::Text, &payload, true, &mut message, 1024)?;
/// assert_eq!(message, b"Hello");
/// # Ok::<(), protocol::ws::Error>(())
/// ```
#[derive(Debug)]
pub struct Deflater {
    compress: Compress,
    reset_each_message: bool,
    /// Output bytes of the current message so far (to find its tail).
    message_start_out: u64,
}

impl Deflater {
    /// The server's compressor for the agreed parameters: window
    /// [`compress_window_bits`](PerMessageDeflate::compress_window_bits),
    /// reset after every message if `server_no_context_takeover`. `level`
    /// 0..=9 (higher values are treated as 9).
    pub fn new(agreed: &PerMessageDeflate, level: u32) -> Self {
        Deflater::with_window_bits(
            agreed.compress_window_bits(),
            agreed.server_no_context_takeover,
            level,
        )
    }

    /// A compressor with an explicit window (9..=15, clamped) and reset
    /// policy; for a client, or for tests.
    pub fn with_window_bits(window_bits: u8, reset_each_message: bool, level: u32) -> Self {
        Deflater {
            compress: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                window_bits.clamp(9, 15),
            ),
            reset_each_message,
            message_start_out: 0,
        }
    }

    /// Compresses the next piece of a message, appending to `out`; `fin`
    /// marks the last piece, after which the output is complete and ends
    /// without the `00 00 ff ff` tail. A message may be compressed in one
    /// call (`fin` set) or in several, e.g. to send it as fragments.
    ///
    /// Allocates only when `out` lacks capacity.
    pub fn compress(&mut self, input: &[u8], fin: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        let flush = if fin {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        let start_in = self.compress.total_in();
        out.reserve(input.len() / 2 + 64);
        loop {
            let consumed = (self.compress.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            self.compress
                .compress_vec(&input[consumed..], out, flush)
                .map_err(|_| Error::CompressionFailed)?;
            let consumed = (self.compress.total_in() - start_in) as usize;
            // Done once all input is taken and the output was not filled
            // (so nothing of the flush is left pending).
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if fin {
            let produced = self.compress.total_out() - self.message_start_out;
            if produced == 0 {
                // zlib skips a sync flush right after another with no input
                // in between (an empty message): write the empty stored
                // block's first byte ourselves (RFC 7692 §7.2.3.6). The
                // stream is byte-aligned after the previous flush.
                out.push(0x00);
            } else if produced < 4 || !out.ends_with(&TAIL) {
                return Err(Error::CompressionFailed);
            } else {
                out.truncate(out.len() - TAIL.len());
            }
            if self.reset_each_message {
                self.compress.reset();
            }
            self.message_start_out = self.compress.total_out();
        }
        Ok(())
    }
}

/// Decompresses the messages the server receives on one connection (or on
/// many, when `client_no_context_takeover` was agreed and each message is
/// decompressed from start to end without another in between).
///
/// Feed it the compressed payload of each message in order — the
/// [`Data`](super::Data) pieces with [`compressed`](super::Data::compressed)
/// set — with `fin` on the last. It appends the decompressed bytes to
/// `out`, checks UTF-8 of text messages as they come, and stops with
/// [`Error::MessageTooLarge`] as soon as a message would exceed `max_size`.
/// After an error it is reset and can serve another connection's message.
#[derive(Debug)]
pub struct Inflater {
    decompress: Decompress,
    reset_each_message: bool,
    /// Decompressed bytes of the current message.
    produced: u64,
    /// The DEFLATE stream just ended (a block with BFINAL set, RFC 7692
    /// §7.2.3.4) and the decompressor was reset; no input since.
    after_final_block: bool,
    utf8: Utf8Validator,
}

impl Inflater {
    /// The server's decompressor for the agreed parameters: window
    /// [`decompress_window_bits`](PerMessageDeflate::decompress_window_bits),
    /// reset after every message if `client_no_context_takeover`.
    pub fn new(agreed: &PerMessageDeflate) -> Self {
        Inflater::with_window_bits(
            agreed.decompress_window_bits(),
            agreed.client_no_context_takeover,
        )
    }

    /// A decompressor with an explicit window (9..=15, clamped) and reset
    /// policy; for a client, or for tests.
    pub fn with_window_bits(window_bits: u8, reset_each_message: bool) -> Self {
        Inflater {
            decompress: Decompress::new_with_window_bits(false, window_bits.clamp(9, 15)),
            reset_each_message,
            produced: 0,
            after_final_block: false,
            utf8: Utf8Validator::new(),
        }
    }

    /// Decompresses the next piece of a `kind` message, appending to `out`.
    /// With `fin`, also the end of the message: the `00 00 ff ff` tail is
    /// fed, UTF-8 completeness is checked for text, and the per-message
    /// state (and, without context takeover, the window) is reset.
    ///
    /// `max_size` bounds the decompressed size of the whole message (all
    /// pieces); exceeding it → [`Error::MessageTooLarge`], with at most
    /// `max_size + 1` bytes produced. Invalid DEFLATE data →
    /// [`Error::InvalidCompressedData`]; invalid UTF-8 in a text message →
    /// [`Error::InvalidUtf8`].
    ///
    /// A block with BFINAL set ends the DEFLATE stream (RFC 7692 §7.2.3.4):
    /// the decompressor is reset and whatever follows in the message starts
    /// a new stream (the RFC's example ends with a `00` byte that, with the
    /// tail, is an empty stored block). The window does not survive a final
    /// block, even with context takeover.
    pub fn inflate(
        &mut self,
        kind: MessageKind,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_size: u64,
    ) -> Result<(), Error> {
        let result = self.inflate_inner(kind, input, fin, out, max_size);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn inflate_inner(
        &mut self,
        kind: MessageKind,
        input: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
        max_size: u64,
    ) -> Result<(), Error> {
        let text = kind == MessageKind::Text;
        self.run(input, FlushDecompress::None, text, out, max_size)?;
        if !fin {
            return Ok(());
        }
        // A message that ends right after a final block has nothing to
        // flush; the tail would start a new stream and not be one.
        if !self.after_final_block {
            self.run(&TAIL, FlushDecompress::Sync, text, out, max_size)?;
            if self.reset_each_message {
                self.decompress.reset(false);
            }
        }
        if text {
            self.utf8.finish()?;
        }
        self.produced = 0;
        self.after_final_block = false;
        Ok(())
    }

    /// Forgets the current message and the window.
    fn reset(&mut self) {
        self.decompress.reset(false);
        self.produced = 0;
        self.after_final_block = false;
        self.utf8 = Utf8Validator::new();
    }

    fn run(
        &mut self,
        input: &[u8],
        flush: FlushDecompress,
        text: bool,
        out: &mut Vec<u8>,
        max_size: u64,
    ) -> Result<(), Error> {
        let mut consumed = 0;
        loop {
            // Output space: what the limit still allows, plus one byte to
            // notice that the message goes past it.
            let allowed = max_size.saturating_sub(self.produced).saturating_add(1);
            let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
            if out.len() == out.capacity() {
                // Grow geometrically, but never past the allowance.
                let want = (input.len() - consumed)
                    .saturating_mul(4)
                    .max(out.len())
                    .max(256)
                    .min(allowed);
                out.reserve_exact(want);
            }
            let start = out.len();
            let in_before = self.decompress.total_in();
            let out_before = self.decompress.total_out();
            let spare = out.capacity() - start;
            let status = if spare <= allowed {
                self.decompress
                    .decompress_vec(&input[consumed..], out, flush)
            } else {
                // More capacity than allowed: decompress into a bounded,
                // initialised window of it instead.
                out.resize(start + allowed, 0);
                let status =
                    self.decompress
                        .decompress(&input[consumed..], &mut out[start..], flush);
                let n = (self.decompress.total_out() - out_before) as usize;
                out.truncate(start + n);
                status
            };
            let took = (self.decompress.total_in() - in_before) as usize;
            let made = (self.decompress.total_out() - out_before) as usize;
            consumed += took;
            // The output is checked before a decompression error is
            // reported, and UTF-8 before size, so that the error does not
            // depend on how the input was split.
            if text {
                self.utf8.feed(&out[start..start + made])?;
            }
            self.produced += made as u64;
            if self.produced > max_size {
                return Err(Error::MessageTooLarge);
            }
            let status = status.map_err(|_| Error::InvalidCompressedData)?;
            if took > 0 {
                self.after_final_block = false;
            }
            let filled = made == spare.min(allowed);
            match status {
                Status::StreamEnd => {
                    // A block with BFINAL set (RFC 7692 §7.2.3.4): what
                    // follows in the message, if anything, is a new stream
                    // — normally the first byte of an empty stored block,
                    // completed by the tail. The window does not carry over.
                    self.decompress.reset(false);
                    self.after_final_block = true;
                    if consumed == input.len() {
                        return Ok(());
                    }
                }
                Status::Ok | Status::BufError => {
                    if consumed == input.len() && !filled {
                        return Ok(());
                    }
                    if took == 0 && made == 0 && !filled {
                        // No progress with input and room left: the data
                        // cannot continue.
                        return Err(Error::InvalidCompressedData);
                    }
                }
            }
        }
    }
}
