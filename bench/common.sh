# What the benchmark scripts share; sourced after they set PORT (and optionally WORK).
# Builds the release binary if needed, prepares DATABASE, issues an admin KEY, starts the server
# (SERVER, its pid; BASE, its URL; stopped on exit) and offers `create_campaign ID [OPENS_AT]`.
set -euo pipefail
cd "$(dirname "$0")/.."
# The release build of the current source, unless BIN names another binary (cargo does nothing
# when the build is up to date).
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/sipas
fi
WORK=${WORK:-$(mktemp -d)}
trap 'kill $SERVER 2>/dev/null || true' EXIT
BASE="http://127.0.0.1:$PORT"

# CPU seconds the server has used (user + system), from /proc.
server_cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$SERVER/stat"; }

# CPU ticks (1/100 s) each kind of the server's threads has used, a line per thread name
# (the HTTP workers, the writer, ...), from /proc; a name ends at its first ':' (actix numbers its
# workers) and may hold spaces, so the ticks are read after the name's closing parenthesis.
thread_cpu() {
  local stat line name fields
  for stat in /proc/"$SERVER"/task/*/stat; do
    { line=$(<"$stat"); } 2>/dev/null || continue
    name=${line#*(}
    name=${name%)*}
    # After the name: state (field 3), ..., utime (14), stime (15).
    read -ra fields <<<"${line##*) }"
    printf '%s\t%d\n' "${name%%:*}" $((fields[11] + fields[12]))
  done | awk -F '\t' '{ticks[$1] += $2} END {for (name in ticks) print name "\t" ticks[name]}' | sort
}

# Submissions committed and groups written so far, from the server's metrics.
groups() {
  curl -s -H "Authorization: Bearer bench" "$BASE/metrics" |
    awk '/^sipas_write_group_size_sum/ {s = $2} /^sipas_write_group_size_count/ {c = $2} END {print s + 0, c + 0}'
}
# measure LABEL WRK-ARGS...: runs wrk and prints its figures with the server's CPU per request
# (and, from sipas's metrics, the mean group the writer committed), then that CPU by kind of
# thread (HTTP workers, writer, checkpoints); leaves the rate in RATE.
measure() {
  local label=$1
  shift
  local cpu_before groups_before threads_before out cpu_after groups_after threads_after
  cpu_before=$(server_cpu)
  groups_before=$(groups)
  threads_before=$(thread_cpu)
  out=$(wrk "$@")
  RATE=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  cpu_after=$(server_cpu)
  groups_after=$(groups)
  threads_after=$(thread_cpu)
  local requests
  requests=$(echo "$out" | awk '/^ *[0-9]+ requests in/ {print $1}')
  echo "$out" | awk -v label="$label" -v cpu="$cpu_before $cpu_after" -v g="$groups_before $groups_after" \
    -v requests="$requests" '
    /Requests\/sec/ {rps = $2} /non-2xx/ {non2xx = $2}
    /^ *50%/ {p50 = $2} /^ *99%/ {p99 = $2}
    END {
      split(cpu, c, " "); split(g, s, " ");
      line = sprintf("%-48s %9.0f req/s  p50 %-8s p99 %-8s server CPU %5.1f us/req", label, rps, p50, p99, \
        (c[2] - c[1]) * 1e6 / requests);
      if (s[4] > s[2]) line = line sprintf("  mean group %.1f", (s[3] - s[1]) / (s[4] - s[2]));
      if (non2xx != "") line = line "  non-2xx " non2xx;
      print line
    }'
  join -t $'\t' <(echo "$threads_before") <(echo "$threads_after") | awk -F '\t' -v n="$requests" '
    {us = ($3 - $2) * 1e4 / n; if (us >= 0.05) {line = line sprintf("%s%s %.1f", sep, $1, us); sep = ", "}}
    END {if (line != "") print "    server CPU by thread, us/req: " line}'
}

# measure_server NAME: /healthz and single-response POSTs at 16 and 64 keep-alive connections
# against the running server, each POST rate as a share of the /healthz before it; leaves the POST
# rates in POSTS_16 and POSTS_64. A short warm-up first: the first requests create the campaign's
# tally rows and warm the caches.
measure_server() {
  wrk -t2 -c16 -d2s -s bench/post.lua "$BASE/api/v1/responses" >/dev/null
  for connections in 16 64; do
    measure "$1: GET /healthz, $connections connections" -t2 -c"$connections" -d"$DURATION" --latency "$BASE/healthz"
    local healthz=$RATE
    measure "$1: POST /api/v1/responses, $connections connections" -t2 -c"$connections" -d"$DURATION" --latency \
      -s bench/post.lua "$BASE/api/v1/responses"
    printf -v "POSTS_$connections" '%s' "$RATE"
    awk -v p="$RATE" -v h="$healthz" -v n="$1" -v c="$connections" \
      'BEGIN {printf "%s: POSTs / /healthz at %d connections: %.3f\n", n, c, p / h}'
  done
}

# start_server DATABASE_URL: migrates, issues KEY, starts the server and waits until it is ready.
start_server() {
  DATABASE=$1
  "$BIN" --database "$DATABASE" migrate >/dev/null 2>&1
  KEY=$("$BIN" --database "$DATABASE" keys create --role admin --name bench 2>/dev/null)
  RUST_LOG=${RUST_LOG:-warn} SIPAS_METRICS_TOKEN=bench SIPAS_BIND="127.0.0.1:$PORT" "$BIN" --database "$DATABASE" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  wait_until_serving /readyz "$WORK/server.log"
}

# wait_until_serving PATH LOG: waits up to 10 s for the server to answer PATH; stops the benchmark
# with the server's LOG if it does not.
wait_until_serving() {
  for _ in $(seq 1 50); do curl -sf "$BASE$1" >/dev/null && return 0; sleep 0.2; done
  echo "the server did not answer $BASE$1 within 10 s; its log:" >&2
  cat "$2" >&2
  exit 1
}

# create_campaign ID [OPENS_AT]: a sipas-individual campaign over the whole country, open until 2099.
create_campaign() {
  curl -sf -X POST "$BASE/api/v1/campaigns" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"id\":\"$1\",\"survey\":\"sipas-individual\",\"title\":{\"vi\":\"Đo tải $1\",\"en\":\"Benchmark $1\"},\"agencies\":[\"VN\"],\"opens_at\":\"${2:-2025-07-01T00:00:00Z}\",\"closes_at\":\"2099-01-01T00:00:00Z\"}" >/dev/null
}

# serve_responses DATABASE_URL NAME: starts the server on the database, creates a campaign NAME-<time>
# (CAMPAIGN) and writes a complete sipas-individual response to it, every question answered (its
# file in BODY, exported with KEY for the wrk scripts post.lua and batch.lua). WORK is removed on
# exit.
serve_responses() {
  trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
  start_server "$1"
  CAMPAIGN="$2-$(date +%s)"
  create_campaign "$CAMPAIGN"
  python3 bench/make_body.py "$BASE" "$CAMPAIGN" 00070 >"$WORK/body.json"
  export BODY="$WORK/body.json" KEY
}
