//! A deadline on every wait: the opening handshake is bounded in time
//! (`Config::handshake_timeout`), reported through `poll_timeout` like every
//! other deadline, for the server (the whole request head) and the client
//! (the whole response head).

use crate::util::{client, events, take_output, upgrade_request};
use std::time::Duration;
use wsmachine::{Accept, Config, Connection, Event, Failure, Instant, ReadyState};

const SECOND: u64 = 1000;

fn handshake_failed_with_timeout(events: &[Event]) -> bool {
    matches!(
        events,
        [Event::Error(Failure::HandshakeTimeout), Event::Closed(info)] if !info.was_clean
    )
}

// A server that gets no request, or one byte per second of it, answers 408
// (RFC 9110 §15.5.9: the server would like to close this unused connection)
// and closes once the handshake timeout (default 10 s) has passed since the
// connection was made.
#[test]
fn server_answers_408_to_a_request_that_takes_too_long() {
    let mut server = Connection::server(Config::default());
    assert_eq!(Config::default().handshake_timeout, Duration::from_secs(10));
    // Started with the connection: due at once, so the driver passes the time in.
    assert_eq!(server.poll_timeout(), Some(Instant::from_millis(0)));
    server.handle_timeout(Instant::from_millis(0));
    assert_eq!(server.poll_timeout(), Some(Instant::from_millis(10 * SECOND)));
    // A byte per second of the request: each read is on time, the whole is not.
    let request = upgrade_request("");
    for (i, byte) in request.bytes().take(9).enumerate() {
        server.handle_timeout(Instant::from_millis(i as u64 * SECOND));
        server.receive(&[byte]);
        assert!(events(&mut server).is_empty());
    }
    server.handle_timeout(Instant::from_millis(10 * SECOND - 1));
    assert!(events(&mut server).is_empty(), "not before the deadline");
    server.handle_timeout(Instant::from_millis(10 * SECOND));
    assert!(handshake_failed_with_timeout(&events(&mut server)));
    let out = String::from_utf8(take_output(&mut server)).unwrap();
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert_eq!(server.state(), ReadyState::Closed);
    assert!(server.should_close_transport());
    assert_eq!(server.poll_timeout(), None);
}

// The timeout bounds the request head only: once it is in, the deadline is
// met, and the application's decision takes as long as it takes.
#[test]
fn a_request_on_time_stops_the_handshake_timer() {
    let config = Config {
        handshake_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let mut server = Connection::server(config);
    server.handle_timeout(Instant::from_millis(0));
    server.receive(upgrade_request("").as_bytes());
    let Some(Event::Request(request)) = server.poll_event() else {
        panic!("expected the request")
    };
    assert_eq!(server.poll_timeout(), None);
    server.handle_timeout(Instant::from_millis(60 * SECOND));
    server.accept(request, Accept::new()).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
    assert_eq!(server.state(), ReadyState::Open);
}

// A client whose server never answers (or answers too slowly) fails with
// `Failure::HandshakeTimeout`; it sends nothing more.
#[test]
fn client_fails_when_the_response_takes_too_long() {
    let mut client = client(Config {
        handshake_timeout: Duration::from_millis(1500),
        ..Config::default()
    });
    take_output(&mut client); // the request, written
    client.handle_timeout(Instant::from_millis(100));
    assert_eq!(client.poll_timeout(), Some(Instant::from_millis(1600)));
    client.receive(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
    assert!(events(&mut client).is_empty());
    client.handle_timeout(Instant::from_millis(1600));
    assert!(handshake_failed_with_timeout(&events(&mut client)));
    assert!(take_output(&mut client).is_empty());
    assert_eq!(client.state(), ReadyState::Closed);
}

// `Duration::MAX` means no limit: no deadline is ever reported.
#[test]
fn an_unrepresentable_handshake_timeout_means_none() {
    let mut server = Connection::server(Config {
        handshake_timeout: Duration::MAX,
        ..Config::default()
    });
    server.handle_timeout(Instant::from_millis(5));
    assert_eq!(server.poll_timeout(), None);
}
