//! The server side of the opening handshake (RFC 6455 §4.2): parsing the
//! request, and the responses that accept or reject it.

use super::{HandshakeError, Headers, MAX_HEADERS, accept_key, is_header_value, is_token, map_parse_error};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

/// An HTTP request received by a server.
///
/// For a WebSocket upgrade ([`Event::Request`](crate::Event::Request)) it
/// has passed every check of RFC 6455 §4.2.1; for a plain HTTP request
/// ([`Event::HttpRequest`](crate::Event::HttpRequest)) only the parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method (`GET` for every upgrade).
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// All header lines.
    pub headers: Headers,
    /// The subprotocols the client offered, in its order of preference.
    pub protocols: Vec<String>,
    /// The extensions the client offered (each element of
    /// `Sec-WebSocket-Extensions`, parameters included).
    pub extensions: Vec<String>,
}

impl Request {
    /// The `Origin` header, for a server's allow-list (RFC 6455 §10.2).
    pub fn origin(&self) -> Option<&str> {
        self.headers.get_str("origin")
    }

    /// Whether the request asks for a WebSocket upgrade (`Upgrade:
    /// websocket`). Every [`Event::Request`](crate::Event::Request) does;
    /// an [`Event::HttpRequest`](crate::Event::HttpRequest) does not.
    pub fn is_upgrade(&self) -> bool {
        self.headers.has_token("upgrade", "websocket")
    }
}

/// A non-101 HTTP response: a rejection of an upgrade, or the answer to a
/// plain HTTP request. It is sent with `Content-Length` and
/// `Connection: close`.
///
/// ```
/// use wsmachine::HttpResponse;
/// let page = HttpResponse::new(200).header("Content-Type", "text/html").body("<h1>hi</h1>");
/// # let _ = page;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl HttpResponse {
    /// A response with this status and an empty body.
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Checks the status (three digits, not 101) and the header lines.
    pub(crate) fn validate(&self) -> Result<(), InvalidHead> {
        if !(100..=999).contains(&self.status) || self.status == 101 {
            return Err(InvalidHead::Status(self.status));
        }
        check_headers(&self.headers)
    }

    /// The response the server sends when the handshake broke a rule.
    pub(crate) fn for_error(e: &HandshakeError) -> Self {
        let r = HttpResponse::new(e.status()).header("Content-Type", "text/plain; charset=utf-8");
        let r = match e {
            // RFC 6455 §4.4: name the versions the server supports.
            HandshakeError::UnsupportedVersion => r.header("Sec-WebSocket-Version", "13"),
            HandshakeError::MethodNotGet => r.header("Allow", "GET"),
            _ => r,
        };
        r.body(format!("{e}\n"))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, reason_phrase(self.status)).as_bytes());
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
    }
}

/// What the application put in a head the crate writes that may not go on
/// the wire (mapped to [`Misuse`](crate::Misuse) a layer up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InvalidHead {
    /// A status that is not three digits, or 101 outside `accept`.
    Status(u16),
    /// A header name that is not a token, or a value with CR, LF or NUL.
    Header(String),
}

/// Every header name is a token and no value can end the line (header
/// injection); the error names the first offending header.
pub(crate) fn check_headers(headers: &[(String, String)]) -> Result<(), InvalidHead> {
    match headers.iter().find(|(n, v)| !is_token(n) || !is_header_value(v)) {
        None => Ok(()),
        Some((n, _)) => Err(InvalidHead::Header(n.clone())),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The outcome of parsing a complete request head.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A valid WebSocket upgrade, with its key.
    Upgrade(Request, String),
    /// An HTTP request that does not ask for a WebSocket upgrade.
    Http(Request),
}

/// The elements of every `name` header, as text (RFC 9110 §5.6.1 lists).
pub(crate) fn list_of(headers: &Headers, name: &str) -> Vec<String> {
    headers
        .list(name)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// Parses and checks a request head (RFC 6455 §4.2.1). `Ok(None)`: incomplete.
pub(crate) fn parse_request(buf: &[u8]) -> Result<Option<(Parsed, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_parse_error(e)),
    };
    let headers = Headers::from_parsed(req.headers);
    let request = Request {
        method: req.method.unwrap_or("").to_string(),
        path: req.path.unwrap_or("").to_string(),
        protocols: list_of(&headers, "sec-websocket-protocol"),
        extensions: list_of(&headers, "sec-websocket-extensions"),
        headers,
    };
    // A request that does not ask for websocket is plain HTTP: the
    // application may answer it (serve a page, a health check).
    if !request.headers.has_token("upgrade", "websocket") {
        return Ok(Some((Parsed::Http(request), len)));
    }
    // RFC 6455 §4.2.1, items 1–6, in order.
    if request.method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if req.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    let key = check_upgrade_headers(&request.headers)?;
    Ok(Some((Parsed::Upgrade(request, key), len)))
}

