//! Client proxies, as a sans-IO machine like the connection itself: an HTTP
//! `CONNECT` tunnel (RFC 9110 §9.3.6, Basic credentials, RFC 7617) or SOCKS5
//! (RFC 1928, user/password RFC 1929, the host name resolved by the proxy,
//! i.e. `socks5h` semantics). [`ProxyHandshake`] takes bytes from the proxy
//! and queues bytes for it; once it is [`Progress::Done`] the stream is a
//! tunnel to the target, and the WebSocket (or TLS) handshake goes over it.
//!
//! Where the proxy comes from is the application's choice: [`Proxy::parse`]
//! for an explicit one, or [`Proxy::from_env`] (feature `std`) to read the
//! environment the way curl does, as an explicit opt-in.
//!
//! ```
//! use wsmachine::proxy::{Progress, Proxy, ProxyHandshake};
//! let proxy = Proxy::parse("http://user:secret@proxy.example:3128")?;
//! let mut tunnel = ProxyHandshake::new(&proxy, "echo.example", 443);
//! assert!(tunnel.output().starts_with(b"CONNECT echo.example:443 HTTP/1.1\r\n"));
//! let n = tunnel.output().len();
//! tunnel.consume_output(n); // written to the proxy
//! let answer = b"HTTP/1.1 200 Connection established\r\n\r\n";
//! assert_eq!(tunnel.receive(answer)?, Progress::Done { leftover: Vec::new() });
//! # Ok::<(), wsmachine::proxy::ProxyError>(())
//! ```

use crate::handshake::uri::{AuthorityError, parse_authority};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use core::fmt;

/// The most bytes of a proxy's answer read before giving up on it.
const MAX_ANSWER: usize = 8 << 10;

/// Which protocol the proxy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// An HTTP proxy, tunnelling with `CONNECT` (`http://` URLs).
    HttpConnect,
    /// A SOCKS5 proxy, resolving the target's name itself (`socks5://`
    /// and `socks5h://` URLs: both are resolved remotely here).
    Socks5,
}

