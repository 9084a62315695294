#!/usr/bin/env bash
# Intake benchmark: single-response POSTs at 16 and 64 keep-alive connections and batches of
# 1,000, each beside GET /healthz on the same server in the same run. Needs `wrk` (Debian package)
# and a release build. Usage: bench/intake.sh [DATABASE_URL]   (default: a fresh SQLite file)
# Besides requests per second and latency, each line gives the server's CPU time per request (and
# under it that time by kind of thread) and, for POSTs, how many submissions the writer committed
# together on average (group commit).
PORT=18181
source "$(dirname "$0")/common.sh"
# Built from the current source each time: the baseline shares the row types with the server.
cargo build --release --quiet --example batch_baseline
DURATION="${DURATION:-10s}"
serve_responses "${1:-sqlite://$WORK/bench.db}" bench

measure_server sipas
echo "== batches of 1000: POST /api/v1/responses/batch (4 connections)"
# Responses stored, from the server's metrics: every item posted must be a new response (a
# replayed item would be cheaper and flatter the figure).
accepted() {
  curl -s -H "Authorization: Bearer bench" "$BASE/metrics" | awk '/^sipas_responses_accepted_total/ {s += $2} END {print s + 0}'
}
accepted_before=$(accepted)
batch=$(BATCH_SIZE=1000 wrk -t2 -c4 -d"$DURATION" --timeout 30s -s bench/batch.lua "$BASE/api/v1/responses/batch")
echo "$batch" | grep -E "non-2xx|batches/s"
echo "$batch" | awk -v stored=$(($(accepted) - accepted_before)) '/items posted/ {print "items posted " $3 ", stored as new responses " stored}'
echo "== baseline: the same rows inserted with plain diesel in one transaction (median of 5 rounds)"
baseline=$(target/release/examples/batch_baseline "$DATABASE" "$CAMPAIGN" 100000)
echo "$baseline"
batch_rate=$(echo "$batch" | awk '/responses\/s/ {print $NF}')
echo "$baseline" | awk -v batch="$batch_rate" '
  /^baseline:/ {printf "batch / baseline (responses only): %.2f\n", batch / $NF}
  /^baseline with idempotency records:/ {printf "batch / baseline with idempotency records (the rows a batch inserts, tallies aside): %.2f\n", batch / $NF}
  /^baseline without a checkpoint/ {printf "batch / baseline without a checkpoint in its commit: %.2f\n", batch / $NF}'
echo "== stored"
"$BIN" --database "$DATABASE" campaigns list 2>/dev/null | grep "$CAMPAIGN"
