#!/usr/bin/env bash
# Statistics benchmark: fills a campaign with TOTAL synthetic sipas-individual responses over the
# 3,321 communes through the batch intake path, then measures, in the same run:
#   - the national `scope=children` stats query (34 provinces, all criteria), server time from
#     its Server-Timing header, median of 20;
#   - the baseline: recomputing the same figures by scanning every stored answer
#     (`sipas tallies verify`, which rebuilds every tally from the answers);
#   - a full CSV export through `sipas export`: rows per second and peak memory (max RSS).
# Usage: [SPREAD=agency|national] bench/stats.sh [DATABASE_URL] [TOTAL]
#   (default: a fresh SQLite file, 10,000,000 responses, batches per agency; see load_campaign.py)
PORT=18182
source "$(dirname "$0")/common.sh"
TOTAL="${2:-10000000}"
start_server "${1:-sqlite://$WORK/stats.db}"
CAMPAIGN="stats-$(date +%s)"
create_campaign "$CAMPAIGN"
echo "== filling $CAMPAIGN with $TOTAL responses ($DATABASE)"
python3 bench/load_campaign.py "$BASE" "$KEY" "$CAMPAIGN" survey-defs/agencies/vn-admin-units-2025.csv "$TOTAL" 3 "${SPREAD:-agency}"

echo "== national stats, scope=children (34 provinces), 20 requests"
for _ in $(seq 1 20); do
  curl -s -o /dev/null -D - -H "Authorization: Bearer $KEY" \
    "$BASE/api/v1/campaigns/$CAMPAIGN/stats?agency=VN&scope=children" | tr -d '\r' | sed -n 's/^server-timing: stats;dur=//ip'
done | sort -n | awk '{a[NR]=$1} END {printf "server time: median %.1f ms, min %.1f ms, max %.1f ms\n", a[int((NR+1)/2)], a[1], a[NR]}' | tee "$WORK/stats.txt"
kill $SERVER; wait $SERVER 2>/dev/null || true

echo "== baseline: the same figures by scanning every answer (sipas tallies verify)"
START=$(date +%s.%N)
"$BIN" --database "$DATABASE" tallies verify --campaign "$CAMPAIGN" 2>&1 | tail -1
END=$(date +%s.%N)
python3 - "$START" "$END" "$WORK/stats.txt" <<'PY'
import re, sys
scan = (float(sys.argv[2]) - float(sys.argv[1])) * 1000
median = float(re.search(r"median ([0-9.]+)", open(sys.argv[3]).read()).group(1))
print(f"scan: {scan:,.0f} ms; stats query / scan = {median / scan:.6f} ({scan / median:,.0f}x faster)")
PY

echo "== full CSV export (sipas export)"
/usr/bin/time -v "$BIN" --database "$DATABASE" export --campaign "$CAMPAIGN" --format csv --output "$WORK/export.csv" 2>"$WORK/time.txt" || true
grep -E "responses exported" "$WORK/time.txt"
python3 - "$WORK/time.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([0-9:.]+)", text).group(1)
parts = [float(p) for p in wall.split(":")]
seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
rows = int(re.search(r"(\d+) responses exported", text).group(1))
print(f"export: {rows:,} rows in {seconds:.0f} s = {rows / seconds:,.0f} rows/s, peak RSS {rss / 1024:.0f} MB")
PY
ls -la "$WORK/export.csv" | awk '{printf "export file: %.1f GB\n", $5/1e9}'
rm -f "$WORK/export.csv"