/// A proxy to reach the server through.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Its protocol.
    pub kind: ProxyKind,
    /// Its host name or IP address (an IPv6 address in brackets).
    pub host: String,
    /// Its port (from the URL, or 1080 for SOCKS5 and 80 for HTTP).
    pub port: u16,
    /// User name and password, percent-decoded, if the URL had them.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs.
        f.debug_struct("Proxy")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// Why a proxy could not be used or refused the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL is not `http://` or `socks5://` / `socks5h://`
    /// `[user:password@]host[:port]`; says what is wrong.
    Url(&'static str),
    /// The HTTP proxy answered `CONNECT` with this status instead of 2xx.
    HttpStatus {
        /// The status code.
        status: u16,
        /// The reason phrase it gave.
        reason: String,
    },
    /// The SOCKS5 proxy accepts none of the offered authentication methods
    /// (RFC 1928 §3: method `0xFF`).
    NoAcceptableMethod,
    /// The SOCKS5 proxy refused the user name and password (RFC 1929 §2).
    AuthenticationFailed,
    /// The SOCKS5 proxy refused the connection: its reply code (RFC 1928
    /// §6), named in the message.
    SocksRefused(u8),
    /// The proxy's answer is not what the protocol allows; says what.
    Malformed(&'static str),
    /// A user name, password or host too long for SOCKS5 (255 bytes).
    TooLong,
    /// The proxy closed the connection before the tunnel was open (some
    /// proxies answer wrong credentials this way).
    Closed,
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Url(why) => write!(f, "proxy URL: {why}"),
            ProxyError::HttpStatus { status, reason } => {
                write!(f, "the proxy answered CONNECT with {status} {reason}")
            }
            ProxyError::NoAcceptableMethod => {
                f.write_str("the SOCKS5 proxy accepts none of the offered authentication methods")
            }
            ProxyError::AuthenticationFailed => f.write_str("the SOCKS5 proxy refused the user name and password"),
            ProxyError::SocksRefused(code) => {
                write!(
                    f,
                    "the SOCKS5 proxy refused the connection: {} ({code})",
                    socks_reply(*code)
                )
            }
            ProxyError::Malformed(why) => write!(f, "malformed answer from the proxy: {why}"),
            ProxyError::TooLong => f.write_str("a user name, password or host longer than SOCKS5 allows (255 bytes)"),
            ProxyError::Closed => f.write_str("the proxy closed the connection before the tunnel was open"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProxyError {}

/// The meaning of a SOCKS5 reply code (RFC 1928 §6).
fn socks_reply(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

/// Decodes `%XX` escapes (RFC 3986 §2.1) in userinfo.
fn percent_decode(s: &str) -> Result<String, ProxyError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            // RFC 3986 §2.1: "%" HEXDIG HEXDIG, nothing else (`%+1` is not one).
            let hex = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| core::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(ProxyError::Url("a malformed percent-encoding in the credentials"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ProxyError::Url("credentials that are not UTF-8"))
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port][/]`,
    /// `socks5://…` or `socks5h://…` (both resolve the target's name at the
    /// proxy). Userinfo is percent-decoded. Default ports: 80 and 1080.
    ///
    /// ```
    /// use wsmachine::proxy::{Proxy, ProxyKind};
    /// let p = Proxy::parse("socks5h://alice:p%40ss@127.0.0.1:1080")?;
    /// assert_eq!((p.kind, p.host.as_str(), p.port), (ProxyKind::Socks5, "127.0.0.1", 1080));
    /// assert_eq!(p.credentials, Some(("alice".into(), "p@ss".into())));
    /// assert!(Proxy::parse("ftp://proxy").is_err());
    /// # Ok::<(), wsmachine::proxy::ProxyError>(())
    /// ```
    pub fn parse(url: &str) -> Result<Proxy, ProxyError> {
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii()) {
            return Err(ProxyError::Url("spaces, control or non-ASCII characters"));
        }
        let (scheme, rest) = url.split_once("://").ok_or(ProxyError::Url("no scheme"))?;
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (ProxyKind::HttpConnect, 80),
            "socks5" | "socks5h" => (ProxyKind::Socks5, 1080),
            _ => return Err(ProxyError::Url("the scheme is not http, socks5 or socks5h")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(ProxyError::Url("a path, query or fragment"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let (user, pass) = (percent_decode(user)?, percent_decode(pass)?);
                // RFC 7617 §2: a user-id with a colon cannot be told from the
                // password; RFC 1929 §2: a user name of 1 to 255 bytes.
                if user.is_empty() || user.contains(':') {
                    return Err(ProxyError::Url("an empty user name, or one with a colon"));
                }
                Some((user, pass))
            }
        };
        let (host, port) = parse_authority(hostport).map_err(|e| match e {
            AuthorityError::Host => ProxyError::Url("the host"),
            AuthorityError::Port => ProxyError::Url("the port"),
        })?;
        Ok(Proxy {
            kind,
            host: host.to_string(),
            port: port.unwrap_or(default_port),
            credentials,
        })
    }

    /// The proxy the environment names for a connection to `url` (`ws://`
    /// or `wss://`), read the way curl reads it; `Ok(None)` means a direct
    /// connection:
    ///
    /// - `wss://` uses `https_proxy` (or `HTTPS_PROXY`), `ws://` uses
    ///   `http_proxy` (only the lower-case name, as curl: `HTTP_PROXY` can
    ///   be set by a CGI request's `Proxy:` header); either falls back to
    ///   `all_proxy` (or `ALL_PROXY`). Empty values count as unset.
    /// - `no_proxy` (or `NO_PROXY`) lists hosts reached directly, separated
    ///   by commas or spaces: `*` for every host; a name matches itself and
    ///   its subdomains (`example.com` and `.example.com` both match
    ///   `a.example.com`); an IP address matches exactly; an entry with
    ///   `:port` matches only that port.
    ///
    /// A proxy URL in the environment that does not parse is an error, not
    /// a silent direct connection.
    #[cfg(feature = "std")]
    pub fn from_env(url: &str) -> Result<Option<Proxy>, crate::handshake::UrlError> {
        let target = crate::handshake::client::parse_url(url)?;
        Ok(Self::from_env_for(target.secure, &target.host, target.port).and_then(Result::ok))
    }

    /// [`Proxy::from_env`] for a target already split up, with the parse
    /// error of a malformed proxy variable.
    #[cfg(feature = "std")]
    pub fn from_env_for(secure: bool, host: &str, port: u16) -> Option<Result<Proxy, ProxyError>> {
        Self::from_vars(|name| std::env::var(name).ok(), secure, host, port)
    }

    /// [`Proxy::from_env_for`] over any source of variables (for tests).
    #[doc(hidden)]
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        secure: bool,
        host: &str,
        port: u16,
    ) -> Option<Result<Proxy, ProxyError>> {
        let get = |names: &[&str]| names.iter().find_map(|n| var(n).filter(|v| !v.trim().is_empty()));
        let no_proxy = get(&["no_proxy", "NO_PROXY"]).unwrap_or_default();
        if bypasses(&no_proxy, host, port) {
            return None;
        }
        let proxy = if secure {
            get(&["https_proxy", "HTTPS_PROXY"])
        } else {
            get(&["http_proxy"])
        }
        .or_else(|| get(&["all_proxy", "ALL_PROXY"]))?;
        Some(Proxy::parse(proxy.trim()))
    }
}

/// Whether `no_proxy` says to reach `host:port` directly (curl's rules).
fn bypasses(no_proxy: &str, host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    no_proxy
        .split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            // An optional ":port" (an IPv6 entry needs brackets for one).
            let (name, entry_port) = match entry.rsplit_once(':') {
                Some((n, p)) if !n.contains(':') || n.ends_with(']') => match p.parse::<u16>() {
                    Ok(p) => (n, Some(p)),
                    Err(_) => (entry, None),
                },
                _ => (entry, None),
            };
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
            let name = name.trim_start_matches('.').trim_end_matches('.');
            !name.is_empty()
                && (host == name
                    || (host.len() > name.len()
                        && host.ends_with(name)
                        && host.as_bytes()[host.len() - name.len() - 1] == b'.'))
        })
}

