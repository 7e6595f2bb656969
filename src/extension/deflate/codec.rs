//! The permessage-deflate codec (RFC 7692 §7.2): per-direction compression
//! state, created at the first compressed message and, under
//! no-context-takeover, freed after every message.

use super::RSV1;
use super::{DeflateConfig, DeflateParams, TAIL};
use crate::extension::{DecodeError, Decoded, Extension, Rsv};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use flate2::{Compress, Compression, FlushCompress, Status};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress_with_limit, inflate_flags};

/// The window zlib can open for `bits` (8 is opened as 9, see the module docs):
/// what the compressor uses.
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

    /// A compressor with these settings and a fresh context that it drops
    /// after the message: for a whole message compressed once and shared
    /// (no-context-takeover only).
    pub(crate) fn fresh(&self) -> Self {
        Deflater {
            window_bits: self.window_bits,
            no_context_takeover: true,
            level: self.level,
            threshold: self.threshold,
            state: None,
        }
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

/// Why inflating failed: the payload is not a deflate stream, or the
/// message does not end on a block boundary (RFC 7692 §7.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InflateError;

/// The receive half: inflates the messages the peer compressed.
///
/// The backend is miniz_oxide's core inflater, which stops at every deflate
/// block boundary (its `block-boundary` feature) and writes into a window
/// we own. RFC 7692 needs both: a message is complete only when the payload
/// with 0x00 0x00 0xff 0xff appended ends on a block boundary (§7.2.2), and
/// a block with BFINAL set ends the deflate stream but not the LZ77 window,
/// which spans all the messages (§7.2.1, §7.2.3.4).
pub(crate) struct Inflater {
    window_bits: u8,
    no_context_takeover: bool,
    /// Created at the first compressed message; dropped after every message
    /// under the peer's no-context-takeover.
    state: Option<Box<InflateState>>,
    /// How many octets of the 0x00 0x00 0xff 0xff tail the message being
    /// inflated has had (RFC 7692 §7.2.2).
    tail_fed: usize,
}

/// The largest distance deflate can express (RFC 1951 §3.2.5): the window
/// of 15 bits.
const MAX_DISTANCE: usize = 1 << 15;

/// The window buffer's first length.
const FIRST_WINDOW: usize = 4 << 10;

/// Where the decoder writes: the LZ77 window, the last 2^bits bytes of
/// uncompressed output (RFC 7692 §7.1.2: the peer references no further
/// back), and room for new output.
///
/// Two layouts, both checked by the decoder so that a distance beyond the
/// window or before the first byte of output is an error (RFC 1951 §3.2.3):
///
/// * below 15 bits, a ring of exactly 2^bits bytes. Until it has wrapped
///   the history is `buf[..pos]` and the decoder is told the buffer does not
///   wrap, so it fails a distance beyond `pos`; once wrapped, it fails a
///   distance beyond the ring.
/// * at 15 bits, a line of 32 KiB of history and 32 KiB of room: when the
///   room is used up the last 32 KiB move to the front. The decoder fails a
///   distance beyond `pos`, and no distance exceeds 32 KiB, so a match still
///   being copied after the move reads inside the line. Decoding into a line
///   is about 15 % faster than into a ring, for twice the memory.
///
/// The buffer is reserved at once but zeroed as it fills (from 4 KiB,
/// doubling), so a short message does not pay for clearing the whole window.
struct Window {
    buf: Vec<u8>,
    /// The length `buf` grows to.
    full: usize,
    /// Where the next output byte goes.
    pos: usize,
    /// `buf` is a ring (else a line).
    ring: bool,
    /// The ring has wrapped: all of it is history.
    wrapped: bool,
}

impl Window {
    fn new(window_bits: u8) -> Self {
        let ring = usize::from(window_bits) < 15;
        let full = if ring { 1 << window_bits } else { 2 * MAX_DISTANCE };
        let mut buf = Vec::with_capacity(full);
        buf.resize(full.min(FIRST_WINDOW), 0);
        Window {
            buf,
            full,
            pos: 0,
            ring,
            wrapped: false,
        }
    }

    /// The decoder's flag for this layout.
    fn flags(&self) -> u32 {
        if self.ring && self.wrapped {
            0
        } else {
            inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
        }
    }

    /// The decoder wrote `n` bytes at `pos`: they are returned, and `pos`
    /// moves past them (wrapping, or moving the history to the front).
    fn written(&mut self, n: usize) -> Result<core::ops::Range<usize>, InflateError> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(InflateError)?;
        self.pos = end;
        Ok(start..end)
    }

    /// Makes room at `pos` once the buffer's end is reached.
    fn make_room(&mut self) {
        if self.pos < self.buf.len() {
            return;
        }
        if self.buf.len() < self.full {
            // Still filling for the first time: the history is buf[..pos].
            let len = self.buf.len().saturating_mul(2).min(self.full);
            self.buf.resize(len, 0);
        } else if self.ring {
            self.pos = 0;
            self.wrapped = true;
        } else {
            self.buf.copy_within(self.pos - MAX_DISTANCE..self.pos, 0);
            self.pos = MAX_DISTANCE;
        }
    }
}

