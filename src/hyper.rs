//! WebSocket upgrades inside a hyper 1.x server (feature `hyper`), over
//! HTTP/1.1 and over HTTP/2 alike.
//!
//! [`upgrade`] takes a request hyper parsed and, when it is a WebSocket
//! request, gives the response to send and an [`UpgradeFuture`] that
//! resolves, once hyper has sent it, to the crate's tokio
//! [`WebSocketStream`] over hyper's [`Upgraded`] stream ([`WebSocket`]):
//!
//! - **HTTP/1.1** (RFC 6455 §4.2): `GET` with `Upgrade: websocket`,
//!   answered `101 Switching Protocols` with `Sec-WebSocket-Accept`
//!   ([`Upgrade::new`]). Serve the connection `with_upgrades()`.
//! - **HTTP/2** (RFC 8441): an extended CONNECT, `:method CONNECT` with
//!   `:protocol websocket` (hyper puts it in the request's extensions as
//!   hyper's [`Protocol`](::hyper::ext::Protocol)), answered `200` with
//!   no `Sec-WebSocket-Accept` ([`Upgrade::extended_connect`]); the
//!   stream's DATA frames then carry the WebSocket frames. A client only
//!   sends one if the server's SETTINGS carry
//!   `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3): call
//!   `hyper::server::conn::http2::Builder::enable_connect_protocol()` (or
//!   `.http2().enable_connect_protocol()` on hyper-util's auto builder, as
//!   `axum::serve` does). Serving HTTP/1.1 and HTTP/2 on one port: hyper-util's
//!   auto builder tells them apart by the HTTP/2 preface (h2c with prior
//!   knowledge on cleartext; on TLS, ALPN `h2` and `http/1.1`).
//!
//! Both negotiate the subprotocol and permessage-deflate from the
//! [`Accept`] as [`Connection::accept`](crate::Connection::accept) does, and
//! the machine runs unchanged on either stream. HTTP/2 flow control is
//! backpressure through `AsyncWrite` (a write waits for window); a stream
//! reset by the peer ends the stream without a close frame, which the
//! driver reports as an abnormal closure (1006, RFC 6455 §7.1.5).
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::{Request, Response, body::Incoming};
//! use wsmachine::{Accept, Bytes, Config};
//!
//! async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
//!     if !wsmachine::hyper::is_upgrade_request(&request) {
//!         return Ok(Response::new(Full::new(Bytes::from("a page"))));
//!     }
//!     match wsmachine::hyper::upgrade(&mut request, Accept::new(), Config::default()) {
//!         Ok((response, socket)) => {
//!             tokio::spawn(async move {
//!                 if let Ok(ws) = socket.await {
//!                     // ws: Stream of Event + Sink of Message
//!                     # drop(ws);
//!                 }
//!             });
//!             Ok(response)
//!         }
//!         Err(rejection) => Ok(rejection.response()),
//!     }
//! }
//! ```

use crate::handshake::server::{accept_key_for, check_extended_connect, check_protocol_list};
use crate::handshake::{HandshakeError, Header, Headers};
use crate::tokio::WebSocketStream;
use crate::{Accept, Config, Connection, Misuse, OriginError, Upgrade, UpgradeError};
use ::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use ::hyper::upgrade::{OnUpgrade, Upgraded};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use hyper_util::rt::TokioIo;
use std::string::{String, ToString};
use std::vec::Vec;

/// The socket an upgrade gives: the tokio driver over hyper's upgraded
/// stream (an HTTP/1.1 connection, or an HTTP/2 stream).
pub type WebSocket = WebSocketStream<TokioIo<Upgraded>>;

/// Which HTTP a WebSocket request came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// An HTTP/1.1 upgrade (RFC 6455 §4), answered with 101.
    Http1,
    /// An HTTP/2 extended CONNECT (RFC 8441), answered with 200.
    Http2,
}

/// Why a request is not upgraded, and the status to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The request breaks a handshake rule (RFC 6455 §4.2.1 over HTTP/1.1,
    /// RFC 8441 §4–5 over HTTP/2): [`HandshakeError::status`] (400, 405,
    /// or 426 naming version 13, RFC 6455 §4.4).
    Request(HandshakeError),
    /// The `Origin` policy refused the page (RFC 6455 §10.2): 403.
    Origin(OriginError),
    /// The application's [`Accept`] cannot answer this request (for example
    /// a header line it may not set): 500, a fault of the server's code.
    Accept(Misuse),
    /// A valid request that hyper gave no upgrade handle for (the
    /// connection was not served `with_upgrades()`, or this is not a
    /// request hyper can hand over): 426, as axum answers.
    NotUpgradable,
}

