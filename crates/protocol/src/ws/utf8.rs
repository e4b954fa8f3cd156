//! UTF-8 validation of text messages and close reasons (RFC 6455 §8.1):
//! [`validate_utf8`] for a complete buffer, and [`Utf8Validator`] for a
//! message that arrives in pieces — fragments, or parts of a frame — where a
//! code point may be split between two pieces.
//!
//! Both use `simdutf8` (SIMD where the CPU has it, checked at run time). The
//! incremental validator fails on the first piece that holds a byte which
//! cannot be part of valid UTF-8, without waiting for the message to end:
//! a truncated sequence at the end of a piece is kept (at most 3 bytes) only
//! while it can still be completed.

use serde::{Deserialize, Serialize};

use super::Error;
use crate::snapshot::{check, ImportError};

/// Checks that `bytes` is UTF-8, returning it as a `&str`.
///
/// ```
/// use protocol::ws::{validate_utf8, Error};
///
/// assert_eq!(validate_utf8("καλημέρα".as_bytes()), Ok("καλημέρα"));
/// assert_eq!(validate_utf8(b"\xed\xa0\x80"), Err(Error::InvalidUtf8)); // a surrogate
/// ```
pub fn validate_utf8(bytes: &[u8]) -> Result<&str, Error> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| Error::InvalidUtf8)
}

/// Validates UTF-8 that arrives in pieces.
///
/// [`feed`](Utf8Validator::feed) each piece in order, then
/// [`finish`](Utf8Validator::finish) at the end of the message. A code point
/// may be split anywhere between pieces; up to 3 bytes of an incomplete one
/// are carried over. `feed` fails as soon as a piece contains a byte that
/// cannot continue valid UTF-8 (Autobahn's "fail fast" cases 6.x), and
/// `finish` fails if the message ends inside a code point.
///
/// ```
/// use protocol::ws::{Error, Utf8Validator};
///
/// let mut v = Utf8Validator::new();
/// v.feed(b"\xce")?; // the first half of U+03BA
/// v.feed(b"\xba!")?;
/// v.finish()?;
///
/// // U+110000 and up cannot be completed: fails at once.
/// assert_eq!(v.feed(b"ok\xf4\x90"), Err(Error::InvalidUtf8));
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    /// The start of an incomplete code point from the previous piece.
    carry: [u8; 4],
    carry_len: u8,
}

/// A [`Utf8Validator`]'s state as plain data: see
/// [`Utf8Validator::export`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utf8State {
    /// The start of a code point that the last piece ended inside (0 to 3
    /// bytes, a proper prefix of a valid UTF-8 sequence).
    pub carry: Vec<u8>,
}

/// The length of the UTF-8 sequence that `lead` starts; `lead` is the first
/// byte of a valid prefix, so it is in 0xC2..=0xF4.
const fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        _ => 2,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Utf8Validator {
            carry: [0; 4],
            carry_len: 0,
        }
    }

    /// The validator's state, to continue elsewhere with
    /// [`import`](Self::import).
    pub fn export(&self) -> Utf8State {
        Utf8State {
            carry: self.carry[..usize::from(self.carry_len)].to_vec(),
        }
    }

    /// A validator that continues where the one that exported `state`
    /// stopped. Refuses a carry that is not a proper prefix of a valid
    /// UTF-8 sequence (too long, complete, or already invalid).
    pub fn import(state: Utf8State) -> Result<Self, ImportError> {
        let carry = state.carry;
        check(carry.len() <= 3, "Utf8State.carry", "longer than 3 bytes")?;
        if !carry.is_empty() {
            let incomplete = matches!(std::str::from_utf8(&carry), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none());
            check(
                incomplete,
                "Utf8State.carry",
                "not the start of a valid UTF-8 sequence",
            )?;
        }
        let mut v = Utf8Validator::new();
        v.carry[..carry.len()].copy_from_slice(&carry);
        v.carry_len = carry.len() as u8;
        Ok(v)
    }

    /// Validates the next piece of the message.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let take = (sequence_len(self.carry[0]) - have).min(bytes.len());
            self.carry[have..have + take].copy_from_slice(&bytes[..take]);
            let have = have + take;
            bytes = &bytes[take..];
            match std::str::from_utf8(&self.carry[..have]) {
                Ok(_) => self.carry_len = 0,
                // Still a valid prefix: the piece ended inside the code point.
                Err(e) if e.error_len().is_none() => {
                    self.carry_len = have as u8;
                    return Ok(());
                }
                Err(_) => return Err(Error::InvalidUtf8),
            }
        }
        if simdutf8::basic::from_utf8(bytes).is_ok() {
            return Ok(());
        }
        // Slow path, only on failure: find out whether the piece merely ends
        // inside a code point.
        match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &bytes[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(Error::InvalidUtf8),
        }
    }

    /// Ends the message: an error if it stopped inside a code point. The
    /// validator is ready for the next message either way.
    pub fn finish(&mut self) -> Result<(), Error> {
        let complete = self.carry_len == 0;
        self.carry_len = 0;
        if complete {
            Ok(())
        } else {
            Err(Error::InvalidUtf8)
        }
    }

    /// Whether everything fed so far ends on a code point boundary.
    pub const fn is_complete(&self) -> bool {
        self.carry_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The validator's verdict on `input` cut at the given points.
    fn pieces(input: &[u8], cuts: &[usize]) -> bool {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &c in cuts.iter().chain(Some(&input.len())) {
            if v.feed(&input[start..c]).is_err() {
                return false;
            }
            start = c;
        }
        v.finish().is_ok()
    }

    #[test]
    fn every_split_agrees_with_std() {
        let cases: &[&[u8]] = &[
            b"",
            b"hello",
            "\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}".as_bytes(),
            "κόσμε".as_bytes(),
            b"\xc0\x80",
            b"\xc1\xbf",
            b"\xc2",
            b"\xe0\x80\x80",
            b"\xe0\xa0",
            b"\xed\x9f\xbf",
            b"\xed\xa0\x80",
            b"\xef\xbf\xbf",
            b"\xf0\x8f\xbf\xbf",
            b"\xf0\x90\x80",
            b"\xf4\x8f\xbf\xbf",
            b"\xf4\x90\x80\x80",
            b"\xf5\x80\x80\x80",
            b"\xff",
            b"a\x80b",
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        ];
        for &input in cases {
            let expected = std::str::from_utf8(input).is_ok();
            for a in 0..=input.len() {
                for b in a..=input.len() {
                    assert_eq!(pieces(input, &[a, b]), expected, "{input:x?} at {a},{b}");
                }
            }
            let bytewise: Vec<usize> = (0..input.len()).collect();
            assert_eq!(pieces(input, &bytewise), expected, "{input:x?} bytewise");
        }
    }

    #[test]
    fn fails_on_the_piece_with_the_bad_byte() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"abc\xe0"), Ok(()));
        assert!(!v.is_complete());
        // 0xE0 must be followed by 0xA0..=0xBF.
        assert_eq!(v.feed(b"\x9f"), Err(Error::InvalidUtf8));

        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xf4"), Ok(()));
        assert_eq!(v.feed(b"\x8f"), Ok(()));
        assert_eq!(v.feed(b"\xbf"), Ok(()));
        assert_eq!(v.feed(b"\xbf"), Ok(()));
        assert!(v.is_complete());
        assert_eq!(v.feed(b"\xf4\x90"), Err(Error::InvalidUtf8));

        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"\xe2\x82"), Ok(()));
        assert_eq!(v.finish(), Err(Error::InvalidUtf8));
        assert_eq!(v.finish(), Ok(()));
    }
}
