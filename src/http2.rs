//! WebSocket over HTTP/2 (RFC 8441), client side (feature `http2`, on the
//! [`h2`] crate and the tokio driver).
//!
//! The machine runs unchanged over an HTTP/2 stream: the frames are the
//! same, only the opening differs (an extended CONNECT answered 200 instead
//! of an upgrade answered 101, RFC 8441 §4–5, built and checked by
//! [`ClientRequest::extended_connect`] and
//! [`ExtendedConnect::check_response`](crate::ExtendedConnect::check_response)).
//! [`Http2Stream`] makes the stream an `AsyncRead + AsyncWrite` for
//! [`WebSocketStream`]:
//!
//! - **Flow control.** What is read is handed to the machine at once and
//!   its window credit given back then (`release_capacity`), so a stream
//!   the application stops polling stops the server once its window is
//!   used.
//!   Writes take only the send capacity HTTP/2 grants (`reserve_capacity`,
//!   `poll_capacity`): the rest stays in the machine, where
//!   [`WebSocketStream::high_water_mark`] holds it back as it does on TCP.
//! - **Closing.** The closing handshake runs as usual; ending the transport
//!   ends the stream (`END_STREAM`). A stream dropped before the server
//!   ended its side is reset (`RST_STREAM` with `CANCEL`).
//! - **Failures.** A stream reset by the server (`RST_STREAM`) or the loss
//!   of the HTTP/2 connection is a transport failure: the stream yields
//!   `Err(Error::Io(..))` (`ErrorKind::ConnectionReset` for a reset, naming
//!   the HTTP/2 error code), then `Event::Closed` with 1006 (abnormal
//!   closure, RFC 6455 §7.1.5).
//!
//! Two ways in:
//!
//! - [`connect`] / [`connect_with_options`]: one WebSocket, over HTTP/2
//!   when the server takes it, else over HTTP/1.1 ([`Transport`] says
//!   which, and [`Fallback`] why). **What falls back when:**
//!   - `ws://` is HTTP/2 over cleartext with prior knowledge (h2c, RFC 9113
//!     §3.3). A server that does not answer the HTTP/2 preface with its
//!     SETTINGS ([`Fallback::NoH2c`]), or whose SETTINGS lack
//!     `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` (RFC 8441 §3,
//!     [`Fallback::NoExtendedConnect`]), gets an HTTP/1.1 upgrade on a new
//!     TCP connection.
//!   - `wss://` offers ALPN `h2` then `http/1.1` (feature `rustls`). When
//!     the server picks `http/1.1` or no protocol ([`Fallback::NoH2Alpn`]),
//!     the HTTP/1.1 upgrade runs on the same TLS connection; when it picks
//!     `h2` but does not enable extended CONNECT, on a new connection.
//!   - A server that speaks HTTP/2 and enables extended CONNECT but refuses
//!     the request (a status other than 2xx) does not fall back: that is
//!     its answer (`Error::Failed(Failure::Handshake { .. })`).
//! - [`Http2Connection`]: one HTTP/2 connection, several WebSockets
//!   multiplexed on it ([`Http2Connection::websocket`]); a cheap clone per
//!   task. No fallback: a server that cannot take WebSocket over HTTP/2 is
//!   `Error::Http2Unsupported`.
//!
//! For `wss://` the first connection offers ALPN `h2` then `http/1.1`
//! whatever the `ConnectOptions::tls` connector's own ALPN list is (its
//! roots and other settings are used as they are); a connection made for
//! the HTTP/1.1 fallback uses the connector as it is, less `h2`. HTTP/2's own windows
//! are h2's defaults (64 KiB per stream and per connection, RFC 9113
//! §6.9.2); the server's answer is bounded by `Config::max_handshake_size`
//! (`SETTINGS_MAX_HEADER_LIST_SIZE`).
//!
//! Time: `Config::handshake_timeout` bounds each step as
//! [`tokio::connect`](crate::tokio::connect) does — the TCP connect (with
//! the proxy's tunnel), the TLS handshake, the HTTP/2 preface and the
//! server's SETTINGS, and each extended CONNECT exchange — and then the
//! `ErrorKind::TimedOut` is `Error::Io`. Proxies
//! ([`ConnectOptions::proxy`]) work as for HTTP/1.1: the tunnel is opened
//! first, HTTP/2 runs inside it.
//!
//! The HTTP/2 connection runs in a task of its own (`tokio::spawn`), which
//! ends once the [`Http2Connection`] handles and every stream are dropped.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use wsmachine::{ClientRequest, Event, Message};
//! use wsmachine::http2::Http2Connection;
//! use wsmachine::driver::ConnectOptions;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let request = ClientRequest::from_url("ws://127.0.0.1:9001/ws")?;
//! let h2 = Http2Connection::connect(&request, &ConnectOptions::default()).await?;
//! // Two WebSockets on one HTTP/2 connection.
//! let (mut a, _) = h2.websocket(request.clone()).await?;
//! let (mut b, _) = h2.websocket(request).await?;
//! a.send(Message::Text("to a".into())).await?;
//! b.send(Message::Text("to b".into())).await?;
//! if let Some(Event::Text(text)) = a.next().await.transpose()? {
//!     println!("{text}");
//! }
//! # Ok(()) }
//! ```

