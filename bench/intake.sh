#!/usr/bin/env bash
# Intake benchmark: single-response POSTs at 16 and 64 keep-alive connections and batches of
# 1,000, each beside GET /healthz on the same server in the same run. Needs `wrk` (Debian package)
# and a release build. Usage: bench/intake.sh [DATABASE_URL]   (default: a fresh SQLite file)
# Besides requests per second and latency, each line gives the server's CPU time per request and,
# for POSTs, how many submissions the writer committed together on average (group commit).
PORT=18181
source "$(dirname "$0")/common.sh"
# Built from the current source each time: the baseline shares the row types with the server.
cargo build --release --quiet --example batch_baseline
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
DURATION="${DURATION:-10s}"
start_server "${1:-sqlite://$WORK/bench.db}"
CAMPAIGN="bench-$(date +%s)"
create_campaign "$CAMPAIGN"
python3 bench/make_body.py "$BASE" "$CAMPAIGN" 00070 >"$WORK/body.json"
export BODY="$WORK/body.json" KEY

# CPU seconds the server has used (user + system), from /proc.
server_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$SERVER/stat"; }
# Submissions committed and groups written so far, from the server's metrics.
groups() {
  curl -s -H "Authorization: Bearer bench" "$BASE/metrics" |
    awk '/^sipas_write_group_size_sum/ {s = $2} /^sipas_write_group_size_count/ {c = $2} END {print s + 0, c + 0}'
}
# measure LABEL WRK-ARGS...: runs wrk and prints its figures with the server's CPU per request.
measure() {
  local label=$1
  shift
  local cpu_before groups_before out cpu_after groups_after
  cpu_before=$(server_cpu)
  groups_before=$(groups)
  out=$(wrk "$@")
  cpu_after=$(server_cpu)
  groups_after=$(groups)
  echo "$out" | awk -v label="$label" -v cpu="$cpu_before $cpu_after" -v g="$groups_before $groups_after" '
    /Requests\/sec/ {rps = $2} /^ *Latency / {mean = $2} /non-2xx/ {non2xx = $2}
    /^ *50%/ {p50 = $2} /^ *99%/ {p99 = $2}
    /^ *[0-9]+ requests in/ {requests = $1}
    END {
      split(cpu, c, " "); split(g, s, " ");
      line = sprintf("%-44s %9.0f req/s  p50 %-8s p99 %-8s server CPU %5.1f us/req", label, rps, p50, p99, \
        (c[2] - c[1]) * 1e6 / requests);
      if (s[4] > s[2]) line = line sprintf("  mean group %.1f", (s[3] - s[1]) / (s[4] - s[2]));
      if (non2xx != "") line = line "  non-2xx " non2xx;
      print line
    }'
}

# A short warm-up first: the first requests create the campaign's tally rows and warm the caches.
wrk -t2 -c16 -d2s -s bench/post.lua "$BASE/api/v1/responses" >/dev/null
for connections in 16 64; do
  measure "GET /healthz, $connections connections (baseline)" -t2 -c"$connections" -d"$DURATION" --latency \
    "$BASE/healthz"
  measure "POST /api/v1/responses, $connections connections" -t2 -c"$connections" -d"$DURATION" --latency \
    -s bench/post.lua "$BASE/api/v1/responses"
done
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
  /^baseline with idempotency records:/ {printf "batch / baseline with idempotency records: %.2f\n", batch / $NF}'
echo "== stored"
"$BIN" --database "$DATABASE" campaigns list 2>/dev/null | grep "$CAMPAIGN"
