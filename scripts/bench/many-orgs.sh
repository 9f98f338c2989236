#!/usr/bin/env bash
# One factorwatch process watching many Okta orgs (an MSSP's customers), against okta-sim serving
# them all (one port per org, each with its own users, events and rate limits): the time to catch up
# with every org's backlog, then peak RSS and CPU of `run` (the defaults: polled every 15 s, the
# detections on) while they are idle (RATE 0) or keep producing events.
#
#   scripts/bench/many-orgs.sh [ORGS] [STEADY_SECONDS] [BACKLOG_PER_ORG] [RATE]
#                                  (default 200 orgs, 60 s, 2,000 events each, 0.5 new events/s each)
set -euo pipefail
cd "$(dirname "$0")/../.."
ORGS="${1:-200}"
STEADY="${2:-60}"
EVENTS="${3:-2000}" # backlog per org
RATE="${4:-0.5}"    # new events per second per org, once running
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q --release -p factorwatch -p okta-sim

echo "generating $ORGS orgs × $EVENTS events in okta-sim…" >&2
./target/release/okta-sim --token bench --orgs "$ORGS" --scenario steady --events "$EVENTS" \
  --rate "$RATE" --backlog-hours 24 --seed 7 > "$work/sim.out" &
until [ "$(cat "$work/sim.out" 2>/dev/null | grep -c listening)" -ge "$ORGS" ]; do sleep 0.5; done

{
  echo "[store]"
  echo "path = \"$work/fw.db\""
  echo "[[sinks]]"
  echo "name = \"file\""
  echo "type = \"file\""
  echo "path = \"$work/siem.ndjson\""
  echo "[email]"
  echo "enabled = false"
  i=0
  for url in $(awk '{print $3}' "$work/sim.out"); do
    echo "[[orgs]]"
    echo "name = \"customer$i\""
    echo "url = \"$url\""
    echo "token_env = \"TK\""
    echo "[orgs.system_log]"
    echo "since = \"2d\""
    i=$((i + 1))
  done
} > "$work/fw.toml"

cpu_s() { # user+system CPU seconds of a process so far
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
switches() { # context switches of a process's threads so far (each a wake-up: a commit hands its statements to SQLite's threads)
  cat /proc/"$1"/task/*/status | awk '/ctxt_switches/{n += $2} END {print n}'
}
disk_bytes() { # bytes the process has caused to be written to storage so far (each commit appends to SQLite's WAL)
  awk '/^write_bytes/{print $2}' "/proc/$1/io"
}

# Catch-up: `run --once` exits when every org's poller has read to the end and the SIEM file has it all.
TK=bench /usr/bin/time -o "$work/once.time" -f "%e %M %U %S" \
  ./target/release/factorwatch run --once --config "$work/fw.toml" 2> "$work/once.log"
read -r caught once_rss once_user once_sys < "$work/once.time"
cpu_caught=$(python3 -c "print($once_user + $once_sys)")
# Then the daemon, resuming from the stored cursors, while every org keeps producing events.
TK=bench ./target/release/factorwatch run --config "$work/fw.toml" 2> "$work/log" &
pid=$!
sleep 20 # past start-up: every org polls at once, then waits a random part of the 15 s interval
cpu_start=$(cpu_s "$pid"); sw_start=$(switches "$pid"); disk_start=$(disk_bytes "$pid")
sleep "$STEADY"
cpu_end=$(cpu_s "$pid"); sw_end=$(switches "$pid"); disk_end=$(disk_bytes "$pid")
hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
threads=$(awk '/Threads/{print $2}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid" || true
python3 - "$RATE" "$ORGS" "$((ORGS * EVENTS))" "$caught" "$cpu_caught" "$once_rss" "$cpu_start" "$cpu_end" "$STEADY" "$hwm" "$rss" "$threads" "$(wc -l < "$work/siem.ndjson")" "$((sw_end - sw_start))" "$((disk_end - disk_start))" <<'PY'
import sys
rate, orgs, backlog, caught, cpu_caught, once_rss, cpu0, cpu1, steady, hwm, rss, threads, lines, switches, disk = sys.argv[1:]
cpu0, cpu1, steady = float(cpu0), float(cpu1), float(steady)
print(f"one factorwatch process, {orgs} orgs (okta-sim, one port each), default settings (polled every 15 s, detections on), same machine\n")
print("| measure | value |")
print("|---|---|")
print(f"| catch-up (`run --once`): {int(backlog):,} backlog events across the orgs | {caught} s wall, {float(cpu_caught):.1f} CPU s, peak RSS {int(once_rss) / 1024:.0f} MiB |")
what = "idle orgs (no new events)" if float(rate) == 0 else f"live events ({orgs} × {rate}/s)"
print(f"| then `run`, {steady:.0f} s of {what} | {cpu1 - cpu0:.1f} CPU s ({100 * (cpu1 - cpu0) / steady:.1f}% of one core), RSS {int(rss) / 1024:.0f} MiB at the end (peak {int(hwm) / 1024:.0f} MiB), {threads} threads |")
print(f"| during those {steady:.0f} s: context switches, bytes written to storage | {int(switches) / steady:,.0f} a second, {int(disk) / steady / 1024:,.0f} KiB a second |")
print(f"| MFA changes written to the SIEM file | {int(lines):,} |")
PY
