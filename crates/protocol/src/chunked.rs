//! [`ChunkedDecoder`]: a resumable state machine for the chunked transfer
//! coding (RFC 9112 §7.1). It is fed whatever slices arrive, split anywhere
//! (even between the CR and LF), keeps no buffer, allocates nothing, and
//! hands body data back as ranges of the slice it was given.
//!
//! It is written here rather than taken from `httparse::parse_chunk_size`
//! because that function needs the whole size line in one buffer (so the
//! caller would have to copy) and accepts any byte, bare LF included, inside
//! chunk extensions.

use serde::{Deserialize, Serialize};

use crate::body::Decoded;
use crate::fields::{is_field_value_byte, is_tchar};
use crate::snapshot::{check, to_usize, ImportError};
use crate::{Error, Limits};

use ChunkedPhase as State;

/// Where the decoder is in the chunked grammar:
///
/// ```text
/// chunked-body   = *chunk last-chunk trailer-section CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-ext      = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
/// ext-val        = token / quoted-string
/// trailer-section = *( field-line CRLF )
/// ```
///
/// Part of [`ChunkedState`]; the encoding depends on the order of the
/// variants (see [`STATE_VERSION`](crate::STATE_VERSION)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChunkedPhase {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// In the hex digits.
    Size,
    /// Whitespace after the digits: only more whitespace or `;` may follow.
    SizeWs,
    /// After `;` (and BWS): expecting an extension name.
    ExtNameStart,
    /// In an extension name.
    ExtName,
    /// BWS after a name: `=` or `;` must follow.
    ExtNameWs,
    /// After `=` (and BWS): expecting a token or a quoted string.
    ExtValueStart,
    /// In a token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash inside a quoted string.
    ExtQuotedEscape,
    /// Just after the closing quote.
    ExtAfterQuoted,
    /// BWS after a value: only more whitespace or `;` may follow.
    ExtWs,
    /// Got the CR ending a size line.
    SizeLf,
    /// In chunk data; `remaining` bytes to go.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final CRLF).
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// Got the CR ending a trailer line.
    TrailerLf,
    /// Got the CR of the final CRLF.
    EndLf,
    /// The body is complete.
    Done,
}

impl ChunkedPhase {
    /// States whose bytes count against the chunk-extension limit.
    const fn in_extension(self) -> bool {
        matches!(
            self,
            State::SizeWs
                | State::ExtNameStart
                | State::ExtName
                | State::ExtNameWs
                | State::ExtValueStart
                | State::ExtToken
                | State::ExtQuoted
                | State::ExtQuotedEscape
                | State::ExtAfterQuoted
                | State::ExtWs
        )
    }

    /// States in which `size` and `digits` hold the current chunk size.
    const fn has_size(self) -> bool {
        matches!(self, State::Size | State::SizeLf) || self.in_extension()
    }

    /// States whose bytes count against the trailer-section limit.
    const fn in_trailers(self) -> bool {
        matches!(
            self,
            State::TrailerStart
                | State::TrailerName
                | State::TrailerValue
                | State::TrailerLf
                | State::EndLf
        )
    }
}

/// Decodes a `Transfer-Encoding: chunked` request body.
///
/// Feed it the bytes after the head with [`decode`](ChunkedDecoder::decode)
/// until [`Decoded::done`]; pass the unconsumed rest on to the next request.
/// Chunk extensions and trailer fields are validated, bounded by
/// [`Limits`], and dropped (RFC 9112 §7.1.1, §7.1.2 allow both).
/// After an error every further call returns the same error.
///
/// ```
/// use protocol::{ChunkedDecoder, Limits};
///
/// let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\nNEXT";
/// let mut dec = ChunkedDecoder::new(&Limits::default());
/// let (mut body, mut input) = (Vec::new(), &wire[..]);
/// loop {
///     let step = dec.decode(input)?;
///     body.extend_from_slice(step.data(input));
///     input = &input[step.consumed..];
///     if step.done || input.is_empty() {
///         break;
///     }
/// }
/// assert_eq!(body, b"Wikipedia");
/// assert_eq!(input, b"NEXT");
/// # Ok::<(), protocol::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk size being read.
    size: u64,
    /// Hex digits read for it (leading zeros included).
    digits: u8,
    /// Data bytes left in the current chunk.
    remaining: u64,
    /// Sum of the chunk sizes accepted so far (checked against the limit).
    declared: u64,
    /// Data bytes handed out so far.
    body_len: u64,
    /// Extension bytes on the current size line.
    ext_len: usize,
    /// Bytes of the trailer section so far.
    trailer_len: usize,
    max_body: u64,
    max_ext: usize,
    max_trailer: usize,
    error: Option<Error>,
}

