//! A chat room for browser tabs: one thread, non-blocking sockets, the
//! page and the WebSocket on one port.
//!
//! ```text
//! cargo run --example chat [ADDR] [ORIGIN...]    # default 127.0.0.1:9999
//! cargo run --features rustls --example chat -- --tls CERT.pem KEY.pem [ADDR] [ORIGIN...]
//! ```
//!
//! Open http://127.0.0.1:9999 in several tabs (https://… with `--tls`:
//! the page is served over TLS and connects with `wss://`; `CERT.pem` holds
//! the certificate chain, `KEY.pem` its key). Each tab gets a name
//! (`guest-1`, `guest-2`, …) announced to the others; the page shows the
//! socket's `readyState` (CONNECTING, OPEN, CLOSING, CLOSED) and reconnects
//! with backoff when the server goes away and comes back.
//!
//! Only the chat's own page may open a socket (RFC 6455 §10.2, cross-site
//! WebSocket hijacking): an upgrade whose `Origin` is not the host and port
//! it was sent to (`OriginPolicy::same_origin`) is answered 403 Forbidden,
//! so a page on another site (or on `localhost` when the chat was opened
//! as `127.0.0.1`) cannot join with the user's browser. Clients that send
//! no `Origin` (not browsers) are let in. Each `ORIGIN` argument
//! (`https://chat.example`) is allowed too: for a page served elsewhere, or
//! behind a TLS proxy that rewrites `Host`.
//!
//! The server is a small event loop over [`blocking::WebSocket`] with
//! non-blocking `TcpStream`s: accept what is waiting, `read()` each
//! connection until `WouldBlock`, broadcast, `flush()`, sleep a little when
//! idle. With `--tls` each socket is wrapped in a `rustls::StreamOwned`,
//! which works non-blocking as well: the TLS handshake runs inside `read()`.
//! The handshake runs inside that loop too (the upgrade arrives as
//! `Event::Request`, a plain `GET /` as `Event::HttpRequest` answered with
//! the page), so a slow client never stalls the others. A real server would
//! wait in `poll`/`epoll` instead of sleeping; the driving code stays the same.
//!
//! Wire format, server to page (JSON, one object per text message):
//! `{"type":"welcome","name":"guest-3","users":["guest-1"]}`,
//! `{"type":"join","name":"guest-4"}`, `{"type":"leave","name":"guest-1"}`,
//! `{"type":"msg","from":"guest-3","text":"hi"}`. Page to server: the text
//! typed, as is.

use serde_json::json;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;
use wsmachine::blocking::{self, Transport, WebSocket};
use wsmachine::{
    Accept, Backpressure, CloseCode, Config, Connection, Event, HttpResponse, Origin, OriginPolicy, ReadyState,
};

