//! The firmware's scenario on the host: the `no_std` library driven by the
//! same code, with the same fixed-size counting heap as global allocator.
//!
//! One test in this binary on purpose: the heap's tag is global, so nothing
//! else may allocate while a run is measured (the harness spawns a test's
//! thread before it runs and joins it after, so with one test it is idle).
//! Figures here are for a 64-bit host (pointers and `usize` twice as wide as
//! on the Cortex-M4); the README quotes the firmware's.

use wsmachine_embedded::heap::CountingHeap;
use wsmachine_embedded::{BINARY_LEN, config, run_echo};

/// 4 MiB: the test harness allocates from it too (untracked, as `App`).
#[global_allocator]
static HEAP: CountingHeap<{ 4 << 20 }> = CountingHeap::new();

const SEED: [u8; 32] = *b"host test seed, not for devices!";

#[test]
fn handshake_echo_ping_close_with_measured_heap() {
    let report = run_echo(SEED, Some(&HEAP)).unwrap_or_else(|f| panic!("run failed: {f}"));
    let plain = run_echo(SEED, None).unwrap_or_else(|f| panic!("run without probe failed: {f}"));
    println!("{report}");

    assert_eq!(report.echoed, 3);
    assert_eq!(report.pongs, 1);
    assert_eq!(report.close_code, 1000);
    assert!(report.clean);
    assert_eq!(report.client_events.other, 0);
    assert_eq!(report.server_events.other, 0);
    assert_eq!((report.client_events.open, report.server_events.request), (1, 1));
    assert_eq!(report.server_events.ping, 1);
    assert_eq!(report.server_events.text, 2);
    assert_eq!(report.server_events.binary, 1);
    // The 4 KiB binary message went both ways, masked one way.
    assert!(report.client_to_server > BINARY_LEN && report.server_to_client > BINARY_LEN);
    // The handshake fits the 1 KiB limit with room to spare.
    let limit = config().max_handshake_size;
    assert!(report.handshake_request < limit && report.handshake_response < limit);

    let heap = report.heap.expect("measured");
    assert_eq!(heap.heap.untracked, 0, "every connection block was tracked");
    assert_eq!(heap.heap.failed, 0);
    for side in [heap.client, heap.server] {
        assert_eq!(side.after_drop_bytes, 0, "a connection leaked: {side}");
        assert!(
            side.peak_bytes >= BINARY_LEN,
            "a connection held a whole 4 KiB message: {side}"
        );
        // The limits bound it: 4 KiB in, 8 KiB of output, small change.
        assert!(side.peak_bytes < 16 << 10, "{side}");
        assert!(side.open_idle_bytes < 2 << 10, "{side}");
    }

    // Measuring changes nothing: the same seed gives the same masking keys,
    // so the run without a probe is byte for byte the same.
    assert!(plain.heap.is_none());
    assert_eq!(
        (
            plain.client_to_server,
            plain.server_to_client,
            plain.client_events,
            plain.server_events,
            plain.turns
        ),
        (
            report.client_to_server,
            report.server_to_client,
            report.client_events,
            report.server_events,
            report.turns
        )
    );
}
