//! # wsmachine
//!
//! A sans-IO implementation of the WebSocket protocol (RFC 6455, with RFC
//! 7692 permessage-deflate): bytes go in, events and bytes come out. The
//! crate never touches a socket, a clock or a thread, so one core serves
//! every runtime — tokio, a blocking `std::net` loop, a game's frame loop,
//! a microcontroller, a fuzzer.
//!
//! A complete server loop over any byte transport, time included:
//!
//! ```
//! use wsmachine::{Accept, Config, Connection, Event, Instant};
//!
//! /// One turn of the loop: what the socket gave (`input`), the time now.
//! fn turn(conn: &mut Connection, input: &[u8], now: Instant, output: &mut Vec<u8>) {
//!     conn.receive(input);
//!     conn.handle_timeout(now); // every deadline: close timeout, and more
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             Event::Request(request) => conn.accept(request, Accept::new()).unwrap(),
//!             Event::Text(text) => conn.send(&*text).unwrap(),
//!             Event::Binary(data) => conn.send(&data[..]).unwrap(),
//!             _ => {}
//!         }
//!     }
//!     // Write what is pending, then say how much was written.
//!     for chunk in conn.output_chunks() {
//!         output.extend_from_slice(chunk);
//!     }
//!     conn.consume_output(conn.buffered_amount());
//!     // Then wait for input, or until `conn.poll_timeout()`, and turn again.
//! }
//!
//! let mut server = Connection::server(Config::default());
//! let mut out = Vec::new();
//! turn(&mut server, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n", Instant::from_millis(0), &mut out);
//! assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! ```
//!
//! ## Layers
//!
//! Bottom up; nothing imports from a layer above it.
//!
//! | layer | module | holds |
//! |---|---|---|
//! | 1 | `types`, `time` | leaf facts: [`Role`], [`ReadyState`], [`DataKind`], [`Instant`] |
//! | 2 | `wire` | bytes only: frame headers, masking, UTF-8, close payloads ([`CloseCode`], [`Utf8Bytes`]); exposed for fuzzers and benches as `internal` (not covered by semver) |
//! | 3 | [`handshake`] | the HTTP/1.1 upgrade in both roles: requests, responses, headers, the `Sec-WebSocket-Extensions` grammar, the server's `Origin` check ([`OriginPolicy`], RFC 6455 §10.2) |
//! | 4 | `extension`, [`deflate`] | the extension interface and permessage-deflate, its one implementation |
//! | 4 | `error` | [`Failure`] (the peer's), [`Error`] and [`Misuse`] (the application's), close codes of protocol errors |
//! | 5 | `upgrade` | what the application asks for and accepts: [`ClientRequest`], [`Accept`], [`Upgrade`] for handshakes done elsewhere |
//! | 6 | `config`, `event`, [`Connection`] | the state machine, its settings and its events |
//! | 7 | [`rng`] | randomness for client keys (any `RandomSource`) |
//! | 8 | [`driver`], [`blocking`], `tokio`, `tls`, `http2` | drivers: move bytes and time, no protocol decisions; `driver` holds what they share, `tls` the TLS configs both use, `http2` WebSocket over HTTP/2 (RFC 8441) as a client |
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `std` | yes | OS randomness for client keys ([`Connection::client`]), `std::error::Error` impls, the [`blocking`] driver over `Read + Write` streams |
//! | `deflate` | yes | permessage-deflate (RFC 7692), module [`deflate`]: offered with [`ClientRequest::deflate`], accepted with [`Accept::deflate`]; pure-Rust backends (zlib-rs through flate2 compresses, miniz_oxide inflates); implies `std` |
//! | `tokio` | no | the async driver module `wsmachine::tokio`: a `Stream`/`Sink` over tokio's `AsyncRead + AsyncWrite` streams, timers on tokio's clock (implies `std`) |
//! | `rustls` | no | `wss://` in `blocking::connect` and `tokio::connect`, TLS servers in both drivers, module `wsmachine::tls`: rustls on the `ring` provider, chosen explicitly (no process-wide provider needed), Mozilla's roots from `webpki-roots` (implies `std`) |
//! | `http2` | no | WebSocket over HTTP/2 (RFC 8441) as a client, module `wsmachine::http2`: extended CONNECT on the `h2` crate, h2c for `ws://` and ALPN `h2` for `wss://` (with `rustls`), several WebSockets on one connection, falling back to HTTP/1.1 (implies `tokio`) |
//! | `rustls-native-roots` | no | `tls::native_roots()`: the platform's trusted roots, through `rustls-native-certs` (implies `rustls`) |
//! | `hyper` | no | module `wsmachine::hyper`: upgrade a hyper 1.x request to a tokio `WebSocketStream`, an HTTP/1.1 upgrade (101) or an HTTP/2 extended CONNECT (RFC 8441, 200) alike (implies `tokio`) |
//! | `axum` | no | module `wsmachine::axum`: a drop-in for axum 0.8's `WebSocketUpgrade` extractor, with permessage-deflate, [`Config`] and an [`OriginPolicy`] (implies `hyper`, `deflate`) |
//! | `portable-atomic` | no | targets without atomic compare-and-swap (thumbv6m), through `bytes` |
//!
//! Without `std` the crate is `no_std` + `alloc`; clients pass their own
//! [`RandomSource`](rng::RandomSource).

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "std")]
pub mod blocking;
mod config;
mod connection;
#[cfg(feature = "std")]
pub mod driver;
mod error;
mod event;
mod extension;
pub mod handshake;
#[cfg(feature = "http2")]
pub mod http2;
#[cfg(feature = "hyper")]
pub mod hyper;
pub mod proxy;
pub mod rng;
mod time;
#[cfg(feature = "rustls")]
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;
mod types;
mod upgrade;
mod wire;

/// The wire layer's modules, for fuzzers, benchmarks and tests: not part of
/// the supported API, and not covered by semver.
#[doc(hidden)]
pub mod internal {
    pub use crate::wire::{frame, mask, utf8};
}

pub use bytes::Bytes;
pub use config::{Backpressure, Config};
pub use connection::{Connection, PreparedMessage};
pub use error::{Error, Failure, Misuse, ProtocolError};
pub use event::{
    CloseInfo, Compression, DecisionError, Event, Fragment, Message, Outgoing, PendingHttp, PendingRequest,
};
#[cfg(feature = "deflate")]
pub use extension::deflate;
pub use handshake::{
    HandshakeError, HttpResponse, InvalidOrigin, Origin, OriginError, OriginPolicy, Request, Response,
};
pub use time::Instant;
pub use types::{DataKind, ReadyState, Role};
pub use upgrade::{Accept, ClientRequest, ClientUpgrade, ExtendedConnect, Upgrade, UpgradeError};
pub use wire::close::{CloseCode, CloseFrame};
pub use wire::utf8::{InvalidUtf8, Utf8Bytes};
