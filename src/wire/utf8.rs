//! Incremental, fail-fast UTF-8 validation (RFC 6455 §8.1).
//!
//! Text arrives in fragments and in chunks of fragments; a character may be
//! split anywhere. [`Utf8Validator`] carries the incomplete tail of a
//! character between calls and reports an invalid sequence as soon as the
//! byte that makes it invalid has been fed.

use bytes::Bytes;
use core::fmt;

/// Text was not valid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

/// Validates a stream of UTF-8 in pieces.
///
/// ```
/// use wsmachine::internal::utf8::Utf8Validator;
/// let mut v = Utf8Validator::new();
/// let euro = "€".as_bytes(); // three bytes
/// assert!(v.feed(&euro[..1]).is_ok());
/// assert!(v.feed(&euro[1..]).is_ok());
/// assert!(v.finish().is_ok());
/// // 0xF4 0x90 can never start a valid character: rejected at once.
/// assert!(Utf8Validator::new().feed(&[0xF4, 0x90]).is_err());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a text.
    pub const fn new() -> Self {
        Utf8Validator {
            partial: [0; 4],
            len: 0,
        }
    }

    /// Validates the next bytes. Fails as soon as they cannot be part of
    /// valid UTF-8, whatever follows.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.len > 0 {
            let have = usize::from(self.len);
            let need = char_width(self.partial[0]).saturating_sub(have);
            let take = need.min(data.len());
            self.partial[have..have + take].copy_from_slice(&data[..take]);
            let now = have + take;
            data = &data[take..];
            match core::str::from_utf8(&self.partial[..now]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix; `data` is empty here.
                    self.len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        // The bulk up to a possibly cut character gets simdutf8's fastest
        // (pass/fail) SIMD check; the cut character, at most 3 bytes, must be
        // a valid beginning of one (fail fast) and is kept for the next call.
        let (body, tail) = data.split_at(incomplete_tail_start(data));
        if simdutf8::basic::from_utf8(body).is_err() {
            return Err(InvalidUtf8);
        }
        if tail.is_empty() {
            return Ok(());
        }
        match core::str::from_utf8(tail) {
            Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => {
                self.partial[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                Ok(())
            }
            // `tail` is shorter than its lead byte says, so it cannot be complete.
            _ => Err(InvalidUtf8),
        }
    }

    /// Whether the bytes fed so far end on a character boundary.
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }

    /// Ends the text: fails if it stopped inside a character.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.is_complete();
        *self = Self::new();
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }
}

/// Where a character cut by the end of `data` starts (`data.len()` when the
/// last character is complete, or when the end is invalid anyway, which the
/// full check then reports).
fn incomplete_tail_start(data: &[u8]) -> usize {
    let n = data.len();
    for back in 1..=n.min(3) {
        let b = data[n - back];
        if b & 0xC0 != 0x80 {
            // Not a continuation byte: ASCII or the lead of the last character.
            let width = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xFF => 4,
                _ => 1,
            };
            return if width > back { n - back } else { n };
        }
    }
    n
}

