//! An axum echo server on [`wsmachine::axum::WebSocketUpgrade`]: the same
//! `/ws` route answers HTTP/1.1 upgrades and HTTP/2 extended CONNECT (RFC
//! 8441) on one port.
//!
//! ```text
//! cargo run --features axum --example axum_echo -- [ADDR]                    # default 127.0.0.1:9001
//! cargo run --features axum,rustls --example axum_echo -- [ADDR] --tls CERT.pem KEY.pem
//! ```
//!
//! - `GET /`: a page that opens `ws(s)://host/ws`, sends what is typed and
//!   shows the echo.
//! - `/ws` (routed with `any`): echoes every text and binary message, with
//!   permessage-deflate when offered and the subprotocol `echo` when
//!   offered. Each socket is logged with the HTTP it came over:
//!   `websocket over HTTP/2 (:protocol websocket)` or `websocket over HTTP/1.1 (Upgrade)`.
//! - `GET /stats`: `{"websocket_http1":N,"websocket_http2":N,"connections_h2_alpn":N,...}`,
//!   what a test can read.
//!
//! Connections are served by hyper-util's auto builder: HTTP/1.1, or HTTP/2
//! when the connection starts with the HTTP/2 preface (h2c with prior
//! knowledge on cleartext; on TLS, the ALPN `h2` this server offers before
//! `http/1.1`), with `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3) so
//! that HTTP/2 clients may open WebSockets.

use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use wsmachine::axum::{WebSocket, WebSocketUpgrade};
use wsmachine::deflate::DeflateConfig;
use wsmachine::{Event, Message};

/// Counts for `GET /stats`.
#[derive(Default)]
pub struct Stats {
    websocket_http1: AtomicU64,
    websocket_http2: AtomicU64,
    messages: AtomicU64,
    connections: AtomicU64,
    connections_h2_alpn: AtomicU64,
}

impl Stats {
    fn json(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{{\"websocket_http1\":{},\"websocket_http2\":{},\"messages\":{},\"connections\":{},\"connections_h2_alpn\":{}}}",
            get(&self.websocket_http1),
            get(&self.websocket_http2),
            get(&self.messages),
            get(&self.connections),
            get(&self.connections_h2_alpn)
        )
    }
}

/// The app: the page, the echo socket, the counts.
pub fn app(stats: Arc<Stats>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/ws", any(ws_handler))
        .route(
            "/stats",
            get(
                |State(stats): State<Arc<Stats>>| async move { ([("content-type", "application/json")], stats.json()) },
            ),
        )
        .with_state(stats)
}

async fn ws_handler(ws: WebSocketUpgrade, State(stats): State<Arc<Stats>>) -> Response {
    let http2 = ws.is_http2();
    if http2 {
        stats.websocket_http2.fetch_add(1, Ordering::Relaxed);
        println!("websocket over HTTP/2 (:protocol websocket)");
    } else {
        stats.websocket_http1.fetch_add(1, Ordering::Relaxed);
        println!("websocket over HTTP/1.1 (Upgrade)");
    }
    ws.protocols(["echo"])
        .deflate(DeflateConfig::default())
        .config(wsmachine::Config {
            // Keepalive: a ping after 30 s of silence, the connection dropped if no pong in 10 s.
            ping_interval: Some(std::time::Duration::from_secs(30)),
            ping_timeout: Some(std::time::Duration::from_secs(10)),
            ..wsmachine::Config::default()
        })
        .on_failed_upgrade(|e| eprintln!("upgrade failed: {e}"))
        .on_upgrade(move |socket| echo(socket, stats))
        .into_response()
}

async fn echo(mut socket: WebSocket, stats: Arc<Stats>) {
    while let Some(event) = socket.next().await {
        let reply = match event {
            Ok(Event::Text(text)) => Message::Text(text),
            Ok(Event::Binary(data)) => Message::Binary(data),
            Ok(Event::Closed(info)) => {
                println!("websocket closed: {} {:?}", u16::from(info.code), info.reason);
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                println!("websocket: {e}");
                continue;
            }
        };
        stats.messages.fetch_add(1, Ordering::Relaxed);
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

/// Serves one connection (plain or TLS) with HTTP/1.1 and HTTP/2.
async fn serve_connection<I>(io: I, app: Router, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // RFC 8441 §3: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, so HTTP/2 clients may send :protocol.
    builder.http2().enable_connect_protocol();
    let service = TowerToHyperService::new(app);
    if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(io), service).await {
        eprintln!("{peer}: {e}");
    }
}

/// Accepts connections on `listener` forever; with `tls`, a TLS handshake first.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stats: Arc<Stats>,
    tls: Option<TlsConfig>,
) -> std::io::Result<()> {
    loop {
        let (tcp, peer) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let app = app.clone();
        let stats = stats.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, app, peer).await,
                Some(tls) => {
                    #[cfg(feature = "rustls")]
                    match tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await {
                        Ok(stream) => {
                            let alpn = stream
                                .get_ref()
                                .1
                                .alpn_protocol()
                                .map(|p| String::from_utf8_lossy(p).into_owned());
                            if alpn.as_deref() == Some("h2") {
                                stats.connections_h2_alpn.fetch_add(1, Ordering::Relaxed);
                            }
                            println!("{peer}: TLS, ALPN {}", alpn.as_deref().unwrap_or("none"));
                            serve_connection(stream, app, peer).await
                        }
                        Err(e) => eprintln!("{peer}: TLS handshake: {e}"),
                    }
                    #[cfg(not(feature = "rustls"))]
                    {
                        let _ = (tls, stats);
                    }
                }
            }
        });
    }
}