/// What the handshake with the proxy needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes from the proxy (after writing [`ProxyHandshake::output`]).
    NeedMore,
    /// The tunnel is open. `leftover`: bytes the proxy sent after its
    /// answer, which belong to the target's stream.
    Done {
        /// Bytes of the target's stream that came with the answer.
        leftover: Vec<u8>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// HTTP: waiting for the answer head to `CONNECT`.
    HttpAnswer,
    /// SOCKS5: waiting for the chosen method.
    SocksMethod,
    /// SOCKS5: waiting for the user/password verdict.
    SocksAuth,
    /// SOCKS5: waiting for the reply to `CONNECT`.
    SocksReply,
    Done,
}

/// The handshake with a proxy that opens a tunnel to `host:port`: write
/// [`output`](ProxyHandshake::output), feed what the proxy sends to
/// [`receive`](ProxyHandshake::receive), until it says
/// [`Progress::Done`].
#[derive(Debug)]
pub struct ProxyHandshake {
    step: Step,
    out: Vec<u8>,
    input: Vec<u8>,
    /// SOCKS5: the CONNECT request, sent once authentication is done.
    connect: Vec<u8>,
    /// SOCKS5: the credentials' sub-negotiation (RFC 1929), if any.
    auth: Option<Vec<u8>>,
    /// What the request cannot be sent for (SOCKS5: a field over 255 bytes).
    failed: Option<ProxyError>,
}

impl ProxyHandshake {
    /// Starts a tunnel through `proxy` to `host` (a name, an IPv4 address or
    /// a bracketed IPv6 address) and `port`.
    pub fn new(proxy: &Proxy, host: &str, port: u16) -> Self {
        match proxy.kind {
            ProxyKind::HttpConnect => Self::http(proxy, host, port),
            ProxyKind::Socks5 => Self::socks5(proxy, host, port),
        }
    }

