//! The blocking driver (`wsmachine::blocking`) over loopback TCP: the
//! server's decision on each kind of request, an echo, the closing
//! handshake, and the errors `connect` reports.

use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;
use wsmachine::blocking::{self, Decision, Error};
use wsmachine::handshake::UrlError;
use wsmachine::{Accept, CloseCode, Config, Event, HttpResponse, Message};

/// A server on a free port that answers `n` connections with `decide` and
/// echoes every message; returns its port and its thread.
fn server(n: usize, decide: fn(&wsmachine::Request) -> Decision) -> (u16, thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let mut outcomes = Vec::new();
        for _ in 0..n {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            match blocking::accept_with(tcp, Config::default(), decide) {
                Ok(mut ws) => loop {
                    match ws.read() {
                        Ok(Event::Text(t)) => ws.send(Message::Text(t)).unwrap(),
                        Ok(Event::Binary(b)) => ws.send(b).unwrap(),
                        Ok(Event::Closed(info)) => outcomes.push(format!("closed {} {}", info.code, info.was_clean)),
                        Ok(_) => {}
                        Err(Error::Closed) => break,
                        Err(e) => panic!("server: {e}"),
                    }
                },
                Err(Error::NotUpgraded) => outcomes.push("not upgraded".into()),
                Err(e) => outcomes.push(format!("error: {e}")),
            }
        }
        outcomes
    });
    (port, handle)
}

