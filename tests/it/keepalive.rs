//! Keepalive and the idle timeout as sans-IO deadlines (issue "real
//! internet"): a ping when nothing was received for `ping_interval`, a
//! failure with 1011 when no pong follows within `ping_timeout`, the
//! round-trip time of the last one, and the idle timeout's closing
//! handshake. Python's `websockets` is the model (20 s and 20 s).

use crate::util::{OP_PING, OP_PONG, OP_TEXT, client_frame, closed, events, open, output_frames, take_output};
use std::time::Duration;
use wsmachine::{Config, Connection, Event, Failure, Instant, ReadyState, Role};

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn keepalive(interval_ms: u64, timeout_ms: Option<u64>) -> Config {
    Config {
        ping_interval: Some(Duration::from_millis(interval_ms)),
        ping_timeout: timeout_ms.map(Duration::from_millis),
        ..Config::default()
    }
}

/// The payloads of the pings `conn` has queued, taking its output.
fn pings_sent(conn: &mut Connection) -> Vec<Vec<u8>> {
    output_frames(conn)
        .into_iter()
        .filter(|f| f.opcode == OP_PING)
        .map(|f| f.payload)
        .collect()
}

#[test]
fn defaults_are_those_of_python_websockets() {
    let c = Config::default();
    assert_eq!(c.ping_interval, Some(Duration::from_secs(20)));
    assert_eq!(c.ping_timeout, Some(Duration::from_secs(20)));
    assert_eq!(c.idle_timeout, None);
}

// A ping when nothing was received for the interval, in both roles; its
// pong gives the round-trip time; then the next ping an interval later.
#[test]
fn a_ping_after_an_interval_of_silence_and_its_round_trip_time() {
    for role in [Role::Server, Role::Client] {
        let mut conn = open(role, keepalive(1000, Some(500)));
        conn.handle_timeout(at(0));
        assert_eq!(conn.poll_timeout(), Some(at(1000)));
        conn.handle_timeout(at(999));
        assert!(pings_sent(&mut conn).is_empty(), "not before the interval");
        conn.handle_timeout(at(1000));
        let pings = pings_sent(&mut conn);
        assert_eq!(pings.len(), 1, "{role:?}");
        // The pong is due within the timeout.
        assert_eq!(conn.poll_timeout(), Some(at(1500)));
        // The peer answers 42 ms later with the same payload.
        conn.handle_timeout(at(1042));
        let pong = crate::util::frame_to(role, true, OP_PONG, &pings[0]);
        conn.receive(&pong);
        assert!(matches!(&events(&mut conn)[..], [Event::Pong(_)]));
        assert_eq!(conn.keepalive_rtt(), Some(Duration::from_millis(42)), "{role:?}");
        assert_eq!(conn.state(), ReadyState::Open);
        // The next ping an interval after the last bytes received.
        assert_eq!(
            conn.poll_timeout(),
            Some(at(1042)),
            "restarted by the pong's bytes: due at once"
        );
        conn.handle_timeout(at(1042));
        assert_eq!(conn.poll_timeout(), Some(at(2042)));
    }
}

// Bytes received postpone the ping: a connection that hears from its peer
// sends no keepalive pings.
#[test]
fn traffic_from_the_peer_postpones_the_ping() {
    let mut conn = open(Role::Server, keepalive(1000, Some(1000)));
    for t in (0..10_000).step_by(500) {
        conn.handle_timeout(at(t));
        conn.receive(&client_frame(true, OP_TEXT, b"still here"));
        assert_eq!(events(&mut conn).len(), 1);
    }
    assert!(pings_sent(&mut conn).is_empty());
}

// No pong (and nothing else) within the timeout: the connection fails with
// 1011 and a close frame saying why.
#[test]
fn no_pong_in_time_fails_with_1011() {
    let mut conn = open(Role::Server, keepalive(1000, Some(500)));
    conn.handle_timeout(at(0));
    conn.handle_timeout(at(1000));
    assert_eq!(pings_sent(&mut conn).len(), 1);
    conn.handle_timeout(at(1499));
    assert!(events(&mut conn).is_empty());
    conn.handle_timeout(at(1500));
    assert_eq!(
        events(&mut conn),
        [
            Event::Error(Failure::KeepaliveTimeout),
            closed(1011, "keepalive ping timeout", false)
        ]
    );
    let out = take_output(&mut conn);
    assert_eq!(&out[..4], [0x88, 24, 0x03, 0xf3], "a close frame with 1011");
    assert!(conn.should_close_transport());
}

