//! The Autobahn Testsuite client driver: runs every case the
//! `wstest -m fuzzingserver` instance offers, echoing each message, then
//! asks it to write the reports.
//!
//! It offers permessage-deflate (RFC 7692) twice, in order of preference:
//! with context takeover, then with `client_no_context_takeover`, both
//! allowing the server to limit our window (`client_max_window_bits`), so
//! every accept policy of cases 12.* and 13.* finds an offer it takes.
//!
//! ```text
//! cargo run --release --example autobahn_client [ws://127.0.0.1:9002] [AGENT]
//! ```

use wsmachine::blocking::{self, Error};
use wsmachine::{ClientRequest, Config, Event, Message};

/// Connects to `base` + `path` and hands every event to `on_event` until
/// the connection is over.
fn run(
    base: &str,
    path: &str,
    mut on_event: impl FnMut(&mut blocking::WebSocket<std::net::TcpStream>, Event),
) -> Result<(), Error> {
    let url = format!("{base}{path}");
    let request = ClientRequest::from_url(&url)?;
    #[cfg(feature = "deflate")]
    let request = {
        use wsmachine::deflate::DeflateConfig;
        request.deflate(DeflateConfig::default()).deflate(DeflateConfig {
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        })
    };
    let stream = std::net::TcpStream::connect((request.host().trim_matches(['[', ']']), request.port()))?;
    let _ = stream.set_nodelay(true);
    let (mut ws, _) = blocking::connect_with(stream, request, Config::default())?;
    loop {
        match ws.read() {
            Ok(event) => on_event(&mut ws, event),
            Err(Error::Closed) => return Ok(()),
            // A protocol failure the case provoked: the machine closes; keep going.
            Err(Error::Failed(_)) => {}
            Err(e) => return Err(e),
        }
    }
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
        let outcome = run(&base, &path, |ws, event| {
            // Echo every message; the machine answers pings and closes.
            let _ = match event {
                Event::Text(t) => ws.send(Message::Text(t)),
                Event::Binary(b) => ws.send(Message::Binary(b)),
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
