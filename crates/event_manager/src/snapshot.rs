//! The envelope every ringtail snapshot travels in, and its errors.
//!
//! A snapshot is `magic (4 bytes) · format version (u16, little endian) ·
//! body`, the body being plain-data types encoded with
//! [postcard](https://docs.rs/postcard) (a stable, compact serde format).
//! Each layer has its own magic and version.
//!
//! **Compatibility rule.** A reader reads its own format version and the
//! one before it (converting the older one); a version newer than it knows
//! is refused with [`SnapshotError::UnsupportedVersion`], never guessed at.
//! A change that only appends information bumps the version too: postcard
//! has no field names, so an old reader could not skip what it does not
//! know.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a snapshot could not be written, read or imported.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes do not start with the expected magic: not a snapshot of
    /// this layer.
    BadMagic {
        /// The magic the reader expected.
        expected: [u8; 4],
    },
    /// A format version this reader does not know (written by a newer
    /// ringtail, or one too old to convert).
    UnsupportedVersion {
        /// The snapshot's version.
        found: u16,
        /// The oldest version this reader converts.
        oldest: u16,
        /// The newest version this reader knows.
        newest: u16,
    },
    /// The body is not a well-formed encoding (truncated, trailing bytes,
    /// a value out of range for its type).
    Malformed(String),
    /// Well-formed, but inconsistent (a reference to a slot that does not
    /// exist, a duplicate, a count that does not add up, a value past a
    /// limit): says which.
    Invalid(String),
    /// The descriptors handed over do not match the snapshot.
    Descriptors(String),
    /// The new layer could not be set up (e.g. the ring), with its errno.
    Setup(crate::Error),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::BadMagic { expected } => write!(
                f,
                "not a snapshot of this kind (expected magic {:?})",
                String::from_utf8_lossy(expected)
            ),
            SnapshotError::UnsupportedVersion {
                found,
                oldest,
                newest,
            } => write!(
                f,
                "snapshot format version {found} is not supported (this build reads {oldest}..={newest})"
            ),
            SnapshotError::Malformed(m) => write!(f, "malformed snapshot: {m}"),
            SnapshotError::Invalid(m) => write!(f, "invalid snapshot: {m}"),
            SnapshotError::Descriptors(m) => write!(f, "descriptors do not match the snapshot: {m}"),
            SnapshotError::Setup(e) => write!(f, "cannot set up the importing layer: {e}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// Writes `body` in the envelope.
pub fn write<T: Serialize>(magic: [u8; 4], version: u16, body: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    // Plain-data types (integers, bools, enums, sequences, byte strings)
    // always encode; postcard fails only for serde features it lacks
    // (`deserialize_any`-style types), which no snapshot type uses.
    postcard::to_io(body, &mut out).expect("snapshot types encode with postcard");
    out
}

/// Reads the envelope: checks the magic and returns the version and the
/// body, if the version is within `oldest..=newest`.
pub fn open(
    bytes: &[u8],
    magic: [u8; 4],
    oldest: u16,
    newest: u16,
) -> Result<(u16, &[u8]), SnapshotError> {
    if bytes.len() < 6 || bytes[..4] != magic {
        return Err(SnapshotError::BadMagic { expected: magic });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version < oldest || version > newest {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            oldest,
            newest,
        });
    }
    Ok((version, &bytes[6..]))
}

/// Decodes a whole body (every byte must be used).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, SnapshotError> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(SnapshotError::Malformed(format!(
            "{} bytes after the end",
            rest.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Body {
        a: u32,
        b: Vec<u8>,
    }

    #[test]
    fn round_trip_and_refusals() {
        let body = Body {
            a: 7,
            b: vec![1, 2, 3],
        };
        let bytes = write(*b"TEST", 3, &body);
        let (v, rest) = open(&bytes, *b"TEST", 2, 3).unwrap();
        assert_eq!(v, 3);
        assert_eq!(decode::<Body>(rest).unwrap(), body);
        assert_eq!(
            open(&bytes, *b"NOPE", 2, 3),
            Err(SnapshotError::BadMagic { expected: *b"NOPE" })
        );
        assert_eq!(
            open(&bytes, *b"TEST", 1, 2),
            Err(SnapshotError::UnsupportedVersion {
                found: 3,
                oldest: 1,
                newest: 2
            })
        );
        assert!(matches!(
            decode::<Body>(&rest[..rest.len() - 1]),
            Err(SnapshotError::Malformed(_))
        ));
        let mut longer = rest.to_vec();
        longer.push(0);
        assert!(matches!(
            decode::<Body>(&longer),
            Err(SnapshotError::Malformed(_))
        ));
        assert!(matches!(
            open(&[], *b"TEST", 1, 3),
            Err(SnapshotError::BadMagic { .. })
        ));
    }
}
