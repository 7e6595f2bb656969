//! The tokio driver over real loopback TCP: a client from
//! `wsmachine::tokio::connect` against a server from `wsmachine::tokio::accept`.

use futures_util::stream::FusedStream;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wsmachine::tokio::{self as ws, Error};
use wsmachine::{ClientRequest, CloseCode, Config, Event, HttpResponse, Message};

type Result<T = ()> = std::result::Result<T, Error>;

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

/// Accepts one connection and echoes every message until the stream ends;
/// returns the events it saw that were not messages.
fn echo_server(listener: TcpListener) -> JoinHandle<Result<Vec<Event>>> {
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ws::accept(tcp).await?;
        let mut others = Vec::new();
        while let Some(event) = ws.next().await {
            match event? {
                Event::Text(t) => ws.send(Message::Text(t)).await?,
                Event::Binary(b) => ws.send(Message::Binary(b)).await?,
                other => others.push(other),
            }
        }
        Ok(others)
    })
}

/// The next event that is not a ping or pong.
async fn next_message<S: futures_util::Stream<Item = Result<Event>> + Unpin>(ws: &mut S) -> Event {
    loop {
        match ws.next().await.expect("stream ended").expect("error") {
            Event::Ping(_) | Event::Pong(_) => {}
            e => return e,
        }
    }
}

/// Reads to the end, returning the `Closed` event's info.
async fn read_to_end<S: futures_util::Stream<Item = Result<Event>> + Unpin>(ws: &mut S) -> wsmachine::CloseInfo {
    let mut closed = None;
    while let Some(event) = ws.next().await {
        if let Event::Closed(info) = event.expect("no error") {
            closed = Some(info);
        }
    }
    closed.expect("Event::Closed before the end")
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Sends `n` messages of 256 KiB and more from one task through `write` and
/// reads their echoes in another through `read` (both sides under
/// backpressure); returns the halves once both are done.
async fn exchange_from_two_tasks<W, R>(mut write: W, mut read: R, n: usize) -> (W, R)
where
    W: futures_util::Sink<Message, Error = Error> + Unpin + Send + 'static,
    R: futures_util::Stream<Item = Result<Event>> + Unpin + Send + 'static,
{
    let writer = tokio::spawn(async move {
        for i in 0..n {
            SinkExt::send(&mut write, Message::Binary(pattern(256 << 10 | i).into())).await?;
        }
        Ok::<_, Error>(write)
    });
    let reader = tokio::spawn(async move {
        for i in 0..n {
            match next_message(&mut read).await {
                Event::Binary(b) => assert_eq!(&b[..], &pattern(256 << 10 | i)[..], "message {i}"),
                other => panic!("unexpected {other:?}"),
            }
        }
        read
    });
    (writer.await.unwrap().unwrap(), reader.await.unwrap())
}

#[tokio::test]
async fn echoes_text_binary_and_a_mebibyte() {
    let (listener, url) = listener().await;
    let server = echo_server(listener);
    let (mut client, response) = ws::connect(&url).await.unwrap();
    assert_eq!(response.status, 101);

    client.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next_message(&mut client).await, Event::Text("hello".into()));
    client.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(next_message(&mut client).await, Event::Binary(vec![1, 2, 3].into()));

    let big = pattern(1 << 20);
    client.send(Message::Binary(big.clone().into())).await.unwrap();
    assert_eq!(next_message(&mut client).await, Event::Binary(big.into()));
    let text = "é∑🎉".repeat((1 << 20) / 9);
    client.send(Message::Text(text.as_str().into())).await.unwrap();
    let Event::Text(got) = next_message(&mut client).await else {
        panic!("not text")
    };
    assert_eq!(got.as_str(), text);

    // The client closes: the server answers and closes TCP; the client's
    // stream ends after the server's end of stream (RFC 6455 §7.1.1).
    client.close(CloseCode::NORMAL, "done").await.unwrap();
    let info = read_to_end(&mut client).await;
    assert!(info.was_clean);
    assert_eq!(info.code, CloseCode::NORMAL);
    assert!(client.is_terminated());

    let others = server.await.unwrap().unwrap();
    assert!(matches!(&others[..], [Event::Closed(i)] if i.reason == "done" && i.was_clean));
}

#[tokio::test]
async fn ping_pong_both_ways() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ws::accept(tcp).await?;
        // The server pings; the client's machine answers by itself.
        ws.ping(b"from server").await?;
        let mut seen = Vec::new();
        while let Some(event) = ws.next().await {
            seen.push(event?);
        }
        Ok::<_, Error>(seen)
    });
    let (mut client, _) = ws::connect(&url).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), Event::Ping("from server".into()));
    client.ping(b"from client").await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), Event::Pong("from client".into()));
    // `SinkExt::close`: 1000, no reason.
    SinkExt::close(&mut client).await.unwrap();
    assert_eq!(read_to_end(&mut client).await.code, CloseCode::NORMAL);

    let seen = server.await.unwrap().unwrap();
    assert_eq!(seen[0], Event::Pong("from server".into()));
    assert_eq!(seen[1], Event::Ping("from client".into()));
    assert!(matches!(seen.last(), Some(Event::Closed(i)) if i.was_clean));
}

