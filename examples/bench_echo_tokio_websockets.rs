//! tokio-websockets' echo server for the end-to-end echo benchmark
//! (`scripts/e2e_bench.sh`, `examples/bench_load.rs`).
//!
//! ```text
//! cargo run --release --example bench_echo_tokio_websockets [-- ADDR]    # default 127.0.0.1:9001
//! ```
//!
//! It prints `listening on ADDR` once it is ready. The setup of
//! tokio-websockets' own `echo_server` example: a current-thread runtime,
//! one task per connection under `tokio::task::unconstrained`,
//! `ServerBuilder` with `Config::default().frame_size(usize::MAX)` (a
//! message goes out as one frame) and `Limits::unlimited()`; every text and
//! binary message sent back. Features `server` and `sha1_smol`; its SIMD
//! masking (SSE2/AVX2/AVX-512) and simdutf8 UTF-8 validation are detected at
//! run time, so they are on wherever the CPU has them. `TCP_NODELAY` on, as
//! for every server of the benchmark.

use futures_util::{SinkExt, StreamExt};
use std::io::Write;
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{Config, Error, Limits, ServerBuilder};

async fn echo(tcp: TcpStream) -> Result<(), Error> {
    let (_request, mut ws) = ServerBuilder::new()
        .config(Config::default().frame_size(usize::MAX))
        .limits(Limits::unlimited())
        .accept(tcp)
        .await?;
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
                    eprintln!("bench_echo_tokio_websockets: connection: {e}");
                }
            }));
        }
    })
}
