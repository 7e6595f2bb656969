#![no_main]
//! See `tests/fuzz_harness/deflate.rs`: permessage-deflate between two
//! machines, honest round trips and hostile compressed payloads.

#[path = "../../tests/fuzz_harness/mod.rs"]
mod fuzz_harness;

#[global_allocator]
static ALLOC: fuzz_harness::alloc_count::CountingAlloc = fuzz_harness::alloc_count::CountingAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_harness::deflate::deflate(data));