#[tokio::test]
async fn server_closes_first() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ws::accept(tcp).await?;
        let first = next_message(&mut ws).await;
        assert_eq!(first, Event::Text("bye?".into()));
        ws.close(CloseCode(4000), "bye").await?;
        Ok::<_, Error>(read_to_end(&mut ws).await)
    });
    let (mut client, _) = ws::connect(&url).await.unwrap();
    client.send(Message::Text("bye?".into())).await.unwrap();
    let info = read_to_end(&mut client).await;
    assert_eq!(info.reason, "bye");
    assert!(info.was_clean);
    assert_eq!(info.code, CloseCode(4000));
    // Sending after the end is refused: the connection is over.
    assert!(matches!(
        client.send(Message::Text("late".into())).await,
        Err(Error::Closed)
    ));
    assert!(matches!(
        client.connection_mut().send("late"),
        Err(wsmachine::Error::NotOpen(wsmachine::ReadyState::Closed))
    ));

    let server_info = server.await.unwrap().unwrap();
    assert!(server_info.was_clean);
    assert_eq!(server_info.code, CloseCode(4000));
}

// Both halves wait on the transport most of the time here (messages twice
// the high-water mark): the driver registers a half's waker only when a poll
// is pending and then polls again, so no wakeup is lost between the two.
// A lost one would hang the exchange (the timeout fails the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_under_backpressure_lose_no_wakeup() {
    const N: usize = 64;
    let (listener, url) = listener().await;
    let server = echo_server(listener);
    let (client, _) = ws::connect(&url).await.unwrap();
    let (write, read) = client.split();
    let exchange = async move {
        let (mut write, mut read) = exchange_from_two_tasks(write, read, N).await;
        write.close(CloseCode::NORMAL, "").await.unwrap();
        read_to_end(&mut read).await
    };
    let info = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .expect("the exchange finished (no lost wakeup)");
    assert!(info.was_clean);
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_from_two_tasks() {
    const N: usize = 500;
    let (listener, url) = listener().await;
    let server = echo_server(listener);
    let (client, _) = ws::connect(&url).await.unwrap();
    let (mut write, mut read) = client.split();

    let writer = tokio::spawn(async move {
        for i in 0..N {
            let msg = if i % 2 == 0 {
                Message::Text(format!("message {i}").into())
            } else {
                Message::Binary(pattern(i * 100).into())
            };
            write.feed(msg).await?;
            if i % 50 == 0 {
                write.ping(b"p").await?;
            }
        }
        write.flush().await?;
        Ok::<_, Error>(write)
    });
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < N {
            match next_message(&mut read).await {
                Event::Text(t) => assert_eq!(t.as_str(), format!("message {got}")),
                Event::Binary(b) => assert_eq!(&b[..], &pattern(got * 100)[..]),
                other => panic!("unexpected {other:?}"),
            }
            got += 1;
        }
        read
    });
    let mut write = writer.await.unwrap().unwrap();
    let mut read = reader.await.unwrap();

    // Close from the write half; the read half sees the handshake end.
    write.close(CloseCode::NORMAL, "").await.unwrap();
    let closing = tokio::spawn(async move { (read_to_end(&mut read).await, read) });
    let (info, read) = closing.await.unwrap();
    assert!(info.was_clean);
    let ws = read.reunite(write).expect("same stream");
    assert_eq!(ws.connection().state(), wsmachine::ReadyState::Closed);
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn sink_waits_while_the_peer_does_not_read() {
    const MSG: usize = 256 << 10;
    const COUNT: usize = 128; // 32 MiB: more than loopback socket buffers hold
    let (listener, url) = listener().await;
    let (start_tx, start_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ws::accept(tcp).await?;
        // Don't read until told to.
        start_rx.await.unwrap();
        let (mut count, mut bytes) = (0, 0);
        while count < COUNT {
            if let Event::Binary(b) = next_message(&mut ws).await {
                count += 1;
                bytes += b.len();
            }
        }
        ws.close(CloseCode::NORMAL, "").await?;
        read_to_end(&mut ws).await;
        Ok::<_, Error>(bytes)
    });
    let (mut client, _) = ws::connect(&url).await.unwrap();
    client.set_high_water_mark(64 << 10);
    let payload = bytes::Bytes::from(pattern(MSG));

    // Feed (no flush) until `poll_ready` holds the sink back.
    let mut fed = 0;
    while fed < COUNT {
        match tokio::time::timeout(
            Duration::from_millis(300),
            client.feed(Message::Binary(payload.clone())),
        )
        .await
        {
            Ok(r) => r.unwrap(),
            Err(_) => break, // pending: the transport is full and the output over the mark
        }
        fed += 1;
        // Never more than one message over the mark waits in memory.
        assert!(client.connection().buffered_amount() <= (64 << 10) + MSG + 14);
    }
    assert!(fed < COUNT, "the sink never waited; all {fed} messages were taken");
    assert!(client.connection().buffered_amount() > 64 << 10);

    // Once the peer reads, everything goes through.
    start_tx.send(()).unwrap();
    // The timed-out feed dropped its message after poll_ready; send it again.
    while fed < COUNT {
        client.feed(Message::Binary(payload.clone())).await.unwrap();
        fed += 1;
    }
    client.flush().await.unwrap();
    assert_eq!(client.connection().buffered_amount(), 0);
    let info = read_to_end(&mut client).await;
    assert!(info.was_clean);
    assert_eq!(server.await.unwrap().unwrap(), COUNT * MSG);
}

