#!/usr/bin/env python3
"""The table of `benches/throughput.rs`: per group and size, each library's
median throughput, as a multiple of `memcpy` of the same payload and of the
fastest peer (tungstenite, fastwebsockets, tokio-websockets).

    cargo bench --features tokio --bench throughput
    python3 scripts/bench_table.py [CRITERION_DIR]   # default: target/criterion
                                                     # (or $CARGO_TARGET_DIR/criterion)

Reads criterion's `new/estimates.json` (the median time of one iteration)
and `new/benchmark.json` (its throughput: messages and payload bytes per
iteration). Ratios above 1 mean faster. Prints Markdown.
"""
import json
import os
import sys

GROUPS = ["receive_binary", "receive_text", "receive_fragmented", "send_server", "send_client"]
OURS = ["wsmachine", "wsmachine-blocking"]
PEERS = ["tungstenite", "fastwebsockets", "tokio-websockets"]
SIZE_ORDER = ["16B", "125B", "1KiB", "64KiB", "1MiB"]


def load(root, group, lib, size):
    base = os.path.join(root, group, lib, size, "new")
    try:
        with open(os.path.join(base, "estimates.json")) as f:
            est = json.load(f)
        with open(os.path.join(base, "benchmark.json")) as f:
            bench = json.load(f)
    except FileNotFoundError:
        return None
    ns = est["median"]["point_estimate"]
    tp = bench.get("throughput") or {}
    eb = tp.get("ElementsAndBytes") or {}
    return {"ns": ns, "elements": eb.get("elements"), "bytes": eb.get("bytes")}


def sizes_of(root, group):
    found = set()
    for lib in OURS + PEERS + ["memcpy"]:
        d = os.path.join(root, group, lib)
        if os.path.isdir(d):
            found.update(x for x in os.listdir(d) if os.path.isdir(os.path.join(d, x)) and x != "report")
    return sorted(found, key=lambda s: (SIZE_ORDER.index(s) if s in SIZE_ORDER else 99, s))


def rate(r):
    """Payload bytes/s and messages/s."""
    secs = r["ns"] / 1e9
    return (r["bytes"] or 0) / secs, (r["elements"] or 0) / secs


def human_bytes(bps):
    return f"{bps / 2**30:.2f} GiB/s" if bps >= 2**30 else f"{bps / 2**20:.0f} MiB/s"


def human_msgs(mps):
    return f"{mps / 1e6:.1f} M/s" if mps >= 1e6 else f"{mps / 1e3:.0f} k/s"


def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target, "criterion")
    if not os.path.isdir(root):
        sys.exit(f"no criterion results under {root}: run `cargo bench --features tokio --bench throughput` first")
    print("| group | size | wsmachine | × memcpy | blocking × memcpy | fastest peer | peer × memcpy | wsmachine / fastest peer | blocking / fastest peer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for group in GROUPS:
        for size in sizes_of(root, group):
            mem = load(root, group, "memcpy", size)
            ours = {lib: load(root, group, lib, size) for lib in OURS}
            peers = {lib: load(root, group, lib, size) for lib in PEERS}
            peers = {k: v for k, v in peers.items() if v}
            w = ours["wsmachine"]
            if not w:
                continue
            best = min(peers, key=lambda k: peers[k]["ns"]) if peers else None
            bps, mps = rate(w)
            shown = human_msgs(mps) if size in ("16B", "125B") else human_bytes(bps)
            x_mem = f"{mem['ns'] / w['ns']:.2f}" if mem else "–"
            b = ours["wsmachine-blocking"]
            xb_mem = f"{mem['ns'] / b['ns']:.2f}" if mem and b else "–"
            if best:
                p = peers[best]
                p_mem = f"{mem['ns'] / p['ns']:.2f}" if mem else "–"
                vs = f"{p['ns'] / w['ns']:.2f}×"
                vsb = f"{p['ns'] / b['ns']:.2f}×" if b else "–"
            else:
                p_mem = vs = vsb = "–"
            print(f"| {group} | {size} | {shown} | {x_mem} | {xb_mem} | {best or '–'} | {p_mem} | {vs} | {vsb} |")


if __name__ == "__main__":
    main()
