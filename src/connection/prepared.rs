//! Broadcast: a message framed once ([`PreparedMessage`]) and queued on many
//! connections by reference ([`Connection::send_prepared`]), so that its
//! payload is not copied per recipient.

use super::Connection;
use crate::error::Error;
use crate::event::{Compression, Message};
use crate::types::{DataKind, Role};
use crate::wire::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use alloc::vec::Vec;
use bytes::Bytes;

#[cfg(feature = "std")]
use crate::extension::SHARED_SLOTS;
#[cfg(feature = "std")]
use std::sync::OnceLock;

/// A whole message framed once, to be sent to many connections
/// (broadcast) without copying its payload for each of them.
///
/// [`PreparedMessage::new`] encodes the frame a server sends (RFC 6455
/// §5.2: header and payload, unmasked) into one [`Bytes`];
/// [`Connection::send_prepared`] then queues that frame on a connection
/// as a chunk of its output: a reference count, no payload bytes copied.
/// (A frame under 256 bytes is copied into the output instead: for so
/// little, a copy is cheaper than the shared chunk's reference counting,
/// as `benches/broadcast.rs` measures.)
/// Where a connection cannot use the shared frame, `send_prepared` frames
/// the message for it as [`Connection::send`] would, with the same result
/// on the wire:
///
/// - **client role**: every frame a client sends is masked with a fresh
///   key (RFC 6455 §5.3), so the payload is masked (copied) per
///   connection; only servers share the frame;
/// - **permessage-deflate** (RFC 7692), when the message is to be
///   compressed ([`Compression::Auto`]: from the connection's threshold
///   on): a peer that agreed to `server_no_context_takeover` (§7.1.1.1)
///   gets a compressed frame made once for all such peers (one per window
///   size, compressed at the level of the first connection that needs it,
///   at its first use; any level inflates the same). With context takeover
///   each compressed message depends on the ones before it on that
///   connection, so it is compressed per connection, like `send`.
///
/// It is `Send + Sync`: share it by reference or in an `Arc` across
/// threads. Through a driver, queue it with `connection_mut()`
/// (`ws.connection_mut().send_prepared(&message)`) and flush as after
/// any queued send (`blocking::WebSocket::flush`, the tokio stream's
/// `SinkExt::flush`).
///
/// ```
/// use wsmachine::{Config, Connection, PreparedMessage};
/// let message = PreparedMessage::new(vec![7u8; 4096]); // binary, framed once
/// assert_eq!(message.frame()[..4], [0x82, 126, 0x10, 0x00]); // FIN + binary, 16-bit length
/// let mut room: Vec<Connection> = (0..3).map(|_| Connection::open_server(Config::default())).collect();
/// for conn in &mut room {
///     conn.send_prepared(&message)?; // queued by reference
/// }
/// for conn in &mut room {
///     // Not a copy: the queued chunk is the prepared frame itself.
///     assert_eq!(conn.pending_output().as_ptr(), message.frame().as_ptr());
///     let n = conn.pending_output().len();
///     conn.consume_output(n); // written to the socket
/// }
/// # Ok::<(), wsmachine::Error>(())
/// ```
#[derive(Clone)]
pub struct PreparedMessage {
    kind: DataKind,
    /// The server's frame: header and payload.
    frame: Bytes,
    /// Where the payload starts in `frame`.
    header_len: usize,
    /// The frames compressed once, by the extension's shared slot.
    #[cfg(feature = "std")]
    encoded: [OnceLock<Bytes>; SHARED_SLOTS],
}

impl core::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("kind", &self.kind)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl PreparedMessage {
    /// Frames `message` (text or binary, one unfragmented frame) as a
    /// server sends it. This copies the payload once, behind the header.
    pub fn new(message: impl Into<Message>) -> Self {
        let (kind, payload) = match message.into() {
            Message::Text(t) => (DataKind::Text, t.into_bytes()),
            Message::Binary(b) => (DataKind::Binary, b),
        };
        let (frame, header_len) = frame(opcode(kind), 0, &payload);
        PreparedMessage {
            kind,
            frame,
            header_len,
            #[cfg(feature = "std")]
            encoded: Default::default(),
        }
    }

