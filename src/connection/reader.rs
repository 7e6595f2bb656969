//! The receive path of an open connection: frames out of the buffer,
//! unmasked in place, text validated as it arrives, messages reassembled
//! (or streamed), every framing rule of RFC 6455 §5 enforced.

use crate::Role;
use crate::config::Config;
use crate::error::ProtocolError;
use crate::event::{DataKind, Fragment};
use crate::frame::{FrameError, FrameHeader, OpCode};
use crate::mask::{apply_mask, extend_masked};
use crate::utf8::{Utf8Bytes, Utf8Validator};
#[cfg(feature = "deflate")]
use alloc::boxed::Box;
#[cfg(feature = "deflate")]
use alloc::vec::Vec;
use bytes::{Buf, Bytes, BytesMut};

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

/// A whole message's item; its text was validated as it arrived.
fn message(kind: DataKind, data: Bytes) -> Item {
    match kind {
        DataKind::Binary => Item::Binary(data),
        DataKind::Text => Item::Text(Utf8Bytes::from_validated(data)),
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
    /// permessage-deflate: its first frame had RSV1 (RFC 7692 §6.1).
    #[cfg(feature = "deflate")]
    compressed: Option<Box<Inflating>>,
}

/// The inflating side of a compressed message being received.
#[cfg(feature = "deflate")]
#[derive(Debug, Default)]
struct Inflating {
    /// Inflated bytes not yet handed out (the whole message when
    /// reassembling, the next piece in streaming mode).
    out: Vec<u8>,
    /// Inflated bytes already handed out (streaming mode).
    delivered: usize,
    /// How many octets of the 0x00 0x00 0xff 0xff tail were inflated.
    tail_fed: usize,
    /// A piece was handed out (streaming mode).
    started: bool,
}

/// The most a streaming piece of a compressed message holds.
#[cfg(feature = "deflate")]
const INFLATE_PIECE: usize = 32 << 10;

/// What one inflating step of a compressed message produced.
#[cfg(feature = "deflate")]
enum Inflated {
    /// Nothing yet; more input is needed.
    NeedMore,
    /// This frame is used up and the message goes on: read the next header.
    NextFrame,
    /// A piece (streaming) or the message; `done`: the message is complete.
    Item(Item, bool),
}

impl InMessage {
    fn is_compressed(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.compressed.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }
}

/// Inflates what is available of a compressed message's frame (RFC 7692
/// §7.2.2): the payload bytes at the front of `buf` (`avail` of them), then,
/// once the final frame is complete (`last`), the 0x00 0x00 0xff 0xff tail.
/// Output goes into bounded steps: the buffer never grows past the message
/// limit + 1, so a decompression bomb ends with 1009 before the memory is
/// reserved. Text is validated as it is inflated (RFC 6455 §8.1).
#[cfg(feature = "deflate")]
#[allow(clippy::too_many_arguments)]
fn inflate_step(
    frame: &mut InFrame,
    kind: DataKind,
    utf8: &mut Utf8Validator,
    msg: &mut Inflating,
    inflater: &mut crate::deflate::Inflater,
    buf: &mut BytesMut,
    config: &Config,
    avail: usize,
    last: bool,
) -> Result<Inflated, ProtocolError> {
    use crate::deflate::{TAIL, inflate_error};
    let limit = config.max_message_size;
    let mut wire_left = avail;
    let mut full;
    loop {
        // Room for output: the message limit + 1 at most (one byte past the
        // limit proves it is exceeded); in streaming mode one piece at most.
        if msg.out.len() == msg.out.capacity() {
            let most = limit.saturating_add(1).saturating_sub(msg.delivered);
            let target = if config.streaming {
                INFLATE_PIECE.min(most)
            } else {
                msg.out
                    .capacity()
                    .saturating_mul(2)
                    .max(avail.saturating_mul(4))
                    .max(4096)
                    .min(most)
            };
            if target <= msg.out.len() {
                // A streaming piece is full: hand it out first.
                full = true;
                break;
            }
            msg.out.reserve_exact(target - msg.out.len());
        }
        let from_tail = wire_left == 0;
        let input: &[u8] = if !from_tail {
            &buf[..wire_left]
        } else if last {
            &TAIL[msg.tail_fed.min(TAIL.len())..]
        } else {
            &[]
        };
        let input_len = input.len();
        let before = msg.out.len();
        let n = inflater.inflate(input, &mut msg.out).map_err(inflate_error)?;
        let produced = msg.out.len() - before;
        if from_tail {
            msg.tail_fed += n;
        } else if n > 0 {
            buf.advance(n);
            wire_left -= n;
            frame.remaining -= n as u64;
            frame.taken += n as u64;
            frame.unmasked = frame.unmasked.saturating_sub(n);
            frame.done = frame.done.saturating_sub(n);
        }
        let total = msg.delivered.saturating_add(msg.out.len());
        if total > limit {
            return Err(ProtocolError::MessageTooLarge {
                len: total as u64,
                limit,
            });
        }
        if kind == DataKind::Text && produced > 0 {
            utf8.feed(&msg.out[before..]).map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        full = msg.out.len() == msg.out.capacity();
        let input_done = wire_left == 0 && (!last || msg.tail_fed >= TAIL.len());
        if !full && (input_done || (n == 0 && produced == 0) || input_len == 0) {
            break;
        }
    }
    let done = last && wire_left == 0 && msg.tail_fed >= TAIL.len() && !full;
    if done {
        if kind == DataKind::Text {
            utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        inflater.end_message();
    }
    if config.streaming {
        if msg.out.is_empty() && !done {
            if frame.remaining == 0 && !last {
                return Ok(Inflated::NextFrame);
            }
            return Ok(Inflated::NeedMore);
        }
        let data = Bytes::from(core::mem::take(&mut msg.out));
        let first = !msg.started;
        msg.started = true;
        msg.delivered += data.len();
        return Ok(Inflated::Item(
            Item::Fragment(Fragment {
                kind,
                data,
                first,
                fin: done,
            }),
            done,
        ));
    }
    if done {
        let data = Bytes::from(core::mem::take(&mut msg.out));
        return Ok(Inflated::Item(message(kind, data), true));
    }
    if frame.remaining == 0 && !last {
        return Ok(Inflated::NextFrame);
    }
    Ok(Inflated::NeedMore)
}

/// Receive state of an open connection.
#[derive(Debug)]
pub(crate) struct Reader {
    role: Role,
    frame: Option<InFrame>,
    message: Option<InMessage>,
    /// permessage-deflate, when negotiated: RSV1 marks a compressed message.
    #[cfg(feature = "deflate")]
    inflater: Option<Box<crate::deflate::Inflater>>,
}

impl Reader {
    pub(crate) fn new(role: Role) -> Self {
        Reader {
            role,
            frame: None,
            message: None,
            #[cfg(feature = "deflate")]
            inflater: None,
        }
    }

    /// permessage-deflate was negotiated: from now on RSV1 may mark the first
    /// frame of a data message (RFC 7692 §6).
    #[cfg(feature = "deflate")]
    pub(crate) fn set_inflater(&mut self, inflater: crate::deflate::Inflater) {
        self.inflater = Some(Box::new(inflater));
    }

    /// The receive half of permessage-deflate, when negotiated.
    #[cfg(feature = "deflate")]
    pub(crate) fn inflater(&self) -> Option<&crate::deflate::Inflater> {
        self.inflater.as_deref()
    }

    /// Whether RSV1 may mark a compressed message.
    fn compression(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.inflater.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }

    /// Takes from `data` the bytes that continue the current frame's payload
    /// when everything buffered is already-unmasked payload, and appends them
    /// to `buf` unmasked in the same pass as the copy. Returns how many bytes
    /// it took; the caller appends the rest as they are.
    pub(crate) fn absorb(&mut self, buf: &mut BytesMut, data: &[u8]) -> usize {
        let Some(frame) = self.frame.as_mut() else { return 0 };
        let Some(key) = frame.mask else { return 0 };
        if buf.len() != frame.unmasked {
            return 0;
        }
        let room = frame.remaining.saturating_sub(buf.len() as u64);
        let n = usize::try_from(room).map_or(data.len(), |r| r.min(data.len()));
        let offset = (frame.taken as usize & 3) + frame.unmasked;
        extend_masked(buf, &data[..n], key, offset);
        frame.unmasked += n;
        n
    }

    /// Reads the next item out of `buf`: `Ok(None)` when more bytes are
    /// needed. Bytes of an incomplete frame are unmasked and validated as
    /// they arrive, so invalid text fails before its frame is complete.
    pub(crate) fn next(&mut self, buf: &mut BytesMut, config: &Config) -> Result<Option<Item>, ProtocolError> {
        if self.frame.is_none() && self.message.is_none() && !config.streaming {
            if let Some(item) = self.whole_message(buf, config)? {
                return Ok(Some(item));
            }
        }
        loop {
            if self.frame.is_none() {
                let (header, header_len) = match FrameHeader::decode(buf) {
                    Ok(Some(h)) => h,
                    Ok(None) => return Ok(None),
                    Err(FrameError::ReservedOpcode(op)) => return Err(ProtocolError::ReservedOpcode(op)),
                    Err(FrameError::LengthTopBitSet) => return Err(ProtocolError::LengthTopBitSet),
                };
                self.start_frame(&header, config)?;
                buf.advance(header_len);
                // The length passed the limits: make room for the payload now,
                // so the buffer is not regrown (and copied) as it arrives, but
                // never more than RESERVE_AHEAD at once (limits may be set
                // very high). (A fragmented message's bytes go to the message
                // buffer.)
                if header.fin
                    && !header.rsv1
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
                    unmasked: 0,
                    taken: 0,
                });
            }
            let Some(frame) = self.frame.as_mut() else {
                return Ok(None);
            };
            // Payload bytes of this frame present in the buffer.
            let avail = usize::try_from(frame.remaining).map_or(buf.len(), |r| r.min(buf.len()));
            if avail > frame.unmasked {
                if let Some(key) = frame.mask {
                    // The key position is the count of payload bytes before these.
                    let offset = (frame.taken as usize & 3) + frame.unmasked;
                    apply_mask(&mut buf[frame.unmasked..avail], key, offset);
                }
                frame.unmasked = avail;
            }
            if avail > frame.done {
                let fresh = &buf[frame.done..avail];
                if !frame.opcode.is_control() {
                    if let Some(msg) = self.message.as_mut().filter(|m| !m.is_compressed()) {
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
                let payload = buf.split_to(avail).freeze();
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
            #[cfg(feature = "deflate")]
            if let (Some(inflating), Some(inflater)) = (msg.compressed.as_deref_mut(), self.inflater.as_deref_mut()) {
                let last = complete && frame.fin;
                let step = inflate_step(
                    frame,
                    msg.kind,
                    &mut msg.utf8,
                    inflating,
                    inflater,
                    buf,
                    config,
                    avail,
                    last,
                )?;
                match step {
                    Inflated::NeedMore => return Ok(None),
                    Inflated::NextFrame => {
                        self.frame = None;
                        continue;
                    }
                    Inflated::Item(item, done) => {
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
            if config.streaming || msg.fragmented {
                // Take the fresh bytes off the buffer at once: hand them out
                // (streaming) or append them to the message (reassembly), so
                // the receive buffer never holds a fragment beside its copy.
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
                if config.streaming {
                    let data = buf.split_to(avail).freeze();
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
                msg.assembled.extend_from_slice(&buf[..avail]);
                buf.advance(avail);
                if !fin {
                    if complete {
                        continue;
                    }
                    return Ok(None);
                }
                let data = core::mem::take(&mut msg.assembled).freeze();
                let kind = msg.kind;
                self.message = None;
                return Ok(Some(message(kind, data)));
            }
            if !complete {
                return Ok(None);
            }
            // An unfragmented message: a slice of the receive buffer, no copy.
            let data = buf.split_to(avail).freeze();
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
        let Ok(Some((h, header_len))) = FrameHeader::decode(buf) else {
            return Ok(None);
        };
        let kind = match h.opcode {
            OpCode::Text => DataKind::Text,
            OpCode::Binary => DataKind::Binary,
            _ => return Ok(None),
        };
        let limit = config.max_frame_size.min(config.max_message_size) as u64;
        if !h.fin
            || h.rsv1
            || h.rsv2
            || h.rsv3
            || h.mask.is_some() != (self.role == Role::Server)
            || h.payload_len > limit
        {
            return Ok(None);
        }
        // Whole frame present? (Checked without overflow, whatever the limits.)
        let Some(end) = usize::try_from(h.payload_len)
            .ok()
            .and_then(|len| len.checked_add(header_len))
        else {
            return Ok(None);
        };
        if end > buf.len() {
            return Ok(None);
        }
        let mut frame = buf.split_to(end);
        let payload = &mut frame[header_len..];
        if let Some(key) = h.mask {
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
    fn start_frame(&mut self, h: &FrameHeader, config: &Config) -> Result<(), ProtocolError> {
        // §5.2: RSV bits MUST be 0 unless an extension defines them.
        // RFC 7692 §6: permessage-deflate owns RSV1, on the first frame of a
        // data message only (§6.1: never on control or continuation frames).
        if h.rsv2 || h.rsv3 || (h.rsv1 && !self.compression()) {
            return Err(ProtocolError::ReservedBits);
        }
        if h.rsv1 && !matches!(h.opcode, OpCode::Text | OpCode::Binary) {
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
                #[cfg(feature = "deflate")]
                compressed: h.rsv1.then(Box::default),
            }),
        };
        let len = msg.len.saturating_add(h.payload_len);
        // A compressed message is held to the limit by its inflated size,
        // checked while inflating (RFC 7692 §8: decompression bombs).
        if len > config.max_message_size as u64 && !msg.is_compressed() {
            return Err(ProtocolError::MessageTooLarge {
                len,
                limit: config.max_message_size,
            });
        }
        msg.len = len;
        Ok(())
    }
}
