#!/usr/bin/env bash
# Training time of an on-demand 365-price model (SPEC section 3 network, the service's default
# settings), two builds alternating on one idle machine: the previous release and this tree.
# Usage: bench/train-365.sh OLD_BINARY [NEW_BINARY] [ROUNDS]
# Build OLD_BINARY from the earlier commit, e.g.
#   git worktree add /tmp/old 0447f56 && (cd /tmp/old && cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1
new=${2:-target/release/coinsphere-ml}
rounds=${3:-3}
grep -m1 "model name" /proc/cpuinfo
grep -o -w 'avx2\|avx512f\|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
for r in $(seq "$rounds"); do
  for bin in "$old" "$new"; do
    dir=$(mktemp -d)
    # The last line names the epochs run and the seconds they took.
    line=$("$bin" train --symbol BTC --csv data/prices/BTC.csv --last 365 --models-dir "$dir" 2>&1 | tail -1)
    rm -rf "$dir"
    echo "round $r $bin: $(grep -o '[0-9]* epochs in [0-9.]* s' <<<"$line")"
  done
done
