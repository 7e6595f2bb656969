//! # wsmachine
//!
//! A sans-IO implementation of the WebSocket protocol (RFC 6455): bytes go
//! in, events and bytes come out. The crate never touches a socket, a clock
//! or a thread, so one core serves every runtime — tokio, a blocking
//! `std::net` loop, a game's frame loop, a microcontroller, a fuzzer.
//!
//! A complete echo server loop over any byte transport:
//!
//! ```
//! use wsmachine::{Accept, Config, Connection, Event};
//!
//! fn drive(conn: &mut Connection, input: &[u8], output: &mut Vec<u8>) {
//!     conn.receive(input); // what the socket gave
//!     while let Some(event) = conn.poll_event() {
//!         match event {
//!             Event::Request(_) => conn.accept(Accept::new()).unwrap(),
//!             Event::Text(text) => conn.send_text(text.as_str()).unwrap(),
//!             Event::Binary(data) => conn.send_binary(&data).unwrap(),
//!             _ => {}
//!         }
//!     }
//!     // Write what is pending, then say how much was written.
//!     while !conn.pending_output().is_empty() {
//!         let chunk = conn.pending_output();
//!         output.extend_from_slice(chunk);
//!         let n = chunk.len();
//!         conn.consume_output(n);
//!     }
//! }
//!
//! let mut server = Connection::server(Config::default());
//! let mut out = Vec::new();
//! drive(&mut server, b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n", &mut out);
//! assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! ```
//!
//! ## Layers
//!
//! | module | holds |
//! |---|---|
//! | [`frame`] | the wire format: header decode/encode |
//! | [`mask`] | the masking XOR |
//! | [`utf8`] | incremental, fail-fast UTF-8 validation |
//! | [`handshake`] | the HTTP/1.1 upgrade, both roles |
//! | [`Connection`] | the state machine tying them together |
//! | [`close`], [`error`] | close codes; errors and their close codes |
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `std` | yes | OS randomness for client keys ([`Connection::client`], [`Connection::open`]), `std::error::Error` impls, the [`blocking`] driver over `Read + Write` streams |
//! | `deflate` | yes | permessage-deflate (RFC 7692), module [`deflate`]: offered with [`ClientRequest::deflate`], accepted with [`Accept::deflate`]; a pure-Rust backend (zlib-rs through flate2); implies `std` |
//! | `tokio` | no | the async driver module `wsmachine::tokio`: a `Stream`/`Sink` over tokio's `AsyncRead + AsyncWrite` streams, the close timeout on tokio's timer (implies `std`) |
//!
//! Without `std` the crate is `no_std` + `alloc`; clients pass their own
//! [`RandomSource`](rng::RandomSource).

#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod blocking;
pub mod close;
mod config;
mod connection;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod error;
mod event;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod rng;
mod time;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod utf8;

pub use bytes::Bytes;
pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{Connection, ReadyState, Role};
pub use error::{Error, ProtocolError};
pub use event::{CloseInfo, Compression, DataKind, Event, Fragment, Message};
pub use handshake::{Accept, ClientRequest, HandshakeError, HttpResponse, Request, Response};
pub use time::Instant;
pub use utf8::Utf8Bytes;
