//! The application's side of the opening handshake: what a client asks for
//! ([`ClientRequest`]), how a server accepts ([`Accept`]), and
//! [`Upgrade`], the helper for handshakes an HTTP server did elsewhere
//! (hyper, axum) that yields what a [`Connection`](crate::Connection) needs
//! to start OPEN with the negotiated subprotocol and extensions.
//!
//! This sits above the handshake layer (HTTP bytes and RFC 6455 §4 checks)
//! and the extension layer (negotiation), and below the connection.

use crate::error::Misuse;
use crate::extension::{Extension, Offers};
use crate::handshake::client::{
    RequestHead, Target, authority, check_protocol, encode_request, origin_form, parse_url,
};
use crate::handshake::server::{
    check_extended_connect, check_headers, check_protocol_list, check_reserved, encode_switching, list_of,
};
use crate::handshake::uri::is_host;
use crate::handshake::{HandshakeError, Headers, HttpResponse, Response, UrlError, accept_key_for, is_token};
use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// What a client asks for: where to connect and what to offer.
///
/// The builder's calls cannot fail; what they were given is checked when
/// the request is handed to [`Connection::client`](crate::Connection::client)
/// (or beforehand with [`check`](ClientRequest::check)), which refuses it
/// with the [`Misuse`] naming the rule: the host must be a host (RFC 3986
/// §3.2.2), the path origin form (RFC 9112 §3.2.1), each subprotocol a token
/// and offered once (RFC 6455 §4.1), each header a valid field (RFC 9110
/// §5.1, §5.5) and none of those the handshake writes itself.
///
/// ```
/// use wsmachine::ClientRequest;
/// let req = ClientRequest::from_url("ws://example.com:8080/chat?room=1")?
///     .protocol("chat.v2")
///     .header("Origin", "http://example.com");
/// assert_eq!((req.host(), req.port(), req.path()), ("example.com", 8080, "/chat?room=1"));
/// # Ok::<(), wsmachine::handshake::UrlError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct ClientRequest {
    target: Target,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    extensions: Offers,
}

impl ClientRequest {
    /// A request for `path` (with its query) on `host:port`, plain `ws`.
    /// `host` is a name or address without the port (an IPv6 address in
    /// brackets, a non-ASCII name in its `xn--` form: IDNA is not done);
    /// `path` starts with `/` and is ASCII (percent-encode the rest, as
    /// [`from_url`](ClientRequest::from_url) does); empty means `/`.
    pub fn new(host: &str, port: u16, path: &str) -> Self {
        let path = if path.is_empty() { "/" } else { path };
        ClientRequest {
            target: Target {
                host: host.to_string(),
                port,
                secure: false,
                path: path.to_string(),
            },
            protocols: Vec::new(),
            headers: Vec::new(),
            extensions: Offers::default(),
        }
    }

