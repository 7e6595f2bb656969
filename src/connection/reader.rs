//! The receive path of an open connection: frames out of the buffer,
//! unmasked in place, text validated as it arrives, messages reassembled
//! (or streamed), every framing rule of RFC 6455 §5 enforced.

use crate::config::Config;
use crate::error::ProtocolError;
use crate::event::Fragment;
use crate::extension::{Extension, Rsv};
use crate::types::{DataKind, Role};
use crate::wire::frame::{FrameError, FrameHeader, OpCode};
use crate::wire::mask::{apply_mask, extend_masked, masked_vec};
use crate::wire::utf8::{Utf8Bytes, Utf8Validator};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::{Buf, Bytes, BytesMut};

/// The extension in use, if any, as the reader borrows it.
pub(crate) type Ext<'a> = Option<&'a mut (dyn Extension + 'static)>;

/// What one step of the reader produced.
#[derive(Debug)]
pub(crate) enum Item {
    Text(Utf8Bytes),
    Binary(Bytes),
    Fragment(Fragment),
    Ping(Bytes),
    Pong(Bytes),
    Close(Bytes),
}

/// The most receive-buffer space reserved ahead of a frame's payload when its
/// header arrives (the default frame limit); beyond it the buffer grows as
/// bytes arrive.
const RESERVE_AHEAD: usize = 16 << 20;

/// Messages (and fragments) shorter than this are copied out of the
/// receive buffer into an allocation of their own size; longer ones are
/// slices of it, no copy. A slice keeps the whole buffer allocation alive
/// for as long as the application keeps it, so without the copy a kept
/// 10-byte chat line would pin a 64 KiB read; with it, what a kept message
/// holds is in proportion to its size: its own bytes below this, and above
/// it at most the buffer it arrived in (its own length plus one read, which
/// the drivers cap at 32 KiB; their reads straight into a frame's buffer
/// stop at the frame's end) — at most three times its size.
pub(crate) const OWN_BELOW: usize = 16 << 10;

/// The first `n` bytes of `buf` as a message's bytes: copied into their own
/// allocation when short ([`OWN_BELOW`]), split off without a copy when long.
fn take(buf: &mut BytesMut, n: usize) -> Bytes {
    if n < OWN_BELOW {
        let data = Bytes::copy_from_slice(&buf[..n]);
        buf.advance(n);
        data
    } else {
        buf.split_to(n).freeze()
    }
}

/// Decoded bytes as a message's: the spare capacity of the decode buffer
/// (it grows in steps) is given back, so a kept message holds its size.
fn own_decoded(mut out: Vec<u8>) -> Bytes {
    out.shrink_to_fit();
    Bytes::from(out)
}

/// A whole message's item; its text was validated as it arrived.
fn message(kind: DataKind, data: Bytes) -> Item {
    match kind {
        DataKind::Binary => Item::Binary(data),
        DataKind::Text => Item::Text(Utf8Bytes::from_validated(data)),
    }
}

/// Items read ahead ([`Reader::receive`]), oldest first: the first in a
/// slot of its own, so a read that brings one message (the common case of
/// an interactive connection) allocates no queue.
#[derive(Debug, Default)]
struct ReadAhead {
    first: Option<Result<Item, ProtocolError>>,
    more: VecDeque<Result<Item, ProtocolError>>,
}

impl ReadAhead {
    /// The newest item queued is an error: nothing after it is read ahead.
    fn ends_in_error(&self) -> bool {
        self.more.back().or(self.first.as_ref()).is_some_and(Result::is_err)
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    fn push(&mut self, item: Result<Item, ProtocolError>) {
        if self.first.is_none() && self.more.is_empty() {
            self.first = Some(item);
        } else {
            if self.more.capacity() == 0 {
                // Once, rather than growing in steps.
                self.more.reserve_exact(READY_MAX - 1);
            }
            self.more.push_back(item);
        }
    }

    fn pop(&mut self) -> Option<Result<Item, ProtocolError>> {
        self.first.take().or_else(|| self.more.pop_front())
    }

    /// Gives back the queue's allocation once it is empty.
    fn trim(&mut self) {
        if self.more.is_empty() && self.more.capacity() > 0 {
            self.more = VecDeque::new();
        }
    }
}

/// The frame whose payload is being read.
#[derive(Debug)]
struct InFrame {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes not yet split off the buffer.
    remaining: u64,
    /// Bytes at the front of the buffer already validated.
    done: usize,
    /// Bytes at the front of the buffer already unmasked (at least `done`).
    unmasked: usize,
    /// Payload bytes already split off (the mask offset of the buffer front).
    taken: u64,
}

/// The data message being received.
#[derive(Debug)]
struct InMessage {
    kind: DataKind,
    /// Sum of the announced lengths of its frames so far.
    len: u64,
    /// Earlier fragments (reassembly mode only).
    assembled: BytesMut,
    /// Whether the message has more than one frame (its first had FIN clear).
    fragmented: bool,
    /// Whether this message has produced a fragment yet (streaming mode).
    delivered: bool,
    utf8: Utf8Validator,
    /// The extension decodes this message (its first frame carried the
    /// extension's RSV bits, RFC 7692 §6.1).
    decoding: Option<Box<Decoding>>,
}

/// The decoded side of a message the extension transforms.
#[derive(Debug, Default)]
struct Decoding {
    /// Decoded bytes not yet handed out (the whole message when
    /// reassembling, the next piece in streaming mode).
    out: Vec<u8>,
    /// Decoded bytes already handed out (streaming mode).
    delivered: usize,
    /// A piece was handed out (streaming mode).
    started: bool,
}

/// The most a streaming piece of a decoded message holds.
const DECODE_PIECE: usize = 32 << 10;

/// What one decoding step of a message produced.
enum Decoded {
    /// Nothing yet; more input is needed.
    NeedMore,
    /// This frame is used up and the message goes on: read the next header.
    NextFrame,
    /// A piece (streaming) or the message; `done`: the message is complete.
    Item(Item, bool),
}

/// Decodes what is available of a transformed message's frame through the
/// extension (for permessage-deflate, RFC 7692 §7.2.2): the payload bytes at
/// the front of `buf` (`avail` of them), then, once the final frame is
/// complete (`last`), the extension's end of message. Output goes into
/// bounded steps: the buffer never grows past the message limit + 1, so a
/// decompression bomb ends with 1009 before the memory is reserved. Text is
/// validated as it is decoded (RFC 6455 §8.1).
fn decode_step(
    frame: &mut InFrame,
    msg: &mut InMessage,
    ext: &mut dyn Extension,
    buf: &mut BytesMut,
    config: &Config,
    avail: usize,
    last: bool,
) -> Result<Decoded, ProtocolError> {
    let Some(dec) = msg.decoding.as_deref_mut() else {
        return Ok(Decoded::NeedMore);
    };
    let limit = config.max_message_size;
    let mut wire_left = avail;
    let mut done = false;
    loop {
        // Room for output: the message limit + 1 at most (one byte past the
        // limit proves it is exceeded); in streaming mode one piece at most.
        if dec.out.len() == dec.out.capacity() {
            let most = limit.saturating_add(1).saturating_sub(dec.delivered);
            let target = if config.streaming {
                DECODE_PIECE.min(most)
            } else {
                dec.out
                    .capacity()
                    .saturating_mul(2)
                    .max(avail.saturating_mul(4))
                    .max(4096)
                    .min(most)
            };
            if target <= dec.out.len() {
                // A streaming piece is full: hand it out first.
                break;
            }
            dec.out.reserve_exact(target - dec.out.len());
        }
        let before = dec.out.len();
        let step = ext
            .decode(&buf[..wire_left], last, &mut dec.out)
            .map_err(|_| ProtocolError::InvalidCompressedData)?;
        let produced = dec.out.len() - before;
        let n = step.consumed.min(wire_left);
        if n > 0 {
            buf.advance(n);
            wire_left -= n;
            frame.remaining -= n as u64;
            frame.taken += n as u64;
            frame.unmasked = frame.unmasked.saturating_sub(n);
            frame.done = frame.done.saturating_sub(n);
        }
        let total = dec.delivered.saturating_add(dec.out.len());
        if total > limit {
            return Err(ProtocolError::MessageTooLarge {
                len: total as u64,
                limit,
            });
        }
        if msg.kind == DataKind::Text && produced > 0 {
            msg.utf8
                .feed(&dec.out[before..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        let full = dec.out.len() == dec.out.capacity();
        if step.done {
            done = true;
            break;
        }
        let nothing_to_feed = wire_left == 0 && !last;
        if !full && (nothing_to_feed || (n == 0 && produced == 0)) {
            break;
        }
    }
    if done && msg.kind == DataKind::Text {
        msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    if config.streaming {
        if dec.out.is_empty() && !done {
            if frame.remaining == 0 && !last {
                return Ok(Decoded::NextFrame);
            }
            return Ok(Decoded::NeedMore);
        }
        let data = own_decoded(core::mem::take(&mut dec.out));
        let first = !dec.started;
        dec.started = true;
        dec.delivered += data.len();
        return Ok(Decoded::Item(
            Item::Fragment(Fragment {
                kind: msg.kind,
                data,
                first,
                fin: done,
            }),
            done,
        ));
    }
    if done {
        let data = own_decoded(core::mem::take(&mut dec.out));
        return Ok(Decoded::Item(message(msg.kind, data), true));
    }
    if frame.remaining == 0 && !last {
        return Ok(Decoded::NextFrame);
    }
    Ok(Decoded::NeedMore)
}

/// A long frame whose header arrived in the same read as the end of the
/// frame before it: started in a buffer of its own, sized for it, so its
/// payload is unmasked as it is copied in (one pass from the read to its
/// final place) and never shifted to the front of the receive buffer. The
/// reader takes the buffer over once it has read the frame before.
#[derive(Debug)]
struct Ahead {
    /// The frame's header, its payload (the first `unmasked` bytes of it
    /// unmasked), then whatever followed it, as it came.
    buf: BytesMut,
    header_len: usize,
    payload_len: usize,
    key: [u8; 4],
    /// Payload bytes unmasked as they were copied in.
    unmasked: usize,
    /// For a text frame: the validator after the first `validated` payload
    /// bytes, which it found valid so far (RFC 6455 §8.1).
    utf8: Option<Utf8Validator>,
    validated: usize,
}

impl Ahead {
    /// Appends `data`: the payload part unmasked while it is copied (and,
    /// for text, validated right after), as long as everything before it
    /// is.
    fn extend(&mut self, data: &[u8]) {
        let mut data = data;
        if self.buf.len() == self.header_len + self.unmasked && self.unmasked < self.payload_len {
            let n = (self.payload_len - self.unmasked).min(data.len());
            let utf8 = self.utf8.as_mut().filter(|_| self.validated == self.unmasked);
            self.validated += unmask_in(&mut self.buf, &data[..n], self.key, self.unmasked, utf8);
            self.unmasked += n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }
}

/// How much text is unmasked before it is validated: small enough to be
/// validated while it is in the first-level cache.
const VALIDATE_PIECE: usize = 16 << 10;

/// Appends `src` to `dst` unmasked with `key` from key position `offset`;
/// with a validator, validates the text piece by piece right after each
/// piece is unmasked. Returns how many bytes it validated: all of them, or
/// those before the piece that failed (the reader validates that piece
/// again and reports the error; the validator is as before that piece).
fn unmask_in(dst: &mut BytesMut, src: &[u8], key: [u8; 4], offset: usize, utf8: Option<&mut Utf8Validator>) -> usize {
    let Some(utf8) = utf8 else {
        extend_masked(dst, src, key, offset);
        return 0;
    };
    let mut validated = 0;
    let mut copied = 0;
    let mut ok = true;
    for piece in src.chunks(VALIDATE_PIECE) {
        let start = dst.len();
        extend_masked(dst, piece, key, offset + copied);
        copied += piece.len();
        if ok {
            let mut next = *utf8;
            if next.feed(&dst[start..]).is_ok() {
                *utf8 = next;
                validated += piece.len();
                continue;
            }
            ok = false;
        }
    }
    validated
}

/// A binary message's payload read straight into its buffer
/// ([`Reader::payload_buf`]) is unmasked in batches of at least this many
/// bytes (or at its end): one pass over a batch that is still in the
/// second-level cache costs less than one per transport read.
const UNMASK_BATCH: usize = 512 << 10;

/// Whether the unmasking of the `avail` payload bytes present waits for
/// more: a frame that [`batches_unmasking`], not complete, whose
/// not-yet-unmasked bytes are short of [`UNMASK_BATCH`].
fn defers_unmasking(frame: &InFrame, msg: Option<&InMessage>, avail: usize, config: &Config) -> bool {
    batches_unmasking(frame, msg, config)
        && frame.remaining != avail as u64
        && avail.saturating_sub(frame.unmasked) < UNMASK_BATCH
}

/// Unmasks the frame's payload bytes in `buf` from where it is unmasked up
/// to `end` (at most `buf.len()`), in place.
fn unmask_buffered(frame: &mut InFrame, buf: &mut [u8], end: usize) {
    let end = end.min(buf.len());
    if end <= frame.unmasked {
        return;
    }
    if let Some(key) = frame.mask {
        // The key position is the count of payload bytes before these.
        let offset = (frame.taken as usize & 3) + frame.unmasked;
        apply_mask(&mut buf[frame.unmasked..end], key, offset);
    }
    frame.unmasked = end;
}

/// A masked frame that is a whole binary message, read the plain way:
/// nothing of its payload is looked at before it is complete, so it may be
/// unmasked in batches. Text is unmasked as it comes, to be validated while
/// in cache and failed fast (RFC 6455 §8.1).
fn batches_unmasking(frame: &InFrame, msg: Option<&InMessage>, config: &Config) -> bool {
    frame.mask.is_some()
        && frame.opcode == OpCode::Binary
        && frame.fin
        && !config.streaming
        && msg.is_some_and(|m| m.decoding.is_none() && !m.fragmented)
}

/// Frames at least this long are started in a buffer of their own when
/// their header follows the end of the frame before in one read
/// ([`Ahead`]); shorter ones are copied out of the receive buffer anyway.
const AHEAD_MIN: usize = OWN_BELOW;

/// At most this many items are read ahead ([`Reader::receive`] takes short
/// messages straight out of the bytes it is given): the queue stays small
/// (a few KiB) however short the peer's frames; past it, input is buffered
/// and read when the queue has drained.
const READY_MAX: usize = 64;

/// A frame's payload is read straight into its buffer
/// ([`Reader::payload_buf`]) when at least this much of it is still to come.
const DIRECT_MIN: usize = 4 << 10;

/// The frame's payload goes to its message's reassembly buffer: a data
/// frame of a fragmented message the extension does not decode, not
/// streamed.
fn reassembling(frame: &InFrame, msg: &InMessage, config: &Config) -> bool {
    msg.fragmented && msg.decoding.is_none() && !frame.opcode.is_control() && !config.streaming
}

/// The header at the start of `buf`, when it opens a whole unfragmented text
/// or binary message that passes every check of [`Reader::start_frame`]
/// (RFC 6455 §5.1–5.4: FIN set, no RSV bits, masked as `role` requires, a
/// data opcode, within the frame and message limits): the message's kind,
/// the masking key, the header's length and where the frame ends (perhaps
/// past the end of `buf`). `None` for anything else, which takes the
/// general path (and gets its errors reported there).
fn plain_header(buf: &[u8], role: Role, config: &Config) -> Option<(DataKind, Option<[u8; 4]>, usize, usize)> {
    let Ok(Some((h, header_len))) = FrameHeader::decode(buf) else {
        return None;
    };
    let kind = match h.opcode {
        OpCode::Text => DataKind::Text,
        OpCode::Binary => DataKind::Binary,
        _ => return None,
    };
    let limit = config.max_frame_size.min(config.max_message_size) as u64;
    if !h.fin || h.rsv() != 0 || h.mask.is_some() != (role == Role::Server) || h.payload_len > limit {
        return None;
    }
    // (Checked without overflow, whatever the limits.)
    let end = usize::try_from(h.payload_len).ok()?.checked_add(header_len)?;
    Some((kind, h.mask, header_len, end))
}

/// The payload of a short frame, unmasked as it is copied into an
/// allocation of its own (one pass, as unmasking in place would be).
fn own_payload(payload: &[u8], mask: Option<[u8; 4]>) -> Bytes {
    match mask {
        Some(key) => Bytes::from(masked_vec(payload, key)),
        None => Bytes::copy_from_slice(payload),
    }
}

/// Appends payload bytes of a reassembled message's frame to the message
/// (one pass from where they are to their final place): the first
/// `unmasked` bytes of `src` are unmasked already and copied as they are,
/// the rest are unmasked with `key` (from key position `offset`) as they
/// are copied. Text is validated right after, from the first byte not yet
/// validated (`validated` of `src`; the validator has seen those before
/// it), RFC 6455 §8.1: it fails before the message is complete.
fn append_fragment(
    msg: &mut InMessage,
    src: &[u8],
    unmasked: usize,
    validated: usize,
    mask: Option<[u8; 4]>,
    offset: usize,
) -> Result<(), ProtocolError> {
    let unmasked = unmasked.min(src.len());
    let validated = validated.min(unmasked);
    let text = msg.kind == DataKind::Text;
    let start = msg.assembled.len();
    msg.assembled.extend_from_slice(&src[..unmasked]);
    let fresh = &src[unmasked..];
    match mask {
        Some(key) if text && validated == unmasked => {
            // Validated piece by piece as it is unmasked, while in cache.
            if unmask_in(&mut msg.assembled, fresh, key, offset, Some(&mut msg.utf8)) != fresh.len() {
                return Err(ProtocolError::InvalidUtf8);
            }
            return Ok(());
        }
        Some(key) => extend_masked(&mut msg.assembled, fresh, key, offset),
        None => msg.assembled.extend_from_slice(fresh),
    }
    if text {
        msg.utf8
            .feed(&msg.assembled[start + validated..])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(())
}

/// A reassembled message's bytes once its last frame is in. The buffer grew
/// in doubling steps: a short message, or one with much spare room, is
/// copied to its size, so a kept message holds what it is.
fn assembled_message(msg: &mut InMessage) -> Result<Item, ProtocolError> {
    if msg.kind == DataKind::Text {
        msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    let assembled = core::mem::take(&mut msg.assembled);
    let data = if assembled.len() < OWN_BELOW || assembled.capacity() / 2 > assembled.len() {
        Bytes::copy_from_slice(&assembled)
    } else {
        assembled.freeze()
    };
    Ok(message(msg.kind, data))
}

/// Receive state of an open connection.
#[derive(Debug)]
pub(crate) struct Reader {
    role: Role,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    /// The frame after the current one, when started early.
    ahead: Option<Ahead>,
    /// Payload bytes at the front of the buffer already unmasked, for the
    /// frame to be started next (the frame of a taken-over [`Ahead`]).
    pre_unmasked: usize,
    /// Of those, the bytes already validated, and the validator after them.
    pre_validated: Option<(usize, Utf8Validator)>,
    /// Items read ahead of the receive buffer: they come before everything
    /// it (and a frame started [`Ahead`]) holds.
    ready: ReadAhead,
}

impl Reader {
    pub(crate) fn new(role: Role) -> Self {
        Reader {
            role,
            frame: None,
            message: None,
            ahead: None,
            pre_unmasked: 0,
            pre_validated: None,
            ready: ReadAhead::default(),
        }
    }

    /// No frame or message is being read: what the receive buffer holds
    /// starts at a frame boundary and nothing was reserved for a payload.
    pub(crate) fn idle(&self) -> bool {
        self.frame.is_none() && self.message.is_none() && self.ahead.is_none()
    }

    /// Drops input held outside the receive buffer (at CLOSED).
    pub(crate) fn release_input(&mut self) {
        self.ahead = None;
        self.pre_unmasked = 0;
        self.pre_validated = None;
        self.ready = ReadAhead::default();
    }

    /// Gives back the queue of items read ahead once it is empty, so an
    /// idle connection holds none.
    pub(crate) fn trim(&mut self) {
        self.ready.trim();
    }

    /// Bytes received and held outside the receive buffer.
    pub(crate) fn held_ahead(&self) -> usize {
        self.ahead.as_ref().map_or(0, |a| a.buf.len())
    }

    /// Where received bytes go next: the buffer of the frame started ahead,
    /// if any, else `buf` (input stays in order).
    pub(crate) fn tail<'a>(&'a mut self, buf: &'a mut BytesMut) -> &'a mut BytesMut {
        match self.ahead.as_mut() {
            Some(a) => &mut a.buf,
            None => buf,
        }
    }

    /// Takes `data` into the receive path: the payload of the frame being
    /// read is unmasked as it is copied in (when everything buffered of it
    /// already is), and a long data frame whose header follows the end of
    /// that frame in `data` is started in a buffer of its own
    /// ([`Ahead`]), unmasked as it is copied too. The rest is appended as it
    /// came, to be unmasked in place when read.
    ///
    /// Short messages that follow in `data`, when nothing is buffered before
    /// them, are read at once ([`Reader::read_short`]): copied once, from
    /// the driver's read straight into their own allocations, rather than
    /// into the receive buffer first and out of it after.
    pub(crate) fn receive(&mut self, buf: &mut BytesMut, data: &[u8], config: &Config) {
        if let Some(ahead) = self.ahead.as_mut() {
            ahead.extend(data);
            return;
        }
        let taken = self.absorb(buf, data, config);
        let mut rest = &data[taken..];
        if rest.is_empty() {
            return;
        }
        let frame_ends = self.holds_complete_plain_frame(buf) || self.ends_reassembled_frame(buf, config);
        if frame_ends && self.ready.len() < READY_MAX {
            // The frame the buffer holds (or whose bytes went to its
            // message) ends in `data`: read it now, so that what follows it
            // starts with nothing buffered before it.
            match self.next_buffered(buf, config, None) {
                Ok(Some(item)) => self.ready.push(Ok(item)),
                Ok(None) => {}
                Err(e) => self.ready.push(Err(e)),
            }
        }
        // Whole short messages and the frames of fragmented messages, in
        // any order, for as long as nothing is buffered before them.
        while buf.is_empty() {
            let before = rest.len();
            if self.at_message_boundary(config) {
                rest = self.read_short(rest, config);
            }
            rest = self.read_fragments(rest, config);
            if rest.is_empty() {
                return;
            }
            if rest.len() == before {
                break;
            }
        }
        if !self.start_ahead(buf, rest, config) {
            buf.extend_from_slice(rest);
        }
    }

    /// The buffer holds exactly the rest of the current frame, all of it
    /// unmasked, and the frame is a whole message read the plain way (not
    /// fragmented, streamed or decoded): reading it takes nothing else.
    fn holds_complete_plain_frame(&self, buf: &BytesMut) -> bool {
        let (Some(frame), Some(msg)) = (self.frame.as_ref(), self.message.as_ref()) else {
            return false;
        };
        !frame.opcode.is_control()
            && frame.fin
            && !msg.fragmented
            && msg.decoding.is_none()
            && frame.remaining == buf.len() as u64
            && frame.unmasked == buf.len()
    }

    /// The frame being read is a fragment of a reassembled message, all of
    /// it taken into the message ([`Reader::absorb`]): reading it (ending
    /// the frame, and the message on its last) takes nothing else.
    fn ends_reassembled_frame(&self, buf: &BytesMut, config: &Config) -> bool {
        let (Some(frame), Some(msg)) = (self.frame.as_ref(), self.message.as_ref()) else {
            return false;
        };
        buf.is_empty() && frame.remaining == 0 && reassembling(frame, msg, config)
    }

    /// Reads the frames of fragmented messages at the start of `data` (the
    /// one open, continued, or a new one where a message may start) straight
    /// into their message, unmasked as they are copied and their text
    /// validated (RFC 6455 §8.1), each frame checked by
    /// [`Reader::start_frame`] before its bytes are taken; a message whose
    /// last frame is in goes to the queue of items read ahead. Returns the
    /// bytes after them: empty when a frame goes on in the next read (which
    /// [`Reader::absorb`] takes), and it stops at anything else (a control
    /// frame, an unfragmented message, a compressed one, an incomplete
    /// header), which the other paths read, and at a rule broken (queued as
    /// the error; nothing after it is read).
    fn read_fragments<'d>(&mut self, mut data: &'d [u8], config: &Config) -> &'d [u8] {
        while self.frame.is_none()
            && self.ahead.is_none()
            && self.pre_unmasked == 0
            && self.pre_validated.is_none()
            && !config.streaming
            && !self.ready.ends_in_error()
            && self.ready.len() < READY_MAX
        {
            let Ok(Some((h, header_len))) = FrameHeader::decode(data) else {
                break;
            };
            let opens = matches!(h.opcode, OpCode::Text | OpCode::Binary) && !h.fin && self.message.is_none();
            let continues = h.opcode == OpCode::Continuation
                && self
                    .message
                    .as_ref()
                    .is_some_and(|m| m.fragmented && m.decoding.is_none());
            if h.rsv() != 0 || !(opens || continues) {
                break;
            }
            // RSV bits clear: no extension is involved, so the checks are
            // those of a connection without one.
            if let Err(e) = self.start_frame(&h, config, None) {
                self.ready.push(Err(e));
                return &[];
            }
            let Some(msg) = self.message.as_mut() else {
                break;
            };
            data = &data[header_len..];
            let n = usize::try_from(h.payload_len).map_or(data.len(), |len| len.min(data.len()));
            if let Err(e) = append_fragment(msg, &data[..n], 0, 0, h.mask, 0) {
                self.ready.push(Err(e));
                return &[];
            }
            data = &data[n..];
            if (n as u64) < h.payload_len {
                // The frame goes on in the next read.
                self.frame = Some(InFrame {
                    opcode: h.opcode,
                    fin: h.fin,
                    mask: h.mask,
                    remaining: h.payload_len - n as u64,
                    done: 0,
                    unmasked: 0,
                    taken: n as u64,
                });
                return data;
            }
            if h.fin {
                let item = assembled_message(msg);
                self.message = None;
                self.ready.push(item);
            }
        }
        data
    }

    /// No frame or message is open and nothing read ahead failed: the next
    /// bytes start a message.
    fn at_message_boundary(&self, config: &Config) -> bool {
        self.frame.is_none()
            && self.message.is_none()
            && self.ahead.is_none()
            && self.pre_unmasked == 0
            && self.pre_validated.is_none()
            && !config.streaming
            && !self.ready.ends_in_error()
    }

    /// Reads the whole short messages at the start of `data` (each checked
    /// as [`Reader::start_frame`] would, its text validated) into the queue
    /// of items read ahead, up to [`READY_MAX`] of them; returns the bytes
    /// after them. Stops at anything else (a long, fragmented or control
    /// frame, invalid text, an incomplete frame), which the general path
    /// reads, and reports if it breaks a rule.
    fn read_short<'d>(&mut self, mut data: &'d [u8], config: &Config) -> &'d [u8] {
        while self.ready.len() < READY_MAX {
            let Some((kind, mask, header_len, end)) = plain_header(data, self.role, config) else {
                break;
            };
            if end > data.len() || end - header_len >= OWN_BELOW {
                break;
            }
            let own = own_payload(&data[header_len..end], mask);
            if kind == DataKind::Text && simdutf8::basic::from_utf8(&own).is_err() {
                break;
            }
            self.ready.push(Ok(message(kind, own)));
            data = &data[end..];
        }
        data
    }

    /// When a long frame's payload is being read and room for the rest of
    /// it is reserved: that buffer and how many bytes of the frame are still
    /// to come, for a driver to read straight into (at most that many
    /// bytes). The next [`Reader::next`] unmasks them in place.
    pub(crate) fn payload_buf<'a>(&'a mut self, buf: &'a mut BytesMut) -> Option<(&'a mut BytesMut, usize)> {
        if let Some(ahead) = self.ahead.as_mut() {
            let want = (ahead.header_len + ahead.payload_len).saturating_sub(ahead.buf.len());
            let room = ahead.buf.capacity() - ahead.buf.len();
            return (want >= DIRECT_MIN && room >= want).then_some((&mut ahead.buf, want));
        }
        let frame = self.frame.as_ref()?;
        let msg = self.message.as_ref()?;
        if frame.opcode.is_control() || msg.fragmented || msg.decoding.is_some() {
            return None;
        }
        let want = usize::try_from(frame.remaining).ok()?.saturating_sub(buf.len());
        let room = buf.capacity() - buf.len();
        (want >= DIRECT_MIN && room >= want).then_some((buf, want))
    }

    /// Starts an [`Ahead`] frame with `rest` when `buf` ends exactly where a
    /// frame ends and `rest` opens with the whole header of a long masked
    /// data frame within the limits (the limits are checked before its
    /// buffer is reserved; every other rule is the reader's, when it gets
    /// there). Returns whether it took `rest`.
    fn start_ahead(&mut self, buf: &BytesMut, rest: &[u8], config: &Config) -> bool {
        let at_boundary = match &self.frame {
            Some(frame) => frame.remaining == buf.len() as u64,
            None => buf.is_empty(),
        };
        if !at_boundary || self.role != Role::Server {
            return false;
        }
        let Ok(Some((h, header_len))) = FrameHeader::decode(rest) else {
            return false;
        };
        let Some(key) = h.mask else { return false };
        let limit = config.max_frame_size.min(config.max_message_size).min(RESERVE_AHEAD);
        let Ok(payload_len) = usize::try_from(h.payload_len) else {
            return false;
        };
        if h.opcode.is_control() || h.rsv() != 0 || payload_len < AHEAD_MIN || payload_len > limit {
            return false;
        }
        // Only a whole unfragmented message, where a message may start
        // (RFC 6455 §5.4): its payload stays where it lands and becomes the
        // message without a copy. (Fragments are copied into the message
        // anyway, and a frame that breaks a rule is the reader's to refuse.)
        let current_ends_message = self.frame.as_ref().is_some_and(|f| f.fin && !f.opcode.is_control());
        let may_start = self.message.is_none() || current_ends_message;
        if !h.fin || !matches!(h.opcode, OpCode::Text | OpCode::Binary) || config.streaming || !may_start {
            return false;
        }
        let mut ahead = Ahead {
            buf: BytesMut::with_capacity(header_len + payload_len),
            header_len,
            payload_len,
            key,
            unmasked: 0,
            utf8: (h.opcode == OpCode::Text).then(Utf8Validator::new),
            validated: 0,
        };
        ahead.buf.extend_from_slice(&rest[..header_len]);
        ahead.extend(&rest[header_len..]);
        self.ahead = Some(ahead);
        true
    }

    /// Takes from `data` the bytes that continue the current frame's payload
    /// when everything buffered is payload of it, unmasked (or left masked
    /// for a batch, which it unmasks first), and appends them
    /// to `buf` (unmasked in the same pass as the copy, when masked). Returns
    /// how many bytes it took; the caller appends the rest as they are.
    fn absorb(&mut self, buf: &mut BytesMut, data: &[u8], config: &Config) -> usize {
        let Some(frame) = self.frame.as_mut() else { return 0 };
        if buf.len() != frame.unmasked {
            // Payload bytes left masked for a batch ([`defers_unmasking`]):
            // unmask them now, so that what follows is unmasked as it is
            // copied in.
            if buf.len() < frame.unmasked
                || buf.len() as u64 > frame.remaining
                || !batches_unmasking(frame, self.message.as_ref(), config)
            {
                return 0;
            }
            let end = buf.len();
            unmask_buffered(frame, buf, end);
        }
        let room = frame.remaining.saturating_sub(buf.len() as u64);
        let n = usize::try_from(room).map_or(data.len(), |r| r.min(data.len()));
        if let Some(msg) = self
            .message
            .as_mut()
            .filter(|m| buf.is_empty() && reassembling(frame, m, config))
        {
            // A fragment of a reassembled message: straight to the message.
            let offset = frame.taken as usize & 3;
            if let Err(e) = append_fragment(msg, &data[..n], 0, 0, frame.mask, offset) {
                // Nothing after a broken rule is read.
                self.frame = None;
                self.ready.push(Err(e));
                return data.len();
            }
            frame.remaining -= n as u64;
            frame.taken += n as u64;
            return n;
        }
        let Some(key) = frame.mask else {
            // A server's frame (a client reads it): nothing to unmask; the
            // text is validated when the frame is read.
            buf.extend_from_slice(&data[..n]);
            frame.unmasked += n;
            return n;
        };
        // Text is validated piece by piece right after it is unmasked, while
        // it is in cache, when everything before it is validated.
        let utf8 = match self.message.as_mut() {
            Some(msg)
                if msg.kind == DataKind::Text
                    && msg.decoding.is_none()
                    && !frame.opcode.is_control()
                    && frame.done == frame.unmasked =>
            {
                Some(&mut msg.utf8)
            }
            _ => None,
        };
        let start = (frame.taken as usize & 3) + frame.unmasked;
        let validated = unmask_in(buf, &data[..n], key, start, utf8);
        frame.unmasked += n;
        frame.done += validated;
        n
    }

    /// Reads the next item out of `buf`: `Ok(None)` when more bytes are
    /// needed. Bytes of an incomplete frame are unmasked and validated as
    /// they arrive, so invalid text fails before its frame is complete.
    pub(crate) fn next(
        &mut self,
        buf: &mut BytesMut,
        config: &Config,
        ext: Ext<'_>,
    ) -> Result<Option<Item>, ProtocolError> {
        if let Some(item) = self.ready.pop() {
            return item.map(Some);
        }
        self.next_buffered(buf, config, ext)
    }

    /// [`Reader::next`] from the receive buffer (the items read ahead come
    /// before it).
    fn next_buffered(
        &mut self,
        buf: &mut BytesMut,
        config: &Config,
        mut ext: Ext<'_>,
    ) -> Result<Option<Item>, ProtocolError> {
        if buf.is_empty() && self.frame.is_none() && self.ahead.is_none() {
            // Nothing to read (the common case once a read's messages are
            // out); an open message waits for its next frame's header.
            return Ok(None);
        }
        if self.frame.is_none()
            && self.message.is_none()
            && !config.streaming
            && self.ahead.is_none()
            && self.pre_unmasked == 0
            && self.pre_validated.is_none()
        {
            if let Some(item) = self.whole_message(buf, config)? {
                return Ok(Some(item));
            }
        }
        loop {
            if self.frame.is_none() && buf.is_empty() {
                // Everything before the frame started ahead is read: go on in its buffer.
                if let Some(ahead) = self.ahead.take() {
                    *buf = ahead.buf;
                    self.pre_unmasked = ahead.unmasked;
                    self.pre_validated = ahead.utf8.map(|v| (ahead.validated, v));
                }
            }
            if self.frame.is_none() {
                let (header, header_len) = match FrameHeader::decode(buf) {
                    Ok(Some(h)) => h,
                    Ok(None) => return Ok(None),
                    Err(FrameError::ReservedOpcode(op)) => return Err(ProtocolError::ReservedOpcode(op)),
                    Err(FrameError::LengthTopBitSet) => return Err(ProtocolError::LengthTopBitSet),
                };
                self.start_frame(&header, config, ext.as_deref())?;
                buf.advance(header_len);
                // The length passed the limits: make room for the payload now,
                // so the buffer is not regrown (and copied) as it arrives, but
                // never more than RESERVE_AHEAD at once (limits may be set
                // very high). (A fragmented message's bytes go to the message
                // buffer.)
                if header.fin
                    && header.rsv() == 0
                    && matches!(header.opcode, OpCode::Text | OpCode::Binary)
                    && !config.streaming
                {
                    let len = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
                    buf.reserve(len.saturating_sub(buf.len()).min(RESERVE_AHEAD));
                }
                self.frame = Some(InFrame {
                    opcode: header.opcode,
                    fin: header.fin,
                    mask: header.mask,
                    remaining: header.payload_len,
                    done: 0,
                    unmasked: core::mem::take(&mut self.pre_unmasked),
                    taken: 0,
                });
                // The text validated as it came in (a frame started ahead opens its message).
                if let Some((validated, utf8)) = self.pre_validated.take() {
                    if let (Some(frame), Some(msg)) = (self.frame.as_mut(), self.message.as_mut()) {
                        frame.done = validated;
                        msg.utf8 = utf8;
                    }
                }
            }
            let Some(frame) = self.frame.as_mut() else {
                return Ok(None);
            };
            // Payload bytes of this frame present in the buffer.
            let avail = usize::try_from(frame.remaining).map_or(buf.len(), |r| r.min(buf.len()));
            if let Some(msg) = self.message.as_mut().filter(|m| reassembling(frame, m, config)) {
                // A fragment of a reassembled message: its bytes go straight
                // to the message, unmasked as they are copied (no pass over
                // them in the receive buffer first).
                let complete = frame.remaining == avail as u64;
                if avail == 0 && !complete {
                    return Ok(None);
                }
                let offset = (frame.taken as usize & 3) + frame.unmasked;
                append_fragment(msg, &buf[..avail], frame.unmasked, frame.done, frame.mask, offset)?;
                buf.advance(avail);
                frame.remaining -= avail as u64;
                frame.taken += avail as u64;
                frame.done = 0;
                frame.unmasked = 0;
                if !complete {
                    return Ok(None);
                }
                let fin = frame.fin;
                self.frame = None;
                if !fin {
                    continue;
                }
                let item = assembled_message(msg);
                self.message = None;
                return item.map(Some);
            }
            if avail > frame.unmasked && !defers_unmasking(frame, self.message.as_ref(), avail, config) {
                unmask_buffered(frame, buf, avail);
            }
            if avail > frame.done {
                let fresh = &buf[frame.done..avail];
                if !frame.opcode.is_control() {
                    if let Some(msg) = self.message.as_mut().filter(|m| m.decoding.is_none()) {
                        if msg.kind == DataKind::Text {
                            // RFC 6455 §8.1: fail fast on invalid text.
                            msg.utf8.feed(fresh).map_err(|_| ProtocolError::InvalidUtf8)?;
                        }
                    }
                }
                frame.done = avail;
            }
            let complete = frame.remaining == avail as u64;
            if frame.opcode.is_control() {
                if !complete {
                    return Ok(None);
                }
                let payload = take(buf, avail);
                let opcode = frame.opcode;
                self.frame = None;
                return Ok(Some(match opcode {
                    OpCode::Ping => Item::Ping(payload),
                    OpCode::Pong => Item::Pong(payload),
                    _ => Item::Close(payload),
                }));
            }
            let Some(msg) = self.message.as_mut() else {
                return Ok(None);
            };
            // A message is only marked for decoding when an extension is in use.
            let decoding = msg.decoding.is_some();
            if let Some(ext) = ext.as_deref_mut().filter(|_| decoding) {
                let last = complete && frame.fin;
                match decode_step(frame, msg, ext, buf, config, avail, last)? {
                    Decoded::NeedMore => return Ok(None),
                    Decoded::NextFrame => {
                        self.frame = None;
                        continue;
                    }
                    Decoded::Item(item, done) => {
                        msg.delivered = true;
                        if done {
                            self.frame = None;
                            self.message = None;
                        } else if frame.remaining == 0 && !last {
                            self.frame = None;
                        }
                        return Ok(Some(item));
                    }
                }
            }
            let fin = complete && frame.fin;
            if config.streaming {
                // Take the fresh bytes off the buffer at once and hand them
                // out, so the receive buffer never holds a piece beside its
                // copy.
                if avail == 0 && !complete {
                    return Ok(None);
                }
                frame.remaining -= avail as u64;
                frame.taken += avail as u64;
                frame.done = 0;
                frame.unmasked = 0;
                if complete {
                    self.frame = None;
                }
                if fin && msg.kind == DataKind::Text {
                    msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                }
                let data = take(buf, avail);
                let first = !msg.delivered;
                msg.delivered = true;
                let kind = msg.kind;
                if fin {
                    self.message = None;
                }
                // An empty piece that neither starts nor ends the message says nothing.
                if data.is_empty() && !first && !fin {
                    continue;
                }
                return Ok(Some(Item::Fragment(Fragment { kind, data, first, fin })));
            }
            if !complete {
                return Ok(None);
            }
            // An unfragmented message: a slice of the receive buffer (no
            // copy), or its own copy when short.
            let data = take(buf, avail);
            self.frame = None;
            let kind = msg.kind;
            if kind == DataKind::Text {
                msg.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
            }
            self.message = None;
            return Ok(Some(message(kind, data)));
        }
    }

    /// The fast path for the common case: a whole unfragmented text or
    /// binary frame is in the buffer and passes every check of
    /// [`Reader::start_frame`]. It is split off, unmasked and validated in
    /// one go. Anything else (`Ok(None)`) takes the general path, which also
    /// reports the errors.
    fn whole_message(&mut self, buf: &mut BytesMut, config: &Config) -> Result<Option<Item>, ProtocolError> {
        let Some((kind, mask, header_len, end)) = plain_header(buf, self.role, config) else {
            return Ok(None);
        };
        // Whole frame present?
        if end > buf.len() {
            return Ok(None);
        }
        let len = end - header_len;
        if len < OWN_BELOW {
            // A short message gets its own allocation.
            let own = own_payload(&buf[header_len..end], mask);
            if kind == DataKind::Text && simdutf8::basic::from_utf8(&own).is_err() {
                // RFC 6455 §8.1.
                return Err(ProtocolError::InvalidUtf8);
            }
            buf.advance(end);
            return Ok(Some(message(kind, own)));
        }
        let mut frame = buf.split_to(end);
        let payload = &mut frame[header_len..];
        if let Some(key) = mask {
            apply_mask(payload, key, 0);
        }
        if kind == DataKind::Text && simdutf8::basic::from_utf8(payload).is_err() {
            // RFC 6455 §8.1.
            return Err(ProtocolError::InvalidUtf8);
        }
        let mut data = frame.freeze();
        data.advance(header_len);
        Ok(Some(message(kind, data)))
    }

    /// Checks a header against RFC 6455 §5 and the limits, before any of its
    /// payload is buffered, and opens or continues the message it belongs to.
    fn start_frame(
        &mut self,
        h: &FrameHeader,
        config: &Config,
        ext: Option<&dyn Extension>,
    ) -> Result<(), ProtocolError> {
        // §5.2: RSV bits MUST be 0 unless an extension defines them.
        let rsv: Rsv = h.rsv();
        let owned = ext.map_or(0, |e| e.rsv());
        if rsv & !owned != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        // RFC 7692 §6: permessage-deflate owns RSV1, on the first frame of a
        // data message only (§6.1: never on control or continuation frames).
        if rsv != 0 && !matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::CompressedBitMisplaced);
        }
        // §5.1: clients mask every frame, servers none.
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.opcode.is_control() {
            // §5.5: control frames are not fragmented and carry at most 125 bytes.
            if !h.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(h.payload_len));
            }
            return Ok(());
        }
        if h.payload_len > config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                len: h.payload_len,
                limit: config.max_frame_size,
            });
        }
        // §5.4: a message is a start frame then continuations.
        let msg = match (h.opcode, self.message.as_mut()) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(msg)) => msg,
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (op, None) => self.message.insert(InMessage {
                kind: if op == OpCode::Text {
                    DataKind::Text
                } else {
                    DataKind::Binary
                },
                len: 0,
                assembled: BytesMut::new(),
                fragmented: !h.fin,
                delivered: false,
                utf8: Utf8Validator::new(),
                decoding: (rsv != 0 && ext.is_some_and(|e| e.decodes(rsv))).then(Box::default),
            }),
        };
        let len = msg.len.saturating_add(h.payload_len);
        // A compressed message is held to the limit by its inflated size,
        // checked while inflating (RFC 7692 §8: decompression bombs).
        if len > config.max_message_size as u64 && msg.decoding.is_none() {
            return Err(ProtocolError::MessageTooLarge {
                len,
                limit: config.max_message_size,
            });
        }
        msg.len = len;
        Ok(())
    }
}
