#!/usr/bin/env bash
# Instructions per iteration of benchmarks of benches/throughput.rs, counted
# by callgrind (repeatable on a busy machine, unlike times): each benchmark
# is run with BENCH_ITERS=1 and BENCH_ITERS=$ITERS, and the difference is
# divided by ITERS-1, so setup and checks cancel out.
#
#   scripts/bench_profile.sh receive_binary/wsmachine/16B receive_binary/tungstenite/16B
#   ITERS=6 KEEP=1 scripts/bench_profile.sh send_server/wsmachine/1KiB   # keeps callgrind.out.* for callgrind_annotate
#
# Prints: id, instructions per iteration, per message (the ids' sizes are
# those of the bench; messages per iteration = max(1 MiB / size, 2)).
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS="${ITERS:-11}"
target="${CARGO_TARGET_DIR:-target}"
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 3; }
cargo build --release --features tokio --bench throughput >&2
bin="$(ls -t "$target"/release/deps/throughput-* | grep -v '\.d$' | head -1)"
out="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
size_bytes() {
  case "$1" in
    16B) echo 16 ;; 125B) echo 125 ;; 1KiB) echo 1024 ;; 64KiB) echo 65536 ;; 1MiB) echo 1048576 ;; *) echo 1048576 ;;
  esac
}
for id in "$@"; do
  counts=()
  for n in 1 "$ITERS"; do
    f="$out/callgrind.out.$(echo "$id" | tr '/' '_').$n"
    BENCH_ONLY="$id" BENCH_ITERS="$n" valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" --bench >/dev/null 2>&1
    counts+=("$(sed -n 's/^summary: //p' "$f" | awk '{print $1}')")
  done
  size="$(size_bytes "${id##*/}")"
  msgs=$(( (1048576 / size) > 2 ? (1048576 / size) : 2 ))
  awk -v id="$id" -v a="${counts[0]}" -v b="${counts[1]}" -v k="$ITERS" -v m="$msgs" \
    'BEGIN { per = (b - a) / (k - 1); printf "%-44s %14.0f instr/iter %10.1f instr/msg\n", id, per, per / m }'
done
[ -z "${KEEP:-}" ] || echo "callgrind files kept in $out" >&2
