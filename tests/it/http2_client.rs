//! WebSocket over HTTP/2 (RFC 8441), the client (`wsmachine::http2`, feature
//! `http2`) against HTTP/2 servers written here on the `h2` crate's server
//! and on hyper's: h2c and h2 over TLS, several WebSockets on one
//! connection, permessage-deflate, the fallbacks to HTTP/1.1, a stream
//! reset, flow control with a large message and with a server that does
//! not read, a refused CONNECT and the handshake timeout.
//!
//! The servers here answer the extended CONNECT themselves; the crate's own
//! server half of RFC 8441 is tested elsewhere.

use futures_util::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use wsmachine::driver::{ConnectOptions, Error};
use wsmachine::handshake::{Header, Headers};
use wsmachine::http2::h2::{self, Reason};
use wsmachine::http2::{Fallback, Http2Connection, Http2Stream};
use wsmachine::tokio::WebSocketStream;
use wsmachine::{
    Accept, ClientRequest, CloseCode, CloseInfo, Config, Connection, Event, Failure, HandshakeError, Message, Upgrade,
};

/// What the server saw of one extended CONNECT.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    protocol: Option<String>,
    scheme: Option<String>,
    authority: Option<String>,
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// How the test server treats an extended CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// 200, then echo every message (subprotocol "chat" when offered).
    Echo,
    /// 200 with permessage-deflate negotiated, then echo.
    EchoDeflate,
    /// 200, then reset the stream after the first message.
    ResetAfterFirst,
    /// 200, then never read.
    NeverRead,
    /// Answer 403.
    Refuse,
    /// Never answer.
    Silent,
    /// 200 with a 64 KiB header field.
    BigHeader,
}

/// The server's record: TCP connections accepted, CONNECTs seen.
#[derive(Default)]
struct Record {
    connections: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
}

/// Request fields as HTTP/1.1-style lines, with the upgrade fields RFC
/// 8441 §5 leaves out added, so that `Upgrade` (the crate's HTTP/1.1
/// helper) negotiates the subprotocol and permessage-deflate for this test
/// server.
fn as_upgrade_headers(seen: &Seen) -> Headers {
    let mut lines = vec![
        ("host", "localhost".to_string()),
        ("upgrade", "websocket".to_string()),
        ("connection", "Upgrade".to_string()),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==".to_string()),
    ];
    for (n, v) in &seen.headers {
        if n.starts_with("sec-websocket-") {
            lines.push((n.as_str(), v.clone()));
        }
    }
    Headers(
        lines
            .into_iter()
            .map(|(n, v)| Header {
                name: n.to_string(),
                value: v.into_bytes(),
            })
            .collect(),
    )
}

