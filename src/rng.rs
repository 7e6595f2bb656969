//! Randomness for masking keys and handshake keys (RFC 6455 §10.3, §4.1).
//!
//! Both must be unpredictable. The core has no hidden global generator: a
//! client connection owns a [`RandomSource`]. Every cryptographically secure
//! generator of [`rand_core`] 0.10 (the traits of `rand` 0.10) is one, so
//! [`Connection::client_with_rng`](crate::Connection::client_with_rng) takes
//! the generator an application already has. This crate's own
//! [`ChaCha20Rng`] is RustCrypto's `chacha20` generator: with the `std`
//! feature, [`ChaCha20Rng::from_os`] seeds one from the operating system;
//! tests and fuzzers seed it themselves with [`ChaCha20Rng::from_seed`].

use core::fmt;

/// The `rand_core` release whose traits [`RandomSource`] accepts (0.10), so an
/// application can name the same version: `wsmachine::rng::rand_core`.
pub use rand_core;
use rand_core::{CryptoRng, Infallible, SeedableRng, TryCryptoRng, TryRng};

/// A source of unpredictable bytes.
///
/// Every [`rand_core::CryptoRng`] (0.10) that is [`Send`] is a
/// `RandomSource`: `rand::rngs::StdRng`, `chacha20::ChaCha20Rng`,
/// `rand_core::UnwrapErr(getrandom::SysRng)`, this crate's [`ChaCha20Rng`], or
/// `&mut` / [`Box`](alloc::boxed::Box) of one. (In `rand_core` 0.10 `RngCore`
/// was renamed `Rng`, and `CryptoRng` implies it.)
///
/// ```
/// use wsmachine::rng::rand_core::SeedableRng;
/// use wsmachine::{ClientRequest, Config, Connection};
///
/// // Any rand_core 0.10 CSPRNG, here RustCrypto's ChaCha12.
/// let rng = chacha20::ChaCha12Rng::from_seed([7; 32]);
/// let request = ClientRequest::new("example.com", 80, "/chat");
/// let client = Connection::client_with_rng(request, Config::default(), rng).unwrap();
/// # let _ = client;
/// ```
///
/// A source that is not a `rand_core` generator (for example a hardware
/// random number generator with a driver of its own) implements this trait
/// directly:
///
/// ```
/// use wsmachine::rng::RandomSource;
///
/// struct Trng; // stands for a chip's true random number generator
///
/// impl RandomSource for Trng {
///     fn fill_bytes(&mut self, dest: &mut [u8]) {
///         dest.fill(4); // read the peripheral here
///     }
/// }
/// ```
pub trait RandomSource: Send {
    /// Fills `dest` with random bytes.
    fn fill_bytes(&mut self, dest: &mut [u8]);
}

impl<R: CryptoRng + Send> RandomSource for R {
    #[inline]
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::Rng::fill_bytes(self, dest);
    }
}

/// A ChaCha20 (20 rounds, RFC 8439) generator used as a CSPRNG: RustCrypto's
/// `chacha20::ChaCha20Rng`, with inherent constructors.
///
/// It implements [`rand_core`]'s [`CryptoRng`] (and [`SeedableRng`]), hence
/// [`RandomSource`]. Its stream is the ChaCha20 keystream of the seed as key,
/// from block 0 with a zero nonce.
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
pub struct ChaCha20Rng(chacha20::ChaCha20Rng);

impl fmt::Debug for ChaCha20Rng {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChaCha20Rng { .. }")
    }
}

impl ChaCha20Rng {
    /// A generator whose whole output is determined by `seed`.
    ///
    /// The same as [`SeedableRng::from_seed`], without the trait in scope.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        ChaCha20Rng(chacha20::ChaCha20Rng::from_seed(seed))
    }

    /// A generator seeded from the operating system's random source
    /// (`getrandom`).
    ///
    /// # Errors
    ///
    /// [`OsRngError`] if the operating system cannot provide randomness;
    /// then no unpredictable key can be made.
    #[cfg(feature = "std")]
    pub fn from_os() -> Result<Self, OsRngError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(OsRngError)?;
        Ok(Self::from_seed(seed))
    }
}

impl SeedableRng for ChaCha20Rng {
    type Seed = [u8; 32];

    fn from_seed(seed: [u8; 32]) -> Self {
        ChaCha20Rng::from_seed(seed)
    }
}

