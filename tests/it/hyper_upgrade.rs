//! The hyper upgrade example (`examples/hyper_upgrade.rs`) against the
//! crate's tokio client over loopback TCP.

#[path = "../../examples/hyper_upgrade.rs"]
#[allow(dead_code)]
mod example;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsmachine::{CloseCode, Event, Message};

async fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(listener));
    addr
}

#[tokio::test]
async fn the_tokio_client_talks_to_a_hyper_upgrade() {
    let addr = start().await;
    let (mut ws, response) = wsmachine::tokio::connect(&format!("ws://{addr}/echo")).await.unwrap();
    assert_eq!(response.status, 101);

    ws.send(Message::Text("hello through hyper".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Event::Text("hello through hyper".into())
    );
    let big = vec![7u8; 300_000];
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Event::Binary(big.into()));
    ws.ping(b"?").await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Event::Pong("?".into()));

    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    let mut closed = None;
    while let Some(event) = ws.next().await {
        if let Event::Closed(info) = event.unwrap() {
            closed = Some(info);
        }
    }
    let closed = closed.expect("Event::Closed");
    assert!(closed.was_clean);
    assert_eq!(closed.code, CloseCode::NORMAL);
}

/// Sends a raw request head and reads the answer's head.
async fn head_of(addr: std::net::SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).to_ascii_lowercase()
}

#[tokio::test]
async fn hyper_answers_broken_upgrades_and_plain_requests() {
    let addr = start().await;
    let upgrade = |version: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
        )
    };
    // RFC 6455 §4.4: another version gets 426 naming 13.
    let head = head_of(addr, &upgrade("8")).await;
    assert!(head.starts_with("http/1.1 426 "), "{head}");
    assert!(head.contains("sec-websocket-version: 13"), "{head}");
    // A valid one is switched, with the accept key of RFC 6455 §1.3.
    let head = head_of(addr, &upgrade("13")).await;
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    // A plain request gets the page.
    let head = head_of(addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(head.starts_with("http/1.1 200 "), "{head}");
}

// `Upgrade` carries the negotiated subprotocol and permessage-deflate
// (RFC 7692) from hyper's handshake into the machine it opens: the client
// offers both; the server's machine inflates what the client compresses and
// compresses its echo (the client's decompressor is then in use).
#[tokio::test]
async fn the_upgrade_helper_carries_subprotocol_and_deflate() {
    use wsmachine::deflate::DeflateConfig;
    let addr = start().await;
    let url = format!("ws://{addr}/echo");
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = wsmachine::ClientRequest::from_url(&url)
        .unwrap()
        .protocol("echo")
        .deflate(DeflateConfig::default());
    let (mut ws, response) = wsmachine::tokio::connect_with(tcp, request, wsmachine::Config::default())
        .await
        .unwrap();
    assert_eq!(response.protocol.as_deref(), Some("echo"));
    assert_eq!(
        response.headers.get_str("sec-websocket-extensions"),
        Some("permessage-deflate")
    );
    assert!(ws.connection().deflate().is_some());
    let text = "compress me ".repeat(100);
    ws.send(Message::Text(text.as_str().into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Event::Text(text.as_str().into()));
    assert!(
        ws.connection().deflate_state_allocated().1,
        "the echo came compressed: the client inflated it"
    );
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    while let Some(event) = ws.next().await {
        event.unwrap();
    }
}
