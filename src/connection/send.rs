//! The send side: whole messages, fragments, control frames and the close
//! frame, checked (state, limits, UTF-8 of fragments) before anything is
//! queued, then framed, masked (client) and, through the extension in use,
//! transformed.

use super::Connection;
use super::lifecycle::Transition;
use super::output::Output;
use super::timers::TimerKind;
use crate::config::Backpressure;
use crate::error::{Error, Failure, Misuse};
use crate::event::CloseInfo;
use crate::event::{Compression, Message, Outgoing};
use crate::types::{DataKind, ReadyState, Role};
use crate::wire::close::{CloseCode, MAX_CLOSE_REASON, encode_close};
use crate::wire::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::wire::utf8::Utf8Validator;
use alloc::vec::Vec;
use bytes::Bytes;

/// Payloads from this size on are queued as their own chunk (no copy into
/// the output buffer) when the machine owns them.
const COPY_BELOW: usize = 4096;

/// Borrowed payloads from this size on are offered to the transport by
/// [`Connection::send_direct`] rather than copied into the output.
pub(crate) const DIRECT_FROM: usize = COPY_BELOW;

/// Frames encoded beforehand (prepared messages) from this size on are
/// queued as a shared chunk; shorter ones are copied into the output. In
/// `benches/broadcast.rs` (10,000 connections) copying was faster up to
/// about 256 bytes (16 B: ~45 ns per recipient against ~75 ns for a shared
/// chunk, whose reference count is two atomic operations and whose chunk
/// list is one more cache line), sharing from there on (1 KiB: ~64 ns
/// against ~107 ns).
const SHARE_FROM: usize = 256;

/// The data message being sent in fragments.
#[derive(Debug)]
pub(crate) struct Sending {
    kind: DataKind,
    /// The extension encodes it.
    encoded: bool,
    /// Its text so far is a valid UTF-8 prefix.
    utf8: Utf8Validator,
}