/// A [`ChunkedDecoder`]'s state as plain data: see
/// [`ChunkedDecoder::export`] and [`ChunkedDecoder::import`]. Fields that
/// do not matter in a phase are 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkedState {
    /// Where in the chunked grammar the decoder is.
    pub phase: ChunkedPhase,
    /// The chunk size read so far (in [`ChunkedPhase::Size`]) or read
    /// (after it, up to [`ChunkedPhase::SizeLf`]).
    pub size: u64,
    /// Hex digits of `size` read, leading zeros included (at most 16).
    pub digits: u8,
    /// Data bytes left in the current chunk ([`ChunkedPhase::Data`]).
    pub remaining: u64,
    /// Sum of the chunk sizes accepted so far.
    pub declared: u64,
    /// Data bytes handed out so far (`declared - remaining`).
    pub body_len: u64,
    /// Extension bytes on the current size line (in the extension phases).
    pub ext_len: u64,
    /// Bytes of the trailer section so far (in the trailer phases).
    pub trailer_len: u64,
    /// The error the decoder failed with; it returns it again.
    pub error: Option<Error>,
}

/// Largest chunk size accepted: 2^63 − 1, so sizes and totals never wrap.
const MAX_CHUNK_SIZE: u64 = i64::MAX as u64;
/// Most hex digits in a chunk size, leading zeros included.
const MAX_SIZE_DIGITS: u8 = 16;

