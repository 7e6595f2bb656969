//! TLS (feature `rustls`) over loopback: a CA and server certificates made
//! at test time (rcgen), `wss://` clients of both drivers against TLS echo
//! servers of both drivers, certificate failures as `Error::Tls`, no
//! process-wide crypto provider, the handshake deadline under TLS, broken
//! PEM files and hostile TLS peers as errors.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wsmachine::blocking::{self, Decision, Error, MaybeTlsStream, WebSocket};
use wsmachine::tls::rustls::pki_types::CertificateDer;
use wsmachine::tls::rustls::{self, CertificateError, RootCertStore};
use wsmachine::tls::{self, TlsAcceptor, TlsConfigError, TlsConnector};
use wsmachine::{Accept, ClientRequest, CloseCode, Config, Connection, Event, Failure};

/// A CA, and PEM files on disk for server certificates it signed (also
/// used by `http2_client` and `axum_ws`).
pub(crate) struct Pki {
    ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "wsmachine test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "wsmachine-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            ca: ca.der().clone(),
            issuer: Issuer::new(params, key),
            dir,
        }
    }

    /// A server certificate for `names` (DNS names or IP literals), as
    /// (chain file, key file).
    pub(crate) fn server_files(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "wsmachine test server");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (chain, key_file) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&chain, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (chain, key_file)
    }

    /// An acceptor presenting a certificate for `localhost` and `127.0.0.1`,
    /// loaded from PEM files.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let (chain, key) = self.server_files("localhost", &["localhost", "127.0.0.1"]);
        TlsAcceptor::from_pem_files(chain, key).unwrap()
    }

    /// A connector trusting this CA only (loaded from its PEM file).
    pub(crate) fn connector(&self) -> TlsConnector {
        let loaded = tls::load_certs(self.dir.join("ca.pem")).unwrap();
        assert_eq!(loaded, std::slice::from_ref(&self.ca));
        let mut roots = RootCertStore::empty();
        for ca in loaded {
            roots.add(ca).unwrap();
        }
        TlsConnector::with_roots(roots).unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn accept_all(_: &wsmachine::Request) -> Decision {
    Decision::Accept(Accept::new())
}

/// A blocking TLS echo server for one connection: returns how its accept
/// ended (`Ok` after echoing until the close).
fn blocking_echo_server(tls: TlsAcceptor, config: Config) -> (u16, JoinHandle<Result<(), Error>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = blocking::accept_tls(tcp, &tls, config, accept_all)?;
        assert_eq!(ws.get_ref().conn.alpn_protocol(), Some(tls::ALPN_HTTP_1_1));
        echo(&mut ws)
    });
    (port, server)
}

