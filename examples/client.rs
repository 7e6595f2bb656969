//! A command-line client: sends each line of stdin as a text message and
//! prints each message received; closes with 1000 when stdin ends and exits
//! 0 after the closing handshake, non-zero if the handshake or the protocol
//! fails.
//!
//! ```text
//! cargo run --example client ws://127.0.0.1:9999/
//! ```

use std::io::BufRead;
use std::process::exit;
use std::sync::mpsc;
use std::time::Duration;
use wsmachine::blocking::{self, Error};
use wsmachine::{CloseCode, Event, ReadyState};

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: client ws://HOST[:PORT]/PATH");
        exit(2);
    };
    let (mut ws, _response) = blocking::connect(&url).unwrap_or_else(|e| {
        eprintln!("{url}: {e}");
        exit(1);
    });
    // Wake up every 20 ms to look at stdin (the driver bounds reads by the
    // machine's deadlines as well: keepalive, the close timeout).
    ws.set_read_timeout(Some(Duration::from_millis(20)));

    // Lines from stdin arrive on a channel; `None` marks its end.
    let (tx, rx) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Some(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });

    let mut failed = false;
    loop {
        if ws.connection().state() == ReadyState::Open {
            while let Ok(line) = rx.try_recv() {
                let sent = match line {
                    Some(text) => ws.send(&text),
                    None => ws.close(CloseCode::NORMAL, ""),
                };
                if let Err(e) = sent {
                    eprintln!("{e}");
                }
            }
        }
        match ws.read() {
            Ok(Event::Text(text)) => println!("{text}"),
            Ok(Event::Binary(data)) => println!("<{} bytes of binary>", data.len()),
            Ok(Event::Closed(info)) => {
                if !info.was_clean {
                    eprintln!("connection closed uncleanly ({})", info.code);
                    failed = true;
                }
            }
            Ok(_) => {}
            Err(e) if e.is_would_block() => {}
            Err(Error::Closed) => break,
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    exit(i32::from(failed));
}