/// Echoes until the stream ends.
async fn echo<T: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<T>) {
    while let Some(event) = ws.next().await {
        match event {
            Ok(Event::Text(t)) => {
                if ws.send(Message::Text(t)).await.is_err() {
                    return;
                }
            }
            Ok(Event::Binary(b)) => {
                if ws.send(Message::Binary(b)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => {}
        }
    }
}

/// Serves one extended CONNECT stream.
async fn serve_stream(
    request: hyper::http::request::Parts,
    recv: h2::RecvStream,
    mut respond: h2::server::SendResponse<wsmachine::Bytes>,
    mode: Mode,
    record: Arc<Record>,
) {
    let seen = Seen {
        method: request.method.to_string(),
        protocol: request
            .extensions
            .get::<h2::ext::Protocol>()
            .map(|p| p.as_str().to_string()),
        scheme: request.uri.scheme_str().map(str::to_string),
        authority: request.uri.authority().map(|a| a.to_string()),
        path: request.uri.path_and_query().map_or("/".into(), |p| p.to_string()),
        headers: request
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
    };
    record.requests.lock().unwrap().push(seen.clone());
    let mut accept = Accept::new();
    if seen
        .header("sec-websocket-protocol")
        .is_some_and(|p| p.contains("chat"))
    {
        accept = accept.protocol("chat");
    }
    if mode == Mode::EchoDeflate {
        accept = accept.deflate(wsmachine::deflate::DeflateConfig::default());
    }
    let upgrade = Upgrade::new("GET", &as_upgrade_headers(&seen), accept).unwrap();
    let status = match mode {
        Mode::Refuse => 403,
        Mode::Silent => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        }
        _ => 200,
    };
    let mut answer = hyper::Response::builder().status(status);
    if mode == Mode::BigHeader {
        answer = answer.header("x-big", "b".repeat(64 << 10));
    }
    if status == 200 {
        // RFC 8441 §5: no Sec-WebSocket-Accept; the chosen subprotocol and extensions.
        for (n, v) in upgrade.response_headers() {
            let n = n.to_ascii_lowercase();
            if n == "sec-websocket-protocol" || n == "sec-websocket-extensions" {
                answer = answer.header(n, v);
            }
        }
    }
    let end = status != 200;
    let Ok(send) = respond.send_response(answer.body(()).unwrap(), end) else {
        return;
    };
    if end {
        return;
    }
    let stream = Http2Stream::new(send, recv);
    match mode {
        Mode::NeverRead => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        }
        Mode::ResetAfterFirst => {
            let mut ws = WebSocketStream::from_connection(Connection::from_upgrade(upgrade, Config::default()), stream);
            let _ = ws.next().await;
            ws.get_mut().reset(Reason::INTERNAL_ERROR);
            // Keep the connection up: the reset, not a lost connection, is what the client sees.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        _ => {
            echo(WebSocketStream::from_connection(
                Connection::from_upgrade(upgrade, Config::default()),
                stream,
            ))
            .await
        }
    }
}

/// An HTTP/2 server on `io` (h2 crate), with or without
/// SETTINGS_ENABLE_CONNECT_PROTOCOL.
async fn serve_h2<T: AsyncRead + AsyncWrite + Unpin>(io: T, enable_connect: bool, mode: Mode, record: Arc<Record>) {
    let mut builder = h2::server::Builder::new();
    if enable_connect {
        builder.enable_connect_protocol();
    }
    let Ok(mut conn) = builder.handshake::<_, wsmachine::Bytes>(io).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = conn.accept().await {
        let is_websocket = request.method() == hyper::Method::CONNECT
            && request
                .extensions()
                .get::<h2::ext::Protocol>()
                .is_some_and(|p| p.as_str() == "websocket");
        if !is_websocket {
            let _ = respond.send_response(hyper::Response::builder().status(400).body(()).unwrap(), true);
            continue;
        }
        let (parts, body) = request.into_parts();
        tokio::spawn(serve_stream(parts, body, respond, mode, record.clone()));
    }
}

/// A server on loopback: HTTP/2 (prior knowledge) for connections that
/// start with the HTTP/2 preface, the crate's HTTP/1.1 server for others.
async fn start(enable_connect: bool, mode: Mode) -> (u16, Arc<Record>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = Arc::new(Record::default());
    let r = record.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            r.connections.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 3];
                let _ = tokio::time::timeout(Duration::from_secs(5), tcp.peek(&mut first)).await;
                if &first == b"PRI" {
                    serve_h2(tcp, enable_connect, mode, r).await;
                } else if let Ok(ws) = wsmachine::tokio::accept(tcp).await {
                    echo(ws).await;
                }
            });
        }
    });
    (port, record)
}

/// An HTTP/1.1-only server (the crate's), counting connections.
async fn start_http1_only() -> (u16, Arc<Record>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = Arc::new(Record::default());
    let r = record.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            r.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(ws) = wsmachine::tokio::accept(tcp).await {
                    echo(ws).await;
                }
            });
        }
    });
    (port, record)
}

/// Reads to the end; returns the `Closed` info and any error before it.
async fn finish<T: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<T>) -> (CloseInfo, Vec<String>) {
    let mut closed = None;
    let mut errors = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap() {
        match event {
            Ok(Event::Closed(info)) => closed = Some(info),
            Ok(_) => {}
            Err(e) => errors.push(format!("{e:?}")),
        }
    }
    (closed.expect("Event::Closed"), errors)
}