/// Longest chat line relayed, in characters; longer ones are cut.
const MAX_LINE_CHARS: usize = 2000;
/// Events taken from one connection per pass, so one busy tab cannot starve the rest.
const EVENTS_PER_PASS: usize = 64;
/// Sleep when a pass found nothing to do.
const IDLE_SLEEP: Duration = Duration::from_millis(5);

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wsmachine chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { display: flex; gap: 1em; align-items: center; padding: .5em 1em; background: #223; color: #eee; }
  header h1 { font-size: 1.1em; margin: 0; flex: 1; }
  #state { font-weight: bold; padding: .1em .6em; border-radius: .3em; background: #888; color: #fff; }
  #state.OPEN { background: #2a7d2a; } #state.CONNECTING { background: #b58900; }
  #state.CLOSING { background: #cb4b16; } #state.CLOSED { background: #b22; }
  #log { list-style: none; margin: 0; padding: .5em 1em; flex: 1; overflow-y: auto; }
  #log li { padding: .1em 0; white-space: pre-wrap; overflow-wrap: anywhere; }
  #log li.info { color: #667; font-style: italic; }
  #log li.mine b { color: #2a7d2a; }
  form { display: flex; gap: .5em; padding: .5em 1em; border-top: 1px solid #ccc; }
  #text { flex: 1; font: inherit; padding: .3em; }
</style></head>
<body>
<header><h1>wsmachine chat</h1><span id="me"></span><span id="retry"></span>
  <span id="state" class="CLOSED">CLOSED</span><button id="toggle" type="button">leave</button></header>
<ul id="log"></ul>
<form id="f"><input id="text" maxlength="2000" autocomplete="off" placeholder="say something" autofocus>
  <button id="send">send</button></form>
<script>
'use strict';
// The readyState names, indexed by WebSocket.readyState.
const STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
const $ = (id) => document.getElementById(id);
let ws = null;          // the current socket
let me = '';            // our name, from the welcome
let attempts = 0;       // failed connects since the last OPEN (for the backoff)
let retryTimer = null;
let wanted = true;      // false after "leave": no reconnecting

function showState() {
  const s = ws ? STATES[ws.readyState] : 'CLOSED';
  $('state').textContent = s;
  $('state').className = s;
}
setInterval(showState, 100);

// Every line goes in as text (textContent / text nodes): what users type is never parsed as HTML.
function line(cls, text, from) {
  const li = document.createElement('li');
  li.className = cls;
  if (from !== undefined) {
    const b = document.createElement('b');
    b.textContent = from + ': ';
    li.appendChild(b);
  }
  li.appendChild(document.createTextNode(text));
  $('log').appendChild(li);
  li.scrollIntoView({ block: 'end' });
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  $('retry').textContent = '';
  const sock = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat');
  ws = sock;
  showState();
  let opened = false;
  sock.onopen = () => { opened = true; attempts = 0; showState(); };
  sock.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch (_) { return; }
    switch (m.type) {
      case 'welcome':
        me = m.name;
        $('me').textContent = 'you are ' + me;
        line('info', 'you joined as ' + me + (m.users.length ? '; here: ' + m.users.join(', ') : '; nobody else is here yet'));
        break;
      case 'join': line('info', m.name + ' joined'); break;
      case 'leave': line('info', m.name + ' left'); break;
      case 'msg': line(m.from === me ? 'msg mine' : 'msg', m.text, m.from); break;
    }
  };
  sock.onerror = showState;
  sock.onclose = (e) => {
    showState();
    if (sock !== ws) return;
    if (opened) line('info', (wanted ? 'disconnected' : 'you left') + ' (code ' + e.code + (e.reason ? ', ' + e.reason : '') + ')');
    if (wanted) scheduleReconnect();
  };
}

// Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s, ... up to 8 s.
function scheduleReconnect() {
  const delay = Math.min(8000, 250 * 2 ** attempts) * (0.75 + Math.random() / 2);
  attempts++;
  $('retry').textContent = 'reconnecting in ' + (delay / 1000).toFixed(1) + ' s';
  retryTimer = setTimeout(connect, delay);
}

$('toggle').onclick = () => {
  wanted = !wanted;
  $('toggle').textContent = wanted ? 'leave' : 'join';
  if (wanted) { attempts = 0; connect(); return; }
  clearTimeout(retryTimer);
  $('retry').textContent = '';
  if (ws && ws.readyState <= 1) ws.close(1000, 'left');
  showState();
};

$('f').onsubmit = (e) => {
  e.preventDefault();
  const input = $('text');
  if (!input.value || !ws || ws.readyState !== 1) return;
  ws.send(input.value);
  input.value = '';
};

connect();
</script>
</body></html>
"#;

/// The TLS configuration, with the `rustls` feature.
#[cfg(feature = "rustls")]
type Tls = wsmachine::tls::TlsAcceptor;
#[cfg(not(feature = "rustls"))]
type Tls = std::convert::Infallible;

/// One TCP connection: in the handshake, then a chatting tab.
struct Client {
    id: u64,
    /// Over TCP, or TLS over TCP.
    ws: WebSocket<Box<dyn Transport>>,
    /// The name, once OPEN (and until CLOSED).
    name: Option<String>,
    /// The transport can be dropped.
    done: bool,
}

struct Room {
    clients: Vec<Client>,
    /// Numbers the connections.
    accepted: u64,
    /// Numbers the guests.
    joined: u64,
    config: Config,
    /// Which pages may open a socket.
    origins: OriginPolicy,
    /// Serve over TLS.
    tls: Option<Tls>,
}

/// Which chatting tabs a message goes to (by connection id).
enum To {
    All,
    AllBut(u64),
    Only(u64),
}

impl To {
    fn includes(&self, id: u64) -> bool {
        match *self {
            To::All => true,
            To::AllBut(other) => id != other,
            To::Only(one) => id == one,
        }
    }
}

impl Room {
    fn new(origins: OriginPolicy, tls: Option<Tls>) -> Self {
        Room {
            origins,
            tls,
            clients: Vec::new(),
            accepted: 0,
            joined: 0,
            // Small output buffers, and a tab that stops reading is dropped
            // (1008) rather than buffered for: one stalled tab cannot hold
            // memory for everyone. A connection whose request does not come
            // within the handshake timeout (10 s) gets 408 and is dropped.
            config: Config {
                max_output_buffer: 1 << 20,
                max_message_size: 64 << 10,
                backpressure: Backpressure::Close,
                ..Config::default()
            },
        }
    }

    fn names(&self) -> Vec<String> {
        self.clients.iter().filter_map(|c| c.name.clone()).collect()
    }

    /// Accepts every connection waiting on the (non-blocking) listener.
    fn accept_new(&mut self, listener: &TcpListener) -> bool {
        let mut any = false;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        eprintln!("set_nonblocking: {e}");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let Some(stream) = self.transport(stream) else { continue };
                    // The machine starts in CONNECTING; the handshake happens in `read()`.
                    let conn = Connection::server(self.config.clone());
                    self.accepted += 1;
                    self.clients.push(Client {
                        id: self.accepted,
                        ws: WebSocket::from_connection(conn, stream),
                        name: None,
                        done: false,
                    });
                    any = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return any,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // For example EMFILE: try again on the next pass.
                    eprintln!("accept: {e}");
                    return any;
                }
            }
        }
    }

    /// The socket, or a TLS session over it (whose handshake runs in `read()`).
    fn transport(&self, stream: TcpStream) -> Option<Box<dyn Transport>> {
        match &self.tls {
            None => Some(Box::new(stream)),
            #[cfg(feature = "rustls")]
            Some(tls) => match wsmachine::tls::rustls::ServerConnection::new(tls.config().clone()) {
                Ok(session) => Some(Box::new(wsmachine::tls::rustls::StreamOwned::new(session, stream))),
                Err(e) => {
                    eprintln!("TLS: {e}");
                    None
                }
            },
            #[cfg(not(feature = "rustls"))]
            Some(never) => match *never {},
        }
    }

    /// Reads what every connection has, turning events into messages to send.
    fn read_all(&mut self, out: &mut Vec<(To, String)>) -> bool {
        let mut any = false;
        for i in 0..self.clients.len() {
            for _ in 0..EVENTS_PER_PASS {
                let result = self.clients[i].ws.read();
                match result {
                    Ok(event) => {
                        any = true;
                        self.handle(i, event, out);
                    }
                    Err(e) if e.is_would_block() => break,
                    Err(blocking::Error::Closed) | Err(blocking::Error::NotUpgraded) => {
                        self.clients[i].done = true;
                        break;
                    }
                    // A broken rule or a broken transport: `Event::Closed` follows.
                    Err(e) => {
                        any = true;
                        eprintln!("{}: {e}", self.clients[i].name.as_deref().unwrap_or("(handshake)"));
                    }
                }
            }
        }
        any
    }

    fn handle(&mut self, i: usize, event: Event, out: &mut Vec<(To, String)>) {
        match event {
            // A WebSocket upgrade from an allowed page (any path will do); 403 otherwise.
            Event::Request(request) => {
                let conn = self.clients[i].ws.connection_mut();
                let result = match self.origins.check(&request) {
                    Ok(()) => conn.accept(request, Accept::new()),
                    Err(refused) => {
                        let origin = request.origin().unwrap_or("(none)");
                        println!("refused an upgrade from Origin {origin}: 403, {refused}");
                        conn.reject(request, refused.response())
                    }
                };
                if let Err(e) = result {
                    eprintln!("decision: {e}");
                }
            }
            // Plain HTTP: the page, or 404.
            Event::HttpRequest(req) => {
                let response = if req.method == "GET" && (req.path == "/" || req.path.starts_with("/?")) {
                    HttpResponse::new(200)
                        .header("Content-Type", "text/html; charset=utf-8")
                        .header("Cache-Control", "no-store")
                        .body(PAGE)
                } else {
                    HttpResponse::new(404)
                        .header("Content-Type", "text/plain; charset=utf-8")
                        .body("not found\n")
                };
                if let Err(e) = self.clients[i].ws.connection_mut().respond(req, response) {
                    eprintln!("respond: {e}");
                }
            }
            Event::Open { .. } => {
                self.joined += 1;
                let name = format!("guest-{}", self.joined);
                let id = self.clients[i].id;
                let welcome = json!({"type": "welcome", "name": name, "users": self.names()});
                out.push((To::Only(id), welcome.to_string()));
                out.push((To::AllBut(id), json!({"type": "join", "name": name}).to_string()));
                println!("{name} joined");
                self.clients[i].name = Some(name);
            }
            Event::Text(text) => {
                let Some(name) = &self.clients[i].name else { return };
                let text = text.as_str().trim_end();
                if text.is_empty() {
                    return;
                }
                let text: String = text.chars().take(MAX_LINE_CHARS).collect();
                out.push((To::All, json!({"type": "msg", "from": name, "text": text}).to_string()));
            }
            Event::Binary(_) => {
                let _ = self.clients[i].ws.close(CloseCode::UNSUPPORTED_DATA, "text only");
            }
            Event::Closed(info) => {
                if let Some(name) = self.clients[i].name.take() {
                    println!("{name} left ({})", info.code.0);
                    out.push((To::All, json!({"type": "leave", "name": name}).to_string()));
                }
            }
            // Pings are answered by the machine; the peer's close frame is answered too,
            // and `Event::Closed` follows.
            _ => {}
        }
    }

    /// Queues the messages and writes what the sockets take.
    fn send_all(&mut self, out: Vec<(To, String)>) {
        for (to, text) in out {
            for c in &mut self.clients {
                // Only chatting tabs (named, still OPEN) get messages.
                let Some(name) = &c.name else { continue };
                if !to.includes(c.id) || c.ws.connection().state() != ReadyState::Open {
                    continue;
                }
                match c.ws.connection_mut().send(&text) {
                    Ok(()) => {}
                    // `Backpressure::Close`: the connection is given up; its
                    // next read reports it, and it is dropped.
                    Err(wsmachine::Error::OutputFull { .. }) => eprintln!("{name}: not reading, dropped"),
                    Err(e) => eprintln!("{name}: {e}"),
                }
            }
        }
        for c in &mut self.clients {
            match c.ws.flush() {
                Ok(()) => {}
                Err(e) if e.is_would_block() => {}
                // The transport failed: the next read reports `Event::Closed`.
                Err(e) => eprintln!("{}: {e}", c.name.as_deref().unwrap_or("(handshake)")),
            }
        }
    }
}

