//! A game server loop: one thread, non-blocking sockets, a fixed 60 Hz tick,
//! no async runtime.
//!
//! ```text
//! cargo run --example game_loop [ADDR] [--ticks N]   # default 127.0.0.1:9998, until Ctrl-C
//! GAME_LOOP_TICKS=N cargo run --example game_loop    # the same bound from the environment
//! ```
//!
//! Open http://127.0.0.1:9998 in a few tabs and move the mouse over the
//! field: every tab sees every player's dot.
//!
//! Each tick the loop accepts waiting connections, reads what every socket
//! has and drains the events (the handshake happens here too: an upgrade is
//! `Event::Request`, a plain `GET /` is `Event::HttpRequest` answered with
//! the page), applies the inputs to the shared state, broadcasts a snapshot
//! of it to every player and writes what the sockets accept. Nothing blocks:
//! a `WouldBlock` ends a socket's turn until the next tick. A player whose
//! socket is not keeping up (its `buffered_amount` is high) skips snapshots
//! instead of queueing them, since a newer one follows anyway.
//!
//! Wire format. Player to server, text: `"x,y"`, the player's new position
//! (numbers, clamped to the 640×480 field). Server to player, JSON text:
//! `{"type":"welcome","id":3,"width":640,"height":480,"hz":60}` once OPEN,
//! then each tick `{"type":"state","tick":812,"players":{"1":[10,20],"3":[320,240]}}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wsmachine::blocking::{self, WebSocket};
use wsmachine::{Accept, CloseCode, Config, Connection, Event, HttpResponse};

/// Ticks per second.
pub const TICK_HZ: u32 = 60;
/// The field's size; positions are clamped to `0..=WIDTH`, `0..=HEIGHT`.
pub const WIDTH: i32 = 640;
/// See [`WIDTH`].
pub const HEIGHT: i32 = 480;
/// Where a new player appears.
pub const SPAWN: (i32, i32) = (WIDTH / 2, HEIGHT / 2);
/// A player with more output than this still queued skips this tick's snapshot.
const MAX_BUFFERED: usize = 64 << 10;
/// Events taken from one socket per tick, so one flooding client cannot stall the tick.
const EVENTS_PER_TICK: usize = 256;
/// Ticks a connection may take to become OPEN (idle or slow handshakes are dropped).
const HANDSHAKE_TICKS: u64 = 10 * TICK_HZ as u64;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wsmachine game loop</title><link rel="icon" href="data:,">
<style>body { font: 15px system-ui, sans-serif; margin: 1em; } canvas { border: 1px solid #999; background: #f8f8f0; }</style>
</head><body>
<p>wsmachine game loop: move the mouse over the field. <span id="state">CONNECTING</span> <span id="info"></span></p>
<canvas id="field" width="640" height="480"></canvas>
<script>
'use strict';
const STATES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'];
const canvas = document.getElementById('field'), ctx = canvas.getContext('2d');
const ws = new WebSocket('ws://' + location.host + '/');
let me = 0, want = null, frames = 0;
setInterval(() => { document.getElementById('state').textContent = STATES[ws.readyState]; }, 100);
canvas.onmousemove = (e) => { want = Math.round(e.offsetX) + ',' + Math.round(e.offsetY); };
// Send at most one position per animation frame.
(function pump() { if (want && ws.readyState === 1) { ws.send(want); want = null; } requestAnimationFrame(pump); })();
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.type === 'welcome') { me = m.id; return; }
  if (m.type !== 'state') return;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (const [id, [x, y]] of Object.entries(m.players)) {
    ctx.beginPath(); ctx.arc(x, y, 10, 0, 2 * Math.PI);
    ctx.fillStyle = Number(id) === me ? '#2a7d2a' : 'hsl(' + (id * 67 % 360) + ', 60%, 50%)'; ctx.fill();
    ctx.fillStyle = '#222'; ctx.fillText(String(id), x + 12, y + 4);
  }
  document.getElementById('info').textContent = 'you are player ' + me + ', tick ' + m.tick + ', ' + Object.keys(m.players).length + ' player(s)';
};
</script></body></html>
"#;

