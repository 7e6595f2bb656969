//! Randomness for masking keys and handshake keys (RFC 6455 §10.3, §4.1).
//!
//! Both must be unpredictable. The core has no hidden global generator: a
//! client connection owns a [`RandomSource`]. With the `std` feature,
//! [`ChaCha20Rng::from_os`] seeds one from the operating system; tests and
//! fuzzers seed it themselves with [`ChaCha20Rng::from_seed`].

/// A source of unpredictable bytes.
pub trait RandomSource: Send {
    /// Fills `dest` with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);
}

/// A ChaCha20 keystream generator (RFC 8439 block function) used as a CSPRNG.
///
/// ```
/// use wsmachine::rng::{ChaCha20Rng, RandomSource};
/// let mut a = ChaCha20Rng::from_seed([7; 32]);
/// let mut b = ChaCha20Rng::from_seed([7; 32]);
/// let (mut x, mut y) = ([0u8; 4], [0u8; 4]);
/// a.fill_bytes(&mut x);
/// b.fill_bytes(&mut y);
/// assert_eq!(x, y); // same seed, same stream: for tests and fuzzing only
/// ```
#[derive(Clone)]
pub struct ChaCha20Rng {
    key: [u32; 8],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

impl core::fmt::Debug for ChaCha20Rng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChaCha20Rng { .. }")
    }
}

impl ChaCha20Rng {
    /// A generator whose whole output is determined by `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut key = [0u32; 8];
        for (k, c) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        ChaCha20Rng {
            key,
            counter: 0,
            block: [0; 64],
            used: 64,
        }
    }

    /// A generator seeded from the operating system's random source.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide randomness at all (then no
    /// unpredictable key can be made and continuing would be unsound).
    #[cfg(feature = "std")]
    pub fn from_os() -> Self {
        let mut seed = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut seed) {
            panic!("the operating system's random source failed: {e}");
        }
        Self::from_seed(seed)
    }

    fn refill(&mut self) {
        self.block = chacha20_block(&self.key, self.counter, [0; 2]);
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl RandomSource for ChaCha20Rng {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let mut dest = dest;
        while !dest.is_empty() {
            if self.used == 64 {
                self.refill();
            }
            let n = dest.len().min(64 - self.used);
            dest[..n].copy_from_slice(&self.block[self.used..self.used + n]);
            // Never hand out the same keystream bytes twice.
            self.block[self.used..self.used + n].fill(0);
            self.used += n;
            dest = &mut dest[n..];
        }
    }
}

fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// The ChaCha20 block function (RFC 8439 §2.3) with a 64-bit counter in
/// words 12–13 and a 64-bit nonce in words 14–15.
fn chacha20_block(key: &[u32; 8], counter: u64, nonce: [u32; 2]) -> [u8; 64] {
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    init[4..12].copy_from_slice(key);
    init[12] = counter as u32;
    init[13] = (counter >> 32) as u32;
    init[14] = nonce[0];
    init[15] = nonce[1];
    let mut s = init;
    for _ in 0..10 {
        quarter(&mut s, 0, 4, 8, 12);
        quarter(&mut s, 1, 5, 9, 13);
        quarter(&mut s, 2, 6, 10, 14);
        quarter(&mut s, 3, 7, 11, 15);
        quarter(&mut s, 0, 5, 10, 15);
        quarter(&mut s, 1, 6, 11, 12);
        quarter(&mut s, 2, 7, 8, 13);
        quarter(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&s[i].wrapping_add(init[i]).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    // RFC 8439 §2.3.2 test vector. Its 96-bit nonce (0x09000000, 0x4a000000,
    // 0x00000000) with block counter 1 maps onto our 64-bit counter/nonce
    // split as counter = 1 | 0x09000000 << 32, nonce = [0x4a000000, 0].
    #[test]
    fn rfc8439_block_function() {
        let mut key = [0u32; 8];
        for (i, k) in key.iter_mut().enumerate() {
            let b = (i * 4) as u8;
            *k = u32::from_le_bytes([b, b + 1, b + 2, b + 3]);
        }
        let out = chacha20_block(&key, 1 | (0x0900_0000u64 << 32), [0x4a00_0000, 0]);
        let expected_start = [
            0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15, 0x50, 0x0f, 0xdd, 0x1f, 0xa3, 0x20, 0x71, 0xc4,
        ];
        let expected_end = [
            0xb5, 0x12, 0x9c, 0xd1, 0xde, 0x16, 0x4e, 0xb9, 0xcb, 0xd0, 0x83, 0xe8, 0xa2, 0x50, 0x3c, 0x4e,
        ];
        assert_eq!(out[..16], expected_start);
        assert_eq!(out[48..], expected_end);
    }

    #[test]
    fn stream_does_not_repeat_across_blocks() {
        let mut r = ChaCha20Rng::from_seed([1; 32]);
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        r.fill_bytes(&mut a[..10]);
        r.fill_bytes(&mut a[10..]);
        r.fill_bytes(&mut b);
        assert_ne!(a, b);
        let mut whole = ChaCha20Rng::from_seed([1; 32]);
        let mut c = [0u8; 64];
        whole.fill_bytes(&mut c);
        assert_eq!(a, c, "split fills give the same stream");
    }
}
