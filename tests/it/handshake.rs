//! The opening handshake (RFC 6455 §4), both roles, in memory.

use crate::util::*;
use wsmachine::handshake::accept_key;
use wsmachine::{
    Accept, ClientRequest, Config, Connection, Error, Event, Failure, HandshakeError, HttpResponse, Misuse,
    PendingRequest, ReadyState, Role,
};

pub(crate) fn handshake_error(error: HandshakeError) -> Event {
    Event::Error(Failure::Handshake { error, response: None })
}

/// Feeds `request` to a fresh server and returns (events, output text).
pub(crate) fn serve(config: Config, request: &[u8]) -> (Connection, Vec<Event>, String) {
    let mut server = Connection::server(config);
    let evs = feed(&mut server, request);
    let out = String::from_utf8(take_output(&mut server)).unwrap();
    (server, evs, out)
}

/// A server rejected the request with `status`: checks the status line,
/// `Connection: close`, the events, and the CLOSED state.
pub(crate) fn assert_rejected(config: Config, request: &[u8], status_line: &str, error: HandshakeError) -> String {
    let (server, evs, out) = serve(config, request);
    assert!(out.starts_with(status_line), "{out}");
    let (head, body) = split_head(out.as_bytes());
    // RFC 9110 §7.6.1: `close` (with `upgrade` beside it on a 426, §7.8).
    let connection = header_value(&head, "Connection").unwrap_or_default();
    assert!(connection.split(',').any(|t| t.trim() == "close"), "{head}");
    assert_eq!(header_value(&head, "Content-Length"), Some(body.len().to_string()));
    assert_eq!(evs, [handshake_error(error), closed(1006, "", false)]);
    assert_eq!(server.state(), ReadyState::Closed);
    assert!(server.should_close_transport());
    head
}

// RFC 6455 §1.3 / §4.2.2: the accept value of the RFC's example key.
#[test]
fn accept_key_of_the_rfc_example() {
    assert_eq!(accept_key(RFC_KEY.as_bytes()), RFC_ACCEPT);
}

