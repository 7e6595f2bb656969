//! The firmware without wsmachine: the same start-up, counting heap,
//! semihosting output and report formatting (a `Report` the optimizer cannot
//! see through), but no connection. `.text(firmware) - .text(baseline)` is
//! the code that wsmachine, and the scenario's driver loop, add.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::hint::black_box;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;
use wsmachine_embedded::heap::{CountingHeap, HeapProbe};
use wsmachine_embedded::{HeapReport, Report};

#[global_allocator]
static HEAP: CountingHeap<{ 32 * 1024 }> = CountingHeap::new();

#[entry]
fn main() -> ! {
    hprintln!("baseline: the firmware without wsmachine");
    // The heap in use, as the scenario uses it.
    let mut v: Vec<u32> = Vec::new();
    for i in 0..black_box(100) {
        v.push(i);
    }
    let report = Report {
        echoed: v.iter().sum(),
        heap: Some(HeapReport {
            heap: HEAP.heap_stats(),
            ..HeapReport::default()
        }),
        ..Report::default()
    };
    drop(v);
    let report = black_box(report);
    hprintln!("{}", report);
    hprintln!("RESULT: {}", if report.clean { "OK" } else { "baseline" });
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        core::hint::spin_loop();
    }
}