impl TryRng for ChaCha20Rng {
    type Error = Infallible;

    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.0.try_next_u32()
    }

    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0.try_next_u64()
    }

    #[inline]
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Infallible> {
        self.0.try_fill_bytes(dest)
    }
}

impl TryCryptoRng for ChaCha20Rng {}

/// The operating system's random source failed ([`ChaCha20Rng::from_os`]).
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsRngError(getrandom::Error);

#[cfg(feature = "std")]
impl fmt::Display for OsRngError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the operating system's random source failed: {}", self.0)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for OsRngError {}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{boxed::Box, format, string::String, string::ToString, vec, vec::Vec};

    // RFC 8439 Appendix A.1, test vector #1: the ChaCha20 block function
    // with an all-zero key, counter 0 and an all-zero nonce. A zero seed
    // must give exactly that keystream: 20 rounds (not ChaCha12 or 8), the
    // seed used as the key, the stream starting at block 0.
    #[test]
    fn zero_seed_is_the_rfc8439_chacha20_keystream() {
        let mut r = ChaCha20Rng::from_seed([0; 32]);
        let mut block = [0u8; 64];
        RandomSource::fill_bytes(&mut r, &mut block);
        let expected_start = [
            0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86, 0xbd, 0x28,
        ];
        let expected_end = [
            0x6a, 0x43, 0xb8, 0xf4, 0x15, 0x18, 0xa1, 0x1c, 0xc3, 0x87, 0xb6, 0x69, 0xb2, 0xee, 0x65, 0x86,
        ];
        assert_eq!(block[..16], expected_start);
        assert_eq!(block[48..], expected_end);
    }

    // The blanket impl is wired to the generator's own `fill_bytes`: through
    // `RandomSource` (as the connection holds it, boxed) our generator and
    // the crate's, seeded alike, give the crate's stream, fill by fill.
    #[test]
    fn random_source_gives_the_crate_generators_stream() {
        let seed = [1; 32];
        let mut reference = chacha20::ChaCha20Rng::from_seed(seed);
        let mut ours: Box<dyn RandomSource> = Box::new(ChaCha20Rng::from_seed(seed));
        let mut theirs: Box<dyn RandomSource> = Box::new(chacha20::ChaCha20Rng::from_seed(seed));
        // A handshake nonce, masking keys, and fills crossing block ends.
        for n in [16usize, 4, 4, 64, 4, 200, 4] {
            let mut want = vec![0u8; n];
            rand_core::Rng::fill_bytes(&mut reference, &mut want);
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            ours.fill_bytes(&mut a);
            theirs.fill_bytes(&mut b);
            assert_eq!(a, want, "{n}-byte fill");
            assert_eq!(b, want, "{n}-byte fill");
        }
    }

    #[test]
    fn fills_do_not_repeat() {
        let mut r = ChaCha20Rng::from_seed([1; 32]);
        let mut seen: Vec<[u8; 4]> = Vec::new();
        // 100 masking keys, crossing several 64-byte blocks.
        for _ in 0..100 {
            let mut key = [0u8; 4];
            RandomSource::fill_bytes(&mut r, &mut key);
            assert!(!seen.contains(&key), "masking key {key:02x?} repeated");
            seen.push(key);
        }
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        RandomSource::fill_bytes(&mut r, &mut a);
        RandomSource::fill_bytes(&mut r, &mut b);
        assert_ne!(a, b);
        let mut other = ChaCha20Rng::from_seed([2; 32]);
        let mut c = [0u8; 64];
        RandomSource::fill_bytes(&mut other, &mut c);
        assert_ne!(a, c, "another seed, another stream");
    }

    #[cfg(feature = "std")]
    #[test]
    fn from_os_seeds_unpredictably() {
        let mut a = ChaCha20Rng::from_os().unwrap();
        let mut b = ChaCha20Rng::from_os().unwrap();
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        RandomSource::fill_bytes(&mut a, &mut x);
        RandomSource::fill_bytes(&mut b, &mut y);
        assert_ne!(x, y);
    }

    #[cfg(feature = "std")]
    #[test]
    fn os_rng_error_says_what_failed() {
        let e = OsRngError(getrandom::Error::UNSUPPORTED);
        let text = e.to_string();
        assert!(
            text.starts_with("the operating system's random source failed: "),
            "{text}"
        );
        let _: &dyn std::error::Error = &e;
        assert_eq!(e, e.clone());
    }
}