fn echo<S: blocking::Transport>(ws: &mut WebSocket<S>) -> Result<(), Error> {
    loop {
        match ws.read() {
            Ok(Event::Text(t)) => ws.send(t.as_str())?,
            Ok(Event::Binary(b)) => ws.send(b)?,
            Ok(_) => {}
            Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Sends two messages (one large, so it spans TLS records), checks their
/// echoes, closes, and reads to the end.
fn blocking_round_trip(ws: &mut WebSocket<MaybeTlsStream>) {
    assert!(ws.get_ref().is_tls());
    let large = "x".repeat(100_000);
    ws.send("hello over TLS").unwrap();
    ws.send(large.as_str()).unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 2 {
        match ws.read().unwrap() {
            Event::Text(t) => echoed.push(t.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, ["hello over TLS", large.as_str()]);
    ws.close(CloseCode::NORMAL, "done").unwrap();
    loop {
        match ws.read() {
            Ok(Event::Closed(info)) => assert!(info.was_clean, "{info:?}"),
            Ok(_) => {}
            Err(Error::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

fn wss(host: &str, port: u16) -> ClientRequest {
    ClientRequest::from_url(&format!("wss://{host}:{port}/echo")).unwrap()
}

#[test]
fn blocking_client_and_server_over_wss_with_a_custom_root() {
    let pki = Pki::new();
    for host in ["localhost", "127.0.0.1"] {
        let (port, server) = blocking_echo_server(pki.acceptor(), Config::default());
        let (mut ws, response) = blocking::connect_with_tls(wss(host, port), Config::default(), &pki.connector())
            .unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(response.status, 101);
        match ws.get_ref() {
            MaybeTlsStream::Rustls(tls) => assert_eq!(tls.conn.alpn_protocol(), Some(tls::ALPN_HTTP_1_1)),
            other => panic!("not TLS: {other:?}"),
        }
        blocking_round_trip(&mut ws);
        server.join().unwrap().unwrap();
    }
}

/// The chat's way: a non-blocking socket, the TLS handshake inside
/// `WebSocket::read`, `WouldBlock` until there is something to do.
#[test]
fn a_non_blocking_tls_server_runs_the_tls_handshake_inside_read() {
    let pki = Pki::new();
    let tls = pki.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_nonblocking(true).unwrap();
        let session = rustls::ServerConnection::new(tls.config().clone()).unwrap();
        let stream = rustls::StreamOwned::new(session, tcp);
        let mut ws = WebSocket::from_connection(Connection::server(Config::default()), stream);
        let started = Instant::now();
        let mut would_block = 0;
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the server loop never ended"
            );
            match ws.read() {
                Ok(Event::Request(request)) => ws.connection_mut().accept(request, Accept::new()).unwrap(),
                Ok(Event::Text(t)) => {
                    ws.connection_mut().send(t.as_str()).unwrap();
                    match ws.flush() {
                        Err(e) if !e.is_would_block() => panic!("{e}"),
                        _ => {}
                    }
                }
                Ok(_) => {}
                Err(e) if e.is_would_block() => {
                    would_block += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(Error::Closed) => return would_block,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let (mut ws, _) = blocking::connect_with_tls(wss("localhost", port), Config::default(), &pki.connector()).unwrap();
    blocking_round_trip(&mut ws);
    assert!(
        server.join().unwrap() > 0,
        "the socket never said WouldBlock: was it non-blocking?"
    );
}

/// A game-loop client: a non-blocking TLS socket, a message larger than the
/// socket buffers (so rustls holds records the socket would not take), and
/// reads polled until the echo is in. Nothing stays stuck in rustls' buffer.
#[test]
fn a_non_blocking_tls_client_gets_a_large_echo() {
    let pki = Pki::new();
    let (port, server) = blocking_echo_server(pki.acceptor(), Config::default());
    let (mut ws, _) = blocking::connect_with_tls(wss("localhost", port), Config::default(), &pki.connector()).unwrap();
    ws.get_mut().set_nonblocking(true).unwrap();
    let large: String = (0..(4 << 20)).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    ws.connection_mut().send(large.as_str()).unwrap();
    let started = Instant::now();
    let echoed = loop {
        assert!(started.elapsed() < Duration::from_secs(30), "no echo");
        match ws.read() {
            Ok(Event::Text(t)) => break t,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) if e.is_would_block() => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    };
    assert!(echoed.as_str() == large, "the echo differs");
    ws.close(CloseCode::NORMAL, "").unwrap();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "no close");
        match ws.read() {
            Err(Error::Closed) => break,
            Err(e) if e.is_would_block() => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
            Ok(_) => {}
        }
    }
    server.join().unwrap().unwrap();
}

fn is_unknown_issuer(e: &Error) -> bool {
    matches!(
        e,
        Error::Tls(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
    )
}

fn is_name_mismatch(e: &Error) -> bool {
    matches!(
        e,
        Error::Tls(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ))
    )
}

/// What the server saw when the client refused its certificate: the
/// client's alert, as a TLS error.
fn assert_client_refused(server: JoinHandle<Result<(), Error>>) {
    match server.join().unwrap() {
        Err(Error::Tls(rustls::Error::AlertReceived(_))) => {}
        other => panic!("the server saw {other:?}, not the client's alert"),
    }
}

#[test]
fn a_certificate_for_another_name_is_a_tls_error() {
    let pki = Pki::new();
    let (chain, key) = pki.server_files("other", &["other.example"]);
    let (port, server) = blocking_echo_server(TlsAcceptor::from_pem_files(chain, key).unwrap(), Config::default());
    match blocking::connect_with_tls(wss("localhost", port), Config::default(), &pki.connector()) {
        Err(e) => assert!(is_name_mismatch(&e), "{e:?}"),
        Ok(_) => panic!("connected to a server whose certificate is for another name"),
    }
    assert_client_refused(server);
}

/// `connect("wss://…")` trusts Mozilla's roots, not the test CA.
#[test]
fn connect_trusts_public_roots_only_so_a_private_ca_is_an_unknown_issuer() {
    let pki = Pki::new();
    let (port, server) = blocking_echo_server(pki.acceptor(), Config::default());
    match blocking::connect(&format!("wss://localhost:{port}/")) {
        Err(e) => {
            assert!(is_unknown_issuer(&e), "{e:?}");
            assert!(e.to_string().starts_with("TLS: "), "{e}");
        }
        Ok(_) => panic!("trusted a certificate from a private CA"),
    }
    assert_client_refused(server);
}

/// A plain HTTP `CONNECT` proxy for one connection (no credentials); its port.
fn connect_proxy() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let target = head.strip_prefix("CONNECT ").and_then(|r| r.split(' ').next()).unwrap();
        let upstream = TcpStream::connect(target.replace("localhost", "127.0.0.1")).unwrap();
        tcp.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
        let (mut down, mut up) = (tcp.try_clone().unwrap(), upstream.try_clone().unwrap());
        std::thread::spawn(move || std::io::copy(&mut down, &mut up));
        let (mut tcp, mut upstream) = (tcp, upstream);
        let _ = std::io::copy(&mut upstream, &mut tcp);
    });
    port
}

/// `connect_via` runs TLS over the proxy's tunnel, with the target's name:
/// the server's certificate is checked (here against Mozilla's roots, so the
/// test CA is an unknown issuer, and the server gets the client's alert).
#[test]
fn wss_through_a_proxy_runs_tls_over_the_tunnel() {
    let pki = Pki::new();
    let (port, server) = blocking_echo_server(pki.acceptor(), Config::default());
    let proxy = wsmachine::proxy::Proxy::parse(&format!("http://127.0.0.1:{}", connect_proxy())).unwrap();
    match blocking::connect_via(&format!("wss://localhost:{port}/"), Some(&proxy)) {
        Err(e) => assert!(is_unknown_issuer(&e), "{e:?}"),
        Ok(_) => panic!("trusted a certificate from a private CA"),
    }
    assert_client_refused(server);
}

/// Nothing installs a process-wide `CryptoProvider`, and nothing needs one:
/// the configs are built with the crate's provider (ring). (A config built
/// with `ClientConfig::builder()` would have installed the default.)
#[test]
fn no_process_wide_crypto_provider_is_installed_or_needed() {
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    let pki = Pki::new();
    let (port, server) = blocking_echo_server(pki.acceptor(), Config::default());
    let (mut ws, _) = blocking::connect_with_tls(wss("localhost", port), Config::default(), &pki.connector()).unwrap();
    blocking_round_trip(&mut ws);
    server.join().unwrap().unwrap();
    let _ = TlsConnector::new().unwrap();
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
}

fn short_handshake() -> Config {
    Config {
        handshake_timeout: Duration::from_millis(300),
        ..Config::default()
    }
}

/// A client that opens TCP and sends no ClientHello is dropped after the
/// handshake timeout, not kept forever.
#[test]
fn a_silent_tls_client_is_dropped_after_the_handshake_timeout() {
    let pki = Pki::new();
    let (port, server) = blocking_echo_server(pki.acceptor(), short_handshake());
    let started = Instant::now();
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    match server.join().unwrap() {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// A client that completes TLS but sends no request: the machine's
/// handshake deadline fires through the TLS stream (its read timeout goes to
/// the socket, `Transport for StreamOwned`), and the client gets 408.
#[test]
fn a_client_silent_after_the_tls_handshake_gets_408_after_the_handshake_timeout() {
    let pki = Pki::new();
    let (port, server) = blocking_echo_server(pki.acceptor(), short_handshake());
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let session = rustls::ClientConnection::new(pki.connector().config().clone(), name).unwrap();
    let mut client = rustls::StreamOwned::new(session, tcp);
    while client.conn.is_handshaking() {
        client.conn.complete_io(&mut client.sock).unwrap();
    }
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // The server drops TCP without a close_notify.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("{e} after {:?}", started.elapsed()),
        }
    }
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "{took:?}"
    );
    match server.join().unwrap() {
        Err(Error::Failed(Failure::HandshakeTimeout)) | Err(Error::NotUpgraded) => {}
        other => panic!("{other:?}"),
    }
}

/// Plain HTTP, and bytes that are no TLS at all, to a TLS server: a TLS
/// error, no panic.
#[test]
fn a_peer_that_does_not_speak_tls_is_a_tls_error() {
    let pki = Pki::new();
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3][..],
    ] {
        let (port, server) = blocking_echo_server(pki.acceptor(), Config::default());
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.write_all(garbage).unwrap();
        match server.join().unwrap() {
            Err(Error::Tls(_)) => {}
            other => panic!("{garbage:?}: {other:?}"),
        }
    }
    // And a client whose server answers with something that is not TLS.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut hello = [0u8; 512];
        let _ = tcp.read(&mut hello);
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    match blocking::connect_with_tls(wss("localhost", port), Config::default(), &pki.connector()) {
        Err(Error::Tls(_)) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
    server.join().unwrap();
}

#[test]
fn broken_pem_files_are_errors() {
    let pki = Pki::new();
    let (chain, key) = pki.server_files("good", &["localhost"]);
    let (_, other_key) = pki.server_files("other", &["localhost"]);
    let missing = pki.dir.join("missing.pem");
    let truncated = pki.dir.join("truncated.pem");
    let pem = std::fs::read_to_string(&chain).unwrap();
    std::fs::write(&truncated, &pem[..pem.len() / 2]).unwrap();
    let empty = pki.dir.join("empty.pem");
    std::fs::write(&empty, "no PEM here\n").unwrap();

    let result = |chain: &PathBuf, key: &PathBuf| TlsAcceptor::from_pem_files(chain, key).map(|_| ());
    assert!(matches!(result(&missing, &key), Err(TlsConfigError::Read { .. })));
    assert!(matches!(result(&truncated, &key), Err(TlsConfigError::Pem { .. })));
    assert!(matches!(
        result(&empty, &key),
        Err(TlsConfigError::NoCertificate { .. })
    ));
    assert!(matches!(result(&key, &key), Err(TlsConfigError::NoCertificate { .. })));
    assert!(matches!(
        result(&chain, &chain),
        Err(TlsConfigError::NoPrivateKey { .. })
    ));
    assert!(matches!(result(&chain, &missing), Err(TlsConfigError::Read { .. })));
    match result(&chain, &other_key) {
        Err(e @ TlsConfigError::Rejected(_)) => assert!(e.to_string().contains("refused"), "{e}"),
        other => panic!("a key that is not the certificate's: {other:?}"),
    }
    assert!(result(&chain, &key).is_ok());
    // Error messages name the file.
    let e = result(&missing, &key).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

#[cfg(feature = "tokio")]
mod with_tokio {
    use super::*;
    use futures_util::StreamExt;
    use wsmachine::Message;
    use wsmachine::tokio as ws;

    /// A tokio TLS echo server for one connection.
    async fn tokio_echo_server(tls: TlsAcceptor) -> (u16, tokio::task::JoinHandle<Result<(), Error>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = ws::accept_tls(tcp, &tls, Config::default(), accept_all).await?;
            assert_eq!(ws.get_ref().get_ref().1.alpn_protocol(), Some(tls::ALPN_HTTP_1_1));
            while let Some(event) = ws.next().await {
                match event? {
                    Event::Text(t) => ws.send(Message::Text(t)).await?,
                    Event::Binary(b) => ws.send(Message::Binary(b)).await?,
                    _ => {}
                }
            }
            Ok(())
        });
        (port, server)
    }

    async fn tokio_round_trip(mut ws: ws::WebSocketStream<ws::MaybeTlsStream>) {
        assert!(ws.get_ref().is_tls());
        let large = "y".repeat(100_000);
        ws.send(Message::Text("hello over TLS".into())).await.unwrap();
        ws.send(Message::Text(large.as_str().into())).await.unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < 2 {
            match ws.next().await.unwrap().unwrap() {
                Event::Text(t) => echoed.push(t.to_string()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(echoed, ["hello over TLS", large.as_str()]);
        ws.close(CloseCode::NORMAL, "done").await.unwrap();
        let mut clean = false;
        while let Some(event) = ws.next().await {
            if let Event::Closed(info) = event.unwrap() {
                clean = info.was_clean;
            }
        }
        assert!(clean);
    }

    #[tokio::test]
    async fn tokio_client_to_the_tokio_and_the_blocking_tls_servers() {
        let pki = Pki::new();
        let (port, server) = tokio_echo_server(pki.acceptor()).await;
        let (client, response) = ws::connect_with_tls(wss("localhost", port), Config::default(), &pki.connector())
            .await
            .unwrap();
        assert_eq!(response.status, 101);
        tokio_round_trip(client).await;
        server.await.unwrap().unwrap();

        let (port, server) = blocking_echo_server(pki.acceptor(), Config::default());
        let (client, _) = ws::connect_with_tls(wss("127.0.0.1", port), Config::default(), &pki.connector())
            .await
            .unwrap();
        tokio_round_trip(client).await;
        tokio::task::spawn_blocking(move || server.join().unwrap().unwrap())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_client_to_the_tokio_tls_server() {
        let pki = Pki::new();
        let (port, server) = tokio_echo_server(pki.acceptor()).await;
        let connector = pki.connector();
        tokio::task::spawn_blocking(move || {
            let (mut ws, _) =
                blocking::connect_with_tls(wss("localhost", port), Config::default(), &connector).unwrap();
            blocking_round_trip(&mut ws);
        })
        .await
        .unwrap();
        server.await.unwrap().unwrap();
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }

    #[tokio::test]
    async fn tokio_certificate_failures_are_tls_errors() {
        let pki = Pki::new();
        let (port, server) = tokio_echo_server(pki.acceptor()).await;
        match ws::connect(&format!("wss://localhost:{port}/")).await {
            Err(e) => assert!(is_unknown_issuer(&e), "{e:?}"),
            Ok(_) => panic!("trusted a certificate from a private CA"),
        }
        assert!(matches!(server.await.unwrap(), Err(Error::Tls(_))));

        let (chain, key) = pki.server_files("other", &["other.example"]);
        let (port, server) = tokio_echo_server(TlsAcceptor::from_pem_files(chain, key).unwrap()).await;
        match ws::connect_with_tls(wss("localhost", port), Config::default(), &pki.connector()).await {
            Err(e) => assert!(is_name_mismatch(&e), "{e:?}"),
            Ok(_) => panic!("connected to a server whose certificate is for another name"),
        }
        assert!(matches!(server.await.unwrap(), Err(Error::Tls(_))));
    }

    #[tokio::test]
    async fn a_silent_tls_client_is_dropped_by_the_tokio_server_after_the_handshake_timeout() {
        let pki = Pki::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = pki.acceptor();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            ws::accept_tls(tcp, &tls, short_handshake(), accept_all)
                .await
                .map(|_| ())
        });
        let started = Instant::now();
        let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        match server.await.unwrap() {
            Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
            other => panic!("{other:?}"),
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
}

/// The Python with `websockets` that scripts/interop_deflate.sh installs.
fn interop_python() -> String {
    std::env::var("WSMACHINE_INTEROP_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .expect("WSMACHINE_INTEROP_PYTHON names a Python with websockets: run through scripts/interop_deflate.sh")
}

fn interop_helper() -> String {
    format!("{}/scripts/interop_tls.py", env!("CARGO_MANIFEST_DIR"))
}

// Our client against Python `websockets` serving wss:// (its `ssl` module,
// OpenSSL): the certificate chain, SNI and the frames all agree.
#[test]
#[ignore = "needs Python websockets: scripts/interop_deflate.sh runs it"]
fn python_tls_server_with_our_client() {
    use std::io::BufRead;
    let py = interop_python();
    let pki = Pki::new();
    let (chain, key) = pki.server_files("python", &["localhost"]);
    let mut child = std::process::Command::new(&py)
        .arg(interop_helper())
        .arg("server")
        .arg(&chain)
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the python server");
    let stdout = child.stdout.take().unwrap();
    let port: u16 = std::io::BufReader::new(stdout)
        .lines()
        .next()
        .unwrap()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let request = ClientRequest::from_url(&format!("wss://localhost:{port}/")).unwrap();
    let (mut ws, _) = blocking::connect_with_tls(request, Config::default(), &pki.connector()).expect("wss handshake");
    assert!(ws.get_ref().is_tls());
    for payload in ["hello over TLS".to_string(), "é€😀".repeat(1000)] {
        ws.send(payload.as_str()).unwrap();
        loop {
            match ws.read().unwrap() {
                Event::Text(t) => {
                    assert_eq!(&*t, payload);
                    break;
                }
                Event::Ping(_) | Event::Pong(_) => {}
                other => panic!("{other:?}"),
            }
        }
    }
    let big = vec![7u8; 300_000];
    ws.send(wsmachine::Message::Binary(big.clone().into())).unwrap();
    loop {
        match ws.read().unwrap() {
            Event::Binary(b) => {
                assert!(b[..] == big[..]);
                break;
            }
            Event::Ping(_) | Event::Pong(_) => {}
            other => panic!("{other:?}"),
        }
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
    while !matches!(ws.read(), Ok(Event::Closed(_)) | Err(_)) {}
    let _ = child.kill();
    let _ = child.wait();
}

// Python `websockets` connecting with TLS to our blocking TLS server.
#[test]
#[ignore = "needs Python websockets: scripts/interop_deflate.sh runs it"]
fn python_tls_client_with_our_server() {
    let py = interop_python();
    let pki = Pki::new();
    let acceptor = pki.acceptor();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut ws = blocking::accept_tls(tcp, &acceptor, Config::default(), |_| Decision::Accept(Accept::new()))
            .expect("accept over TLS");
        loop {
            match ws.read() {
                Ok(Event::Text(t)) => ws.send(wsmachine::Message::Text(t)).unwrap(),
                Ok(Event::Binary(b)) => ws.send(wsmachine::Message::Binary(b)).unwrap(),
                Ok(Event::Closed(info)) => return info,
                Ok(_) => {}
                Err(e) => panic!("server: {e}"),
            }
        }
    });
    let out = std::process::Command::new(&py)
        .arg(interop_helper())
        .args(["client", &format!("wss://localhost:{port}/")])
        .arg(pki.dir.join("ca.pem"))
        .output()
        .expect("run the python client");
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the python TLS client failed");
    let info = server.join().unwrap();
    assert!(info.was_clean, "{info:?}");
}