#[tokio::test(start_paused = true)]
async fn close_timeout_fires_when_the_peer_never_answers() {
    let (listener, url) = listener().await;
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = ws::accept(tcp).await?;
        // Hold the connection open and never read from it.
        done_rx.await.unwrap();
        drop(ws);
        Ok::<_, Error>(())
    });
    let (mut client, _) = ws::connect(&url).await.unwrap();
    let timeout = client.connection().config().close_timeout;
    assert_eq!(timeout, Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    client.close(CloseCode::NORMAL, "").await.unwrap();

    assert!(matches!(
        client.next().await,
        Some(Err(Error::Failed(wsmachine::Failure::CloseTimeout)))
    ));
    assert!(started.elapsed() >= timeout, "fired after {:?}", started.elapsed());
    match client.next().await {
        Some(Ok(Event::Closed(info))) => {
            assert!(!info.was_clean);
            assert_eq!(info.code, CloseCode::ABNORMAL);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(client.next().await.is_none());
    done_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

// RFC 6455 §7.1.1: after the closing handshake the client waits for the
// server to close TCP, but only up to the close timeout.
#[tokio::test(start_paused = true)]
async fn the_client_stops_waiting_for_the_servers_end_of_stream() {
    let (listener, url) = listener().await;
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ws::accept(tcp).await?;
        // Closed comes once the close reply is written; then hold TCP open without polling on.
        assert!(matches!(next_message(&mut ws).await, Event::Closed(_)));
        ws.flush().await?;
        done_rx.await.unwrap();
        Ok::<_, Error>(())
    });
    let (mut client, _) = ws::connect(&url).await.unwrap();
    client.close(CloseCode::NORMAL, "").await.unwrap();
    match next_message(&mut client).await {
        Event::Closed(info) => assert!(info.was_clean),
        other => panic!("expected Closed, got {other:?}"),
    }
    let started = tokio::time::Instant::now();
    assert!(client.next().await.is_none());
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(5), "gave up after {waited:?}");
    done_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_rejected_handshake_is_an_error_on_both_sides() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        ws::accept_with(tcp, Config::default(), |_| {
            ws::Decision::Respond(HttpResponse::new(403).body("no"))
        })
        .await
    });
    match ws::connect(&url).await {
        Err(Error::Failed(wsmachine::Failure::Handshake { response, .. })) => {
            assert_eq!(response.expect("the server's response").status, 403)
        }
        other => panic!("expected a handshake error, got {other:?}"),
    }
    assert!(matches!(server.await.unwrap(), Err(Error::NotUpgraded)));
}

#[tokio::test]
async fn a_bad_request_gets_its_answer_before_the_error() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        ws::accept(tcp).await
    });
    let mut tcp = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'))
        .await
        .unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(matches!(
        server.await.unwrap(),
        Err(Error::Failed(wsmachine::Failure::Handshake {
            error: wsmachine::HandshakeError::InvalidKey,
            ..
        }))
    ));
}

#[tokio::test]
async fn connect_with_any_stream_and_a_subprotocol() {
    let (listener, url) = listener().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ws::accept_with(tcp, Config::default(), |req| {
            ws::Decision::Accept(wsmachine::Accept::new().protocol(&req.protocols[0]))
        })
        .await?;
        read_to_end(&mut ws).await;
        Ok::<_, Error>(())
    });
    let addr = url.trim_start_matches("ws://").trim_end_matches('/');
    let tcp = TcpStream::connect(addr).await.unwrap();
    let request = ClientRequest::from_url(&url).unwrap().protocol("chat.v2");
    let (mut client, response) = ws::connect_with(tcp, request, Config::default()).await.unwrap();
    assert_eq!(response.protocol.as_deref(), Some("chat.v2"));
    client.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(read_to_end(&mut client).await.was_clean);
    server.await.unwrap().unwrap();
}

