//! The wire layer: bytes only, like smoltcp's `wire`.
//!
//! Frame headers ([`frame`]), the masking XOR ([`mask`], the crate's one
//! module of SIMD `unsafe`), incremental UTF-8 validation ([`utf8`]) and the
//! close-frame payload ([`close`]). Nothing here knows about messages,
//! roles' state or the handshake; each format reports its own error type,
//! and the connection maps them to protocol errors in one place
//! (`crate::error`). Imports only `core`, `alloc` and `bytes`.

pub mod close;
pub mod frame;
pub mod mask;
pub mod utf8;
