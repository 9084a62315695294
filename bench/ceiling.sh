#!/usr/bin/env bash
# The single-POST benchmark beside its ceiling: sipas's POST /api/v1/responses and GET /healthz at
# 16 and 64 keep-alive connections, then the same requests against a bare server
# (examples/post_ceiling.rs) that only reads each body and stores the rows a sipas POST stores,
# with the same HTTP server, group commit and database settings, on the same database. Prints
# each server's POSTs as a share of its own /healthz, and sipas's POSTs as a share of the
# ceiling's. Needs `wrk` and a release build. Usage: bench/ceiling.sh [DATABASE_URL]
PORT=18184
source "$(dirname "$0")/common.sh"
cargo build --release --quiet --example post_ceiling
DURATION="${DURATION:-8s}"
serve_responses "${1:-sqlite://$WORK/bench.db}" ceiling

measure_server sipas
sipas_16=$POSTS_16 sipas_64=$POSTS_64
# The ceiling takes sipas's place on the same database (sipas stopped: its writer has added every
# tally it held, and nothing else writes).
kill "$SERVER"
while kill -0 "$SERVER" 2>/dev/null; do sleep 0.1; done
target/release/examples/post_ceiling "$DATABASE" "$CAMPAIGN" "127.0.0.1:$PORT" >"$WORK/ceiling.log" 2>&1 &
SERVER=$!
wait_until_serving /healthz "$WORK/ceiling.log"
measure_server ceiling
awk -v s16="$sipas_16" -v s64="$sipas_64" -v c16="$POSTS_16" -v c64="$POSTS_64" \
  'BEGIN {printf "sipas POSTs / ceiling POSTs: %.2f at 16 connections, %.2f at 64\n", s16 / c16, s64 / c64}'
