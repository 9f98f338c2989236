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
ok = sum(p["status"] == 200 for p in polls)
throttled = sum(p["status"] == 429 for p in polls)
other = len(polls) - ok - throttled
# factorwatch sends until the bucket is spent, then waits for Okta's reset: a burst per window.
# The sustained rate is what the whole cycles (burst and wait) carried: from the first request of
# the first burst to the first of the last, over the bursts in between.
starts = [i for i, p in enumerate(polls) if i == 0 or p["start_ms"] - polls[i - 1]["end_ms"] > 5000]
print(f"90-day backfill, {n:,} System Log events in okta-sim, Okta's limit of 120 requests a minute on /api/v1/logs (60 s windows), factorwatch backfill on its defaults, this machine, first {budget} s\n")
print("| measure | value |")
print("|---|---|")
print(f"| requests to /api/v1/logs | {len(polls)}: {ok} answered 200, {throttled} answered 429, {other} other |")
bursts = [starts[k + 1] - starts[k] for k in range(len(starts) - 1)]
print(f"| requests in each window (burst) | {', '.join(map(str, bursts + [len(polls) - starts[-1]]))} |")
if len(starts) >= 2:
    cycles = len(starts) - 1
    minutes = (polls[starts[-1]]["start_ms"] - polls[0]["start_ms"]) / 60000
    sent = starts[-1]
    print(f"| sustained: {sent} requests in {cycles} whole windows, {minutes:.2f} min | {sent / minutes:.1f} requests/min of 120 ({100 * sent / minutes / 120:.1f}%) |")
PY
tail -n 1 "$work/summary" 2>/dev/null || true
