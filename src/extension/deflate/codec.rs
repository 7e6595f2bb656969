//! The permessage-deflate codec (RFC 7692 §7.2): per-direction compression
//! state, created at the first compressed message and, under
//! no-context-takeover, freed after every message.

use super::RSV1;
use super::{DeflateConfig, DeflateParams, TAIL};
use crate::extension::{DecodeError, Decoded, Extension, Rsv};
use alloc::string::String;
use alloc::vec::Vec;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The window zlib can open for `bits` (8 is opened as 9, see the module docs).
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// The send half: compresses messages, keeping or resetting the context
/// between them as negotiated.
pub(crate) struct Deflater {
    window_bits: u8,
    no_context_takeover: bool,
    level: u8,
    pub(crate) threshold: usize,
    /// Created at the first compressed message; dropped after every message
    /// under no-context-takeover, so an idle connection holds none.
    state: Option<Compress>,
}

impl core::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("allocated", &self.state.is_some())
            .finish()
    }
}

impl Deflater {
    /// The half for what `we_are_server` sends.
    pub(crate) fn new(params: &DeflateParams, we_are_server: bool, config: &DeflateConfig) -> Self {
        let (window_bits, no_context_takeover) = if we_are_server {
            (params.server_max_window_bits, params.server_no_context_takeover)
        } else {
            (params.client_max_window_bits, params.client_no_context_takeover)
        };
        Deflater {
            window_bits,
            no_context_takeover,
            level: config.level.min(9),
            threshold: config.threshold,
            state: None,
        }
    }

    /// Whether compressor state is held now.
    pub(crate) fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// An upper bound of the compressed size of `len` bytes (stored blocks
    /// plus the sync flush in the worst case).
    pub(crate) fn bound(len: usize) -> usize {
        len.saturating_add(len >> 3).saturating_add(64)
    }

    /// Compresses the next piece of a message into `out` (appending). Every
    /// piece ends with a sync flush so the peer can inflate it at once; the
    /// last piece (`fin`) has the final four octets removed (RFC 7692
    /// §7.2.1).
    pub(crate) fn compress(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) {
        let (level, bits) = (self.level, zlib_bits(self.window_bits));
        let state = self
            .state
            .get_or_insert_with(|| Compress::new_with_window_bits(Compression::new(u32::from(level)), false, bits));
        let start = out.len();
        out.reserve(Self::bound(data.len()));
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before_in = state.total_in();
            let before_out = out.len();
            // Sync flush: all input out, ending in an empty stored block (00 00 ff ff).
            let status = state.compress_vec(input, out, FlushCompress::Sync);
            let consumed = (state.total_in() - before_in) as usize;
            input = &input[consumed.min(input.len())..];
            let room_left = out.len() < out.capacity();
            match status {
                // Done when all input is in and the flush fit with room to spare.
                Ok(Status::Ok | Status::BufError) if input.is_empty() && room_left => break,
                Ok(_) => {}
                // Not reachable with a valid stream state; leave what was written.
                Err(_) => break,
            }
            if out.len() == before_out && consumed == 0 && room_left {
                break;
            }
        }
        if fin {
            if out[start..].ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            } else if out.len() == start {
                // Nothing new since the last flush (an empty message, or an
                // empty last fragment): an empty stored block's first octet,
                // the tail completes it (RFC 7692 §7.2.3.6).
                out.push(0x00);
            }
            if self.no_context_takeover {
                // §7.1.1: nothing of this message may be referenced by the next one;
                // free the state (about 200-300 KiB) until the next compressed message.
                self.state = None;
            }
        }
    }
}

/// Why inflating failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InflateError;

/// The receive half: inflates the messages the peer compressed.
pub(crate) struct Inflater {
    window_bits: u8,
    no_context_takeover: bool,
    /// Created at the first compressed message; dropped after every message
    /// under the peer's no-context-takeover.
    state: Option<Decompress>,
    /// The stream ended (a block with BFINAL, RFC 7692 §7.2.3.4): the rest of
    /// the message is ignored and the next one starts a fresh stream.
    ended: bool,
}

impl core::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Inflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("allocated", &self.state.is_some())
            .finish()
    }
}

