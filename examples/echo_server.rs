//! A blocking echo server: one thread per connection, `std::net` only.
//!
//! ```text
//! cargo run --example echo_server [ADDR]     # default 127.0.0.1:9999
//! cargo run --features rustls --example echo_server -- --tls CERT.pem KEY.pem [ADDR]
//! ```
//!
//! Open http://127.0.0.1:9999 in a browser: the page connects back over
//! WebSocket, sends `hello`, and shows every message and the close.
//!
//! With `--tls CERT.pem KEY.pem` (feature `rustls`) the page is served over
//! https and the socket is `wss://` (the page picks `wss:` when it was
//! loaded over https): `CERT.pem` holds the certificate chain (the server's
//! first), `KEY.pem` its private key. For a self-signed one, see the
//! README's TLS section.
//!
//! permessage-deflate (RFC 7692) is accepted when the client offers it
//! (every browser does); replies of 128 bytes or more go out compressed.
//!
//! Upgrades are accepted from the server's own page only (RFC 6455 §10.2:
//! `OriginPolicy::same_origin`, a foreign `Origin` gets 403), and from
//! clients that send no `Origin` at all, such as the Autobahn Testsuite's
//! `wstest` (`scripts/autobahn.sh`) and `cargo run --example client`.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use wsmachine::blocking::{self, Decision, Transport, WebSocket};
use wsmachine::{Accept, Config, Event, HttpResponse, Message, OriginPolicy, Request};

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>wsmachine echo</title></head>
<body>
<h1>wsmachine echo</h1>
<form id="f"><input id="text" autocomplete="off" placeholder="type a message"><button>send</button></form>
<pre id="log"></pre>
<script>
const log = (line) => { document.getElementById('log').textContent += line + '\n'; };
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/');
ws.onopen = () => { log('open'); ws.send('hello'); };
ws.onmessage = (e) => log('< ' + e.data);
ws.onerror = () => log('error');
ws.onclose = (e) => log('closed: ' + e.code + ' ' + e.reason);
document.getElementById('f').onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById('text');
  ws.send(input.value);
  log('> ' + input.value);
  input.value = '';
};
</script>
</body></html>
"#;

/// The TLS configuration, with the `rustls` feature.
#[cfg(feature = "rustls")]
type Tls = wsmachine::tls::TlsAcceptor;
#[cfg(not(feature = "rustls"))]
type Tls = std::convert::Infallible;

/// Upgrade requests from an allowed origin are accepted; a plain `GET /` gets the page.
fn decide<'a>(peer: &'a str, origins: &'a OriginPolicy) -> impl FnMut(&Request) -> Decision + 'a {
    move |req| {
        if req.is_upgrade() {
            let accept = Accept::new();
            #[cfg(feature = "deflate")]
            let accept = accept.deflate(wsmachine::deflate::DeflateConfig::default());
            let decision = Decision::accept_if_allowed(origins, req, accept);
            if matches!(decision, Decision::Respond(_)) {
                eprintln!("{peer}: refused Origin {} (403)", req.origin().unwrap_or("(none)"));
            }
            decision
        } else if req.path == "/" || req.path.starts_with("/?") {
            Decision::Respond(
                HttpResponse::new(200)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .body(PAGE),
            )
        } else {
            Decision::Respond(
                HttpResponse::new(404)
                    .header("Content-Type", "text/plain")
                    .body("not found\n"),
            )
        }
    }
}

fn serve(stream: TcpStream, origins: &OriginPolicy, tls: Option<&Tls>) -> Result<(), blocking::Error> {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    // A frame's header and a large payload are written separately: without
    // this, Nagle's algorithm holds the payload back for the peer's delayed ACK.
    let _ = stream.set_nodelay(true);
    match tls {
        #[cfg(feature = "rustls")]
        Some(tls) => echo(
            blocking::accept_tls(stream, tls, Config::default(), decide(&peer, origins)),
            &peer,
        ),
        #[cfg(not(feature = "rustls"))]
        Some(never) => match *never {},
        None => echo(
            blocking::accept_with(stream, Config::default(), decide(&peer, origins)),
            &peer,
        ),
    }
}

/// Echoes every message until the close.
fn echo<S: Transport>(accepted: Result<WebSocket<S>, blocking::Error>, peer: &str) -> Result<(), blocking::Error> {
    let mut ws = match accepted {
        Err(blocking::Error::NotUpgraded) => return Ok(()),
        other => other?,
    };
    loop {
        match ws.read() {
            Ok(Event::Text(text)) => ws.send(Message::Text(text))?,
            Ok(Event::Binary(data)) => ws.send(data)?,
            Ok(Event::Closed(_)) | Err(blocking::Error::Closed) => return Ok(()),
            Ok(_) => {}
            Err(e) => eprintln!("{peer}: {e}"),
        }
    }
}

/// `[--tls CERT.pem KEY.pem] [ADDR]`: the TLS configuration, if asked for, and the address.
fn parse_args() -> (Option<Tls>, String) {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut tls = None;
    if let Some(at) = args.iter().position(|a| a == "--tls") {
        let files: Vec<String> = args.drain(at..(at + 3).min(args.len())).skip(1).collect();
        let [cert, key] = files.as_slice() else {
            eprintln!("usage: echo_server [--tls CERT.pem KEY.pem] [ADDR]");
            std::process::exit(2);
        };
        tls = load_tls(cert, key);
    }
    let addr = args.into_iter().next().unwrap_or_else(|| "127.0.0.1:9999".to_string());
    (tls, addr)
}

#[cfg(feature = "rustls")]
fn load_tls(cert: &str, key: &str) -> Option<Tls> {
    match wsmachine::tls::TlsAcceptor::from_pem_files(cert, key) {
        Ok(tls) => Some(tls),
        Err(e) => {
            eprintln!("--tls: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(not(feature = "rustls"))]
fn load_tls(_: &str, _: &str) -> Option<Tls> {
    eprintln!(
        "--tls needs the rustls feature: cargo run --features rustls --example echo_server -- --tls CERT.pem KEY.pem"
    );
    std::process::exit(2);
}

fn main() {
    let (tls, addr) = parse_args();
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    match tls {
        Some(_) => println!("echo server on https://{addr} (WebSocket on wss://{addr}/)"),
        None => println!("echo server on http://{addr} (WebSocket on ws://{addr}/)"),
    }
    let origins = Arc::new(OriginPolicy::same_origin());
    let tls = Arc::new(tls);
    for stream in listener.incoming().flatten() {
        let origins = Arc::clone(&origins);
        let tls = Arc::clone(&tls);
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &origins, tls.as_ref().as_ref()) {
                eprintln!("{e}");
            }
        });
    }
}
