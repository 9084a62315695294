#!/usr/bin/env bash
# Intake benchmark: single-response POSTs at 16 and 64 keep-alive connections and batches of
# 1,000, each beside GET /healthz on the same server in the same run. Needs `wrk` (Debian package)
# and a release build. Usage: bench/intake.sh [DATABASE_URL]   (default: a fresh SQLite file)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/sipas
[ -x "$BIN" ] || cargo build --release
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
DATABASE="${1:-sqlite://$WORK/bench.db}"
PORT=18181
BASE="http://127.0.0.1:$PORT"
DURATION="${DURATION:-10s}"

"$BIN" --database "$DATABASE" migrate >/dev/null 2>&1
KEY=$("$BIN" --database "$DATABASE" keys create --role admin --name bench 2>/dev/null)
RUST_LOG=warn SIPAS_BIND="127.0.0.1:$PORT" "$BIN" --database "$DATABASE" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 50); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.2; done
CAMPAIGN="bench-$(date +%s)"
curl -sf -X POST "$BASE/api/v1/campaigns" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d "{\"id\":\"$CAMPAIGN\",\"survey\":\"sipas-individual\",\"title\":{\"vi\":\"Đo tải\",\"en\":\"Benchmark\"},\"agencies\":[\"VN\"],\"opens_at\":\"2025-07-01T00:00:00Z\",\"closes_at\":\"2099-01-01T00:00:00Z\"}" >/dev/null
python3 bench/make_body.py "$BASE" "$CAMPAIGN" 00070 >"$WORK/body.json"
export BODY="$WORK/body.json" KEY

for connections in 16 64; do
  echo "== $connections connections: GET /healthz (baseline)"
  wrk -t2 -c"$connections" -d"$DURATION" "$BASE/healthz" | grep -E "Requests/sec|Latency"
  echo "== $connections connections: POST /api/v1/responses"
  wrk -t2 -c"$connections" -d"$DURATION" --latency -s bench/post.lua "$BASE/api/v1/responses" | grep -E "Requests/sec|non-2xx|p50"
done
echo "== batches of 1000: POST /api/v1/responses/batch (4 connections)"
BATCH_SIZE=1000 wrk -t2 -c4 -d"$DURATION" --timeout 30s -s bench/batch.lua "$BASE/api/v1/responses/batch" | grep -E "non-2xx|batches/s"
echo "== stored"
"$BIN" --database "$DATABASE" campaigns list 2>/dev/null | grep "$CAMPAIGN"