/// The TLS server config (feature `rustls`).
#[cfg(feature = "rustls")]
pub type TlsConfig = Arc<wsmachine::tls::rustls::ServerConfig>;
/// Without feature `rustls`, no TLS (a type with no value).
#[cfg(not(feature = "rustls"))]
#[derive(Clone)]
pub enum TlsConfig {}

/// A TLS config from PEM files, offering ALPN `h2` then `http/1.1`.
#[cfg(feature = "rustls")]
pub fn tls_config(cert: &str, key: &str) -> Result<TlsConfig, Box<dyn std::error::Error>> {
    let mut config = wsmachine::tls::server_config(
        wsmachine::tls::load_certs(cert)?,
        wsmachine::tls::load_private_key(key)?,
    )?;
    // RFC 7540 §3.3 / RFC 9113 §3.2: "h2" over TLS, then HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), wsmachine::tls::ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut addr = String::from("127.0.0.1:9001");
    let mut tls_files = None;
    while let Some(arg) = args.next() {
        if arg == "--tls" {
            let (Some(cert), Some(key)) = (args.next(), args.next()) else {
                return Err("--tls needs CERT.pem KEY.pem".into());
            };
            tls_files = Some((cert, key));
        } else {
            addr = arg;
        }
    }
    #[cfg(feature = "rustls")]
    let tls = match &tls_files {
        Some((cert, key)) => Some(tls_config(cert, key)?),
        None => None,
    };
    #[cfg(not(feature = "rustls"))]
    let tls: Option<TlsConfig> = match tls_files {
        Some(_) => return Err("--tls needs the rustls feature: --features axum,rustls".into()),
        None => None,
    };
    let listener = TcpListener::bind(&addr).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "axum echo on {scheme}://{} (WebSocket at /ws, counts at /stats)",
        listener.local_addr()?
    );
    let stats = Arc::new(Stats::default());
    serve(listener, app(stats.clone()), stats, tls).await?;
    Ok(())
}

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>wsmachine axum echo</title></head>
<body>
<h1>wsmachine axum echo</h1>
<p>state: <span id="state">CONNECTING</span></p>
<form id="form"><input id="input" autocomplete="off" value="hello"><button>send</button></form>
<pre id="log"></pre>
<script>
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
const log = (line) => { document.getElementById('log').textContent += line + '\n'; };
const ws = new WebSocket(url, ['echo']);
window.ws = ws;
window.echoes = [];
const names = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
const show = () => { document.getElementById('state').textContent = names[ws.readyState]; };
ws.onopen = () => { show(); log('open ' + url + ' protocol=' + ws.protocol + ' extensions=' + ws.extensions); };
ws.onmessage = (e) => { window.echoes.push(e.data); log('echo: ' + e.data); };
ws.onclose = (e) => { show(); log('closed ' + e.code); };
document.getElementById('form').onsubmit = (e) => {
  e.preventDefault();
  ws.send(document.getElementById('input').value);
};
</script>
</body></html>
"#;
