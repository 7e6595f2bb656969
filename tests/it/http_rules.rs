//! The HTTP rules of the opening handshake (RFC 9110, RFC 9112, RFC 6455
//! §4): `Host`, the request target, bodies, the responses the application
//! builds, the client's checks of the 101, and what a client may ask for.

use crate::handshake::{assert_client_failed, assert_rejected, client_gets, serve};
use crate::util::*;
use wsmachine::handshake::UrlError;
use wsmachine::{
    Accept, ClientRequest, Config, Connection, Error, Event, HandshakeError, HttpResponse, Misuse, PendingHttp,
    PendingRequest, ReadyState, Upgrade, UpgradeError,
};

/// An upgrade request with `target` as its request target and `host` as
/// its Host line (`None`: no Host line).
fn upgrade_to(target: &str, host: Option<&str>) -> String {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    format!(
        "GET {target} HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// The one event of a server fed `request`, which must be an upgrade request.
fn surfaced_upgrade(request: &str) -> PendingRequest {
    let (_, mut evs, out) = serve(Config::default(), request.as_bytes());
    assert_eq!(out, "", "{request}");
    match (evs.pop(), evs.is_empty()) {
        (Some(Event::Request(req)), true) => req,
        other => panic!("{request}: {other:?}"),
    }
}

/// A server that surfaced `request` as a plain HTTP request.
fn surfaced_http(request: &str) -> (Connection, PendingHttp) {
    let (server, mut evs, out) = serve(Config::default(), request.as_bytes());
    assert_eq!(out, "", "{request}");
    match (evs.pop(), evs.is_empty()) {
        (Some(Event::HttpRequest(req)), true) => (server, req),
        other => panic!("{request}: {other:?}"),
    }
}

fn rejected_400(request: &str, error: HandshakeError) {
    assert_rejected(
        Config::default(),
        request.as_bytes(),
        "HTTP/1.1 400 Bad Request\r\n",
        error,
    );
}

// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
// to any HTTP/1.1 request message that lacks a Host header field and to any
// request message that contains more than one Host header field line or a
// Host header field with an invalid field value." The value is
// uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2), and an http(s) or
// ws(s) URI has a non-empty host (RFC 9110 §4.2.1, RFC 6455 §3).
#[test]
fn host_must_be_exactly_one_valid_authority() {
    let two_lines = upgrade_request("Host: other.example.com\r\n");
    rejected_400(&two_lines, HandshakeError::MultipleHosts);
    rejected_400(
        &upgrade_to("/chat", Some("a.example, b.example")),
        HandshakeError::MultipleHosts,
    );
    for bad in [
        "",
        "a b",
        "h:http",
        "h:65536",
        "[::1",
        "[1:2:3]",
        "[::1]x",
        "bücher.example",
        "h%zz",
        ":80",
    ] {
        rejected_400(&upgrade_to("/chat", Some(bad)), HandshakeError::InvalidHost);
    }
    for good in [
        "server.example.com",
        "h:8080",
        "h:",
        "192.0.2.1:80",
        "[2001:db8::1]:8080",
        "xn--bcher-kva.example",
    ] {
        let req = surfaced_upgrade(&upgrade_to("/chat", Some(good)));
        assert_eq!(req.host(), Some(good));
    }
    // The same rules for a request another HTTP server parsed (hyper, axum).
    let header = |name: &str, value: &str| wsmachine::handshake::Header {
        name: name.into(),
        value: value.into(),
    };
    let headers = wsmachine::handshake::Headers(vec![
        header("Host", "a"),
        header("Host", "b"),
        header("Upgrade", "websocket"),
        header("Connection", "Upgrade"),
        header("Sec-WebSocket-Key", RFC_KEY),
        header("Sec-WebSocket-Version", "13"),
    ]);
    assert_eq!(
        Upgrade::new("GET", &headers, Accept::new()).unwrap_err(),
        UpgradeError::Request(HandshakeError::MultipleHosts)
    );
}

// RFC 9112 §3.2: the same rule holds for a plain HTTP/1.1 request, which the
// machine answers with 400 itself instead of surfacing it. HTTP/1.0 has no
// Host requirement.
#[test]
fn plain_http_requests_need_a_host_too() {
    assert_rejected(
        Config::default(),
        b"GET / HTTP/1.1\r\n\r\n",
        "HTTP/1.1 400 ",
        HandshakeError::MissingHost,
    );
    assert_rejected(
        Config::default(),
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "HTTP/1.1 400 ",
        HandshakeError::MultipleHosts,
    );
    assert_rejected(
        Config::default(),
        b"GET / HTTP/1.0\r\nHost: a/b\r\n\r\n",
        "HTTP/1.1 400 ",
        HandshakeError::InvalidHost,
    );
    let (_, req) = surfaced_http("GET / HTTP/1.0\r\n\r\n");
    assert_eq!((req.path.as_str(), req.host()), ("/", None));
}

// RFC 9112 §3.2.2: "A server MUST accept the absolute-form in requests" and
// uses the target's authority instead of Host; RFC 6455 §4.1 allows an
// absolute http/https URI whose resource name is the path. We reduce the
// target to origin form (`Request::path`) and, since RFC 9112 §3.2 has the
// client send Host identical to that authority, refuse a request where the
// two differ (the application reads Host; a proxy reads the target).
#[test]
fn absolute_form_targets_are_reduced_to_their_path() {
    for (target, path) in [
        ("ws://server.example.com/chat?x=1", "/chat?x=1"),
        ("HTTP://server.example.com/chat", "/chat"),
        ("https://SERVER.example.com", "/"),
        ("wss://server.example.com?q", "/?q"),
    ] {
        let req = surfaced_upgrade(&upgrade_to(target, Some("server.example.com")));
        assert_eq!(req.path, path, "{target}");
        assert_eq!(req.host(), Some("server.example.com"));
    }
    rejected_400(
        &upgrade_to("ws://evil.example/chat", Some("server.example.com")),
        HandshakeError::HostMismatch,
    );
    rejected_400(
        &upgrade_to("ws://server.example.com:8080/chat", Some("server.example.com")),
        HandshakeError::HostMismatch,
    );
    // Plain HTTP too.
    let (_, req) = surfaced_http("GET http://a/page HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(req.path, "/page");
    assert_rejected(
        Config::default(),
        b"GET http://b/page HTTP/1.1\r\nHost: a\r\n\r\n",
        "HTTP/1.1 400 ",
        HandshakeError::HostMismatch,
    );
}

// RFC 6455 §3, §4.1: an upgrade names a resource (origin form or absolute
// URI). RFC 9112 §3.2: no form has a fragment, and a URI is ASCII;
// `*` is only for OPTIONS (§3.2.4) and the authority form only for CONNECT
// (§3.2.3).
#[test]
fn other_request_targets_are_400() {
    for target in [
        "*",
        "server.example.com:80",
        "/chat#frag",
        "ws://server.example.com/chat#frag",
        "chat",
        "/caf\u{e9}",
        "ftp://server.example.com/",
        "http://user@server.example.com/",
    ] {
        let (_, evs, out) = serve(
            Config::default(),
            upgrade_to(target, Some("server.example.com")).as_bytes(),
        );
        assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{target}: {out}");
        assert!(
            matches!(
                evs.as_slice(),
                [
                    Event::Error(wsmachine::Failure::Handshake {
                        error: HandshakeError::InvalidTarget(_),
                        ..
                    }),
                    Event::Closed(_)
                ]
            ),
            "{target}: {evs:?}"
        );
    }
    // A plain HTTP request may use the forms its method allows.
    let (_, req) = surfaced_http("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(req.path, "*");
    let (_, req) = surfaced_http("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n");
    assert_eq!(req.path, "a:443");
    for request in [
        "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let (_, evs, out) = serve(Config::default(), request.as_bytes());
        assert!(out.starts_with("HTTP/1.1 400 "), "{request}: {out}");
        assert!(matches!(evs.first(), Some(Event::Error(_))), "{evs:?}");
    }
}

// RFC 9112 §6.3: a request has a body when it has Transfer-Encoding or a
// non-zero Content-Length. The bytes after an upgrade request are frames
// (RFC 6455 §4.1); with a body a proxy in front and this server would
// disagree where they start, so such an upgrade is refused with 400.
#[test]
fn upgrade_with_a_body_is_400() {
    for extra in [
        "Content-Length: 5\r\n",
        "Content-Length: 0, 5\r\n",
        "Content-Length: 0\r\nContent-Length: 1\r\n",
        "Content-Length: x\r\n",
        "Content-Length:\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding: identity\r\n",
    ] {
        rejected_400(&upgrade_request(extra), HandshakeError::RequestBody);
    }
    // Content-Length: 0 is no body.
    let req = surfaced_upgrade(&upgrade_request("Content-Length: 0\r\n"));
    assert_eq!(req.path, "/chat");
}

// RFC 6455 §4.1 item 10: the offered subprotocols are tokens; an offer
// with anything else is a malformed request (400), not a choice handed to
// the application (a fuzz finding: accepting such an element failed).
#[test]
fn offered_subprotocols_must_be_tokens() {
    for extra in [
        "Sec-WebSocket-Protocol: échat\r\n",
        "Sec-WebSocket-Protocol: chat, a b\r\n",
        "Sec-WebSocket-Protocol: a/b\r\n",
        "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: \"quoted\"\r\n",
    ] {
        rejected_400(&upgrade_request(extra), HandshakeError::InvalidProtocolList);
    }
    let req = surfaced_upgrade(&upgrade_request("Sec-WebSocket-Protocol: chat, superchat.v2\r\n"));
    assert_eq!(req.protocols, ["chat", "superchat.v2"]);
}

/// A server holding a surfaced upgrade request and a plain one's server.
fn decisions() -> ((Connection, PendingRequest), (Connection, PendingHttp)) {
    let mut server = Connection::server(Config::default());
    let mut evs = feed(&mut server, upgrade_request("").as_bytes());
    let Some(Event::Request(upgrade)) = evs.pop() else {
        panic!("{evs:?}")
    };
    ((server, upgrade), surfaced_http("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
}

/// `response` is refused by `reject` and by `respond` with `misuse`;
/// nothing is sent, and the requests can still be answered.
fn refused_everywhere(response: HttpResponse, misuse: Misuse) {
    assert_eq!(response.check(), Err(misuse.clone()));
    let ((mut upgrade_server, upgrade), (mut http_server, http)) = decisions();
    let refused = upgrade_server.reject(upgrade, response.clone()).unwrap_err();
    assert_eq!(refused.error, Error::Misuse(misuse.clone()));
    let refused_http = http_server.respond(http, response).unwrap_err();
    assert_eq!(refused_http.error, Error::Misuse(misuse));
    for server in [&upgrade_server, &http_server] {
        assert_eq!(server.buffered_amount(), 0);
        assert_eq!(server.state(), ReadyState::Connecting);
    }
    upgrade_server.reject(refused.pending, HttpResponse::new(403)).unwrap();
    http_server
        .respond(refused_http.pending, HttpResponse::new(404))
        .unwrap();
}

// RFC 9112 §6 / RFC 9110 §8.6, §7.6.1: the crate computes the framing
// (Content-Length, Transfer-Encoding) and the connection's fate
// (Connection); RFC 6455 §4.2.2: Sec-WebSocket-Accept, -Protocol and
// -Extensions come only from the negotiation. An application's copy would
// contradict ours (two Content-Lengths: request smuggling, RFC 9112 §6.3).
#[test]
fn responses_cannot_carry_the_crates_headers() {
    for name in [
        "Content-Length",
        "transfer-encoding",
        "Connection",
        "Sec-WebSocket-Accept",
        "SEC-WEBSOCKET-PROTOCOL",
        "Sec-WebSocket-Extensions",
    ] {
        refused_everywhere(
            HttpResponse::new(403).header(name, "1"),
            Misuse::ReservedHeader { name: name.into() },
        );
    }
    // Advertising an upgrade is the application's (RFC 9110 §7.8); the
    // crate then lists `upgrade` in Connection.
    let (_, (mut server, http)) = decisions();
    server
        .respond(http, HttpResponse::new(200).header("Upgrade", "websocket"))
        .unwrap();
    let out = String::from_utf8(take_output(&mut server)).unwrap();
    assert_eq!(header_value(&out, "Connection").as_deref(), Some("upgrade, close"));
}

// RFC 9110 §15: status codes are 100–599; the crate's answer is final and
// the connection closes after it, so a 1xx (interim, §15.2: the client
// would wait for the final response) is refused as well; 101 is accept's.
#[test]
fn response_status_must_be_final() {
    for status in [0, 99, 100, 101, 103, 199, 600, 999, 1000] {
        refused_everywhere(HttpResponse::new(status), Misuse::InvalidStatus(status));
    }
    for status in [200, 299, 404, 599] {
        assert_eq!(HttpResponse::new(status).check(), Ok(()));
    }
}

// RFC 9110 §6.4.1: 204 and 304 responses have no content; §8.6: no
// Content-Length on a 204 (a 304's would have to be the 200's length,
// which the crate does not know, so none either).
#[test]
fn no_body_and_no_content_length_on_204_and_304() {
    for status in [204, 304] {
        refused_everywhere(HttpResponse::new(status).body("x"), Misuse::BodyNotAllowed { status });
        let (_, (mut server, http)) = decisions();
        server.respond(http, HttpResponse::new(status)).unwrap();
        let out = String::from_utf8(take_output(&mut server)).unwrap();
        assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
        assert_eq!(header_value(&out, "Content-Length"), None, "{out}");
        assert!(out.ends_with("\r\n\r\n"));
    }
}

// RFC 9110 §9.3.2: the answer to HEAD has the headers a GET would get
// (Content-Length included, §8.6) but no content; sent, the body would be
// read as the start of another response.
#[test]
fn head_requests_are_answered_without_the_body() {
    let (mut server, req) = surfaced_http("HEAD /page HTTP/1.1\r\nHost: a\r\n\r\n");
    server.respond(req, HttpResponse::new(200).body("hello")).unwrap();
    let out = take_output(&mut server);
    let (head, body) = split_head(&out);
    assert_eq!(header_value(&head, "Content-Length").as_deref(), Some("5"));
    assert_eq!(body, b"");
}

// RFC 9110 §5.1, §5.5: header names are tokens and values field values:
// visible characters and inner spaces, no control characters (CR or LF
// would inject a header line) and no surrounding whitespace. Checked for
// every head the application adds lines to.
#[test]
fn header_lines_must_be_valid_fields() {
    let bad = [
        ("X-A", "a\r\nInjected: 1"),
        ("X-A", "a\nb"),
        ("X-A", "nul\0"),
        ("X-A", "bell\x07"),
        ("X-A", "del\x7f"),
        ("X-A", " leading"),
        ("X-A", "trailing\t"),
        ("X A", "v"),
        ("X:A", "v"),
        ("", "v"),
    ];
    for (name, value) in bad {
        let misuse = Misuse::InvalidHeader { name: name.into() };
        refused_everywhere(HttpResponse::new(403).header(name, value), misuse.clone());
        assert_eq!(Accept::new().header(name, value).check(), Err(misuse.clone()));
        assert_eq!(client_request().header(name, value).check(), Err(misuse.clone()));
        assert_eq!(
            Connection::client_with_rng(client_request().header(name, value), Config::default(), rng(0)).unwrap_err(),
            Error::Misuse(misuse)
        );
    }
    // Inner whitespace, obs-text and an empty value are field values.
    for value in ["a b\tc", "caf\u{e9}", ""] {
        assert_eq!(HttpResponse::new(200).header("X-A", value).check(), Ok(()));
    }
}

// RFC 6455 §4.2.2: the 101's Upgrade, Connection and Sec-WebSocket-* lines
// are the handshake's, and a 1xx has no Content-Length or Transfer-Encoding
// (RFC 9110 §8.6, RFC 9112 §6.1).
#[test]
fn accept_cannot_add_the_handshakes_headers() {
    for name in [
        "Upgrade",
        "connection",
        "Sec-WebSocket-Accept",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Version",
        "Content-Length",
        "Transfer-Encoding",
    ] {
        let misuse = Misuse::ReservedHeader { name: name.into() };
        let accept = Accept::new().header(name, "x");
        assert_eq!(accept.check(), Err(misuse.clone()));
        let ((mut server, req), _) = decisions();
        let refused = server.accept(req, accept).unwrap_err();
        assert_eq!(refused.error, Error::Misuse(misuse));
        assert_eq!((server.state(), server.buffered_amount()), (ReadyState::Connecting, 0));
    }
}

// RFC 9110 §15.5.22: "The server MUST send an Upgrade header field in a
// 426 response"; §7.8: whoever sends Upgrade lists it in Connection. RFC
// 6455 §4.4: the 426 for an unsupported version names version 13.
#[test]
fn a_426_names_the_upgrade() {
    let request = upgrade_request("").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let (_, _, out) = serve(Config::default(), request.as_bytes());
    assert!(out.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{out}");
    assert_eq!(header_value(&out, "Upgrade").as_deref(), Some("websocket"));
    assert_eq!(header_value(&out, "Connection").as_deref(), Some("upgrade, close"));
    assert_eq!(header_value(&out, "Sec-WebSocket-Version").as_deref(), Some("13"));
    // An application's 426 too, and its own Upgrade is not doubled.
    for response in [
        HttpResponse::new(426),
        HttpResponse::new(426).header("Upgrade", "websocket"),
    ] {
        let (_, (mut server, http)) = decisions();
        server.respond(http, response).unwrap();
        let out = String::from_utf8(take_output(&mut server)).unwrap();
        assert_eq!(out.matches("Upgrade: websocket\r\n").count(), 1, "{out}");
        assert_eq!(header_value(&out, "Connection").as_deref(), Some("upgrade, close"));
    }
}

// RFC 6455 §4.1 (client step 1, and "the handshake MUST be a valid HTTP
// request as specified by [RFC2616]" with version 1.1): the 101 is an
// HTTP/1.1 response; HTTP/1.0 has no Upgrade mechanism (RFC 9110 §7.8).
#[test]
fn client_requires_an_http11_101() {
    let (client, evs) = client_gets(&[], |req| response_for(req, "").replacen("HTTP/1.1", "HTTP/1.0", 1));
    assert_client_failed(&client, &evs, HandshakeError::HttpVersion, 101);
    // HTTP/2 has no 101 at all (RFC 9113 §8.6): not parseable as HTTP/1.x.
    let (_, evs) = client_gets(&[], |req| response_for(req, "").replacen("HTTP/1.1", "HTTP/2", 1));
    assert!(
        matches!(
            evs.first(),
            Some(Event::Error(wsmachine::Failure::Handshake {
                error: HandshakeError::Malformed(_),
                ..
            }))
        ),
        "{evs:?}"
    );
}

// RFC 6455 §4.1 client step 2: "If the response lacks an |Upgrade| header
// field or the |Upgrade| header field contains a value that is not an ASCII
// case-insensitive match for the value "websocket", the client MUST _Fail
// the WebSocket Connection_": one value, not a list. Step 3: Connection
// contains the "upgrade" token (a list, RFC 9110 §7.6.1).
#[test]
fn client_requires_upgrade_exactly_websocket() {
    for upgrade in [
        "Upgrade: websocket, h2c",
        "Upgrade: h2c, websocket",
        "Upgrade: websocket\r\nUpgrade: websocket",
        "Upgrade: websocket/13",
    ] {
        let (client, evs) = client_gets(&[], |req| response_for(req, "").replace("Upgrade: websocket", upgrade));
        assert_client_failed(&client, &evs, HandshakeError::UpgradeNotWebSocket, 101);
    }
    let (client, _) = client_gets(&[], |req| {
        response_for(req, "").replace("Upgrade: websocket", "Upgrade: WebSocket")
    });
    assert_eq!(client.state(), ReadyState::Open);
    let (client, evs) = client_gets(&[], |req| {
        response_for(req, "").replace("Connection: Upgrade", "Connection: keep-alive, close")
    });
    assert_client_failed(&client, &evs, HandshakeError::ConnectionNotUpgrade, 101);
    let (client, _) = client_gets(&[], |req| {
        response_for(req, "").replace("Connection: Upgrade", "Connection: keep-alive, UPGRADE")
    });
    assert_eq!(client.state(), ReadyState::Open);
}

// RFC 3986 §3.2.2 (RFC 6455 §3's host): an IP-literal is a valid IPv6
// address in brackets; a reg-name's percent-encodings are "%" HEXDIG
// HEXDIG (§2.1); RFC 3986 §3.3, §3.4: no whitespace or control characters
// in the path and query, ASCII or not (U+0085 NEL and U+00A0 NO-BREAK SPACE
// are not percent-encoded into the path: they are refused).
#[test]
fn urls_parse_strictly() {
    for (url, error) in [
        ("ws://[1:2:3]/", UrlError::Host),
        ("ws://[::1::2]/", UrlError::Host),
        ("ws://[::g]/", UrlError::Host),
        ("ws://[fe80::1%25eth0]/", UrlError::Host),
        ("ws://[::1]:80:80/", UrlError::Port),
        ("ws://[::1]:65536/", UrlError::Port),
        ("ws://h%zz/", UrlError::Host),
        ("ws://h%4/", UrlError::Host),
        ("ws://h\u{0}/", UrlError::Host),
        ("ws://h /", UrlError::Host),
        ("ws://h:80 /", UrlError::Port),
        ("ws://h/a\u{85}b", UrlError::Path),
        ("ws://h/a\u{a0}b", UrlError::Path),
        ("ws://h/a\u{2028}b", UrlError::Path),
        ("ws://h/?q=\u{7f}", UrlError::Path),
        ("ws://h/a\r\nb", UrlError::Path),
    ] {
        assert_eq!(ClientRequest::from_url(url), Err(error), "{url:?}");
    }
    let r = ClientRequest::from_url("ws://[::ffff:192.0.2.1]:65535/").unwrap();
    assert_eq!((r.host(), r.port()), ("[::ffff:192.0.2.1]", 65535));
    assert_eq!(ClientRequest::from_url("ws://h%41/").unwrap().host(), "h%41");
    // Non-ASCII in the path is percent-encoded; in the host refused (no IDNA).
    assert_eq!(
        ClientRequest::from_url("ws://h/\u{e9}t\u{e9}").unwrap().path(),
        "/%C3%A9t%C3%A9"
    );
    assert_eq!(ClientRequest::from_url("ws://\u{e9}t\u{e9}/"), Err(UrlError::Host));
}

// RFC 3986 §3.2.2 / RFC 6455 §3: `ClientRequest::new` takes a host (an
// IPv6 address in brackets, ASCII, no port) and a path in origin form
// (RFC 9112 §3.2.1: ASCII, no fragment).
#[test]
fn client_request_hosts_and_paths_are_checked() {
    for host in ["", "::1", "h:80", "b\u{fc}cher.example", "a b", "[::1", "h/x", "u@h"] {
        let req = ClientRequest::new(host, 80, "/");
        assert_eq!(req.check(), Err(Misuse::InvalidHost), "{host:?}");
        assert_eq!(
            Connection::client_with_rng(req, Config::default(), rng(0)).unwrap_err(),
            Error::Misuse(Misuse::InvalidHost)
        );
    }
    for host in ["example.com", "192.0.2.1", "[::1]", "xn--bcher-kva.example"] {
        assert_eq!(ClientRequest::new(host, 80, "/").check(), Ok(()), "{host}");
    }
    for path in ["/a#b", "/caf\u{e9}", "/a b", "/a\u{0}"] {
        assert_eq!(
            ClientRequest::new("h", 80, path).check(),
            Err(Misuse::InvalidPath),
            "{path:?}"
        );
    }
}

// RFC 6455 §4.1: the subprotocol values "MUST all be unique strings" (and
// tokens, which the existing tests cover).
#[test]
fn client_subprotocols_are_unique() {
    let req = client_request().protocol("chat").protocol("superchat").protocol("chat");
    assert_eq!(req.check(), Err(Misuse::DuplicateSubprotocol("chat".into())));
    assert_eq!(
        Connection::client_with_rng(req, Config::default(), rng(0)).unwrap_err(),
        Error::Misuse(Misuse::DuplicateSubprotocol("chat".into()))
    );
    // Subprotocol names compare exactly: different case is a different name.
    assert_eq!(client_request().protocol("chat").protocol("Chat").check(), Ok(()));
}

// RFC 6455 §4.1: Host, Upgrade, Connection and the Sec-WebSocket-* fields
// are the handshake's (Sec-WebSocket-Protocol from `protocol`,
// Sec-WebSocket-Extensions from the extension offers); RFC 9112 §6: an
// upgrade request has no body, so no framing headers either.
#[test]
fn client_request_cannot_duplicate_the_handshakes_headers() {
    for name in [
        "Host",
        "upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "sec-websocket-extensions",
        "Content-Length",
        "Transfer-Encoding",
    ] {
        let misuse = Misuse::ReservedHeader { name: name.into() };
        let req = client_request().header(name, "x");
        assert_eq!(req.check(), Err(misuse.clone()));
        assert_eq!(
            Connection::client_with_rng(req, Config::default(), rng(0)).unwrap_err(),
            Error::Misuse(misuse)
        );
    }
    assert_eq!(client_request().header("Origin", "http://example.com").check(), Ok(()));
}
