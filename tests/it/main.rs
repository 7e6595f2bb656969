//! Every integration test in one binary (like rustls' `rustls-test/tests/api.rs`):
//! one module per topic, the shared helpers compiled once, one link.
//! Run one topic with `cargo test --test it <module>::`, for example
//! `cargo test --test it closing::` (a substring filter: `limits::` also
//! runs `deflate_limits::`).

/// The counting allocator, the binary's only global allocator: `alloc`,
/// `limits`, `deflate_limits` and the fuzz harness read its per-thread
/// counters, which tests running on other threads do not move.
#[global_allocator]
static ALLOC: fuzz_harness::alloc_count::CountingAlloc = fuzz_harness::alloc_count::CountingAlloc;

// Shared helpers. The fuzz harness stays in `tests/fuzz_harness/`, where the
// `fuzz/` targets include it from as well.
#[path = "../fuzz_harness/mod.rs"]
mod fuzz_harness;
mod util;

mod alloc;
#[cfg(feature = "axum")]
mod axum_ws;
mod blocking;
mod broadcast;
mod closing;
mod deadlines;
#[cfg(feature = "deflate")]
mod deflate;
#[cfg(feature = "deflate")]
mod deflate_interop;
#[cfg(feature = "deflate")]
mod deflate_limits;
#[cfg(feature = "deflate")]
mod deflate_rfc;
mod errors;
mod fuzz_regressions;
mod game_loop;
mod handshake;
#[cfg(all(feature = "http2", feature = "deflate"))]
mod http2_client;
mod http_rules;
#[cfg(all(feature = "tokio", feature = "deflate"))]
mod hyper_upgrade;
mod keepalive;
mod limits;
mod messages;
mod origin;
mod properties;
mod proxy;
mod receive_path;
#[cfg(all(feature = "axum", feature = "http2"))]
mod rfc8441_both;
mod send_direct;
#[cfg(feature = "rustls")]
mod tls;
#[cfg(feature = "tokio")]
mod tokio_adapter;
