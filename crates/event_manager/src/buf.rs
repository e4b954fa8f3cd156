//! Owned write buffers.
//!
//! A write takes its buffer by value and gives it back in its completion
//! (the notes' rule: the layer above frees or reuses it there). While the
//! operation is in flight the buffer lives inside the operation's slot; the
//! bytes it points at are heap (or static) memory, so moving the [`OutBuf`]
//! value itself never moves what the kernel reads.

use bytes::Bytes;

/// A buffer handed to a write. Every variant keeps its bytes at a stable
/// address for as long as the value exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutBuf {
    /// An owned vector; comes back in the completion for reuse.
    Vec(Vec<u8>),
    /// A reference-counted buffer (e.g. one broadcast frame shared by many
    /// writes); the bytes are released when the last clone is dropped.
    Bytes(Bytes),
    /// Static bytes (precomputed replies).
    Static(&'static [u8]),
}

impl OutBuf {
    /// The bytes to write.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            OutBuf::Vec(v) => v,
            OutBuf::Bytes(b) => b,
            OutBuf::Static(s) => s,
        }
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }
    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The owned vector back, if this is one.
    pub fn into_vec(self) -> Option<Vec<u8>> {
        match self {
            OutBuf::Vec(v) => Some(v),
            _ => None,
        }
    }
}

impl From<Vec<u8>> for OutBuf {
    fn from(v: Vec<u8>) -> Self {
        OutBuf::Vec(v)
    }
}
impl From<String> for OutBuf {
    fn from(s: String) -> Self {
        OutBuf::Vec(s.into_bytes())
    }
}
impl From<Bytes> for OutBuf {
    fn from(b: Bytes) -> Self {
        OutBuf::Bytes(b)
    }
}
impl From<&'static [u8]> for OutBuf {
    fn from(s: &'static [u8]) -> Self {
        OutBuf::Static(s)
    }
}
impl From<&'static str> for OutBuf {
    fn from(s: &'static str) -> Self {
        OutBuf::Static(s.as_bytes())
    }
}
impl<const N: usize> From<&'static [u8; N]> for OutBuf {
    fn from(s: &'static [u8; N]) -> Self {
        OutBuf::Static(s)
    }
}