    fn http(proxy: &Proxy, host: &str, port: u16) -> Self {
        // RFC 9110 §9.3.6: the target is the authority form, and Host names it too.
        let mut head = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
        if let Some((user, pass)) = &proxy.credentials {
            // RFC 7617 §2: Basic credentials, user-id ":" password in base64.
            let token = STANDARD.encode(format!("{user}:{pass}"));
            head.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        head.push_str("\r\n");
        ProxyHandshake {
            step: Step::HttpAnswer,
            out: head.into_bytes(),
            input: Vec::new(),
            connect: Vec::new(),
            auth: None,
            failed: None,
        }
    }

    fn socks5(proxy: &Proxy, host: &str, port: u16) -> Self {
        // RFC 1928 §4: CONNECT to the address, a name resolved by the proxy.
        let mut connect = alloc::vec![5, 1, 0];
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(v4) = bare.parse::<core::net::Ipv4Addr>() {
            connect.push(1);
            connect.extend_from_slice(&v4.octets());
        } else if let Ok(v6) = bare.parse::<core::net::Ipv6Addr>() {
            connect.push(4);
            connect.extend_from_slice(&v6.octets());
        } else {
            connect.push(3);
            // Checked in `receive` (a name longer than 255 bytes cannot be sent).
            connect.push(bare.len().min(255) as u8);
            connect.extend_from_slice(bare.as_bytes());
        }
        connect.extend_from_slice(&port.to_be_bytes());
        let too_long = bare.len() > 255;
        // RFC 1929 §2: VER 1, ULEN, UNAME, PLEN, PASSWD.
        let auth = proxy.credentials.as_ref().map(|(user, pass)| {
            let mut a = alloc::vec![1, user.len().min(255) as u8];
            a.extend_from_slice(user.as_bytes());
            a.push(pass.len().min(255) as u8);
            a.extend_from_slice(pass.as_bytes());
            a
        });
        let too_long = too_long
            || proxy
                .credentials
                .as_ref()
                .is_some_and(|(u, p)| u.len() > 255 || p.len() > 255);
        // RFC 1928 §3: VER 5, the methods offered: no authentication, and
        // user/password (RFC 1929) when there are credentials.
        let greeting = if auth.is_some() {
            alloc::vec![5, 2, 0, 2]
        } else {
            alloc::vec![5, 1, 0]
        };
        ProxyHandshake {
            step: Step::SocksMethod,
            out: if too_long { Vec::new() } else { greeting },
            input: Vec::new(),
            connect,
            auth,
            failed: too_long.then_some(ProxyError::TooLong),
        }
    }

    /// The bytes to write to the proxy now (empty when none).
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Marks `n` bytes of [`ProxyHandshake::output`] as written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
    }