    /// Parses a `ws://host[:port]/path?query` or `wss://…` URL (RFC 6455 §3).
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        Ok(ClientRequest {
            target: parse_url(url)?,
            protocols: Vec::new(),
            headers: Vec::new(),
            extensions: Offers::default(),
        })
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`, RFC 6455 §4.1); call
    /// once per protocol, in order of preference. Each must be a token and
    /// offered once (RFC 6455 §4.1).
    pub fn protocol(mut self, name: &str) -> Self {
        self.protocols.push(name.to_string());
        self
    }

    /// Offers permessage-deflate (RFC 7692) with these settings; call again
    /// for further offers, in order of preference (for example a small
    /// window first, then the default). The server's answer is checked
    /// against the offers (RFC 7692 §7.1) and the agreed parameters are in
    /// [`Event::Open`](crate::Event::Open) and
    /// [`Connection::deflate`](crate::Connection::deflate).
    ///
    /// ```
    /// use wsmachine::ClientRequest;
    /// use wsmachine::deflate::DeflateConfig;
    /// let req = ClientRequest::new("example.com", 80, "/")
    ///     .deflate(DeflateConfig { client_max_window_bits: 10, ..DeflateConfig::default() })
    ///     .deflate(DeflateConfig::default());
    /// assert_eq!(req.deflate_offers().len(), 2);
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: crate::deflate::DeflateConfig) -> Self {
        self.extensions.deflate.push(config);
        self
    }

    /// The permessage-deflate offers, in order.
    #[cfg(feature = "deflate")]
    pub fn deflate_offers(&self) -> &[crate::deflate::DeflateConfig] {
        &self.extensions.deflate
    }

    /// Adds a header line (for example `Origin`, `Authorization`, cookies).
    /// The ones the handshake writes (`Host`, `Upgrade`, `Connection`, any
    /// `Sec-WebSocket-*`, and the framing `Content-Length`,
    /// `Transfer-Encoding`) are refused: the subprotocols and the extension
    /// offers have their own calls.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The host to connect to (an IPv6 address keeps its brackets).
    pub fn host(&self) -> &str {
        &self.target.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.target.port
    }

    /// Whether the URL asked for TLS (`wss://`); the driver provides TLS.
    pub fn is_secure(&self) -> bool {
        self.target.secure
    }

    /// The request target: path and query.
    pub fn path(&self) -> &str {
        &self.target.path
    }

    /// The offered subprotocols, in order.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// The configured extension offers.
    pub(crate) fn extensions(&self) -> &Offers {
        &self.extensions
    }

    /// Checks the request the way [`Connection::client`](crate::Connection::client)
    /// does, so that a mistake shows where the request is built: the
    /// [`Misuse`] says which rule it broke.
    ///
    /// ```
    /// use wsmachine::{ClientRequest, Misuse};
    /// let req = ClientRequest::new("example.com", 80, "/").protocol("chat").protocol("chat");
    /// assert_eq!(req.check(), Err(Misuse::DuplicateSubprotocol("chat".into())));
    /// let req = ClientRequest::new("example.com", 80, "/").header("Sec-WebSocket-Extensions", "x");
    /// assert_eq!(req.check(), Err(Misuse::ReservedHeader { name: "Sec-WebSocket-Extensions".into() }));
    /// ```
    pub fn check(&self) -> Result<(), Misuse> {
        let t = &self.target;
        // RFC 9112 §3.2.1: origin form; RFC 6455 §3: no fragment.
        if !t.path.starts_with('/') || t.path.contains('#') || !t.path.is_ascii() || origin_form(&t.path).is_none() {
            return Err(Misuse::InvalidPath);
        }
        // RFC 3986 §3.2.2 (RFC 6455 §3's host).
        if !is_host(&t.host) {
            return Err(Misuse::InvalidHost);
        }
        // RFC 6455 §4.1: tokens, each unique.
        for (i, p) in self.protocols.iter().enumerate() {
            if !is_token(p) {
                return Err(Misuse::InvalidSubprotocol(p.clone()));
            }
            if self.protocols[..i].contains(p) {
                return Err(Misuse::DuplicateSubprotocol(p.clone()));
            }
        }
        check_headers(&self.headers)?;
        // RFC 6455 §4.1: the handshake's own fields; RFC 9112 §6: no body.
        const OWNED: &[&str] = &["host", "upgrade", "connection", "content-length", "transfer-encoding"];
        check_reserved(&self.headers, OWNED, true)?;
        self.extensions.validate()?;
        Ok(())
    }

    /// The same request as an HTTP/2 extended CONNECT (RFC 8441 §4), for
    /// WebSocket over HTTP/2: checked as [`check`](ClientRequest::check)
    /// does, and besides refusing the header lines HTTP/2 forbids
    /// (RFC 9113 §8.2.2: `Keep-Alive`, `Proxy-Connection`, `TE` other
    /// than `trailers`) as [`Misuse::ReservedHeader`].
    ///
    /// ```
    /// use wsmachine::ClientRequest;
    /// let connect = ClientRequest::from_url("wss://example.com/chat")?
    ///     .protocol("chat")
    ///     .header("Origin", "https://example.com")
    ///     .extended_connect()?;
    /// assert_eq!((connect.method(), connect.protocol()), ("CONNECT", "websocket"));
    /// assert_eq!((connect.scheme(), connect.authority(), connect.path()), ("https", "example.com", "/chat"));
    /// assert_eq!(connect.headers()[0], ("sec-websocket-version".into(), "13".into()));
    /// assert!(connect.headers().contains(&("origin".into(), "https://example.com".into())));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn extended_connect(&self) -> Result<ExtendedConnect, Misuse> {
        self.check()?;
        // RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2
        // (Connection, Upgrade and Transfer-Encoding are refused by `check`).
        if let Some((name, _)) = self.headers.iter().find(|(n, v)| {
            n.eq_ignore_ascii_case("keep-alive")
                || n.eq_ignore_ascii_case("proxy-connection")
                || (n.eq_ignore_ascii_case("te") && !v.eq_ignore_ascii_case("trailers"))
        }) {
            return Err(Misuse::ReservedHeader { name: name.clone() });
        }
        let t = &self.target;
        // RFC 8441 §5: Sec-WebSocket-Key is not sent; the version, subprotocols
        // and extension offers are, as in RFC 6455 §4.1.
        let mut headers = alloc::vec![("sec-websocket-version".to_string(), "13".to_string())];
        if !self.protocols.is_empty() {
            headers.push(("sec-websocket-protocol".to_string(), self.protocols.join(", ")));
        }
        if let Some(offer) = self.extensions.header_value() {
            headers.push(("sec-websocket-extensions".to_string(), offer));
        }
        // RFC 9113 §8.2.1: field names are lowercase in HTTP/2.
        headers.extend(self.headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())));
        Ok(ExtendedConnect {
            scheme: if t.secure { "https" } else { "http" },
            authority: authority(&t.host, t.port, t.secure),
            path: t.path.clone(),
            headers,
            protocols: self.protocols.clone(),
            extensions: self.extensions.clone(),
        })
    }

    /// Writes the request head with the given `Sec-WebSocket-Key`.
    pub(crate) fn encode(&self, key: &str, out: &mut Vec<u8>) {
        let offer = self.extensions.header_value();
        let head = RequestHead {
            host: &self.target.host,
            port: self.target.port,
            secure: self.target.secure,
            path: &self.target.path,
            protocols: &self.protocols,
            extensions: offer.as_deref(),
            headers: &self.headers,
        };
        encode_request(&head, key, out);
    }
}

/// How a server accepts an upgrade request: the subprotocol, the extensions
/// it is willing to use, extra header lines.
///
/// ```
/// use wsmachine::Accept;
/// let accept = Accept::new().protocol("chat").header("X-Served-By", "wsmachine");
/// # let _ = accept;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Accept {
    protocol: Option<String>,
    headers: Vec<(String, String)>,
    extensions: Offers,
}

impl Accept {
    /// Accepts with no subprotocol and no extra headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Chooses one of the subprotocols the client offered.
    pub fn protocol(mut self, name: &str) -> Self {
        self.protocol = Some(name.to_string());
        self
    }