use crate::driver::{ConnectOptions, Error, tls_or_io};
use crate::handshake::{Header, Headers};
use crate::tokio::{MaybeTlsStream, WebSocketStream};
use crate::{ClientRequest, Config, Connection, Failure, Response};
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::net::TcpStream;
use bytes::{Buf, Bytes, BytesMut};
use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use std::boxed::Box;
use std::format;
use std::io::{self, ErrorKind, IoSlice};
use std::string::{String, ToString};

/// The `h2` this crate was built with, so that streams given to
/// [`Http2Stream::new`] name the same version.
pub use h2;

/// The ALPN protocol id of HTTP/2 over TLS (RFC 9113 §3.2).
pub const ALPN_H2: &[u8] = b"h2";

/// Why a WebSocket runs on HTTP/1.1 when HTTP/2 was asked for (defined
/// with the drivers' shared [`Error`], which carries it).
pub use crate::driver::Fallback;

/// An HTTP/2 stream (its send and receive halves) as an `AsyncRead +
/// AsyncWrite` byte stream, with HTTP/2 flow control mapped onto the
/// machine's backpressure (see the [module docs](self)). Works for either
/// end of the stream: a server with an `h2` server of its own can wrap the
/// stream of an extended CONNECT it answered and run
/// [`Connection::from_upgrade`] over it.
pub struct Http2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received and not yet read (its window credit not yet released).
    pending: Bytes,
    /// `END_STREAM` sent (or the stream reset): nothing more is written.
    send_done: bool,
    /// The peer ended its side (`END_STREAM` received).
    recv_done: bool,
}

impl fmt::Debug for Http2Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http2Stream")
            .field("stream_id", &self.send.stream_id())
            .field("pending", &self.pending.len())
            .field("send_done", &self.send_done)
            .field("recv_done", &self.recv_done)
            .finish()
    }
}

/// An `h2` failure as an I/O error: a stream reset is `ConnectionReset`
/// naming the HTTP/2 error code (RFC 9113 §7), an I/O failure under HTTP/2
/// is itself, anything else (a GOAWAY, a protocol error) `Other`.
fn h2_io(e: h2::Error) -> io::Error {
    if e.is_io() {
        return e.into_io().unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"));
    }
    if let (true, Some(reason)) = (e.is_reset(), e.reason()) {
        return reset_error(reason);
    }
    io::Error::other(format!("HTTP/2: {e}"))
}

fn reset_error(reason: Reason) -> io::Error {
    io::Error::new(
        ErrorKind::ConnectionReset,
        format!("the HTTP/2 stream was reset (RST_STREAM {reason:?}, RFC 9113 §6.4)"),
    )
}

