//! What a connection tells its application.

use crate::close::{CloseCode, CloseFrame};
use crate::error::Error;
use crate::handshake::{Request, Response};
use crate::utf8::Utf8Bytes;
use alloc::boxed::Box;
use alloc::string::String;
use bytes::Bytes;

/// The kind of a data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Binary data (opcode 0x2).
    Binary,
}

/// A whole message, as sent with [`Connection::send`](crate::Connection::send).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

/// Whether to compress one outgoing message when permessage-deflate (RFC
/// 7692) was negotiated; without it every message goes out uncompressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Compress when the message is at least the configured threshold
    /// (`DeflateConfig::threshold`, default 128 bytes). A fragmented message
    /// is compressed whenever the extension is in use (its size is unknown
    /// at the first fragment).
    #[default]
    Auto,
    /// Compress, whatever the size.
    On,
    /// Send uncompressed (for example data that is already compressed).
    Off,
}

/// A piece of a data message in streaming mode
/// ([`Config::streaming`](crate::Config::streaming)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The message's kind (known from its first frame).
    pub kind: DataKind,
    /// The next bytes of the message. Text is valid UTF-8 so far, but a
    /// character may be split between two fragments.
    pub data: Bytes,
    /// Whether this is the first piece of the message.
    pub first: bool,
    /// Whether this is the last piece of the message.
    pub fin: bool,
}

/// How the connection ended ([`Event::Closed`]), like the browser's
/// `CloseEvent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The code of the close frame received (or sent, when the connection
    /// failed); 1005 when the frame had none, 1006 when no close frame was
    /// exchanged.
    pub code: CloseCode,
    /// The reason that came with it.
    pub reason: String,
    /// Whether the closing handshake completed.
    pub was_clean: bool,
}

/// Something the application should know, returned by
/// [`Connection::poll_event`](crate::Connection::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Server: a valid WebSocket upgrade request. Answer with
    /// [`Connection::accept`](crate::Connection::accept) or
    /// [`Connection::reject`](crate::Connection::reject).
    Request(Box<Request>),
    /// Server: an HTTP request that does not ask for a WebSocket upgrade.
    /// Answer with [`Connection::reject`](crate::Connection::reject) (any
    /// status, for example 200 with a page).
    HttpRequest(Box<Request>),
    /// The handshake completed: the connection is OPEN (`onopen`).
    Open {
        /// The subprotocol agreed on, if any.
        protocol: Option<String>,
        /// The extensions in use, as a `Sec-WebSocket-Extensions` value
        /// (like the browser's `WebSocket.extensions`): empty when none, for
        /// example `permessage-deflate; server_max_window_bits=10`. The typed
        /// parameters are in `Connection::deflate` (feature `deflate`).
        extensions: String,
        /// Client: the server's 101 response.
        response: Option<Box<Response>>,
    },
    /// A whole text message (`onmessage`).
    Text(Utf8Bytes),
    /// A whole binary message (`onmessage`).
    Binary(Bytes),
    /// Streaming mode: the next piece of a data message.
    Fragment(Fragment),
    /// A ping arrived (already answered when `auto_pong` is on).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The peer's close frame arrived; [`Event::Closed`] follows.
    Close(CloseFrame),
    /// Something went wrong (`onerror`): a protocol violation by the peer, a
    /// failed handshake, a close timeout. [`Event::Closed`] follows.
    Error(Error),
    /// The connection reached CLOSED (`onclose`). No event follows.
    Closed(CloseInfo),
}
