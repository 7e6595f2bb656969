//! A command-line client: sends each line of stdin as a text message and
//! prints each message received; closes with 1000 when stdin ends.
//!
//! ```text
//! cargo run --example client ws://127.0.0.1:9999/
//! ```

mod common;

use common::Driver;
use std::io::BufRead;
use std::net::TcpStream;
use std::process::exit;
use std::sync::mpsc;
use std::time::Duration;
use wsmachine::{ClientRequest, CloseCode, Config, Connection, Event, ReadyState};

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: client ws://HOST[:PORT]/PATH");
        exit(2);
    };
    let request = ClientRequest::from_url(&url).unwrap_or_else(|e| {
        eprintln!("{url}: {e}");
        exit(2);
    });
    if request.is_secure() {
        eprintln!("wss:// needs TLS, which this example does not provide");
        exit(2);
    }
    let stream = TcpStream::connect((request.host().trim_matches(['[', ']']), request.port())).unwrap_or_else(|e| {
        eprintln!("cannot connect to {}:{}: {e}", request.host(), request.port());
        exit(1);
    });
    let conn = Connection::client(request, Config::default()).unwrap_or_else(|e| {
        eprintln!("{e}");
        exit(2);
    });
    let mut ws = Driver::new(conn, stream);

    // Lines from stdin arrive on a channel; `None` marks its end.
    let (tx, rx) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });

    let mut failed = false;
    let mut clean = false;
    loop {
        if ws.conn.state() == ReadyState::Open {
            while let Ok(line) = rx.try_recv() {
                let sent = match line {
                    Some(text) => ws.conn.send_text(&text),
                    None => ws.conn.close(CloseCode::NORMAL, ""),
                };
                if let Err(e) = sent {
                    eprintln!("{e}");
                }
            }
        }
        let Some(event) = ws.next_event_or_idle(Some(Duration::from_millis(20))) else {
            break;
        };
        match event {
            None => continue,
            Some(Event::Text(text)) => println!("{text}"),
            Some(Event::Binary(data)) => println!("<{} bytes of binary>", data.len()),
            Some(Event::Error(e)) => {
                eprintln!("error: {e}");
                failed = true;
            }
            Some(Event::Closed(info)) => clean = info.was_clean,
            Some(_) => {}
        }
    }
    if failed || !clean {
        exit(1);
    }
}
