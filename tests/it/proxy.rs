//! Client proxies end to end on loopback: a small HTTP `CONNECT` proxy and
//! a small SOCKS5 proxy written here (both requiring credentials), an echo
//! server behind them, and both drivers' `connect_via`; refusals come back
//! as `Error::Proxy` naming the proxy's answer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use wsmachine::blocking::{self, Error};
use wsmachine::proxy::{Proxy, ProxyError};
use wsmachine::{Event, Message};

/// An echo server for `n` connections; returns its port.
fn echo_server(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for _ in 0..n {
            let Ok((tcp, _)) = listener.accept() else { return };
            thread::spawn(move || {
                let Ok(mut ws) = blocking::accept(tcp) else { return };
                loop {
                    match ws.read() {
                        Ok(Event::Text(t)) => ws.send(Message::Text(t)).unwrap(),
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            });
        }
    });
    port
}

/// Copies both ways between two sockets until either side ends.
fn splice(a: TcpStream, b: TcpStream) {
    let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (mut a, mut b) = (a, b);
    thread::spawn(move || {
        let _ = std::io::copy(&mut a2, &mut b2);
        let _ = b2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut b, &mut a);
    let _ = a.shutdown(std::net::Shutdown::Write);
}

/// An HTTP proxy for `n` connections that wants `Basic dTpw` (u:pw) and
/// answers 407 otherwise; returns its port.
fn http_proxy(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for _ in 0..n {
            let (mut tcp, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") {
                if tcp.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let target = head
                .strip_prefix("CONNECT ")
                .and_then(|r| r.split(' ').next())
                .unwrap_or("");
            if !head.contains("\r\nProxy-Authorization: Basic dTpwdw==\r\n") {
                let _ = tcp.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            let upstream = TcpStream::connect(target).unwrap();
            tcp.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
            thread::spawn(move || splice(tcp, upstream));
        }
    });
    port
}

/// A SOCKS5 proxy for `n` connections that wants user `u`, password `pw`
/// (RFC 1929) and resolves names itself (`localhost` only); returns its port.
fn socks5_proxy(n: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for _ in 0..n {
            let (mut tcp, _) = listener.accept().unwrap();
            let mut buf = [0u8; 512];
            // Greeting: VER NMETHODS METHODS; user/password must be offered.
            tcp.read_exact(&mut buf[..2]).unwrap();
            let methods = usize::from(buf[1]);
            tcp.read_exact(&mut buf[..methods]).unwrap();
            if !buf[..methods].contains(&2) {
                tcp.write_all(&[5, 0xff]).unwrap();
                continue;
            }
            tcp.write_all(&[5, 2]).unwrap();
            tcp.read_exact(&mut buf[..2]).unwrap();
            let ulen = usize::from(buf[1]);
            let mut user = vec![0; ulen];
            tcp.read_exact(&mut user).unwrap();
            tcp.read_exact(&mut buf[..1]).unwrap();
            let mut pass = vec![0; usize::from(buf[0])];
            tcp.read_exact(&mut pass).unwrap();
            if (user.as_slice(), pass.as_slice()) != (b"u".as_slice(), b"pw".as_slice()) {
                tcp.write_all(&[1, 1]).unwrap();
                continue;
            }
            tcp.write_all(&[1, 0]).unwrap();
            // CONNECT by name: VER CMD RSV ATYP=3 LEN NAME PORT.
            tcp.read_exact(&mut buf[..5]).unwrap();
            if buf[..4] != [5, 1, 0, 3] {
                // Not a CONNECT by name (remote DNS): "address type not
                // supported", which the client reports.
                tcp.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
                continue;
            }
            let mut name = vec![0; usize::from(buf[4])];
            tcp.read_exact(&mut name).unwrap();
            tcp.read_exact(&mut buf[..2]).unwrap();
            let port = u16::from_be_bytes([buf[0], buf[1]]);
            if name != b"localhost" {
                tcp.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap(); // host unreachable
                continue;
            }
            let upstream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            tcp.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).unwrap();
            thread::spawn(move || splice(tcp, upstream));
        }
    });
    port
}

fn echo_once(ws: &mut blocking::WebSocket<blocking::MaybeTlsStream>) -> String {
    ws.send("through the proxy").unwrap();
    loop {
        if let Event::Text(t) = ws.read().unwrap() {
            return t.to_string();
        }
    }
}

