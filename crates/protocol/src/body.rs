//! Request body framing: the [`Decoded`] step both decoders return, the
//! Content-Length tracker [`LengthDecoder`], and [`BodyDecoder`], which picks
//! one of them from a head's [`BodyFraming`].

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::snapshot::{check, ImportError};
use crate::{BodyFraming, ChunkedDecoder, ChunkedState, Error, Limits};

/// One step of a body decoder over an input slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes used by this step (framing and data). Continue with
    /// `&input[consumed..]`.
    pub consumed: usize,
    /// Body data in this step, as a range of the input slice (empty when
    /// the step only consumed framing). Always ends at or before `consumed`.
    pub data: Range<usize>,
    /// The body is complete; bytes after `consumed` belong to the next
    /// request.
    pub done: bool,
}

impl Decoded {
    /// The data of this step: `&input[self.data]`, where `input` is the
    /// slice given to the `decode` call that returned it.
    pub fn data<'a>(&self, input: &'a [u8]) -> &'a [u8] {
        &input[self.data.clone()]
    }
}

/// Tracks a `Content-Length` body: how many bytes are still to come.
///
/// ```
/// let mut body = protocol::LengthDecoder::new(5);
/// let step = body.decode(b"abc");
/// assert_eq!((step.consumed, step.done), (3, false));
/// let step = body.decode(b"deGET / ...");
/// assert_eq!((step.data, step.done), (0..2, true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthDecoder {
    remaining: u64,
    len: u64,
}

impl LengthDecoder {
    /// A body of exactly `len` bytes.
    pub const fn new(len: u64) -> Self {
        LengthDecoder {
            remaining: len,
            len,
        }
    }

    /// Takes as many bytes of `input` as the body still needs.
    pub fn decode(&mut self, input: &[u8]) -> Decoded {
        let n = self.remaining.min(input.len() as u64);
        self.remaining -= n;
        let n = n as usize;
        Decoded {
            consumed: n,
            data: 0..n,
            done: self.remaining == 0,
        }
    }

    /// The decoder's state, to continue elsewhere with
    /// [`import`](Self::import).
    pub const fn export(&self) -> LengthState {
        LengthState {
            remaining: self.remaining,
            len: self.len,
        }
    }

    /// A decoder that continues where the one that exported `state`
    /// stopped. Refuses more bytes remaining than the body has, and a body
    /// longer than [`Limits::max_body_size`].
    pub fn import(state: LengthState, limits: &Limits) -> Result<Self, ImportError> {
        check(
            state.len <= limits.max_body_size,
            "LengthState.len",
            "exceeds max_body_size",
        )?;
        check(
            state.remaining <= state.len,
            "LengthState.remaining",
            "larger than len",
        )?;
        Ok(LengthDecoder {
            remaining: state.remaining,
            len: state.len,
        })
    }

    /// Bytes still to come.
    pub const fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Whether every byte has arrived.
    pub const fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Body bytes handed out so far.
    pub const fn body_len(&self) -> u64 {
        self.len - self.remaining
    }
}

/// A [`LengthDecoder`]'s state as plain data: see
/// [`LengthDecoder::export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LengthState {
    /// Body bytes still to come.
    pub remaining: u64,
    /// The body's length (Content-Length, or 0 for no body).
    pub len: u64,
}

/// A [`BodyDecoder`]'s state as plain data: see [`BodyDecoder::export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyState {
    /// A `Content-Length` body (or none).
    Length(LengthState),
    /// A chunked body.
    Chunked(ChunkedState),
}

/// Either body decoder, chosen from a head's [`BodyFraming`]; a request
/// without a body gets a zero-length decoder that is done at once.
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    /// `Content-Length` (or no body: length 0).
    Length(LengthDecoder),
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkedDecoder),
}

impl BodyDecoder {
    /// The decoder for `framing`. The Content-Length was already checked
    /// against `limits` by [`crate::parse_request`]; the chunked decoder
    /// checks its running total.
    pub fn new(framing: BodyFraming, limits: &Limits) -> Self {
        match framing {
            BodyFraming::None => BodyDecoder::Length(LengthDecoder::new(0)),
            BodyFraming::ContentLength(n) => BodyDecoder::Length(LengthDecoder::new(n)),
            BodyFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new(limits)),
        }
    }

    /// One step over `input`; see [`ChunkedDecoder::decode`].
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, Error> {
        match self {
            BodyDecoder::Length(d) => Ok(d.decode(input)),
            BodyDecoder::Chunked(d) => d.decode(input),
        }
    }

    /// The decoder's state, to continue elsewhere with
    /// [`import`](Self::import). The limits are not part of it.
    pub fn export(&self) -> BodyState {
        match self {
            BodyDecoder::Length(d) => BodyState::Length(d.export()),
            BodyDecoder::Chunked(d) => BodyState::Chunked(d.export()),
        }
    }

    /// A decoder that continues where the one that exported `state`
    /// stopped, bounded by `limits`; see [`LengthDecoder::import`] and
    /// [`ChunkedDecoder::import`] for what is refused.
    pub fn import(state: BodyState, limits: &Limits) -> Result<Self, ImportError> {
        Ok(match state {
            BodyState::Length(s) => BodyDecoder::Length(LengthDecoder::import(s, limits)?),
            BodyState::Chunked(s) => BodyDecoder::Chunked(ChunkedDecoder::import(s, limits)?),
        })
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Length(d) => d.is_done(),
            BodyDecoder::Chunked(d) => d.is_done(),
        }
    }

    /// Body bytes handed out so far.
    pub fn body_len(&self) -> u64 {
        match self {
            BodyDecoder::Length(d) => d.body_len(),
            BodyDecoder::Chunked(d) => d.body_len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_decoder_counts_down() {
        let mut d = LengthDecoder::new(4);
        assert_eq!(
            d.decode(b""),
            Decoded {
                consumed: 0,
                data: 0..0,
                done: false
            }
        );
        assert_eq!(
            d.decode(b"ab"),
            Decoded {
                consumed: 2,
                data: 0..2,
                done: false
            }
        );
        assert_eq!((d.remaining(), d.body_len()), (2, 2));
        assert_eq!(
            d.decode(b"cdef"),
            Decoded {
                consumed: 2,
                data: 0..2,
                done: true
            }
        );
        assert!(d.is_done());
        assert_eq!(
            d.decode(b"x"),
            Decoded {
                consumed: 0,
                data: 0..0,
                done: true
            }
        );
    }

    #[test]
    fn body_decoder_picks_by_framing() {
        let limits = Limits::default();
        let mut none = BodyDecoder::new(BodyFraming::None, &limits);
        assert!(none.is_done());
        assert_eq!(none.decode(b"GET").unwrap().consumed, 0);

        let mut cl = BodyDecoder::new(BodyFraming::ContentLength(2), &limits);
        let s = cl.decode(b"hiGET").unwrap();
        assert_eq!((s.data(b"hiGET"), s.done), (&b"hi"[..], true));
        assert_eq!(cl.body_len(), 2);

        let mut ch = BodyDecoder::new(BodyFraming::Chunked, &limits);
        let s = ch.decode(b"2\r\nhi\r\n0\r\n\r\n").unwrap();
        assert_eq!(s.data, 3..5);
        assert!(!ch.is_done());
        assert_eq!(ch.decode(b"x"), Err(Error::InvalidChunkDelimiter));
    }
}
