//! The wire format of a frame (RFC 6455 §5.2): opcodes, the header, a
//! streaming header decoder and an encoder.
//!
//! This layer knows nothing of messages, roles or state. Decoding answers
//! `Ok(None)` when more bytes are needed; it never panics and never reads past
//! the input.

/// The longest possible frame header: 2 bytes, 8 bytes of extended length and
/// a 4-byte masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame opcode (RFC 6455 §5.2). Reserved opcodes are not representable;
/// the decoder reports them as [`FrameError::ReservedOpcode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: a close frame.
    Close,
    /// 0x9: a ping.
    Ping,
    /// 0xA: a pong.
    Pong,
}

impl OpCode {
    /// The opcode for the 4-bit value `bits`, or `None` for a reserved value
    /// (0x3–0x7, 0xB–0xF).
    pub fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames are close, ping and pong (RFC 6455 §5.5).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// Why bytes could not be decoded as a frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The opcode is one of the reserved values (RFC 6455 §5.2).
    ReservedOpcode(u8),
    /// A 64-bit payload length had its most significant bit set (RFC 6455 §5.2).
    LengthTopBitSet,
}

/// A decoded frame header (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of a message.
    pub fin: bool,
    /// RSV1, owned by an extension (permessage-deflate uses it).
    pub rsv1: bool,
    /// RSV2, owned by an extension.
    pub rsv2: bool,
    /// RSV3, owned by an extension.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every frame a client sends.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes (at most 2^63 - 1).
    pub payload_len: u64,
}

impl FrameHeader {
    /// A header for a frame with no RSV bits.
    #[inline]
    pub fn new(fin: bool, opcode: OpCode, mask: Option<[u8; 4]>, payload_len: u64) -> Self {
        FrameHeader {
            fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len,
        }
    }

    /// The RSV bits as a mask (RSV1 = `0b100`, RSV2 = `0b010`, RSV3 =
    /// `0b001`), the form extensions claim them in.
    #[inline]
    pub fn rsv(&self) -> u8 {
        (u8::from(self.rsv1) << 2) | (u8::from(self.rsv2) << 1) | u8::from(self.rsv3)
    }

    /// Sets the RSV bits from a mask (see [`FrameHeader::rsv`]).
    #[inline]
    pub fn set_rsv(&mut self, rsv: u8) {
        self.rsv1 = rsv & 0b100 != 0;
        self.rsv2 = rsv & 0b010 != 0;
        self.rsv3 = rsv & 0b001 != 0;
    }

    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(Some((header, header_len)))` when the whole header is
    /// present, `Ok(None)` when more bytes are needed.
    ///
    /// ```
    /// use wsmachine::internal::frame::{FrameHeader, OpCode};
    /// let (h, n) = FrameHeader::decode(&[0x81, 0x05, b'h']).unwrap().unwrap();
    /// assert_eq!((h.opcode, h.fin, h.payload_len, n), (OpCode::Text, true, 5, 2));
    /// assert_eq!(FrameHeader::decode(&[0x81]), Ok(None));
    /// ```
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, FrameError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(FrameError::ReservedOpcode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut pos) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut arr = [0u8; 8];
                    arr.copy_from_slice(b);
                    let len = u64::from_be_bytes(arr);
                    // RFC 6455 §5.2: the most significant bit MUST be 0.
                    if len >> 63 != 0 {
                        return Err(FrameError::LengthTopBitSet);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            match buf.get(pos..pos + 4) {
                Some(k) => {
                    pos += 4;
                    Some([k[0], k[1], k[2], k[3]])
                }
                None => return Ok(None),
            }
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// The length of this header once encoded (minimal length form).
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes the header into `out`, using the minimal length form
    /// (RFC 6455 §5.2), and returns how many bytes were written.
    ///
    /// A `payload_len` above 2^63 - 1 is not representable; it is written
    /// with the top bit cleared, so callers must not pass one (the connection
    /// never does).
    #[inline]
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        let (word, len) = self.encode_word();
        out.copy_from_slice(&word.to_le_bytes()[..MAX_HEADER_LEN]);
        len
    }