/// One connection: in the handshake, then a player.
struct Player {
    /// Numbered once OPEN (0 before).
    id: u32,
    ws: WebSocket<TcpStream>,
    /// OPEN and in the game.
    playing: bool,
    /// The tick it connected at.
    since: u64,
    /// The transport can be dropped.
    done: bool,
}

/// The game: a listener, the players' sockets, and the shared state.
pub struct Game {
    listener: TcpListener,
    players: Vec<Player>,
    /// The shared state: every player's position, by id.
    positions: BTreeMap<u32, (i32, i32)>,
    next_id: u32,
    tick: u64,
    config: Config,
}

impl Game {
    /// Listens on `addr` (non-blocking).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Game> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Game {
            listener,
            players: Vec::new(),
            positions: BTreeMap::new(),
            next_id: 0,
            tick: 0,
            config: Config {
                max_message_size: 4 << 10,
                max_output_buffer: 1 << 20,
                ..Config::default()
            },
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Ticks run so far.
    pub fn ticks(&self) -> u64 {
        self.tick
    }

    /// The shared state: the players' positions, by id.
    pub fn positions(&self) -> &BTreeMap<u32, (i32, i32)> {
        &self.positions
    }

    /// Runs ticks at [`TICK_HZ`] until `max_ticks` ticks have run (if given)
    /// or `stop` is set, then closes every connection.
    pub fn run(&mut self, max_ticks: Option<u64>, stop: &AtomicBool) {
        let period = Duration::from_secs(1) / TICK_HZ;
        let mut next = Instant::now();
        while max_ticks.is_none_or(|max| self.tick < max) && !stop.load(Ordering::Relaxed) {
            self.step();
            next += period;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else if now - next > 5 * period {
                // Far behind (the machine was suspended, say): skip ahead rather than burst.
                next = now;
            }
        }
        self.shutdown();
    }

    /// One tick: accept, read and drain events, update, broadcast, write.
    pub fn step(&mut self) {
        self.tick += 1;
        self.accept_new();
        for i in 0..self.players.len() {
            self.read_player(i);
        }
        let snapshot = self.snapshot();
        for p in &mut self.players {
            if p.playing && p.ws.connection().buffered_amount() < MAX_BUFFERED {
                // Queue it; the flush below writes it with everything else.
                if let Err(e) = p.ws.connection_mut().send(&snapshot) {
                    eprintln!("player {}: {e}", p.id);
                }
            }
            match p.ws.flush() {
                Ok(()) => {}
                Err(e) if e.is_would_block() => {} // the rest goes out next tick
                // The transport failed: the next read reports `Event::Closed`.
                Err(e) => eprintln!("player {}: {e}", p.id),
            }
            if !p.playing && !p.done && self.tick - p.since > HANDSHAKE_TICKS {
                p.done = true;
            }
        }
        // Dropping a `WebSocket` closes its socket.
        self.players.retain(|p| !p.done);
    }

