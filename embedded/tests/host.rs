//! The scenario and the transport on the host, with the system allocator.

use wsmachine_embedded::transport::Pipe;
use wsmachine_embedded::{HELLO, run_echo};

#[test]
fn echo_scenario_runs_with_any_allocator() {
    for seed in [[0u8; 32], [0x5a; 32], *b"another seed for masking keys..."] {
        let report = run_echo(seed, None).unwrap_or_else(|f| panic!("run failed: {f}"));
        assert_eq!(
            (report.echoed, report.pongs, report.close_code, report.clean),
            (3, 1, 1000, true)
        );
        assert!(report.client_to_server > HELLO.len());
    }
}

#[test]
fn pipe_partial_writes_and_eof() {
    let mut p: Pipe<4> = Pipe::new();
    assert_eq!(p.write(b"abcdef"), 4);
    let mut buf = [0u8; 3];
    assert_eq!(p.read(&mut buf), 3);
    assert_eq!(&buf, b"abc");
    assert_eq!(p.write(b"xyz"), 3);
    p.close();
    assert_eq!(p.write(b"!"), 0);
    assert!(!p.at_eof());
    let mut rest = [0u8; 8];
    assert_eq!(p.read(&mut rest), 4);
    assert_eq!(&rest[..4], b"dxyz");
    assert!(p.at_eof());
    assert_eq!(p.total_written(), 7);
}