/// The width of a character from its (valid) first byte.
fn char_width(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// A `Bytes` buffer known to hold valid UTF-8: the payload of a text message.
///
/// It derefs to `str`, validated once when it was made (as the message
/// arrived), so reading it costs nothing more:
///
/// ```
/// use wsmachine::Utf8Bytes;
/// let text = Utf8Bytes::from("hello");
/// assert!(text.starts_with("he")); // a `str` method, through `Deref`
/// assert_eq!(format!("{text}"), "hello");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Wraps `bytes` after checking that they are valid UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, InvalidUtf8> {
        match simdutf8::basic::from_utf8(&bytes) {
            Ok(_) => Ok(Utf8Bytes(bytes)),
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Wraps bytes the crate has already validated as UTF-8 (every caller
    /// ran them through [`Utf8Validator`] or `simdutf8` to the end of the
    /// message). Debug builds check it again.
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        debug_assert!(core::str::from_utf8(&bytes).is_ok(), "text not validated");
        Utf8Bytes(bytes)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        str_of_validated(&self.0)
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Gives up the UTF-8 guarantee and returns the bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// The one unchecked conversion of the crate: `bytes` of a [`Utf8Bytes`].
#[allow(unsafe_code)]
fn str_of_validated(bytes: &[u8]) -> &str {
    // SAFETY: a `Utf8Bytes` is only made from bytes that were validated as
    // UTF-8 (`try_from_bytes`, `From<&str>`, `From<String>`, and
    // `from_validated`, whose callers validated the whole message), and its
    // bytes are never mutated afterwards (`Bytes` is immutable).
    unsafe { core::str::from_utf8_unchecked(bytes) }
}

impl core::ops::Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Utf8Bytes {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for Utf8Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(text: Utf8Bytes) -> Bytes {
        text.0
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = InvalidUtf8;
    fn try_from(bytes: Bytes) -> Result<Self, InvalidUtf8> {
        Utf8Bytes::try_from_bytes(bytes)
    }
}

impl From<&str> for Utf8Bytes {
    fn from(s: &str) -> Self {
        Utf8Bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<alloc::string::String> for Utf8Bytes {
    fn from(s: alloc::string::String) -> Self {
        Utf8Bytes(Bytes::from(s.into_bytes()))
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    fn split_everywhere(bytes: &[u8]) -> Vec<Result<(), InvalidUtf8>> {
        (0..=bytes.len())
            .map(|i| {
                let mut v = Utf8Validator::new();
                v.feed(&bytes[..i])?;
                v.feed(&bytes[i..])?;
                v.finish()
            })
            .collect()
    }

    // RFC 6455 §8.1: text is UTF-8; a character may be split across fragments.
    #[test]
    fn valid_text_split_anywhere() {
        let text = "κόσμε ascii €𝄞 \u{10FFFF}".as_bytes();
        assert!(split_everywhere(text).iter().all(|r| r.is_ok()));
        // One byte at a time.
        let mut v = Utf8Validator::new();
        for b in text {
            v.feed(core::slice::from_ref(b)).unwrap();
        }
        v.finish().unwrap();
    }

    #[test]
    fn invalid_text_rejected_wherever_split() {
        for bad in [
            &b"\xed\xa0\x80"[..],
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"ab\xffcd",
            b"\xce\xba\xe1",
        ] {
            assert!(split_everywhere(bad).iter().all(|r| r.is_err()), "{bad:?}");
        }
    }

    // Fail fast: the error is reported on the byte that makes the text invalid.
    #[test]
    fn fails_on_the_first_invalid_byte() {
        let mut v = Utf8Validator::new();
        v.feed("κόσμε".as_bytes()).unwrap();
        v.feed(&[0xce]).unwrap(); // valid prefix so far
        assert_eq!(v.feed(&[0x41]), Err(InvalidUtf8)); // continuation expected
        let mut v = Utf8Validator::new();
        v.feed(&[0xf4]).unwrap();
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8)); // above U+10FFFF
        let mut v = Utf8Validator::new();
        v.feed(&[0xed]).unwrap();
        assert_eq!(v.feed(&[0xa0]), Err(InvalidUtf8)); // surrogate
    }

    /// std's verdict on a prefix: valid so far (possibly cut inside a character).
    fn valid_so_far(bytes: &[u8]) -> bool {
        match core::str::from_utf8(bytes) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        }
    }

    // Fail fast, exactly: after any split of any input, each `feed` succeeds
    // if and only if everything fed so far is a valid beginning of UTF-8.
    #[test]
    fn agrees_with_std_on_every_prefix() {
        let alphabet: [&[u8]; 12] = [
            b"a",
            "é".as_bytes(),
            "€".as_bytes(),
            "𝄞".as_bytes(),
            &[0x80],
            &[0xC3],
            &[0xE2, 0x82],
            &[0xF0, 0x9F],
            &[0xED, 0xA0],
            &[0xF4, 0x90],
            &[0xFF],
            &[0xC0, 0xAF],
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut text = Vec::new();
            for _ in 0..(next() % 40) {
                let piece = alphabet[(next() % 12) as usize];
                // Invalid pieces are kept less often, so long valid runs are common too.
                if core::str::from_utf8(piece).is_ok() || next() % 3 == 0 {
                    text.extend_from_slice(piece);
                }
            }
            text.extend(core::iter::repeat_n(b'x', (next() % 70) as usize));
            let cut1 = (next() as usize) % (text.len() + 1);
            let cut2 = cut1 + (next() as usize) % (text.len() - cut1 + 1);
            let mut v = Utf8Validator::new();
            let mut ok = true;
            for (start, end) in [(0, cut1), (cut1, cut2), (cut2, text.len())] {
                if ok {
                    ok = v.feed(&text[start..end]).is_ok();
                    assert_eq!(ok, valid_so_far(&text[..end]), "{text:?} fed up to {end}");
                }
            }
            if ok {
                assert_eq!(v.finish().is_ok(), core::str::from_utf8(&text).is_ok(), "{text:?}");
            }
        }
    }

    #[test]
    fn incomplete_end_fails_finish() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xe2, 0x82]).unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    // The unchecked conversion (miri runs this): every way to make a
    // `Utf8Bytes` validates, and the `str` it derefs to is those bytes.
    #[test]
    fn utf8_bytes_deref_to_their_text() {
        let text = "κόσμε €𝄞";
        let made = [
            Utf8Bytes::from(text),
            Utf8Bytes::from(String::from(text)),
            Utf8Bytes::try_from_bytes(Bytes::from_static(text.as_bytes())).unwrap(),
            Utf8Bytes::from_validated(Bytes::copy_from_slice(text.as_bytes())),
        ];
        for t in &made {
            assert_eq!(&**t, text);
            assert_eq!(t.as_str().chars().count(), 8);
            assert_eq!(format!("{t}"), text);
        }
        assert_eq!(Utf8Bytes::try_from_bytes(Bytes::from_static(&[0xff])), Err(InvalidUtf8));
        // A slice of valid text cut inside a character is refused.
        assert!(Utf8Bytes::try_from_bytes(Bytes::copy_from_slice(&"€".as_bytes()[..2])).is_err());
    }
}
