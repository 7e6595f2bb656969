//! What the drivers ([`blocking`](crate::blocking), `tokio`) share: their
//! error type, the server's decision on a request, and the steps of
//! accepting and connecting that are the same whatever moves the bytes.
//! Drivers make no protocol decisions; these only carry the application's
//! decision to the machine.

use crate::event::{DecisionError, Event};
use crate::handshake::{HttpResponse, Request, UrlError};
use crate::upgrade::{Accept, ClientRequest};
use crate::{Connection, Failure};
use std::io;
use std::string::{String, ToString};

/// The default output high-water mark of the drivers: 128 KiB. Above it the
/// tokio sink waits before taking another message, and the blocking
/// driver's `read` reads nothing more until the transport has taken the
/// output.
pub const DEFAULT_HIGH_WATER_MARK: usize = 128 << 10;

/// How a client connects, beyond the request itself: the connection's
/// settings, a proxy, and (feature `rustls`) the TLS configuration for
/// `wss://`. The drivers' `connect_with_options` take it.
///
/// ```
/// use std::time::Duration;
/// use wsmachine::driver::ConnectOptions;
/// use wsmachine::proxy::Proxy;
/// let mut options = ConnectOptions::default();
/// options.config.ping_interval = Some(Duration::from_secs(5));
/// options.proxy = Some(Proxy::parse("socks5://127.0.0.1:1080")?);
/// # Ok::<(), wsmachine::proxy::ProxyError>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The connection's settings; `handshake_timeout` also bounds the TCP
    /// connect, the proxy's tunnel and the TLS handshake.
    pub config: crate::Config,
    /// The proxy to tunnel through (`None`: connect directly). Nothing is
    /// read from the environment unless the caller asks
    /// ([`Proxy::from_env`](crate::proxy::Proxy::from_env)).
    pub proxy: Option<crate::proxy::Proxy>,
    /// The TLS configuration for `wss://` (`None`: Mozilla's roots,
    /// `tls::TlsConnector::new`).
    #[cfg(feature = "rustls")]
    pub tls: Option<crate::tls::TlsConnector>,
}

/// What can go wrong while driving a connection over a stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The stream failed, or would block (`ErrorKind::WouldBlock`: try again).
    Io(io::Error),
    /// The connection failed: the peer broke a rule, the handshake failed,
    /// or the close timed out ([`Event::Closed`] follows).
    Failed(Failure),
    /// A call was refused: the connection is not OPEN, its output is full,
    /// or the call broke a rule of the API.
    Refused(crate::Error),
    /// The URL given to `connect` is not a usable `ws://` URL.
    Url(UrlError),
    /// The proxy could not be used, or refused the tunnel; says how (its
    /// HTTP status, its SOCKS5 reply).
    Proxy(crate::proxy::ProxyError),
    /// `connect` was given a `wss://` URL but the crate was built without
    /// the `rustls` feature: enable it, or open a TLS stream yourself and
    /// use `connect_with`.
    TlsNotSupported,
    /// TLS failed (feature `rustls`): the peer's certificate was not
    /// trusted (`rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)`),
    /// is not valid for the name connected to (`..::NotValidForNameContext`),
    /// the peer sent an alert or broke the TLS protocol, or the host is no
    /// valid TLS server name. A failure of the transport under TLS is
    /// [`Error::Io`].
    #[cfg(feature = "rustls")]
    Tls(rustls::Error),
    /// The server answered the request without upgrading it (for example a
    /// plain HTTP request served a page).
    NotUpgraded,
    /// The connection is over: it reported `Event::Closed` and the transport
    /// should be dropped.
    Closed,
    /// The server cannot take WebSocket over HTTP/2 (RFC 8441; feature
    /// `http2`), and says why: it does not speak HTTP/2, or its SETTINGS do
    /// not enable extended CONNECT (RFC 8441 §3). `http2::connect` falls
    /// back to HTTP/1.1 instead; `Http2Connection` reports this.
    #[cfg(feature = "http2")]
    Http2Unsupported(Fallback),
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Io(e) => write!(f, "transport: {e}"),
            Error::Failed(e) => write!(f, "websocket: {e}"),
            Error::Refused(e) => write!(f, "refused: {e}"),
            Error::Url(e) => write!(f, "URL: {e}"),
            Error::Proxy(e) => write!(f, "proxy: {e}"),
            Error::TlsNotSupported => f.write_str(
                "wss:// needs TLS: build with the `rustls` feature, or open a TLS stream and use connect_with",
            ),
            #[cfg(feature = "rustls")]
            Error::Tls(e) => write!(f, "TLS: {e}"),
            Error::NotUpgraded => f.write_str("the request was answered without a WebSocket upgrade"),
            Error::Closed => f.write_str("the connection is closed"),
            #[cfg(feature = "http2")]
            Error::Http2Unsupported(why) => write!(f, "no WebSocket over HTTP/2 here: {why}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Failed(e) => Some(e),
            Error::Refused(e) => Some(e),
            Error::Proxy(e) => Some(e),
            #[cfg(feature = "rustls")]
            Error::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// [`Error::Io`]; with the `rustls` feature, an I/O error that carries a
    /// `rustls::Error` (what rustls' streams and tokio-rustls return for a
    /// TLS failure) is `Error::Tls`.
    fn from(e: io::Error) -> Self {
        #[cfg(feature = "rustls")]
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return Error::Tls(tls.clone());
        }
        Error::Io(e)
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Refused(e)
    }
}