/// `--tls CERT.pem KEY.pem`, taken out of `args`.
fn take_tls(args: &mut Vec<String>) -> Option<Tls> {
    let at = args.iter().position(|a| a == "--tls")?;
    let files: Vec<String> = args.drain(at..(at + 3).min(args.len())).skip(1).collect();
    let [cert, key] = files.as_slice() else {
        eprintln!("usage: chat [--tls CERT.pem KEY.pem] [ADDR] [ORIGIN...]");
        std::process::exit(2);
    };
    load_tls(cert, key)
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
    eprintln!("--tls needs the rustls feature: cargo run --features rustls --example chat -- --tls CERT.pem KEY.pem");
    std::process::exit(2);
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let tls = take_tls(&mut args);
    let mut args = args.into_iter();
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9999".to_string());
    let mut origins = OriginPolicy::same_origin();
    for arg in args {
        match Origin::parse(&arg) {
            Ok(origin) => origins = origins.allow(origin),
            Err(e) => {
                eprintln!("{arg:?} is not an origin (scheme://host[:port]): {e}");
                std::process::exit(2);
            }
        }
    }
    let listener = match TcpListener::bind(&addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    match tls {
        Some(_) => println!("chat on https://{addr} (WebSocket on wss://{addr}/chat)"),
        None => println!("chat on http://{addr} (WebSocket on ws://{addr}/chat)"),
    }
    let mut room = Room::new(origins, tls);
    loop {
        let mut busy = room.accept_new(&listener);
        let mut out = Vec::new();
        busy |= room.read_all(&mut out);
        busy |= !out.is_empty();
        room.send_all(out);
        // Dropping a `WebSocket` closes its socket.
        room.clients.retain(|c| !c.done);
        if !busy {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}