/// RFC 6455 §4.2.1, items 2 and 4–6 (after the method and the HTTP
/// version): `Host`, `Connection: Upgrade`, version 13 and a 16-byte key.
/// Returns the key.
fn check_upgrade_headers(headers: &Headers) -> Result<String, HandshakeError> {
    if headers.get("host").is_none() {
        return Err(HandshakeError::MissingHost);
    }
    if !headers.has_token("connection", "upgrade") {
        return Err(HandshakeError::ConnectionNotUpgrade);
    }
    // RFC 6455 §4.2.2: a version other than 13 gets 426 (§4.4).
    {
        let mut versions = headers.get_all("sec-websocket-version");
        match (versions.next(), versions.next()) {
            (Some(v), None) if super::trim(v) == b"13" => {}
            _ => return Err(HandshakeError::UnsupportedVersion),
        }
    }
    let key = {
        let mut keys = headers.get_all("sec-websocket-key");
        let key = match (keys.next(), keys.next()) {
            (Some(k), None) => super::trim(k),
            _ => return Err(HandshakeError::InvalidKey),
        };
        let mut decoded = [0u8; 18];
        match STANDARD.decode_slice(key, &mut decoded) {
            Ok(16) => {}
            _ => return Err(HandshakeError::InvalidKey),
        }
        String::from_utf8_lossy(key).into_owned()
    };
    Ok(key)
}

/// Checks an upgrade request that an HTTP server already parsed (hyper,
/// axum, ...) with the same rules as [`Connection::server`](crate::Connection::server)
/// (RFC 6455 §4.2.1) and returns the `Sec-WebSocket-Accept` value for its
/// 101 response. The HTTP version (1.1 or later) is the HTTP server's to
/// check. An error's [`status`](HandshakeError::status) is the status to
/// answer with (426 also names version 13 in `Sec-WebSocket-Version`).
///
/// ```
/// use wsmachine::handshake::server::accept_key_for;
/// use wsmachine::handshake::{Header, Headers};
/// let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
/// let headers = Headers(vec![
///     header("Host", "server.example.com"),
///     header("Upgrade", "websocket"),
///     header("Connection", "Upgrade"),
///     header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
///     header("Sec-WebSocket-Version", "13"),
/// ]);
/// assert_eq!(accept_key_for("GET", &headers).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key_for(method: &str, headers: &Headers) -> Result<String, HandshakeError> {
    if !headers.has_token("upgrade", "websocket") {
        return Err(HandshakeError::UpgradeNotWebSocket);
    }
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    let key = check_upgrade_headers(headers)?;
    Ok(accept_key(key.as_bytes()))
}