impl From<Failure> for Error {
    fn from(e: Failure) -> Self {
        Error::Failed(e)
    }
}

impl From<crate::proxy::ProxyError> for Error {
    fn from(e: crate::proxy::ProxyError) -> Self {
        Error::Proxy(e)
    }
}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::Url(e)
    }
}

impl Error {
    /// Whether this is a `WouldBlock` from a non-blocking stream.
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// A server's decision on a request, returned by the `decide` callback of
/// `accept_with`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Decision {
    /// Accept the upgrade (subprotocol, extensions, headers). For a plain
    /// HTTP request, which cannot be upgraded, the answer is 426 with the
    /// supported version (RFC 6455 §4.2.2, §4.4).
    Accept(Accept),
    /// Answer with this response and close: a rejection of an upgrade (403),
    /// or a page for a plain HTTP request.
    Respond(HttpResponse),
}

impl Decision {
    /// `Accept(accept)` if `policy` allows the request's `Origin`, else
    /// `Respond` with the 403 of [`OriginError::response`](crate::OriginError::response)
    /// (the cross-site WebSocket hijacking defence of RFC 6455 §10.2). A
    /// decide callback's one line for upgrades:
    ///
    /// ```no_run
    /// use wsmachine::blocking::{self, Decision};
    /// use wsmachine::{Accept, Config, OriginPolicy};
    /// let listener = std::net::TcpListener::bind("127.0.0.1:9999")?;
    /// let (tcp, _) = listener.accept()?;
    /// let policy = OriginPolicy::same_origin();
    /// let ws = blocking::accept_with(tcp, Config::default(), |request| {
    ///     Decision::accept_if_allowed(&policy, request, Accept::new())
    /// })?;
    /// # let _ = ws;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_if_allowed(policy: &crate::OriginPolicy, request: &Request, accept: Accept) -> Decision {
        match policy.check(request) {
            Ok(()) => Decision::Accept(accept),
            Err(refused) => Decision::Respond(refused.response()),
        }
    }
}

/// Carries the application's decision on a surfaced request (`event`) to
/// the machine. Returns the event back when it is not a request. A decision
/// the machine refuses (an invalid `Accept` or response) is answered 500,
/// so the peer is not left waiting, and reported.
pub(crate) fn decide_on(
    conn: &mut Connection,
    event: Event,
    decide: &mut impl FnMut(&Request) -> Decision,
) -> Result<Option<Event>, Error> {
    match event {
        Event::Request(pending) => {
            let result = match decide(&pending) {
                Decision::Accept(accept) => conn.accept(pending, accept),
                Decision::Respond(response) => conn.reject(pending, response),
            };
            if let Err(DecisionError { error, pending }) = result {
                // An answer that is ours to get right; do not leave the client waiting.
                let _ = conn.reject(pending, HttpResponse::new(500));
                return Err(Error::Refused(error));
            }
            Ok(None)
        }
        Event::HttpRequest(pending) => {
            let response = match decide(&pending) {
                Decision::Accept(_) => HttpResponse::new(426)
                    .header("Upgrade", "websocket")
                    .header("Sec-WebSocket-Version", "13"),
                Decision::Respond(response) => response,
            };
            if let Err(DecisionError { error, pending }) = conn.respond(pending, response) {
                let _ = conn.respond(pending, HttpResponse::new(500));
                return Err(Error::Refused(error));
            }
            Ok(None)
        }
        other => Ok(Some(other)),
    }
}

/// What of a frame's `parts` (header, payload) is left to write once
/// `done` bytes of them are written: the rest of the first part, if any,
/// then the second (empty once the first is done). For the drivers' direct
/// writes (`Connection::send_direct`).
pub(crate) fn unwritten(parts: [&[u8]; 2], done: usize) -> (&[u8], &[u8]) {
    match done.checked_sub(parts[0].len()) {
        None => (&parts[0][done..], parts[1]),
        Some(into_second) => (parts[1].get(into_second..).unwrap_or_default(), &[]),
    }
}

/// The host and port to open a TCP connection to for `request` (an IPv6
/// address without its brackets). Without the `rustls` feature a `wss://`
/// request is [`Error::TlsNotSupported`].
pub(crate) fn tcp_target(request: &ClientRequest) -> Result<(String, u16), Error> {
    if request.is_secure() && !cfg!(feature = "rustls") {
        return Err(Error::TlsNotSupported);
    }
    let host = request.host().trim_start_matches('[').trim_end_matches(']').to_string();
    Ok((host, request.port()))
}

