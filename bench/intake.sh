#!/usr/bin/env bash
# Intake benchmark: single-response POSTs at 16 and 64 keep-alive connections and batches of
# 1,000, each beside GET /healthz on the same server in the same run. Needs `wrk` (Debian package)
# and a release build. Usage: bench/intake.sh [DATABASE_URL]   (default: a fresh SQLite file)
PORT=18181
source "$(dirname "$0")/common.sh"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
DURATION="${DURATION:-10s}"
start_server "${1:-sqlite://$WORK/bench.db}"
CAMPAIGN="bench-$(date +%s)"
create_campaign "$CAMPAIGN"
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