// RFC 9110 §9.3.6 and RFC 7617: a tunnel through an HTTP proxy with Basic
// credentials; without them the proxy's 407 is the error.
#[test]
fn blocking_through_an_http_connect_proxy() {
    let echo = echo_server(1);
    let proxy = Proxy::parse(&format!("http://u:pw@127.0.0.1:{}", http_proxy(2))).unwrap();
    let url = format!("ws://127.0.0.1:{echo}/");
    let (mut ws, _) = blocking::connect_via(&url, Some(&proxy)).unwrap();
    assert_eq!(echo_once(&mut ws), "through the proxy");
    let no_credentials = Proxy {
        credentials: None,
        ..proxy
    };
    match blocking::connect_via(&url, Some(&no_credentials)) {
        Err(Error::Proxy(ProxyError::HttpStatus { status: 407, reason })) => {
            assert_eq!(reason, "Proxy Authentication Required");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

// RFC 1928 and RFC 1929: a tunnel through a SOCKS5 proxy with user and
// password, the name resolved at the proxy; its refusals named.
#[test]
fn blocking_through_a_socks5_proxy() {
    let echo = echo_server(1);
    let socks = socks5_proxy(3);
    let proxy = Proxy::parse(&format!("socks5h://u:pw@127.0.0.1:{socks}")).unwrap();
    let (mut ws, _) = blocking::connect_via(&format!("ws://localhost:{echo}/"), Some(&proxy)).unwrap();
    assert_eq!(echo_once(&mut ws), "through the proxy");
    let wrong = Proxy::parse(&format!("socks5://u:nope@127.0.0.1:{socks}")).unwrap();
    assert!(matches!(
        blocking::connect_via(&format!("ws://localhost:{echo}/"), Some(&wrong)),
        Err(Error::Proxy(ProxyError::AuthenticationFailed))
    ));
    match blocking::connect_via(&format!("ws://unknown.invalid:{echo}/"), Some(&proxy)) {
        Err(Error::Proxy(e @ ProxyError::SocksRefused(4))) => assert!(e.to_string().contains("host unreachable")),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

// The tokio driver through both proxies.
#[cfg(feature = "tokio")]
#[test]
fn tokio_through_both_proxies() {
    use futures_util::StreamExt;
    let echo = echo_server(2);
    let http = Proxy::parse(&format!("http://u:pw@127.0.0.1:{}", http_proxy(1))).unwrap();
    let socks = Proxy::parse(&format!("socks5://u:pw@127.0.0.1:{}", socks5_proxy(1))).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for proxy in [http, socks] {
            let url = format!("ws://localhost:{echo}/");
            let (mut ws, _) = wsmachine::tokio::connect_via(&url, Some(&proxy)).await.unwrap();
            ws.send(Message::Text("async".into())).await.unwrap();
            loop {
                match ws.next().await {
                    Some(Ok(Event::Text(t))) => {
                        assert_eq!(&*t, "async");
                        break;
                    }
                    Some(Ok(_)) => {}
                    other => panic!("{other:?}"),
                }
            }
        }
    });
}

/// Options with a short handshake timeout and `proxy`.
fn with_proxy(proxy: Proxy, timeout_ms: u64) -> wsmachine::driver::ConnectOptions {
    let mut options = wsmachine::driver::ConnectOptions::default();
    options.config.handshake_timeout = std::time::Duration::from_millis(timeout_ms);
    options.proxy = Some(proxy);
    options
}

// A deadline on every wait, the proxy's too: a proxy that accepts the
// connection and then says nothing, or trickles its answer a byte at a
// time, is given up after the handshake timeout as a whole (TimedOut, not
// a WouldBlock on a blocking call).
#[test]
fn a_silent_or_trickling_proxy_times_out() {
    for trickle in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy_thread = thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            if trickle {
                for b in b"HTTP/1.1 200 Connection established, slowly".iter().cycle().take(200) {
                    thread::sleep(std::time::Duration::from_millis(20));
                    if tcp.write_all(&[*b]).is_err() {
                        return;
                    }
                }
            } else {
                thread::sleep(std::time::Duration::from_secs(3));
            }
        });
        let proxy = Proxy::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let request = wsmachine::ClientRequest::from_url("ws://localhost:1/").unwrap();
        let started = std::time::Instant::now();
        let result = blocking::connect_with_options(request, &with_proxy(proxy, 500));
        let took = started.elapsed();
        match result {
            Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(
            took < std::time::Duration::from_secs(2),
            "trickle {trickle}: took {took:?}"
        );
        drop(proxy_thread);
    }
}

// RFC 1928 §5: a name is at most 255 bytes; a longer one fails at once
// with `ProxyError::TooLong` instead of waiting for the proxy.
#[test]
fn socks5_refuses_a_name_too_long_at_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = Proxy::parse(&format!("socks5://127.0.0.1:{port}")).unwrap();
    let url = format!("ws://{}/", "a".repeat(300));
    let request = wsmachine::ClientRequest::from_url(&url).unwrap();
    let result = blocking::connect_with_options(request, &with_proxy(proxy, 5_000));
    assert!(
        matches!(result, Err(Error::Proxy(ProxyError::TooLong))),
        "{:?}",
        result.map(|_| ())
    );
    drop(listener);
}