// RFC 6455 §4.1, §4.2.2: a full exchange without subprotocol; the transcript.
#[test]
fn handshake_without_subprotocol() {
    let mut p = Pair::new(Config::default(), Config::default());
    assert_eq!(p.client.state(), ReadyState::Connecting);
    assert_eq!(p.server.state(), ReadyState::Connecting);

    let request = String::from_utf8(p.client_to_server()).unwrap();
    assert!(
        request.starts_with("GET /chat HTTP/1.1\r\nHost: example.com\r\n"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\n"));
    assert_eq!(header_value(&request, "Upgrade").as_deref(), Some("websocket"));
    assert_eq!(header_value(&request, "Connection").as_deref(), Some("Upgrade"));
    assert_eq!(header_value(&request, "Sec-WebSocket-Version").as_deref(), Some("13"));
    assert_eq!(header_value(&request, "Sec-WebSocket-Protocol"), None);
    // §4.1: the key is a base64-encoded 16-byte nonce: 24 characters ending "==".
    let key = header_value(&request, "Sec-WebSocket-Key").unwrap();
    assert_eq!(
        (key.len(), key.ends_with("=="), key.ends_with("===")),
        (24, true, false)
    );

    assert_eq!(p.server_events.len(), 1, "{:?}", p.server_events);
    let Some(Event::Request(req)) = p.server_events.pop() else {
        panic!("{:?}", p.server_events)
    };
    assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/chat"));
    assert!(req.protocols.is_empty() && req.extensions.is_empty());
    assert_eq!(req.headers.get_str("host"), Some("example.com"));
    assert!(req.is_upgrade());
    assert_eq!(p.server.state(), ReadyState::Connecting);
    assert_eq!(p.server.buffered_amount(), 0, "nothing is sent before the decision");

    p.server.accept(req, Accept::new()).unwrap();
    assert_eq!(p.server.state(), ReadyState::Open);
    let response = String::from_utf8(p.server_to_client()).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{response}"
    );
    assert_eq!(header_value(&response, "Upgrade").as_deref(), Some("websocket"));
    assert_eq!(header_value(&response, "Connection").as_deref(), Some("Upgrade"));
    assert_eq!(
        header_value(&response, "Sec-WebSocket-Accept"),
        Some(accept_key(key.as_bytes()))
    );
    assert_eq!(header_value(&response, "Sec-WebSocket-Protocol"), None);

    assert_eq!(
        events(&mut p.server),
        [Event::Open {
            protocol: None,
            extensions: String::new(),
            response: None
        }]
    );
    let [
        Event::Open {
            protocol: None,
            response: Some(r),
            ..
        },
    ] = p.client_events.as_slice()
    else {
        panic!("{:?}", p.client_events)
    };
    assert_eq!((r.status, r.protocol.as_deref()), (101, None));
    assert_eq!(
        r.headers.get_str("sec-websocket-accept"),
        Some(accept_key(key.as_bytes()).as_str())
    );
    assert_eq!(p.client.state(), ReadyState::Open);
}

// RFC 6455 §4.1 / §4.2.2: the server picks one of the offered subprotocols.
#[test]
fn server_picks_an_offered_subprotocol() {
    let client = Connection::client_with_rng(
        client_request().protocol("chat").protocol("superchat"),
        Config::default(),
        rng(3),
    )
    .unwrap();
    let mut p = Pair::with_client(client, Config::default());
    let request = String::from_utf8(p.client_to_server()).unwrap();
    assert_eq!(
        header_value(&request, "Sec-WebSocket-Protocol").as_deref(),
        Some("chat, superchat")
    );
    let Some(Event::Request(req)) = p.server_events.pop() else {
        panic!()
    };
    assert_eq!(req.protocols, ["chat", "superchat"]);

    // Choosing something not offered is refused, changes nothing, and gives
    // the request back to be answered.
    let refused = p.server.accept(req, Accept::new().protocol("other")).unwrap_err();
    assert_eq!(
        refused.error,
        Error::Misuse(Misuse::SubprotocolNotOffered("other".into()))
    );
    assert_eq!(p.server.state(), ReadyState::Connecting);
    assert_eq!(p.server.buffered_amount(), 0);

    p.server
        .accept(
            refused.pending,
            Accept::new().protocol("superchat").header("X-Served-By", "test"),
        )
        .unwrap();
    let response = String::from_utf8(p.server_to_client()).unwrap();
    assert_eq!(
        header_value(&response, "Sec-WebSocket-Protocol").as_deref(),
        Some("superchat")
    );
    assert_eq!(header_value(&response, "X-Served-By").as_deref(), Some("test"));
    assert_eq!(
        events(&mut p.server),
        [Event::Open {
            protocol: Some("superchat".into()),
            extensions: String::new(),
            response: None
        }]
    );
    let [
        Event::Open {
            protocol: Some(proto),
            response: Some(r),
            ..
        },
    ] = p.client_events.as_slice()
    else {
        panic!("{:?}", p.client_events)
    };
    assert_eq!(proto, "superchat");
    assert_eq!(r.protocol.as_deref(), Some("superchat"));
}

// RFC 6455 §4.2.2: the server may choose no subprotocol although some were offered.
#[test]
fn server_may_choose_no_subprotocol() {
    let client = Connection::client_with_rng(client_request().protocol("chat"), Config::default(), rng(4)).unwrap();
    let mut p = Pair::with_client(client, Config::default());
    p.handshake(Accept::new());
    assert!(matches!(
        p.client_events.as_slice(),
        [Event::Open { protocol: None, .. }]
    ));
}

/// Runs a client against a hand-written response; returns its events.
pub(crate) fn client_gets(offered: &[&str], response: impl FnOnce(&str) -> String) -> (Connection, Vec<Event>) {
    let mut req = client_request();
    for p in offered {
        req = req.protocol(p);
    }
    let mut client = Connection::client_with_rng(req, Config::default(), rng(5)).unwrap();
    let request = String::from_utf8(take_output(&mut client)).unwrap();
    let evs = feed(&mut client, response(&request).as_bytes());
    (client, evs)
}

/// The client failed its handshake with `expected`, keeping the response.
pub(crate) fn assert_client_failed(client: &Connection, evs: &[Event], expected: HandshakeError, status: u16) {
    let [
        Event::Error(Failure::Handshake {
            error,
            response: Some(r),
        }),
        last,
    ] = evs
    else {
        panic!("{evs:?}")
    };
    assert_eq!(*error, expected);
    assert_eq!(r.status, status);
    assert_eq!(*last, closed(1006, "", false));
    assert_eq!(client.state(), ReadyState::Closed);
    assert!(client.should_close_transport());
}

// RFC 6455 §4.2.2 (client, item 6): a subprotocol that was not offered fails the connection.
#[test]
fn client_rejects_an_unoffered_subprotocol() {
    let (client, evs) = client_gets(&["chat"], |req| response_for(req, "Sec-WebSocket-Protocol: other\r\n"));
    assert_client_failed(&client, &evs, HandshakeError::UnofferedProtocol("other".into()), 101);
    // None offered, one chosen.
    let (client, evs) = client_gets(&[], |req| response_for(req, "Sec-WebSocket-Protocol: chat\r\n"));
    assert_client_failed(&client, &evs, HandshakeError::UnofferedProtocol("chat".into()), 101);
}

// RFC 6455 §4.2.2 (client, item 5): an extension that was not offered fails the connection.
#[test]
fn client_rejects_an_unoffered_extension() {
    let (client, evs) = client_gets(&[], |req| {
        response_for(
            req,
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        )
    });
    assert_client_failed(
        &client,
        &evs,
        HandshakeError::UnofferedExtension("permessage-deflate".into()),
        101,
    );
}

// RFC 6455 §4.2.2 (client, item 4): a wrong Sec-WebSocket-Accept fails the connection.
#[test]
fn client_rejects_a_bad_accept() {
    let (client, evs) = client_gets(&[], |req| {
        response_for(req, "").replace(
            &accept_key(header_value(req, "Sec-WebSocket-Key").unwrap().as_bytes()),
            RFC_ACCEPT,
        )
    });
    assert_client_failed(&client, &evs, HandshakeError::InvalidAccept, 101);
    // Missing altogether.
    let (client, evs) = client_gets(&[], |_| {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".into()
    });
    assert_client_failed(&client, &evs, HandshakeError::InvalidAccept, 101);
}

// RFC 6455 §4.2.2 / §4.1: any status other than 101 fails; the response is kept.
#[test]
fn client_rejects_a_non_101_status() {
    let (client, evs) = client_gets(&[], |_| {
        "HTTP/1.1 403 Forbidden\r\nX-Why: banned\r\nContent-Length: 0\r\n\r\n".into()
    });
    assert_client_failed(&client, &evs, HandshakeError::Status(403), 403);
    let [Event::Error(Failure::Handshake { response: Some(r), .. }), _] = evs.as_slice() else {
        panic!()
    };
    assert_eq!(r.reason, "Forbidden");
    assert_eq!(r.headers.get_str("x-why"), Some("banned"));
    assert_eq!(client.buffered_amount(), 0, "the client sends nothing back");
}

// RFC 6455 §4.1: a client may not send data before the connection is OPEN.
#[test]
fn client_cannot_send_while_connecting() {
    let mut client = client(Config::default());
    assert_eq!(client.send("early"), Err(Error::NotOpen(ReadyState::Connecting)));
    assert_eq!(client.ping(b""), Err(Error::NotOpen(ReadyState::Connecting)));
    let request = take_output(&mut client);
    assert!(request.starts_with(b"GET /chat HTTP/1.1\r\n"));
    assert_eq!(client.buffered_amount(), 0);
}

// RFC 6455 §4.4: an unsupported version is answered with 426 naming version 13.
#[test]
fn server_answers_version_8_with_426() {
    let request = upgrade_request("").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    let head = assert_rejected(
        Config::default(),
        request.as_bytes(),
        "HTTP/1.1 426 Upgrade Required\r\n",
        HandshakeError::UnsupportedVersion,
    );
    assert_eq!(header_value(&head, "Sec-WebSocket-Version").as_deref(), Some("13"));
}

/// An upgrade request whose head is exactly `len` bytes (padded with an
/// `X-Pad` header).
fn request_of_len(len: usize) -> String {
    let base = upgrade_request("X-Pad: \r\n");
    assert!(len >= base.len());
    let r = upgrade_request(&format!("X-Pad: {}\r\n", "a".repeat(len - base.len())));
    assert_eq!(r.len(), len);
    r
}

// RFC 6455 §4.2.1 + RFC 6585 §5: a head over the limit (8 KiB by default) gets 431.
#[test]
fn server_answers_an_oversized_head_with_431() {
    // Exactly the limit is accepted.
    let (_, evs, out) = serve(Config::default(), request_of_len(8192).as_bytes());
    assert!(matches!(evs.as_slice(), [Event::Request(_)]), "{evs:?}");
    assert_eq!(out, "");
    // One byte more is not.
    assert_rejected(
        Config::default(),
        request_of_len(8193).as_bytes(),
        "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        HandshakeError::TooLarge { limit: 8192 },
    );
    // A head with no end yet is refused as soon as it passes the limit.
    let endless = format!("GET / HTTP/1.1\r\nX-Pad: {}", "a".repeat(9000));
    assert_rejected(
        Config::default(),
        endless.as_bytes(),
        "HTTP/1.1 431 ",
        HandshakeError::TooLarge { limit: 8192 },
    );
}

// Same rule with a configured smaller limit.
#[test]
fn server_answers_431_with_a_configured_limit() {
    let config = Config {
        max_handshake_size: 256,
        ..Config::default()
    };
    let (_, evs, _) = serve(config.clone(), request_of_len(256).as_bytes());
    assert!(matches!(evs.as_slice(), [Event::Request(_)]), "{evs:?}");
    assert_rejected(
        config,
        request_of_len(257).as_bytes(),
        "HTTP/1.1 431 ",
        HandshakeError::TooLarge { limit: 256 },
    );
}

// httparse's header array bounds the number of header lines: more is answered 431.
#[test]
fn server_answers_too_many_headers_with_431() {
    let extra: String = (0..wsmachine::handshake::MAX_HEADERS)
        .map(|i| format!("X-{i}: v\r\n"))
        .collect();
    assert_rejected(
        Config::default(),
        upgrade_request(&extra).as_bytes(),
        "HTTP/1.1 431 ",
        HandshakeError::TooManyHeaders,
    );
}

// RFC 6455 §4.1 (item 2) / RFC 9110 §15.5.6: an upgrade must be a GET; 405 with Allow.
#[test]
fn server_answers_post_upgrade_with_405() {
    let head = assert_rejected(
        Config::default(),
        upgrade_request("").replacen("GET", "POST", 1).as_bytes(),
        "HTTP/1.1 405 Method Not Allowed\r\n",
        HandshakeError::MethodNotGet,
    );
    assert_eq!(header_value(&head, "Allow").as_deref(), Some("GET"));
}

// RFC 6455 §4.2.1: each missing or malformed required field gets 400.
#[test]
fn server_answers_bad_requests_with_400() {
    let ok = upgrade_request("");
    let cases = [
        (ok.replace("HTTP/1.1", "HTTP/1.0"), HandshakeError::HttpVersion),
        (
            ok.replace("Host: server.example.com\r\n", ""),
            HandshakeError::MissingHost,
        ),
        (
            ok.replace("Connection: Upgrade", "Connection: keep-alive"),
            HandshakeError::ConnectionNotUpgrade,
        ),
        (ok.replace(RFC_KEY, "c2hvcnQ="), HandshakeError::InvalidKey),
        (
            ok.replace(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n"), ""),
            HandshakeError::InvalidKey,
        ),
        (
            upgrade_request(&format!("Sec-WebSocket-Key: {RFC_KEY}\r\n")),
            HandshakeError::InvalidKey,
        ),
        (
            ok.replace("Sec-WebSocket-Version: 13\r\n", ""),
            HandshakeError::UnsupportedVersion,
        ),
    ];
    for (request, error) in cases {
        let status = if error == HandshakeError::UnsupportedVersion {
            "426"
        } else {
            "400"
        };
        assert_rejected(
            Config::default(),
            request.as_bytes(),
            &format!("HTTP/1.1 {status} "),
            error,
        );
    }
    // Not HTTP at all.
    let (server, evs, out) = serve(Config::default(), b"\x16\x03\x01\x02\x00\x01\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert!(matches!(
        evs.as_slice(),
        [
            Event::Error(Failure::Handshake {
                error: HandshakeError::Malformed(_),
                response: None
            }),
            Event::Closed(_)
        ]
    ));
    assert_eq!(server.state(), ReadyState::Closed);
}

// A plain HTTP request is surfaced; the application answers it with any status.
#[test]
fn plain_http_request_is_answered_by_the_application() {
    let mut server = Connection::server(Config::default());
    let mut evs = feed(&mut server, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(evs.len(), 1, "{evs:?}");
    let Some(Event::HttpRequest(req)) = evs.pop() else {
        panic!("{evs:?}")
    };
    assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/"));
    assert!(!req.is_upgrade());
    // (Accepting it does not compile: `accept` takes a `PendingRequest`.)
    let refused = server.respond(req, HttpResponse::new(101)).unwrap_err();
    assert_eq!(refused.error, Error::Misuse(Misuse::InvalidStatus(101)));
    assert_eq!(server.state(), ReadyState::Connecting);

    server
        .respond(
            refused.pending,
            HttpResponse::new(200)
                .header("Content-Type", "text/html")
                .body("<h1>hi</h1>"),
        )
        .unwrap();
    assert_eq!(
        String::from_utf8(take_output(&mut server)).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 11\r\nConnection: close\r\n\r\n<h1>hi</h1>"
    );
    assert_eq!(events(&mut server), [closed(1006, "", false)]);
    assert_eq!(server.state(), ReadyState::Closed);
    assert!(server.should_close_transport());
}

// RFC 6455 §4.2.2: a server may refuse an upgrade; the client sees the status.
#[test]
fn server_rejects_an_upgrade_and_the_client_sees_it() {
    let mut p = Pair::new(Config::default(), Config::default());
    p.client_to_server();
    let Some(Event::Request(req)) = p.server_events.pop() else {
        panic!("{:?}", p.server_events)
    };
    p.server.reject(req, HttpResponse::new(403).body("go away")).unwrap();
    assert_eq!(events(&mut p.server), [closed(1006, "", false)]);
    p.server_to_client();
    let [
        Event::Error(Failure::Handshake {
            error: HandshakeError::Status(403),
            response: Some(r),
        }),
        last,
    ] = p.client_events.as_slice()
    else {
        panic!("{:?}", p.client_events)
    };
    assert_eq!(r.headers.get_str("content-length"), Some("7"));
    assert_eq!(*last, closed(1006, "", false));
}

// Only the total size of the head is limited, not the number of reads
// (unlike tungstenite): thousands of single-byte reads still succeed.
#[test]
fn request_delivered_one_byte_per_receive() {
    let extra: String = (0..10)
        .map(|i| format!("X-Long-{i}: {}\r\n", "v".repeat(700)))
        .collect();
    let request = upgrade_request(&extra);
    assert!(request.len() > 7000 && request.len() < 8192, "{}", request.len());
    let mut server = Connection::server(Config::default());
    let mut pending = None;
    for (i, b) in request.as_bytes().iter().enumerate() {
        server.receive(std::slice::from_ref(b));
        let mut evs = events(&mut server);
        if i + 1 < request.len() {
            assert!(evs.is_empty(), "event before the head is complete at byte {i}: {evs:?}");
        } else {
            let Some(Event::Request(req)) = evs.pop() else {
                panic!("{evs:?}")
            };
            assert_eq!(req.headers.get_str("x-long-9").map(str::len), Some(700));
            pending = Some(req);
        }
    }
    server.accept(pending.expect("the request"), Accept::new()).unwrap();
    let out = String::from_utf8(take_output(&mut server)).unwrap();
    assert_eq!(header_value(&out, "Sec-WebSocket-Accept").as_deref(), Some(RFC_ACCEPT));
}

// The client side of the same: the 101 response byte by byte.
#[test]
fn response_delivered_one_byte_per_receive() {
    let mut client = client(Config::default());
    let request = String::from_utf8(take_output(&mut client)).unwrap();
    let extra: String = (0..8).map(|i| format!("X-Long-{i}: {}\r\n", "v".repeat(800))).collect();
    let response = response_for(&request, &extra);
    let n = response.len();
    for (i, b) in response.as_bytes().iter().enumerate() {
        client.receive(std::slice::from_ref(b));
        let evs = events(&mut client);
        assert_eq!(evs.is_empty(), i + 1 < n, "byte {i}: {evs:?}");
    }
    assert_eq!(client.state(), ReadyState::Open);
}

// RFC 6455 §4.2.2 / §5: frames sent right after the request, in the same
// bytes, belong to the connection and are not lost.
#[test]
fn frames_pipelined_after_the_request_are_kept() {
    let mut bytes = upgrade_request("").into_bytes();
    bytes.extend(client_frame(true, OP_TEXT, b"hello"));
    bytes.extend(client_frame(true, OP_PING, b"p"));
    let mut server = Connection::server(Config::default());
    let mut evs = feed(&mut server, &bytes);
    assert!(matches!(evs.as_slice(), [Event::Request(_)]), "{evs:?}");
    let Some(Event::Request(req)) = evs.pop() else {
        unreachable!()
    };
    server.accept(req, Accept::new()).unwrap();
    assert_eq!(
        events(&mut server),
        [
            Event::Open {
                protocol: None,
                extensions: String::new(),
                response: None
            },
            text("hello"),
            Event::Ping("p".into())
        ]
    );
    let (head, frames) = split_head(&take_output(&mut server));
    assert!(head.starts_with("HTTP/1.1 101 "));
    assert_eq!(parse_frames(&frames), parse_frames(&server_frame(true, OP_PONG, b"p")));
}

// Same for the client: frames in the same read as the 101 response.
#[test]
fn frames_pipelined_after_the_response_are_kept() {
    let mut client = client(Config::default());
    let request = String::from_utf8(take_output(&mut client)).unwrap();
    let mut bytes = response_for(&request, "").into_bytes();
    bytes.extend(server_frame(true, OP_TEXT, b"hi"));
    bytes.extend(server_frame(true, OP_BINARY, &[1, 2, 3]));
    let evs = feed(&mut client, &bytes);
    assert!(matches!(evs.as_slice(), [Event::Open { .. }, _, _]), "{evs:?}");
    assert_eq!(evs[1..], [text("hi"), binary(&[1, 2, 3])]);
}

// RFC 6455 §4.1: an open-at-once machine (external handshake) is OPEN and speaks frames.
#[test]
fn open_machines_skip_the_handshake() {
    let mut server = open(Role::Server, Config::default());
    assert_eq!(server.state(), ReadyState::Open);
    assert_eq!(feed(&mut server, &client_frame(true, OP_TEXT, b"x")), [text("x")]);
    let mut client = open(Role::Client, Config::default());
    client.send("y").unwrap();
    let frames = output_frames(&mut client);
    assert_eq!(
        (frames.len(), frames[0].mask.is_some(), frames[0].payload.as_slice()),
        (1, true, &b"y"[..])
    );
}

// RFC 6455 §3 / §4.1: a malformed client request is refused before anything is queued.
#[test]
fn invalid_client_requests_are_refused() {
    for req in [
        ClientRequest::new("example.com", 80, "/").protocol("bad name"),
        ClientRequest::new("example.com", 80, "/").header("X", "a\r\nInjected: 1"),
        ClientRequest::new("example.com", 80, "no-slash"),
    ] {
        assert!(matches!(
            Connection::client_with_rng(req, Config::default(), rng(0)),
            Err(Error::Misuse(_))
        ));
    }
}

// RFC 6455 §4.2.1 / RFC 9110 §5.1, §7.8: header names and the upgrade
// tokens are case-insensitive; Connection may list other tokens.
#[test]
fn header_names_and_tokens_are_case_insensitive() {
    let request = "GET /chat HTTP/1.1\r\nhost: a\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\
                   sec-websocket-key:  dGhlIHNhbXBsZSBub25jZQ== \r\nsec-websocket-version: 13\r\n\r\n";
    let mut server = Connection::server(Config::default());
    let mut evs = feed(&mut server, request.as_bytes());
    assert!(matches!(evs.as_slice(), [Event::Request(_)]), "{evs:?}");
    let Some(Event::Request(req)) = evs.pop() else {
        unreachable!()
    };
    server.accept(req, Accept::new()).unwrap();
    let out = String::from_utf8(take_output(&mut server)).unwrap();
    assert_eq!(header_value(&out, "Sec-WebSocket-Accept").as_deref(), Some(RFC_ACCEPT));
}

// The client applies the head-size limit to the response too.
#[test]
fn client_refuses_an_oversized_response() {
    let config = Config {
        max_handshake_size: 100,
        ..Config::default()
    };
    let mut client = client(config);
    let request = String::from_utf8(take_output(&mut client)).unwrap();
    let response = response_for(&request, &format!("X-Pad: {}\r\n", "a".repeat(200)));
    assert_eq!(
        feed(&mut client, response.as_bytes()),
        [
            handshake_error(HandshakeError::TooLarge { limit: 100 }),
            closed(1006, "", false)
        ]
    );
    assert_eq!(client.buffered_amount(), 0);
}

/// A server that reported the request, then lost its transport.
fn server_whose_transport_ended() -> (Connection, PendingRequest) {
    let mut server = Connection::server(Config::default());
    let mut evs = feed(&mut server, upgrade_request("").as_bytes());
    let (Some(Event::Request(req)), true) = (evs.pop(), evs.is_empty()) else {
        panic!("{evs:?}")
    };
    server.receive_eof();
    assert_eq!(events(&mut server), [closed(1006, "", false)]);
    (server, req)
}

// RFC 6455 §4.2.2 + the state rule (CONNECTING → OPEN only): once the
// transport ended the request can no longer be accepted.
// Actual: debug builds panic in set_state ("state may only move forward:
// Closed -> Open"); release builds return Ok, queue the 101 and report
// Event::Open after Event::Closed.
#[test]
fn accept_after_the_transport_ended() {
    let (mut server, req) = server_whose_transport_ended();
    assert!(server.accept(req, Accept::new()).is_err());
    assert_eq!(server.state(), ReadyState::Closed);
    assert_eq!(server.buffered_amount(), 0);
    assert_eq!(events(&mut server), []);
}

// Same for reject: nothing may be queued for a transport that is gone.
// Actual: Ok(()) and a 403 head queued.
#[test]
fn reject_after_the_transport_ended() {
    let (mut server, req) = server_whose_transport_ended();
    assert!(server.reject(req, HttpResponse::new(403)).is_err());
    assert_eq!(server.buffered_amount(), 0);
}
