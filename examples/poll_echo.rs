//! An echo server on the blocking driver, one thread, non-blocking sockets
//! and `poll(2)`: every text and binary message sent back. The counterpart
//! of `tokio_echo` for `examples/load.rs`, to measure what a connection costs
//! under `wsmachine::blocking` (Linux and other Unix systems).
//!
//! ```text
//! cargo run --release --example poll_echo [-- ADDR]    # default 127.0.0.1:9001
//! ```
//!
//! It prints `listening on ADDR` once it is ready. Each pass polls the
//! listener and every connection (for writing too while output waits), for
//! at most the machines' next deadline (the handshake and close timeouts),
//! then reads each ready connection until it would block. No `Config` is
//! set: every limit is the crate's default. With `--retain` it also keeps
//! every message it received (a chat history), to measure what kept
//! messages hold.

use std::io::{ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use wsmachine::blocking::{Error, WebSocket};
use wsmachine::{Accept, Config, Connection, Event, Message};

/// The longest a pass waits in `poll` when no deadline is nearer.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
fn raise_open_file_limit() -> std::io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid `rlimit` within the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Reads once from `ws` (its socket is ready, or a deadline is due), then
/// takes every event those bytes hold, echoing every message (and keeping it
/// in `history`, if there is one); returns whether the connection is over.
/// A second read would only find `WouldBlock` after a short one; more input
/// makes the socket ready again.
fn serve(ws: &mut WebSocket<TcpStream>, history: &mut Option<Vec<Message>>) -> bool {
    let mut next = Some(ws.read());
    while let Some(result) = next.take() {
        match result {
            Ok(Event::Request(request)) => {
                if let Err(e) = ws.connection_mut().accept(request, Accept::new()) {
                    eprintln!("poll_echo: accept: {}", e.error);
                }
            }
            Ok(Event::Text(text)) => echo(ws, Message::Text(text), history),
            Ok(Event::Binary(data)) => echo(ws, Message::Binary(data), history),
            Ok(_) => {}
            Err(e) if e.is_would_block() => return false,
            Err(Error::Closed) => return true,
            // A broken rule or transport: `Event::Closed` follows, then `Closed`.
            Err(_) => {}
        }
        next = ws.read_buffered();
        if next.is_none() && ws.connection().state() == wsmachine::ReadyState::Closed {
            // Over: `read` says so (`Closed`) at once, without waiting for input.
            next = Some(ws.read());
        }
    }
    false
}

fn echo(ws: &mut WebSocket<TcpStream>, message: Message, history: &mut Option<Vec<Message>>) {
    if let Some(history) = history {
        // A clone of a message shares its bytes.
        history.push(message.clone());
    }
    if let Err(e) = ws.connection_mut().send(message) {
        eprintln!("poll_echo: send: {e}");
    }
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:9001".to_string();
    let mut history = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--retain" => history = Some(Vec::new()),
            _ => addr = arg,
        }
    }
    match raise_open_file_limit() {
        Ok(limit) => eprintln!("poll_echo: open-file limit {limit}"),
        Err(e) => eprintln!("poll_echo: could not raise the open-file limit: {e}"),
    }
    let listener = TcpListener::bind(&addr)?;
    listener.set_nonblocking(true)?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let mut conns: Vec<WebSocket<TcpStream>> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        // Wait for input, for room to write where output waits, or for the
        // nearest deadline.
        fds.clear();
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let now = Instant::now();
        let mut wait = MAX_WAIT;
        for ws in &conns {
            let waiting = ws.connection().buffered_amount() > 0;
            fds.push(libc::pollfd {
                fd: ws.get_ref().as_raw_fd(),
                events: libc::POLLIN | if waiting { libc::POLLOUT } else { 0 },
                revents: 0,
            });
            if let Some(deadline) = ws.deadline() {
                wait = wait.min(deadline.saturating_duration_since(now));
            }
        }
        // Rounded up, so a deadline is due when `poll` returns.
        let timeout_ms = wait.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        // Serve the connections that are ready, or whose deadline is due
        // (`read` passes the time in); drop those that are over.
        let now = Instant::now();
        let mut i = 0;
        conns.retain_mut(|ws| {
            i += 1;
            let due = ws.deadline().is_some_and(|d| d <= now);
            if fds[i].revents == 0 && !due {
                return true;
            }
            let over = serve(ws, &mut history);
            let _ = ws.flush();
            !over
        });
        // Accept every waiting connection.
        if fds[0].revents != 0 {
            loop {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        if tcp.set_nonblocking(true).is_err() {
                            continue;
                        }
                        let _ = tcp.set_nodelay(true);
                        let mut ws = WebSocket::from_connection(Connection::server(Config::default()), tcp);
                        if !serve(&mut ws, &mut history) {
                            conns.push(ws);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        // Out of file descriptors, for example: try again on the next pass.
                        eprintln!("poll_echo: accept: {e}");
                        break;
                    }
                }
            }
        }
    }
}