/// The decoder and the LZ77 window of one direction.
struct InflateState {
    decoder: DecompressorOxide,
    window: Window,
    /// The decoder is between two deflate blocks.
    at_boundary: bool,
    /// The decoder holds output it had no room for.
    pending: bool,
}

impl InflateState {
    fn new(window_bits: u8) -> Box<Self> {
        Box::new(InflateState {
            decoder: DecompressorOxide::new(),
            window: Window::new(window_bits),
            at_boundary: true,
            pending: false,
        })
    }

    /// Inflates from `input` into the spare capacity of `out`, never past
    /// it. Returns the input bytes consumed; stops when `input` is used up
    /// and nothing is pending, or `out` is full.
    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<usize, InflateError> {
        use inflate_flags::{TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_STOP_ON_BLOCK_BOUNDARY};
        let mut consumed = 0;
        loop {
            let room = out.capacity() - out.len();
            if room == 0 || (input.is_empty() && !self.pending) {
                return Ok(consumed);
            }
            // Whether the message ends is ours to say (the tail), so the
            // decoder always expects more input.
            let flags = TINFL_FLAG_HAS_MORE_INPUT | TINFL_FLAG_STOP_ON_BLOCK_BOUNDARY | self.window.flags();
            let w = &mut self.window;
            let (status, n_in, n_out) = decompress_with_limit(&mut self.decoder, input, &mut w.buf, w.pos, room, flags);
            let range = w.written(n_out)?;
            out.extend_from_slice(&w.buf[range]);
            w.make_room();
            input = input.get(n_in..).ok_or(InflateError)?;
            consumed += n_in;
            let progress = n_in > 0 || n_out > 0;
            match status {
                TINFLStatus::BlockBoundary => {
                    self.at_boundary = true;
                    self.pending = false;
                }
                // RFC 7692 §7.2.1, §7.2.3.4: a block with BFINAL set ends
                // the deflate stream at a byte boundary (its padding is
                // already read); the next block follows at the next octet,
                // with the same window.
                TINFLStatus::Done => {
                    self.decoder.init();
                    self.at_boundary = true;
                    self.pending = false;
                }
                TINFLStatus::NeedsMoreInput => {
                    if progress {
                        self.at_boundary = false;
                    }
                    self.pending = false;
                    // All input is in the decoder.
                    return Ok(consumed);
                }
                TINFLStatus::HasMoreOutput => {
                    self.at_boundary = false;
                    self.pending = true;
                }
                // Invalid data (a bad block type, code, length or distance).
                _ => return Err(InflateError),
            }
            if !progress {
                // Not reachable with room to write; never spin.
                return Err(InflateError);
            }
        }
    }
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
            window_bits: window_bits.clamp(8, 15),
            no_context_takeover,
            state: None,
            tail_fed: 0,
        }
    }

    /// Whether decompressor state is held now.
    pub(crate) fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// Inflates from `input` (the next bytes of a message's payload) into
    /// the spare capacity of `out` (never beyond it, so the caller bounds
    /// the memory). Returns how many input bytes were consumed. When `out`
    /// is full afterwards, more output may be pending: call again (with the
    /// rest of the input, or none).
    pub(crate) fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, InflateError> {
        if input.is_empty() && self.state.is_none() {
            return Ok(0);
        }
        let bits = self.window_bits;
        self.state
            .get_or_insert_with(|| InflateState::new(bits))
            .run(input, out)
    }

    /// The payload is all in: inflates the tail the sender removed and
    /// checks that the message ends on a block boundary (RFC 7692 §7.2.2).
    /// `Ok(true)`: the message is complete (and the window kept or freed,
    /// §7.1.1); `Ok(false)`: `out` is full and more output is pending, call
    /// again after making room.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool, InflateError> {
        while self.tail_fed < TAIL.len() {
            let n = self.inflate(&TAIL[self.tail_fed..], out)?;
            self.tail_fed += n;
            if self.tail_fed < TAIL.len() {
                if out.len() == out.capacity() {
                    return Ok(false);
                }
                if n == 0 {
                    // Not reachable: with room, all input goes in.
                    return Err(InflateError);
                }
            }
        }
        // Whatever is still pending once the tail is in.
        self.inflate(&[], out)?;
        let state = self.state.as_deref_mut().ok_or(InflateError)?;
        if state.pending {
            return Ok(false);
        }
        // RFC 7692 §7.2.2: the payload with the tail appended is whole
        // deflate blocks (§7.2.1: the sender removed the tail of an empty
        // stored block, so the tail completes one). Anything else is a
        // message cut short, or one whose last block is incomplete.
        if !state.at_boundary {
            return Err(InflateError);
        }
        self.end_message();
        Ok(true)
    }

    /// The message ended: keep the window for the next one (RFC 7692
    /// §7.2.2), or free it under no-context-takeover (§7.1.1).
    fn end_message(&mut self) {
        self.tail_fed = 0;
        if self.no_context_takeover {
            self.state = None;
        } else if let Some(state) = self.state.as_deref_mut() {
            // Each message is a deflate stream of its own that shares the
            // window: no bits carry over (the tail's stored block ends on an
            // octet anyway).
            state.decoder.init();
        }
    }
}

