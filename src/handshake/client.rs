//! The client side of the opening handshake (RFC 6455 §4.1): the request,
//! and the checks on the server's response.

use super::{HandshakeError, Headers, MAX_HEADERS, is_header_value, is_token, map_parse_error};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// A `ws://` or `wss://` URL that could not be used (RFC 6455 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// The scheme is not `ws` or `wss`.
    Scheme,
    /// The host is missing or malformed.
    Host,
    /// The port is not a number from 1 to 65535.
    Port,
    /// URLs of WebSocket connections must not carry a fragment (`#…`).
    Fragment,
    /// User information (`user@host`) is not supported.
    UserInfo,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::Scheme => "the URL scheme must be ws:// or wss://",
            UrlError::Host => "the URL has no valid host",
            UrlError::Port => "the URL port must be a number from 1 to 65535",
            UrlError::Fragment => "a WebSocket URL must not have a fragment (RFC 6455 §3)",
            UrlError::UserInfo => "user information in the URL is not supported",
        })
    }
}

/// What a client asks for: where to connect and what to offer.
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
pub struct ClientRequest {
    host: String,
    port: u16,
    secure: bool,
    path: String,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
    #[cfg(feature = "deflate")]
    deflate: Vec<crate::deflate::DeflateConfig>,
}

impl ClientRequest {
    /// A request for `path` (with its query) on `host:port`, plain `ws`.
    pub fn new(host: &str, port: u16, path: &str) -> Self {
        let path = if path.is_empty() { "/" } else { path };
        ClientRequest {
            host: host.to_string(),
            port,
            secure: false,
            path: path.to_string(),
            protocols: Vec::new(),
            headers: Vec::new(),
            #[cfg(feature = "deflate")]
            deflate: Vec::new(),
        }
    }

    /// Parses a `ws://host[:port]/path?query` or `wss://…` URL.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(UrlError::Scheme)?;
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(UrlError::Scheme);
        };
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or(UrlError::Host)?;
            (&authority[..h.len() + 2], after.strip_prefix(':'))
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(UrlError::Host);
        }
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(UrlError::Port),
            },
            None if secure => 443,
            None => 80,
        };
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        if !is_header_value(&path) || path.contains(' ') {
            return Err(UrlError::Host);
        }
        let mut req = ClientRequest::new(host, port, &path);
        req.secure = secure;
        Ok(req)
    }

    /// Offers a subprotocol (`Sec-WebSocket-Protocol`, RFC 6455 §4.1); call
    /// once per protocol, in order of preference.
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
    /// # let _ = req;
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: crate::deflate::DeflateConfig) -> Self {
        self.deflate.push(config);
        self
    }

    /// The permessage-deflate offers, in order.
    #[cfg(feature = "deflate")]
    pub fn deflate_offers(&self) -> &[crate::deflate::DeflateConfig] {
        &self.deflate
    }

    /// Adds a header line (for example `Origin`, `Authorization`, cookies).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The host to connect to (an IPv6 address keeps its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL asked for TLS (`wss://`); the driver provides TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The request target: path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The offered subprotocols, in order.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// Checks names and values, so nothing malformed reaches the wire.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if !self.path.starts_with('/') || !is_header_value(&self.path) || self.path.contains(' ') {
            return Err("the request path must start with '/' and contain no spaces or line breaks");
        }
        if !is_header_value(&self.host) || self.host.is_empty() || self.host.contains(' ') {
            return Err("the host must be non-empty, without spaces or line breaks");
        }
        if !self.protocols.iter().all(|p| is_token(p)) {
            return Err("subprotocol names must be HTTP tokens");
        }
        if !self.headers.iter().all(|(n, v)| is_token(n) && is_header_value(v)) {
            return Err("header names must be tokens and values must not contain CR, LF or NUL");
        }
        #[cfg(feature = "deflate")]
        for offer in &self.deflate {
            offer.validate()?;
        }
        Ok(())
    }

    /// Writes the request head with the given `Sec-WebSocket-Key`.
    pub(crate) fn encode(&self, key: &str, out: &mut Vec<u8>) {
        let default_port = if self.secure { 443 } else { 80 };
        let host = if self.port == default_port {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        out.extend_from_slice(
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
                self.path, host, key
            )
            .as_bytes(),
        );
        if !self.protocols.is_empty() {
            out.extend_from_slice(format!("Sec-WebSocket-Protocol: {}\r\n", self.protocols.join(", ")).as_bytes());
        }
        #[cfg(feature = "deflate")]
        if !self.deflate.is_empty() {
            let offers: Vec<String> = self.deflate.iter().map(|o| o.offer()).collect();
            out.extend_from_slice(format!("Sec-WebSocket-Extensions: {}\r\n", offers.join(", ")).as_bytes());
        }
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// A server's answer to the opening handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code (101 when the upgrade was accepted).
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header lines.
    pub headers: Headers,
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
}

