//! The game loop example (`examples/game_loop.rs`) with real clients over
//! loopback: players connect with `blocking::connect`, send positions, and
//! the snapshots broadcast every tick reflect them.

#[allow(dead_code)]
#[path = "../../examples/game_loop.rs"]
mod example;

use example::{Game, HEIGHT, SPAWN, TICK_HZ, WIDTH, parse_position};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wsmachine::blocking::{self, MaybeTlsStream, WebSocket};
use wsmachine::{CloseCode, Event};

/// How long a test waits for something the server should do within a few ticks.
const PATIENCE: Duration = Duration::from_secs(10);

/// The game running in its own thread, stopped on drop.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Game>>,
}

impl Server {
    fn start() -> Server {
        let mut game = Game::bind("127.0.0.1:0").expect("bind");
        let addr = game.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // Bounded in ticks too, so a stuck test cannot keep it running.
        let thread = std::thread::spawn(move || {
            game.run(Some(120 * u64::from(TICK_HZ)), &flag);
            game
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the loop (it closes every connection) and returns the game.
    fn stop(mut self) -> Game {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the game thread panicked")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Positions = BTreeMap<u32, (i32, i32)>;

struct Player {
    ws: WebSocket<MaybeTlsStream>,
    id: u32,
    /// The last snapshot's tick.
    tick: u64,
}

impl Player {
    fn join(server: &Server) -> Player {
        let (mut ws, _) = blocking::connect(&format!("ws://{}/", server.addr)).expect("connect");
        ws.get_mut().set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut player = Player { ws, id: 0, tick: 0 };
        let welcome = player.next_message(|m| m["type"] == "welcome");
        assert_eq!(welcome["width"], WIDTH);
        assert_eq!(welcome["height"], HEIGHT);
        assert_eq!(welcome["hz"], TICK_HZ);
        player.id = welcome["id"].as_u64().expect("welcome id") as u32;
        player
    }

    fn send(&mut self, text: &str) {
        self.ws.send(text).expect("send");
        loop {
            match self.ws.flush() {
                Err(e) if e.is_would_block() => std::thread::sleep(Duration::from_millis(1)),
                r => return r.expect("flush"),
            }
        }
    }

    /// The next JSON message for which `pick` holds.
    fn next_message(&mut self, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "no matching message within {PATIENCE:?}");
            match self.ws.read() {
                Ok(Event::Text(text)) => {
                    let message: Value = serde_json::from_str(text.as_str()).expect("the server sends JSON");
                    if pick(&message) {
                        return message;
                    }
                }
                Ok(Event::Closed(info)) => panic!("closed by the server: {info:?}"),
                Ok(_) => {}
                Err(e) if e.is_would_block() => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Reads snapshots until one satisfies `want`; checks ticks only go up.
    fn wait_state(&mut self, what: &str, want: impl Fn(&Positions) -> bool) -> Positions {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        while Instant::now() < deadline {
            let state = self.next_message(|m| m["type"] == "state");
            let tick = state["tick"].as_u64().expect("tick");
            assert!(tick > self.tick, "tick {tick} after {}", self.tick);
            self.tick = tick;
            let positions: Positions = state["players"]
                .as_object()
                .expect("players")
                .iter()
                .map(|(id, pos)| {
                    let xy = |i: usize| pos[i].as_i64().expect("coordinate") as i32;
                    (id.parse().expect("numeric id"), (xy(0), xy(1)))
                })
                .collect();
            if want(&positions) {
                return positions;
            }
            last = Some(positions);
        }
        panic!(
            "player {}: no snapshot with {what} within {PATIENCE:?}; last: {last:?}",
            self.id
        );
    }

    fn leave(mut self) {
        self.ws.close(CloseCode::NORMAL, "bye").expect("close");
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "the closing handshake did not finish");
            match self.ws.read() {
                Ok(Event::Closed(info)) => {
                    assert!(info.was_clean, "{info:?}");
                    return;
                }
                Ok(_) => {}
                Err(e) if e.is_would_block() => {}
                Err(e) => panic!("read while closing: {e}"),
            }
        }
    }
}

#[test]
fn every_player_sees_every_position() {
    let server = Server::start();
    let mut players: Vec<Player> = (0..3).map(|_| Player::join(&server)).collect();
    let ids: Vec<u32> = players.iter().map(|p| p.id).collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "ids {ids:?}");

    // A new player appears at the spawn point in everyone's snapshots.
    for p in &mut players {
        p.wait_state("all three players", |s| ids.iter().all(|id| s.contains_key(id)));
    }
    // Fractions round; out-of-field positions are clamped.
    let inputs = ["10,20", " 30.4 , 40.6 ", "5000,-7"];
    let expected = [(10, 20), (30, 41), (WIDTH, 0)];
    for (p, input) in players.iter_mut().zip(inputs) {
        p.send(input);
    }
    let want: Positions = ids.iter().copied().zip(expected).collect();
    for p in &mut players {
        let seen = p.wait_state("every input applied", |s| *s == want);
        assert_eq!(seen, want);
    }

    // Moves keep flowing: the last input of a player wins.
    players[0].send("1,1");
    players[0].send("600,400");
    players[1].wait_state("player 1's last move", |s| s.get(&ids[0]) == Some(&(600, 400)));

    drop(players);
    let game = server.stop();
    assert!(game.ticks() > 0);
    assert!(game.positions().is_empty(), "{:?}", game.positions());
}

#[test]
fn bad_input_is_ignored_and_leavers_disappear() {
    let server = Server::start();
    let mut a = Player::join(&server);
    let mut b = Player::join(&server);
    let b_id = b.id;
    a.wait_state("b at the spawn point", |s| s.get(&b_id) == Some(&SPAWN));

    b.send("100,100");
    a.wait_state("b at 100,100", |s| s.get(&b_id) == Some(&(100, 100)));
    for junk in ["", "100", "x,y", "NaN,1", "1,2,3", "١,٢"] {
        b.send(junk);
    }
    b.ws.send(b"12,34").unwrap();
    // A valid move after the junk shows the junk was read and skipped, not applied.
    b.send("7,8");
    let seen = a.wait_state("b at 7,8", |s| s.get(&b_id) != Some(&(100, 100)));
    assert_eq!(seen.get(&b_id), Some(&(7, 8)), "junk moved player {b_id}: {seen:?}");

    b.leave();
    let seen = a.wait_state("b gone", |s| !s.contains_key(&b_id));
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), vec![a.id]);
}

#[test]
fn stopping_closes_players_with_going_away() {
    let server = Server::start();
    let mut a = Player::join(&server);
    let a_id = a.id;
    a.wait_state("a itself", |s| s.contains_key(&a_id));
    // Ask it to stop, and take part in the closing handshake while it does.
    server.stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + PATIENCE;
    let info = loop {
        assert!(Instant::now() < deadline, "no close from the server");
        match a.ws.read() {
            Ok(Event::Closed(info)) => break info,
            Ok(_) => {}
            Err(e) if e.is_would_block() => {}
            Err(e) => panic!("read: {e}"),
        }
    };
    assert_eq!(info.code, CloseCode::GOING_AWAY);
    assert!(info.was_clean, "{info:?}");
    let game = server.stop();
    assert!(game.positions().is_empty());
}

#[test]
fn a_bounded_run_keeps_the_tick_rate() {
    let mut game = Game::bind("127.0.0.1:0").unwrap();
    let start = Instant::now();
    game.run(Some(30), &AtomicBool::new(false));
    let elapsed = start.elapsed();
    assert_eq!(game.ticks(), 30);
    // 30 ticks at 60 Hz: half a second (generous on the upper side for a loaded machine).
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[test]
fn positions_parse_and_clamp() {
    assert_eq!(parse_position("1,2"), Some((1, 2)));
    assert_eq!(parse_position(" 1.5 , 2.4 "), Some((2, 2)));
    assert_eq!(parse_position("-5,99999"), Some((0, HEIGHT)));
    assert_eq!(parse_position("1e9,inf"), Some((WIDTH, HEIGHT)));
    for bad in ["", "1", "1,", ",1", "a,b", "NaN,1", "1,2,3"] {
        assert_eq!(parse_position(bad), None, "{bad:?}");
    }
}