/// Sends a raw request and reads the whole answer (the server closes after it).
fn raw(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn decide(request: &wsmachine::Request) -> Decision {
    match (request.is_upgrade(), request.path.as_str()) {
        (true, "/echo") => Decision::Accept(Accept::new()),
        (true, _) => Decision::Respond(HttpResponse::new(403).body("no")),
        (false, "/") => Decision::Respond(HttpResponse::new(200).body("a page")),
        // "Accept" for a plain request: 426, it cannot be upgraded (RFC 6455 §4.2.2).
        (false, _) => Decision::Accept(Accept::new()),
    }
}

#[test]
fn echo_and_close_through_the_blocking_driver() {
    let (port, server) = server(1, decide);
    let (mut ws, response) = blocking::connect(&format!("ws://127.0.0.1:{port}/echo")).unwrap();
    assert_eq!(response.status, 101);
    ws.send("hello").unwrap();
    assert_eq!(ws.read().unwrap(), Event::Text("hello".into()));
    ws.send(&[1u8, 2, 3]).unwrap();
    assert_eq!(ws.read().unwrap(), Event::Binary(vec![1, 2, 3].into()));
    ws.close(CloseCode::NORMAL, "bye").unwrap();
    // RFC 6455 §7.1.1: the server answers and closes TCP first.
    let mut closed = None;
    loop {
        match ws.read() {
            Ok(Event::Closed(info)) => closed = Some(info),
            Ok(_) => {}
            Err(Error::Closed) => break,
            Err(e) => panic!("client: {e}"),
        }
    }
    let closed = closed.expect("Event::Closed");
    assert!(closed.was_clean);
    assert_eq!(closed.code, CloseCode::NORMAL);
    assert_eq!(server.join().unwrap(), ["closed 1000 true"]);
}

#[test]
fn each_decision_gets_its_answer() {
    let (port, server) = server(3, decide);
    // A rejected upgrade: the client sees the status.
    match blocking::connect(&format!("ws://127.0.0.1:{port}/other")) {
        Err(Error::Failed(wsmachine::Failure::Handshake { response, .. })) => {
            assert_eq!(response.expect("the response").status, 403)
        }
        other => panic!("expected a handshake failure, got {other:?}"),
    }
    // A plain request answered with a page.
    let page = raw(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(
        page.starts_with("HTTP/1.1 200 OK\r\n") && page.ends_with("a page"),
        "{page}"
    );
    // A plain request "accepted": 426 naming version 13 (RFC 6455 §4.4).
    let answer = raw(port, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 426 "), "{answer}");
    assert!(answer.contains("Sec-WebSocket-Version: 13\r\n"), "{answer}");
    assert_eq!(server.join().unwrap(), ["not upgraded"; 3]);
}

#[test]
fn connect_reports_what_is_wrong_with_the_url() {
    assert!(matches!(
        blocking::connect("http://127.0.0.1/"),
        Err(Error::Url(UrlError::Scheme))
    ));
    assert!(matches!(
        blocking::connect("ws://127.0.0.1:0/"),
        Err(Error::Url(UrlError::Port))
    ));
    // With the `rustls` feature wss:// is supported (tests/it/tls.rs).
    #[cfg(not(feature = "rustls"))]
    assert!(matches!(
        blocking::connect("wss://127.0.0.1/"),
        Err(Error::TlsNotSupported)
    ));
}

/// A transport whose peer sends without end and never reads: every write
/// would block, every read brings more pings. Counts the bytes read.
struct NeverReads {
    read: usize,
}

impl std::io::Read for NeverReads {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One masked, empty ping per read.
        let ping = [0x89, 0x80, 1, 2, 3, 4];
        buf[..ping.len()].copy_from_slice(&ping);
        self.read += ping.len();
        Ok(ping.len())
    }
}

impl std::io::Write for NeverReads {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl blocking::Transport for NeverReads {}

// Backpressure runs both ways (issue "hostile peers", RFC 6455 §5.5.3): while
// more than the high-water mark of output waits for a transport that takes
// nothing, the driver reads nothing, so a peer that sends but never reads
// cannot make the machine buffer without end.
#[test]
fn the_driver_stops_reading_while_the_output_is_above_the_high_water_mark() {
    let conn = wsmachine::Connection::open_server(Config::default());
    let mut ws = blocking::WebSocket::from_connection(conn, NeverReads { read: 0 });
    // Under the mark: each call reads (a ping, answered into one pong).
    for _ in 0..1000 {
        match ws.read() {
            Ok(Event::Ping(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(ws.get_ref().read, 6000);
    let pongs_queued = ws.connection().buffered_amount();
    assert_eq!(pongs_queued, 2, "one pong queued, the newest waits in its slot");
    // Over the mark: nothing more is read.
    ws.connection_mut()
        .send(vec![0u8; blocking::DEFAULT_HIGH_WATER_MARK + 1])
        .unwrap();
    let read_before = ws.get_ref().read;
    for _ in 0..100 {
        match ws.read() {
            Ok(Event::Ping(_)) => {}
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        ws.get_ref().read,
        read_before,
        "nothing read while the output is above the mark"
    );
}

// A deadline on every wait: a client that connects and sends nothing (or a
// byte now and then) is answered 408 and dropped after the handshake
// timeout, on a blocking socket without a read timeout of its own (the
// driver bounds each read by the machine's deadline).
#[test]
fn accept_gives_up_on_a_silent_client() {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let config = Config {
            handshake_timeout: Duration::from_millis(600),
            ..Config::default()
        };
        let started = std::time::Instant::now();
        let result = blocking::accept_with(tcp, config, |_| Decision::Accept(Accept::new()));
        (result.map(|_| ()), started.elapsed())
    });
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A byte every 200 ms: each read is on time, the whole request is not.
    for byte in b"GET / HT" {
        thread::sleep(Duration::from_millis(200));
        if tcp.write_all(&[*byte]).is_err() {
            break;
        }
    }
    let (result, took) = server.join().unwrap();
    assert!(
        matches!(result, Err(Error::Failed(wsmachine::Failure::HandshakeTimeout))),
        "{result:?}"
    );
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
}

// Keepalive through the blocking driver on a blocking socket without a read
// timeout of its own: the driver bounds each read by the machine's next
// deadline, so a silent peer gets its ping and then the 1011 close.
#[test]
fn keepalive_fires_on_a_blocking_socket() {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let config = Config {
            ping_interval: Some(Duration::from_millis(300)),
            ping_timeout: Some(Duration::from_millis(300)),
            ..Config::default()
        };
        let mut ws = blocking::accept_with(tcp, config, |_| Decision::Accept(Accept::new())).unwrap();
        let started = std::time::Instant::now();
        let first = ws.read();
        (first.map(|_| ()), started.elapsed())
    });
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let opened = std::time::Instant::now();
    let mut ping = [0u8; 10];
    tcp.read_exact(&mut ping).unwrap();
    let ping_after = opened.elapsed();
    assert_eq!(ping[..2], [0x89, 8], "the keepalive ping");
    assert!(
        ping_after < Duration::from_millis(550),
        "the ping is written when due: {ping_after:?}"
    );
    let (result, took) = server.join().unwrap();
    assert!(
        matches!(result, Err(Error::Failed(wsmachine::Failure::KeepaliveTimeout))),
        "{result:?}"
    );
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    let mut close = Vec::new();
    let _ = tcp.read_to_end(&mut close);
    assert_eq!(close[0], 0x88, "then the close frame");
    assert_eq!(close[2..4], 1011u16.to_be_bytes());
}

// The caller's read timeout (`WebSocket::set_read_timeout`) and the
// machine's deadlines bound a blocking read together: with keepalive due in
// 20 s, a 50 ms read timeout still returns `WouldBlock` after 50 ms, and the
// keepalive deadline is not lost.
#[test]
fn the_callers_read_timeout_and_the_deadlines_both_bound_a_read() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = blocking::accept(tcp).unwrap();
        ws.set_read_timeout(Some(Duration::from_millis(50)));
        let mut waits = Vec::new();
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let result = ws.read();
            assert!(matches!(&result, Err(e) if e.is_would_block()), "{result:?}");
            waits.push(started.elapsed());
        }
        (waits, ws.connection().poll_timeout().is_some())
    });
    let (_client, _) = blocking::connect(&format!("ws://127.0.0.1:{port}/")).unwrap();
    let (waits, keepalive_pending) = server.join().unwrap();
    for wait in waits {
        assert!(
            wait >= Duration::from_millis(45) && wait < Duration::from_secs(2),
            "{wait:?}"
        );
    }
    assert!(keepalive_pending, "the keepalive deadline is still there");
}