// A `Duration::MAX` close timeout is never, in the tokio driver too: its
// deadline does not fit tokio's clock, and nothing panics.
#[tokio::test]
async fn a_duration_max_close_timeout_does_not_panic() {
    let (listener, url) = listener().await;
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ws = ws::accept(tcp).await.unwrap();
        // Never reads: the client's close goes unanswered.
        done_rx.await.unwrap();
    });
    let tcp = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'))
        .await
        .unwrap();
    let config = Config {
        close_timeout: Duration::MAX,
        ..Config::default()
    };
    let (mut client, _) = ws::connect_with(tcp, ClientRequest::from_url(&url).unwrap(), config)
        .await
        .unwrap();
    client.close(CloseCode::NORMAL, "").await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), client.next()).await;
    assert!(waited.is_err(), "still waiting for the close reply: {waited:?}");
    assert_eq!(client.connection().state(), wsmachine::ReadyState::Closing);
    done_tx.send(()).unwrap();
    server.await.unwrap();
}

/// A transport whose peer sends pings without end and never reads: writes
/// are pending for ever, each read brings one ping. Counts the bytes read.
struct NeverReads {
    read: usize,
}

impl tokio::io::AsyncRead for NeverReads {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let ping = [0x89, 0x80, 1, 2, 3, 4]; // a masked, empty ping
        buf.put_slice(&ping);
        self.read += ping.len();
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for NeverReads {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Pending
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

// A peer that pings and never reads cannot make the output grow (issue
// "hostile peers"): its pings are read and answered, and while our output
// waits for a transport that takes nothing the newest pong waits in one slot
// (RFC 6455 §5.5.3). The stream goes on reading meanwhile: what reading
// queues is bounded by that slot, and the sink's `poll_ready` is what holds
// the application's own messages back.
#[tokio::test]
async fn a_peer_that_pings_and_never_reads_holds_one_pong() {
    let conn = wsmachine::Connection::open_server(Config::default());
    let mut stream = ws::WebSocketStream::from_connection(conn, NeverReads { read: 0 });
    for _ in 0..1000 {
        assert!(matches!(stream.next().await, Some(Ok(Event::Ping(_)))));
    }
    assert_eq!(stream.get_ref().read, 6000);
    assert_eq!(
        stream.connection().buffered_amount(),
        2,
        "one pong queued, the newest waits"
    );
    // Output above the high-water mark that the transport does not take.
    let big = ws::DEFAULT_HIGH_WATER_MARK + 1;
    stream.connection_mut().send(vec![0u8; big]).unwrap();
    let queued = stream.connection().buffered_amount();
    for _ in 0..1000 {
        assert!(matches!(stream.next().await, Some(Ok(Event::Ping(_)))));
    }
    assert_eq!(stream.get_ref().read, 12_000, "read on while the output waits");
    assert_eq!(
        stream.connection().buffered_amount(),
        queued,
        "1,000 more pings, and not a byte more output"
    );
}

// The reader must not stop behind the writer's output. A peer that does not
// read while it writes (a one-task echo server: it reads a message, then
// awaits writing its echo) and our output above the high-water mark (the
// writer's message, waiting because that peer is not reading): if our
// stream read nothing until the output drained, neither side would move.
// Over a 16 KiB pipe both ways, on a paused clock (a deadlock is seen at
// once instead of after the timeout's real seconds).
#[tokio::test(start_paused = true)]
async fn reading_goes_on_while_our_output_waits_on_a_peer_that_writes() {
    const LEN: usize = 256 << 10;
    let (ours, mut peer) = tokio::io::duplex(16 << 10);
    let conn = wsmachine::Connection::open_server(Config::default());
    let mut stream = ws::WebSocketStream::from_connection(conn, ours);
    stream.connection_mut().send(pattern(LEN)).unwrap();
    assert!(stream.connection().buffered_amount() > stream.high_water_mark());
    let peer = tokio::spawn(async move {
        // Writes a whole message before it reads anything.
        let frame = crate::util::client_frame(true, 0x2, &pattern(LEN));
        peer.write_all(&frame).await.unwrap();
        let mut got = vec![0u8; LEN + 10];
        peer.read_exact(&mut got).await.unwrap();
        got
    });
    let event = tokio::time::timeout(Duration::from_secs(60), next_message(&mut stream))
        .await
        .expect("the peer's message was read while our output waited");
    assert_eq!(event, Event::Binary(pattern(LEN).into()));
    // Then the peer reads, and our message goes out whole.
    let flushed = tokio::time::timeout(Duration::from_secs(60), stream.flush()).await;
    assert!(matches!(flushed, Ok(Ok(()))), "{flushed:?}");
    let got = peer.await.unwrap();
    assert_eq!(&got[..2], [0x82, 127], "RFC 6455 §5.2: FIN, binary, 64-bit length");
    assert_eq!(&got[10..], &pattern(LEN)[..]);
}

// A peer that writes and never reads, over a 16 KiB pipe, with our output
// (256 KiB) waiting for it: the stream reads on, and the drain watch ends
// the connection anyway. Sending every 10 s (under the 20 s ping interval,
// so keepalive alone would never fire), it fails with KeepaliveTimeout
// (1011) within twice `ping_timeout`; after its close frame, our close reply
// (RFC 6455 §5.5.1) waiting behind the output, CLOSED is reported and the
// stream ends within twice `close_timeout`. Paused clock: seconds of tokio
// time, no real waiting.
#[tokio::test(start_paused = true)]
async fn a_peer_that_writes_but_never_reads_is_let_go() {
    const PING: &[u8] = &[0x89, 0x80, 1, 2, 3, 4];
    const PONG: &[u8] = &[0x8a, 0x80, 1, 2, 3, 4];
    const DATA: &[u8] = &[0x82, 0x81, 1, 2, 3, 4, 9];
    const CLOSE: &[u8] = &[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2];
    for (what, frame, limit) in [
        ("pings", PING, 40),
        ("pongs", PONG, 40),
        ("messages", DATA, 40),
        ("its close frame", CLOSE, 10),
    ] {
        let (ours, mut peer) = tokio::io::duplex(16 << 10);
        let conn = wsmachine::Connection::open_server(Config::default());
        let mut stream = ws::WebSocketStream::from_connection(conn, ours);
        stream.connection_mut().send(vec![0u8; 256 << 10]).unwrap();
        let writer = tokio::spawn(async move {
            while peer.write_all(frame).await.is_ok() {
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        });
        let start = tokio::time::Instant::now();
        let mut ends = Vec::new();
        let over = tokio::time::timeout(Duration::from_secs(3600), async {
            while let Some(event) = stream.next().await {
                match event {
                    Ok(Event::Ping(_) | Event::Pong(_) | Event::Binary(_)) => {}
                    other => ends.push(other),
                }
            }
        })
        .await;
        writer.abort();
        assert!(over.is_ok(), "{what}: still open after an hour: {ends:?}");
        let took = start.elapsed();
        assert!(took <= Duration::from_secs(limit), "{what}: ended after {took:?}");
        if frame == CLOSE {
            assert!(
                matches!(&ends[..], [Ok(Event::Closed(c))] if c.code.0 == 1000),
                "{what}: {ends:?}"
            );
        } else {
            assert!(
                matches!(
                    &ends[..],
                    [Err(ws::Error::Failed(wsmachine::Failure::KeepaliveTimeout)), Ok(Event::Closed(c))] if c.code.0 == 1011
                ),
                "{what}: {ends:?}"
            );
        }
    }
}

// A deadline on every wait: `accept` on a client that sends nothing ends
// after the handshake timeout (default 10 s) with a 408 to the client.
#[tokio::test(start_paused = true)]
async fn accept_gives_up_on_a_silent_client() {
    let (server_io, mut client_io) = tokio::io::duplex(4096);
    let started = tokio::time::Instant::now();
    let accepted = tokio::spawn(ws::accept(server_io));
    let result = accepted.await.unwrap();
    assert!(
        matches!(result, Err(Error::Failed(wsmachine::Failure::HandshakeTimeout))),
        "{result:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    let mut answer = Vec::new();
    client_io.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

const RAW_UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Reads up to the end of an HTTP head.
async fn read_head<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(r.read_u8().await.unwrap());
    }
    String::from_utf8(head).unwrap()
}

// Keepalive through the tokio driver, with the default settings (Python
// websockets': 20 s and 20 s): a peer that goes silent after the handshake
// gets a ping after 20 s and, never answering, a close frame with 1011 after
// 40 s; the application sees `Failure::KeepaliveTimeout`.
#[tokio::test(start_paused = true)]
async fn keepalive_pings_a_silent_peer_then_fails_with_1011() {
    let (server_io, mut peer) = tokio::io::duplex(64 << 10);
    let server = tokio::spawn(async move {
        let mut ws = ws::accept(server_io).await?;
        let mut seen = Vec::new();
        while let Some(event) = ws.next().await {
            seen.push(event.map_err(|e| e.to_string()));
        }
        Ok::<_, Error>(seen)
    });
    peer.write_all(RAW_UPGRADE).await.unwrap();
    assert!(read_head(&mut peer).await.starts_with("HTTP/1.1 101 "));
    let opened = tokio::time::Instant::now();
    let mut ping = [0u8; 10];
    peer.read_exact(&mut ping).await.unwrap();
    assert_eq!(ping[..2], [0x89, 8], "an unmasked ping with an 8-byte payload");
    assert_eq!(opened.elapsed(), Duration::from_secs(20));
    let mut close = [0u8; 4];
    peer.read_exact(&mut close).await.unwrap();
    assert_eq!(close[0], 0x88);
    assert_eq!(close[2..4], 1011u16.to_be_bytes());
    assert_eq!(opened.elapsed(), Duration::from_secs(40));
    let seen = server.await.unwrap().unwrap();
    assert!(
        matches!(&seen[..], [Err(e), Ok(Event::Closed(info))] if e.contains("keepalive") && info.code == CloseCode::INTERNAL_ERROR),
        "{seen:?}"
    );
}

// Keepalive with traffic: the driver does not re-arm its timer on every read
// (the keepalive deadline moves with each one); a timer armed for an earlier
// deadline fires, finds nothing due and is re-armed. So a peer that sends a
// message every 15 s is never pinged (RFC 6455 §5.5.2 pings are only for a
// silent peer), and once it stops, the ping comes 20 s after its last
// message, not 20 s after the first timer was armed.
#[tokio::test(start_paused = true)]
async fn keepalive_with_traffic_pings_only_after_the_last_message() {
    let (server_io, mut peer) = tokio::io::duplex(64 << 10);
    let server = tokio::spawn(async move {
        let mut ws = ws::accept(server_io).await.unwrap();
        let mut texts = 0;
        while let Some(Ok(event)) = ws.next().await {
            if matches!(event, Event::Text(_)) {
                texts += 1;
            }
        }
        texts
    });
    peer.write_all(RAW_UPGRADE).await.unwrap();
    read_head(&mut peer).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(15)).await;
        // A masked text frame "hi" (zero key).
        peer.write_all(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']).await.unwrap();
    }
    let last = tokio::time::Instant::now();
    let mut ping = [0u8; 10];
    peer.read_exact(&mut ping).await.unwrap();
    assert_eq!(
        ping[..2],
        [0x89, 8],
        "the first thing the peer reads is the keepalive ping"
    );
    assert_eq!(last.elapsed(), Duration::from_secs(20));
    drop(peer);
    assert_eq!(server.await.unwrap(), 4);
}

// Keepalive answered: the peer's pong keeps the connection open, and the
// round-trip time is there for the application.
#[tokio::test(start_paused = true)]
async fn keepalive_answered_gives_the_round_trip_time() {
    let (server_io, mut peer) = tokio::io::duplex(64 << 10);
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut ws = ws::accept(server_io).await.unwrap();
        let mut pongs = 0;
        tokio::select! {
            _ = async { while let Some(Ok(event)) = ws.next().await { if matches!(event, Event::Pong(_)) { pongs += 1; } } } => {}
            _ = done_rx => {}
        }
        (pongs, ws.connection().keepalive_rtt(), ws.connection().state())
    });
    peer.write_all(RAW_UPGRADE).await.unwrap();
    read_head(&mut peer).await;
    for _ in 0..3 {
        let mut ping = [0u8; 10];
        peer.read_exact(&mut ping).await.unwrap();
        assert_eq!(ping[0], 0x89);
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The pong, masked with a zero key, carrying the ping's payload.
        let mut pong = vec![0x8a, 0x88, 0, 0, 0, 0];
        pong.extend_from_slice(&ping[2..]);
        peer.write_all(&pong).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    done_tx.send(()).unwrap();
    let (pongs, rtt, state) = server.await.unwrap();
    assert_eq!(pongs, 3);
    assert_eq!(rtt, Some(Duration::from_millis(30)));
    assert_eq!(state, wsmachine::ReadyState::Open);
}

/// A future that is pending on its first poll and ready on the second: in a
/// biased `select!` after a `next()`, it drops that `next()` whenever the
/// `next()` would wait.
struct ReadyOnSecondPoll(bool);

impl std::future::Future for ReadyOnSecondPoll {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// The message `i` of the cancellation tests: 100 KiB, different for each.
fn nth_message(i: usize) -> Vec<u8> {
    (0..100 << 10).map(|j| ((i * 7 + j * 13) % 251) as u8).collect()
}

/// The writer of the cancellation tests: sends the messages in 1,000-byte
/// fragments, each flush cancelled whenever it would wait (the frame in
/// progress stays queued and goes on where it stopped), then closes.
/// Returns how many flushes were cancelled.
fn cancelling_writer(io: tokio::io::DuplexStream, messages: usize) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let mut ws = ws::WebSocketStream::from_connection(wsmachine::Connection::open_server(Config::default()), io);
        let mut cancelled = 0usize;
        for i in 0..messages {
            let message = nth_message(i);
            let pieces: Vec<&[u8]> = message.chunks(1000).collect();
            for (k, piece) in pieces.iter().enumerate() {
                let fin = k + 1 == pieces.len();
                ws.connection_mut()
                    .send_fragment(wsmachine::DataKind::Binary, piece, fin)
                    .unwrap();
                loop {
                    tokio::select! {
                        biased;
                        done = ws.flush() => { done.unwrap(); break; }
                        _ = ReadyOnSecondPoll(false) => cancelled += 1,
                    }
                }
            }
        }
        ws.close(CloseCode::NORMAL, "done").await.unwrap();
        while let Some(event) = ws.next().await {
            event.unwrap();
        }
        cancelled
    })
}

