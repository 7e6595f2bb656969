//! permessage-deflate (RFC 7692) against a real peer that compresses:
//! Python `websockets`, in both directions. Ignored by a plain `cargo test`:
//! scripts/interop_deflate.sh installs `websockets`, sets
//! `WSMACHINE_INTEROP_PYTHON` and runs them (`--include-ignored`).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wsmachine::blocking::{self, WebSocket};
use wsmachine::deflate::DeflateConfig;
use wsmachine::{Accept, ClientRequest, CloseCode, Config, Event, Message};

/// The Python with `websockets` that scripts/interop_deflate.sh installs.
fn python() -> String {
    std::env::var("WSMACHINE_INTEROP_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .expect("WSMACHINE_INTEROP_PYTHON names a Python with websockets: run through scripts/interop_deflate.sh")
}

fn helper() -> String {
    format!("{}/scripts/interop_deflate.py", env!("CARGO_MANIFEST_DIR"))
}

/// Kills the child (started by this test) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn messages() -> Vec<Message> {
    let rows: String = (0..3000)
        .map(|i| format!("{{\"id\":{i},\"user\":\"user{}\",\"action\":\"update\"}},", i % 17))
        .collect();
    let mut noise = Vec::with_capacity(100_000);
    let mut x = 12345u32;
    for _ in 0..100_000 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        noise.push((x >> 24) as u8);
    }
    vec![
        Message::Text("Hello".into()),
        Message::Text("".into()),
        Message::Text(rows[..300].into()),
        Message::Text(rows[..300].into()),
        Message::Text(rows.as_str().into()),
        Message::Text("é€😀".repeat(1000).as_str().into()),
        Message::Binary(vec![0u8; 200_000].into()),
        Message::Binary(noise.clone().into()),
        Message::Binary(noise[..1000].to_vec().into()),
    ]
}

fn next_message(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        match ws.read().expect("read") {
            Event::Text(t) => return Message::Text(t),
            Event::Binary(b) => return Message::Binary(b),
            Event::Ping(_) | Event::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Our client against the Python server, offering `offer`.
fn client_against(port: u16, offer: DeflateConfig, expect_in_response: &str) {
    let url = format!("ws://127.0.0.1:{port}/");
    let request = ClientRequest::from_url(&url).unwrap().deflate(offer);
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let (mut ws, response) = blocking::connect_with(stream, request, Config::default()).expect("handshake");
    let extensions = response
        .headers
        .get_str("sec-websocket-extensions")
        .unwrap_or("")
        .to_string();
    eprintln!("our client -> python server: response extensions {extensions:?}");
    assert!(extensions.contains(expect_in_response), "{extensions}");
    let params = ws.connection().deflate().expect("deflate negotiated");
    eprintln!("  agreed {params:?}");
    for m in messages() {
        ws.send(m.clone()).unwrap();
        assert!(next_message(&mut ws) == m, "echo differs");
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
    while !matches!(ws.read(), Ok(Event::Closed(_)) | Err(_)) {}
}

// Our client, the Python server compressing (RFC 7692 §7.2.2 receive path,
// §7.2.1 send path, negotiation §7.1 with websockets' defaults and with a
// server that demands no context takeover and 10-bit windows).
#[test]
#[ignore = "needs Python websockets: scripts/interop_deflate.sh runs it"]
fn our_client_with_python_server() {
    let py = python();
    let mut child = Command::new(&py)
        .arg(helper())
        .arg("server")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the python server");
    let stdout = child.stdout.take().unwrap();
    let _guard = Guard(child);
    let mut lines = BufReader::new(stdout).lines();
    let default_port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    let strict_port: u16 = lines.next().unwrap().unwrap().trim().parse().unwrap();
    client_against(default_port, DeflateConfig::default(), "permessage-deflate");
    client_against(
        default_port,
        DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        },
        "server_no_context_takeover",
    );
    client_against(
        default_port,
        DeflateConfig {
            server_max_window_bits: 9,
            client_max_window_bits: 11,
            threshold: 0,
            ..DeflateConfig::default()
        },
        "server_max_window_bits=9",
    );
    client_against(strict_port, DeflateConfig::default(), "client_max_window_bits=10");
}

// The Python client against our server (an in-process blocking echo server
// accepting permessage-deflate), with three different offers.
#[test]
#[ignore = "needs Python websockets: scripts/interop_deflate.sh runs it"]
fn python_client_with_our_server() {
    let py = python();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut ws = blocking::accept_with(stream, Config::default(), |_| {
                blocking::Decision::Accept(Accept::new().deflate(DeflateConfig {
                    threshold: 0,
                    ..DeflateConfig::default()
                }))
            })
            .expect("accept");
            assert!(ws.connection().deflate().is_some());
            loop {
                match ws.read() {
                    Ok(Event::Text(t)) => ws.send(Message::Text(t)).unwrap(),
                    Ok(Event::Binary(b)) => ws.send(Message::Binary(b)).unwrap(),
                    Ok(Event::Closed(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    });
    for offer in ["default", "nct", "small"] {
        let out = Command::new(&py)
            .arg(helper())
            .args(["client", &format!("ws://127.0.0.1:{port}/"), offer])
            .output()
            .expect("run the python client");
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "python client ({offer}) failed");
    }
    server.join().unwrap();
}