    /// Adds a header line to the 101 response (for example `Set-Cookie`).
    /// The ones the handshake writes (`Upgrade`, `Connection`, any
    /// `Sec-WebSocket-*`) and framing (`Content-Length`,
    /// `Transfer-Encoding`, never on a 1xx: RFC 9110 §8.6, RFC 9112 §6.1)
    /// are refused, when accepting or by [`check`](Accept::check).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Checks what can be checked without the request (the header lines,
    /// the subprotocol's form, the extension settings), as
    /// [`Connection::accept`](crate::Connection::accept) does, so that a
    /// mistake shows where the answer is built.
    ///
    /// ```
    /// use wsmachine::{Accept, Misuse};
    /// assert!(Accept::new().header("Set-Cookie", "a=1").check().is_ok());
    /// assert_eq!(
    ///     Accept::new().header("Sec-WebSocket-Accept", "x").check(),
    ///     Err(Misuse::ReservedHeader { name: "Sec-WebSocket-Accept".into() })
    /// );
    /// ```
    pub fn check(&self) -> Result<(), Misuse> {
        check_headers(&self.headers)?;
        // RFC 6455 §4.2.2: the 101's own fields come from the negotiation.
        const OWNED: &[&str] = &["upgrade", "connection", "content-length", "transfer-encoding"];
        check_reserved(&self.headers, OWNED, true)?;
        if let Some(p) = self.protocol.as_ref().filter(|p| !is_token(p)) {
            return Err(Misuse::InvalidSubprotocol(p.clone()));
        }
        self.extensions.validate()?;
        Ok(())
    }

    /// Accepts permessage-deflate (RFC 7692) if the client offered it: the
    /// first of its offers that `config` can answer is taken
    /// ([`deflate::negotiate`](crate::deflate::negotiate) shows which
    /// beforehand); offers with unknown, duplicate or invalid parameters are
    /// declined (§7.1). No acceptable offer: the connection opens without
    /// compression.
    ///
    /// ```
    /// use wsmachine::Accept;
    /// use wsmachine::deflate::DeflateConfig;
    /// let accept = Accept::new().deflate(DeflateConfig { server_no_context_takeover: true, ..DeflateConfig::default() });
    /// # let _ = accept;
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: crate::deflate::DeflateConfig) -> Self {
        self.extensions.deflate = alloc::vec![config];
        self
    }

    /// Checks this answer against the request (its offered subprotocols and
    /// extensions) and negotiates the extensions.
    pub(crate) fn agree(self, request: &Headers, offered_protocols: &[String]) -> Result<Negotiated, Misuse> {
        self.check()?;
        if let Some(p) = &self.protocol {
            if !offered_protocols.iter().any(|o| o == p) {
                return Err(Misuse::SubprotocolNotOffered(p.clone()));
            }
        }
        let (answer, extension) = match self.extensions.answer(request) {
            Some((answer, ext)) => (Some(answer), Some(ext)),
            None => (None, None),
        };
        Ok(Negotiated {
            protocol: self.protocol,
            extension,
            answer,
            headers: self.headers,
        })
    }
}

impl HttpResponse {
    /// Checks the response as [`Connection::reject`](crate::Connection::reject)
    /// and [`respond`](crate::Connection::respond) do (the rules are on
    /// [`HttpResponse`]), so that a mistake shows where the response is built.
    ///
    /// ```
    /// use wsmachine::{HttpResponse, Misuse};
    /// assert!(HttpResponse::new(404).header("Content-Type", "text/plain").body("no").check().is_ok());
    /// assert_eq!(
    ///     HttpResponse::new(200).header("Content-Length", "5").check(),
    ///     Err(Misuse::ReservedHeader { name: "Content-Length".into() })
    /// );
    /// assert_eq!(HttpResponse::new(204).body("x").check(), Err(Misuse::BodyNotAllowed { status: 204 }));
    /// ```
    pub fn check(&self) -> Result<(), Misuse> {
        self.validate().map_err(Misuse::from)
    }
}

/// What a handshake agreed on: the subprotocol, the extension in use, and
/// (server) the answer's extra header lines.
pub(crate) struct Negotiated {
    pub(crate) protocol: Option<String>,
    pub(crate) extension: Option<Box<dyn Extension>>,
    /// Server: the `Sec-WebSocket-Extensions` value of the answer.
    pub(crate) answer: Option<String>,
    /// Server: the application's header lines for the answer.
    pub(crate) headers: Vec<(String, String)>,
}

impl Negotiated {
    /// The `Sec-WebSocket-Extensions` value in use (empty when none), like
    /// the browser's `WebSocket.extensions`.
    pub(crate) fn extensions(&self) -> String {
        self.extension.as_ref().map(|e| e.describe()).unwrap_or_default()
    }

    /// Server: the 101 response accepting a request with `key`.
    pub(crate) fn encode_101(&self, key: &str, out: &mut Vec<u8>) {
        encode_switching(
            key,
            self.protocol.as_deref(),
            self.answer.as_deref(),
            &self.headers,
            out,
        );
    }
}

impl fmt::Debug for Negotiated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Negotiated")
            .field("protocol", &self.protocol)
            .field("extensions", &self.extensions())
            .finish_non_exhaustive()
    }
}

