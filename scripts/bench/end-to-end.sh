#!/usr/bin/env bash
# Proof of speed, end to end, against okta-sim on this machine: N System Log events (2% MFA changes,
# default 1,000,000) polled, classified, stored and written to the file SIEM sink by factorwatch —
# once fetching everything (as the reference does), once with its default server-side MFA filter —
# and the same work by the reference Python poller (scripts/bench/python_poller.py), side by side.
#
#   scripts/bench/end-to-end.sh [N]          (needs python3 with requests; GNU time)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-1000000}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q --release -p factorwatch -p okta-sim
python3 -c 'import requests' 2>/dev/null || python3 -m pip install -q requests

echo "generating $N events in okta-sim…" >&2
./target/release/okta-sim --token bench --scenario steady --events "$N" --rate 0 --backlog-hours 48 \
  --logs-rate-limit 100000000 --seed 7 > "$work/sim.out" &
until grep -q listening "$work/sim.out" 2>/dev/null; do sleep 0.5; done
base="$(awk '{print $3}' "$work/sim.out" | head -1)"
since="$(date -u -d '-3 days' +%Y-%m-%dT%H:%M:%S.000Z)"

# factorwatch until its poller has read every event (or, filtered, until the changes stop coming).
run_factorwatch() { # name, types line
  local dir="$work/$1"; mkdir -p "$dir"
  cat > "$dir/fw.toml" <<TOML
[store]
path = "$dir/fw.db"
[[sinks]]
name = "file"
type = "file"
path = "$dir/siem.ndjson"
[email]
enabled = false
[[orgs]]
name = "bench"
url = "$base"
token_env = "TK"
[orgs.system_log]
since = "$since"
interval = "1s"
$2
TOML
  local start end
  start=$(date +%s.%N)
  TK=bench /usr/bin/time -v -o "$dir/time" ./target/release/factorwatch run --config "$dir/fw.toml" 2>"$dir/log" &
  local pid=$!
  local last=-1 same=0
  while sleep 0.2; do
    seen=$(python3 -c "import sqlite3,sys; c=sqlite3.connect('file:$dir/fw.db?mode=ro',uri=True); r=c.execute('select coalesce(sum(events_seen),0) from sources').fetchone(); print(r[0])" 2>/dev/null || echo 0)
    if [ "$1" = unfiltered ] && [ "$seen" -ge "$N" ]; then break; fi
    if [ "$1" = filtered ]; then
      if [ "$seen" = "$last" ] && [ "$seen" != 0 ]; then same=$((same+1)); else same=0; fi
      last=$seen; [ $same -ge 10 ] && break
    fi
  done
  end=$(date +%s.%N)
  # GNU time does not pass signals on: stop its child.
  pkill -TERM -P "$pid" || true; wait "$pid" 2>/dev/null || true
  # The filtered run waited 2 s after its last page to be sure it was done.
  local secs; secs=$(python3 -c "print(round($end - $start - (2 if '$1' == 'filtered' else 0), 2))")
  echo "$1 $secs $(awk -F': ' '/Maximum resident/{print $2}' "$dir/time") $(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{print u+s}' "$dir/time") $(wc -l < "$dir/siem.ndjson")"
}

u=$(run_factorwatch unfiltered "types = []")
f=$(run_factorwatch filtered "")
start=$(date +%s.%N)
/usr/bin/time -v -o "$work/py.time" python3 scripts/bench/python_poller.py "$base" bench "$work/py.ndjson" "$since" 2>/dev/null
end=$(date +%s.%N)
p="python $(python3 -c "print(round($end - $start, 2))") $(awk -F': ' '/Maximum resident/{print $2}' "$work/py.time") $(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{print u+s}' "$work/py.time") $(wc -l < "$work/py.ndjson")"

python3 - "$N" "$u" "$f" "$p" <<'PY'
import sys
n = int(sys.argv[1])
rows = [r.split() for r in sys.argv[2:]]
py = float(rows[2][1])
print(f"{n:,} System Log events from okta-sim (2% MFA changes), same machine\n")
print("| run | wall s | events/s | peak RSS MiB | CPU s | MFA changes written | vs Python |")
print("|---|---|---|---|---|---|---|")
names = {"unfiltered": "factorwatch, fetching every event", "filtered": "factorwatch, default (server-side MFA filter)", "python": "reference Python poller"}
for name, secs, rss, cpu, lines in rows:
    secs = float(secs)
    print(f"| {names[name]} | {secs:.1f} | {n/secs:,.0f} | {int(rss)/1024:.0f} | {float(cpu):.1f} | {int(lines):,} | {py/secs:.1f}× |")
PY