// A peer in the middle of a long frame cannot send its pong before the
// frame ends (RFC 6455 §5.4): bytes arriving push the pong's deadline.
#[test]
fn bytes_of_a_long_frame_push_the_pong_deadline() {
    let mut conn = open(Role::Server, keepalive(1000, Some(500)));
    conn.handle_timeout(at(0));
    conn.handle_timeout(at(1000));
    let ping = pings_sent(&mut conn).remove(0);
    // A 10,000-byte frame arriving 100 bytes every 300 ms.
    let frame = client_frame(true, OP_TEXT, &[b'x'; 10_000]);
    let mut t = 1000;
    for piece in frame.chunks(100) {
        t += 300;
        conn.handle_timeout(at(t));
        conn.receive(piece);
        assert_eq!(conn.state(), ReadyState::Open, "at {t} ms");
        let _ = events(&mut conn);
    }
    // Then the pong: the connection lives on; the RTT counts from the ping.
    t += 10;
    conn.handle_timeout(at(t));
    conn.receive(&client_frame(true, OP_PONG, &ping));
    let _ = events(&mut conn);
    assert_eq!(conn.keepalive_rtt(), Some(Duration::from_millis(t - 1000)));
    assert_eq!(conn.state(), ReadyState::Open);
}

// Any pong ends the wait (a peer may answer only the most recent ping, RFC
// 6455 §5.5.3); only our payload measures the round trip.
#[test]
fn any_pong_ends_the_wait() {
    let mut conn = open(Role::Server, keepalive(1000, Some(500)));
    conn.handle_timeout(at(0));
    conn.handle_timeout(at(1000));
    assert_eq!(pings_sent(&mut conn).len(), 1);
    conn.handle_timeout(at(1100));
    conn.receive(&client_frame(true, OP_PONG, b"the application's"));
    let _ = events(&mut conn);
    conn.handle_timeout(at(1100));
    conn.handle_timeout(at(1600));
    assert_eq!(conn.state(), ReadyState::Open, "no failure after the timeout");
    assert_eq!(conn.keepalive_rtt(), None);
}

// Without a pong timeout the machine keeps pinging every interval and never
// fails; without an interval it sends nothing.
#[test]
fn keepalive_is_tunable_and_can_be_off() {
    let mut conn = open(Role::Client, keepalive(1000, None));
    conn.handle_timeout(at(0));
    for t in 1..=5 {
        conn.handle_timeout(at(t * 1000));
    }
    // One ping waits for its pong; no second ping is sent over it.
    assert_eq!(pings_sent(&mut conn).len(), 1);
    assert_eq!(conn.state(), ReadyState::Open);

    let mut conn = open(
        Role::Server,
        Config {
            ping_interval: None,
            ..Config::default()
        },
    );
    conn.handle_timeout(at(0));
    assert_eq!(conn.poll_timeout(), None);
    conn.handle_timeout(at(3_600_000));
    assert!(pings_sent(&mut conn).is_empty());
}

// The idle timeout: no message either way for its duration closes the
// connection with 1001; messages restart it, keepalive pings do not.
#[test]
fn idle_timeout_closes_with_1001() {
    let config = Config {
        idle_timeout: Some(Duration::from_millis(5000)),
        ping_interval: Some(Duration::from_millis(1000)),
        ping_timeout: None,
        ..Config::default()
    };
    let mut conn = open(Role::Server, config);
    conn.handle_timeout(at(0));
    conn.handle_timeout(at(3000));
    conn.send("a message").unwrap(); // restarts the idle timer
    conn.handle_timeout(at(3000));
    // Pings and pongs go back and forth; they are not messages.
    for t in (4000..8000).step_by(1000) {
        conn.handle_timeout(at(t));
        for ping in pings_sent(&mut conn) {
            conn.receive(&client_frame(true, OP_PONG, &ping));
            let _ = events(&mut conn);
        }
        assert_eq!(conn.state(), ReadyState::Open, "at {t} ms");
    }
    conn.handle_timeout(at(8000));
    assert_eq!(conn.state(), ReadyState::Closing);
    let frames = output_frames(&mut conn);
    let close = frames.iter().find(|f| f.opcode == 0x8).expect("a close frame");
    assert_eq!(close.payload[..2], 1001u16.to_be_bytes());
    // The peer's reply ends it cleanly.
    conn.receive(&crate::util::client_frame(true, 0x8, &close.payload));
    assert!(events(&mut conn).contains(&closed(1001, "idle timeout", true)));
}