/// Why an [`Upgrade`] could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The request breaks RFC 6455 §4.2.1: answer with
    /// [`HandshakeError::status`] (for 426 also `Sec-WebSocket-Version: 13`,
    /// RFC 6455 §4.4).
    Request(HandshakeError),
    /// The [`Accept`] cannot answer this request (for example a subprotocol
    /// the client did not offer).
    Accept(Misuse),
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::Request(e) => write!(f, "invalid upgrade request: {e}"),
            UpgradeError::Accept(e) => write!(f, "cannot accept: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UpgradeError {}

/// A WebSocket upgrade whose HTTP exchange an HTTP server does (hyper, axum;
/// over HTTP/1.1 with [`Upgrade::new`], over HTTP/2's extended CONNECT, RFC
/// 8441, with [`Upgrade::extended_connect`]): checks the request with the rules
/// [`Connection::server`](crate::Connection::server) applies (RFC 6455
/// §4.2.1), negotiates the subprotocol and extensions as
/// [`Connection::accept`](crate::Connection::accept) does, gives the header
/// lines of the 101 answer, and then becomes the OPEN machine
/// ([`Connection::from_upgrade`](crate::Connection::from_upgrade)).
///
/// ```
/// use wsmachine::handshake::{Header, Headers};
/// use wsmachine::{Accept, Config, Connection, ReadyState, Upgrade};
/// let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
/// let request = Headers(vec![
///     header("Host", "server.example.com"),
///     header("Upgrade", "websocket"),
///     header("Connection", "Upgrade"),
///     header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
///     header("Sec-WebSocket-Version", "13"),
///     header("Sec-WebSocket-Protocol", "chat"),
/// ]);
/// let upgrade = Upgrade::new("GET", &request, Accept::new().protocol("chat"))?;
/// assert!(upgrade.response_headers().contains(&("Sec-WebSocket-Accept".into(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into())));
/// assert_eq!(upgrade.protocol(), Some("chat"));
/// // ... the HTTP server sends 101 with those headers, then hands over the stream:
/// let conn = Connection::from_upgrade(upgrade, Config::default());
/// assert_eq!(conn.state(), ReadyState::Open);
/// # Ok::<(), wsmachine::UpgradeError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct Upgrade {
    response: Vec<(String, String)>,
    extended_connect: bool,
    pub(crate) negotiated: Negotiated,
}

impl Upgrade {
    /// Checks an upgrade request's `method` and `headers` (HTTP/1.1; the
    /// HTTP version is the HTTP server's to check) and answers it with
    /// `accept`.
    pub fn new(method: &str, headers: &Headers, accept: Accept) -> Result<Self, UpgradeError> {
        let accept_value = accept_key_for(method, headers).map_err(UpgradeError::Request)?;
        // RFC 6455 §4.1 item 10, as `Connection::server` checks it.
        check_protocol_list(headers).map_err(UpgradeError::Request)?;
        let response = alloc::vec![
            ("Upgrade".to_string(), "websocket".to_string()),
            ("Connection".to_string(), "Upgrade".to_string()),
            ("Sec-WebSocket-Accept".to_string(), accept_value),
        ];
        Self::negotiate(response, false, headers, accept)
    }

    /// Checks an HTTP/2 extended CONNECT request (RFC 8441 §4, §5: `method`
    /// CONNECT, `protocol` the `:protocol` pseudo-header, `websocket`;
    /// [`check_extended_connect`](crate::handshake::server::check_extended_connect)
    /// lists every rule) and answers it with `accept`: the subprotocol and
    /// permessage-deflate are negotiated exactly as [`Upgrade::new`] does
    /// over HTTP/1.1 (RFC 8441 §5 keeps `Sec-WebSocket-Protocol` and
    /// `Sec-WebSocket-Extensions`). The answer is a `200` ([`status`](Upgrade::status))
    /// whose headers hold no `Sec-WebSocket-Accept` (RFC 8441 §5); once it
    /// is sent, the stream's DATA carries the frames and
    /// [`Connection::from_upgrade`](crate::Connection::from_upgrade) runs
    /// over it as over a TCP connection.
    ///
    /// ```
    /// use wsmachine::handshake::{Header, Headers};
    /// use wsmachine::{Accept, Config, Connection, ReadyState, Upgrade};
    /// let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
    /// // What an HTTP/2 server hands over: the headers, :method and :protocol apart.
    /// let request = Headers(vec![
    ///     header("sec-websocket-version", "13"),
    ///     header("sec-websocket-protocol", "chat, superchat"),
    /// ]);
    /// let upgrade = Upgrade::extended_connect("CONNECT", Some("websocket"), &request, Accept::new().protocol("chat"))?;
    /// assert_eq!(upgrade.status(), 200);
    /// assert_eq!(upgrade.response_headers(), [("Sec-WebSocket-Protocol".into(), "chat".into())]);
    /// let conn = Connection::from_upgrade(upgrade, Config::default());
    /// assert_eq!(conn.state(), ReadyState::Open);
    /// # Ok::<(), wsmachine::UpgradeError>(())
    /// ```
    pub fn extended_connect(
        method: &str,
        protocol: Option<&str>,
        headers: &Headers,
        accept: Accept,
    ) -> Result<Self, UpgradeError> {
        check_extended_connect(method, protocol, headers).map_err(UpgradeError::Request)?;
        Self::negotiate(Vec::new(), true, headers, accept)
    }

    /// The negotiation both forms share, after `response`'s own lines.
    fn negotiate(
        mut response: Vec<(String, String)>,
        extended_connect: bool,
        headers: &Headers,
        accept: Accept,
    ) -> Result<Self, UpgradeError> {
        let offered = list_of(headers, "sec-websocket-protocol");
        let negotiated = accept.agree(headers, &offered).map_err(UpgradeError::Accept)?;
        if let Some(p) = &negotiated.protocol {
            response.push(("Sec-WebSocket-Protocol".to_string(), p.clone()));
        }
        if let Some(e) = &negotiated.answer {
            response.push(("Sec-WebSocket-Extensions".to_string(), e.clone()));
        }
        response.extend(negotiated.headers.iter().cloned());
        Ok(Upgrade {
            response,
            extended_connect,
            negotiated,
        })
    }

