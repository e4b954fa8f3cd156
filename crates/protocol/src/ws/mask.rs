//! Payload masking (RFC 6455 §5.3): byte `i` of a client frame's payload is
//! XORed with byte `i % 4` of the frame's masking key. [`apply_mask`] does
//! it in place, 32 bytes per step as four `u64` words (which the compiler
//! turns into vector instructions), with no `unsafe`;
//! [`apply_mask_reference`] is the byte-at-a-time definition it is tested and
//! benchmarked against (`benches/ws_unmask.rs`).
//!
//! Both take the offset of `buf` within the frame's payload, so a payload
//! that arrives in several pieces is unmasked piece by piece with the key
//! continuing where the previous piece stopped.

/// XORs `buf` in place with the masking `key`, where `buf` starts at byte
/// `offset` of the frame's payload. Masking is its own inverse: the same
/// call masks and unmasks.
///
/// ```
/// use protocol::ws::apply_mask;
///
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut payload = *b"\x7f\x9f\x4d\x51\x58"; // RFC 6455 §5.7: masked "Hello"
/// let (a, b) = payload.split_at_mut(2);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 2); // the next piece continues the key
/// assert_eq!(&payload, b"Hello");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for lane in block.chunks_exact_mut(8) {
            let v = u64::from_ne_bytes([
                lane[0], lane[1], lane[2], lane[3], lane[4], lane[5], lane[6], lane[7],
            ]) ^ word;
            lane.copy_from_slice(&v.to_ne_bytes());
        }
    }
    // Every block is a multiple of 4 bytes long, so the tail starts at key
    // byte 0 again.
    let mut words = blocks.into_remainder().chunks_exact_mut(8);
    for lane in &mut words {
        let v = u64::from_ne_bytes([
            lane[0], lane[1], lane[2], lane[3], lane[4], lane[5], lane[6], lane[7],
        ]) ^ word;
        lane.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// The definition of masking, one byte at a time: the reference that
/// [`apply_mask`] is tested and benchmarked against. Same arguments and
/// result.
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_at_every_length_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            for offset in 0..8 {
                let mut fast = data[..len].to_vec();
                let mut slow = fast.clone();
                apply_mask(&mut fast, key, offset);
                apply_mask_reference(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn pieces_continue_the_key() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for cut in 0..data.len() {
            let mut split = data.clone();
            let (a, b) = split.split_at_mut(cut);
            apply_mask(a, key, 0);
            apply_mask(b, key, cut);
            assert_eq!(split, whole, "cut at {cut}");
        }
        apply_mask(&mut whole, key, 0);
        assert_eq!(whole, data);
    }
}
