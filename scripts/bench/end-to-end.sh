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

# factorwatch `run --once`: polls until caught up, delivers every change to the file sink, exits.
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
$2
TOML
  TK=bench /usr/bin/time -o "$dir/time" -f "%e %M %U %S" \
    ./target/release/factorwatch run --once --config "$dir/fw.toml" 2>"$dir/log"
  read -r secs rss user sys < "$dir/time"
  echo "$1 $secs $rss $(python3 -c "print($user + $sys)") $(wc -l < "$dir/siem.ndjson")"
}

u=$(run_factorwatch unfiltered "types = []")
f=$(run_factorwatch filtered "")
/usr/bin/time -o "$work/py.time" -f "%e %M %U %S" \
  python3 scripts/bench/python_poller.py "$base" bench "$work/py.ndjson" "$since" 2>/dev/null
read -r secs rss user sys < "$work/py.time"
p="python $secs $rss $(python3 -c "print($user + $sys)") $(wc -l < "$work/py.ndjson")"

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