    /// The status of the answer: `101` (Switching Protocols) for an
    /// HTTP/1.1 upgrade, `200` for an HTTP/2 extended CONNECT (RFC 8441 §5).
    pub fn status(&self) -> u16 {
        if self.extended_connect { 200 } else { 101 }
    }

    /// Whether this is an HTTP/2 extended CONNECT (RFC 8441), made by
    /// [`Upgrade::extended_connect`].
    pub fn is_extended_connect(&self) -> bool {
        self.extended_connect
    }

    /// The header lines of the answer, in order. HTTP/1.1 (`101 Switching
    /// Protocols`): `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, then
    /// the subprotocol and extensions chosen, then the [`Accept`]'s own
    /// lines. HTTP/2 (`200`, RFC 8441 §5): the subprotocol and extensions
    /// chosen, then the [`Accept`]'s own lines.
    pub fn response_headers(&self) -> &[(String, String)] {
        &self.response
    }

    /// The subprotocol agreed on, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.negotiated.protocol.as_deref()
    }

    /// The extensions agreed on, as a `Sec-WebSocket-Extensions` value
    /// (empty when none).
    pub fn extensions(&self) -> String {
        self.negotiated.extensions()
    }
}

/// A [`ClientRequest`] as the extended CONNECT of WebSocket over HTTP/2
/// (RFC 8441 §4), from [`ClientRequest::extended_connect`]: the
/// pseudo-header fields and header fields an HTTP/2 client sends, and the
/// check of the server's answer
/// ([`check_response`](ExtendedConnect::check_response)) that gives what
/// [`Connection::from_client_upgrade`](crate::Connection::from_client_upgrade)
/// needs to start the client OPEN.
///
/// The HTTP/2 connection must have received `SETTINGS_ENABLE_CONNECT_PROTOCOL
/// = 1` from the server before sending it (RFC 8441 §3); that is the HTTP/2
/// implementation's to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedConnect {
    scheme: &'static str,
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    extensions: Offers,
}

impl ExtendedConnect {
    /// `:method`: `CONNECT` (RFC 8441 §4).
    pub fn method(&self) -> &'static str {
        "CONNECT"
    }

    /// `:protocol`: `websocket` (RFC 8441 §4, the token of RFC 6455 §11.1).
    pub fn protocol(&self) -> &'static str {
        "websocket"
    }

    /// `:scheme`: `https` for a `wss://` URL, `http` for `ws://` (RFC 8441
    /// §5).
    pub fn scheme(&self) -> &str {
        self.scheme
    }

    /// `:authority`: the host, with the port unless it is the scheme's
    /// default (RFC 9113 §8.3.1; the `Host` of HTTP/1.1).
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// `:path`: the path and query (RFC 8441 §4).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The header fields, lowercase (RFC 9113 §8.2.1), in order:
    /// `sec-websocket-version: 13`, the offered `sec-websocket-protocol` and
    /// `sec-websocket-extensions` if any, then the request's own lines. No
    /// `Sec-WebSocket-Key` (RFC 8441 §5).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Checks the server's answer (RFC 8441 §5): a 2xx status is success
    /// (anything else is [`HandshakeError::ConnectStatus`]; no
    /// `Sec-WebSocket-Accept` is expected or checked); the subprotocol must
    /// be one offered (RFC 6455 §4.2.2 step 6) and the extensions must
    /// answer an offer (step 5; RFC 7692 §7.1), as on HTTP/1.1. `headers`
    /// are the response's header fields (pseudo-header fields left out).
    ///
    /// ```
    /// use wsmachine::handshake::{Header, Headers};
    /// use wsmachine::rng::ChaCha20Rng;
    /// use wsmachine::{ClientRequest, Config, Connection, ReadyState};
    /// let connect = ClientRequest::from_url("ws://example.com/")?.protocol("chat").extended_connect()?;
    /// let answer = Headers(vec![Header { name: "sec-websocket-protocol".into(), value: b"chat".to_vec() }]);
    /// let upgrade = connect.check_response(200, answer)?;
    /// assert_eq!(upgrade.protocol(), Some("chat"));
    /// let conn = Connection::from_client_upgrade(upgrade, Config::default(), ChaCha20Rng::from_seed([7; 32]));
    /// assert_eq!(conn.state(), ReadyState::Open);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_response(&self, status: u16, headers: Headers) -> Result<ClientUpgrade, HandshakeError> {
        let mut response = Response {
            status,
            reason: String::new(),
            headers,
            protocol: None,
        };
        // RFC 8441 §5: any 2xx status code is success.
        if !(200..300).contains(&status) {
            return Err(HandshakeError::ConnectStatus(status));
        }
        let extension = self.extensions.check_response(&response.headers)?;
        check_protocol(&mut response, &self.protocols)?;
        Ok(ClientUpgrade {
            negotiated: Negotiated {
                protocol: response.protocol.clone(),
                extension,
                answer: None,
                headers: Vec::new(),
            },
            response,
        })
    }
}

/// A checked answer to an [`ExtendedConnect`] (RFC 8441 §5): the
/// subprotocol and extension agreed on, for
/// [`Connection::from_client_upgrade`](crate::Connection::from_client_upgrade),
/// the client's counterpart of [`Upgrade`].
#[derive(Debug)]
#[must_use]
pub struct ClientUpgrade {
    pub(crate) negotiated: Negotiated,
    response: Response,
}