const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `qdtext` of RFC 9110 §5.6.4.
const fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body, bounded by
    /// [`Limits::max_body_size`], [`Limits::max_chunk_extension_size`] and
    /// [`Limits::max_trailer_size`].
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            remaining: 0,
            declared: 0,
            body_len: 0,
            ext_len: 0,
            trailer_len: 0,
            max_body: limits.max_body_size,
            max_ext: limits.max_chunk_extension_size,
            max_trailer: limits.max_trailer_size,
            error: None,
        }
    }

    /// The decoder's state, to continue elsewhere with
    /// [`import`](Self::import). The limits are not part of it.
    pub fn export(&self) -> ChunkedState {
        if let Some(e) = self.error {
            return ChunkedState {
                phase: State::SizeStart,
                size: 0,
                digits: 0,
                remaining: 0,
                declared: self.body_len,
                body_len: self.body_len,
                ext_len: 0,
                trailer_len: 0,
                error: Some(e),
            };
        }
        let state = self.state;
        let sized = state.has_size();
        ChunkedState {
            phase: state,
            size: if sized { self.size } else { 0 },
            digits: if sized { self.digits } else { 0 },
            remaining: self.remaining,
            declared: self.declared,
            body_len: self.body_len,
            ext_len: if state.in_extension() {
                self.ext_len as u64
            } else {
                0
            },
            trailer_len: if state.in_trailers() {
                self.trailer_len as u64
            } else {
                0
            },
            error: None,
        }
    }

    /// A decoder that continues where the one that exported `state`
    /// stopped, bounded by `limits` (which may differ from the exporting
    /// side's). Refuses a state the decoder could not have reached, or one
    /// already beyond `limits`: the body declared so far larger than
    /// [`Limits::max_body_size`], the current line's extensions longer than
    /// [`Limits::max_chunk_extension_size`], the trailers longer than
    /// [`Limits::max_trailer_size`].
    pub fn import(state: ChunkedState, limits: &Limits) -> Result<Self, ImportError> {
        let ChunkedState {
            phase,
            size,
            digits,
            remaining,
            declared,
            body_len,
            ext_len,
            trailer_len,
            error,
        } = state;
        let mut dec = ChunkedDecoder::new(limits);
        check(
            declared <= dec.max_body,
            "ChunkedState.declared",
            "exceeds max_body_size",
        )?;
        check(
            body_len <= declared,
            "ChunkedState.body_len",
            "larger than declared",
        )?;
        check(
            remaining == declared - body_len,
            "ChunkedState.remaining",
            "not declared - body_len",
        )?;
        check(
            (remaining > 0) == (phase == State::Data),
            "ChunkedState.remaining",
            "must be non-zero exactly in the Data phase",
        )?;
        if phase.has_size() {
            check(
                (1..=MAX_SIZE_DIGITS).contains(&digits),
                "ChunkedState.digits",
                "not 1..=16",
            )?;
            check(
                size <= MAX_CHUNK_SIZE && (digits == 16 || size >> (4 * digits) == 0),
                "ChunkedState.size",
                "does not fit its digits or exceeds 2^63 - 1",
            )?;
            // Past the digits the size was checked against the body limit.
            check(
                phase == State::Size
                    || declared
                        .checked_add(size)
                        .is_some_and(|t| t <= dec.max_body),
                "ChunkedState.size",
                "declared + size exceeds max_body_size",
            )?;
        } else {
            check(digits == 0, "ChunkedState.digits", "not 0 in this phase")?;
            check(size == 0, "ChunkedState.size", "not 0 in this phase")?;
        }
        let ext_len = to_usize(ext_len, "ChunkedState.ext_len")?;
        if phase.in_extension() {
            check(
                ext_len <= dec.max_ext,
                "ChunkedState.ext_len",
                "exceeds max_chunk_extension_size",
            )?;
        } else {
            check(ext_len == 0, "ChunkedState.ext_len", "not 0 in this phase")?;
        }
        let trailer_len = to_usize(trailer_len, "ChunkedState.trailer_len")?;
        if phase.in_trailers() {
            check(
                trailer_len <= dec.max_trailer,
                "ChunkedState.trailer_len",
                "exceeds max_trailer_size",
            )?;
        } else {
            check(
                trailer_len == 0,
                "ChunkedState.trailer_len",
                "not 0 in this phase",
            )?;
        }
        if error.is_some() {
            check(
                phase == State::SizeStart && remaining == 0,
                "ChunkedState.error",
                "a failed decoder exports only its error and lengths",
            )?;
        }
        dec.state = phase;
        dec.size = size;
        dec.digits = digits;
        dec.remaining = remaining;
        dec.declared = declared;
        dec.body_len = body_len;
        dec.ext_len = ext_len;
        dec.trailer_len = trailer_len;
        dec.error = error;
        Ok(dec)
    }

    /// Consumes framing bytes from `input` up to the next run of chunk data,
    /// the end of the body, or the end of `input`, whichever comes first.
    ///
    /// Returns how many bytes were consumed, the data range (relative to
    /// `input`, possibly empty) and whether the body is complete. Every byte
    /// of `input` is consumed unless data was returned (call again with
    /// `&input[consumed..]`) or the body ended (the rest is the next
    /// request).
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Done => break,
                State::Data => {
                    let n = self.remaining.min((input.len() - pos) as u64);
                    self.remaining -= n;
                    self.body_len += n;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    let end = pos + n as usize;
                    return Ok(Decoded {
                        consumed: end,
                        data: pos..end,
                        done: false,
                    });
                }
                _ => {
                    let b = input[pos];
                    pos += 1;
                    if let Err(e) = self.framing_byte(b) {
                        self.error = Some(e);
                        return Err(e);
                    }
                }
            }
        }
        Ok(Decoded {
            consumed: pos,
            data: pos..pos,
            done: self.state == State::Done,
        })
    }

    /// Whether the whole body, trailers and final CRLF included, has been
    /// consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body data bytes handed out so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    fn push_digit(&mut self, d: u8) -> Result<(), Error> {
        self.digits += 1;
        if self.digits > MAX_SIZE_DIGITS {
            return Err(Error::ChunkSizeOverflow);
        }
        // At most 16 digits: cannot overflow u64.
        self.size = (self.size << 4) | u64::from(d);
        if self.size > MAX_CHUNK_SIZE {
            return Err(Error::ChunkSizeOverflow);
        }
        Ok(())
    }

    /// The hex digits are over: the size fits, now check the body limit.
    fn end_size(&mut self) -> Result<(), Error> {
        // `checked_add`: with a limit of `u64::MAX` a saturated sum would
        // pass and the total overflow when the chunk is accepted.
        match self.declared.checked_add(self.size) {
            Some(total) if total <= self.max_body => Ok(()),
            _ => Err(Error::BodyTooLarge),
        }
    }

    /// One byte of framing (anything but chunk data).
    fn framing_byte(&mut self, b: u8) -> Result<(), Error> {
        use State::*;
        let state = self.state;
        if (state.in_extension() || (state == Size && matches!(b, b';' | b' ' | b'\t')))
            && b != b'\r'
        {
            self.ext_len += 1;
            if self.ext_len > self.max_ext {
                return Err(Error::ChunkExtensionTooLong);
            }
        } else if state.in_trailers() {
            self.trailer_len += 1;
            if self.trailer_len > self.max_trailer {
                return Err(Error::TrailersTooLarge);
            }
        }
        let ows = b == b' ' || b == b'\t';
        self.state = match state {
            SizeStart => match hex_value(b) {
                Some(d) => {
                    self.size = 0;
                    self.digits = 0;
                    self.ext_len = 0;
                    self.push_digit(d)?;
                    Size
                }
                None if b == b'\n' => return Err(Error::BareLineFeed),
                None => return Err(Error::InvalidChunkSize),
            },
            Size => match hex_value(b) {
                Some(d) => {
                    self.push_digit(d)?;
                    Size
                }
                None => {
                    let next = match b {
                        b'\r' => SizeLf,
                        b';' => ExtNameStart,
                        _ if ows => SizeWs,
                        b'\n' => return Err(Error::BareLineFeed),
                        _ => return Err(Error::InvalidChunkSize),
                    };
                    self.end_size()?;
                    next
                }
            },
            SizeWs => match b {
                b';' => ExtNameStart,
                _ if ows => SizeWs,
                _ => return Err(Error::InvalidChunkSize),
            },
            ExtNameStart => match b {
                _ if ows => ExtNameStart,
                _ if is_tchar(b) => ExtName,
                _ => return Err(Error::InvalidChunkExtension),
            },
            ExtName => match b {
                b'\r' => SizeLf,
                b';' => ExtNameStart,
                b'=' => ExtValueStart,
                _ if ows => ExtNameWs,
                _ if is_tchar(b) => ExtName,
                b'\n' => return Err(Error::BareLineFeed),
                _ => return Err(Error::InvalidChunkExtension),
            },
            ExtNameWs => match b {
                b';' => ExtNameStart,
                b'=' => ExtValueStart,
                _ if ows => ExtNameWs,
                _ => return Err(Error::InvalidChunkExtension),
            },
            ExtValueStart => match b {
                b'"' => ExtQuoted,
                _ if ows => ExtValueStart,
                _ if is_tchar(b) => ExtToken,
                _ => return Err(Error::InvalidChunkExtension),
            },
            ExtToken => match b {
                b'\r' => SizeLf,
                b';' => ExtNameStart,
                _ if ows => ExtWs,
                _ if is_tchar(b) => ExtToken,
                b'\n' => return Err(Error::BareLineFeed),
                _ => return Err(Error::InvalidChunkExtension),
            },
            ExtQuoted => match b {
                b'"' => ExtAfterQuoted,
                b'\\' => ExtQuotedEscape,
                _ if is_qdtext(b) => ExtQuoted,
                _ => return Err(Error::InvalidChunkExtension),
            },
            ExtQuotedEscape => match b {
                b'\t' | b' '..=b'~' | 0x80..=0xff => ExtQuoted,
                _ => return Err(Error::InvalidChunkExtension),
            },
            ExtAfterQuoted => match b {
                b'\r' => SizeLf,
                b';' => ExtNameStart,
                _ if ows => ExtWs,
                b'\n' => return Err(Error::BareLineFeed),
                _ => return Err(Error::InvalidChunkExtension),
            },
            ExtWs => match b {
                b';' => ExtNameStart,
                _ if ows => ExtWs,
                _ => return Err(Error::InvalidChunkExtension),
            },
            SizeLf => match b {
                b'\n' if self.size == 0 => {
                    self.trailer_len = 0;
                    TrailerStart
                }
                b'\n' => {
                    self.declared += self.size;
                    self.remaining = self.size;
                    Data
                }
                _ => return Err(Error::BareCarriageReturn),
            },
            DataCr => match b {
                b'\r' => DataLf,
                b'\n' => return Err(Error::BareLineFeed),
                _ => return Err(Error::InvalidChunkDelimiter),
            },
            DataLf => match b {
                b'\n' => SizeStart,
                _ => return Err(Error::BareCarriageReturn),
            },
            TrailerStart => match b {
                b'\r' => EndLf,
                b'\n' => return Err(Error::BareLineFeed),
                _ if is_tchar(b) => TrailerName,
                _ => return Err(Error::InvalidTrailer),
            },
            TrailerName => match b {
                b':' => TrailerValue,
                _ if is_tchar(b) => TrailerName,
                b'\n' => return Err(Error::BareLineFeed),
                _ => return Err(Error::InvalidTrailer),
            },
            TrailerValue => match b {
                b'\r' => TrailerLf,
                b'\n' => return Err(Error::BareLineFeed),
                _ if is_field_value_byte(b) => TrailerValue,
                _ => return Err(Error::InvalidTrailer),
            },
            TrailerLf | EndLf if b != b'\n' => return Err(Error::BareCarriageReturn),
            TrailerLf => TrailerStart,
            EndLf => Done,
            // `decode` handles these without calling here.
            Data | Done => state,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_comes_back_as_ranges_of_the_input() {
        let mut d = ChunkedDecoder::new(&Limits::default());
        let input = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let s = d.decode(input).unwrap();
        assert_eq!((s.consumed, s.data, s.done), (6, 3..6, false));
        let s = d.decode(&input[6..]).unwrap();
        assert_eq!((s.consumed, s.data, s.done), (7, 5..7, false));
        let s = d.decode(&input[13..]).unwrap();
        assert_eq!((s.consumed, s.data.is_empty(), s.done), (7, true, true));
        assert_eq!(d.body_len(), 5);
        assert!(d.is_done());
    }

    #[test]
    fn a_chunk_split_across_calls_is_handed_out_in_parts() {
        let mut d = ChunkedDecoder::new(&Limits::default());
        let s = d.decode(b"a\r\n0123").unwrap();
        assert_eq!((s.consumed, s.data), (7, 3..7));
        let s = d.decode(b"456789\r\n0").unwrap();
        assert_eq!((s.consumed, s.data), (6, 0..6));
        assert_eq!(d.state, State::DataCr);
        let s = d.decode(b"\r\n0").unwrap();
        assert_eq!((s.consumed, s.done), (3, false));
        assert_eq!(d.state, State::Size);
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = ChunkedDecoder::new(&Limits::default());
        assert_eq!(d.decode(b"x"), Err(Error::InvalidChunkSize));
        assert_eq!(d.decode(b"0\r\n\r\n"), Err(Error::InvalidChunkSize));
        assert!(!d.is_done());
    }

    #[test]
    fn extension_bytes_are_counted_from_the_first_byte_after_the_digits() {
        let limits = Limits {
            max_chunk_extension_size: 3,
            ..Limits::DEFAULT
        };
        let mut d = ChunkedDecoder::new(&limits);
        assert!(d.decode(b"1 ;a\r\n").is_ok());
        let mut d = ChunkedDecoder::new(&limits);
        assert_eq!(d.decode(b"1 ;ab"), Err(Error::ChunkExtensionTooLong));
    }

    #[test]
    fn sizes_at_the_edges() {
        let limits = Limits {
            max_body_size: u64::MAX,
            ..Limits::DEFAULT
        };
        let mut d = ChunkedDecoder::new(&limits);
        let s = d.decode(b"7fffffffffffffff\r\nab").unwrap();
        assert_eq!(s.data, 18..20);
        assert_eq!(d.remaining, MAX_CHUNK_SIZE - 2);
        assert_eq!(hex_value(b'F'), Some(15));
        assert_eq!(hex_value(b'g'), None);
    }
}