async fn round_trip<T: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<T>) {
    ws.send(Message::Text("hello over h2".into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Event::Text("hello over h2".into()));
    ws.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Event::Binary(vec![1, 2, 3].into()));
    ws.ping(b"p").await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Event::Pong("p".into()));
}

async fn close_cleanly<T: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<T>) {
    ws.close(CloseCode::NORMAL, "bye").await.unwrap();
    let (closed, errors) = finish(ws).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(closed.was_clean, "{closed:?}");
    assert_eq!(closed.code, CloseCode::NORMAL);
}

// RFC 8441 §4, §5 over h2c (prior knowledge): the CONNECT carries :protocol websocket,
// :scheme http, :authority, :path, sec-websocket-version 13 and no Sec-WebSocket-Key; 200
// opens the WebSocket; text, binary, ping and the closing handshake go over the stream.
#[tokio::test]
async fn h2c_extended_connect_echo_and_close() {
    let (port, record) = start(true, Mode::Echo).await;
    let request = ClientRequest::from_url(&format!("ws://127.0.0.1:{port}/chat?x=1"))
        .unwrap()
        .protocol("chat")
        .header("Origin", "http://127.0.0.1");
    let (mut ws, response) = wsmachine::http2::connect_with_options(request, &ConnectOptions::default())
        .await
        .unwrap();
    assert!(ws.get_ref().is_http2(), "{:?}", ws.get_ref());
    assert_eq!(ws.get_ref().fallback(), None);
    assert_eq!(response.status, 200);
    assert_eq!(response.protocol.as_deref(), Some("chat"));
    let seen = record.requests.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "CONNECT");
    assert_eq!(seen.protocol.as_deref(), Some("websocket"));
    assert_eq!(seen.scheme.as_deref(), Some("http"));
    assert_eq!(seen.authority, Some(format!("127.0.0.1:{port}")));
    assert_eq!(seen.path, "/chat?x=1");
    assert_eq!(seen.header("sec-websocket-version"), Some("13"));
    assert_eq!(seen.header("sec-websocket-protocol"), Some("chat"));
    assert_eq!(seen.header("origin"), Some("http://127.0.0.1"));
    assert_eq!(seen.header("sec-websocket-key"), None);
    assert_eq!(seen.header("upgrade"), None);
    round_trip(&mut ws).await;
    close_cleanly(&mut ws).await;
    assert_eq!(record.connections.load(Ordering::SeqCst), 1);
}

// RFC 8441 against hyper's HTTP/2 server (`enable_connect_protocol`, `hyper::upgrade::on`).
#[tokio::test]
async fn h2c_against_hyper() {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let protocols = Arc::new(Mutex::new(Vec::new()));
    let p = protocols.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let p = p.clone();
        let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let p = p.clone();
            async move {
                let protocol = req
                    .extensions()
                    .get::<hyper::ext::Protocol>()
                    .map(|p| p.as_str().to_string());
                p.lock().unwrap().push(protocol);
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let upgraded = upgrade.await.unwrap();
                    echo(WebSocketStream::from_connection(
                        Connection::open_server(Config::default()),
                        TokioIo::new(upgraded),
                    ))
                    .await;
                });
                Ok::<_, std::convert::Infallible>(
                    hyper::Response::new(http_body_util::Empty::<wsmachine::Bytes>::new()),
                )
            }
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .enable_connect_protocol()
            .serve_connection(TokioIo::new(tcp), service)
            .await;
    });
    let (mut ws, response) = wsmachine::http2::connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert!(ws.get_ref().is_http2());
    assert_eq!(response.status, 200);
    assert_eq!(*protocols.lock().unwrap(), vec![Some("websocket".to_string())]);
    round_trip(&mut ws).await;
    let big = vec![9u8; 1 << 20];
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Event::Binary(big.into()));
    close_cleanly(&mut ws).await;
}

