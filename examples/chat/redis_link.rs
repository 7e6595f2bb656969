//! `--redis URL`: the node's link to Redis, on a thread of its own so the
//! event loop never waits for Redis (a node that loses Redis keeps serving
//! its own users).
//!
//! In Redis (keys under `wsmachine-chat:`):
//! - `guests`: the counter behind the names (`INCR`): `guest-N` is unique
//!   across the nodes. After a Redis restart without persistence the counter
//!   starts again from 0; a node never hands out a number at or below the
//!   highest one it has seen (`floor`), so live names stay unique.
//! - `presence`: a sorted set, one member per user, scored with the Redis
//!   time (ms, `TIME`) until which the entry holds. Each node re-scores its
//!   own users every [`REFRESH`] to now + [`TTL`], drops the expired ones,
//!   and reads the set: the snapshot of who is on the other nodes. A node
//!   killed without a word stops refreshing; its users expire after at most
//!   [`TTL`], and every other node reads a snapshot without them at most
//!   [`REFRESH`] later: gone from the lists within [`PRESENCE_BOUND`].
//! - channel `events`: what the nodes tell each other at once (messages,
//!   joins, leaves; `protocol::Remote`).
//!
//! Two connections: one subscribed to the channel (read with a short
//! timeout, so the same thread runs the commands in between), one for
//! commands. Any error on either drops both, reports [`Note::Down`], and
//! the thread reconnects every [`RETRY`]; once connected again it registers
//! its users again, announces them, and reports [`Note::Up`] and a snapshot.

use crate::protocol::{self, Remote};
use redis::{Client, Connection, RedisResult};
use std::collections::BTreeSet;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PREFIX: &str = "wsmachine-chat:";
/// How often a node re-scores its users in `presence` and reads the set.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How long a presence entry holds without a refresh.
pub const TTL: Duration = Duration::from_secs(6);
/// A killed node's users are gone from the other nodes' lists within this
/// (TTL + REFRESH, with a second for the reads and the clock's grain).
pub const PRESENCE_BOUND: Duration = Duration::from_secs(9);
/// Between two attempts to reach Redis.
pub const RETRY: Duration = Duration::from_secs(1);
/// Bound on connecting, and on each command's reply.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a read of the subscription waits before the thread runs commands.
const POLL: Duration = Duration::from_millis(5);

/// From the event loop to the link.
pub enum Cmd {
    /// Name a new user (connection `client`): `guest-N` from the counter,
    /// above `floor`, the highest N the node has seen.
    Name { client: u64, floor: u64 },
    /// A local user left.
    Leave(String),
    /// Publish for the other nodes (dropped while Redis is down).
    Publish(Remote),
}

/// From the link to the event loop, in the order things happened.
pub enum Note {
    /// Connected (again); a [`Note::Snapshot`] follows.
    Up,
    /// Redis is lost (why); the link keeps trying.
    Down(String),
    /// The answer to [`Cmd::Name`].
    Named { client: u64, name: String },
    /// The users of the other nodes, as `presence` holds them now.
    Snapshot(BTreeSet<String>),
    /// An event another node published.
    Remote(Remote),
}

/// The event loop's end of the link.
pub struct Link {
    pub tx: Sender<Cmd>,
    pub rx: Receiver<Note>,
    /// This node's id on the channel (its own events come back and are skipped).
    pub node: String,
}

/// Checks the URL and starts the link's thread (which connects by itself).
pub fn start(url: &str) -> Result<Link, String> {
    let client = Client::open(url).map_err(|e| format!("--redis {url}: {e}"))?;
    let node = random_tag(16);
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (note_tx, note_rx) = mpsc::channel();
    let mut state = State {
        client,
        url: url.to_string(),
        node: node.clone(),
        offline_tag: random_tag(6),
        offline_count: 0,
        locals: BTreeSet::new(),
        offset_ms: 0,
        up: false,
        reported_down: false,
        rx: cmd_rx,
        tx: note_tx,
    };
    std::thread::Builder::new()
        .name("redis-link".into())
        .spawn(move || state.run())
        .map_err(|e| format!("cannot start the Redis thread: {e}"))?;
    Ok(Link {
        tx: cmd_tx,
        rx: note_rx,
        node,
    })
}

struct State {
    client: Client,
    url: String,
    node: String,
    /// Names given while Redis is down are `guest-<tag>-<k>`: no counter
    /// to ask, so the node's random tag (6 hex digits, 24 bits) keeps them
    /// apart from other nodes' (with that probability, not a guarantee).
    offline_tag: String,
    offline_count: u64,
    /// This node's users (as the link has been told, in order).
    locals: BTreeSet<String>,
    /// Redis time minus local time, from the last `TIME`.
    offset_ms: i64,
    up: bool,
    reported_down: bool,
    rx: Receiver<Cmd>,
    tx: Sender<Note>,
}

/// The event loop is gone: the thread ends.
struct Gone;

