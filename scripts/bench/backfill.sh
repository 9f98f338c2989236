#!/usr/bin/env bash
# A 90-day backfill at Okta's ceiling: okta-sim with Okta's rate limits (Workforce: 120 requests a
# minute on /api/v1/logs, 60 s windows), a System Log of N events over 90 days, and
# `factorwatch backfill --since <90 days ago>` on its defaults. okta-sim records every request it
# answered (`/sim/polls`); the table gives requests a minute against the limit and the 429s.
#
#   scripts/bench/backfill.sh [N] [SECONDS]   (default 1,000,000 events; the first 240 s of the
#                                              backfill, four windows, unless it ends sooner)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-1000000}"
SECONDS_MAX="${2:-240}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q --release -p factorwatch -p okta-sim

echo "generating $N events over 90 days in okta-sim…" >&2
./target/release/okta-sim --token bench --scenario steady --events "$N" --rate 0 --backlog-hours 2159 \
  --seed 7 > "$work/sim.out" &
until grep -q listening "$work/sim.out" 2>/dev/null; do sleep 0.5; done
base="$(awk '{print $3}' "$work/sim.out" | head -1)"
since="$(date -u -d '-90 days +1 hour' +%Y-%m-%dT%H:%M:%SZ)"
cat > "$work/fw.toml" <<TOML
[store]
path = "$work/fw.db"
[[sinks]]
name = "file"
type = "file"
path = "$work/siem.ndjson"
[email]
enabled = false
[[orgs]]
name = "bench"
url = "$base"
token_env = "TK"
TOML
TK=bench timeout -s INT "$SECONDS_MAX" ./target/release/factorwatch backfill --org bench --since "$since" \
  --config "$work/fw.toml" > "$work/summary" 2> "$work/log" || true
curl -s "$base/sim/polls" > "$work/polls.json"
python3 - "$work/polls.json" "$N" "$SECONDS_MAX" <<'PY'
import json, sys
polls = [p for p in json.load(open(sys.argv[1])) if p["path"] == "/api/v1/logs"]
n, budget = int(sys.argv[2]), int(sys.argv[3])
ok = [p for p in polls if p["status"] == 200]
throttled = [p for p in polls if p["status"] == 429]
other = [p for p in polls if p["status"] not in (200, 429)]
start, end = polls[0]["start_ms"], polls[-1]["end_ms"]
minutes = (end - start) / 60000
# Whole windows only: the last one may be cut short by the end of the run.
per_window = {}
for p in polls:
    per_window.setdefault((p["start_ms"] - start) // 60000, []).append(p)
full = [w for k, w in sorted(per_window.items()) if (k + 1) * 60000 <= end - start]
print(f"90-day backfill, {n:,} System Log events in okta-sim, Okta's limit of 120 requests a minute on /api/v1/logs (60 s windows), this machine, first {budget} s\n")
print("| measure | value |")
print("|---|---|")
print(f"| requests to /api/v1/logs | {len(polls)} in {minutes:.2f} min: {len(ok)} answered 200, {len(throttled)} answered 429, {len(other)} other |")
print(f"| requests a minute, first request to last | {len(polls) / minutes:.1f} of 120 ({100 * len(polls) / minutes / 120:.1f}%) |")
if full:
    counts = [len(w) for w in full]
    print(f"| requests in each whole minute from the first | {', '.join(map(str, counts))} (mean {sum(counts) / len(counts):.1f}: {100 * sum(counts) / len(counts) / 120:.1f}% of 120) |")
PY
tail -n 1 "$work/summary" 2>/dev/null || true
