#![no_main]
//! See `tests/fuzz_harness/mod.rs`: `client_handshake` and the invariants it asserts.

#[path = "../../tests/fuzz_harness/mod.rs"]
mod fuzz_harness;

#[global_allocator]
static ALLOC: fuzz_harness::alloc_count::CountingAlloc = fuzz_harness::alloc_count::CountingAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::client_handshake(data));