// A peer that neither answers nor reads: when the keepalive pong times out
// while output is still waiting for the transport, that output (which it
// would never take, nor a close frame behind it) is dropped, so the
// transport can be closed at once instead of being held for ever.
#[test]
fn keepalive_timeout_with_output_stuck_closes_at_once() {
    let mut conn = open(Role::Server, keepalive(1000, Some(500)));
    conn.handle_timeout(at(0));
    conn.send(vec![0u8; 100_000]).unwrap(); // never taken
    conn.handle_timeout(at(1000));
    conn.handle_timeout(at(1500));
    assert_eq!(
        events(&mut conn),
        [
            Event::Error(Failure::KeepaliveTimeout),
            closed(1011, "keepalive ping timeout", false)
        ]
    );
    assert_eq!(conn.buffered_amount(), 0, "the stuck output is dropped");
    assert!(conn.should_close_transport(), "the transport is to be closed now");
}

// The same for the close timeout: our close frame still unwritten after it
// is dropped with the rest, and the transport can be closed.
#[test]
fn close_timeout_with_output_stuck_closes_at_once() {
    let mut conn = open(
        Role::Server,
        Config {
            ping_interval: None,
            close_timeout: Duration::from_millis(300),
            ..Config::default()
        },
    );
    conn.send(vec![0u8; 100_000]).unwrap();
    conn.close(wsmachine::CloseCode::NORMAL, "").unwrap();
    conn.handle_timeout(at(0));
    conn.handle_timeout(at(300));
    assert!(matches!(
        &events(&mut conn)[..],
        [Event::Error(Failure::CloseTimeout), Event::Closed(_)]
    ));
    assert_eq!(conn.buffered_amount(), 0);
    assert!(conn.should_close_transport());
}

// Bytes received do not show that the peer reads. A peer that sends (pings,
// pongs, messages: each restarts the keepalive ping) and never reads would
// otherwise hold the connection and its queued output for ever. The drain
// watch fails it (1011, output dropped) once a whole `ping_timeout` passes
// with output waiting and none of it taken.
#[test]
fn a_peer_that_sends_but_never_reads_is_failed() {
    let inputs: [(&str, Vec<u8>); 3] = [
        ("pings", client_frame(true, OP_PING, b"")),
        ("pongs", client_frame(true, OP_PONG, b"")),
        ("messages", client_frame(true, OP_TEXT, b"x")),
    ];
    for (what, input) in inputs {
        let mut conn = open(Role::Server, keepalive(1000, Some(500)));
        conn.handle_timeout(at(0));
        conn.send(vec![0u8; 100_000]).unwrap(); // never taken
        let mut failed_at = None;
        for t in (0..=5_000).step_by(100) {
            conn.handle_timeout(at(t));
            conn.receive(&input);
            let seen = events(&mut conn);
            if seen.contains(&Event::Error(Failure::KeepaliveTimeout)) {
                assert!(
                    seen.contains(&closed(1011, "keepalive ping timeout", false)),
                    "{what}: {seen:?}"
                );
                failed_at = Some(t);
                break;
            }
        }
        let t = failed_at.unwrap_or_else(|| panic!("{what}: never failed"));
        assert!((500..=1000).contains(&t), "{what}: failed at {t} ms");
        assert_eq!(conn.buffered_amount(), 0, "{what}: the output is dropped");
        assert!(conn.should_close_transport(), "{what}");
    }
}

