//! The axum extractor (`wsmachine::axum::WebSocketUpgrade`) and the hyper
//! integration (`wsmachine::hyper`) over HTTP/1.1 and HTTP/2 (RFC 8441).
//!
//! HTTP/1.1 through the crate's tokio client and raw requests; HTTP/2 through
//! the `h2` crate as an independent raw client: an extended CONNECT with
//! `:protocol websocket` (RFC 8441 §4) and WebSocket frames built and
//! masked by hand here, over h2c (prior knowledge) and over TLS with ALPN
//! `h2`.

#[path = "../../examples/axum_echo.rs"]
#[allow(dead_code)]
pub(crate) mod example;

#[path = "../../examples/axum_chat.rs"]
#[allow(dead_code)]
mod chat;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wsmachine::axum::{WebSocket, WebSocketUpgrade};
use wsmachine::deflate::DeflateConfig;
use wsmachine::{Bytes, CloseCode, CloseInfo, Event, Message, OriginPolicy};

/// What the probe app reports from the server's side.
#[derive(Debug)]
enum Report {
    Closed(CloseInfo),
    FailedUpgrade(String),
}

#[derive(Clone)]
struct Probe {
    tx: mpsc::UnboundedSender<Report>,
}

/// `/ws`: sends `http2=… deflate=… protocol=…` as seen by the server, then
/// echoes; reports how the socket closed. `/failed`: turns the accepting
/// answer into a 503, so hyper never hands the stream over and
/// `on_failed_upgrade` runs (over HTTP/2 hyper drops the upgrade of a
/// CONNECT answered with a non-2xx at once). `/origin`: same-origin only.
fn probe_app() -> (Router, mpsc::UnboundedReceiver<Report>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/ws", any(probe))
        .route("/origin", any(origin_only))
        .route("/failed", any(failed))
        .route("/small", any(small))
        .with_state(Probe { tx });
    (app, rx)
}

async fn probe(ws: WebSocketUpgrade, State(probe): State<Probe>) -> Response {
    let http2 = ws.is_http2();
    let ws = ws.protocols(["chat.v2", "chat.v1"]).deflate(DeflateConfig::default());
    let protocol = ws.selected_protocol().unwrap_or("none").to_string();
    ws.on_upgrade(move |socket| run_probe(socket, http2, protocol, probe))
}

async fn run_probe(mut socket: WebSocket, http2: bool, protocol: String, probe: Probe) {
    let deflate = socket.connection().deflate().is_some();
    let hello = format!("http2={http2} deflate={deflate} protocol={protocol}");
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    while let Some(event) = socket.next().await {
        match event {
            Ok(Event::Text(t)) => {
                let _ = socket.send(Message::Text(t)).await;
            }
            Ok(Event::Binary(b)) => {
                let _ = socket.send(Message::Binary(b)).await;
            }
            Ok(Event::Closed(info)) => {
                let _ = probe.tx.send(Report::Closed(info));
            }
            _ => {}
        }
    }
}

async fn origin_only(ws: WebSocketUpgrade) -> Response {
    ws.origin(OriginPolicy::same_origin()).on_upgrade(|_| async {})
}

/// Echoes with a 16-byte message limit (`.config`).
async fn small(ws: WebSocketUpgrade, State(probe): State<Probe>) -> Response {
    let config = wsmachine::Config {
        max_message_size: 16,
        ..wsmachine::Config::default()
    };
    ws.config(config)
        .on_upgrade(move |socket| run_probe(socket, true, String::new(), probe))
}