/// Both halves of permessage-deflate on one connection: what the
/// connection's extension interface drives.
#[derive(Debug)]
pub(crate) struct PerMessageDeflate {
    params: DeflateParams,
    deflater: Deflater,
    inflater: Inflater,
}

impl PerMessageDeflate {
    /// The agreed `params` for the side `we_are_server`; `config` gives this
    /// side's level and threshold.
    pub(crate) fn new(params: DeflateParams, we_are_server: bool, config: &DeflateConfig) -> Self {
        PerMessageDeflate {
            params,
            deflater: Deflater::new(&params, we_are_server, config),
            inflater: Inflater::new(&params, we_are_server),
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
            // Only what is pending from earlier input.
            self.inflater.inflate(&[], out).map_err(|_| DecodeError)?;
            return Ok(Decoded {
                consumed: 0,
                done: false,
            });
        }
        let done = self.inflater.finish(out).map_err(|_| DecodeError)?;
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

    /// One slot per window the compressor opens (9..=15 bits): under
    /// this side's no-context-takeover a message's compressed form depends
    /// only on the message, the window and the level (RFC 7692 §7.1.1.1,
    /// §7.1.1.2).
    fn shared_slot(&self) -> Option<usize> {
        let d = &self.deflater;
        d.no_context_takeover.then(|| usize::from(zlib_bits(d.window_bits)) - 8)
    }

    fn encode_shared(&self, data: &[u8], out: &mut Vec<u8>) -> Rsv {
        self.deflater.fresh().compress(data, true, out);
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

    /// Inflates one message's `payload` fed in pieces of `chunk` bytes into
    /// an output that starts at `room` bytes and grows by as much when
    /// full, then its end (RFC 7692 §7.2.2).
    fn inflate_chunked(inf: &mut Inflater, payload: &[u8], chunk: usize, room: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::with_capacity(room);
        for piece in payload.chunks(chunk.max(1)) {
            let mut input = piece;
            while !input.is_empty() {
                if out.len() == out.capacity() {
                    out.reserve_exact(room);
                }
                let n = inf.inflate(input, &mut out)?;
                input = &input[n..];
            }
        }
        loop {
            if out.len() == out.capacity() {
                out.reserve_exact(room);
            }
            if inf.finish(&mut out)? {
                return Ok(out);
            }
        }
    }

    fn inflate_message(inf: &mut Inflater, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
        inflate_chunked(inf, payload, payload.len(), 16)
    }

    // RFC 7692 §7.2.3.1: "Hello" compressed in one block is f2 48 cd c9 c9 07 00.
    #[test]
    fn rfc_example_hello() {
        let p = params(15, 15, false, false);
        let mut inf = Inflater::new(&p, false);
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_message(&mut inf, &hello).unwrap(), b"Hello");
        // §7.2.3.2: the same message again, sharing the window: f2 00 11 00 00.
        assert_eq!(
            inflate_message(&mut inf, &[0xf2, 0x00, 0x11, 0x00, 0x00]).unwrap(),
            b"Hello"
        );
        // §7.2.3.3: a stored (uncompressed) block.
        let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        assert_eq!(inflate_message(&mut inf, &stored).unwrap(), b"Hello");
        // §7.2.3.4: a block with BFINAL set, then the header octet of an
        // empty stored block that the tail completes.
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_message(&mut inf, &fin).unwrap(), b"Hello");
        // §7.2.3.5: two blocks in one message.
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate_message(&mut inf, &two).unwrap(), b"Hello");
        // §7.2.3.6: an empty stored block's header octet is an empty message.
        assert_eq!(inflate_message(&mut inf, &[0x00]).unwrap(), b"");
        // And after all of them the window still holds "Hello" (§7.2.3.2).
        assert_eq!(
            inflate_message(&mut inf, &[0xf2, 0x00, 0x11, 0x00, 0x00]).unwrap(),
            b"Hello"
        );