/// A TLS listener presenting the test CA's certificate with `alpn`; h2
/// (with extended CONNECT) when ALPN chose it, the crate's HTTP/1.1
/// server otherwise.
#[cfg(feature = "rustls")]
async fn start_tls(alpn: &[&[u8]]) -> (u16, Arc<Record>, crate::tls::Pki) {
    start_tls_with(alpn, true).await
}

/// [`start_tls`], its HTTP/2 with or without SETTINGS_ENABLE_CONNECT_PROTOCOL.
#[cfg(feature = "rustls")]
async fn start_tls_with(alpn: &[&[u8]], enable_connect: bool) -> (u16, Arc<Record>, crate::tls::Pki) {
    let pki = crate::tls::Pki::new();
    let mut config = (**pki.acceptor().config()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let record = Arc::new(Record::default());
    let r = record.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            r.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, r) = (acceptor.clone(), r.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    serve_h2(tls, enable_connect, Mode::Echo, r).await;
                } else if let Ok(ws) = wsmachine::tokio::accept(tls).await {
                    echo(ws).await;
                }
            });
        }
    });
    (port, record, pki)
}

// wss:// over h2: ALPN chose h2 (RFC 9113 §3.2), :scheme https (RFC 8441 §5).
#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_over_h2_with_alpn() {
    let (port, record, pki) = start_tls(&[b"h2", b"http/1.1"]).await;
    let mut options = ConnectOptions::default();
    options.tls = Some(pki.connector());
    let request = ClientRequest::from_url(&format!("wss://localhost:{port}/secure")).unwrap();
    let (mut ws, response) = wsmachine::http2::connect_with_options(request, &options).await.unwrap();
    assert!(ws.get_ref().is_http2(), "{:?}", ws.get_ref());
    assert_eq!(response.status, 200);
    let seen = record.requests.lock().unwrap()[0].clone();
    assert_eq!(seen.scheme.as_deref(), Some("https"));
    assert_eq!(seen.authority, Some(format!("localhost:{port}")));
    round_trip(&mut ws).await;
    close_cleanly(&mut ws).await;
}

// A server whose ALPN picks http/1.1: the upgrade runs on the same TLS connection.
#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_falls_back_to_http1_on_the_same_connection_when_alpn_picks_http1() {
    let (port, record, pki) = start_tls(&[b"http/1.1"]).await;
    let mut options = ConnectOptions::default();
    options.tls = Some(pki.connector());
    let request = ClientRequest::from_url(&format!("wss://localhost:{port}/")).unwrap();
    let (mut ws, response) = wsmachine::http2::connect_with_options(request.clone(), &options)
        .await
        .unwrap();
    assert_eq!(ws.get_ref().fallback(), Some(Fallback::NoH2Alpn));
    assert_eq!(response.status, 101);
    round_trip(&mut ws).await;
    close_cleanly(&mut ws).await;
    assert_eq!(record.connections.load(Ordering::SeqCst), 1, "one TLS connection");
    // Http2Connection does not fall back: it says why.
    match Http2Connection::connect(&request, &options).await {
        Err(Error::Http2Unsupported(Fallback::NoH2Alpn)) => {}
        other => panic!("{other:?}"),
    }
}

// wss:// to an h2 server without SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3): HTTP/1.1 on a
// new TLS connection, whose ALPN offers http/1.1 only (even when the connector offers h2).
#[cfg(feature = "rustls")]
#[tokio::test]
async fn wss_falls_back_to_http1_on_a_new_connection_without_enable_connect_protocol() {
    let (port, record, pki) = start_tls_with(&[b"h2", b"http/1.1"], false).await;
    let mut options = ConnectOptions::default();
    // A connector that offers h2 itself: the fallback connection must not.
    let mut config = (**pki.connector().config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    options.tls = Some(wsmachine::tls::TlsConnector::from_config(Arc::new(config)));
    let request = ClientRequest::from_url(&format!("wss://localhost:{port}/")).unwrap();
    let (mut ws, response) = wsmachine::http2::connect_with_options(request, &options).await.unwrap();
    assert_eq!(ws.get_ref().fallback(), Some(Fallback::NoExtendedConnect));
    assert_eq!(response.status, 101);
    round_trip(&mut ws).await;
    close_cleanly(&mut ws).await;
    assert_eq!(record.connections.load(Ordering::SeqCst), 2, "h2, then HTTP/1.1");
    assert!(record.requests.lock().unwrap().is_empty(), "no CONNECT was sent");
}

/// An HTTP `CONNECT` proxy (RFC 9110 §9.3.6) on loopback; records the targets asked for.
async fn connect_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let targets = Arc::new(Mutex::new(Vec::new()));
    let t = targets.clone();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let t = t.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && down.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                    .unwrap()
                    .to_string();
                t.lock().unwrap().push(target.clone());
                let mut up = tokio::net::TcpStream::connect(target).await.unwrap();
                down.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    (port, targets)
}