async fn failed(ws: WebSocketUpgrade, State(probe): State<Probe>) -> Response {
    let tx = probe.tx.clone();
    let mut response = ws
        .on_failed_upgrade(move |e: axum::Error| {
            let _ = tx.send(Report::FailedUpgrade(e.to_string()));
        })
        .on_upgrade(|_| async { panic!("no socket: the response was not a 2xx") });
    *response.status_mut() = axum::http::StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// axum::serve on a loopback port (HTTP/1.1 and h2c, with
/// SETTINGS_ENABLE_CONNECT_PROTOCOL).
async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn next_report(rx: &mut mpsc::UnboundedReceiver<Report>) -> Report {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a report within 10 s")
        .expect("the app is alive")
}

// ---- HTTP/1.1 ------------------------------------------------------------------------------

async fn text_of(ws: &mut wsmachine::tokio::WebSocketStream<impl AsyncRead + AsyncWrite + Unpin>) -> String {
    match ws.next().await.unwrap().unwrap() {
        Event::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

// The extractor upgrades an HTTP/1.1 request, chooses the server's first
// subprotocol the client offered (RFC 6455 §4.2.2 item 4), and negotiates
// permessage-deflate: both machines have it (RFC 7692).
#[tokio::test]
async fn http1_upgrade_with_subprotocol_choice_and_deflate_on_both_sides() {
    let (app, mut reports) = probe_app();
    let addr = serve(app).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = wsmachine::ClientRequest::from_url(&format!("ws://{addr}/ws"))
        .unwrap()
        .protocol("chat.v1")
        .protocol("chat.v2")
        .deflate(DeflateConfig::default());
    let (mut ws, response) = wsmachine::tokio::connect_with(tcp, request, wsmachine::Config::default())
        .await
        .unwrap();
    assert_eq!(response.status, 101);
    // The server's order wins: chat.v2 is its first choice.
    assert_eq!(response.protocol.as_deref(), Some("chat.v2"));
    assert!(ws.connection().deflate().is_some(), "client side: deflate agreed");
    assert_eq!(text_of(&mut ws).await, "http2=false deflate=true protocol=chat.v2");
    let long = "compressible ".repeat(200);
    ws.send(Message::Text(long.as_str().into())).await.unwrap();
    assert_eq!(text_of(&mut ws).await, long);
    assert!(ws.connection().deflate_state_allocated().1, "the echo came compressed");
    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    while let Some(e) = ws.next().await {
        e.unwrap();
    }
    let Report::Closed(info) = next_report(&mut reports).await else {
        panic!("expected the close")
    };
    assert!(info.was_clean);
    assert_eq!(info.code, CloseCode::NORMAL);
}

// No subprotocol offered: none chosen (RFC 6455 §4.2.2: the server must not
// invent one); no deflate offered: none in use.
#[tokio::test]
async fn http1_upgrade_without_offers_gets_neither() {
    let (app, _reports) = probe_app();
    let addr = serve(app).await;
    let (mut ws, response) = wsmachine::tokio::connect(&format!("ws://{addr}/ws")).await.unwrap();
    assert_eq!(response.protocol, None);
    assert_eq!(response.headers.get_str("sec-websocket-extensions"), None);
    assert_eq!(text_of(&mut ws).await, "http2=false deflate=false protocol=none");
}

/// Sends a raw request and reads the whole answer (the server closes or
/// the head and a short body have come).
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let read = tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await;
        match read {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            _ => break,
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok());
            // A 101 has no body: what follows is the WebSocket's.
            if text.starts_with("HTTP/1.1 101 ") || length.is_some_and(|l| answer.len() >= end + 4 + l) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&answer).to_ascii_lowercase()
}

fn upgrade_request(method: &str, path: &str, drop: &str, extra: &str) -> String {
    let lines = [
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ];
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines.iter().filter(|l| drop.is_empty() || !l.starts_with(drop)) {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str(extra);
    request.push_str("\r\n");
    request
}

// Rejections (axum's statuses; RFC 6455 §4.4's 426 for a version): a
// method other than GET is 405; no Upgrade, no Connection: upgrade, no key
// are 400; version 8 is 426 naming 13; HTTP/1.0 is 400 (RFC 6455 §4.1); a
// non-token subprotocol offer is 400.
#[tokio::test]
async fn http1_rejections_have_the_right_status() {
    let (app, _reports) = probe_app();
    let addr = serve(app).await;
    let cases: Vec<(String, &str)> = vec![
        (upgrade_request("POST", "/ws", "", "Content-Length: 0\r\n"), "405"),
        (upgrade_request("GET", "/ws", "Upgrade:", ""), "400"),
        (upgrade_request("GET", "/ws", "Connection:", ""), "400"),
        (upgrade_request("GET", "/ws", "Sec-WebSocket-Key:", ""), "400"),
        (upgrade_request("GET", "/ws", "Sec-WebSocket-Version:", ""), "426"),
        (
            upgrade_request("GET", "/ws", "Sec-WebSocket-Version:", "Sec-WebSocket-Version: 8\r\n"),
            "426",
        ),
        (
            upgrade_request("GET", "/ws", "", "Sec-WebSocket-Protocol: a b\r\n"),
            "400",
        ),
        (
            upgrade_request("GET", "/ws", "", "").replace("HTTP/1.1", "HTTP/1.0"),
            "400",
        ),
    ];
    for (request, status) in cases {
        let answer = raw(addr, &request).await;
        let first = answer.lines().next().unwrap_or("");
        assert!(first.contains(&format!(" {status} ")), "{request:?} -> {answer}");
        if status == "426" {
            assert!(answer.contains("\r\nsec-websocket-version: 13\r\n"), "{answer}");
            assert!(
                answer.contains("\r\nupgrade: websocket\r\n"),
                "RFC 9110 §15.5.22: {answer}"
            );
        }
    }
    // The valid request is switched, with RFC 6455 §1.3's accept key.
    let answer = raw(addr, &upgrade_request("GET", "/ws", "", "")).await;
    assert!(answer.starts_with("http/1.1 101 "), "{answer}");
    assert!(
        answer.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{answer}"
    );
}

// RFC 6455 §10.2: with `.origin(OriginPolicy::same_origin())` a page of
// another origin gets 403, its own origin is switched.
#[tokio::test]
async fn origin_policy_refuses_another_site() {
    let (app, _reports) = probe_app();
    let addr = serve(app).await;
    let other = raw(
        addr,
        &upgrade_request("GET", "/origin", "", "Origin: http://evil.example\r\n"),
    )
    .await;
    assert!(other.starts_with("http/1.1 403 "), "{other}");
    let own = raw(
        addr,
        &upgrade_request("GET", "/origin", "", "Origin: http://127.0.0.1\r\n"),
    )
    .await;
    assert!(own.starts_with("http/1.1 101 "), "{own}");
}

// A request hyper gives no upgrade handle for (here: built by hand, as a
// test harness or a non-hyper server would) is 426, as axum's
// ConnectionNotUpgradable.
#[tokio::test]
async fn a_request_without_upgrade_state_is_426() {
    use axum::extract::FromRequestParts;
    let request = axum::http::Request::builder()
        .uri("/ws")
        .header("host", "a")
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let (mut parts, ()) = request.into_parts();
    let rejection = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.unwrap_err();
    assert_eq!(rejection, wsmachine::hyper::Rejection::NotUpgradable);
    let response = rejection.into_response();
    assert_eq!(response.status(), 426);
}

// The example's own app: page, echo, counts.
#[tokio::test]
async fn the_echo_example_serves_page_echo_and_stats() {
    let stats = Arc::new(example::Stats::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(listener, example::app(stats.clone()), stats, None));
    let page = raw(addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(
        page.starts_with("http/1.1 200 ") && page.contains("new websocket("),
        "{page}"
    );
    let (mut ws, _) = wsmachine::tokio::connect(&format!("ws://{addr}/ws")).await.unwrap();
    ws.send(Message::Text("ping me".into())).await.unwrap();
    assert_eq!(text_of(&mut ws).await, "ping me");
    let stats = raw(addr, "GET /stats HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(stats.contains("\"websocket_http1\":1,\"websocket_http2\":0"), "{stats}");
}

// ---- HTTP/2 (RFC 8441) with h2 as a raw client ----------------------------------------------

/// A client frame (RFC 6455 §5.2): FIN, `opcode`, masked with a fixed key.
fn client_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out.into()
}

/// One server frame (unmasked, RFC 6455 §5.1) off the front of `buf`: its
/// first byte and payload.
fn server_frame(buf: &mut BytesMut) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "RFC 6455 §5.1: a server does not mask");
    let (len, header) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize, 10),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < header + len {
        return None;
    }
    let first = buf[0];
    buf.advance(header);
    Some((first, buf.split_to(len).to_vec()))
}

