//! Cortex-M4F firmware: runs wsmachine-embedded's scenario (a client and a
//! server machine talking through in-memory pipes) with a 32 KiB counting
//! heap, prints the report through semihosting and exits.
//!
//! Run it on QEMU (see ../README.md):
//! `cargo run --release --target thumbv7em-none-eabihf -p wsmachine-embedded-firmware --bin firmware`

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;
use wsmachine_embedded::heap::CountingHeap;
use wsmachine_embedded::run_echo;

/// The fixed-size heap: a static array in RAM (.bss).
#[global_allocator]
static HEAP: CountingHeap<{ 32 * 1024 }> = CountingHeap::new();

/// A real device seeds this from its hardware RNG (RFC 6455 §10.3 needs
/// unpredictable masking keys); a fixed seed keeps the run reproducible.
const SEED: [u8; 32] = *b"demo seed: use the TRNG on a MCU";

/// The scenario's buffers on the stack: the binary and fragmented messages,
/// two pipes and the read chunk.
const SCENARIO_BUFFERS: usize = wsmachine_embedded::BINARY_LEN
    + wsmachine_embedded::FRAGMENTED_LEN
    + 2 * wsmachine_embedded::PIPE_SIZE
    + wsmachine_embedded::READ_CHUNK;

/// Bytes of stack ever used: cortex-m-rt (feature `paint-stack`) fills the
/// stack region with 0xCCCC_CCCC at reset; the lowest word not holding it is
/// as deep as the stack went.
fn stack_used() -> usize {
    unsafe extern "C" {
        static _stack_end: u32;
        static _stack_start: u32;
    }
    let bottom = (&raw const _stack_end) as usize;
    let top = (&raw const _stack_start) as usize;
    let mut addr = bottom;
    // SAFETY: every word between the linker's stack bounds is RAM.
    while addr < top && unsafe { core::ptr::read_volatile(addr as *const u32) } == cortex_m_rt::STACK_PAINT_VALUE {
        addr += 4;
    }
    top - addr
}

#[entry]
fn main() -> ! {
    hprintln!(
        "wsmachine on {}: handshake, echo, ping, close over in-memory pipes",
        env!("FIRMWARE_TARGET")
    );
    match run_echo(SEED, Some(&HEAP)) {
        Ok(report) => {
            hprintln!("{}", report);
            hprintln!(
                "stack high water: {} B (of which the scenario's own buffers, on main's stack: {} B)",
                stack_used(),
                SCENARIO_BUFFERS
            );
            hprintln!("RESULT: OK");
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(failure) => {
            hprintln!("RESULT: FAILED: {}", failure);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {
        core::hint::spin_loop();
    }
}
