//! A command-line client, a small `websocat`: sends each line of stdin as a
//! text message and prints each message received on its own line; closes
//! with 1000 when stdin ends and exits 0 after the closing handshake,
//! non-zero if the handshake or the protocol fails (after a refused
//! handshake it prints the server's status line and headers).
//!
//! ```text
//! client [--http2] [--ca FILE.pem]... [--proxy URL | --no-proxy] [--ping-interval SECS]
//!        [--header 'Name: value']... [--protocol NAME]... URL
//!
//! cargo run --example client ws://127.0.0.1:9999/
//! cargo run --features rustls --example client -- --ca ca.pem wss://localhost:9443/
//! cargo run --example client -- --proxy socks5://127.0.0.1:1080 ws://echo.example/
//! cargo run --features http2,rustls --example client -- --http2 wss://localhost:9443/ws
//! ```
//!
//! - `URL`: `ws://` or `wss://` (`wss://` needs the `rustls` feature; the
//!   server's certificate is checked against Mozilla's roots and each
//!   `--ca` file's certificates, for a private or self-signed CA);
//! - `--proxy`: `http://[user:pass@]host:port` (HTTP `CONNECT`) or
//!   `socks5://[user:pass@]host:port`; without it the environment's proxy
//!   is used the way curl reads it (`https_proxy`, `http_proxy`,
//!   `all_proxy`, `no_proxy`), unless `--no-proxy`;
//! - `--ping-interval`: keepalive pings after this many seconds without
//!   input (default 20; 0 turns keepalive off);
//! - `--header`, `--protocol`: extra request headers and offered
//!   subprotocols, each repeatable;
//! - `--http2` (feature `http2`): WebSocket over HTTP/2 (RFC 8441) through
//!   `wsmachine::http2` (h2c with prior knowledge for `ws://`, ALPN `h2`
//!   for `wss://`), falling back to HTTP/1.1 when the server cannot take
//!   it; says on stderr which was used. Otherwise the same.

use std::io::BufRead;
use std::process::exit;
use std::sync::mpsc;
use std::time::Duration;
use wsmachine::blocking::{self, Error};
use wsmachine::driver::ConnectOptions;
use wsmachine::proxy::Proxy;
use wsmachine::{ClientRequest, CloseCode, Event, Failure, ReadyState};

const USAGE: &str = "usage: client [--http2] [--ca FILE.pem]... [--proxy URL | --no-proxy] [--ping-interval SECS] \
                     [--header 'Name: value']... [--protocol NAME]... ws[s]://HOST[:PORT]/PATH";

/// What the command line asks for.
struct Args {
    url: String,
    cas: Vec<String>,
    proxy: Option<String>,
    no_proxy: bool,
    ping_interval: Option<Duration>,
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    http2: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        url: String::new(),
        cas: Vec::new(),
        proxy: None,
        no_proxy: false,
        ping_interval: Some(Duration::from_secs(20)),
        headers: Vec::new(),
        protocols: Vec::new(),
        http2: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--ca" => parsed.cas.push(value()?),
            "--proxy" => parsed.proxy = Some(value()?),
            "--no-proxy" => parsed.no_proxy = true,
            "--ping-interval" => {
                let secs: u64 = value()?.parse().map_err(|_| "--ping-interval takes whole seconds")?;
                parsed.ping_interval = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--header" => {
                let line = value()?;
                let (name, v) = line.split_once(':').ok_or("--header takes 'Name: value'")?;
                parsed.headers.push((name.trim().to_string(), v.trim().to_string()));
            }
            "--protocol" => parsed.protocols.push(value()?),
            "--http2" => parsed.http2 = true,
            _ if !arg.starts_with("--") && parsed.url.is_empty() => parsed.url = arg,
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    if parsed.url.is_empty() {
        return Err("no URL".into());
    }
    if parsed.proxy.is_some() && parsed.no_proxy {
        return Err("--proxy and --no-proxy exclude each other".into());
    }
    Ok(parsed)
}

/// The TLS configuration: Mozilla's roots and the `--ca` files.
#[cfg(feature = "rustls")]
fn tls(cas: &[String], options: &mut ConnectOptions) -> Result<(), Box<dyn std::error::Error>> {
    use wsmachine::tls::{self, TlsConnector};
    if cas.is_empty() {
        return Ok(());
    }
    let mut roots = tls::webpki_roots();
    for file in cas {
        for ca in tls::load_certs(file)? {
            roots.add(ca).map_err(|e| format!("{file}: {e}"))?;
        }
    }
    options.tls = Some(TlsConnector::with_roots(roots)?);
    Ok(())
}

#[cfg(not(feature = "rustls"))]
fn tls(cas: &[String], _: &mut ConnectOptions) -> Result<(), Box<dyn std::error::Error>> {
    if !cas.is_empty() {
        return Err("--ca needs the rustls feature (cargo run --features rustls --example client)".into());
    }
    Ok(())
}

