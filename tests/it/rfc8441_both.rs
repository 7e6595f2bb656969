//! RFC 8441 with both ends ours: the HTTP/2 client (`wsmachine::http2`)
//! against the axum extractor served by `examples/axum_echo.rs`'s server
//! loop, over h2c with prior knowledge and over TLS with ALPN `h2`, several
//! WebSockets multiplexed on one HTTP/2 connection, permessage-deflate and
//! a subprotocol negotiated on each (RFC 8441 §4–5, RFC 7692, RFC 6455 §4).

use crate::axum_ws::example;
use axum::Router;
use axum::response::Response;
use axum::routing::any;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::net::TcpListener;
use wsmachine::axum::{WebSocket, WebSocketUpgrade};
use wsmachine::deflate::DeflateConfig;
use wsmachine::driver::ConnectOptions;
use wsmachine::http2::Http2Connection;
use wsmachine::{ClientRequest, CloseCode, Event, Message};

/// Says how the server saw the socket (`http2=… deflate=… protocol=…`),
/// then echoes.
async fn probe(ws: WebSocketUpgrade) -> Response {
    let http2 = ws.is_http2();
    let ws = ws.protocols(["chat.v2"]).deflate(DeflateConfig::default());
    let protocol = ws.selected_protocol().unwrap_or("none").to_string();
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        let deflate = socket.connection().deflate().is_some();
        let hello = format!("http2={http2} deflate={deflate} protocol={protocol}");
        if socket.send(Message::Text(hello.into())).await.is_err() {
            return;
        }
        while let Some(Ok(event)) = socket.next().await {
            match event {
                Event::Text(t) => {
                    let _ = socket.send(Message::Text(t)).await;
                }
                Event::Binary(b) => {
                    let _ = socket.send(Message::Binary(b)).await;
                }
                _ => {}
            }
        }
    })
}

/// The example's server loop (HTTP/1.1 and HTTP/2 on one port, extended
/// CONNECT enabled) on a loopback port, with TLS when given.
async fn serve(tls: Option<example::TlsConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route("/ws", any(probe));
    tokio::spawn(example::serve(listener, app, Arc::new(example::Stats::default()), tls));
    port
}

fn request(url: &str) -> ClientRequest {
    ClientRequest::from_url(url)
        .unwrap()
        .protocol("chat.v2")
        .deflate(DeflateConfig::default())
}

/// Opens `n` WebSockets on one HTTP/2 connection and runs them at once:
/// each sees the server's account of it, then has its messages (text and a
/// 300 KiB binary, more than one HTTP/2 window) echoed, then closes cleanly.
async fn several_on_one_connection(url: &str, options: &ConnectOptions, n: usize) {
    let h2 = Http2Connection::connect(&request(url), options).await.unwrap();
    assert!(
        h2.extended_connect_enabled(),
        "the server sends SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3)"
    );
    let mut tasks = Vec::new();
    for i in 0..n {
        let h2 = h2.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut ws, response) = h2.websocket(request(&url)).await.unwrap();
            assert_eq!(response.status, 200, "RFC 8441 §5: 200, not 101");
            assert!(ws.connection().deflate().is_some(), "permessage-deflate agreed");
            match ws.next().await.unwrap().unwrap() {
                Event::Text(t) => assert_eq!(&*t, "http2=true deflate=true protocol=chat.v2"),
                other => panic!("socket {i}: {other:?}"),
            }
            let text = format!("socket {i}");
            let big: Vec<u8> = (0..300 << 10).map(|j: usize| (j * 7 + i) as u8).collect();
            ws.send(Message::Text(text.clone().into())).await.unwrap();
            ws.send(Message::Binary(big.clone().into())).await.unwrap();
            match ws.next().await.unwrap().unwrap() {
                Event::Text(t) => assert_eq!(&*t, text),
                other => panic!("socket {i}: {other:?}"),
            }
            match ws.next().await.unwrap().unwrap() {
                Event::Binary(b) => assert!(b[..] == big[..], "socket {i}: the binary echo differs"),
                other => panic!("socket {i}: {other:?}"),
            }
            ws.close(CloseCode::NORMAL, "").await.unwrap();
            loop {
                match ws.next().await {
                    Some(Ok(Event::Closed(info))) => {
                        assert!(info.was_clean, "socket {i}: {info:?}");
                        break;
                    }
                    Some(Ok(_)) => {}
                    other => panic!("socket {i}: {other:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

// h2c with prior knowledge (RFC 9113 §3.3) on a cleartext port.
#[tokio::test]
async fn our_client_and_our_server_over_h2c() {
    let port = serve(None).await;
    several_on_one_connection(&format!("ws://127.0.0.1:{port}/ws"), &ConnectOptions::default(), 4).await;
}

// TLS with ALPN h2 (RFC 9113 §3.2): :scheme https.
#[cfg(feature = "rustls")]
#[tokio::test]
async fn our_client_and_our_server_over_h2_and_tls() {
    let pki = crate::tls::Pki::new();
    let (cert, key) = pki.server_files("both", &["localhost", "127.0.0.1"]);
    let tls = example::tls_config(cert.to_str().unwrap(), key.to_str().unwrap()).unwrap();
    let port = serve(Some(tls)).await;
    let mut options = ConnectOptions::default();
    options.tls = Some(pki.connector());
    several_on_one_connection(&format!("wss://localhost:{port}/ws"), &options, 3).await;
}

// The falling-back `connect` picks HTTP/2 against our server, and the plain
// HTTP/1.1 client still gets the same route (the extractor takes both).
#[tokio::test]
async fn connect_uses_http2_with_our_server_and_http1_still_works() {
    let port = serve(None).await;
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (mut ws, _) = wsmachine::http2::connect(&url).await.unwrap();
    assert!(ws.get_ref().is_http2(), "{:?}", ws.get_ref().fallback());
    assert!(matches!(ws.next().await, Some(Ok(Event::Text(t))) if t.starts_with("http2=true")));
    let (mut ws1, _) = wsmachine::tokio::connect(&url).await.unwrap();
    assert!(matches!(ws1.next().await, Some(Ok(Event::Text(t))) if t.starts_with("http2=false")));
}