impl Http2Stream {
    /// Wraps the two halves of one HTTP/2 stream, after the extended
    /// CONNECT was answered with 2xx (RFC 8441 §5).
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        Http2Stream {
            send,
            recv,
            pending: Bytes::new(),
            send_done: false,
            recv_done: false,
        }
    }

    /// The HTTP/2 stream identifier (RFC 9113 §5.1.1).
    pub fn stream_id(&self) -> u32 {
        self.send.stream_id().into()
    }

    /// Resets the stream (`RST_STREAM` with `reason`, RFC 9113 §6.4): the
    /// abrupt end, where TCP would be reset.
    pub fn reset(&mut self, reason: Reason) {
        self.send.send_reset(reason);
        self.send_done = true;
    }

    /// Writes as much of `bufs` as the stream's send capacity allows, as
    /// one DATA frame.
    fn poll_send(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).fold(0usize, usize::saturating_add);
        if len == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.send_done {
            return Poll::Ready(Err(io::Error::new(
                ErrorKind::BrokenPipe,
                "the HTTP/2 stream's sending side is closed",
            )));
        }
        // Ask for as much as there is to write (h2 adds what it buffers);
        // what is granted is bounded by the stream's and the connection's
        // windows, so h2 never holds more than they allow.
        self.send.reserve_capacity(len);
        let granted = loop {
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => break n.min(len),
                Some(Err(e)) => return Poll::Ready(Err(h2_io(e))),
                // No longer sending: the peer reset the stream, or the connection is gone.
                None => {
                    self.send_done = true;
                    return Poll::Ready(Err(match ready!(self.send.poll_reset(cx)) {
                        Ok(reason) => reset_error(reason),
                        Err(e) => h2_io(e),
                    }));
                }
            }
        };
        let mut data = BytesMut::with_capacity(granted);
        for b in bufs {
            let take = (granted - data.len()).min(b.len());
            data.extend_from_slice(&b[..take]);
            if data.len() == granted {
                break;
            }
        }
        match self.send.send_data(data.freeze(), false) {
            Ok(()) => Poll::Ready(Ok(granted)),
            Err(e) => {
                self.send_done = true;
                Poll::Ready(Err(h2_io(e)))
            }
        }
    }
}

impl Drop for Http2Stream {
    fn drop(&mut self) {
        if self.send_done {
            return;
        }
        if self.recv_done {
            // The peer ended its side (after the closing handshake): end ours.
            let _ = self.send.send_data(Bytes::new(), true);
        } else {
            // Dropped mid-stream: the HTTP/2 counterpart of a TCP reset.
            self.send.send_reset(Reason::CANCEL);
        }
    }
}

impl AsyncRead for Http2Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = buf.remaining().min(this.pending.len());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                // RFC 9113 §5.2: the bytes are consumed; give the window back.
                // (An error means the stream is gone; the next read says so.)
                let _ = this.recv.flow_control().release_capacity(n);
                return Poll::Ready(Ok(()));
            }
            if this.recv_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.pending = data,
                // END_STREAM: the end of the byte stream.
                None => this.recv_done = true,
                Some(Err(e)) => return Poll::Ready(Err(h2_io(e))),
            }
        }
    }
}

impl AsyncWrite for Http2Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection's task writes what h2 buffers.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.send_done {
            this.send_done = true;
            // END_STREAM on an empty DATA frame: the end of our side.
            this.send.send_data(Bytes::new(), true).map_err(h2_io)?;
        }
        Poll::Ready(Ok(()))
    }
}

/// The stream [`connect`] opens: an HTTP/2 stream, or an HTTP/1.1
/// connection (TCP or TLS) when the server could not take WebSocket over
/// HTTP/2, with the reason.
#[derive(Debug)]
#[non_exhaustive]
pub enum Transport {
    /// WebSocket over HTTP/2 (RFC 8441).
    Http2(Http2Stream),
    /// WebSocket over HTTP/1.1 (RFC 6455), and why.
    Http1(MaybeTlsStream, Fallback),
}

impl Transport {
    /// Whether the WebSocket runs over HTTP/2.
    pub fn is_http2(&self) -> bool {
        matches!(self, Transport::Http2(_))
    }

