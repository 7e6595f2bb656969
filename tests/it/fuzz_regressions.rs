//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) and every past
//! finding (`fuzz/regressions/<target>/`) through the same harness the fuzz
//! targets run, on stable `cargo test`, so each finding stays fixed.

use crate::fuzz_harness;
use std::path::Path;
use wsmachine::Role;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let result = std::panic::catch_unwind(|| run(&data));
            assert!(result.is_ok(), "{target}: {} fails", f.display());
            n += 1;
        }
    }
    n
}

#[test]
fn frame_decode_corpus() {
    assert!(
        replay("frame_decode", fuzz_harness::frame_decode) > 0,
        "no seeds checked in"
    );
}

#[test]
fn server_handshake_corpus() {
    assert!(replay("server_handshake", fuzz_harness::server_handshake) > 0);
}

#[test]
fn client_handshake_corpus() {
    assert!(replay("client_handshake", fuzz_harness::client_handshake) > 0);
}

#[test]
fn connection_server_corpus() {
    assert!(replay("connection_server", |d| fuzz_harness::connection(Role::Server, d)) > 0);
}

#[test]
fn connection_client_corpus() {
    assert!(replay("connection_client", |d| fuzz_harness::connection(Role::Client, d)) > 0);
}

#[test]
fn roundtrip_corpus() {
    assert!(replay("roundtrip", fuzz_harness::roundtrip) > 0);
}

#[test]
fn differential_corpus() {
    assert!(replay("differential", fuzz_harness::differential::differential) > 0);
}

#[cfg(feature = "deflate")]
#[test]
fn deflate_corpus() {
    assert!(replay("deflate", fuzz_harness::deflate::deflate) > 0);
}