// A slow reader is not a dead one: while the transport takes some of the
// output every period the connection stays open, however long the output
// takes to drain; once it takes nothing for a whole period, it fails.
#[test]
fn a_slow_reader_is_not_failed_until_it_stops_reading() {
    let mut conn = open(Role::Server, keepalive(1000, Some(500)));
    conn.handle_timeout(at(0));
    conn.send(vec![0u8; 100_000]).unwrap();
    let message = client_frame(true, OP_TEXT, b"x");
    for t in (0..60_000).step_by(100) {
        conn.handle_timeout(at(t));
        conn.receive(&message);
        if t % 400 == 0 {
            conn.consume_output(1);
        }
        assert!(
            events(&mut conn).iter().all(|e| matches!(e, Event::Text(_))),
            "failed at {t} ms"
        );
    }
    assert_eq!(conn.state(), ReadyState::Open);
    let mut t = 60_000;
    while conn.state() == ReadyState::Open {
        assert!(t <= 61_000, "still open {} ms after the reads stopped", t - 60_000);
        conn.handle_timeout(at(t));
        conn.receive(&message);
        t += 100;
    }
    assert!(events(&mut conn).contains(&Event::Error(Failure::KeepaliveTimeout)));
}

// With keepalive off (`ping_interval: None`) the output is not watched
// either: the application chose to detect dead peers itself.
#[test]
fn with_keepalive_off_output_is_not_watched() {
    let mut conn = open(
        Role::Server,
        Config {
            ping_interval: None,
            ..Config::default()
        },
    );
    conn.send(vec![0u8; 100_000]).unwrap();
    for t in (0..600_000).step_by(1000) {
        conn.handle_timeout(at(t));
        conn.receive(&client_frame(true, OP_PING, b""));
        assert!(events(&mut conn).iter().all(|e| matches!(e, Event::Ping(_))));
    }
    assert_eq!(conn.state(), ReadyState::Open);
    assert_eq!(conn.poll_timeout(), None);
}

// CLOSED with our last frames unwritten (the close reply, RFC 6455 §5.5.1;
// a failure's close frame): a peer that sent its close and never reads
// would keep the transport open for ever, since it closes only once the
// output is written. After `close_timeout` with none of it taken, the
// output is dropped and the transport can be closed; while some of it is
// taken each period, it is kept. Both roles.
#[test]
fn a_close_reply_the_peer_never_reads_is_dropped_after_the_close_timeout() {
    for role in [Role::Server, Role::Client] {
        for reads in [false, true] {
            let mut conn = open(
                role,
                Config {
                    close_timeout: Duration::from_millis(300),
                    ..Config::default()
                },
            );
            conn.handle_timeout(at(0));
            conn.send(vec![0u8; 100_000]).unwrap();
            conn.receive(&crate::util::frame_to(role, true, 0x8, &1000u16.to_be_bytes()));
            assert!(events(&mut conn).contains(&closed(1000, "", true)), "{role:?}");
            assert!(!conn.should_close_transport(), "{role:?}: our output waits");
            let mut t = 0;
            while conn.buffered_amount() > 0 && t <= 10_000 {
                t += 50;
                if reads {
                    conn.consume_output(1);
                }
                conn.handle_timeout(at(t));
            }
            if reads {
                assert!(conn.buffered_amount() > 0, "{role:?}: a reader's output was dropped");
                continue;
            }
            assert!((300..=600).contains(&t), "{role:?}: dropped at {t} ms");
            conn.handle_timeout(at(t + 300)); // a client waits for the server's end of stream that long
            assert!(conn.should_close_transport(), "{role:?}");
        }
    }
}

// `Duration::MAX` means never for the drain watch too: output that waits
// leaves no deadline due after `handle_timeout` (a driver would spin).
#[test]
fn a_duration_max_timeout_leaves_nothing_due() {
    let config = Config {
        ping_timeout: Some(Duration::MAX),
        close_timeout: Duration::MAX,
        ..Config::default()
    };
    let mut conn = open(Role::Server, config);
    conn.handle_timeout(at(0));
    conn.send(vec![0u8; 100_000]).unwrap();
    conn.handle_timeout(at(10));
    assert!(
        conn.poll_timeout().is_none_or(|t| t > at(10)),
        "{:?}",
        conn.poll_timeout()
    );
    conn.receive(&client_frame(true, 0x8, &1000u16.to_be_bytes()));
    assert!(events(&mut conn).contains(&closed(1000, "", true)));
    conn.handle_timeout(at(20));
    assert!(
        conn.poll_timeout().is_none_or(|t| t > at(20)),
        "{:?}",
        conn.poll_timeout()
    );
    assert!(conn.buffered_amount() > 0, "kept: never dropped");
}