    /// Why HTTP/1.1 is used, if it is.
    pub fn fallback(&self) -> Option<Fallback> {
        match self {
            Transport::Http2(_) => None,
            Transport::Http1(_, why) => Some(*why),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Http1(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Http1(s, _) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Http1(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Http2(s) => s.is_write_vectored(),
            Transport::Http1(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s).poll_flush(cx),
            Transport::Http1(s, _) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Http1(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// One HTTP/2 connection to a server that takes WebSocket over HTTP/2,
/// on which [`websocket`](Http2Connection::websocket) opens any number of
/// WebSockets, one stream each (up to the server's
/// `SETTINGS_MAX_CONCURRENT_STREAMS`; further ones wait for a stream to
/// end). Cheap to clone: the clones share the connection.
#[derive(Clone)]
pub struct Http2Connection {
    send: SendRequest<Bytes>,
    config: Config,
}

impl fmt::Debug for Http2Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http2Connection")
            .field("extended_connect", &self.send.is_extended_connect_protocol_enabled())
            .finish_non_exhaustive()
    }
}

fn timed_out(what: &str) -> Error {
    Error::Io(io::Error::new(ErrorKind::TimedOut, format!("{what} timed out")))
}

impl Http2Connection {
    /// Connects to `request`'s host and port as [`connect_with_options`]
    /// does (through `options.proxy` if set; over TLS with ALPN `h2` for
    /// `wss://`, over h2c with prior knowledge for `ws://`) and runs the
    /// HTTP/2 handshake; the request itself is not sent (pass it, or others
    /// for the same server, to [`websocket`](Http2Connection::websocket)).
    /// A server that cannot take WebSocket over HTTP/2 is
    /// `Err(Error::Http2Unsupported(why))`: no fallback here.
    pub async fn connect(request: &ClientRequest, options: &ConnectOptions) -> Result<Self, Error> {
        let h2 = match open_h2(request, options).await? {
            Opened::Http2(h2) => h2,
            Opened::Http1(_, why) | Opened::Unsupported(why) => return Err(Error::Http2Unsupported(why)),
        };
        if !h2.extended_connect_enabled() {
            return Err(Error::Http2Unsupported(Fallback::NoExtendedConnect));
        }
        Ok(h2)
    }

    /// Runs the HTTP/2 client handshake over `io` (a connection that speaks
    /// HTTP/2: h2c by prior knowledge, or TLS that chose `h2`), spawns the
    /// connection's task, and waits for the server's SETTINGS (a PING round
    /// trip: the server's SETTINGS come first, RFC 9113 §3.4), within
    /// `config.handshake_timeout`. `config` is the settings of the
    /// WebSockets opened on it. Whether the server enabled extended CONNECT
    /// is then [`extended_connect_enabled`](Http2Connection::extended_connect_enabled).
    /// A peer that does not answer as an HTTP/2 server is
    /// `Err(Error::Http2Unsupported(Fallback::NoH2c))`.
    pub async fn handshake<T>(io: T, config: Config) -> Result<Self, Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let timeout = config.handshake_timeout;
        let start = async {
            // The answer's header block is bounded as an HTTP/1.1 head is
            // (`Config::max_handshake_size`, SETTINGS_MAX_HEADER_LIST_SIZE,
            // RFC 9113 §6.5.2); h2 refuses a larger one before keeping it.
            let max_header_list = u32::try_from(config.max_handshake_size).unwrap_or(u32::MAX);
            let (send, mut connection) = h2::client::Builder::new()
                .max_header_list_size(max_header_list)
                .handshake(io)
                .await
                .map_err(|e| Error::Io(h2_io(e)))?;
            let ping_pong = connection.ping_pong();
            ::tokio::spawn(async move {
                // Its failures reach the streams, which report them.
                let _ = connection.await;
            });
            if let Some(mut ping_pong) = ping_pong {
                ping_pong
                    .ping(h2::Ping::opaque())
                    .await
                    .map_err(|_| Error::Http2Unsupported(Fallback::NoH2c))?;
            }
            Ok::<_, Error>(send)
        };
        let send = match ::tokio::time::timeout(timeout, start).await {
            Ok(started) => started?,
            Err(_) => return Err(timed_out("the HTTP/2 handshake")),
        };
        Ok(Http2Connection { send, config })
    }

    /// Whether the server's SETTINGS enabled extended CONNECT
    /// (`SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`, RFC 8441 §3).
    pub fn extended_connect_enabled(&self) -> bool {
        self.send.is_extended_connect_protocol_enabled()
    }

    /// The settings of the WebSockets opened on this connection.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Opens a WebSocket on a new stream of this connection: sends
    /// `request` as an extended CONNECT (RFC 8441 §4) and checks the answer
    /// (§5) within `config.handshake_timeout`. Returns the OPEN stream and
    /// the server's answer. The request's host should be this connection's
    /// server (its `:authority` is sent as it is). A request the crate
    /// refuses is `Err(Error::Refused(..))`; an answer that is not 2xx or
    /// breaks RFC 6455's subprotocol and extension rules is
    /// `Err(Error::Failed(Failure::Handshake { .. }))`, with the response;
    /// a server without extended CONNECT is
    /// `Err(Error::Http2Unsupported(Fallback::NoExtendedConnect))`.
    pub async fn websocket(
        &self,
        request: ClientRequest,
    ) -> Result<(WebSocketStream<Http2Stream>, Box<Response>), Error> {
        let (conn, stream, response) = self.open_stream(&request).await?;
        Ok((WebSocketStream::from_connection(conn, stream), response))
    }

    async fn open_stream(&self, request: &ClientRequest) -> Result<(Connection, Http2Stream, Box<Response>), Error> {
        let connect = request.extended_connect().map_err(|e| Error::Refused(e.into()))?;
        if !self.extended_connect_enabled() {
            return Err(Error::Http2Unsupported(Fallback::NoExtendedConnect));
        }
        let rng = crate::rng::ChaCha20Rng::from_os().map_err(|_| Error::Refused(crate::Error::RandomSource))?;
        let invalid = |what: &str| {
            Error::Io(io::Error::new(
                ErrorKind::InvalidInput,
                format!("HTTP/2 request: {what}"),
            ))
        };
        let uri = format!("{}://{}{}", connect.scheme(), connect.authority(), connect.path());
        let mut builder = http::Request::builder()
            .method(http::Method::CONNECT)
            .version(http::Version::HTTP_2)
            .uri(uri);
        for (name, value) in connect.headers() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut h2_request = builder.body(()).map_err(|e| invalid(&e.to_string()))?;
        // RFC 8441 §4: the :protocol pseudo-header.
        h2_request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static(connect.protocol()));
        let exchange = async {
            let mut send = self.send.clone().ready().await.map_err(|e| Error::Io(h2_io(e)))?;
            let (answer, stream) = send.send_request(h2_request, false).map_err(|e| Error::Io(h2_io(e)))?;
            let answer = answer.await.map_err(|e| Error::Io(h2_io(e)))?;
            Ok::<_, Error>((answer, stream))
        };
        let (answer, mut send_stream) = match ::tokio::time::timeout(self.config.handshake_timeout, exchange).await {
            Ok(done) => done?,
            Err(_) => return Err(timed_out("the extended CONNECT")),
        };
        let (parts, recv) = answer.into_parts();
        let headers = Headers(
            parts
                .headers
                .iter()
                .map(|(name, value)| Header {
                    name: name.as_str().to_string(),
                    value: value.as_bytes().to_vec(),
                })
                .collect(),
        );
        let status = parts.status.as_u16();
        match connect.check_response(status, headers.clone()) {
            Ok(upgrade) => {
                let response = Box::new(upgrade.response().clone());
                let conn = Connection::from_client_upgrade(upgrade, self.config.clone(), rng);
                Ok((conn, Http2Stream::new(send_stream, recv), response))
            }
            Err(error) => {
                send_stream.send_reset(Reason::CANCEL);
                let response = Response {
                    status,
                    reason: String::new(), // none in HTTP/2 (RFC 9113 §8.3.2)
                    headers,
                    protocol: None,
                };
                Err(Error::Failed(Failure::Handshake {
                    error,
                    response: Some(Box::new(response)),
                }))
            }
        }
    }
}

/// Client side: connects to a `ws://` or `wss://` URL over HTTP/2 (RFC
/// 8441) with the default settings, falling back to HTTP/1.1 as the
/// [module docs](self) say. Returns the OPEN stream and the server's
/// answer; [`Transport::is_http2`] on `ws.get_ref()` tells which was used.
pub async fn connect(url: &str) -> Result<(WebSocketStream<Transport>, Box<Response>), Error> {
    let request = ClientRequest::from_url(url)?;
    connect_with_options(request, &ConnectOptions::default()).await
}

/// Client side with every choice made, as
/// [`tokio::connect_with_options`](crate::tokio::connect_with_options):
/// over HTTP/2 where the server takes it, else over HTTP/1.1 (which
/// [`Transport`] says; see the [module docs](self) for what falls back
/// when).
pub async fn connect_with_options(
    request: ClientRequest,
    options: &ConnectOptions,
) -> Result<(WebSocketStream<Transport>, Box<Response>), Error> {
    let config = options.config.clone();
    let (transport, why) = match open_h2(&request, options).await? {
        Opened::Http2(h2) if h2.extended_connect_enabled() => {
            let (conn, stream, response) = h2.open_stream(&request).await?;
            return Ok((
                WebSocketStream::from_connection(conn, Transport::Http2(stream)),
                response,
            ));
        }
        // ALPN chose HTTP/1.1: the upgrade runs on this connection.
        Opened::Http1(stream, why) => (stream, why),
        // No HTTP/2 WebSockets there: a new connection for HTTP/1.1.
        Opened::Http2(_) => (
            connect_transport(&request, options, false).await?,
            Fallback::NoExtendedConnect,
        ),
        Opened::Unsupported(why) => (connect_transport(&request, options, false).await?, why),
    };
    crate::tokio::connect_with(Transport::Http1(transport, why), request, config)
        .await
        .map_err(tls_or_io)
}

/// What connecting for HTTP/2 gave.
enum Opened {
    Http2(Http2Connection),
    /// TLS chose HTTP/1.1 (or nothing) by ALPN.
    Http1(MaybeTlsStream, Fallback),
    /// The server does not speak HTTP/2 (h2c).
    Unsupported(Fallback),
}

/// Connects for HTTP/2 and runs its handshake.
async fn open_h2(request: &ClientRequest, options: &ConnectOptions) -> Result<Opened, Error> {
    let stream = connect_transport(request, options, true).await?;
    let h2c = !stream.is_tls();
    if !h2c && !alpn_chose_h2(&stream) {
        return Ok(Opened::Http1(stream, Fallback::NoH2Alpn));
    }
    match Http2Connection::handshake(stream, options.config.clone()).await {
        Ok(h2) => Ok(Opened::Http2(h2)),
        // The preface failed on cleartext: not an h2c server.
        Err(Error::Http2Unsupported(why)) if h2c => Ok(Opened::Unsupported(why)),
        Err(Error::Io(e)) if h2c && e.kind() != ErrorKind::TimedOut => Ok(Opened::Unsupported(Fallback::NoH2c)),
        Err(e) => Err(tls_or_io(e)),
    }
}

#[cfg(feature = "rustls")]
fn alpn_chose_h2(stream: &MaybeTlsStream) -> bool {
    match stream {
        MaybeTlsStream::Rustls(tls) => tls.get_ref().1.alpn_protocol() == Some(ALPN_H2),
        MaybeTlsStream::Plain(_) => false,
    }
}

#[cfg(not(feature = "rustls"))]
fn alpn_chose_h2(_: &MaybeTlsStream) -> bool {
    false
}

/// TCP to the request's host (through the proxy, if any), then TLS for
/// `wss://`, offering `h2` by ALPN when `h2` is asked for. Each step within
/// the handshake timeout.
async fn connect_transport(
    request: &ClientRequest,
    options: &ConnectOptions,
    h2: bool,
) -> Result<MaybeTlsStream, Error> {
    let (host, tcp) =
        crate::tokio::connect_tcp(request, options.proxy.as_ref(), options.config.handshake_timeout).await?;
    if !request.is_secure() {
        return Ok(MaybeTlsStream::Plain(tcp));
    }
    tls_client(tcp, &host, options, h2).await
}

#[cfg(not(feature = "rustls"))]
async fn tls_client(_: TcpStream, _: &str, _: &ConnectOptions, _: bool) -> Result<MaybeTlsStream, Error> {
    Err(Error::TlsNotSupported)
}

/// The TLS handshake with `host`, offering `h2` then `http/1.1` by ALPN
/// when `h2` (RFC 9113 §3.2), else the connector's own protocols.
#[cfg(feature = "rustls")]
async fn tls_client(tcp: TcpStream, host: &str, options: &ConnectOptions, h2: bool) -> Result<MaybeTlsStream, Error> {
    let connector = match &options.tls {
        Some(tls) => tls.clone(),
        None => crate::tls::TlsConnector::new().map_err(Error::Tls)?,
    };
    let mut config = connector.config().clone();
    if h2 {
        let mut with_h2 = (*config).clone();
        with_h2.alpn_protocols = std::vec![ALPN_H2.to_vec(), crate::tls::ALPN_HTTP_1_1.to_vec()];
        config = std::sync::Arc::new(with_h2);
    } else if config.alpn_protocols.iter().any(|p| p == ALPN_H2) {
        // The HTTP/1.1 fallback must not be offered h2 again.
        let mut http1 = (*config).clone();
        http1.alpn_protocols = std::vec![crate::tls::ALPN_HTTP_1_1.to_vec()];
        config = std::sync::Arc::new(http1);
    }
    let name = crate::tls::server_name(host).map_err(Error::Tls)?;
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    match ::tokio::time::timeout(options.config.handshake_timeout, handshake).await {
        Ok(done) => Ok(MaybeTlsStream::Rustls(Box::new(done.map_err(Error::from)?))),
        Err(_) => Err(timed_out("the TLS handshake")),
    }
}