/// A transport whose peer is gone but whose socket stays: every read and
/// write would block. Counts the reads.
struct Stalled {
    reads: usize,
}

impl std::io::Read for Stalled {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        self.reads += 1;
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

impl std::io::Write for Stalled {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl blocking::Transport for Stalled {}

// Keepalive through the blocking driver on a non-blocking transport whose
// peer neither reads nor answers: after the ping and its timeout the
// connection ends (`Err(Closed)`) even though its output was never taken.
#[test]
fn keepalive_gives_up_a_peer_that_neither_reads_nor_answers() {
    let config = Config {
        ping_interval: Some(Duration::from_millis(100)),
        ping_timeout: Some(Duration::from_millis(100)),
        ..Config::default()
    };
    let mut ws = blocking::WebSocket::from_connection(wsmachine::Connection::open_server(config), Stalled { reads: 0 });
    ws.connection_mut().send(vec![0u8; 100_000]).unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    loop {
        match ws.read() {
            Err(Error::Closed) => break,
            Err(e) if e.is_would_block() => {}
            other => seen.push(format!("{:?}", other.map_err(|e| e.to_string()))),
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still not over: {seen:?}");
        thread::sleep(Duration::from_millis(5));
    }
    assert!(seen[0].contains("keepalive"), "{seen:?}");
    assert!(seen[1].contains("Closed"), "{seen:?}");
}

// A non-blocking `read()` near a deadline returns at once: one read of the
// transport, no spinning until the deadline (a poll loop serving many
// connections must not stall on one).
#[test]
fn a_non_blocking_read_near_a_deadline_does_not_spin() {
    let config = Config {
        ping_interval: Some(Duration::from_millis(4)),
        ping_timeout: None,
        ..Config::default()
    };
    let mut ws = blocking::WebSocket::from_connection(wsmachine::Connection::open_server(config), Stalled { reads: 0 });
    assert!(matches!(ws.read(), Err(e) if e.is_would_block()));
    assert_eq!(ws.get_ref().reads, 1, "the transport was read once");
}

/// A stream that serves its input in one read, then says `WouldBlock`, and
/// counts the reads.
struct Counted {
    input: Vec<u8>,
    reads: std::rc::Rc<std::cell::Cell<usize>>,
}

impl std::io::Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads.set(self.reads.get() + 1);
        if self.input.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        Ok(n)
    }
}

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl blocking::Transport for Counted {}

// One read per readiness event: `read` reads once and returns the first
// message; `read_buffered` returns the others those bytes hold without
// touching the stream, then `None`; a further `read` is what reads again.
#[test]
fn read_buffered_takes_what_one_read_brought_without_reading_again() {
    let reads = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut input = Vec::new();
    for text in ["one", "two", "three"] {
        input.extend(crate::util::client_frame(true, crate::util::OP_TEXT, text.as_bytes()));
    }
    let stream = Counted {
        input,
        reads: reads.clone(),
    };
    let mut ws = blocking::WebSocket::from_connection(wsmachine::Connection::open_server(Config::default()), stream);
    assert!(matches!(ws.read(), Ok(Event::Text(t)) if &*t == "one"));
    assert_eq!(reads.get(), 1);
    assert!(matches!(ws.read_buffered(), Some(Ok(Event::Text(t))) if &*t == "two"));
    assert!(matches!(ws.read_buffered(), Some(Ok(Event::Text(t))) if &*t == "three"));
    assert!(ws.read_buffered().is_none());
    assert_eq!(reads.get(), 1, "read_buffered never reads");
    assert!(matches!(ws.read(), Err(e) if e.is_would_block()));
    assert_eq!(reads.get(), 2);
}

/// A non-blocking transport that takes at most 1,000 bytes per write and
/// would block on every other write; keeps what it took, and notes whether
/// it was handed bytes inside `watched` (the application's payload).
struct Trickle {
    taken: Vec<u8>,
    calls: usize,
    watched: std::ops::Range<usize>,
    saw_payload: bool,
}

impl std::io::Read for Trickle {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

impl std::io::Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_vectored(&[std::io::IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls % 2 == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let mut room = 1000;
        let before = self.taken.len();
        for b in bufs {
            if !b.is_empty() && self.watched.contains(&(b.as_ptr() as usize)) {
                self.saw_payload = true;
            }
            let n = b.len().min(room);
            self.taken.extend_from_slice(&b[..n]);
            room -= n;
        }
        Ok(self.taken.len() - before)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl blocking::Transport for Trickle {}

// A server's long borrowed payload goes to the stream straight from the
// application's buffer (`Connection::send_direct`), also when the stream
// takes a little at a time and would block: what `send` and the flushes
// after it wrote is exactly the frames (RFC 6455 §5.2) of the messages
// sent, in order, and the payload was handed to the stream uncopied.
#[test]
fn a_long_borrowed_payload_is_written_without_a_copy() {
    let payload: Vec<u8> = (0..50_000).map(|i| (i * 7 + 1) as u8).collect();
    let watched = payload.as_ptr() as usize..payload.as_ptr() as usize + payload.len();
    let stream = Trickle {
        taken: Vec::new(),
        calls: 0,
        watched,
        saw_payload: false,
    };
    let mut ws = blocking::WebSocket::from_connection(wsmachine::Connection::open_server(Config::default()), stream);
    for _ in 0..3 {
        ws.send(&payload[..]).unwrap();
        ws.send("short").unwrap();
    }
    while ws.connection().buffered_amount() > 0 {
        match ws.flush() {
            Ok(()) => {}
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(ws.get_ref().saw_payload, "the payload was copied before it was written");
    let frames = crate::util::parse_frames(&ws.get_ref().taken);
    assert_eq!(frames.len(), 6);
    for pair in frames.chunks(2) {
        assert_eq!(
            (pair[0].opcode, pair[0].fin, &pair[0].payload[..]),
            (2, true, &payload[..])
        );
        assert_eq!((pair[1].opcode, &pair[1].payload[..]), (1, &b"short"[..]));
    }
}
