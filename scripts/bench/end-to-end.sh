#!/usr/bin/env bash
# End to end on equal terms: factorwatch `run --once` against the reference most teams run today, a
# plain Python poller (scripts/bench/python_poller.py: requests + json, follows `next`, writes the
# MFA events as NDJSON), side by side in one run against one okta-sim holding N System Log events
# (2% MFA changes, default 1,000,000), on this machine (okta-sim shares it).
#
# Each pair asks Okta for the same events: the Python poller is given the very `filter` factorwatch
# sent (read back from okta-sim's request log), or none when factorwatch fetches everything.
# factorwatch's time includes everything it promises: each page's changes committed to SQLite
# (WAL, synchronous=FULL) with the cursor before the next is taken, an outbox row per change, the
# file sink written and fsynced before a row is marked delivered. The Python poller syncs nothing.
#
# A second table gives the floor under the same-filter row: SQLite alone doing the store's work for
# the changes factorwatch stored (scripts/bench/store_floor.py), step by step, against a 5× budget.
#
#   scripts/bench/end-to-end.sh [N] [R]      (needs python3 with requests; GNU time; gcc)
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

# The `filter` of the last System Log request okta-sim answered ("" when none was sent).
last_filter() {
  curl -s "$base/sim/polls" | python3 -c '
import json, sys, urllib.parse
polls = [p for p in json.load(sys.stdin) if p["path"] == "/api/v1/logs"]
print(dict(urllib.parse.parse_qsl(polls[-1]["query"])).get("filter", ""))'
}

# factorwatch `run --once`: polls until caught up, delivers every change to the file sink, exits.
# Prints: name wall_s rss_kib cpu_s events_fetched changes_written context_switches
run_factorwatch() { # name, extra configuration
  local dir="$work/$1"; rm -rf "$dir"; mkdir -p "$dir"
  cat > "$dir/fw.toml" <<TOML
[store]
path = "$dir/fw.db"
[[sinks]]
name = "file"
type = "file"
path = "$dir/siem.ndjson"
[email]
enabled = false
$2
[[orgs]]
name = "bench"
url = "$base"
token_env = "TK"
[orgs.system_log]
since = "$since"
$3
TOML
  TK=bench /usr/bin/time -o "$dir/time" -f "%e %M %U %S %w %c" \
    ./target/release/factorwatch run --once --config "$dir/fw.toml" 2>"$dir/log"
  read -r secs rss user sys vol invol < "$dir/time"
  local seen
  seen=$(python3 -c "import sqlite3; print(sqlite3.connect('$dir/fw.db').execute(\"SELECT sum(events_seen) FROM sources\").fetchone()[0])")
  echo "$1 $secs $rss $(python3 -c "print($user + $sys)") $seen $(wc -l < "$dir/siem.ndjson") $((vol + invol))"
}

run_python() { # name, filter
  /usr/bin/time -o "$work/$1.time" -f "%e %M %U %S %w %c" \
    python3 scripts/bench/python_poller.py "$base" bench "$work/$1.ndjson" "$since" "$2" 2>"$work/$1.err"
  read -r secs rss user sys vol invol < "$work/$1.time"
  echo "$1 $secs $rss $(python3 -c "print($user + $sys)") $(awk '{print $1}' "$work/$1.err" | tail -1) $(wc -l < "$work/$1.ndjson") $((vol + invol))"
}

# Each pair runs R times (default 3), one program after the other; the table gives each one's
# median wall and CPU time (this shared machine's pace drifts from one second to the next).
R="${2:-3}"
rows=()
for _ in $(seq "$R"); do
  # 1. The MFA changes only: factorwatch without the detections polls the change (and context) types.
  rows+=("$(run_factorwatch fw_mfa "[detections]
enabled = false" "")")
  rows+=("$(run_python py_mfa "$(last_filter)")")
  # 2. Everything, as a poller without a filter does.
  rows+=("$(run_factorwatch fw_all "[detections]
enabled = false" "types = []")")
  rows+=("$(run_python py_all "")")
  # 3. factorwatch's defaults: the detections on, so sign-ins and other evidence are fetched and
  #    journalled too; the Python poller asks for the same events.
  rows+=("$(run_factorwatch fw_default "" "")")
  rows+=("$(run_python py_default "$(last_filter)")")
