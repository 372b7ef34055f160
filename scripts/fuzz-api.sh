#!/usr/bin/env bash
# Schema fuzzing of the running service with Schemathesis (from PyPI, installed here into a
# virtual environment): every operation of /openapi.json gets generated valid and invalid
# requests; the run fails on any 5xx, on an answer that does not match the document, or on a
# wrong content type. Bounded by FUZZ_MAX_TIME seconds (default 150) and FUZZ_EXAMPLES cases
# per operation (default 40).
#
# One worker: with two, CPython 3.11 sometimes fails inside Hypothesis ("AST constructor
# recursion depth mismatch", concurrent parsing in threads), an error of the tool, not the API.
# The version is pinned so that a run is repeatable with its seed.
#
# Usage: scripts/fuzz-api.sh [path/to/coinsphere-ml]   (default: the debug build in $CARGO_TARGET_DIR or target)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-${CARGO_TARGET_DIR:-target}/debug/coinsphere-ml}
venv=${FUZZ_VENV:-${CARGO_TARGET_DIR:-target}/fuzz-venv}
max_time=${FUZZ_MAX_TIME:-150}
examples=${FUZZ_EXAMPLES:-40}

[ -x "$bin" ] || cargo build --bin coinsphere-ml
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'schemathesis==4.32.5'
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Short trainings: the fuzzer posts many histories of 200+ prices.
TRAINING_EPOCHS=1 TRAINING_QUEUE=4 MODELS_DIR="$work/models" WARMUP_SYMBOLS= RUST_LOG=warn \
    "$bin" serve --host 127.0.0.1 --port "$port" 2>"$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && break
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/health/live" >/dev/null || { echo "the server did not start"; cat "$work/server.log"; exit 1; }
echo "fuzzing http://127.0.0.1:$port for at most ${max_time}s, ${examples} cases per operation"

status=0
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --max-examples "$examples" --max-time "$max_time" --seed 20261202 \
    --suppress-health-check all --request-timeout 60 --workers 1 \
    --report-dir "$work/report" --no-color || status=$?
if ! kill -0 $server 2>/dev/null; then
    echo "the server died during fuzzing"; cat "$work/server.log"; exit 1
fi
exit $status
