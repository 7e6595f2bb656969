//! The server's `Origin` check (RFC 6455 §10.2, cross-site WebSocket
//! hijacking): `OriginPolicy` through the machine (403 for a foreign page,
//! 101 for the server's own), through the blocking driver's decision
//! (`Decision::accept_if_allowed`), and before an `Upgrade` for a handshake
//! an HTTP server did.

use crate::util::{Pair, events, take_output, upgrade_request};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;
use wsmachine::blocking::{self, Decision, Error};
use wsmachine::handshake::{Header, Headers};
use wsmachine::{
    Accept, ClientRequest, Config, Connection, Event, Failure, HandshakeError, Origin, OriginError, OriginPolicy,
    ReadyState, Upgrade,
};

/// The server's answer to the RFC's example request (`Host:
/// server.example.com`) carrying `origin_lines`, decided by `policy`.
fn answer(policy: &OriginPolicy, origin_lines: &str) -> (Connection, String) {
    let mut server = Connection::server(Config::default());
    server.receive(upgrade_request(origin_lines).as_bytes());
    let Some(Event::Request(request)) = server.poll_event() else {
        panic!("no request")
    };
    match policy.check(&request) {
        Ok(()) => server.accept(request, Accept::new()).unwrap(),
        Err(refused) => server.reject(request, refused.response()).unwrap(),
    }
    let out = String::from_utf8(take_output(&mut server)).unwrap();
    (server, out)
}

// RFC 6455 §10.2, §4.2.2 item 4: a page of another site is refused with
// 403 and the connection ends; the server's own page is accepted (101).
#[test]
fn a_foreign_origin_gets_403_and_the_same_origin_101() {
    let policy = OriginPolicy::same_origin();
    let (mut server, out) = answer(&policy, "Origin: http://evil.example\r\n");
    assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{out}");
    assert!(
        out.ends_with("\r\n\r\norigin http://evil.example is not allowed\n"),
        "{out}"
    );
    assert_eq!(server.state(), ReadyState::Closed);
    assert!(server.should_close_transport());
    assert!(matches!(events(&mut server).as_slice(), [Event::Closed(_)]));

    for same in [
        "http://server.example.com",
        "https://server.example.com",
        "HTTP://Server.Example.COM:80",
    ] {
        let (mut server, out) = answer(&policy, &format!("Origin: {same}\r\n"));
        assert!(out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{same}: {out}");
        assert_eq!(server.state(), ReadyState::Open, "{same}");
        assert!(matches!(events(&mut server).as_slice(), [Event::Open { .. }]));
    }
}

// Same origin is host *and* port; `localhost` and `127.0.0.1` differ (RFC 6454 §5).
#[test]
fn same_origin_means_the_host_and_port_of_the_request() {
    let policy = OriginPolicy::same_origin();
    for foreign in [
        "http://server.example.com:8080",
        "http://example.com",
        "http://server.example.com.evil.example",
        "null",
    ] {
        let (_, out) = answer(&policy, &format!("Origin: {foreign}\r\n"));
        assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{foreign}: {out}");
    }
    let local = |host: &str, origin: &str| {
        let headers = Headers(vec![
            Header {
                name: "Host".into(),
                value: host.into(),
            },
            Header {
                name: "Origin".into(),
                value: origin.into(),
            },
        ]);
        policy.check_headers(&headers)
    };
    assert_eq!(local("127.0.0.1:9999", "http://127.0.0.1:9999"), Ok(()));
    assert_eq!(
        local("127.0.0.1:9999", "http://localhost:9999"),
        Err(OriginError::NotAllowed(Origin::parse("http://localhost:9999").unwrap()))
    );
}

// RFC 6455 §4.1 item 8: browsers send Origin, other clients need not; a
// request without one is allowed unless the policy requires it.
#[test]
fn no_origin_is_allowed_unless_required() {
    let (_, out) = answer(&OriginPolicy::same_origin(), "");
    assert!(out.starts_with("HTTP/1.1 101 "), "{out}");
    let (_, out) = answer(&OriginPolicy::same_origin().require_origin(), "");
    assert!(out.starts_with("HTTP/1.1 403 "), "{out}");
    assert!(out.ends_with("the request has no Origin header\n"), "{out}");
}

#[test]
fn a_malformed_or_repeated_origin_is_refused() {
    let policy = OriginPolicy::allow_list(["https://app.example"]).unwrap();
    for lines in [
        "Origin: https://app.example/\r\n",
        "Origin: https://app.example https://app.example\r\n",
        "Origin: app.example\r\n",
        "Origin: https://app.example\r\nOrigin: https://app.example\r\n",
    ] {
        let (_, out) = answer(&policy, lines);
        assert!(out.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{lines:?}: {out}");
    }
    let (_, out) = answer(&policy, "Origin: https://APP.example:443\r\n");
    assert!(out.starts_with("HTTP/1.1 101 "), "{out}");
}

// A client of this crate sees the refusal as a handshake failure with status 403.
#[test]
fn a_client_sees_the_403() {
    let request = ClientRequest::new("example.com", 80, "/chat").header("Origin", "http://evil.example");
    let client = Connection::client_with_rng(request, Config::default(), crate::util::rng(3)).unwrap();
    let mut p = Pair::with_client(client, Config::default());
    p.client_to_server();
    let Some(Event::Request(request)) = p.server_events.pop() else {
        panic!("{:?}", p.server_events)
    };
    let refused = OriginPolicy::same_origin().check(&request).unwrap_err();
    p.server.reject(request, refused.response()).unwrap();
    p.server_to_client();
    assert!(
        matches!(
            p.client_events.first(),
            Some(Event::Error(Failure::Handshake {
                error: HandshakeError::Status(403),
                ..
            }))
        ),
        "{:?}",
        p.client_events
    );
}

/// Sends a raw request and reads the whole answer (the server closes after it).
fn raw(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

// The driver's decision callback: `Decision::accept_if_allowed` over loopback TCP.
#[test]
fn the_blocking_driver_refuses_a_foreign_origin() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let policy = OriginPolicy::same_origin();
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let result = blocking::accept_with(tcp, Config::default(), |request| {
                Decision::accept_if_allowed(&policy, request, Accept::new())
            });
            outcomes.push(match result {
                Ok(_) => "open".to_string(),
                Err(Error::NotUpgraded) => "refused".to_string(),
                Err(e) => format!("error: {e}"),
            });
        }
        outcomes
    });
    let request = |origin: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
        )
    };
    let foreign = raw(port, &request(&format!("http://localhost:{port}")));
    assert!(foreign.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{foreign}");
    let (ws, response) = {
        let url = format!("ws://127.0.0.1:{port}/");
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let request = ClientRequest::from_url(&url)
            .unwrap()
            .header("Origin", &format!("http://127.0.0.1:{port}"));
        blocking::connect_with(tcp, request, Config::default()).unwrap()
    };
    assert_eq!(response.status, 101);
    drop(ws);
    assert_eq!(server.join().unwrap(), ["refused", "open"]);
}