/// Turns an [`Error::Io`] that carries a TLS failure into [`Error::Tls`]
/// (the drivers' reads report what the stream said as `Error::Io`).
pub(crate) fn tls_or_io(e: Error) -> Error {
    match e {
        Error::Io(e) => Error::from(e),
        other => other,
    }
}

/// Runs the handshake with `proxy` over a blocking `stream` (connected to
/// the proxy), opening a tunnel to `host:port`, all of it within `timeout`
/// (each read and write is bounded by the time left; running out is
/// `ErrorKind::TimedOut`). The stream's timeouts are unset afterwards.
pub(crate) fn tunnel_blocking(
    stream: &mut std::net::TcpStream,
    proxy: &crate::proxy::Proxy,
    host: &str,
    port: u16,
    timeout: core::time::Duration,
) -> Result<(), Error> {
    use std::io::{ErrorKind, Read, Write};
    let deadline = std::time::Instant::now().checked_add(timeout);
    let timed_out = || Error::Io(io::Error::new(ErrorKind::TimedOut, "the proxy did not answer in time"));
    let mut handshake = crate::proxy::ProxyHandshake::new(proxy, host, port);
    // A request that cannot be sent (a SOCKS5 field over 255 bytes) fails now.
    handshake.receive(&[])?;
    let mut buf = [0u8; 512];
    let result = loop {
        let left = match deadline {
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => break Err(timed_out()),
            },
            None => None,
        };
        stream.set_read_timeout(left)?;
        stream.set_write_timeout(left)?;
        let step = (|| {
            if !handshake.output().is_empty() {
                stream.write_all(handshake.output())?;
                let n = handshake.output().len();
                handshake.consume_output(n);
            }
            stream.read(&mut buf)
        })();
        let n = match step {
            Ok(0) => break Err(Error::Proxy(crate::proxy::ProxyError::Closed)),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break Err(timed_out()),
            Err(e) => break Err(Error::Io(e)),
        };
        match handshake.receive(&buf[..n]) {
            Ok(crate::proxy::Progress::Done { leftover }) => break tunnel_done(&leftover),
            Ok(crate::proxy::Progress::NeedMore) => {}
            Err(e) => break Err(e.into()),
        }
    };
    stream.set_read_timeout(None)?;
    stream.set_write_timeout(None)?;
    result
}

/// Runs the handshake with `proxy` over an async `stream` (connected to the
/// proxy), opening a tunnel to `host:port`.
#[cfg(feature = "tokio")]
pub(crate) async fn tunnel_async<S: ::tokio::io::AsyncRead + ::tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    proxy: &crate::proxy::Proxy,
    host: &str,
    port: u16,
) -> Result<(), Error> {
    use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut handshake = crate::proxy::ProxyHandshake::new(proxy, host, port);
    // A request that cannot be sent (a SOCKS5 field over 255 bytes) fails now.
    handshake.receive(&[])?;
    let mut buf = [0u8; 512];
    loop {
        if !handshake.output().is_empty() {
            stream.write_all(handshake.output()).await?;
            stream.flush().await?;
            let n = handshake.output().len();
            handshake.consume_output(n);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(Error::Proxy(crate::proxy::ProxyError::Closed));
        }
        if let crate::proxy::Progress::Done { leftover } = handshake.receive(&buf[..n])? {
            return tunnel_done(&leftover);
        }
    }
}

/// The tunnel is open. A target speaks only once the client has (its TLS
/// or HTTP handshake), so bytes that came with the proxy's answer mean the
/// proxy is not a transparent tunnel.
fn tunnel_done(leftover: &[u8]) -> Result<(), Error> {
    if leftover.is_empty() {
        Ok(())
    } else {
        Err(Error::Proxy(crate::proxy::ProxyError::Malformed(
            "bytes after the answer, before the client spoke",
        )))
    }
}

#[cfg(feature = "http2")]
/// Why a WebSocket runs on HTTP/1.1 when HTTP/2 was asked for (or, from
/// [`Http2Connection`](crate::http2::Http2Connection), why the server cannot take WebSocket over HTTP/2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// `wss://`: the server chose `http/1.1`, or no protocol, by ALPN
    /// (RFC 7301): it does not speak HTTP/2 over TLS.
    NoH2Alpn,
    /// `ws://`: the server did not answer the HTTP/2 connection preface
    /// with its SETTINGS (RFC 9113 §3.4): it does not speak h2c with prior
    /// knowledge.
    NoH2c,
    /// The server speaks HTTP/2 but its SETTINGS lack
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` (RFC 8441 §3): it does not
    /// take extended CONNECT.
    NoExtendedConnect,
}

#[cfg(feature = "http2")]
impl core::fmt::Display for Fallback {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Fallback::NoH2Alpn => "the server did not choose h2 by ALPN",
            Fallback::NoH2c => "the server did not answer the HTTP/2 preface (no h2c with prior knowledge)",
            Fallback::NoExtendedConnect => {
                "the server's HTTP/2 SETTINGS lack SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3)"
            }
        })
    }
}
