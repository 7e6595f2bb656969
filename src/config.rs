//! Limits and switches of a connection, with their defaults.

use core::time::Duration;

/// Settings of one connection. Start from [`Config::default`] and change
/// what you need:
///
/// ```
/// use wsmachine::Config;
/// let config = Config { max_message_size: 1 << 20, streaming: true, ..Config::default() };
/// assert_eq!(config.max_frame_size, 16 << 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest frame payload accepted, in bytes (default 16 MiB). A larger
    /// announced length fails the connection with 1009 before anything is
    /// buffered for it.
    pub max_frame_size: usize,
    /// Largest message accepted, in bytes, summed over its fragments
    /// (default 64 MiB). Exceeding it fails the connection with 1009. There is
    /// no separate limit on the number of fragments. For a compressed message
    /// (permessage-deflate) it is the inflated size, enforced while
    /// inflating: output goes into bounded steps and never past the limit,
    /// so a decompression bomb ends with 1009 before its memory is reserved.
    pub max_message_size: usize,
    /// Largest HTTP handshake head (request or status line plus headers) in
    /// bytes (default 8 KiB). A server answers a larger request with 431.
    pub max_handshake_size: usize,
    /// Most bytes of output that may wait for the transport (default
    /// 64 MiB). A send that would pass it fails with
    /// [`Error::OutputFull`](crate::Error::OutputFull) and queues nothing,
    /// so an application that never drains the output learns it at once.
    /// Automatic pongs do not pile up whatever the limit: one waits behind
    /// unwritten output and a newer ping replaces it (RFC 6455 §5.5.3 lets
    /// an endpoint answer only the most recent ping). Close frames are
    /// always queued. What a send that would pass it does is
    /// [`Config::backpressure`].
    pub max_output_buffer: usize,
    /// What a send does when the output would pass
    /// [`Config::max_output_buffer`] (default [`Backpressure::Refuse`]).
    pub backpressure: Backpressure,
    /// Answer every ping with a pong automatically (default `true`). When
    /// `false`, the application answers with [`Connection::pong`](crate::Connection::pong).
    pub auto_pong: bool,
    /// Deliver data frames as [`Event::Fragment`](crate::Event::Fragment)s
    /// as their bytes arrive instead of reassembling whole messages (default
    /// `false`). Text is still validated as UTF-8.
    pub streaming: bool,
    /// Check that text sent in fragments is valid UTF-8 across fragment
    /// boundaries (default `true`). Whole text messages are `&str` and valid
    /// by construction.
    pub validate_outgoing_text: bool,
    /// How long to wait for the peer's close frame after sending ours, and
    /// (client) for the server to close the transport (default 5 s). Once
    /// CLOSED, also how long our last frames (the close reply) may wait
    /// with the transport taking none of them: then they are dropped, so
    /// the transport can be closed (a peer that sent its close and does not
    /// read cannot hold the connection).
    pub close_timeout: Duration,
    /// How long the opening handshake may take (default 10 s): a server
    /// waits this long for the whole request head from when the
    /// connection is made, a client for the whole response from when its
    /// request is queued. A slow or silent peer cannot hold the connection
    /// longer: on expiry a server answers 408 and closes, a client fails
    /// with [`Failure::HandshakeTimeout`](crate::Failure::HandshakeTimeout).
    /// The deadline is reported by
    /// [`Connection::poll_timeout`](crate::Connection::poll_timeout) like
    /// every other; `Duration::MAX` means no limit.
    pub handshake_timeout: Duration,
    /// Keepalive: when nothing has been received for this long on an OPEN
    /// connection, send a ping (default 20 s, as Python's `websockets`;
    /// `None`: never). Its payload is one the machine recognises in the
    /// pong, which gives
    /// [`Connection::keepalive_rtt`](crate::Connection::keepalive_rtt).
    pub ping_interval: Option<Duration>,
    /// Keepalive: how long to wait for a pong after a keepalive ping before
    /// failing the connection with 1011
    /// ([`Failure::KeepaliveTimeout`](crate::Failure::KeepaliveTimeout);
    /// default 20 s; `None`: wait for ever). Any pong counts, since a peer
    /// may answer only the most recent ping (RFC 6455 §5.5.3).
    ///
    /// With keepalive on (`ping_interval` set), queued output is watched
    /// too: when a whole `ping_timeout` passes with output waiting and the
    /// transport taking none of it, the connection fails the same way
    /// (1011, the output dropped). Bytes received do not show that the peer
    /// reads; without this, one that sends and never reads would hold the
    /// connection and its output for ever. A slow reader that takes some
    /// every period is not failed.
    pub ping_timeout: Option<Duration>,
    /// Close an OPEN connection that carried no message, in either
    /// direction, for this long, with 1001 (going away) and the closing
    /// handshake (default `None`: never). Keepalive pings and pongs do not
    /// count as traffic here.
    pub idle_timeout: Option<Duration>,
}

/// What a send does when the output queue would pass
/// [`Config::max_output_buffer`]: the transport is not taking the bytes,
/// usually because the peer stopped reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backpressure {
    /// The send fails with [`Error::OutputFull`](crate::Error::OutputFull),
    /// queues nothing, and the connection goes on: the application decides
    /// (drop the message, wait, close).
    #[default]
    Refuse,
    /// The connection is given up, the way a browser's `WebSocket.send()`
    /// closes the socket when data cannot be buffered (and uWebSockets'
    /// `closeOnBackpressureLimit`): the send fails with
    /// [`Error::OutputFull`](crate::Error::OutputFull), the output already
    /// queued is dropped (a peer that does not read would never take it,
    /// nor a close frame behind it), the transport is to be closed at once
    /// ([`Connection::should_close_transport`](crate::Connection::should_close_transport)),
    /// and the connection ends with [`Event::Error`](crate::Event::Error)
    /// ([`Failure::OutputFull`](crate::Failure::OutputFull)) and
    /// [`Event::Closed`](crate::Event::Closed) with code 1008
    /// ([`CloseCode::POLICY_VIOLATION`](crate::CloseCode::POLICY_VIOLATION)),
    /// not clean. One stalled reader cannot hold memory for everyone.
    Close,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_handshake_size: 8 << 10,
            max_output_buffer: 64 << 20,
            auto_pong: true,
            streaming: false,
            validate_outgoing_text: true,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            backpressure: Backpressure::Refuse,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            idle_timeout: None,
        }
    }
}