impl State {
    fn run(&mut self) {
        loop {
            let result = self.connect().and_then(|(con, sub)| self.session(con, sub));
            match result {
                Ok(Err(Gone)) => return,
                Ok(Ok(())) => unreachable!("a session ends with an error"),
                Err(e) => {
                    if self.up || !self.reported_down {
                        println!("redis: lost {}: {e}", self.url);
                        if self.tx.send(Note::Down(e.to_string())).is_err() {
                            return;
                        }
                    }
                    self.up = false;
                    self.reported_down = true;
                }
            }
            // Keep serving the event loop (offline) until the next attempt.
            let until = Instant::now() + RETRY;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.rx.recv_timeout(left) {
                    Ok(cmd) => {
                        if self.offline(cmd).is_err() {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }

    fn connect(&self) -> RedisResult<(Connection, Connection)> {
        let con = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        let sub = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
        sub.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok((con, sub))
    }

    /// Connected: runs until an error (`Err`) or the event loop is gone (`Ok(Err(Gone))`).
    fn session(&mut self, mut con: Connection, mut sub: Connection) -> RedisResult<Result<(), Gone>> {
        let mut pubsub = sub.as_pubsub();
        pubsub.subscribe(format!("{PREFIX}events"))?;
        pubsub.set_read_timeout(Some(POLL))?;
        // Register this node's users again (Redis may have restarted empty) and announce them.
        let snapshot = self.refresh(&mut con)?;
        for name in self.locals.clone() {
            self.publish(&mut con, &Remote::Join(name))?;
        }
        println!("redis: connected to {}", self.url);
        self.up = true;
        self.reported_down = false;
        if self.tx.send(Note::Up).is_err() || self.tx.send(Note::Snapshot(snapshot)).is_err() {
            return Ok(Err(Gone));
        }
        let mut next_refresh = Instant::now() + REFRESH;
        loop {
            loop {
                match self.rx.try_recv() {
                    Ok(cmd) => self.online(&mut con, cmd)?,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(Err(Gone)),
                }
            }
            if Instant::now() >= next_refresh {
                let snapshot = self.refresh(&mut con)?;
                if self.tx.send(Note::Snapshot(snapshot)).is_err() {
                    return Ok(Err(Gone));
                }
                next_refresh = Instant::now() + REFRESH;
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    let payload: String = msg.get_payload()?;
                    match protocol::decode_remote(&payload) {
                        Ok((node, _)) if node == self.node => {}
                        Ok((_, event)) => {
                            if self.tx.send(Note::Remote(event)).is_err() {
                                return Ok(Err(Gone));
                            }
                        }
                        Err(e) => eprintln!("redis: ignored a message on the channel ({e}): {payload:.200}"),
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn online(&mut self, con: &mut Connection, cmd: Cmd) -> RedisResult<()> {
        match cmd {
            Cmd::Name { client, floor } => {
                let name = match self.next_guest(con, floor) {
                    Ok(n) => format!("guest-{n}"),
                    Err(e) => {
                        // Answer anyway (offline), then reconnect.
                        let _ = self.offline(Cmd::Name { client, floor });
                        return Err(e);
                    }
                };
                self.locals.insert(name.clone());
                let _ = self.tx.send(Note::Named {
                    client,
                    name: name.clone(),
                });
                let until = self.redis_now_ms() + TTL.as_millis() as u64;
                redis::cmd("ZADD")
                    .arg(format!("{PREFIX}presence"))
                    .arg(until)
                    .arg(&name)
                    .exec(con)?;
                self.publish(con, &Remote::Join(name))
            }
            Cmd::Leave(name) => {
                self.locals.remove(&name);
                redis::cmd("ZREM")
                    .arg(format!("{PREFIX}presence"))
                    .arg(&name)
                    .exec(con)?;
                self.publish(con, &Remote::Leave(name))
            }
            Cmd::Publish(event) => self.publish(con, &event),
        }
    }

    /// Redis is down: names from the node's own tag, nothing published.
    fn offline(&mut self, cmd: Cmd) -> Result<(), Gone> {
        match cmd {
            Cmd::Name { client, .. } => {
                self.offline_count += 1;
                let name = format!("guest-{}-{}", self.offline_tag, self.offline_count);
                self.locals.insert(name.clone());
                self.tx.send(Note::Named { client, name }).map_err(|_| Gone)
            }
            Cmd::Leave(name) => {
                self.locals.remove(&name);
                Ok(())
            }
            Cmd::Publish(_) => Ok(()),
        }
    }

    /// `INCR guests`, lifted above `floor` with one `INCRBY` when Redis
    /// restarted empty (each reply of INCR/INCRBY is a number nobody else got).
    fn next_guest(&self, con: &mut Connection, floor: u64) -> RedisResult<u64> {
        let key = format!("{PREFIX}guests");
        let n: u64 = redis::cmd("INCR").arg(&key).query(con)?;
        if n > floor {
            return Ok(n);
        }
        redis::cmd("INCRBY").arg(&key).arg(floor - n + 1).query(con)
    }

    fn publish(&self, con: &mut Connection, event: &Remote) -> RedisResult<()> {
        let payload = protocol::encode_remote(&self.node, event);
        redis::cmd("PUBLISH")
            .arg(format!("{PREFIX}events"))
            .arg(payload)
            .exec(con)
    }

    /// Re-scores this node's users, drops expired entries, and returns the
    /// others' users.
    fn refresh(&mut self, con: &mut Connection) -> RedisResult<BTreeSet<String>> {
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query(con)?;
        let now = secs * 1000 + micros / 1000;
        self.offset_ms = now as i64 - local_ms() as i64;
        let key = format!("{PREFIX}presence");
        let until = now + TTL.as_millis() as u64;
        let mut pipe = redis::pipe();
        for name in &self.locals {
            pipe.cmd("ZADD").arg(&key).arg(until).arg(name).ignore();
        }
        pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now).ignore();
        pipe.cmd("ZRANGE").arg(&key).arg(0).arg(-1);
        let (names,): (Vec<String>,) = pipe.query(con)?;
        // Our own users are not "others" (the set may still hold one that just
        // left: its Leave is behind this in the queue).
        Ok(names.into_iter().filter(|n| !self.locals.contains(n)).collect())
    }

    fn redis_now_ms(&self) -> u64 {
        (local_ms() as i64 + self.offset_ms).max(0) as u64
    }
}

fn local_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `len` hex digits, different for each process (std's randomly seeded hasher).
fn random_tag(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    while out.len() < len {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}
