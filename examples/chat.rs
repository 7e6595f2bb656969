//! A chat room for browser tabs: one thread, non-blocking sockets, the
//! page and the WebSocket on one port.
//!
//! ```text
//! cargo run --example chat [ADDR] [ORIGIN...]    # default 127.0.0.1:9999
//! cargo run --features rustls --example chat -- --tls CERT.pem KEY.pem [ADDR] [ORIGIN...]
//! cargo run --example chat -- [ADDR] --redis redis://127.0.0.1:6379/ [ORIGIN...]
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
//! Recipient-addressed events: the page shows the users beside the log;
//! clicking names picks recipients. Page to server, one text message each:
//! plain text is for everyone; `{"to":["guest-2","guest-5"],"text":"…"}` is
//! only for those users (and comes back to the sender, marked as sent to
//! them); `{"text":"…"}` is for everyone too (the page sends text that
//! starts with `{` that way). Routing is done here, on the server: a user
//! who is not a recipient never receives the message. Unknown names in
//! `to`, malformed JSON, a wrong field: the sender gets
//! `{"type":"error","text":"…"}` and nobody gets the message.
//!
//! Server to page (JSON, one object per text message):
//! `{"type":"welcome","name":"guest-3","users":["guest-1"]}` (`users`:
//! everyone else; with `--redis` also `"redis":true|false`),
//! `{"type":"join","name":"guest-4"}`, `{"type":"leave","name":"guest-1"}`,
//! `{"type":"msg","from":"guest-3","text":"hi"}` (to everyone) or
//! `{"type":"msg","from":"guest-3","to":["guest-2"],"text":"hi"}` (private),
//! `{"type":"error","text":"…"}`, and with `--redis`
//! `{"type":"status","redis":false,"text":"…"}` when the node loses Redis
//! or gets it back, and `{"type":"users","users":[…]}` (everyone, the
//! reader included) when the list changes at once.
//!
//! Many nodes, one chat (`--redis URL`): several processes (on other ports
//! or machines) that share a Redis form one chat: a user list across the
//! nodes, names unique across them (a Redis counter), messages and joins
//! relayed over Redis pub/sub, presence entries each node refreshes (a
//! killed node's users leave the others' lists within 9 s). See
//! `chat/redis_link.rs`. A node that loses Redis keeps serving its own
//! users, says so on the page, and rejoins when Redis is back.

#[path = "chat/protocol.rs"]
mod protocol;
#[path = "chat/redis_link.rs"]
mod redis_link;

