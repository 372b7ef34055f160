#!/bin/bash
# A/B throughput of one route between two release binaries (BENCHMARKS.md):
#   bench/ab.sh BASE_BINARY NEW_BINARY [ROUNDS] [ROUTE]
# ROUTE is /risk-score (default) or /predict (the LSTM, 7 days: the first request trains the
# model, then every request is a cached forecast). Alternates the two binaries, one server at
# a time on a fresh models dir, 2 s warm-up then `wrk -t1 -c16 -d10s` with the last 365 BTC
# closes, and prints req/s and the server's CPU time per request (utime + stime from
# /proc/PID/stat), steadier than req/s on a shared machine.
set -euo pipefail
base=$(realpath "$1"); new=$(realpath "$2"); rounds=${3:-3}; route=${4:-/risk-score}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -c 'import csv, json, sys; c = [float(r["close"]) for r in csv.DictReader(open(sys.argv[1]))]; print(json.dumps({"symbol": "btc", "historical_prices": c[-365:], **({"days_ahead": 7} if sys.argv[2] == "/predict" else {})}))' \
  "$here/data/prices/BTC.csv" "$route" > "$work/body.json"
cat > "$work/post.lua" <<LUA
local f = io.open("$work/body.json", "r")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local bad = 0
response = function(status, headers, body) if status ~= 200 then bad = bad + 1 end end
done = function(summary, latency, requests) io.write(string.format("non-2xx in thread: %d\n", bad)) end
LUA
tick=$(getconf CLK_TCK)
for round in $(seq "$rounds"); do
  for side in base new; do
    bin=$base; [ "$side" = new ] && bin=$new
    dir=$(mktemp -d -p "$work")
    "$bin" serve --host 127.0.0.1 --port 8124 --models-dir "$dir" > "$work/$side.log" 2>&1 &
    pid=$!
    for _ in $(seq 50); do curl -sf localhost:8124/health/ready > /dev/null && break; sleep 0.2; done
    # One request first: on /predict it trains the model the rest are served from.
    curl -sf -H 'content-type: application/json' -d @"$work/body.json" "http://127.0.0.1:8124$route" > /dev/null
    wrk -t1 -c16 -d2s -s "$work/post.lua" "http://127.0.0.1:8124$route" > /dev/null
    t0=$(awk '{print $14+$15}' /proc/$pid/stat)
    out=$(wrk -t1 -c16 -d10s -s "$work/post.lua" "http://127.0.0.1:8124$route")
    t1=$(awk '{print $14+$15}' /proc/$pid/stat)
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    bad=$(echo "$out" | awk '/non-2xx/ {print $4}')
    echo "$side round $round: $rps req/s, $(awk -v t=$((t1 - t0)) -v n="$n" -v k="$tick" 'BEGIN {printf "%.1f", t / k / n * 1e6}') us CPU/request, non-2xx $bad, load $(cut -d' ' -f1 /proc/loadavg)"
    kill $pid; wait $pid 2>/dev/null || true
  done
done
