//! A blocking echo server: one thread per connection, `std::net` only.
//!
//! ```text
//! cargo run --example echo_server [ADDR]     # default 127.0.0.1:9999
//! ```
//!
//! Open http://127.0.0.1:9999 in a browser: the page connects back over
//! WebSocket, sends `hello`, and shows every message and the close.

mod common;

use common::Driver;
use std::net::{TcpListener, TcpStream};
use wsmachine::{Accept, Config, Connection, Event, HttpResponse, Message};

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

fn serve(stream: TcpStream) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut ws = Driver::new(Connection::server(Config::default()), stream);
    while let Some(event) = ws.next_event() {
        let result = match event {
            Event::Request(_) => ws.conn.accept(Accept::new()),
            Event::HttpRequest(req) => {
                let page = if req.path == "/" || req.path.starts_with("/?") {
                    HttpResponse::new(200)
                        .header("Content-Type", "text/html; charset=utf-8")
                        .body(PAGE)
                } else {
                    HttpResponse::new(404)
                        .header("Content-Type", "text/plain")
                        .body("not found\n")
                };
                ws.conn.reject(page)
            }
            Event::Text(text) => ws.conn.send(Message::Text(text)),
            Event::Binary(data) => ws.conn.send(Message::Binary(data)),
            Event::Error(e) => {
                eprintln!("{peer}: {e}");
                Ok(())
            }
            _ => Ok(()),
        };
        // Sending can fail only once the connection is closing; nothing to do then.
        let _ = result;
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
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
}
