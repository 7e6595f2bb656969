//! tokio-tungstenite's echo server for the end-to-end echo benchmark
//! (`scripts/e2e_bench.sh`, `examples/bench_load.rs`).
//!
//! ```text
//! cargo run --release --example bench_echo_tungstenite [-- ADDR]    # default 127.0.0.1:9001
//! ```
//!
//! It prints `listening on ADDR` once it is ready. The same runtime as every
//! tokio-based server of the benchmark (the server runs pinned to one core):
//! a current-thread runtime, one task per connection run under
//! `tokio::task::unconstrained` (as fastwebsockets' and tokio-websockets'
//! own echo examples do), `TCP_NODELAY` on. The connection is
//! `tokio_tungstenite::accept_async` with the default configuration; every
//! text and binary message is sent back with `SinkExt::send` (one write and
//! flush per message).

use futures_util::{SinkExt, StreamExt};
use std::io::Write;
use tokio::net::{TcpListener, TcpStream};

async fn echo(tcp: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            tokio::spawn(tokio::task::unconstrained(async move {
                if let Err(e) = echo(tcp).await {
                    eprintln!("bench_echo_tungstenite: connection: {e}");
                }
            }));
        }
    })
}