    /// [`FrameHeader::encode`] into a value instead of memory: the header's
    /// bytes in order from the lowest byte of the word (its
    /// `to_le_bytes()`), and how many there are; the bytes above are 0.
    /// Built in registers, so that it can be stored with one wide store:
    /// bytes stored one at a time and then loaded as a word stall the load
    /// (no store-to-load forwarding), which showed in small sends.
    #[inline]
    pub fn encode_word(&self) -> (u128, usize) {
        let first = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode.bits();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let (second, length, len_bytes) = match self.payload_len {
            n @ 0..=125 => (mask_bit | n as u8, 0, 0),
            // RFC 6455 §5.2: extended lengths in network byte order.
            n @ 126..=0xFFFF => (mask_bit | 126, u128::from((n as u16).swap_bytes()), 2),
            n => (mask_bit | 127, u128::from((n & (u64::MAX >> 1)).swap_bytes()), 8),
        };
        let mut word = u128::from(first) | (u128::from(second) << 8) | (length << 16);
        let mut len = 2 + len_bytes;
        if let Some(key) = self.mask {
            word |= u128::from(u32::from_le_bytes(key)) << (8 * len);
            len += 4;
        }
        (word, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    fn roundtrip(h: FrameHeader) {
        let mut out = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut out);
        assert_eq!(n, h.encoded_len());
        assert_eq!(FrameHeader::decode(&out[..n]), Ok(Some((h, n))));
        // Every strict prefix needs more bytes.
        for i in 0..n {
            assert_eq!(FrameHeader::decode(&out[..i]), Ok(None), "prefix {i}");
        }
    }

    // RFC 6455 §5.2: 7-bit, 16-bit and 64-bit payload lengths, minimal form.
    #[test]
    fn length_forms_are_minimal() {
        for (len, hdr) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (1 << 40, 10)] {
            let h = FrameHeader::new(true, OpCode::Binary, None, len);
            assert_eq!(h.encoded_len(), hdr, "len {len}");
            roundtrip(h);
            roundtrip(FrameHeader::new(false, OpCode::Text, Some([1, 2, 3, 4]), len));
        }
    }

    // RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
    #[test]
    fn top_bit_of_64_bit_length_is_an_error() {
        let buf = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::decode(&buf), Err(FrameError::LengthTopBitSet));
        let max = [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        let (h, _) = FrameHeader::decode(&max).unwrap().unwrap();
        assert_eq!(h.payload_len, (1 << 63) - 1);
    }

    // RFC 6455 §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
    #[test]
    fn reserved_opcodes_are_errors() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0]),
                Err(FrameError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn rsv_bits_are_decoded() {
        let (h, _) = FrameHeader::decode(&[0xF1, 0]).unwrap().unwrap();
        assert!(h.rsv1 && h.rsv2 && h.rsv3 && h.fin);
        roundtrip(h);
    }

    // RFC 6455 §5.7: the examples of the RFC.
    #[test]
    fn rfc_examples() {
        let (h, n) = FrameHeader::decode(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.opcode, h.payload_len, h.mask, n),
            (OpCode::Text, 5, Some([0x37, 0xfa, 0x21, 0x3d]), 6)
        );
        let (h, _) = FrameHeader::decode(&[0x01, 0x03]).unwrap().unwrap();
        assert!(!h.fin);
        let (h, _) = FrameHeader::decode(&[0x82, 0x7E, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!(h.payload_len, 256);
    }

    // RFC 6455 §5.2 and §5.7: the encoder writes the same bytes, length in
    // network byte order after the first two bytes, then the key; the word
    // form holds them from its lowest byte and nothing above.
    #[test]
    fn encodes_the_rfc_byte_layout() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let cases: [(FrameHeader, &[u8]); 4] = [
            (
                FrameHeader::new(true, OpCode::Text, Some(key), 5),
                &[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d],
            ),
            (FrameHeader::new(false, OpCode::Text, None, 3), &[0x01, 0x03]),
            (
                FrameHeader::new(true, OpCode::Binary, Some(key), 256),
                &[0x82, 0xFE, 0x01, 0x00, 0x37, 0xfa, 0x21, 0x3d],
            ),
            (
                FrameHeader::new(true, OpCode::Binary, Some(key), 65536),
                &[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 0x37, 0xfa, 0x21, 0x3d],
            ),
        ];
        for (h, expected) in cases {
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = h.encode(&mut out);
            assert_eq!(&out[..n], expected);
            let (word, len) = h.encode_word();
            assert_eq!(len, expected.len());
            assert_eq!(&word.to_le_bytes()[..len], expected);
            assert!(word.to_le_bytes()[len..].iter().all(|&b| b == 0));
        }
    }
}