    fn accept_new(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        eprintln!("set_nonblocking: {e}");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    // CONNECTING; the handshake completes in `read_player` over the next ticks.
                    let conn = Connection::server(self.config.clone());
                    self.players.push(Player {
                        id: 0,
                        ws: WebSocket::from_connection(conn, stream),
                        playing: false,
                        since: self.tick,
                        done: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("accept: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what one socket has, until `WouldBlock`, and applies it.
    fn read_player(&mut self, i: usize) {
        let p = &mut self.players[i];
        for _ in 0..EVENTS_PER_TICK {
            let event = match p.ws.read() {
                Ok(event) => event,
                Err(e) if e.is_would_block() => return,
                Err(blocking::Error::Closed) | Err(blocking::Error::NotUpgraded) => {
                    p.done = true;
                    return;
                }
                // A broken rule or transport: `Event::Closed` follows.
                Err(e) => {
                    eprintln!("player {}: {e}", p.id);
                    continue;
                }
            };
            match event {
                Event::Request(request) => {
                    if let Err(e) = p.ws.connection_mut().accept(request, Accept::new()) {
                        eprintln!("accept: {e}");
                    }
                }
                Event::HttpRequest(req) => {
                    let response = if req.path == "/" || req.path.starts_with("/?") {
                        HttpResponse::new(200)
                            .header("Content-Type", "text/html; charset=utf-8")
                            .body(PAGE)
                    } else {
                        HttpResponse::new(404).body("not found\n")
                    };
                    if let Err(e) = p.ws.connection_mut().respond(req, response) {
                        eprintln!("respond: {e}");
                    }
                }
                Event::Open { .. } => {
                    self.next_id += 1;
                    p.id = self.next_id;
                    p.playing = true;
                    self.positions.insert(p.id, SPAWN);
                    let welcome = format!(
                        r#"{{"type":"welcome","id":{},"width":{WIDTH},"height":{HEIGHT},"hz":{TICK_HZ}}}"#,
                        p.id
                    );
                    if let Err(e) = p.ws.connection_mut().send(&welcome) {
                        eprintln!("player {}: {e}", p.id);
                    }
                }
                Event::Text(text) => {
                    // The last valid input of the tick wins; anything else is ignored.
                    if let (true, Some(pos)) = (p.playing, parse_position(text.as_str())) {
                        self.positions.insert(p.id, pos);
                    }
                }
                Event::Closed(_) => {
                    p.playing = false;
                    self.positions.remove(&p.id);
                }
                // Binary input is ignored; pings and the peer's close are answered by the machine.
                _ => {}
            }
        }
    }

    /// The state as the JSON text every player gets.
    fn snapshot(&self) -> String {
        let mut s = format!(r#"{{"type":"state","tick":{},"players":{{"#, self.tick);
        for (n, (id, (x, y))) in self.positions.iter().enumerate() {
            let comma = if n == 0 { "" } else { "," };
            let _ = write!(s, r#"{comma}"{id}":[{x},{y}]"#);
        }
        s.push_str("}}");
        s
    }

    /// Closes every connection (1001) and gives the closing handshakes up to a second.
    fn shutdown(&mut self) {
        for p in &mut self.players {
            let _ = p.ws.close(CloseCode::GOING_AWAY, "server stopping");
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.players.is_empty() && Instant::now() < deadline {
            for i in 0..self.players.len() {
                self.read_player(i);
            }
            self.players.retain(|p| !p.done);
            std::thread::sleep(Duration::from_millis(5));
        }
        self.players.clear();
        self.positions.clear();
    }
}

/// `"x,y"` (numbers) as a position on the field, clamped; `None` if malformed.
pub fn parse_position(input: &str) -> Option<(i32, i32)> {
    let (x, y) = input.trim().split_once(',')?;
    let coord = |s: &str, max: i32| {
        let v: f64 = s.trim().parse().ok()?;
        // `as` saturates; NaN is refused first.
        (!v.is_nan()).then(|| (v.round() as i32).clamp(0, max))
    };
    Some((coord(x, WIDTH)?, coord(y, HEIGHT)?))
}

fn usage() -> ! {
    eprintln!("usage: game_loop [ADDR] [--ticks N]   (default 127.0.0.1:9998; GAME_LOOP_TICKS=N also bounds it)");
    std::process::exit(2);
}

fn main() {
    let mut addr = "127.0.0.1:9998".to_string();
    let mut ticks: Option<u64> = match std::env::var("GAME_LOOP_TICKS") {
        Ok(v) => Some(v.parse().unwrap_or_else(|_| usage())),
        Err(_) => None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ticks" => ticks = Some(args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            _ if arg.starts_with('-') => usage(),
            _ => addr = arg,
        }
    }
    let mut game = match Game::bind(&addr) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    match ticks {
        Some(n) => println!("game loop on http://{addr} (ws://{addr}/), {TICK_HZ} Hz, {n} ticks"),
        None => println!("game loop on http://{addr} (ws://{addr}/), {TICK_HZ} Hz, until Ctrl-C"),
    }
    game.run(ticks, &AtomicBool::new(false));
    println!("stopped after {} ticks", game.ticks());
}
