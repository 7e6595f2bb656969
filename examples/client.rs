//! A command-line client: sends each line of stdin as a text message and
//! prints each message received; closes with 1000 when stdin ends and exits
//! 0 after the closing handshake, non-zero if the handshake or the protocol
//! fails.
//!
//! ```text
//! cargo run --example client ws://127.0.0.1:9999/
//! cargo run --features rustls --example client -- [--ca FILE.pem]... wss://localhost:9443/
//! ```
//!
//! `wss://` URLs need the `rustls` feature; the server's certificate is
//! checked against Mozilla's roots (webpki-roots) and each `--ca` file's
//! certificates (for a private or self-signed CA).

use std::io::BufRead;
use std::process::exit;
use std::sync::mpsc;
use std::time::Duration;
use wsmachine::blocking::{self, Error, MaybeTlsStream, WebSocket};
use wsmachine::{CloseCode, Event, ReadyState};

const USAGE: &str = "usage: client [--ca FILE.pem]... ws[s]://HOST[:PORT]/PATH";

/// Connects, trusting the `--ca` files besides the public roots.
#[cfg(feature = "rustls")]
fn connect(url: &str, cas: &[String]) -> Result<WebSocket<MaybeTlsStream>, Box<dyn std::error::Error>> {
    use wsmachine::tls::{self, TlsConnector};
    if cas.is_empty() {
        return Ok(blocking::connect(url)?.0);
    }
    let mut roots = tls::webpki_roots();
    for file in cas {
        for ca in tls::load_certs(file)? {
            roots.add(ca).map_err(|e| format!("{file}: {e}"))?;
        }
    }
    let tls = TlsConnector::with_roots(roots)?;
    let request = wsmachine::ClientRequest::from_url(url)?;
    Ok(blocking::connect_with_tls(request, wsmachine::Config::default(), &tls)?.0)
}

#[cfg(not(feature = "rustls"))]
fn connect(url: &str, cas: &[String]) -> Result<WebSocket<MaybeTlsStream>, Box<dyn std::error::Error>> {
    if !cas.is_empty() {
        return Err("--ca needs the rustls feature (cargo run --features rustls --example client)".into());
    }
    Ok(blocking::connect(url)?.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut cas = Vec::new();
    let mut url = None;
    while let Some(arg) = args.next() {
        match (arg.as_str(), &url) {
            ("--ca", _) => match args.next() {
                Some(file) => cas.push(file),
                None => {
                    eprintln!("{USAGE}");
                    exit(2);
                }
            },
            (_, None) if !arg.starts_with("--") => url = Some(arg),
            _ => {
                eprintln!("{USAGE}");
                exit(2);
            }
        }
    }
    let Some(url) = url else {
        eprintln!("{USAGE}");
        exit(2);
    };
    let mut ws = connect(&url, &cas).unwrap_or_else(|e| {
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