/// Writes the 101 response accepting a request with key `key` (RFC 6455
/// §4.2.2, server step 5): the chosen subprotocol and the extensions'
/// answer (already negotiated), then the application's header lines
/// (already checked).
pub(crate) fn encode_switching(
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    headers: &[(String, String)],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            accept_key(key.as_bytes())
        )
        .as_bytes(),
    );
    if let Some(p) = protocol {
        out.extend_from_slice(format!("Sec-WebSocket-Protocol: {p}\r\n").as_bytes());
    }
    if let Some(e) = extensions {
        out.extend_from_slice(format!("Sec-WebSocket-Extensions: {e}\r\n").as_bytes());
    }
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    const OK: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(head: &str) -> Result<Parsed, HandshakeError> {
        parse_request(head.as_bytes()).map(|r| r.expect("complete").0)
    }

    // RFC 6455 §1.3 / §4.2.1: the example request of the RFC.
    #[test]
    fn rfc_example_request() {
        let Ok(Parsed::Upgrade(req, key)) = parse(OK) else {
            panic!("not an upgrade")
        };
        assert_eq!(req.path, "/chat?x=1");
        assert_eq!(req.protocols, ["chat", "superchat"]);
        let mut out = Vec::new();
        encode_switching(&key, Some("chat"), None, &[], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
    }

    // RFC 6455 §4.2.1: each required element of the request.
    #[test]
    fn each_rule_of_the_request() {
        let cases = [
            (OK.replace("GET", "POST"), HandshakeError::MethodNotGet),
            (OK.replace("HTTP/1.1", "HTTP/1.0"), HandshakeError::HttpVersion),
            (
                OK.replace("Host: server.example.com\r\n", ""),
                HandshakeError::MissingHost,
            ),
            (
                OK.replace("Connection: Upgrade", "Connection: keep-alive"),
                HandshakeError::ConnectionNotUpgrade,
            ),
            (
                OK.replace("Version: 13", "Version: 8"),
                HandshakeError::UnsupportedVersion,
            ),
            (
                OK.replace("Sec-WebSocket-Version: 13\r\n", ""),
                HandshakeError::UnsupportedVersion,
            ),
            (
                OK.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
                HandshakeError::InvalidKey,
            ),
            (
                OK.replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64!!"),
                HandshakeError::InvalidKey,
            ),
            (
                OK.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                HandshakeError::InvalidKey,
            ),
        ];
        for (head, expected) in cases {
            assert_eq!(parse(&head).unwrap_err(), expected, "{head}");
        }
        // RFC 6455 §4.4: the 426 answer names the supported version.
        let r = HttpResponse::for_error(&HandshakeError::UnsupportedVersion);
        let mut out = Vec::new();
        r.encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    /// The header lines of a request head, as an HTTP server would hand them over.
    fn headers_of(head: &str) -> Headers {
        Headers(
            head.lines()
                .skip(1)
                .filter_map(|l| l.split_once(": "))
                .map(|(name, value)| super::super::Header {
                    name: name.into(),
                    value: value.into(),
                })
                .collect(),
        )
    }

    // RFC 6455 §4.2.1 / §4.2.2: a request parsed elsewhere (hyper) is held to
    // the same rules, and gets the accept key of the RFC's example.
    #[test]
    fn accept_key_for_a_request_parsed_elsewhere() {
        assert_eq!(
            accept_key_for("GET", &headers_of(OK)).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept_key_for("POST", &headers_of(OK)).unwrap_err(),
            HandshakeError::MethodNotGet
        );
        assert_eq!(
            accept_key_for("GET", &headers_of(&OK.replace("Upgrade: websocket\r\n", ""))).unwrap_err(),
            HandshakeError::UpgradeNotWebSocket
        );
        let cases = [
            ("Host: server.example.com\r\n", "", HandshakeError::MissingHost),
            (
                "Connection: Upgrade",
                "Connection: keep-alive",
                HandshakeError::ConnectionNotUpgrade,
            ),
            ("Version: 13", "Version: 8", HandshakeError::UnsupportedVersion),
            ("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", HandshakeError::InvalidKey),
        ];
        for (from, to, expected) in cases {
            let head = OK.replace(from, to);
            assert_eq!(
                accept_key_for("GET", &headers_of(&head)).unwrap_err(),
                expected,
                "{head}"
            );
            // The same verdict as the machine's own parser.
            assert_eq!(parse(&head).unwrap_err(), expected);
        }
    }

    #[test]
    fn plain_http_is_surfaced() {
        let Ok(Parsed::Http(req)) = parse("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n") else {
            panic!()
        };
        assert_eq!(req.path, "/index.html");
    }

    #[test]
    fn partial_request_needs_more() {
        for i in 0..OK.len() {
            assert!(matches!(parse_request(&OK.as_bytes()[..i]), Ok(None)), "prefix {i}");
        }
    }
}
