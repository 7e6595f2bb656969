//! fastwebsockets' echo server for the end-to-end echo benchmark
//! (`scripts/e2e_bench.sh`, `examples/bench_load.rs`).
//!
//! ```text
//! cargo run --release --example bench_echo_fastwebsockets [-- ADDR]    # default 127.0.0.1:9001
//! ```
//!
//! It prints `listening on ADDR` once it is ready. The setup of
//! fastwebsockets' own `echo_server` example and README: a current-thread
//! runtime; hyper 1.x serves each connection with upgrades, and
//! `fastwebsockets::upgrade::upgrade` answers it; the connection runs in its
//! own task under `tokio::task::unconstrained`, as a
//! `FragmentCollector` (whole messages), with `set_writev(true)`,
//! `set_auto_close(true)` and `set_auto_pong(true)`; every text and binary
//! frame is written back. Its default `simd` feature (simdutf8) is on.
//! `TCP_NODELAY` on, as for every server of the benchmark.

use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::io::Write;
use tokio::net::TcpListener;

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = fut.await?;
    ws.set_writev(true);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn server_upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        if let Err(e) = echo(fut).await {
            eprintln!("bench_echo_fastwebsockets: connection: {e}");
        }
    }));
    Ok(response)
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
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(tcp);
                let conn = http1::Builder::new()
                    .serve_connection(io, service_fn(server_upgrade))
                    .with_upgrades();
                if let Err(e) = conn.await {
                    eprintln!("bench_echo_fastwebsockets: http: {e}");
                }
            });
        }
    })
}