/// Parses a response head from `buf`. `Ok(None)`: incomplete.
/// On success returns the response and the head's length.
pub(crate) fn parse_response(buf: &[u8]) -> Result<Option<(Response, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((
            Response {
                status: resp.code.unwrap_or(0),
                reason: resp.reason.unwrap_or("").to_string(),
                headers: Headers::from_parsed(resp.headers),
                protocol: None,
            },
            len,
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(map_parse_error(e)),
    }
}

/// The extension agreed on in a response (permessage-deflate is the only one
/// this crate offers).
#[cfg(feature = "deflate")]
pub(crate) type Agreed = Option<crate::deflate::DeflateParams>;
/// The extension agreed on in a response: none without the `deflate` feature.
#[cfg(not(feature = "deflate"))]
pub(crate) type Agreed = ();

/// What the client offered, to check the response against.
pub(crate) struct Offered<'a> {
    /// Subprotocols.
    pub(crate) protocols: &'a [String],
    /// permessage-deflate offers.
    #[cfg(feature = "deflate")]
    pub(crate) deflate: &'a [crate::deflate::DeflateConfig],
}

/// Checks a response against what was offered (RFC 6455 §4.2.2, client
/// steps 1–6; RFC 7692 §5, §7.1 for permessage-deflate), records the chosen
/// subprotocol in it and returns the agreed extension.
pub(crate) fn check_response(
    resp: &mut Response,
    expected_accept: &str,
    offered: &Offered<'_>,
) -> Result<Agreed, HandshakeError> {
    if resp.status != 101 {
        return Err(HandshakeError::Status(resp.status));
    }
    if !resp.headers.has_token("upgrade", "websocket") {
        return Err(HandshakeError::UpgradeNotWebSocket);
    }
    if !resp.headers.has_token("connection", "upgrade") {
        return Err(HandshakeError::ConnectionNotUpgrade);
    }
    let mut accepts = resp.headers.get_all("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(v), None) if super::trim(v) == expected_accept.as_bytes() => {}
        _ => return Err(HandshakeError::InvalidAccept),
    }
    // RFC 6455 §4.2.2 step 5: only offered extensions may be accepted.
    #[cfg(feature = "deflate")]
    let agreed = crate::deflate::check_response(&resp.headers, offered.deflate)?;
    #[cfg(not(feature = "deflate"))]
    #[allow(clippy::let_unit_value)]
    let agreed = if let Some(ext) = resp.headers.list("sec-websocket-extensions").next() {
        let name = ext.split(|&b| b == b';').next().unwrap_or(ext);
        return Err(HandshakeError::UnofferedExtension(
            String::from_utf8_lossy(super::trim(name)).into_owned(),
        ));
    };
    let offered = offered.protocols;
    let mut chosen = resp.headers.list("sec-websocket-protocol");
    match (chosen.next(), chosen.next()) {
        (None, _) => {}
        (Some(p), None) => {
            let p = String::from_utf8_lossy(p).into_owned();
            if !offered.contains(&p) {
                return Err(HandshakeError::UnofferedProtocol(p));
            }
            resp.protocol = Some(p);
        }
        (Some(p), Some(_)) => {
            return Err(HandshakeError::UnofferedProtocol(
                String::from_utf8_lossy(p).into_owned(),
            ));
        }
    }
    Ok(agreed)
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
        assert!(
            ClientRequest::new("h", 80, "/")
                .protocol("bad name")
                .validate()
                .is_err()
        );
        assert!(
            ClientRequest::new("h", 80, "/")
                .header("X", "a\r\nInjected: 1")
                .validate()
                .is_err()
        );
        assert!(ClientRequest::new("h", 80, "/").header("X", "fine").validate().is_ok());
    }

    fn response(extra: &str) -> Response {
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        );
        parse_response(head.as_bytes()).unwrap().unwrap().0
    }

    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn offer(protocols: &[String]) -> Offered<'_> {
        Offered {
            protocols,
            #[cfg(feature = "deflate")]
            deflate: &[],
        }
    }

    // RFC 6455 §4.2.2 (client side): each check of the response.
    #[test]
    fn response_checks() {
        let protocols = ["chat".to_string()];
        let offered = offer(&protocols);
        assert!(check_response(&mut response(""), ACCEPT, &offered).is_ok());
        let mut r = response("Sec-WebSocket-Protocol: chat\r\n");
        assert!(check_response(&mut r, ACCEPT, &offered).is_ok());
        assert_eq!(r.protocol.as_deref(), Some("chat"));
        assert_eq!(
            check_response(&mut response("Sec-WebSocket-Protocol: other\r\n"), ACCEPT, &offered),
            Err(HandshakeError::UnofferedProtocol("other".into()))
        );
        assert_eq!(
            check_response(
                &mut response("Sec-WebSocket-Extensions: permessage-deflate; x=1\r\n"),
                ACCEPT,
                &offered
            ),
            Err(HandshakeError::UnofferedExtension("permessage-deflate".into()))
        );
        assert_eq!(
            check_response(&mut response(""), "wrong", &offered),
            Err(HandshakeError::InvalidAccept)
        );
        let mut r = parse_response(b"HTTP/1.1 403 Forbidden\r\n\r\n").unwrap().unwrap().0;
        assert_eq!(
            check_response(&mut r, ACCEPT, &offered),
            Err(HandshakeError::Status(403))
        );
        let mut r = parse_response(b"HTTP/1.1 101 OK\r\nConnection: upgrade\r\n\r\n")
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(
            check_response(&mut r, ACCEPT, &offered),
            Err(HandshakeError::UpgradeNotWebSocket)
        );
        let mut r = parse_response(b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n")
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(
            check_response(&mut r, ACCEPT, &offered),
            Err(HandshakeError::ConnectionNotUpgrade)
        );
    }
}