/// A FIN frame's message: inflated when RSV1 says it is compressed (RFC
/// 7692 §7.2.2: append 00 00 ff ff, inflate raw deflate), as it is otherwise.
fn message_of((first, payload): (u8, Vec<u8>)) -> Vec<u8> {
    assert_eq!(first & 0x80, 0x80, "one-frame messages here");
    if first & 0x40 == 0 {
        return payload;
    }
    let mut input = payload;
    input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut inflater = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(64 << 10);
    inflater
        .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    out
}

/// One WebSocket over one HTTP/2 stream.
struct H2Socket {
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    buf: BytesMut,
}

impl H2Socket {
    fn send(&mut self, opcode: u8, payload: &[u8]) {
        self.send.send_data(client_frame(opcode, payload), false).unwrap();
    }

    /// The next frame; `None` when the stream ended (END_STREAM or reset).
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some(frame) = server_frame(&mut self.buf) {
                return Some(frame);
            }
            let data = tokio::time::timeout(Duration::from_secs(10), self.recv.data())
                .await
                .expect("a DATA frame within 10 s");
            match data {
                Some(Ok(data)) => {
                    // HTTP/2 flow control: give the window back (RFC 9113 §5.2).
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.buf.extend_from_slice(&data);
                }
                _ => return None,
            }
        }
    }

    async fn text(&mut self) -> String {
        let (first, payload) = self.frame().await.expect("a frame");
        assert_eq!(first & 0x0f, 0x1, "a text frame");
        String::from_utf8(payload).unwrap()
    }

    /// The closing handshake (RFC 6455 §5.5.1), then the stream's end.
    async fn close(mut self) {
        self.send(0x8, &1000u16.to_be_bytes());
        let (first, payload) = self.frame().await.expect("the close reply");
        assert_eq!((first & 0x0f, &payload[..2]), (0x8, &1000u16.to_be_bytes()[..]));
        // The server ends its side of the stream once closed (END_STREAM).
        assert!(self.frame().await.is_none(), "the stream ends after the close");
        let _ = self.send.send_data(Bytes::new(), true);
    }
}