// Through an HTTP CONNECT proxy: the tunnel first, then HTTP/2 (h2c) inside it.
#[tokio::test]
async fn h2c_through_a_connect_proxy() {
    let (port, record) = start(true, Mode::Echo).await;
    let (proxy_port, targets) = connect_proxy().await;
    let mut options = ConnectOptions::default();
    options.proxy = Some(wsmachine::proxy::Proxy::parse(&format!("http://127.0.0.1:{proxy_port}")).unwrap());
    let request = ClientRequest::from_url(&format!("ws://127.0.0.1:{port}/via")).unwrap();
    let (mut ws, _) = wsmachine::http2::connect_with_options(request, &options).await.unwrap();
    assert!(ws.get_ref().is_http2());
    round_trip(&mut ws).await;
    close_cleanly(&mut ws).await;
    assert_eq!(*targets.lock().unwrap(), vec![format!("127.0.0.1:{port}")]);
    assert_eq!(record.requests.lock().unwrap()[0].path, "/via");
}

// RFC 8441 §3: an HTTP/2 server without SETTINGS_ENABLE_CONNECT_PROTOCOL cannot take the
// CONNECT; the client falls back to HTTP/1.1 on a new connection.
#[tokio::test]
async fn falls_back_to_http1_when_settings_lack_enable_connect_protocol() {
    let (port, record) = start(false, Mode::Echo).await;
    let url = format!("ws://127.0.0.1:{port}/");
    let (mut ws, response) = wsmachine::http2::connect(&url).await.unwrap();
    assert_eq!(ws.get_ref().fallback(), Some(Fallback::NoExtendedConnect));
    assert_eq!(response.status, 101);
    round_trip(&mut ws).await;
    close_cleanly(&mut ws).await;
    assert_eq!(record.connections.load(Ordering::SeqCst), 2, "h2, then HTTP/1.1");
    assert!(record.requests.lock().unwrap().is_empty(), "no CONNECT was sent");
    let request = ClientRequest::from_url(&url).unwrap();
    match Http2Connection::connect(&request, &ConnectOptions::default()).await {
        Err(Error::Http2Unsupported(Fallback::NoExtendedConnect)) => {}
        other => panic!("{other:?}"),
    }
}

// ws:// to a server that speaks only HTTP/1.1: the h2c preface fails, HTTP/1.1 on a new connection.
#[tokio::test]
async fn falls_back_to_http1_when_the_server_does_not_speak_h2c() {
    let (port, record) = start_http1_only().await;
    let (mut ws, response) = wsmachine::http2::connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(ws.get_ref().fallback(), Some(Fallback::NoH2c));
    assert_eq!(response.status, 101);
    round_trip(&mut ws).await;
    close_cleanly(&mut ws).await;
    assert_eq!(record.connections.load(Ordering::SeqCst), 2);
}