/// The reader of the cancellation tests: reads to the end with every
/// `next()` dropped whenever it would wait; checks each message. Returns
/// (messages received, reads cancelled).
async fn cancelling_reader<S: futures_util::Stream<Item = Result<Event>> + Unpin>(ws: &mut S) -> (usize, usize) {
    let (mut received, mut cancelled) = (0usize, 0usize);
    loop {
        let event = tokio::select! {
            biased;
            event = ws.next() => event,
            _ = ReadyOnSecondPoll(false) => { cancelled += 1; continue; }
        };
        match event {
            Some(Ok(Event::Binary(data))) => {
                assert!(
                    data[..] == nth_message(received)[..],
                    "message {received} arrived whole"
                );
                received += 1;
            }
            Some(Ok(Event::Closed(info))) => assert!(info.was_clean),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{e}"),
            None => return (received, cancelled),
        }
    }
}

// Cancellation safety (issue "real internet"; fastwebsockets #64/#113):
// `next()` dropped inside `select!` at any point loses no byte, event or
// frame. 40 fragmented messages of 100 KiB, sent in 1,000-byte fragments
// through a 1 KiB pipe, are read with the read cancelled every time it
// would wait (thousands of times); the writer's flushes are cancelled the
// same way, mid-frame. Every message arrives whole and in order; the same
// through the read half of a split stream.
#[tokio::test]
async fn next_and_flush_can_be_cancelled_at_any_point() {
    const MESSAGES: usize = 40;
    for split in [false, true] {
        let (a, b) = tokio::io::duplex(1024);
        let writer = cancelling_writer(a, MESSAGES);
        let client =
            wsmachine::Connection::open_client(Config::default(), wsmachine::rng::ChaCha20Rng::from_seed([9; 32]));
        let ws = ws::WebSocketStream::from_connection(client, b);
        let (received, cancelled) = if split {
            let (_write, mut read) = ws.split();
            cancelling_reader(&mut read).await
        } else {
            let mut ws = ws;
            cancelling_reader(&mut ws).await
        };
        let writer_cancelled = writer.await.unwrap();
        eprintln!("split {split}: reads cancelled {cancelled} times, flushes {writer_cancelled} times");
        assert_eq!(received, MESSAGES);
        assert!(cancelled >= 1000, "only {cancelled} cancelled reads");
        assert!(writer_cancelled >= 1000, "only {writer_cancelled} cancelled flushes");
    }
}

