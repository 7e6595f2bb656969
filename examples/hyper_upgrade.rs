//! A WebSocket echo endpoint inside a hyper 1.x server.
//!
//! hyper parses the HTTP request; [`Upgrade::new`] checks it with the
//! crate's own handshake rules (RFC 6455 §4.2.1), negotiates the subprotocol
//! (`echo`, when offered) and permessage-deflate (RFC 7692), and gives the
//! header lines of the 101; once hyper hands over the upgraded connection,
//! [`Connection::from_upgrade`] starts the machine OPEN with what was
//! negotiated, and it runs through the tokio driver. Other requests get a
//! page.
//!
//! ```text
//! cargo run --example hyper_upgrade --features tokio [-- 127.0.0.1:9002]
//! ```
//!
//! then connect to `ws://127.0.0.1:9002/` (for example
//! `cargo run --example client -- ws://127.0.0.1:9002/`).

use futures_util::StreamExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, SEC_WEBSOCKET_VERSION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use wsmachine::deflate::DeflateConfig;
use wsmachine::handshake::{HandshakeError, Header, Headers};
use wsmachine::tokio::{Error, WebSocketStream};
use wsmachine::{Accept, Bytes, Config, Connection, Event, Message, OriginPolicy, Upgrade, UpgradeError};

/// Serves HTTP/1.1 on every connection `listener` accepts, with upgrades.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let http = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(handle))
                .with_upgrades();
            if let Err(e) = http.await {
                eprintln!("http: {e}");
            }
        });
    }
}

/// Answers one request: 101 and a WebSocket for a valid upgrade, an error
/// status for a broken one, a page for anything else.
async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers = Headers(
        request
            .headers()
            .iter()
            .map(|(name, value)| Header {
                name: name.as_str().into(),
                value: value.as_bytes().to_vec(),
            })
            .collect(),
    );
    // The subprotocol "echo" when the client offers it, and permessage-deflate.
    let mut accept = Accept::new().deflate(DeflateConfig::default());
    if headers.has_token("sec-websocket-protocol", "echo") {
        accept = accept.protocol("echo");
    }
    // RFC 6455 §10.2: only pages of this server's own origin may open a socket.
    if let Err(e) = OriginPolicy::same_origin().check_headers(&headers) {
        return Ok(Response::builder()
            .status(e.status())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(format!("{e}\n"))))
            .expect("a valid response"));
    }
    let upgrade = match Upgrade::new(request.method().as_str(), &headers, accept) {
        // RFC 6455 §4.1: an upgrade needs HTTP/1.1 or later.
        Ok(_) if request.version() < Version::HTTP_11 => return Ok(answer(&HandshakeError::HttpVersion)),
        Ok(upgrade) => upgrade,
        Err(UpgradeError::Request(HandshakeError::UpgradeNotWebSocket)) => {
            let page = "a WebSocket echo server: connect with ws://\n";
            return Ok(Response::builder()
                .header(CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Full::new(Bytes::from(page)))
                .expect("a valid response"));
        }
        Err(UpgradeError::Request(e)) => return Ok(answer(&e)),
        Err(e) => {
            eprintln!("upgrade: {e}");
            return Ok(Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(Full::default())
                .expect("a valid response"));
        }
    };
    let mut response = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in upgrade.response_headers() {
        response = response.header(name, value);
    }
    // hyper hands over the connection once the 101 is written.
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgraded.await {
            Ok(io) => {
                let conn = Connection::from_upgrade(upgrade, Config::default());
                if let Err(e) = echo(conn, TokioIo::new(io)).await {
                    eprintln!("websocket: {e}");
                }
            }
            Err(e) => eprintln!("upgrade: {e}"),
        }
    });
    Ok(response.body(Full::default()).expect("a valid response"))
}

/// The answer to a request that broke a handshake rule.
fn answer(error: &HandshakeError) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(error.status())
        .header(CONTENT_TYPE, "text/plain; charset=utf-8");
    if *error == HandshakeError::UnsupportedVersion {
        // RFC 6455 §4.4: name the version this server speaks.
        response = response.header(SEC_WEBSOCKET_VERSION, "13");
    }
    response
        .body(Full::new(Bytes::from(format!("{error}\n"))))
        .expect("a valid response")
}

/// The WebSocket part: the machine, started OPEN, echoing every message.
async fn echo<T: AsyncRead + AsyncWrite + Unpin>(conn: Connection, io: T) -> Result<(), Error> {
    let mut ws = WebSocketStream::from_connection(conn, io);
    while let Some(event) = ws.next().await {
        match event? {
            Event::Text(text) => ws.send(Message::Text(text)).await?,
            Event::Binary(data) => ws.send(Message::Binary(data)).await?,
            _ => {}
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("hyper with WebSocket upgrades on http://{addr} (ws://{addr}/)");
    serve(listener).await
}
