//! Leaf facts every layer names: the role of an endpoint, the browser's
//! `readyState`, and the kind of a data message. Imports nothing of the crate.

/// Which end of the connection this machine is (RFC 6455 §5.1: clients mask,
/// servers do not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that opened the connection and sends the upgrade request.
    Client,
    /// The side that accepted it.
    Server,
}

/// The connection's state, numbered like the browser API's `readyState`.
///
/// It only moves forward: CONNECTING → OPEN → CLOSING → CLOSED (OPEN and
/// CLOSING may be skipped).
///
/// ```
/// use wsmachine::ReadyState;
/// assert_eq!(ReadyState::Open as u8, 1);
/// assert!(ReadyState::Closing < ReadyState::Closed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ReadyState {
    /// 0: the opening handshake is in progress.
    Connecting = 0,
    /// 1: messages can be sent and received.
    Open = 1,
    /// 2: our close frame is sent; waiting for the peer's.
    Closing = 2,
    /// 3: closed; nothing more is sent or received.
    Closed = 3,
}

/// The kind of a data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// UTF-8 text (opcode 0x1).
    Text,
    /// Binary data (opcode 0x2).
    Binary,
}