impl Inflater {
    /// The half for what the peer of `we_are_server` sends.
    pub(crate) fn new(params: &DeflateParams, we_are_server: bool) -> Self {
        let (window_bits, no_context_takeover) = if we_are_server {
            (params.client_max_window_bits, params.client_no_context_takeover)
        } else {
            (params.server_max_window_bits, params.server_no_context_takeover)
        };
        Inflater {
            window_bits,
            no_context_takeover,
            state: None,
            ended: false,
        }
    }

    /// Whether decompressor state is held now.
    pub(crate) fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// Inflates from `input` into the spare capacity of `out` (never beyond
    /// it, so the caller bounds the memory). Returns how many input bytes
    /// were consumed. When `out` is full afterwards, more output may be
    /// pending: call again (with the rest of the input, or none).
    pub(crate) fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, InflateError> {
        if self.ended {
            // Everything after the final block is ignored.
            return Ok(input.len());
        }
        let bits = zlib_bits(self.window_bits);
        let state = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let before = state.total_in();
        let status = state
            .decompress_vec(input, out, FlushDecompress::None)
            .map_err(|_| InflateError)?;
        let consumed = (state.total_in() - before) as usize;
        if status == Status::StreamEnd {
            self.ended = true;
            return Ok(input.len());
        }
        Ok(consumed.min(input.len()))
    }

    /// The message ended (its tail was inflated): keep the window for the
    /// next one, or free it under no-context-takeover (RFC 7692 §7.1.1).
    pub(crate) fn end_message(&mut self) {
        if self.no_context_takeover || self.ended {
            self.state = None;
        }
        self.ended = false;
    }
}

/// Both halves of permessage-deflate on one connection: what the
/// connection's extension interface drives.
#[derive(Debug)]
pub(crate) struct PerMessageDeflate {
    params: DeflateParams,
    deflater: Deflater,
    inflater: Inflater,
    /// How many octets of the 0x00 0x00 0xff 0xff tail the message being
    /// inflated has had (RFC 7692 §7.2.2).
    tail_fed: usize,
}

impl PerMessageDeflate {
    /// The agreed `params` for the side `we_are_server`; `config` gives this
    /// side's level and threshold.
    pub(crate) fn new(params: DeflateParams, we_are_server: bool, config: &DeflateConfig) -> Self {
        PerMessageDeflate {
            params,
            deflater: Deflater::new(&params, we_are_server, config),
            inflater: Inflater::new(&params, we_are_server),
            tail_fed: 0,
        }
    }
}

impl Extension for PerMessageDeflate {
    fn describe(&self) -> String {
        super::describe(&self.params)
    }

    // RFC 7692 §6: RSV1 marks a compressed message, on its first frame only.
    fn rsv(&self) -> Rsv {
        RSV1
    }

    fn decodes(&self, rsv: Rsv) -> bool {
        rsv & RSV1 != 0
    }

    /// Inflates the payload, then at the end of the message the tail the
    /// sender stripped (RFC 7692 §7.2.2).
    fn decode(&mut self, input: &[u8], end: bool, out: &mut Vec<u8>) -> Result<Decoded, DecodeError> {
        if !input.is_empty() {
            let consumed = self.inflater.inflate(input, out).map_err(|_| DecodeError)?;
            return Ok(Decoded { consumed, done: false });
        }
        if !end {
            return Ok(Decoded {
                consumed: 0,
                done: false,
            });
        }
        loop {
            let rest = &TAIL[self.tail_fed.min(TAIL.len())..];
            let n = self.inflater.inflate(rest, out).map_err(|_| DecodeError)?;
            self.tail_fed += n;
            if self.tail_fed >= TAIL.len() || n == 0 || out.len() == out.capacity() {
                break;
            }
        }
        // Done once the tail is in and the output had room to spare (so
        // nothing more is pending inside the inflater).
        let done = self.tail_fed >= TAIL.len() && out.len() < out.capacity();
        if done {
            self.tail_fed = 0;
            self.inflater.end_message();
        }
        Ok(Decoded { consumed: 0, done })
    }

    fn threshold(&self) -> usize {
        self.deflater.threshold
    }