// Several WebSockets on one HTTP/2 connection, used at once from their own tasks, messages
// interleaved on the connection; each gets its own echoes back, in order.
#[tokio::test]
async fn several_websockets_multiplexed_on_one_connection() {
    let (port, record) = start(true, Mode::Echo).await;
    let request = ClientRequest::from_url(&format!("ws://127.0.0.1:{port}/")).unwrap();
    let h2 = Http2Connection::connect(&request, &ConnectOptions::default())
        .await
        .unwrap();
    assert!(h2.extended_connect_enabled());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (h2, request) = (h2.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let (ws, _) = h2.websocket(request).await.unwrap();
            let id = ws.get_ref().stream_id();
            let (mut tx, mut rx) = ws.split();
            let writer = tokio::spawn(async move {
                for n in 0..100 {
                    tx.send(Message::Text(format!("{i}:{n}").into())).await.unwrap();
                    if n % 10 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                tx
            });
            for n in 0..100 {
                match rx.next().await.unwrap().unwrap() {
                    Event::Text(t) => assert_eq!(&*t, format!("{i}:{n}")),
                    other => panic!("{other:?}"),
                }
            }
            let tx = writer.await.unwrap();
            let mut ws = rx.reunite(tx).unwrap();
            close_cleanly(&mut ws).await;
            id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "eight streams: {ids:?}");
    assert_eq!(record.connections.load(Ordering::SeqCst), 1, "one TCP connection");
    assert_eq!(record.requests.lock().unwrap().len(), 8);
}

// RFC 7692 over RFC 8441: the offer goes in sec-websocket-extensions, the server's answer is
// checked as on HTTP/1.1, both ends compress.
#[tokio::test]
async fn permessage_deflate_negotiated_over_h2() {
    let (port, record) = start(true, Mode::EchoDeflate).await;
    let request = ClientRequest::from_url(&format!("ws://127.0.0.1:{port}/"))
        .unwrap()
        .deflate(wsmachine::deflate::DeflateConfig::default());
    let (mut ws, response) = wsmachine::http2::connect_with_options(request, &ConnectOptions::default())
        .await
        .unwrap();
    assert!(ws.get_ref().is_http2());
    let offered = record.requests.lock().unwrap()[0]
        .header("sec-websocket-extensions")
        .map(str::to_string);
    assert!(
        offered.as_deref().is_some_and(|o| o.starts_with("permessage-deflate")),
        "{offered:?}"
    );
    let answered = response.headers.get("sec-websocket-extensions").map(|v| v.to_vec());
    assert!(
        answered
            .as_deref()
            .is_some_and(|a| a.starts_with(b"permessage-deflate")),
        "{answered:?}"
    );
    assert!(ws.connection().deflate().is_some());
    let text = "compressible ".repeat(10_000);
    ws.send(Message::Text(text.clone().into())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Event::Text(text.into()));
    round_trip(&mut ws).await;
    close_cleanly(&mut ws).await;
}

// A stream reset by the server (RST_STREAM, RFC 9113 §6.4) is a transport failure: an
// Error::Io (ConnectionReset), then Closed with 1006 (RFC 6455 §7.1.5), not clean.
#[tokio::test]
async fn a_stream_reset_is_an_abnormal_closure() {
    let (port, _record) = start(true, Mode::ResetAfterFirst).await;
    let (mut ws, _) = wsmachine::http2::connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert!(ws.get_ref().is_http2());
    ws.send(Message::Text("first".into())).await.unwrap();
    let (closed, errors) = finish(&mut ws).await;
    assert!(!closed.was_clean);
    assert_eq!(closed.code, CloseCode::ABNORMAL);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("ConnectionReset") && errors[0].contains("INTERNAL_ERROR"),
        "{errors:?}"
    );
    // Nothing more can be sent.
    assert!(ws.send(Message::Text("after".into())).await.is_err());
}

// The HTTP/2 connection lost under an open WebSocket (the server's TCP connection dropped):
// an Error::Io, then Closed with 1006 (RFC 6455 §7.1.5).
#[tokio::test]
async fn a_lost_connection_is_an_abnormal_closure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let server = tokio::spawn(serve_h2(tcp, true, Mode::Echo, Arc::new(Record::default())));
        let _ = opened_rx.await;
        // Drops the connection, its socket and every stream on it.
        server.abort();
    });
    let (mut ws, _) = wsmachine::http2::connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    round_trip(&mut ws).await;
    opened_tx.send(()).unwrap();
    let (closed, errors) = finish(&mut ws).await;
    assert!(!closed.was_clean);
    assert_eq!(closed.code, CloseCode::ABNORMAL);
    assert_eq!(errors.len(), 1, "{errors:?}");
}

