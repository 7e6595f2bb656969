//! The Autobahn Testsuite client driver: runs every case the
//! `wstest -m fuzzingserver` instance offers, echoing each message, then
//! asks it to write the reports.
//!
//! ```text
//! cargo run --release --example autobahn_client [ws://127.0.0.1:9002] [AGENT]
//! ```

mod common;

use common::Driver;
use std::net::TcpStream;
use wsmachine::{ClientRequest, Config, Connection, Event, Message};

/// Connects to `base` + `path` and hands every event to `on_event`.
fn run(base: &str, path: &str, mut on_event: impl FnMut(&mut Connection, Event)) -> Result<(), String> {
    let url = format!("{base}{path}");
    let request = ClientRequest::from_url(&url).map_err(|e| format!("{url}: {e}"))?;
    let stream = TcpStream::connect((request.host().trim_matches(['[', ']']), request.port()))
        .map_err(|e| format!("connect {url}: {e}"))?;
    let conn = Connection::client(request, Config::default()).map_err(|e| e.to_string())?;
    let mut ws = Driver::new(conn, stream);
    while let Some(event) = ws.next_event() {
        on_event(&mut ws.conn, event);
    }
    Ok(())
}

fn main() {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9002".to_string());
    let agent = std::env::args().nth(2).unwrap_or_else(|| "wsmachine".to_string());
    let mut count = None;
    let result = run(&base, "/getCaseCount", |_, event| {
        if let Event::Text(t) = event {
            count = t.as_str().trim().parse::<u32>().ok();
        }
    });
    let Some(count) = count else {
        eprintln!("could not get the case count: {result:?}");
        std::process::exit(1);
    };
    println!("{count} cases");
    for case in 1..=count {
        let path = format!("/runCase?case={case}&agent={agent}");
        let outcome = run(&base, &path, |conn, event| {
            // Echo every message; the machine answers pings and closes.
            let _ = match event {
                Event::Text(t) => conn.send(Message::Text(t)),
                Event::Binary(b) => conn.send(Message::Binary(b)),
                _ => Ok(()),
            };
        });
        if let Err(e) = outcome {
            eprintln!("case {case}: {e}");
        }
    }
    if let Err(e) = run(&base, &format!("/updateReports?agent={agent}"), |_, _| {}) {
        eprintln!("updateReports: {e}");
        std::process::exit(1);
    }
    println!("reports updated");
}