/// An h2 client connection over `io`, once the server's SETTINGS allowed
/// extended CONNECT (RFC 8441 §3).
async fn h2_client<T>(io: T) -> h2::client::SendRequest<Bytes>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let client = client.ready().await.unwrap();
    for _ in 0..200 {
        if client.is_extended_connect_protocol_enabled() {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server's SETTINGS never enabled extended CONNECT (RFC 8441 §3)");
}

/// Sends an extended CONNECT for `path` (RFC 8441 §4, §5) with `headers`
/// and `protocol` as `:protocol`; the response and the socket.
async fn h2_connect(
    client: &mut h2::client::SendRequest<Bytes>,
    scheme: &str,
    authority: &str,
    path: &str,
    protocol: Option<&str>,
    headers: &[(&str, &str)],
) -> (http::Response<()>, H2Socket) {
    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("{scheme}://{authority}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(()).unwrap();
    if let Some(p) = protocol {
        request.extensions_mut().insert(h2::ext::Protocol::from(p));
    }
    let mut client = client.clone().ready().await.unwrap();
    let (response, send) = client.send_request(request, false).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("a response within 10 s")
        .unwrap();
    let (parts, recv) = response.into_parts();
    let socket = H2Socket {
        send,
        recv,
        buf: BytesMut::new(),
    };
    (http::Response::from_parts(parts, ()), socket)
}

const VERSION: (&str, &str) = ("sec-websocket-version", "13");

/// The probe over HTTP/2 on `client`: 200 without Sec-WebSocket-Accept
/// (RFC 8441 §5), the subprotocol and deflate negotiated, an echo, a clean
/// close that ends the stream.
async fn h2_probe_round_trip(client: &mut h2::client::SendRequest<Bytes>, scheme: &str, authority: &str) {
    let (response, mut ws) = h2_connect(
        client,
        scheme,
        authority,
        "/ws",
        Some("websocket"),
        &[
            VERSION,
            ("sec-websocket-protocol", "chat.v1"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; server_no_context_takeover; client_max_window_bits",
            ),
        ],
    )
    .await;
    assert_eq!(response.status(), 200, "RFC 8441 §5: a 2xx opens the socket");
    assert!(response.headers().get("sec-websocket-accept").is_none(), "RFC 8441 §5");
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
    let extensions = response.headers()["sec-websocket-extensions"].to_str().unwrap();
    assert!(extensions.starts_with("permessage-deflate"), "{extensions}");
    assert!(extensions.contains("server_no_context_takeover"), "{extensions}");
    // The server's machine has deflate on: what it sends is one message each
    // (RSV1 when compressed, RFC 7692 §6), inflated alone (no context takeover).
    assert_eq!(
        message_of(ws.frame().await.unwrap()),
        b"http2=true deflate=true protocol=chat.v1"
    );
    // An uncompressed message from the client is fine under permessage-deflate (RFC 7692 §6).
    let text = "over a stream ".repeat(50);
    ws.send(0x1, text.as_bytes());
    let (first, payload) = ws.frame().await.unwrap();
    assert_eq!(first & 0x40, 0x40, "a long repetitive text comes compressed");
    assert!(payload.len() < text.len() / 4);
    assert_eq!(message_of((first, payload)), text.as_bytes());
    ws.close().await;
}

// RFC 8441 over h2c (HTTP/2 with prior knowledge on cleartext, served by
// axum::serve on the same port as HTTP/1.1).
#[tokio::test]
async fn http2_extended_connect_over_h2c() {
    let (app, mut reports) = probe_app();
    let addr = serve(app).await;
    let mut client = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    let authority = addr.to_string();
    // Without an extension offer the first message is plain: check what the server saw.
    let (response, mut ws) = h2_connect(&mut client, "http", &authority, "/ws", Some("websocket"), &[VERSION]).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("sec-websocket-extensions").is_none());
    assert_eq!(ws.text().await, "http2=true deflate=false protocol=none");
    let big = vec![b'x'; 100_000];
    ws.send(0x2, &big);
    let (first, payload) = ws.frame().await.unwrap();
    assert_eq!(
        (first, payload.len()),
        (0x82, big.len()),
        "the binary echo, through flow control"
    );
    ws.close().await;
    let Report::Closed(info) = next_report(&mut reports).await else {
        panic!("expected the close")
    };
    assert!(info.was_clean);
    h2_probe_round_trip(&mut client, "http", &authority).await;
}

// Several WebSockets multiplexed on one HTTP/2 connection, interleaved.
#[tokio::test]
async fn several_websockets_share_one_http2_connection() {
    let (app, _reports) = probe_app();
    let addr = serve(app).await;
    let mut client = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    let authority = addr.to_string();
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (response, mut ws) =
            h2_connect(&mut client, "http", &authority, "/ws", Some("websocket"), &[VERSION]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(ws.text().await, "http2=true deflate=false protocol=none");
        sockets.push(ws);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        ws.send(0x1, format!("socket {i}").as_bytes());
    }
    for (i, ws) in sockets.iter_mut().enumerate().rev() {
        assert_eq!(ws.text().await, format!("socket {i}"));
    }
    for ws in sockets {
        ws.close().await;
    }
}

// A stream reset by the client (RST_STREAM CANCEL, RFC 9113 §6.4) ends the
// socket without a close frame: the server sees an abnormal closure, 1006
// (RFC 6455 §7.1.5); the connection and its other streams go on.
#[tokio::test]
async fn a_stream_reset_is_an_abnormal_closure_on_the_server() {
    let (app, mut reports) = probe_app();
    let addr = serve(app).await;
    let mut client = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    let authority = addr.to_string();
    let (_, mut doomed) = h2_connect(&mut client, "http", &authority, "/ws", Some("websocket"), &[VERSION]).await;
    assert!(doomed.text().await.starts_with("http2=true"));
    doomed.send.send_reset(h2::Reason::CANCEL);
    let Report::Closed(info) = next_report(&mut reports).await else {
        panic!("expected the close")
    };
    assert_eq!(info.code, CloseCode::ABNORMAL);
    assert!(!info.was_clean);
    // A reset with an error code (which hyper reports as an I/O error, not
    // as the end of the stream) is the same abnormal closure.
    let (_, mut doomed) = h2_connect(&mut client, "http", &authority, "/ws", Some("websocket"), &[VERSION]).await;
    assert!(doomed.text().await.starts_with("http2=true"));
    doomed.send.send_reset(h2::Reason::INTERNAL_ERROR);
    let Report::Closed(info) = next_report(&mut reports).await else {
        panic!("expected the close")
    };
    assert_eq!((info.code, info.was_clean), (CloseCode::ABNORMAL, false));
    // Another stream on the same connection still works.
    let (_, mut ws) = h2_connect(&mut client, "http", &authority, "/ws", Some("websocket"), &[VERSION]).await;
    assert!(ws.text().await.starts_with("http2=true"));
    ws.send(0x1, b"still here");
    assert_eq!(ws.text().await, "still here");
    ws.close().await;
}

// RFC 8441 §4–5 rejections over HTTP/2: no :protocol (a plain CONNECT) or
// another one is 400, version 8 is 426 naming 13; RFC 6455 §4.4.
#[tokio::test]
async fn http2_rejections_have_the_right_status() {
    let (app, _reports) = probe_app();
    let addr = serve(app).await;
    let mut client = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    let authority = addr.to_string();
    let (response, _) = h2_connect(
        &mut client,
        "http",
        &authority,
        "/ws",
        Some("not-websocket"),
        &[VERSION],
    )
    .await;
    assert_eq!(response.status(), 400);
    let (response, _) = h2_connect(
        &mut client,
        "http",
        &authority,
        "/ws",
        Some("websocket"),
        &[("sec-websocket-version", "8")],
    )
    .await;
    assert_eq!(response.status(), 426);
    assert_eq!(response.headers()["sec-websocket-version"], "13");
    // A GET over HTTP/2 is not a WebSocket request: 405 (axum's MethodNotConnect).
    let request = http::Request::builder()
        .uri(format!("http://{authority}/ws"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let mut c = client.clone().ready().await.unwrap();
    let (response, _) = c.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 405);
}

// on_failed_upgrade runs when hyper never hands the stream over (here the
// accepting answer was turned into a 503, so hyper drops the upgrade).
#[tokio::test]
async fn on_failed_upgrade_is_called() {
    let (app, mut reports) = probe_app();
    let addr = serve(app).await;
    let mut client = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    let (response, _) = h2_connect(
        &mut client,
        "http",
        &addr.to_string(),
        "/failed",
        Some("websocket"),
        &[VERSION],
    )
    .await;
    assert_eq!(response.status(), 503);
    let Report::FailedUpgrade(why) = next_report(&mut reports).await else {
        panic!("expected the failed upgrade")
    };
    assert!(!why.is_empty());
}

// Over HTTP/2 the `:authority` stands for Host (RFC 9113 §8.3.1), so the
// same-origin policy works there too (RFC 6455 §10.2).
#[tokio::test]
async fn origin_policy_over_http2_compares_with_the_authority() {
    let (app, _reports) = probe_app();
    let addr = serve(app).await;
    let mut client = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    let authority = addr.to_string();
    let evil = [VERSION, ("origin", "http://evil.example")];
    let (response, _) = h2_connect(&mut client, "http", &authority, "/origin", Some("websocket"), &evil).await;
    assert_eq!(response.status(), 403);
    let own_origin = format!("http://{authority}");
    let own = [VERSION, ("origin", own_origin.as_str())];
    let (response, _) = h2_connect(&mut client, "http", &authority, "/origin", Some("websocket"), &own).await;
    assert_eq!(response.status(), 200);
}

// The extractor's `.config(..)` reaches the machine: over HTTP/2 a message
// above the 16-byte limit is closed with 1009 (RFC 6455 §7.4.1).
#[tokio::test]
async fn the_config_limits_apply_over_http2() {
    let (app, mut reports) = probe_app();
    let addr = serve(app).await;
    let mut client = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    let (response, mut ws) = h2_connect(
        &mut client,
        "http",
        &addr.to_string(),
        "/small",
        Some("websocket"),
        &[VERSION],
    )
    .await;
    assert_eq!(response.status(), 200);
    let _hello = ws.frame().await.unwrap();
    ws.send(0x1, b"short");
    assert_eq!(ws.text().await, "short");
    ws.send(0x1, &[b'y'; 100]);
    let (first, payload) = ws.frame().await.expect("a close frame");
    assert_eq!(first & 0x0f, 0x8);
    assert_eq!(&payload[..2], &1009u16.to_be_bytes());
    ws.send(0x8, &1009u16.to_be_bytes());
    let Report::Closed(info) = next_report(&mut reports).await else {
        panic!("expected the close")
    };
    assert_eq!(info.code, CloseCode::MESSAGE_TOO_BIG);
}

// The chat example (axum's, ported): names, then broadcasts to everyone.
#[tokio::test]
async fn the_chat_example_broadcasts() {
    let addr = serve(chat::app()).await;
    let url = format!("ws://{addr}/websocket");
    let (mut ann, _) = wsmachine::tokio::connect(&url).await.unwrap();
    ann.send(Message::from("ann")).await.unwrap();
    assert_eq!(text_of(&mut ann).await, "ann joined.");
    let (mut bob, _) = wsmachine::tokio::connect(&url).await.unwrap();
    bob.send(Message::from("bob")).await.unwrap();
    assert_eq!(text_of(&mut ann).await, "bob joined.");
    assert_eq!(text_of(&mut bob).await, "bob joined.");
    bob.send(Message::from("hi all")).await.unwrap();
    assert_eq!(text_of(&mut ann).await, "bob: hi all");
    assert_eq!(text_of(&mut bob).await, "bob: hi all");
    // A name in use is refused.
    let (mut again, _) = wsmachine::tokio::connect(&url).await.unwrap();
    again.send(Message::from("ann")).await.unwrap();
    assert_eq!(text_of(&mut again).await, "Username already taken.");
}

// The hyper integration without axum: hyper's HTTP/2 server with
// enable_connect_protocol() (RFC 8441 §3) and `wsmachine::hyper::upgrade`.
#[tokio::test]
async fn plain_hyper_http2_server_upgrades_extended_connect() {
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(|mut request: hyper::Request<hyper::body::Incoming>| async move {
            let answer = match wsmachine::hyper::upgrade(&mut request, wsmachine::Accept::new(), Default::default()) {
                Ok((response, socket)) => {
                    assert_eq!(socket.transport(), wsmachine::hyper::Transport::Http2);
                    tokio::spawn(async move {
                        let mut ws = socket.await.unwrap();
                        while let Some(Ok(event)) = ws.next().await {
                            if let Event::Text(t) = event {
                                ws.send(Message::Text(t)).await.unwrap();
                            }
                        }
                    });
                    response
                }
                Err(rejection) => rejection.response(),
            };
            Ok::<hyper::Response<Full<Bytes>>, std::convert::Infallible>(answer)
        });
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .enable_connect_protocol()
            .serve_connection(TokioIo::new(tcp), service)
            .await
            .unwrap();
    });
    let mut client = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    let (response, mut ws) = h2_connect(
        &mut client,
        "http",
        &addr.to_string(),
        "/",
        Some("websocket"),
        &[VERSION],
    )
    .await;
    assert_eq!(response.status(), 200);
    ws.send(0x1, b"hyper alone");
    assert_eq!(ws.text().await, "hyper alone");
    ws.close().await;
}

// RFC 8441 over TLS: ALPN h2 (RFC 9113 §3.2), through the example's own
// server loop (auto builder, enable_connect_protocol) and a test CA.
#[cfg(feature = "rustls")]
#[tokio::test]
async fn http2_extended_connect_over_tls_with_alpn_h2() {
    use wsmachine::tls::rustls;
    let pki = crate::tls::Pki::new();
    let (cert, key) = pki.server_files("h2", &["localhost", "127.0.0.1"]);
    let tls = example::tls_config(cert.to_str().unwrap(), key.to_str().unwrap()).unwrap();
    let (app, _reports) = probe_app();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(example::Stats::default());
    tokio::spawn(example::serve(listener, app, stats, Some(tls)));

    let mut config = (**pki.connector().config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut client = h2_client(stream).await;
    let (response, mut ws) = h2_connect(&mut client, "https", "localhost", "/ws", Some("websocket"), &[VERSION]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(ws.text().await, "http2=true deflate=false protocol=none");
    ws.send(0x1, b"over TLS");
    assert_eq!(ws.text().await, "over TLS");
    ws.close().await;
    h2_probe_round_trip(&mut client, "https", "localhost").await;
}