impl Connection {
    /// Sends a whole message: text or binary, borrowed or owned (see
    /// [`Outgoing`]). With permessage-deflate in use, it is compressed when
    /// it reaches the threshold ([`Compression::Auto`]). A server queues a
    /// large owned payload without copying it (when it is not compressed).
    ///
    /// ```
    /// use wsmachine::{Config, Connection, Error, ReadyState};
    /// let mut conn = Connection::open_server(Config::default());
    /// conn.send("hello")?;
    /// assert_eq!(conn.pending_output(), b"\x81\x05hello");
    /// // After our close, sending is refused and nothing is queued.
    /// conn.close(wsmachine::CloseCode::NORMAL, "")?;
    /// assert_eq!(conn.send("late"), Err(Error::NotOpen(ReadyState::Closing)));
    /// # Ok::<(), wsmachine::Error>(())
    /// ```
    pub fn send<'a>(&mut self, message: impl Into<Outgoing<'a>>) -> Result<(), Error> {
        self.send_with(message, Compression::Auto)
    }

    /// Sends a whole message, choosing whether to compress it when
    /// permessage-deflate (RFC 7692) was negotiated; without it the choice
    /// is ignored.
    pub fn send_with<'a>(&mut self, message: impl Into<Outgoing<'a>>, compression: Compression) -> Result<(), Error> {
        self.check_can_send_message()?;
        self.on_message_activity();
        match message.into() {
            Outgoing::Text(t) => self.send_slice(OpCode::Text, t.as_bytes(), compression),
            Outgoing::Binary(b) => self.send_slice(OpCode::Binary, b, compression),
            Outgoing::Owned(m) => {
                let (opcode, payload) = match m {
                    Message::Text(t) => (OpCode::Text, t.into_bytes()),
                    Message::Binary(b) => (OpCode::Binary, b),
                };
                if self.wants_encoding(payload.len(), compression) {
                    return self.send_encoded(opcode, &payload, true);
                }
                self.check_room(payload.len())?;
                self.write_frame_owned(opcode, true, payload);
                Ok(())
            }
        }
    }

    /// Sends a whole message as [`Connection::send`] does, and when its
    /// frame can go to the transport as it stands, offers it to `write`
    /// first instead of copying the payload into the output: for a driver
    /// whose transport can take bytes now (a non-blocking write).
    ///
    /// That is the case when nothing else is queued, the payload is
    /// borrowed, goes out unchanged (a server's frame: unmasked; not
    /// compressed) and is long enough (4 KiB) for the copy to matter.
    /// Then `write` gets the frame's header and payload, writes what the
    /// transport takes without waiting and returns how many bytes it
    /// wrote (0 when the transport would block or failed: the driver
    /// keeps its error); only the rest is queued. Otherwise `write` is not
    /// called and the message is queued as by `send`. Either way, what
    /// remains is in [`Connection::pending_output`] as usual, and a
    /// refused message (the same checks as `send`) writes nothing.
    ///
    /// ```
    /// use wsmachine::{Config, Connection};
    /// let mut conn = Connection::open_server(Config::default());
    /// let payload = vec![7u8; 10_000];
    /// let mut wire = Vec::new();
    /// conn.send_direct(&payload[..], |[head, body]| {
    ///     // A transport that takes the header and 5,000 payload bytes now.
    ///     wire.extend_from_slice(head);
    ///     wire.extend_from_slice(&body[..5_000]);
    ///     head.len() + 5_000
    /// })?;
    /// assert_eq!(&wire[..4], [0x82, 126, 0x27, 0x10]); // RFC 6455 §5.2: FIN, binary, 16-bit length
    /// assert_eq!(conn.buffered_amount(), 5_000); // the rest is queued
    /// # Ok::<(), wsmachine::Error>(())
    /// ```
    pub fn send_direct<'a>(
        &mut self,
        message: impl Into<Outgoing<'a>>,
        write: impl FnOnce([&[u8]; 2]) -> usize,
    ) -> Result<(), Error> {
        let message = message.into();
        let (opcode, payload): (_, &'a [u8]) = match &message {
            Outgoing::Text(t) => (OpCode::Text, (*t).as_bytes()),
            Outgoing::Binary(b) => (OpCode::Binary, *b),
            Outgoing::Owned(_) => return self.send(message),
        };
        let direct = self.role == Role::Server
            && payload.len() >= DIRECT_FROM
            && self.out.len() == 0
            && self.pending_pong.is_none()
            && !self.wants_encoding(payload.len(), Compression::Auto);
        if !direct {
            return self.send(message);
        }
        self.check_can_send_message()?;
        // The same limit as a queued frame: what `send` refuses is refused.
        self.check_room(payload.len())?;
        self.on_message_activity();
        let (head, n, _) = self.header(opcode, true, 0, payload.len());
        let head = &head.to_le_bytes()[..n];
        let written = write([head, payload]).min(n + payload.len());
        if written < n {
            self.out.extend(&head[written..]);
            self.out.extend(payload);
        } else {
            self.out.extend(&payload[written - n..]);
        }
        Ok(())
    }

    #[inline]
    fn send_slice(&mut self, opcode: OpCode, payload: &[u8], compression: Compression) -> Result<(), Error> {
        if self.wants_encoding(payload.len(), compression) {
            return self.send_encoded(opcode, payload, true);
        }
        self.check_room(payload.len())?;
        self.write_frame(opcode, true, payload);
        Ok(())
    }

    /// Whether a message of `len` bytes goes out transformed by the
    /// extension in use.
    #[inline]
    pub(super) fn wants_encoding(&self, len: usize, compression: Compression) -> bool {
        match &self.extension {
            None => false,
            Some(ext) => match compression {
                Compression::Auto => len >= ext.threshold(),
                Compression::On => true,
                Compression::Off => false,
            },
        }
    }

    /// Encodes `payload` as the next piece of a message and queues it as
    /// one frame, the extension's RSV bits on the message's first frame
    /// only (RFC 7692 §6.1).
    pub(super) fn send_encoded(&mut self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<(), Error> {
        // Check before encoding: the context must not move on for a frame
        // that is not sent.
        let bound = self
            .extension
            .as_deref()
            .map_or(payload.len(), |e| e.encoded_bound(payload.len()));
        self.check_room(bound)?;
        let Some(ext) = self.extension.as_deref_mut() else {
            self.write_frame(opcode, fin, payload);
            return Ok(());
        };
        let mut encoded = Vec::new();
        let rsv = ext.encode(payload, fin, &mut encoded);
        let rsv = if opcode == OpCode::Continuation { 0 } else { rsv };
        self.write_frame_vec(opcode, fin, rsv, encoded);
        Ok(())
    }

    /// The output has room for a frame with `payload_len` bytes of payload.
    /// Under [`Backpressure::Close`] a frame that does not fit gives the
    /// connection up (1008): the output is dropped, since a peer that does
    /// not read would take neither it nor a close frame behind it.
    #[inline]
    pub(crate) fn check_room(&mut self, payload_len: usize) -> Result<(), Error> {
        let (buffered, limit) = (self.out.len(), self.config.max_output_buffer);
        if payload_len.saturating_add(MAX_HEADER_LEN).saturating_add(buffered) > limit {
            return Err(self.output_full(buffered, limit));
        }
        Ok(())
    }

    /// [`Connection::check_room`] found no room.
    #[cold]
    fn output_full(&mut self, buffered: usize, limit: usize) -> Error {
        if self.config.backpressure == Backpressure::Close && self.life.state() != ReadyState::Closed {
            self.drop_output();
            self.apply(Transition::Failed(
                Failure::OutputFull { buffered, limit },
                CloseInfo {
                    code: CloseCode::POLICY_VIOLATION,
                    reason: "output buffer full".into(),
                    was_clean: false,
                },
            ));
        }
        Error::OutputFull { buffered, limit }
    }

    /// Drops everything queued for the transport (and a waiting pong): the
    /// connection is being given up because the transport does not take
    /// its output, so nothing queued would ever be written.
    pub(crate) fn drop_output(&mut self) {
        self.out = Output::default();
        self.pending_pong = None;
        self.timers.stop(TimerKind::Drain);
    }

    /// Queues the automatic answer to a ping: at once when nothing else
    /// waits for the transport; otherwise it waits in one slot, queued
    /// before the next frame or when the output drains, and a newer ping
    /// replaces its payload (RFC 6455 §5.5.3: an endpoint may answer only
    /// the most recent ping).
    pub(crate) fn queue_auto_pong(&mut self, payload: Bytes) {
        self.pending_pong = Some(payload);
        if self.out.len() == 0 {
            self.flush_pong();
        }
    }

    /// Queues the waiting automatic pong, if any. Called before every
    /// frame and whenever the output drains, so the common case (no pong
    /// waits) is one inlined test.
    #[inline]
    pub(crate) fn flush_pong(&mut self) {
        if self.pending_pong.is_some() {
            self.write_pending_pong();
        }
    }

    #[cold]
    fn write_pending_pong(&mut self) {
        if let Some(payload) = self.pending_pong.take() {
            if !self.life.close_sent() && self.life.state() != ReadyState::Closed {
                self.write_frame(OpCode::Pong, true, &payload);
            }
        }
    }

    #[inline]
    fn check_can_send_data(&self) -> Result<(), Error> {
        match self.life.state() {
            ReadyState::Open => Ok(()),
            state => Err(Error::NotOpen(state)),
        }
    }

    /// A whole message may be sent: OPEN, and no fragmented message unfinished.
    #[inline]
    pub(super) fn check_can_send_message(&self) -> Result<(), Error> {
        self.check_can_send_data()?;
        if self.sending.is_some() {
            return Err(Misuse::MessageInProgress.into());
        }
        Ok(())
    }

    /// Sends one fragment of a data message (RFC 6455 §5.4). The first call
    /// starts a message of `kind`; later calls must use the same `kind`;
    /// `fin` ends it. Control frames may be sent between fragments.
    ///
    /// With [`Config::validate_outgoing_text`](crate::Config::validate_outgoing_text),
    /// text fragments are checked as UTF-8 across fragments (a character may
    /// be split between them; the message must not end inside one). On a
    /// failed check nothing is sent.
    ///
    /// With permessage-deflate in use the message is compressed
    /// ([`Compression::Auto`] compresses every fragmented message); see
    /// [`Connection::send_fragment_with`].
    ///
    /// ```
    /// use wsmachine::{Config, Connection, DataKind};
    /// let mut conn = Connection::open_server(Config::default());
    /// let euro = "€".as_bytes();
    /// conn.send_fragment(DataKind::Text, &euro[..1], false)?; // a character split across fragments
    /// conn.send_fragment(DataKind::Text, &euro[1..], true)?;
    /// assert_eq!(conn.pending_output(), [0x01, 0x01, 0xe2, 0x80, 0x02, 0x82, 0xac]);
    /// # Ok::<(), wsmachine::Error>(())
    /// ```
    pub fn send_fragment(&mut self, kind: DataKind, data: &[u8], fin: bool) -> Result<(), Error> {
        self.send_fragment_with(kind, data, fin, Compression::Auto)
    }

    /// Like [`Connection::send_fragment`], choosing at the first fragment
    /// whether the message is compressed (permessage-deflate, RFC 7692);
    /// the choice of later fragments is ignored. Each compressed fragment
    /// ends with a sync flush, so the peer can inflate it as it arrives.
    pub fn send_fragment_with(
        &mut self,
        kind: DataKind,
        data: &[u8],
        fin: bool,
        compression: Compression,
    ) -> Result<(), Error> {
        self.check_can_send_data()?;
        self.on_message_activity();
        let (opcode, encoded, mut utf8) = match &self.sending {
            None => (
                match kind {
                    DataKind::Text => OpCode::Text,
                    DataKind::Binary => OpCode::Binary,
                },
                self.wants_encoding(usize::MAX, compression),
                Utf8Validator::new(),
            ),
            Some(s) if s.kind == kind => (OpCode::Continuation, s.encoded, s.utf8),
            Some(s) => {
                return Err(Misuse::FragmentKindMismatch {
                    message: s.kind,
                    fragment: kind,
                }
                .into());
            }
        };
        let room = match (&self.extension, encoded) {
            (Some(ext), true) => ext.encoded_bound(data.len()),
            _ => data.len(),
        };
        self.check_room(room)?;
        if kind == DataKind::Text && self.config.validate_outgoing_text {
            utf8.feed(data).map_err(|_| Misuse::InvalidUtf8)?;
            if fin {
                utf8.finish().map_err(|_| Misuse::InvalidUtf8)?;
            }
        }
        if encoded {
            self.send_encoded(opcode, data, fin)?;
        } else {
            self.write_frame(opcode, fin, data);
        }
        self.sending = (!fin).then_some(Sending { kind, encoded, utf8 });
        Ok(())
    }

    /// Sends a ping (at most 125 bytes of payload, RFC 6455 §5.5).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Sends an unsolicited pong, or answers a ping when `auto_pong` is off
    /// (at most 125 bytes, RFC 6455 §5.5.3).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        self.check_can_send_data()?;
        if payload.len() > 125 {
            return Err(Misuse::ControlPayloadTooLong { len: payload.len() }.into());
        }
        self.check_room(payload.len())?;
        self.write_frame(opcode, true, payload);
        Ok(())
    }

    /// Starts the closing handshake (`WebSocket.close(code, reason)`): sends
    /// a close frame and moves to CLOSING. The code must be valid on the
    /// wire (1000–1003, 1007–1014, 3000–4999) and the reason at most 123
    /// bytes of UTF-8.
    ///
    /// The close timeout ([`Config::close_timeout`](crate::Config::close_timeout))
    /// starts with it: [`Connection::poll_timeout`] reports it at once, and
    /// if the peer's close frame has not come by its deadline,
    /// [`Connection::handle_timeout`] ends the connection CLOSED with 1006.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsmachine::{CloseCode, Config, Connection, Event, Instant, ReadyState};
    /// let config = Config { close_timeout: Duration::from_secs(1), ..Config::default() };
    /// let mut conn = Connection::open_server(config);
    /// conn.close(CloseCode::NORMAL, "bye")?;
    /// assert_eq!(conn.state(), ReadyState::Closing);
    /// // The loop passes time in whenever a deadline is due.
    /// let t0 = Instant::from_millis(10_000);
    /// assert!(conn.poll_timeout().is_some_and(|d| d <= t0));
    /// conn.handle_timeout(t0);
    /// assert_eq!(conn.poll_timeout(), Some(Instant::from_millis(11_000)));
    /// conn.handle_timeout(Instant::from_millis(11_000)); // no answer came
    /// assert!(matches!(conn.poll_event(), Some(Event::Error(wsmachine::Failure::CloseTimeout))));
    /// assert!(matches!(conn.poll_event(), Some(Event::Closed(info)) if info.code == CloseCode::ABNORMAL));
    /// # Ok::<(), wsmachine::Error>(())
    /// ```
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if self.life.state() != ReadyState::Open {
            return Err(Error::NotOpen(self.life.state()));
        }
        if !code.is_valid_on_wire() {
            return Err(Misuse::CloseCodeNotSendable(code).into());
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(Misuse::CloseReasonTooLong { len: reason.len() }.into());
        }
        self.write_close(code, reason);
        self.apply(Transition::Closing);
        Ok(())
    }

    /// Queues a close frame with `code` and (as much as fits of) `reason`.
    pub(crate) fn write_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; 125];
        let n = encode_close(code, reason, &mut payload);
        self.write_frame(OpCode::Close, true, &payload[..n]);
    }

    #[inline]
    fn header(&mut self, opcode: OpCode, fin: bool, rsv: u8, len: usize) -> (u128, usize, Option<[u8; 4]>) {
        // A waiting automatic pong goes before the next frame (this one is
        // not it: the pong is taken out of its slot before it is written).
        self.flush_pong();
        let mask = match self.role {
            Role::Server => None,
            Role::Client => {
                // RFC 6455 §5.3: a fresh, unpredictable key for every frame.
                let mut key = [0u8; 4];
                if let Some(rng) = self.rng.as_mut() {
                    rng.fill_bytes(&mut key);
                }
                Some(key)
            }
        };
        let mut header = FrameHeader::new(fin, opcode, mask, len as u64);
        header.set_rsv(rsv);
        let (word, n) = header.encode_word();
        (word, n, mask)
    }

    /// Queues one frame, copying (and for a client masking) the payload in
    /// one pass.
    #[inline]
    pub(crate) fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        let (head, n, mask) = self.header(opcode, fin, 0, payload.len());
        self.out.extend_frame(head, n, payload, mask);
    }

    /// Queues one frame whose payload is already a `Bytes`: a server hands
    /// large payloads to the transport without copying.
    #[inline]
    fn write_frame_owned(&mut self, opcode: OpCode, fin: bool, payload: Bytes) {
        if self.role == Role::Client || payload.len() < COPY_BELOW {
            return self.write_frame(opcode, fin, &payload);
        }
        let (head, n, _) = self.header(opcode, fin, 0, payload.len());
        self.out.extend(&head.to_le_bytes()[..n]);
        self.out.push_chunk(payload);
    }

    /// Queues a whole frame encoded beforehand (a prepared message's, for
    /// this role and extension): the waiting automatic pong goes first, as
    /// before any frame. Queued as a chunk of its own, uncopied (a reference
    /// count), unless it is so short that copying it is cheaper.
    pub(super) fn write_encoded_frame(&mut self, frame: &Bytes) {
        self.flush_pong();
        if frame.len() < SHARE_FROM {
            self.out.extend(frame);
        } else {
            self.out.push_chunk(frame.clone());
        }
    }

    /// Queues one frame whose payload the machine just produced (encoded
    /// data): a large one is masked in place (client) and queued as its own
    /// chunk, uncopied.
    fn write_frame_vec(&mut self, opcode: OpCode, fin: bool, rsv: u8, mut payload: Vec<u8>) {
        let (head, n, mask) = self.header(opcode, fin, rsv, payload.len());
        if payload.len() < COPY_BELOW {
            self.out.extend_frame(head, n, &payload, mask);
            return;
        }
        self.out.extend(&head.to_le_bytes()[..n]);
        if let Some(key) = mask {
            crate::wire::mask::apply_mask(&mut payload, key, 0);
        }
        self.out.push_chunk(Bytes::from(payload));
    }
}