impl ClientUpgrade {
    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.negotiated.protocol.as_deref()
    }

    /// The extensions agreed on, as a `Sec-WebSocket-Extensions` value
    /// (empty when none).
    pub fn extensions(&self) -> String {
        self.negotiated.extensions()
    }

    /// The server's answer (its status and header fields; no reason phrase
    /// in HTTP/2), with the chosen subprotocol in
    /// [`Response::protocol`].
    pub fn response(&self) -> &Response {
        &self.response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    #[test]
    fn urls() {
        let r = ClientRequest::from_url("ws://localhost:9001/runCase?case=1&agent=x").unwrap();
        assert_eq!(
            (r.host(), r.port(), r.path(), r.is_secure()),
            ("localhost", 9001, "/runCase?case=1&agent=x", false)
        );
        let r = ClientRequest::from_url("WSS://[::1]/").unwrap();
        assert_eq!((r.host(), r.port(), r.is_secure()), ("[::1]", 443, true));
        let r = ClientRequest::from_url("ws://h?x=1").unwrap();
        assert_eq!((r.path(), r.port()), ("/?x=1", 80));
        assert_eq!(ClientRequest::from_url("http://h/"), Err(UrlError::Scheme));
        // RFC 6455 §3: fragment identifiers MUST NOT be used.
        assert_eq!(ClientRequest::from_url("ws://h/#x"), Err(UrlError::Fragment));
        assert_eq!(ClientRequest::from_url("ws://h:0/"), Err(UrlError::Port));
        assert_eq!(ClientRequest::from_url("ws://h:99999/"), Err(UrlError::Port));
        assert_eq!(ClientRequest::from_url("ws://:80/"), Err(UrlError::Host));
        assert_eq!(ClientRequest::from_url("ws://u@h/"), Err(UrlError::UserInfo));
    }

    // RFC 3986 §3.2.2, §3.2.3 (which RFC 6455 §3 builds on): hosts, ports, paths.
    #[test]
    fn url_authority_and_path_rules() {
        let r = ClientRequest::from_url("ws://[2001:db8::1]:9001/x").unwrap();
        assert_eq!((r.host(), r.port()), ("[2001:db8::1]", 9001));
        // An empty port is the default one.
        assert_eq!(ClientRequest::from_url("wss://h:/").unwrap().port(), 443);
        for (url, error) in [
            ("ws://[::1]junk/", UrlError::Host),
            ("ws://[zz::1]/", UrlError::Host),
            ("ws://[]/", UrlError::Host),
            ("ws://[::1/", UrlError::Host),
            ("ws://bücher.example/", UrlError::Host),
            ("ws://a b/", UrlError::Host),
            ("ws://h:+80/", UrlError::Port),
            ("ws://h:8o/", UrlError::Port),
            ("ws://h/a b", UrlError::Path),
            ("ws://h/a\tb", UrlError::Path),
        ] {
            assert_eq!(ClientRequest::from_url(url), Err(error), "{url}");
        }
        // Percent-encodings are kept; non-ASCII is percent-encoded as UTF-8 (RFC 3986 §2.1).
        assert_eq!(
            ClientRequest::from_url("ws://h/%20é?q=1").unwrap().path(),
            "/%20%C3%A9?q=1"
        );
        assert_eq!(
            ClientRequest::from_url("ws://xn--bcher-kva.example/").unwrap().host(),
            "xn--bcher-kva.example"
        );
    }

    // RFC 6455 §4.1: the request carries Host, Upgrade, Connection, the key and version 13.
    #[test]
    fn request_encoding() {
        let mut out = Vec::new();
        ClientRequest::from_url("ws://example.com:8080/chat")
            .unwrap()
            .protocol("a")
            .protocol("b")
            .header("Origin", "http://example.com")
            .encode("dGhlIHNhbXBsZSBub25jZQ==", &mut out);
        let text = core::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: example.com:8080\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Protocol: a, b\r\n"));
        assert!(text.ends_with("Origin: http://example.com\r\n\r\n"));
    }

    #[test]
    fn builder_inputs_are_validated() {
        assert_eq!(
            ClientRequest::new("h", 80, "/").protocol("bad name").check(),
            Err(Misuse::InvalidSubprotocol("bad name".into()))
        );
        assert_eq!(
            ClientRequest::new("h", 80, "/").header("X", "a\r\nInjected: 1").check(),
            Err(Misuse::InvalidHeader { name: "X".into() })
        );
        assert_eq!(ClientRequest::new("h", 80, "/x y").check(), Err(Misuse::InvalidPath));
        assert!(ClientRequest::new("h", 80, "/").header("X", "fine").check().is_ok());
    }

    fn fields(list: &[(&str, &str)]) -> Headers {
        Headers(
            list.iter()
                .map(|(n, v)| crate::handshake::Header {
                    name: n.to_string(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
        )
    }

    // RFC 8441 §4: CONNECT with :protocol websocket, :scheme, :authority, :path;
    // RFC 8441 §5: Sec-WebSocket-Version, -Protocol and -Extensions as in RFC 6455, no Key.
    #[test]
    fn extended_connect_fields() {
        let c = ClientRequest::from_url("ws://example.com:8080/chat?room=1")
            .unwrap()
            .protocol("a")
            .protocol("b")
            .header("Origin", "http://example.com")
            .extended_connect()
            .unwrap();
        assert_eq!((c.method(), c.protocol()), ("CONNECT", "websocket"));
        assert_eq!(
            (c.scheme(), c.authority(), c.path()),
            ("http", "example.com:8080", "/chat?room=1")
        );
        assert_eq!(
            c.headers(),
            &[
                ("sec-websocket-version".to_string(), "13".to_string()),
                ("sec-websocket-protocol".to_string(), "a, b".to_string()),
                // RFC 9113 §8.2.1: lowercase names.
                ("origin".to_string(), "http://example.com".to_string()),
            ]
        );
        assert!(!c.headers().iter().any(|(n, _)| n == "sec-websocket-key"));
        // wss: https, the default port left out of :authority.
        let c = ClientRequest::from_url("wss://[::1]/")
            .unwrap()
            .extended_connect()
            .unwrap();
        assert_eq!((c.scheme(), c.authority(), c.path()), ("https", "[::1]", "/"));
    }

    // RFC 9113 §8.2.2: connection-specific fields are refused; the HTTP/1.1 rules still hold.
    #[test]
    fn extended_connect_refuses_connection_fields() {
        for name in ["Keep-Alive", "proxy-connection", "TE"] {
            assert_eq!(
                ClientRequest::new("h", 80, "/").header(name, "x").extended_connect(),
                Err(Misuse::ReservedHeader { name: name.into() })
            );
        }
        assert!(
            ClientRequest::new("h", 80, "/")
                .header("te", "trailers")
                .extended_connect()
                .is_ok()
        );
        assert_eq!(
            ClientRequest::new("h", 80, "/")
                .header("Upgrade", "websocket")
                .extended_connect(),
            Err(Misuse::ReservedHeader { name: "Upgrade".into() })
        );
        assert_eq!(
            ClientRequest::new("h", 80, "/").protocol("a b").extended_connect(),
            Err(Misuse::InvalidSubprotocol("a b".into()))
        );
    }

    // RFC 8441 §5: a 2xx status is success, anything else fails; no Sec-WebSocket-Accept is checked.
    #[test]
    fn extended_connect_status() {
        let c = ClientRequest::new("h", 80, "/").extended_connect().unwrap();
        for status in [200, 204, 299] {
            let up = c.check_response(status, Headers::default()).unwrap();
            assert_eq!(
                (up.protocol(), up.extensions().as_str(), up.response().status),
                (None, "", status)
            );
        }
        for status in [101, 199, 300, 400, 404, 501] {
            assert_eq!(
                c.check_response(status, Headers::default()).err(),
                Some(HandshakeError::ConnectStatus(status))
            );
        }
        // A stray Sec-WebSocket-Accept is neither needed nor checked (RFC 8441 §5).
        assert!(
            c.check_response(200, fields(&[("sec-websocket-accept", "junk")]))
                .is_ok()
        );
    }

    // RFC 6455 §4.2.2 step 6 (which RFC 8441 §5 keeps): the subprotocol must be one offered.
    #[test]
    fn extended_connect_subprotocol() {
        let c = ClientRequest::new("h", 80, "/")
            .protocol("chat")
            .extended_connect()
            .unwrap();
        let up = c
            .check_response(200, fields(&[("sec-websocket-protocol", "chat")]))
            .unwrap();
        assert_eq!(up.protocol(), Some("chat"));
        assert_eq!(up.response().protocol.as_deref(), Some("chat"));
        assert_eq!(
            c.check_response(200, fields(&[("sec-websocket-protocol", "other")]))
                .err(),
            Some(HandshakeError::UnofferedProtocol("other".into()))
        );
        assert_eq!(
            c.check_response(200, fields(&[("sec-websocket-protocol", "chat, chat")]))
                .err(),
            Some(HandshakeError::UnofferedProtocol("chat".into()))
        );
    }

    // RFC 6455 §4.2.2 step 5: an extension that was not offered fails the handshake.
    #[test]
    fn extended_connect_unoffered_extension() {
        let c = ClientRequest::new("h", 80, "/").extended_connect().unwrap();
        assert_eq!(
            c.check_response(200, fields(&[("sec-websocket-extensions", "permessage-deflate")]))
                .err(),
            Some(HandshakeError::UnofferedExtension("permessage-deflate".into()))
        );
    }

    // RFC 7692 §7.1 over RFC 8441: the offer goes in sec-websocket-extensions, the answer is
    // checked against it, and the machine starts OPEN as a client with deflate in use.
    #[cfg(feature = "deflate")]
    #[test]
    fn extended_connect_deflate() {
        use crate::deflate::DeflateConfig;
        let c = ClientRequest::new("h", 80, "/")
            .deflate(DeflateConfig::default())
            .extended_connect()
            .unwrap();
        let offer = c
            .headers()
            .iter()
            .find(|(n, _)| n == "sec-websocket-extensions")
            .unwrap();
        assert!(offer.1.starts_with("permessage-deflate"), "{offer:?}");
        let up = c
            .check_response(
                200,
                fields(&[(
                    "sec-websocket-extensions",
                    "permessage-deflate; server_no_context_takeover",
                )]),
            )
            .unwrap();
        assert!(
            up.extensions().contains("server_no_context_takeover"),
            "{}",
            up.extensions()
        );
        let conn = crate::Connection::from_client_upgrade(
            up,
            crate::Config::default(),
            crate::rng::ChaCha20Rng::from_seed([1; 32]),
        );
        assert_eq!(conn.role(), crate::Role::Client);
        assert_eq!(conn.state(), crate::ReadyState::Open);
        assert!(conn.deflate().is_some_and(|p| p.server_no_context_takeover));
        // An unknown parameter in the answer fails the handshake (RFC 7692 §5.1).
        assert!(matches!(
            c.check_response(
                200,
                fields(&[("sec-websocket-extensions", "permessage-deflate; x_unknown")])
            ),
            Err(HandshakeError::Extension(_))
        ));
    }

    // RFC 8441 §4, §5: CONNECT with :protocol websocket, version 13, no key;
    // answered with 200 and neither Sec-WebSocket-Accept nor Upgrade/Connection.
    #[test]
    fn extended_connect_is_answered_with_200_and_no_accept_key() {
        let headers = fields(&[("sec-websocket-version", "13"), ("sec-websocket-protocol", "a, b")]);
        let up =
            Upgrade::extended_connect("CONNECT", Some("websocket"), &headers, Accept::new().protocol("b")).unwrap();
        assert_eq!(up.status(), 200);
        assert!(up.is_extended_connect());
        assert_eq!(up.protocol(), Some("b"));
        assert_eq!(
            up.response_headers(),
            [("Sec-WebSocket-Protocol".to_string(), "b".to_string())]
        );
        // RFC 8441 §5: a Sec-WebSocket-Key, if sent, is not used.
        let with_key = fields(&[("sec-websocket-version", "13"), ("sec-websocket-key", "junk")]);
        let up = Upgrade::extended_connect("CONNECT", Some("websocket"), &with_key, Accept::new()).unwrap();
        assert!(up.response_headers().is_empty());
        // The HTTP/1.1 form stays 101.
        let h1 = fields(&[
            ("Host", "a"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ]);
        let up = Upgrade::new("GET", &h1, Accept::new()).unwrap();
        assert_eq!((up.status(), up.is_extended_connect()), (101, false));
    }

    // RFC 8441 §4 (:protocol, CONNECT), RFC 6455 §4.4 (version: 426), §4.1 (tokens).
    #[test]
    fn extended_connect_errors_name_the_rule_and_status() {
        let ok = fields(&[("sec-websocket-version", "13")]);
        let cases: [(&str, Option<&str>, Headers, HandshakeError, u16); 7] = [
            ("CONNECT", None, ok.clone(), HandshakeError::ProtocolNotWebSocket, 400),
            (
                "CONNECT",
                Some("webtransport"),
                ok.clone(),
                HandshakeError::ProtocolNotWebSocket,
                400,
            ),
            (
                "GET",
                Some("websocket"),
                ok.clone(),
                HandshakeError::MethodNotConnect,
                405,
            ),
            (
                "CONNECT",
                Some("websocket"),
                fields(&[]),
                HandshakeError::UnsupportedVersion,
                426,
            ),
            (
                "CONNECT",
                Some("websocket"),
                fields(&[("sec-websocket-version", "8")]),
                HandshakeError::UnsupportedVersion,
                426,
            ),
            (
                "CONNECT",
                Some("websocket"),
                fields(&[("sec-websocket-version", "13"), ("sec-websocket-version", "13")]),
                HandshakeError::UnsupportedVersion,
                426,
            ),
            (
                "CONNECT",
                Some("websocket"),
                fields(&[("sec-websocket-version", "13"), ("sec-websocket-protocol", "a b")]),
                HandshakeError::InvalidProtocolList,
                400,
            ),
        ];
        for (method, protocol, headers, error, status) in cases {
            let got = Upgrade::extended_connect(method, protocol, &headers, Accept::new()).unwrap_err();
            assert_eq!(got, UpgradeError::Request(error.clone()), "{method} {protocol:?}");
            assert_eq!(error.status(), status);
        }
        // :protocol is an upgrade token, compared without case (RFC 9110 §7.8).
        assert!(Upgrade::extended_connect("CONNECT", Some("WebSocket"), &ok, Accept::new()).is_ok());
        // The application's choice must have been offered, as over HTTP/1.1.
        assert_eq!(
            Upgrade::extended_connect("CONNECT", Some("websocket"), &ok, Accept::new().protocol("x")).unwrap_err(),
            UpgradeError::Accept(Misuse::SubprotocolNotOffered("x".into()))
        );
    }

    // RFC 7692 over RFC 8441 §5: permessage-deflate is negotiated from the
    // CONNECT's Sec-WebSocket-Extensions, and the machine gets the extension.
    #[cfg(feature = "deflate")]
    #[test]
    fn extended_connect_negotiates_deflate_into_the_machine() {
        let headers = fields(&[
            ("sec-websocket-version", "13"),
            ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
        ]);
        let accept = Accept::new().deflate(crate::deflate::DeflateConfig::default());
        let up = Upgrade::extended_connect("CONNECT", Some("websocket"), &headers, accept).unwrap();
        assert_eq!(up.response_headers()[0].0, "Sec-WebSocket-Extensions");
        assert!(up.response_headers()[0].1.starts_with("permessage-deflate"));
        let conn = crate::Connection::from_upgrade(up, crate::Config::default());
        assert!(conn.deflate().is_some());
    }

    // RFC 6455 §4.1 item 10 in the HTTP/1.1 helper too, as `Connection::server` does.
    #[test]
    fn upgrade_refuses_a_non_token_subprotocol_offer() {
        let h1 = fields(&[
            ("Host", "a"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Protocol", "ok, not ok"),
        ]);
        assert_eq!(
            Upgrade::new("GET", &h1, Accept::new()).unwrap_err(),
            UpgradeError::Request(HandshakeError::InvalidProtocolList)
        );
    }
}
