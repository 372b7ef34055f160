#!/usr/bin/env bash
# Whole-service timings through HTTP: on-demand training time for 365 and 1,000 daily BTC
# closes, /predict latency on a cached model, and /health latency while a model trains.
#
# Usage: bench/service_latency.sh [path/to/coinsphere-ml]   (default target/release/coinsphere-ml)
# Needs curl, jq and python3 (only to build the JSON bodies). Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/coinsphere-ml}
PORT=${PORT_FOR_BENCH:-18765}
DIR=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$DIR"' EXIT

body() { # symbol n days -> JSON body with the last n BTC closes
  python3 - "$1" "$2" "$3" <<'PY'
import csv, json, sys
sym, n, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
closes = [float(r["close"]) for r in csv.DictReader(open("data/prices/BTC.csv"))][-n:]
print(json.dumps({"symbol": sym, "historical_prices": closes, "days_ahead": days}))
PY
}
body BTCA 365 7 > "$DIR/365.json"
body BTCB 1000 7 > "$DIR/1000.json"
body BTCC 1000 7 > "$DIR/bg.json"

"$BIN" serve --host 127.0.0.1 --port "$PORT" --models-dir "$DIR/models" --log-filter warn &
SERVER=$!
for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done

post() { curl -s -o "$DIR/out" -w '%{http_code} %{time_total}' -H 'content-type: application/json' --data-binary @"$1" "localhost:$PORT/predict"; }

for n in 365 1000; do
  r=$(post "$DIR/$n.json"); code=${r% *}; secs=${r#* }
  echo "first /predict, $n prices (trains 50 epochs): HTTP $code in ${secs} s; answer: $(cat "$DIR/out")"
done

# Cached model: 200 sequential requests, 7 days ahead, 365 prices in the body.
times=()
for _ in $(seq 200); do r=$(post "$DIR/365.json"); times+=("${r#* }"); done
printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {printf "cached /predict (365 prices, 7 days): median %.2f ms, p99 %.2f ms, max %.2f ms over %d requests\n", a[int(NR/2)]*1000, a[int(NR*0.99)]*1000, a[NR]*1000, NR}'

# /health while a 1,000-price model trains in the background.
curl -s -o /dev/null -H 'content-type: application/json' --data-binary @"$DIR/bg.json" "localhost:$PORT/predict" &
BG=$!
while [ "$(curl -s "localhost:$PORT/health" | jq '.training.trainings_running')" != 1 ]; do sleep 0.05; done
htimes=()
for _ in $(seq 100); do htimes+=("$(curl -s -o /dev/null -w '%{time_total}' "localhost:$PORT/health")"); done
running=$(curl -s "localhost:$PORT/health" | jq '.training.trainings_running')
printf '%s\n' "${htimes[@]}" | sort -g | awk -v r="$running" '{a[NR]=$1} END {printf "/health during training: median %.2f ms, max %.2f ms over %d requests (still training afterwards: %s)\n", a[int(NR/2)]*1000, a[NR]*1000, NR, (r==1?"yes":"no")}'
wait $BG