// `WebSocketStream::send` and `WriteHalf::send` (what `ws.send(..)` calls):
// borrowed text and binary go out as the messages they are, owned ones too,
// each written before `send` returns.
#[tokio::test]
async fn send_takes_borrowed_and_owned_payloads() {
    let (listener, url) = listener().await;
    let server = echo_server(listener);
    let (mut client, _) = ws::connect(&url).await.unwrap();
    client.send("borrowed text").await.unwrap();
    assert_eq!(client.connection().buffered_amount(), 0, "written before send returns");
    client.send(&[1u8, 2, 3][..]).await.unwrap();
    client
        .send(Message::Binary(bytes::Bytes::from_static(b"owned")))
        .await
        .unwrap();
    assert!(matches!(next_message(&mut client).await, Event::Text(t) if &*t == "borrowed text"));
    assert!(matches!(next_message(&mut client).await, Event::Binary(b) if b[..] == [1, 2, 3]));
    assert!(matches!(next_message(&mut client).await, Event::Binary(b) if &b[..] == b"owned"));
    let (mut write, mut read) = client.split();
    write.send("through the write half").await.unwrap();
    assert!(matches!(next_message(&mut read).await, Event::Text(t) if &*t == "through the write half"));
    write.close(CloseCode::NORMAL, "").await.unwrap();
    assert!(read_to_end(&mut read).await.was_clean);
    server.await.unwrap().unwrap();
}