/// The server answered without upgrading: say what it said, and exit 1.
fn refused(url: &str, error: &wsmachine::HandshakeError, response: &wsmachine::Response) -> ! {
    eprintln!("{url}: handshake failed: {error}");
    // HTTP/2 has no reason phrase (RFC 9113 §8.3.2).
    if response.reason.is_empty() {
        eprintln!("HTTP/2 {}", response.status);
    } else {
        eprintln!("HTTP/1.1 {} {}", response.status, response.reason);
    }
    for header in response.headers.iter() {
        eprintln!("{}: {}", header.name, String::from_utf8_lossy(&header.value));
    }
    exit(1);
}

/// Lines of stdin on a channel, `None` at its end, read on a thread of their own.
fn stdin_lines(mut send: impl FnMut(Option<String>) -> bool + Send + 'static) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if !send(Some(line)) {
                return;
            }
        }
        send(None);
    });
}

/// `--http2`: the same client over `wsmachine::http2` (RFC 8441, falling
/// back to HTTP/1.1); returns whether it failed.
#[cfg(feature = "http2")]
fn http2(url: &str, request: ClientRequest, options: &ConnectOptions) -> bool {
    use futures_util::StreamExt;
    use wsmachine::Message;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("client: {e}");
            exit(1);
        });
    runtime.block_on(async {
        let (ws, _response) = match wsmachine::http2::connect_with_options(request, options).await {
            Ok(connected) => connected,
            Err(Error::Failed(Failure::Handshake {
                error,
                response: Some(response),
            })) => refused(url, &error, &response),
            Err(e) => {
                eprintln!("{url}: {e}");
                exit(1);
            }
        };
        match ws.get_ref().fallback() {
            None => eprintln!("client: connected over HTTP/2 (RFC 8441)"),
            Some(why) => eprintln!("client: server does not support RFC 8441 ({why}); using HTTP/1.1"),
        }
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        stdin_lines(move |line| tx.send(line).is_ok());
        let (mut sink, mut stream) = ws.split();
        let (mut failed, mut stdin_open) = (false, true);
        loop {
            tokio::select! {
                line = lines.recv(), if stdin_open => {
                    let sent = match line.flatten() {
                        Some(text) => sink.send(Message::Text(text.into())).await,
                        None => {
                            stdin_open = false;
                            sink.close(CloseCode::NORMAL, "").await
                        }
                    };
                    if let Err(e) = sent {
                        eprintln!("{e}");
                    }
                }
                event = stream.next() => match event {
                    None => break,
                    Some(Ok(Event::Text(text))) => println!("{text}"),
                    Some(Ok(Event::Binary(data))) => println!("<{} bytes of binary>", data.len()),
                    Some(Ok(Event::Closed(info))) => {
                        if !info.was_clean {
                            eprintln!("connection closed uncleanly ({})", info.code);
                            failed = true;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                },
            }
        }
        failed
    })
}

#[cfg(not(feature = "http2"))]
fn http2(_: &str, _: ClientRequest, _: &ConnectOptions) -> bool {
    eprintln!("client: --http2 needs the http2 feature (cargo run --features http2 --example client)");
    exit(2);
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("client: {e}\n{USAGE}");
        exit(2);
    });
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("{}: {e}", args.url);
        exit(1);
    };
    let mut request = ClientRequest::from_url(&args.url).unwrap_or_else(|e| fail(&e));
    for (name, value) in &args.headers {
        request = request.header(name, value);
    }
    for protocol in &args.protocols {
        request = request.protocol(protocol);
    }
    let mut options = ConnectOptions::default();
    options.config.ping_interval = args.ping_interval;
    options.proxy = match (&args.proxy, args.no_proxy) {
        (Some(p), _) => Some(Proxy::parse(p).unwrap_or_else(|e| fail(&e))),
        (None, true) => None,
        (None, false) => Proxy::from_env(&args.url).unwrap_or_else(|e| fail(&e)),
    };
    if let Some(proxy) = &options.proxy {
        eprintln!("client: through {:?} proxy {}:{}", proxy.kind, proxy.host, proxy.port);
    }
    if let Err(e) = tls(&args.cas, &mut options) {
        fail(&e);
    }
    if args.http2 {
        exit(i32::from(http2(&args.url, request, &options)));
    }
    let (mut ws, _response) = match blocking::connect_with_options(request, &options) {
        Ok(connected) => connected,
        Err(Error::Failed(Failure::Handshake {
            error,
            response: Some(response),
        })) => refused(&args.url, &error, &response),
        Err(e) => fail(&e),
    };
    // Wake up every 20 ms to look at stdin (the driver bounds reads by the
    // machine's deadlines as well: keepalive, the close timeout).
    ws.set_read_timeout(Some(Duration::from_millis(20)));

    // Lines from stdin arrive on a channel; `None` marks its end.
    let (tx, rx) = mpsc::channel::<Option<String>>();
    stdin_lines(move |line| tx.send(line).is_ok());

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