done

# SQLite alone doing the store's work of the same-filter run, on the changes its last run stored
# (scripts/bench/store_floor.py): the least CPU any program keeping these promises could spend.
# Python's sqlite3 module runs on factorwatch's own SQLite: the amalgamation libsqlite3-sys bundles,
# built with the flags its build script passes (and .cargo/config.toml's), -O3 as cargo's release.
amalgamation="$(cargo metadata -q --format-version 1 | python3 -c '
import json, os, sys
print(next(os.path.join(os.path.dirname(p["manifest_path"]), "sqlite3", "sqlite3.c")
           for p in json.load(sys.stdin)["packages"] if p["name"] == "libsqlite3-sys"))')"
mkdir -p "$work/sqlite"
gcc -O3 -shared -fPIC -o "$work/sqlite/libsqlite3.so.0" "$amalgamation" -lpthread -lm \
  -DSQLITE_DEFAULT_MEMSTATUS=0 -DSQLITE_DEFAULT_FOREIGN_KEYS=1 -DSQLITE_ENABLE_API_ARMOR \
  -DSQLITE_ENABLE_COLUMN_METADATA -DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ENABLE_FTS3 \
  -DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_JSON1 \
  -DSQLITE_ENABLE_LOAD_EXTENSION=1 -DSQLITE_ENABLE_MEMORY_MANAGEMENT -DSQLITE_ENABLE_RTREE \
  -DSQLITE_ENABLE_STAT4 -DSQLITE_SOUNDEX -DSQLITE_THREADSAFE=1 -DSQLITE_USE_URI -DHAVE_USLEEP=1 \
  -DHAVE_ISNAN -DHAVE_LOCALTIME_R -DSQLITE_ENABLE_UNLOCK_NOTIFY
floor="$(LD_LIBRARY_PATH="$work/sqlite" python3 scripts/bench/store_floor.py "$work/fw_mfa/fw.db" "$R" "$work")"
# And the least work of reading them: `factorwatch classify` on the same changes' Okta events from a
# file (parse, classify, serialize each record; no network, no store). Prints: cpu_s wall_s.
python3 -c "import sqlite3, sys
for (raw,) in sqlite3.connect(sys.argv[1]).execute('SELECT raw FROM changes ORDER BY rowid'):
    print(raw)" "$work/fw_mfa/fw.db" > "$work/events.ndjson"
classify=()
for _ in $(seq "$R"); do
  /usr/bin/time -o "$work/classify.time" -f "%e %U %S" ./target/release/factorwatch classify "$work/events.ndjson" > "$work/records.ndjson"
  read -r secs user sys < "$work/classify.time"
  [ "$(wc -l < "$work/records.ndjson")" -eq "$(wc -l < "$work/events.ndjson")" ] || { echo "classify lost events" >&2; exit 1; }
  classify+=("$(python3 -c "print($user + $sys)") $secs")
done

python3 - "$N" "$R" "$floor" "${classify[*]}" "${rows[@]}" <<'PY'
import statistics, sys
n, reps, floor, classify = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
runs = {}
for r in sys.argv[5:]:
    runs.setdefault(r.split()[0], []).append(r.split()[1:])
for name, rs in runs.items():
    # Every run of a program fetched the same events (else the pairs are not on equal terms).
    assert all(r[3] == rs[0][3] for r in rs), f"{name}: runs fetched different events: {rs}"

def written(rs):
    # Lines written: the same in every run, or their range (the detections' findings depend on
    # when a run happens relative to the events' times).
    lo, hi = min(int(r[4]) for r in rs), max(int(r[4]) for r in rs)
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"

# Times and context switches are medians, RSS the largest.
rows = {name: [statistics.median(float(r[0]) for r in rs), max(int(r[1]) for r in rs),
               statistics.median(float(r[2]) for r in rs), rs[0][3], written(rs),
               statistics.median(int(r[5]) for r in rs)]
        for name, rs in runs.items()}
