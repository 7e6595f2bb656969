//! A tokio echo server: a multi-thread runtime (or `--current-thread`), one task per connection,
//! `wsmachine::tokio::accept`, every text and binary message sent back.
//!
//! ```text
//! cargo run --release --features tokio --example tokio_echo [-- ADDR]    # default 127.0.0.1:9001
//! ```
//!
//! It prints `listening on ADDR` once it is ready (`examples/load.rs` waits
//! for that line). It raises its soft open-file limit to the hard limit so
//! it can hold as many connections as the system allows, and listens with a
//! backlog of 1024. No `Config` is set: every limit is the crate's default.
//!
//! With `--retain` it also keeps every message it received (a chat history),
//! to measure what kept messages hold.
//!
//! With `--current-thread` it runs on a current-thread runtime and each
//! connection's task under `tokio::task::unconstrained`: the setup every
//! tokio-based server of the end-to-end echo benchmark uses
//! (`scripts/e2e_bench.sh`, where the server is pinned to one core; it is
//! also fastwebsockets' and tokio-websockets' own echo examples' setup).

use futures_util::StreamExt;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use wsmachine::tokio::Error;
use wsmachine::{Event, Message};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
fn raise_open_file_limit() -> std::io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `limit` is a valid `rlimit` within the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Every message received, with `--retain`.
type History = Option<Arc<Mutex<Vec<Message>>>>;

async fn echo(tcp: TcpStream, history: History) -> Result<(), Error> {
    let mut ws = wsmachine::tokio::accept(tcp).await?;
    while let Some(event) = ws.next().await {
        let message = match event? {
            Event::Text(text) => Message::Text(text),
            Event::Binary(data) => Message::Binary(data),
            _ => continue,
        };
        if let Some(history) = &history {
            // A clone of a message shares its bytes.
            history.lock().unwrap_or_else(|e| e.into_inner()).push(message.clone());
        }
        ws.send(message).await?;
    }
    Ok(())
}

/// Binds `addr` with a listen backlog of 1024 (`TcpListener::bind` asks for
/// 128, too few for hundreds of clients connecting at once: the kernel drops
/// their SYNs and they retry a second later).
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn main() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:9001".to_string();
    let mut history: History = None;
    let mut current_thread = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--retain" => history = Some(Arc::default()),
            "--current-thread" => current_thread = true,
            _ => addr = arg,
        }
    }
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    runtime.block_on(serve(addr, history, current_thread))
}

async fn serve(addr: String, history: History, unconstrained: bool) -> std::io::Result<()> {
    match raise_open_file_limit() {
        Ok(limit) => eprintln!("tokio_echo: open-file limit {limit}"),
        Err(e) => eprintln!("tokio_echo: could not raise the open-file limit: {e}"),
    }
    let listener = listen(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors, for example: the listener itself is fine.
                eprintln!("tokio_echo: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let history = history.clone();
        let task = async move {
            if let Err(e) = echo(tcp, history).await {
                eprintln!("tokio_echo: connection: {e}");
            }
        };
        if unconstrained {
            tokio::spawn(tokio::task::unconstrained(task));
        } else {
            tokio::spawn(task);
        }
    }
}
