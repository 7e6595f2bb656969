//! Applying the 4-byte masking key (RFC 6455 §5.3).
//!
//! Masking is its own inverse: the same call masks and unmasks. The key
//! offset lets a payload be processed in any number of chunks: pass the
//! number of payload bytes already processed.

/// XORs `buf` with `key`, starting at position `offset` of the key cycle
/// (the count of payload bytes before `buf`).
///
/// ```
/// use wsmachine::mask::apply_mask;
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut data = *b"Hello";
/// apply_mask(&mut data, key, 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// // In two chunks, carrying the offset:
/// let (a, b) = data.split_at_mut(3);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 3);
/// assert_eq!(&data, b"Hello");
/// ```
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let word = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = buf.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for lane in chunk.chunks_exact_mut(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(lane);
            lane.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
        }
    }
    // Each 32-byte chunk is a whole number of key cycles, so the tail starts
    // at key position 0 again.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Copies `src` into `dst` masked with `key` (starting at key position 0) in
/// one pass. `dst` and `src` must have the same length; extra bytes of the
/// longer one are left alone.
pub fn mask_copy(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    let word = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (dl, sl) in (&mut d).zip(&mut s) {
        let mut w = [0u8; 8];
        w.copy_from_slice(sl);
        dl.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    for (i, (db, sb)) in d.into_remainder().iter_mut().zip(s.remainder()).enumerate() {
        *db = sb ^ key[i & 3];
    }
}

fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let o = offset & 3;
    [key[o], key[(o + 1) & 3], key[(o + 2) & 3], key[(o + 3) & 3]]
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    // RFC 6455 §5.3: octet i of the payload is XORed with octet i MOD 4 of the key.
    #[test]
    fn matches_the_rfc_definition_at_every_length_and_offset() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        for len in 0..100 {
            for offset in 0..8 {
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut a = src.clone();
                let mut b = src.clone();
                apply_mask(&mut a, key, offset);
                naive(&mut b, key, offset);
                assert_eq!(a, b, "len {len} offset {offset}");
            }
            let src: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let mut dst = vec![0u8; len];
            mask_copy(&mut dst, &src, key);
            let mut b = src.clone();
            naive(&mut b, key, 0);
            assert_eq!(dst, b);
        }
    }

    #[test]
    fn unaligned_chunks_carry_the_offset() {
        let key = [1, 2, 3, 4];
        let src: Vec<u8> = (0..=255).collect();
        let mut whole = src.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = src.clone();
        let mut pos = 0;
        for size in [1, 3, 5, 33, 7, 64, 2] {
            let end = (pos + size).min(pieces.len());
            apply_mask(&mut pieces[pos..end], key, pos);
            pos = end;
        }
        apply_mask(&mut pieces[pos..], key, pos);
        assert_eq!(whole, pieces);
    }
}