// `send` waits, as the sink's `poll_ready` does, while more than the
// high-water mark is queued: against a peer that does not read, it stops
// returning once the socket buffers are full, and never holds more than one
// message over the mark.
#[tokio::test]
async fn send_waits_while_the_peer_does_not_read() {
    const MSG: usize = 256 << 10;
    let (listener, url) = listener().await;
    let (hold_tx, hold_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ws = ws::accept(tcp).await.unwrap();
        let _ = hold_rx.await; // never reads
    });
    let (mut client, _) = ws::connect(&url).await.unwrap();
    client.set_high_water_mark(64 << 10);
    let payload = pattern(MSG);
    let mut sent = 0;
    while sent < 128 {
        match tokio::time::timeout(Duration::from_millis(300), client.send(&payload[..])).await {
            Ok(r) => r.unwrap(),
            Err(_) => break,
        }
        sent += 1;
        assert!(client.connection().buffered_amount() <= (64 << 10) + MSG + 14);
    }
    assert!(sent < 128, "send never waited: {sent} messages of 256 KiB taken");
    drop(hold_tx);
    server.await.unwrap();
}

// The stream polled from two tasks without `WebSocketStream::split`: the
// halves of `StreamExt::split` (a lock around the one stream). The driver
// starts with the first task's own waker and must switch to the shared one
// when the second task polls, or a task waiting on the transport is never
// woken. Both sides under backpressure (256 KiB messages both ways, and the
// reader writes pongs to the server's pings), and the reader must go on
// reading while the writer's message waits above the high-water mark: the
// echo server does not read while it writes its echo, so a reader stopped
// behind our output would deadlock against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ext_split_halves_lose_no_wakeup() {
    const N: usize = 64;
    let (listener, url) = listener().await;
    let server = echo_server(listener);
    let (client, _) = ws::connect(&url).await.unwrap();
    let (write, read) = StreamExt::split(client);
    let exchange = async move {
        let (write, read) = exchange_from_two_tasks(write, read, N).await;
        let mut client = read.reunite(write).expect("the two halves of one stream");
        client.close(CloseCode::NORMAL, "").await.unwrap();
        read_to_end(&mut client).await
    };
    let info = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .expect("the exchange finished (no lost wakeup)");
    assert!(info.was_clean);
    server.await.unwrap().unwrap();
}

