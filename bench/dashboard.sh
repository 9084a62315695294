#!/usr/bin/env bash
# Results page benchmark: fills a campaign with TOTAL synthetic sipas-individual responses (and an
# earlier campaign of the same survey with EARLIER responses, so that the page compares and draws
# a trend), then measures in the same run, median of 20 requests each, server time from the
# Server-Timing headers:
#   - the national results page /results/{campaign} (every chart, the comparison and the trend);
#   - the stats API call for the same view (agency=VN, scope=children, compare=earlier), the
#     baseline: the page is that call plus one per earlier campaign for the trend, and rendering.
# Usage: bench/dashboard.sh [DATABASE_URL] [TOTAL] [EARLIER]
#   (default: a fresh SQLite file, 10,000,000 and 1,000,000 responses)
PORT=18183
source "$(dirname "$0")/common.sh"
TOTAL="${2:-10000000}"
EARLIER="${3:-1000000}"
start_server "${1:-sqlite://$WORK/dashboard.db}"
STAMP=$(date +%s)
BEFORE="before-$STAMP"
NOW="now-$STAMP"
for campaign in "$BEFORE 2025-07-01T00:00:00Z" "$NOW 2025-07-02T00:00:00Z"; do
  set -- $campaign
  create_campaign "$1" "$2"
  curl -sf -X PATCH "$BASE/api/v1/campaigns/$1" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"results_public":true}' >/dev/null
done
echo "== filling $BEFORE with $EARLIER and $NOW with $TOTAL responses ($DATABASE)"
python3 bench/load_campaign.py "$BASE" "$KEY" "$BEFORE" survey-defs/agencies/vn-admin-units-2025.csv "$EARLIER" 3 agency
python3 bench/load_campaign.py "$BASE" "$KEY" "$NOW" survey-defs/agencies/vn-admin-units-2025.csv "$TOTAL" 3 agency

timing() { # URL NAME [AUTH]: median server time of 20 requests (after one to warm the caches)
  local url=$1 name=$2
  shift 2
  curl -s -o /dev/null "$@" "$url"
  for _ in $(seq 1 20); do
    curl -s -o /dev/null -D - "$@" "$url" | tr -d '\r' | sed -n "s/^server-timing: $name;dur=//ip"
  done | sort -n | awk '{a[NR]=$1} END {printf "%.1f\n", a[int((NR+1)/2)]}'
}
PAGE=$(timing "$BASE/results/$NOW?agency=VN" page)
STATS=$(timing "$BASE/api/v1/campaigns/$NOW/stats?agency=VN&scope=children&compare=$BEFORE" stats -H "Authorization: Bearer $KEY")
BYTES=$(curl -s "$BASE/results/$NOW?agency=VN" | wc -c)
python3 - "$PAGE" "$STATS" "$BYTES" "$TOTAL" <<'PY'
import sys
page, stats, size, total = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
print(f"national results page ({total:,} responses): median {page:.1f} ms server time, {size:,} bytes")
print(f"stats API, same view (baseline): median {stats:.1f} ms; page / stats = {page / stats:.2f}")
print(f"target: page <= 100 ms: {'met' if page <= 100 else 'NOT met'}")
PY