        // §7.2.3.6: an empty message compresses to 00.
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        let mut out = Vec::new();
        def.compress(b"", true, &mut out);
        assert_eq!(out, [0x00]);
        // Our compressor writes "Hello" as the RFC does (fixed Huffman block).
        let mut out = Vec::new();
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        def.compress(b"Hello", true, &mut out);
        assert_eq!(out, hello);
        // §7.2.3.2: and the second one reuses the window.
        let mut out = Vec::new();
        def.compress(b"Hello", true, &mut out);
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        // An empty message after others is still 00 (§7.2.3.6).
        let mut out = Vec::new();
        def.compress(b"", true, &mut out);
        assert_eq!(out, [0x00]);
    }

    // RFC 7692 §7.2.3.4 then §7.2.2: a message flushed with a BFINAL block
    // ends the deflate stream, not the window; the next message refers back
    // to it. Fed in every chunk size and with output room down to 1 byte.
    #[test]
    fn window_survives_a_final_block() {
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
        for chunk in 1..=fin.len() {
            for room in [1, 2, 5, 64] {
                let mut inf = Inflater::new(&params(15, 15, false, false), false);
                assert_eq!(inflate_chunked(&mut inf, &fin, chunk, room).unwrap(), b"Hello");
                assert!(inf.is_allocated());
                assert_eq!(inflate_chunked(&mut inf, &again, chunk, room).unwrap(), b"Hello");
            }
        }
    }

    // RFC 7692 §7.2.2: without the octet after the BFINAL block the tail is
    // not a whole block: the message is cut short.
    #[test]
    fn final_block_without_its_stored_header_is_cut_short() {
        let mut inf = Inflater::new(&params(15, 15, false, false), false);
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_message(&mut inf, &fin), Err(InflateError));
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
        // Our inflater with its 256-byte ring.
        let mut inf = Inflater::new(&p, false);
        assert_eq!(inflate_message(&mut inf, &out).unwrap(), data);
        assert_eq!(inf.state.as_ref().map(|s| s.window.buf.len()), Some(256));
        assert!(inf.state.as_ref().is_some_and(|s| s.window.buf.capacity() < 512));
        out.extend_from_slice(&TAIL);
        // zlib-rs inflates raw streams with 8 bits directly.
        let mut inflate = zlib_rs::Inflate::new(false, 8);
        let mut back = vec![0u8; data.len() + 64];
        let r = inflate.decompress(&out, &mut back, zlib_rs::InflateFlush::SyncFlush);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(&back[..inflate.total_out() as usize], &data[..]);
    }

    // RFC 7692 §7.2.2: streams much longer than the window (so the ring
    // wraps and the line moves its history many times), with matches at
    // distances up to the window's size, inflate exactly, whatever the room
    // for output (small room leaves matches half copied across a move).
    #[test]
    fn long_streams_cross_the_window_edge() {
        for bits in [9u8, 12, 15] {
            let window = 1usize << bits;
            let mut data = Vec::new();
            let mut x = 3u32;
            while data.len() < 5 * MAX_DISTANCE + 1000 {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let len = 3 + (x >> 8) as usize % 300;
                let dist = 1 + (x >> 16) as usize % (window - 262);
                if data.len() > dist && x % 3 != 0 {
                    for _ in 0..len {
                        data.push(data[data.len() - dist]);
                    }
                } else {
                    data.extend((0..len).map(|i| b'a' + ((x as usize + i * 7) % 23) as u8));
                }
            }
            let p = params(bits, bits, false, false);
            let mut def = Deflater::new(&p, true, &DeflateConfig::default());
            let mut payload = Vec::new();
            def.compress(&data, true, &mut payload);
            for (chunk, room) in [(payload.len(), 1 << 20), (1000, 1), (7, 300), (1, 4096)] {
                let mut inf = Inflater::new(&p, false);
                let back = inflate_chunked(&mut inf, &payload, chunk, room).unwrap();
                assert!(back == data, "bits {bits} chunk {chunk} room {room}");
            }
        }
    }

    // RFC 1951 §3.2.3, RFC 7692 §7.1.2: a distance before the first byte of
    // output, or beyond the negotiated window, does not inflate.
    #[test]
    fn distances_beyond_the_history_are_errors() {
        // A fixed block: literal 'a', then length 3 at distance 2 (one byte
        // of history only), as flate2 would never write it. Built by hand:
        // header 1 01, 'a' = 0x61 -> code 0x91 (8 bits), length 3 = code 257
        // (7 bits 0000001), distance 2 = code 1 (5 bits 00001), end of block.
        let block = |distance_code: u32| {
            let mut bits = BitWriter::default();
            bits.put(0b0, 1); // not final
            bits.put(0b01, 2); // fixed Huffman
            bits.put_code(0x30 + 0x61, 8);
            bits.put_code(0b0000001, 7);
            bits.put_code(distance_code, 5);
            bits.put_code(0, 7);
            bits.put(0b000, 3); // the empty stored block the tail completes
            bits.finish()
        };
        let p = params(15, 15, false, false);
        // Distance 1 (code 0) is fine: "aaaa".
        assert_eq!(
            inflate_message(&mut Inflater::new(&p, false), &block(0)).unwrap(),
            b"aaaa"
        );
        // Distance 2 (code 1) reaches before the stream.
        assert_eq!(
            inflate_message(&mut Inflater::new(&p, false), &block(1)),
            Err(InflateError)
        );

        // With a 9-bit window, after 600 bytes of history, a distance of
        // 513 reaches past the window (the ring holds 512 bytes).
        let p = params(9, 9, false, false);
        let mut inf = Inflater::new(&p, false);
        let history: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut stored = vec![0x00, 0x58, 0x02, 0xa7, 0xfd];
        stored.extend_from_slice(&history);
        stored.push(0x00);
        assert_eq!(inflate_message(&mut inf, &stored).unwrap(), history);
        // Length 3 at distance `code` + `extra` (RFC 1951 §3.2.5).
        let reference = |code: u32, extra_bits: u32, extra: u32| {
            let mut bits = BitWriter::default();
            bits.put(0b0, 1);
            bits.put(0b01, 2);
            bits.put_code(0b0000001, 7);
            bits.put_code(code, 5);
            bits.put(extra, extra_bits);
            bits.put_code(0, 7);
            bits.put(0b000, 3);
            bits.finish()
        };
        // Distance 512 (code 17, 385 + 127) is the edge of the window.
        let mut inf_near = Inflater::new(&p, false);
        inflate_message(&mut inf_near, &stored).unwrap();
        let back = inflate_message(&mut inf_near, &reference(17, 7, 127)).unwrap();
        assert_eq!(back, history[600 - 512..600 - 509]);
        // Distance 513 (code 18, 513 + 0) is past it.
        let far = reference(18, 8, 0);
        assert_eq!(inflate_message(&mut inf, &far), Err(InflateError));
    }

    /// Writes deflate bit fields, least significant bit first (RFC 1951 §3.1.1).
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        used: u32,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, n: u32) {
            for i in 0..n {
                if self.used % 8 == 0 {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (self.used % 8);
                self.used += 1;
            }
        }
        /// A Huffman code, most significant bit first.
        fn put_code(&mut self, code: u32, n: u32) {
            for i in (0..n).rev() {
                self.put((code >> i) & 1, 1);
            }
        }
        fn finish(self) -> Vec<u8> {
            self.bytes
        }
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
        assert_eq!(inflate_message(&mut inf, &out).unwrap(), b"Hello Hello Hello");
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