    /// Feeds bytes read from the proxy.
    pub fn receive(&mut self, data: &[u8]) -> Result<Progress, ProxyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.input.extend_from_slice(data);
        loop {
            match self.step {
                Step::Done => {
                    return Ok(Progress::Done {
                        leftover: core::mem::take(&mut self.input),
                    });
                }
                Step::HttpAnswer => return self.http_answer(),
                Step::SocksMethod => {
                    let Some(&[ver, method]) = self.input.get(..2) else {
                        return Ok(Progress::NeedMore);
                    };
                    if ver != 5 {
                        return Err(ProxyError::Malformed("not a SOCKS5 method reply"));
                    }
                    self.input.drain(..2);
                    match (method, self.auth.take()) {
                        (0, _) => {
                            self.out.extend_from_slice(&self.connect);
                            self.step = Step::SocksReply;
                        }
                        (2, Some(auth)) => {
                            self.out.extend_from_slice(&auth);
                            self.step = Step::SocksAuth;
                        }
                        (0xff, _) => return Err(ProxyError::NoAcceptableMethod),
                        _ => return Err(ProxyError::Malformed("a method that was not offered")),
                    }
                }
                Step::SocksAuth => {
                    let Some(&[_ver, status]) = self.input.get(..2) else {
                        return Ok(Progress::NeedMore);
                    };
                    if status != 0 {
                        return Err(ProxyError::AuthenticationFailed);
                    }
                    self.input.drain(..2);
                    self.out.extend_from_slice(&self.connect);
                    self.step = Step::SocksReply;
                }
                Step::SocksReply => {
                    // RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT.
                    let Some(&[ver, rep, _rsv, atyp]) = self.input.get(..4) else {
                        return Ok(Progress::NeedMore);
                    };
                    if ver != 5 {
                        return Err(ProxyError::Malformed("not a SOCKS5 reply"));
                    }
                    if rep != 0 {
                        return Err(ProxyError::SocksRefused(rep));
                    }
                    let addr_len = match atyp {
                        1 => 4,
                        4 => 16,
                        3 => match self.input.get(4) {
                            Some(&n) => 1 + usize::from(n),
                            None => return Ok(Progress::NeedMore),
                        },
                        _ => return Err(ProxyError::Malformed("an unknown address type")),
                    };
                    let len = 4 + addr_len + 2;
                    if self.input.len() < len {
                        return Ok(Progress::NeedMore);
                    }
                    self.input.drain(..len);
                    self.step = Step::Done;
                }
            }
        }
    }

    /// HTTP: the answer head to `CONNECT`; a 2xx opens the tunnel (RFC 9110
    /// §9.3.6), anything else is the proxy's refusal.
    fn http_answer(&mut self) -> Result<Progress, ProxyError> {
        let Some(end) = crate::handshake::find_head_end(&self.input, 0) else {
            if self.input.len() > MAX_ANSWER {
                return Err(ProxyError::Malformed("an answer head larger than 8 KiB"));
            }
            return Ok(Progress::NeedMore);
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let status = match response.parse(&self.input[..end]) {
            Ok(httparse::Status::Complete(_)) => response.code.unwrap_or(0),
            _ => return Err(ProxyError::Malformed("not an HTTP/1.x answer")),
        };
        if !(200..300).contains(&status) {
            return Err(ProxyError::HttpStatus {
                status,
                reason: response.reason.unwrap_or("").to_string(),
            });
        }
        self.input.drain(..end);
        self.step = Step::Done;
        Ok(Progress::Done {
            leftover: core::mem::take(&mut self.input),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn proxy(url: &str) -> Proxy {
        Proxy::parse(url).unwrap()
    }

    fn written(h: &mut ProxyHandshake) -> Vec<u8> {
        let out = h.output().to_vec();
        h.consume_output(out.len());
        out
    }

    #[test]
    fn proxy_urls() {
        let p = proxy("http://proxy.example:3128");
        assert_eq!(
            (p.kind, p.host.as_str(), p.port, p.credentials),
            (ProxyKind::HttpConnect, "proxy.example", 3128, None)
        );
        assert_eq!(proxy("http://proxy.example/").port, 80);
        assert_eq!(proxy("socks5://[::1]").port, 1080);
        assert_eq!(proxy("socks5://[::1]").host, "[::1]");
        assert_eq!(proxy("HTTP://u:@h:1").credentials, Some(("u".into(), "".into())));
        for bad in [
            "proxy:3128",
            "https://h:1",
            "http://h:99999",
            "http://h:1/path",
            "http://",
            "http://h h",
            "http://u:%zz@h",
            "http://u:%+1@h",
            "socks5://:pw@h",
            "http://a%3Ab:pw@h",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
        // The password is not in the Debug output.
        assert!(!format!("{:?}", proxy("http://u:secret@h:1")).contains("secret"));
    }

    // RFC 9110 §9.3.6 and RFC 7617: CONNECT with Basic credentials; a 2xx
    // opens the tunnel, bytes after the head belong to the target.
    #[test]
    fn http_connect() {
        let mut h = ProxyHandshake::new(&proxy("http://Aladdin:open%20sesame@p:8080"), "[::1]", 9001);
        let request = String::from_utf8(written(&mut h)).unwrap();
        assert_eq!(
            request,
            "CONNECT [::1]:9001 HTTP/1.1\r\nHost: [::1]:9001\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        assert_eq!(h.receive(b"HTTP/1.1 200 OK\r\nVia: x\r\n").unwrap(), Progress::NeedMore);
        assert_eq!(
            h.receive(b"\r\nHTTP/1.1 101").unwrap(),
            Progress::Done {
                leftover: b"HTTP/1.1 101".to_vec()
            }
        );
        let mut h = ProxyHandshake::new(&proxy("http://p:8080"), "h", 80);
        written(&mut h);
        assert_eq!(
            h.receive(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
            Err(ProxyError::HttpStatus {
                status: 407,
                reason: "Proxy Authentication Required".into()
            })
        );
        let mut h = ProxyHandshake::new(&proxy("http://p:8080"), "h", 80);
        assert_eq!(
            h.receive(&vec![b'x'; 9000]),
            Err(ProxyError::Malformed("an answer head larger than 8 KiB"))
        );
    }

    // RFC 1928 §3-§6 and RFC 1929: greeting, user/password, CONNECT by
    // name (resolved at the proxy), the reply, in any chunking.
    #[test]
    fn socks5_with_credentials() {
        let mut h = ProxyHandshake::new(&proxy("socks5://bob:pw@p:1080"), "echo.example", 443);
        assert_eq!(written(&mut h), [5, 2, 0, 2]);
        assert_eq!(h.receive(&[5]).unwrap(), Progress::NeedMore);
        assert_eq!(h.receive(&[2]).unwrap(), Progress::NeedMore);
        assert_eq!(written(&mut h), [1, 3, b'b', b'o', b'b', 2, b'p', b'w']);
        assert_eq!(h.receive(&[1, 0]).unwrap(), Progress::NeedMore);
        let mut connect = vec![5, 1, 0, 3, 12];
        connect.extend_from_slice(b"echo.example");
        connect.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(written(&mut h), connect);
        let reply = [5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90, b'G'];
        for &b in &reply[..9] {
            assert_eq!(h.receive(&[b]).unwrap(), Progress::NeedMore);
        }
        assert_eq!(
            h.receive(&reply[9..]).unwrap(),
            Progress::Done {
                leftover: b"G".to_vec()
            }
        );
    }

    #[test]
    fn socks5_refusals() {
        let mut h = ProxyHandshake::new(&proxy("socks5://p"), "127.0.0.1", 80);
        assert_eq!(written(&mut h), [5, 1, 0]);
        assert_eq!(h.receive(&[5, 0xff]), Err(ProxyError::NoAcceptableMethod));
        let mut h = ProxyHandshake::new(&proxy("socks5://p"), "127.0.0.1", 80);
        written(&mut h);
        h.receive(&[5, 0]).unwrap();
        assert_eq!(written(&mut h), [5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
        let err = h.receive(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(err, ProxyError::SocksRefused(5));
        assert!(err.to_string().contains("connection refused"));
        let mut h = ProxyHandshake::new(&proxy("socks5://u:p@p"), "h", 80);
        written(&mut h);
        h.receive(&[5, 2]).unwrap();
        assert_eq!(h.receive(&[1, 1]), Err(ProxyError::AuthenticationFailed));
        let long = "x".repeat(256);
        let mut h = ProxyHandshake::new(&proxy("socks5://p"), &long, 80);
        assert_eq!(h.receive(&[]), Err(ProxyError::TooLong));
    }

    // curl's rules for the proxy variables and no_proxy.
    #[test]
    fn environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        let get = |pairs: &'static [(&'static str, &'static str)], secure, host: &str, port| {
            Proxy::from_vars(env(pairs), secure, host, port).map(|r| r.unwrap().host)
        };
        let vars: &[(&str, &str)] = &[
            ("https_proxy", "http://secure:1"),
            ("http_proxy", "http://plain:1"),
            ("no_proxy", "example.com, .internal:8080,10.0.0.1,[::1]"),
        ];
        assert_eq!(get(vars, true, "a.org", 443).as_deref(), Some("secure"));
        assert_eq!(get(vars, false, "a.org", 80).as_deref(), Some("plain"));
        assert_eq!(get(vars, true, "example.com", 443), None);
        assert_eq!(get(vars, true, "www.EXAMPLE.com", 443), None);
        assert_eq!(get(vars, true, "notexample.com", 443).as_deref(), Some("secure"));
        assert_eq!(get(vars, true, "db.internal", 8080), None);
        assert_eq!(get(vars, true, "db.internal", 443).as_deref(), Some("secure"));
        assert_eq!(get(vars, false, "10.0.0.1", 80), None);
        assert_eq!(get(vars, false, "10.0.0.10", 80).as_deref(), Some("plain"));
        assert_eq!(get(vars, false, "[::1]", 80), None);
        // Upper-case HTTP_PROXY is not read (curl); ALL_PROXY is the fallback.
        let vars: &[(&str, &str)] = &[("HTTP_PROXY", "http://cgi:1"), ("ALL_PROXY", "socks5://all:1")];
        assert_eq!(get(vars, false, "a.org", 80).as_deref(), Some("all"));
        assert_eq!(
            get(&[("HTTPS_PROXY", "http://up:1")], true, "a", 1).as_deref(),
            Some("up")
        );
        assert_eq!(
            get(&[("https_proxy", "http://p:1"), ("no_proxy", "*")], true, "a", 1),
            None
        );
        assert_eq!(get(&[("https_proxy", "")], true, "a", 1), None);
        assert_eq!(get(&[], true, "a", 1), None);
        // A malformed variable is an error, not a silent direct connection.
        assert!(
            Proxy::from_vars(env(&[("https_proxy", "nonsense")]), true, "a", 1)
                .unwrap()
                .is_err()
        );
    }
}