    fn encoded_bound(&self, len: usize) -> usize {
        Deflater::bound(len)
    }

    fn encode(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) -> Rsv {
        self.deflater.compress(data, fin, out);
        RSV1
    }

    fn state_allocated(&self) -> (bool, bool) {
        (self.deflater.is_allocated(), self.inflater.is_allocated())
    }

    fn deflate_params(&self) -> Option<DeflateParams> {
        Some(self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::super::params;
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    fn inflate_all(inf: &mut Inflater, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let n = inf.inflate(input, &mut out).unwrap();
            input = &input[n..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    // RFC 7692 §7.2.3.1: "Hello" compressed in one block is f2 48 cd c9 c9 07 00.
    #[test]
    fn rfc_example_hello() {
        let p = params(15, 15, false, false);
        let mut inf = Inflater::new(&p, false);
        let mut wire = vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        wire.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &wire), b"Hello");
        inf.end_message();
        // §7.2.3.2: the same message again, sharing the window: f2 00 11 00 00.
        let mut wire = vec![0xf2, 0x00, 0x11, 0x00, 0x00];
        wire.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &wire), b"Hello");
        inf.end_message();
        // §7.2.3.3: a stored (uncompressed) block.
        let mut wire = vec![0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        wire.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &wire), b"Hello");
        inf.end_message();
        // §7.2.3.4: a block with BFINAL set; what follows it is ignored.
        let mut wire = vec![0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        wire.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &wire), b"Hello");
        inf.end_message();
        // §7.2.3.6: an empty message compresses to 00.
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        let mut out = Vec::new();
        def.compress(b"", true, &mut out);
        assert_eq!(out, [0x00]);
        // Our compressor writes "Hello" as the RFC does (fixed Huffman block).
        let mut out = Vec::new();
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        def.compress(b"Hello", true, &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        // §7.2.3.2: and the second one reuses the window.
        let mut out = Vec::new();
        def.compress(b"Hello", true, &mut out);
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        // An empty message after others is still 00 (§7.2.3.6).
        let mut out = Vec::new();
        def.compress(b"", true, &mut out);
        assert_eq!(out, [0x00]);
    }

    // Window bits 8: compressed with a 9-bit window, the stream inflates with an
    // 8-bit one (no distance beyond 250), so a 256-byte-window peer is served.
    #[test]
    fn window_bits_8_streams_fit_a_256_byte_window() {
        let p = params(8, 8, false, false);
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        // Repetitions at distances 100..600: the far ones must not be referenced.
        let mut data = Vec::new();
        let mut x = 1u32;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push(b'a' + ((x >> 16) % 8) as u8);
        }
        for i in 600..data.len() {
            if i % 7 == 0 {
                data[i] = data[i - 300];
            }
        }
        let mut out = Vec::new();
        def.compress(&data, true, &mut out);
        out.extend_from_slice(&TAIL);
        // zlib-rs inflates raw streams with 8 bits directly.
        let mut inflate = zlib_rs::Inflate::new(false, 8);
        let mut back = vec![0u8; data.len() + 64];
        let r = inflate.decompress(&out, &mut back, zlib_rs::InflateFlush::SyncFlush);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(&back[..inflate.total_out() as usize], &data[..]);
    }

    // RFC 7692 §7.1.1: without context takeover the state is freed after each message.
    #[test]
    fn no_context_takeover_frees_state() {
        let p = params(15, 15, true, true);
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        let mut out = Vec::new();
        def.compress(b"Hello Hello Hello", true, &mut out);
        assert!(!def.is_allocated());
        let mut inf = Inflater::new(&p, true);
        out.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &out), b"Hello Hello Hello");
        inf.end_message();
        assert!(!inf.is_allocated());
        // With takeover the state stays.
        let p = params(15, 15, false, false);
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        def.compress(b"Hello", true, &mut Vec::new());
        assert!(def.is_allocated());
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let mut inf = Inflater::new(&params(15, 15, false, false), true);
        let mut out = Vec::with_capacity(64);
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        assert_eq!(inf.inflate(&[0xff, 0xff, 0xff], &mut out), Err(InflateError));
    }
}