// Flow control: a 4 MiB message each way through HTTP/2's default 64 KiB windows (RFC 9113
// §6.9.2): the receiver gives the window back as it reads, the sender waits for capacity.
#[tokio::test]
async fn a_large_message_passes_default_windows() {
    let (port, _record) = start(true, Mode::Echo).await;
    let (mut ws, _) = wsmachine::http2::connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    ws.send(Message::Binary(big.clone().into())).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.unwrap();
    assert_eq!(back.unwrap().unwrap(), Event::Binary(big.into()));
    close_cleanly(&mut ws).await;
}

// A server that never reads: HTTP/2 grants no more than its windows, so the rest waits in the
// machine and the sink's backpressure (the high-water mark) holds.
#[tokio::test]
async fn backpressure_holds_when_the_server_does_not_read() {
    let (port, _record) = start(true, Mode::NeverRead).await;
    let (mut ws, _) = wsmachine::http2::connect(&format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    let chunk = vec![0u8; 256 << 10];
    let (mut sent, mut stalled) = (0, false);
    // 16 chunks (4 MiB): without backpressure every send completes at once.
    for _ in 0..16 {
        match tokio::time::timeout(
            Duration::from_millis(300),
            ws.send(Message::Binary(chunk.clone().into())),
        )
        .await
        {
            Ok(done) => {
                done.unwrap();
                sent += 1;
            }
            Err(_) => {
                stalled = true;
                break;
            }
        }
    }
    assert!(stalled, "the sink never waited ({sent} chunks of 256 KiB taken)");
    // At most the stream window (64 KiB) left the machine per chunk, plus the high-water mark.
    assert!(sent <= 3, "{sent} chunks of 256 KiB taken");
    assert!(
        ws.connection().buffered_amount() > ws.high_water_mark(),
        "buffered {}",
        ws.connection().buffered_amount()
    );
}

// RFC 8441 §5: a status other than 2xx fails the handshake, with the response.
#[tokio::test]
async fn a_refused_connect_is_a_handshake_failure() {
    let (port, _record) = start(true, Mode::Refuse).await;
    match wsmachine::http2::connect(&format!("ws://127.0.0.1:{port}/")).await {
        Err(Error::Failed(Failure::Handshake {
            error: HandshakeError::ConnectStatus(403),
            response: Some(response),
        })) => assert_eq!(response.status, 403),
        other => panic!("{other:?}"),
    }
}

// The answer's header block is bounded by Config::max_handshake_size, as an HTTP/1.1 head is
// (SETTINGS_MAX_HEADER_LIST_SIZE, RFC 9113 §6.5.2): 64 KiB of header against an 8 KiB limit fails.
#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let (port, _record) = start(true, Mode::BigHeader).await;
    let request = ClientRequest::from_url(&format!("ws://127.0.0.1:{port}/")).unwrap();
    let mut options = ConnectOptions::default();
    options.config.max_handshake_size = 8 << 10;
    let failed = wsmachine::http2::connect_with_options(request.clone(), &options).await;
    match failed {
        // h2 names the limit it enforced (a connection error, ENHANCE_YOUR_CALM).
        Err(Error::Io(e)) => assert!(e.to_string().contains("header_list"), "{e}"),
        other => panic!("{:?}", other.map(|(ws, r)| (ws.get_ref().is_http2(), r.status))),
    }
    // Within a limit of 128 KiB it passes.
    options.config.max_handshake_size = 128 << 10;
    let (ws, response) = wsmachine::http2::connect_with_options(request, &options).await.unwrap();
    assert!(ws.get_ref().is_http2());
    assert_eq!(response.headers.get("x-big").map(<[u8]>::len), Some(64 << 10));
}