print(f"{n:,} System Log events in okta-sim (2% MFA changes), this machine (2 cores; okta-sim on the same machine); each program run {reps} times, one after the other: median wall and CPU time and context switches (voluntary and involuntary), largest peak RSS\n")
print("| what both fetch | program | events fetched | MFA changes written | wall s | CPU s | peak RSS MiB | events fetched/s | context switches | factorwatch faster: wall, CPU |")
print("|---|---|---|---|---|---|---|---|---|---|")
labels = {"mfa": "the MFA change types (server-side filter)", "all": "every event (no filter)",
          "default": "factorwatch's default filter (changes + detection evidence)"}
for key in ("mfa", "all", "default"):
    fw, py = rows[f"fw_{key}"], rows[f"py_{key}"]
    for name, r, vs in (("factorwatch `run --once`", fw, py), ("Python poller", py, None)):
        secs, rss, cpu, seen, lines, switches = float(r[0]), int(r[1]), float(r[2]), int(r[3]), r[4], r[5]
        ratio = f"{float(vs[0]) / secs:.1f}×, {float(vs[2]) / cpu:.1f}×" if vs else ""
        print(f"| {labels[key]} | {name} | {seen:,} | {lines} | {secs:.2f} | {cpu:.2f} | {rss / 1024:.0f} | {seen / secs:,.0f} | {switches:,.0f} | {ratio} |")

# The floor: each step's median over the runs, against a 5× budget (the Python poller's CPU and
# wall time in the same-filter pair, divided by 5).
steps = {}
lines = floor.splitlines()
sqlite_version = lines[0].split()[1]
for line in lines[1:]:
    step, cpu, wall, changes = line.split()
    steps.setdefault(step, []).append((float(cpu), float(wall), int(changes)))
py = rows["py_mfa"]
budget_cpu, budget_wall = float(py[2]) / 5, float(py[0]) / 5
labels = {
    "records": "each change's record and the page's cursor, one commit per page (no Okta event kept; primary key only)",
    "changes": "+ Okta's event in each change row, as factorwatch keeps it",
    "indexes": "+ the changes table's secondary indexes (by user, by time)",
    "outbox": "+ an outbox row per change for one destination, with the outbox's indexes",
    "delivery": "+ delivery: the outbox read back 500 rows at a time with each record, each round marked delivered",
}
print(f"\nSQLite alone doing the store's work for the same-filter run ({steps['records'][0][2]:,} changes stored by factorwatch above, written again into a fresh database by factorwatch's own SQLite ({sqlite_version}, same source and flags) with its schema: 8 KiB pages, WAL, synchronous=FULL, one commit per page of 1,000; set-based statements from an in-memory copy, so no driver, parsing or serializing; closing and its last checkpoint included; scripts/bench/store_floor.py, median of {reps} runs). The 5× budget is the Python poller's median in the same-filter pair divided by 5: {budget_cpu:.3f} CPU s, {budget_wall:.3f} wall s.\n")
print("| what SQLite writes (each step adds to the one above) | CPU s | wall s | CPU s against the 5× budget |")
print("|---|---|---|---|")
for step, label in labels.items():
    cpu = statistics.median(c for c, _, _ in steps[step])
    wall = statistics.median(w for _, w, _ in steps[step])
    print(f"| {label} | {cpu:.3f} | {wall:.3f} | {cpu / budget_cpu:.1f}× |")
cpu = statistics.median(float(c) for c in classify[0::2])
wall = statistics.median(float(w) for w in classify[1::2])
print(f"| beside SQLite, not added to it: `factorwatch classify` of the same changes' Okta events from a file (parse, classify, serialize each record; no network, no store) | {cpu:.3f} | {wall:.3f} | {cpu / budget_cpu:.1f}× |")
fw = rows["fw_mfa"]
print(f"| factorwatch `run --once`, everything (the same-filter row above) | {float(fw[2]):.3f} | {float(fw[0]):.3f} | {float(fw[2]) / budget_cpu:.1f}× |")
PY