    /// Text or binary.
    pub fn kind(&self) -> DataKind {
        self.kind
    }

    /// The payload (a slice of [`PreparedMessage::frame`], no copy).
    pub fn payload(&self) -> Bytes {
        self.frame.slice(self.header_len..)
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.frame.len() - self.header_len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame a server sends, header and payload (uncompressed): what
    /// `send_prepared` queues on a server connection without an extension.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    fn payload_slice(&self) -> &[u8] {
        &self.frame[self.header_len..]
    }

    /// The frame compressed once for connections whose extension reports
    /// a shared encoding in `slot` (made by `ext` at the first use).
    #[cfg(feature = "std")]
    fn encoded_frame(&self, slot: usize, ext: &dyn crate::extension::Extension) -> Option<&Bytes> {
        let cell = self.encoded.get(slot)?;
        Some(cell.get_or_init(|| {
            let mut encoded = Vec::new();
            let rsv = ext.encode_shared(self.payload_slice(), &mut encoded);
            frame(opcode(self.kind), rsv, &encoded).0
        }))
    }
}

fn opcode(kind: DataKind) -> OpCode {
    match kind {
        DataKind::Text => OpCode::Text,
        DataKind::Binary => OpCode::Binary,
    }
}

/// A server's whole frame (FIN, unmasked) with `rsv` and `payload`, and
/// the header's length.
fn frame(opcode: OpCode, rsv: u8, payload: &[u8]) -> (Bytes, usize) {
    let mut header = FrameHeader::new(true, opcode, None, payload.len() as u64);
    header.set_rsv(rsv);
    let mut head = [0u8; MAX_HEADER_LEN];
    let n = header.encode(&mut head);
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&head[..n]);
    frame.extend_from_slice(payload);
    (Bytes::from(frame), n)
}

impl Connection {
    /// Sends a [`PreparedMessage`]: the same checks, limits and result on
    /// the wire as [`Connection::send`] with the same message, but a
    /// server queues the prepared frame itself (a reference count) instead
    /// of framing and copying the payload. See [`PreparedMessage`] for when
    /// it cannot (client role; compression with context takeover).
    ///
    /// Errors as `send`: [`Error::NotOpen`] unless OPEN,
    /// [`Misuse::MessageInProgress`](crate::Misuse::MessageInProgress)
    /// while a fragmented message is unfinished, [`Error::OutputFull`] past
    /// [`Config::max_output_buffer`](crate::Config::max_output_buffer)
    /// (under [`Backpressure::Close`](crate::Backpressure::Close) the
    /// connection is given up, 1008). A waiting automatic pong goes first.
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), Error> {
        self.send_prepared_with(message, Compression::Auto)
    }

    /// [`Connection::send_prepared`], choosing whether to compress it when
    /// permessage-deflate was negotiated (as [`Connection::send_with`]).
    pub fn send_prepared_with(&mut self, message: &PreparedMessage, compression: Compression) -> Result<(), Error> {
        self.check_can_send_message()?;
        self.on_message_activity();
        let (opcode, payload) = (opcode(message.kind), message.payload_slice());
        if self.wants_encoding(payload.len(), compression) {
            #[cfg(feature = "std")]
            if let (Role::Server, Some(ext)) = (self.role, self.extension.as_deref()) {
                if let Some(frame) = ext.shared_slot().and_then(|slot| message.encoded_frame(slot, ext)) {
                    // The size is known, no bound needed (the header is
                    // counted twice: conservative by at most 14 bytes).
                    self.check_room(frame.len())?;
                    self.write_encoded_frame(frame);
                    return Ok(());
                }
            }
            // Context takeover (or a client): compressed for this connection.
            return self.send_encoded(opcode, payload, true);
        }
        self.check_room(payload.len())?;
        match self.role {
            // RFC 6455 §5.3: masked with a fresh key, so copied.
            Role::Client => self.write_frame(opcode, true, payload),
            Role::Server => self.write_encoded_frame(&message.frame),
        }
        Ok(())
    }
}
