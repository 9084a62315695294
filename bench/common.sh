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

# start_server DATABASE_URL: migrates, issues KEY, starts the server and waits until it is ready.
start_server() {
  DATABASE=$1
  "$BIN" --database "$DATABASE" migrate >/dev/null 2>&1
  KEY=$("$BIN" --database "$DATABASE" keys create --role admin --name bench 2>/dev/null)
  RUST_LOG=${RUST_LOG:-warn} SIPAS_METRICS_TOKEN=bench SIPAS_BIND="127.0.0.1:$PORT" "$BIN" --database "$DATABASE" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 50); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.2; done
}

# create_campaign ID [OPENS_AT]: a sipas-individual campaign over the whole country, open until 2099.
create_campaign() {
  curl -sf -X POST "$BASE/api/v1/campaigns" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"id\":\"$1\",\"survey\":\"sipas-individual\",\"title\":{\"vi\":\"Đo tải $1\",\"en\":\"Benchmark $1\"},\"agencies\":[\"VN\"],\"opens_at\":\"${2:-2025-07-01T00:00:00Z}\",\"closes_at\":\"2099-01-01T00:00:00Z\"}" >/dev/null
}