// A handshake an HTTP server did (hyper, axum): check the headers, then `Upgrade::new`.
#[test]
fn the_policy_checks_headers_parsed_elsewhere() {
    let header = |name: &str, value: &str| Header {
        name: name.into(),
        value: value.into(),
    };
    let request = |origin: &str| {
        Headers(vec![
            header("Host", "chat.example"),
            header("Upgrade", "websocket"),
            header("Connection", "Upgrade"),
            header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            header("Sec-WebSocket-Version", "13"),
            header("Origin", origin),
        ])
    };
    let policy = OriginPolicy::same_origin();
    let own = request("https://chat.example");
    assert_eq!(policy.check_headers(&own), Ok(()));
    assert!(Upgrade::new("GET", &own, Accept::new()).is_ok());
    let refused = policy.check_headers(&request("https://evil.example")).unwrap_err();
    assert_eq!(refused.response().status(), 403);
    assert_eq!(refused.to_string(), "origin https://evil.example is not allowed");
}

/// Header text built from the characters that matter to the grammar, plus any byte.
fn header_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        Just(b"http://".to_vec()),
        Just(b"https://".to_vec()),
        Just(b"null".to_vec()),
        Just(b"a".to_vec()),
        Just(b"A".to_vec()),
        Just(b":".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"::1".to_vec()),
        Just(b"/".to_vec()),
        Just(b" ".to_vec()),
        Just(b"80".to_vec()),
        Just(b"443".to_vec()),
        Just(b"65536".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

proptest::proptest! {
    // No panic on any Origin or Host bytes, and what same-origin allows
    // really is the Host's host (RFC 6455 §10.2).
    #[test]
    fn any_origin_and_host_bytes_are_decided_without_panic(origin in header_text(), host in header_text()) {
        let headers = Headers(vec![
            Header { name: "Host".into(), value: host.clone() },
            Header { name: "Origin".into(), value: origin.clone() },
        ]);
        let verdict = OriginPolicy::same_origin().check_headers(&headers);
        let _ = OriginPolicy::allow_list(["http://a"]).unwrap().check_headers(&headers);
        let _ = Origin::parse(&String::from_utf8_lossy(&origin));
        if verdict.is_ok() {
            let text = std::str::from_utf8(&origin).expect("an allowed origin is ASCII");
            let parsed = Origin::parse(text.trim_matches([' ', '\t'])).expect("an allowed origin parses");
            let host = std::str::from_utf8(&host).expect("a compared Host is ASCII").trim_matches([' ', '\t']);
            let name = match host.rfind(':') {
                Some(i) if !host[i..].contains(']') => &host[..i],
                _ => host,
            };
            proptest::prop_assert!(name.eq_ignore_ascii_case(parsed.host()), "{host} vs {parsed}");
        }
        if let Err(refused) = verdict {
            proptest::prop_assert_eq!(refused.response().status(), 403);
        }
    }
}
