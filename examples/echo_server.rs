//! A blocking echo server: one thread per connection, `std::net` only.
//!
//! ```text
//! cargo run --example echo_server [ADDR]     # default 127.0.0.1:9999
//! ```
//!
//! Open http://127.0.0.1:9999 in a browser: the page connects back over
//! WebSocket, sends `hello`, and shows every message and the close.
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
use wsmachine::blocking::{self, Decision};
use wsmachine::{Accept, Config, Event, HttpResponse, Message, OriginPolicy};

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>wsmachine echo</title></head>
<body>
<h1>wsmachine echo</h1>
<form id="f"><input id="text" autocomplete="off" placeholder="type a message"><button>send</button></form>
<pre id="log"></pre>
<script>
const log = (line) => { document.getElementById('log').textContent += line + '\n'; };
const ws = new WebSocket('ws://' + location.host + '/');
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

fn serve(stream: TcpStream, origins: &OriginPolicy) -> Result<(), blocking::Error> {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    // A frame's header and a large payload are written separately: without
    // this, Nagle's algorithm holds the payload back for the peer's delayed ACK.
    let _ = stream.set_nodelay(true);
    // Upgrade requests from an allowed origin are accepted; a plain `GET /` gets the page.
    let mut ws = match blocking::accept_with(stream, Config::default(), |req| {
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
    }) {
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

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9999".to_string());
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    println!("echo server on http://{addr} (WebSocket on ws://{addr}/)");
    let origins = Arc::new(OriginPolicy::same_origin());
    for stream in listener.incoming().flatten() {
        let origins = Arc::clone(&origins);
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &origins) {
                eprintln!("{e}");
            }
        });
    }
}