// Config::handshake_timeout bounds the CONNECT exchange.
#[tokio::test]
async fn the_handshake_timeout_bounds_the_connect() {
    let (port, _record) = start(true, Mode::Silent).await;
    let mut options = ConnectOptions::default();
    options.config.handshake_timeout = Duration::from_millis(300);
    let request = ClientRequest::from_url(&format!("ws://127.0.0.1:{port}/")).unwrap();
    let started = std::time::Instant::now();
    match wsmachine::http2::connect_with_options(request, &options).await {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

// The request is refused before anything is sent when HTTP/2 forbids one of its fields
// (RFC 9113 §8.2.2).
#[tokio::test]
async fn a_connection_specific_header_is_refused() {
    let (port, record) = start(true, Mode::Echo).await;
    let request = ClientRequest::from_url(&format!("ws://127.0.0.1:{port}/"))
        .unwrap()
        .header("Keep-Alive", "5");
    let h2 = Http2Connection::connect(&request, &ConnectOptions::default())
        .await
        .unwrap();
    match h2.websocket(request).await {
        Err(Error::Refused(wsmachine::Error::Misuse(wsmachine::Misuse::ReservedHeader { name }))) => {
            assert_eq!(name, "Keep-Alive")
        }
        other => panic!("{other:?}"),
    }
    assert!(record.requests.lock().unwrap().is_empty());
}

/// The Python with the `h2` library that scripts/interop_h2.sh installs.
fn interop_python() -> String {
    std::env::var("WSMACHINE_INTEROP_H2_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .expect("WSMACHINE_INTEROP_H2_PYTHON names a Python with h2: run through scripts/interop_h2.sh")
}

fn interop_helper() -> String {
    format!("{}/scripts/interop_h2.py", env!("CARGO_MANIFEST_DIR"))
}

// Our client against Python's h2 serving extended CONNECT with hand-built frames: two
// WebSockets on one connection, text, binary across many windows (1 MiB), a ping, the close.
#[tokio::test]
#[ignore = "needs Python h2: scripts/interop_h2.sh runs it"]
async fn python_h2_server_with_our_client() {
    use std::io::BufRead;
    let py = interop_python();
    let mut child = std::process::Command::new(&py)
        .arg(interop_helper())
        .arg("server")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the python server");
    let stdout = child.stdout.take().unwrap();
    let port: u16 = std::io::BufReader::new(stdout)
        .lines()
        .next()
        .unwrap()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let request = ClientRequest::from_url(&format!("ws://127.0.0.1:{port}/py"))
        .unwrap()
        .protocol("chat");
    let h2 = Http2Connection::connect(&request, &ConnectOptions::default())
        .await
        .unwrap();
    let (mut a, response) = h2.websocket(request.clone()).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.protocol.as_deref(), Some("chat"));
    let (mut b, _) = h2.websocket(request).await.unwrap();
    assert_ne!(a.get_ref().stream_id(), b.get_ref().stream_id());
    round_trip(&mut a).await;
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    b.send(Message::Binary(big.clone().into())).await.unwrap();
    a.send(Message::Text("binary please".into())).await.unwrap();
    assert_eq!(
        a.next().await.unwrap().unwrap(),
        Event::Binary(vec![0, 1, 2, 3, 4].into())
    );
    assert_eq!(b.next().await.unwrap().unwrap(), Event::Binary(big.into()));
    close_cleanly(&mut a).await;
    close_cleanly(&mut b).await;
    drop((a, b, h2));
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the python server failed: {status}");
}

// The reverse: Python's h2 as the client (masked frames built by hand) against an HTTP/2
// server here whose WebSocket runs over `Http2Stream` in the server role.
#[tokio::test]
#[ignore = "needs Python h2: scripts/interop_h2.sh runs it"]
async fn python_h2_client_with_our_stream() {
    let py = interop_python();
    let (port, record) = start(true, Mode::Echo).await;
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&py)
            .arg(interop_helper())
            .arg("client")
            .arg(port.to_string())
            .arg("/from-python")
            .output()
            .expect("run the python client")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the python client failed: {stderr}");
    assert!(stderr.contains("client OK"), "{stderr}");
    let seen = record.requests.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.protocol.as_deref(), seen.path.as_str()),
        (Some("websocket"), "/from-python")
    );
}