/// A transport that notes whether it was ever handed bytes that lie inside
/// `watched` (the application's payload): then they were not copied into
/// the connection's output first.
struct Spy<T> {
    inner: T,
    watched: std::ops::Range<usize>,
    saw_payload: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<T> Spy<T> {
    fn note(&self, buf: &[u8]) {
        if !buf.is_empty() && self.watched.contains(&(buf.as_ptr() as usize)) {
            self.saw_payload.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Spy<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Spy<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.note(buf);
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        for b in bufs {
            self.note(b);
        }
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// A server's long borrowed payload goes to the transport straight from the
// application's buffer (`Connection::send_direct`), over a vectored
// transport (TCP) and one that is not (an in-memory pipe of 1,500 bytes,
// which takes a little at a time and makes the writer wait): every message
// arrives whole and in order (RFC 6455 §5.2), the payload was handed to the
// transport uncopied, and a short message between long ones is not
// interleaved with them.
#[tokio::test]
async fn long_borrowed_payloads_are_written_without_a_copy() {
    const N: usize = 12;
    let payload = pattern(300 << 10);
    let saw = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watched = payload.as_ptr() as usize..payload.as_ptr() as usize + payload.len();
    let (listener, url) = listener().await;
    for vectored in [true, false] {
        saw.store(false, std::sync::atomic::Ordering::Relaxed);
        let (server_io, client_io): (Box<dyn Io>, Box<dyn Io>) = if vectored {
            let client = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches('/'));
            let (client, accepted) = tokio::join!(client, listener.accept());
            (Box::new(accepted.unwrap().0), Box::new(client.unwrap()))
        } else {
            let (a, b) = tokio::io::duplex(1500);
            (Box::new(a), Box::new(b))
        };
        let spy = Spy {
            inner: server_io,
            watched: watched.clone(),
            saw_payload: saw.clone(),
        };
        let mut server =
            ws::WebSocketStream::from_connection(wsmachine::Connection::open_server(Config::default()), spy);
        let mut client = ws::WebSocketStream::from_connection(
            wsmachine::Connection::open_client(Config::default(), wsmachine::rng::ChaCha20Rng::from_seed([5; 32])),
            client_io,
        );
        let payload = &payload;
        let sender = async move {
            for i in 0..N {
                if i % 3 == 2 {
                    server.send("short").await.unwrap();
                } else {
                    server.send(&payload[..]).await.unwrap();
                }
            }
            server.close(CloseCode::NORMAL, "").await.unwrap();
            assert!(read_to_end(&mut server).await.was_clean);
        };
        let receiver = async move {
            for i in 0..N {
                match next_message(&mut client).await {
                    Event::Text(t) => assert!(i % 3 == 2 && &*t == "short", "message {i}"),
                    Event::Binary(b) => assert!(i % 3 != 2 && b[..] == payload[..], "message {i}"),
                    other => panic!("message {i}: {other:?}"),
                }
            }
            assert!(read_to_end(&mut client).await.was_clean);
        };
        tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(sender, receiver) })
            .await
            .expect("the exchange finished");
        assert!(
            saw.load(std::sync::atomic::Ordering::Relaxed),
            "vectored {vectored}: the payload was copied before it was written"
        );
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}