use protocol::{Input, Remote};
use redis_link::{Cmd, Link, Note};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::TryRecvError;
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
  #cluster:empty { display: none; }
  #cluster { padding: .1em .6em; border-radius: .3em; background: #2a7d2a; }
  #cluster.lost { background: #b22; }
  main { flex: 1; display: flex; min-height: 0; }
  #log { list-style: none; margin: 0; padding: .5em 1em; flex: 1; overflow-y: auto; }
  #log li { padding: .1em 0; white-space: pre-wrap; overflow-wrap: anywhere; }
  #log li.info { color: #667; font-style: italic; }
  #log li.error { color: #b22; }
  #log li.mine b { color: #2a7d2a; }
  #log li.private { background: #fff4d6; }
  #log li.private b { color: #8a5a00; }
  aside { width: 13em; border-left: 1px solid #ccc; padding: .5em; overflow-y: auto; }
  aside h2 { font-size: .9em; margin: 0 0 .3em; color: #445; }
  #users { list-style: none; margin: 0; padding: 0; }
  #users button { width: 100%; text-align: left; font: inherit; margin: .1em 0; padding: .2em .4em;
    border: 1px solid #ccc; border-radius: .3em; background: #fff; cursor: pointer; }
  #users button.picked { background: #fff4d6; border-color: #c90; font-weight: bold; }
  #users li.nobody { color: #889; font-style: italic; }
  form { display: flex; gap: .5em; align-items: center; padding: .5em 1em; border-top: 1px solid #ccc; }
  #to { color: #445; white-space: nowrap; } #to.private { color: #8a5a00; font-weight: bold; }
  #text { flex: 1; font: inherit; padding: .3em; }
</style></head>
<body>
<header><h1>wsmachine chat</h1><span id="me"></span><span id="cluster"></span><span id="retry"></span>
  <span id="state" class="CLOSED">CLOSED</span><button id="toggle" type="button">leave</button></header>
<main><ul id="log"></ul>
<aside><h2>users (click to pick recipients)</h2><ul id="users"></ul></aside></main>
<form id="f"><span id="to">to everyone</span><button id="everyone" type="button" hidden>everyone</button>
  <input id="text" maxlength="2000" autocomplete="off" placeholder="say something" autofocus>
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
let users = new Set();  // everyone else in the chat (on any node)
const picked = new Set(); // the recipients picked; none: everyone

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

// The user list; a click picks or unpicks a recipient.
function showUsers() {
  for (const n of [...picked]) if (!users.has(n)) picked.delete(n);
  const ul = $('users');
  ul.replaceChildren();
  for (const n of [...users].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = n;
    b.dataset.name = n;
    if (picked.has(n)) b.className = 'picked';
    b.onclick = () => { picked.has(n) ? picked.delete(n) : picked.add(n); showUsers(); $('text').focus(); };
    li.appendChild(b);
    ul.appendChild(li);
  }
  if (!users.size) {
    const li = document.createElement('li');
    li.className = 'nobody';
    li.textContent = 'nobody else';
    ul.appendChild(li);
  }
  const to = [...picked];
  $('to').textContent = to.length ? 'to ' + to.join(', ') + ' (private)' : 'to everyone';
  $('to').className = to.length ? 'private' : '';
  $('everyone').hidden = !to.length;
}

function showCluster(up) {
  $('cluster').textContent = up ? 'Redis: connected' : 'Redis: lost, this node only';
  $('cluster').className = up ? '' : 'lost';
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
    try { m = JSON.parse(e.data); } catch (_) { line('error', 'error: the server sent something that is not JSON'); return; }
    switch (m.type) {
      case 'welcome':
        me = m.name;
        $('me').textContent = 'you are ' + me;
        users = new Set(m.users);
        showUsers();
        if (typeof m.redis === 'boolean') showCluster(m.redis);
        line('info', 'you joined as ' + me + (m.users.length ? '; here: ' + m.users.join(', ') : '; nobody else is here yet'));
        break;
      case 'join': users.add(m.name); showUsers(); line('info', m.name + ' joined'); break;
      case 'leave': users.delete(m.name); showUsers(); line('info', m.name + ' left'); break;
      case 'users': users = new Set(m.users.filter((n) => n !== me)); showUsers(); break;
      case 'status': showCluster(m.redis); line('info', m.text); break;
      case 'error': line('error', 'error: ' + m.text); break;
      case 'msg':
        if (Array.isArray(m.to)) {
          // Addressed: only the recipients (and the sender) got it.
          line('msg private' + (m.from === me ? ' mine' : ''), m.text, m.from + ' \u2192 ' + m.to.join(', ') + ' (private)');
        } else {
          line(m.from === me ? 'msg mine' : 'msg', m.text, m.from);
        }
        break;
    }
  };
  sock.onerror = showState;
  sock.onclose = (e) => {
    showState();
    if (sock !== ws) return;
    users.clear();
    showUsers();
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

$('everyone').onclick = () => { picked.clear(); showUsers(); $('text').focus(); };

$('f').onsubmit = (e) => {
  e.preventDefault();
  const input = $('text');
  if (!input.value || !ws || ws.readyState !== 1) return;
  const text = input.value;
  if (picked.size) ws.send(JSON.stringify({ to: [...picked], text }));
  // Plain text is for everyone; text that looks like JSON goes wrapped, so it stays text.
  else if (text.trimStart().startsWith('{')) ws.send(JSON.stringify({ text }));
  else ws.send(text);
  input.value = '';
};

showUsers();
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
    /// The name, once OPEN and named (and until CLOSED).
    name: Option<String>,
    /// OPEN, waiting for the name Redis hands out.
    naming: bool,
    /// The transport can be dropped.
    done: bool,
}

struct Room {
    clients: Vec<Client>,
    /// Numbers the connections.
    accepted: u64,
    /// Numbers the guests, without `--redis` (with it, Redis does).
    joined: u64,
    config: Config,
    /// Which pages may open a socket.
    origins: OriginPolicy,
    /// Serve over TLS.
    tls: Option<Tls>,
    /// `--redis`: the link to the other nodes.
    link: Option<Link>,
    /// Whether the link reaches Redis now.
    redis_up: bool,
    /// The users of the other nodes (empty while Redis is lost).
    remote: BTreeSet<String>,
    /// The highest N of any `guest-N` seen: Redis never hands out one at or below it.
    floor: u64,
}

/// Which chatting tabs a message goes to.
enum To {
    All,
    AllBut(u64),
    Only(u64),
    /// The users with these names (the recipients of an addressed message, and its sender).
    Names(BTreeSet<String>),
}

impl To {
    fn includes(&self, c: &Client) -> bool {
        match self {
            To::All => true,
            To::AllBut(other) => c.id != *other,
            To::Only(one) => c.id == *one,
            To::Names(names) => c.name.as_ref().is_some_and(|n| names.contains(n)),
        }
    }
}

impl Room {
    fn new(origins: OriginPolicy, tls: Option<Tls>, link: Option<Link>) -> Self {
        Room {
            origins,
            tls,
            link,
            redis_up: false,
            remote: BTreeSet::new(),
            floor: 0,
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

    fn local_names(&self) -> impl Iterator<Item = &String> {
        self.clients.iter().filter_map(|c| c.name.as_ref())
    }

    /// Everyone in the chat, on this node and (with Redis) the others, sorted.
    fn everyone(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = self.local_names().cloned().collect();
        all.extend(self.remote.iter().cloned());
        all.into_iter().collect()
    }

    fn saw(&mut self, name: &str) {
        if let Some(n) = protocol::guest_number(name) {
            self.floor = self.floor.max(n);
        }
    }

    /// Tells the other nodes (through Redis, while it is reachable).
    fn publish(&self, event: Remote) {
        if let (Some(link), true) = (&self.link, self.redis_up) {
            let _ = link.tx.send(Cmd::Publish(event));
        }
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
                        naming: false,
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
        let id = self.clients[i].id;
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
            Event::Open { .. } => match &self.link {
                // Names come from the Redis counter: the welcome waits for `Note::Named`.
                Some(link) => {
                    self.clients[i].naming = true;
                    let _ = link.tx.send(Cmd::Name {
                        client: id,
                        floor: self.floor,
                    });
                }
                None => {
                    self.joined += 1;
                    let name = format!("guest-{}", self.joined);
                    self.named(i, name, out);
                }
            },
            Event::Text(text) => {
                let Some(name) = self.clients[i].name.clone() else {
                    out.push((
                        To::Only(id),
                        protocol::error("not sent: you have no name yet, wait for the welcome"),
                    ));
                    return;
                };
                match protocol::parse_input(text.as_str(), MAX_LINE_CHARS) {
                    Err(why) => out.push((To::Only(id), protocol::error(&why))),
                    Ok(Input::Everyone(text)) => {
                        out.push((To::All, protocol::msg(&name, None, &text)));
                        self.publish(Remote::Msg {
                            from: name,
                            to: None,
                            text,
                        });
                    }
                    Ok(Input::Addressed { to, text }) => {
                        let is_local = |n: &str| self.local_names().any(|l| l == n);
                        let is_remote = |n: &str| self.remote.contains(n);
                        match protocol::route_addressed(&name, &to, is_local, is_remote) {
                            Err(why) => out.push((To::Only(id), protocol::error(&why))),
                            Ok((here, publish)) => {
                                out.push((To::Names(here), protocol::msg(&name, Some(&to), &text)));
                                if publish {
                                    self.publish(Remote::Msg {
                                        from: name,
                                        to: Some(to),
                                        text,
                                    });
                                }
                            }
                        }
                    }
                }
            }
            Event::Binary(_) => {
                let _ = self.clients[i].ws.close(CloseCode::UNSUPPORTED_DATA, "text only");
            }
            Event::Closed(info) => {
                self.clients[i].naming = false;
                if let Some(name) = self.clients[i].name.take() {
                    println!("{name} left ({})", info.code.0);
                    out.push((To::All, protocol::leave(&name)));
                    if let Some(link) = &self.link {
                        let _ = link.tx.send(Cmd::Leave(name));
                    }
                }
            }
            // Pings are answered by the machine; the peer's close frame is answered too,
            // and `Event::Closed` follows.
            _ => {}
        }
    }

    /// Client `i` has its name: the welcome, and a join for everyone else.
    fn named(&mut self, i: usize, name: String, out: &mut Vec<(To, String)>) {
        let id = self.clients[i].id;
        let others: Vec<String> = self.everyone();
        let redis = self.link.as_ref().map(|_| self.redis_up);
        out.push((To::Only(id), protocol::welcome(&name, &others, redis)));
        out.push((To::AllBut(id), protocol::join(&name)));
        println!("{name} joined");
        self.saw(&name);
        self.clients[i].name = Some(name);
        self.clients[i].naming = false;
    }

    /// What the link reports: names, Redis lost or back, the other nodes' events.
    fn poll_link(&mut self, out: &mut Vec<(To, String)>) -> bool {
        let mut any = false;
        loop {
            let Some(link) = &self.link else { return any };
            let note = match link.rx.try_recv() {
                Ok(note) => note,
                Err(TryRecvError::Empty) => return any,
                Err(TryRecvError::Disconnected) => {
                    eprintln!("redis: the link's thread ended; serving this node's users only");
                    self.link = None;
                    self.lost_redis("the Redis link stopped", out);
                    return true;
                }
            };
            any = true;
            match note {
                Note::Named { client, name } => {
                    match self.clients.iter().position(|c| c.id == client && c.naming) {
                        Some(i) if self.clients[i].ws.connection().state() == ReadyState::Open => {
                            self.named(i, name, out)
                        }
                        // Gone before its name came.
                        _ => {
                            if let Some(link) = &self.link {
                                let _ = link.tx.send(Cmd::Leave(name));
                            }
                        }
                    }
                }
                Note::Up => {
                    if !self.redis_up {
                        self.redis_up = true;
                        let text = "connected to Redis: the chat spans every node";
                        out.push((To::All, protocol::status(true, text)));
                    }
                }
                Note::Down(why) => {
                    if self.redis_up {
                        self.lost_redis(&why, out);
                    }
                }
                Note::Snapshot(names) => {
                    let (added, removed) = protocol::diff(&self.remote, &names);
                    for name in removed {
                        println!("{name} is gone from Redis (its node stopped refreshing it)");
                        self.remote.remove(&name);
                        out.push((To::All, protocol::leave(&name)));
                    }
                    for name in added {
                        self.saw(&name);
                        self.remote.insert(name.clone());
                        out.push((To::All, protocol::join(&name)));
                    }
                }
                Note::Remote(Remote::Join(name)) => {
                    self.saw(&name);
                    if !self.local_names().any(|n| *n == name) && self.remote.insert(name.clone()) {
                        out.push((To::All, protocol::join(&name)));
                    }
                }
                Note::Remote(Remote::Leave(name)) => {
                    if self.remote.remove(&name) {
                        out.push((To::All, protocol::leave(&name)));
                    }
                }
                Note::Remote(Remote::Msg { from, to, text }) => {
                    // Another node cut it already; this bounds what any other publisher sends.
                    let text: String = text.chars().take(MAX_LINE_CHARS).collect();
                    let event = protocol::msg(&from, to.as_deref(), &text);
                    match to {
                        None => out.push((To::All, event)),
                        // Only the recipients that are on this node; nobody else.
                        Some(to) => out.push((To::Names(to.into_iter().collect()), event)),
                    }
                }
            }
        }
    }

    fn lost_redis(&mut self, why: &str, out: &mut Vec<(To, String)>) {
        self.redis_up = false;
        self.remote.clear();
        let text = format!("lost Redis ({why}): only the users of this node are reachable until it is back");
        out.push((To::All, protocol::status(false, &text)));
        out.push((To::All, protocol::users(&self.everyone())));
    }

    /// Queues the messages and writes what the sockets take.
    fn send_all(&mut self, out: Vec<(To, String)>) {
        for (to, text) in out {
            // Each event is encoded to JSON once; the WebSocket frame is still
            // made per connection (the one call to `send` below is where a
            // shared, prepared frame would go once the crate offers one).
            for c in &mut self.clients {
                // Only chatting tabs (named, still OPEN) get messages.
                let Some(name) = &c.name else { continue };
                if !to.includes(c) || c.ws.connection().state() != ReadyState::Open {
                    continue;
                }
                match c.ws.connection_mut().send(text.as_str()) {
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

/// `--redis URL`, taken out of `args`.
fn take_redis(args: &mut Vec<String>) -> Option<String> {
    let at = args.iter().position(|a| a == "--redis")?;
    let url: Vec<String> = args.drain(at..(at + 2).min(args.len())).skip(1).collect();
    let [url] = url.as_slice() else {
        eprintln!("usage: chat [ADDR] --redis redis://HOST:PORT/ [ORIGIN...]");
        std::process::exit(2);
    };
    Some(url.clone())
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let tls = take_tls(&mut args);
    let redis = take_redis(&mut args);
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
    let link = redis.map(|url| match redis_link::start(&url) {
        Ok(link) => {
            println!(
                "node {} of a chat over Redis at {url} (a killed node's users leave the lists within {} s)",
                link.node,
                redis_link::PRESENCE_BOUND.as_secs()
            );
            link
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    });
    match tls {
        Some(_) => println!("chat on https://{addr} (WebSocket on wss://{addr}/chat)"),
        None => println!("chat on http://{addr} (WebSocket on ws://{addr}/chat)"),
    }
    let mut room = Room::new(origins, tls, link);
    loop {
        let mut busy = room.accept_new(&listener);
        let mut out = Vec::new();
        busy |= room.read_all(&mut out);
        busy |= room.poll_link(&mut out);
        busy |= !out.is_empty();
        room.send_all(out);
        // Dropping a `WebSocket` closes its socket.
        room.clients.retain(|c| !c.done);
        if !busy {
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}