impl Rejection {
    /// The status to answer with.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            Rejection::Request(e) => e.status(),
            Rejection::Origin(e) => e.status(),
            Rejection::Accept(_) => 500,
            Rejection::NotUpgradable => 426,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The answer: [`status`](Rejection::status), a short plain-text reason,
    /// and for a 426 `Upgrade: websocket` (RFC 9110 §15.5.22; HTTP/2
    /// drops it, RFC 9113 §8.2.2) and, for an unsupported version,
    /// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4). An [`Accept`] fault's
    /// reason is not sent to the client.
    pub fn response<B: From<String>>(&self) -> Response<B> {
        let status = self.status();
        let body = match self {
            Rejection::Accept(_) => String::from("internal server error\n"),
            other => std::format!("{other}\n"),
        };
        let mut response = Response::new(B::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            ::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::UPGRADE_REQUIRED {
            headers.insert(::http::header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(::http::header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        if *self == Rejection::Request(HandshakeError::UnsupportedVersion) {
            headers.insert(::http::header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        }
        response
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Request(e) => write!(f, "not a valid WebSocket request: {e}"),
            Rejection::Origin(e) => write!(f, "refused: {e}"),
            Rejection::Accept(e) => write!(f, "cannot accept: {e}"),
            Rejection::NotUpgradable => f.write_str("this connection cannot be upgraded (no upgrade state)"),
        }
    }
}

impl std::error::Error for Rejection {}

impl From<UpgradeError> for Rejection {
    fn from(e: UpgradeError) -> Self {
        match e {
            UpgradeError::Request(e) => Rejection::Request(e),
            UpgradeError::Accept(e) => Rejection::Accept(e),
        }
    }
}

/// Whether `request` asks for a WebSocket at all: an HTTP/1.1 request with
/// `Upgrade: websocket`, or an HTTP/2 CONNECT with a `:protocol`
/// pseudo-header (RFC 8441 §4). A server may serve anything else as plain
/// HTTP; what this says yes to goes to [`upgrade`], which checks the rest.
pub fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    if request.version() >= Version::HTTP_2 {
        request.method() == Method::CONNECT && request.extensions().get::<::hyper::ext::Protocol>().is_some()
    } else {
        request
            .headers()
            .get_all(::http::header::UPGRADE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    }
}

/// The request's header lines in the crate's form, for [`OriginPolicy`](crate::OriginPolicy)
/// and the handshake checks. Over HTTP/2 the `:authority` pseudo-header
/// stands for `Host` (RFC 9113 §8.3.1), so it is added as `Host` when no
/// `Host` line came.
pub fn headers_of(version: Version, uri: &Uri, map: &HeaderMap) -> Headers {
    let mut lines: Vec<Header> = map
        .iter()
        .map(|(name, value)| Header {
            name: name.as_str().to_string(),
            value: value.as_bytes().to_vec(),
        })
        .collect();
    if version >= Version::HTTP_2 && !map.contains_key(::http::header::HOST) {
        if let Some(authority) = uri.authority() {
            lines.push(Header {
                name: String::from("host"),
                value: authority.as_str().as_bytes().to_vec(),
            });
        }
    }
    Headers(lines)
}

/// Checks a request's handshake rules without negotiating: HTTP/1.1 (at
/// least: RFC 6455 §4.1) and RFC 6455 §4.2.1, or HTTP/2 and RFC 8441 §4–5
/// (`:protocol` from the extensions); then that hyper can hand the
/// connection over (its `OnUpgrade` is in the extensions). `headers` from
/// [`headers_of`]. Says which form the request took.
pub fn check(
    method: &Method,
    version: Version,
    headers: &Headers,
    extensions: &Extensions,
) -> Result<Transport, Rejection> {
    let transport = check_rules(method, version, protocol_of(extensions), headers)?;
    if extensions.get::<OnUpgrade>().is_none() {
        return Err(Rejection::NotUpgradable);
    }
    Ok(transport)
}

/// The `:protocol` pseudo-header hyper put in `extensions` (HTTP/2, RFC 8441 §4).
pub fn protocol_of(extensions: &Extensions) -> Option<&str> {
    extensions.get::<::hyper::ext::Protocol>().map(|p| p.as_str())
}

fn check_rules(
    method: &Method,
    version: Version,
    protocol: Option<&str>,
    headers: &Headers,
) -> Result<Transport, Rejection> {
    if version >= Version::HTTP_2 {
        check_extended_connect(method.as_str(), protocol, headers).map_err(Rejection::Request)?;
        return Ok(Transport::Http2);
    }
    accept_key_for(method.as_str(), headers).map_err(Rejection::Request)?;
    // RFC 6455 §4.1: the opening handshake is HTTP/1.1 or later.
    if version < Version::HTTP_11 {
        return Err(Rejection::Request(HandshakeError::HttpVersion));
    }
    check_protocol_list(headers).map_err(Rejection::Request)?;
    Ok(Transport::Http1)
}

/// Checks the request's rules as [`check`] does (`protocol` is the HTTP/2
/// `:protocol`, [`protocol_of`]) and negotiates with `accept`:
/// [`Upgrade::new`] over HTTP/1.1, [`Upgrade::extended_connect`] over HTTP/2.
pub fn negotiate(
    method: &Method,
    version: Version,
    protocol: Option<&str>,
    headers: &Headers,
    accept: Accept,
) -> Result<Upgrade, Rejection> {
    let upgrade = match check_rules(method, version, protocol, headers)? {
        Transport::Http2 => Upgrade::extended_connect(method.as_str(), protocol, headers, accept)?,
        Transport::Http1 => Upgrade::new(method.as_str(), headers, accept)?,
    };
    Ok(upgrade)
}

/// The answer accepting `upgrade`: 101 with its headers over HTTP/1.1,
/// 200 with them over HTTP/2 (RFC 8441 §5), an empty body. Fails with
/// [`Misuse::InvalidHeader`] if a header line of the [`Accept`] is not one
/// the `http` crate can carry.
pub fn response_for<B: Default>(upgrade: &Upgrade) -> Result<Response<B>, Misuse> {
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::from_u16(upgrade.status()).unwrap_or(StatusCode::OK);
    for (name, value) in upgrade.response_headers() {
        let invalid = || Misuse::InvalidHeader { name: name.clone() };
        let name_ = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| invalid())?;
        response.headers_mut().append(name_, value);
    }
    Ok(response)
}

/// Upgrades `request`: checks it (HTTP/1.1 upgrade or HTTP/2 extended
/// CONNECT), negotiates with `accept`, and takes hyper's upgrade handle out
/// of it. Gives the response to send (101 or 200, empty body) and the
/// future of the socket, which runs with `config` once hyper has sent the
/// response; an `Err` is the [`Rejection`] to answer with instead
/// ([`Rejection::response`]). Check the `Origin` beforehand if the server
/// is for pages of its own site ([`OriginPolicy::check_headers`](crate::OriginPolicy::check_headers)
/// on [`headers_of`]).
pub fn upgrade<B, R: Default>(
    request: &mut Request<B>,
    accept: Accept,
    config: Config,
) -> Result<(Response<R>, UpgradeFuture), Rejection> {
    let headers = headers_of(request.version(), request.uri(), request.headers());
    let protocol = protocol_of(request.extensions());
    let upgrade = negotiate(request.method(), request.version(), protocol, &headers, accept)?;
    let response = response_for(&upgrade).map_err(Rejection::Accept)?;
    let on_upgrade = request
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or(Rejection::NotUpgradable)?;
    Ok((response, UpgradeFuture::new(on_upgrade, upgrade, config)))
}

/// The socket of an accepted upgrade, once hyper has sent the response and
/// handed the connection (or HTTP/2 stream) over: resolves to the
/// [`WebSocket`], OPEN with what was negotiated, or to hyper's error (the
/// client went away first, the connection failed).
///
/// # Panics
///
/// Like most futures, when polled again after it has completed (the
/// `Future` contract leaves that open; hyper's handle is spent by then).
#[must_use = "the socket is only made when this future is polled"]
pub struct UpgradeFuture {
    on_upgrade: OnUpgrade,
    pending: Option<(Upgrade, Config)>,
    transport: Transport,
}

impl UpgradeFuture {
    /// Waits on `on_upgrade` (hyper's handle), then starts the machine with
    /// `upgrade` and `config`.
    pub fn new(on_upgrade: OnUpgrade, upgrade: Upgrade, config: Config) -> Self {
        let transport = match upgrade.is_extended_connect() {
            true => Transport::Http2,
            false => Transport::Http1,
        };
        UpgradeFuture {
            on_upgrade,
            pending: Some((upgrade, config)),
            transport,
        }
    }

    /// Which HTTP the socket runs over.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}

impl fmt::Debug for UpgradeFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeFuture")
            .field("transport", &self.transport)
            .field("done", &self.pending.is_none())
            .finish_non_exhaustive()
    }
}

impl Future for UpgradeFuture {
    type Output = Result<WebSocket, ::hyper::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(this.pending.is_some(), "UpgradeFuture polled after completion");
        let result = ready!(Pin::new(&mut this.on_upgrade).poll(cx));
        let (upgrade, config) = this.pending.take().expect("checked above");
        let upgraded = result?;
        let conn = Connection::from_upgrade(upgrade, config);
        Poll::Ready(Ok(WebSocketStream::from_connection(conn, TokioIo::new(upgraded))))
    }
}
