#!/usr/bin/env bash
# A help-desk mass reset: N users' factors reset at once (default 10,000), each owed a notice.
# The release binary `factorwatch run` with its default [email] settings (coalescing window,
# concurrency, SMTP pool, detections on) polls okta-sim and sends every notice to a real local SMTP
# server: Postfix from Debian (delivering into Maildir files) and aiosmtpd (which discards).
# Timed from the moment the first notice falls due (its change's coalescing window ended) to the
# moment factorwatch recorded the last one accepted by the server (250 after DATA); for Postfix
# also until the last message file was written. Then Postfix's own load generator sends as many
# messages to the same servers: what each server itself accepts here, against which factorwatch's
# figure is read. Last, a relay across a network: FAR notices (and as many smtp-source messages) to
# the same Postfix through a proxy that delays each direction 10 ms (a 20 ms round trip, a relay in
# another data centre), where the round trips per message, not the machine, set the pace.
#
#   scripts/bench/mass-reset.sh [N] [FAR]  (N 10,000, FAR 1,000; root: installs and configures
#                                           Debian's postfix; python3 with aiosmtpd)
#
# okta-sim's Users API limit is lifted: at Okta's 2,000 user lookups a minute, 10,000 users take
# five minutes of Okta's time whatever the sender does (README, Speed).
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-10000}"
FAR="${2:-1000}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q --release -p factorwatch -p okta-sim
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install -q aiosmtpd

# Postfix on loopback, every recipient delivered to one local user's Maildir (one file each).
if ! command -v postfix >/dev/null; then
  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
id fwbench >/dev/null 2>&1 || useradd -m fwbench
postconf -e "inet_interfaces = loopback-only" "myorigin = localhost" "mydestination = localhost, mail.example.com" \
  "local_recipient_maps =" "luser_relay = fwbench@localhost" "home_mailbox = Maildir/" "biff = no"
newaliases
postfix stop >/dev/null 2>&1 || true
postfix start >/dev/null 2>&1
maildir=/home/fwbench/Maildir

# Postfix's own load generator (C) sends N messages of $size bytes over 4 connections (factorwatch's
# default pool), each kept open (-d), each message to a recipient of its own (-N); prints seconds.
source_pace() { # port
  /usr/bin/time -f %e -o "$work/source.time" /usr/sbin/smtp-source -d -s 4 -m "$N" -l "$size" -N \
    -f security@example.com -t user@mail.example.com "127.0.0.1:$1"
  cat "$work/source.time"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One run: N resets in a quiet org, notices to the SMTP server on $2; prints "due→accepted s, files s".
run() { # name, smtp port
  local dir="$work/$1"; mkdir -p "$dir"
  ./target/release/okta-sim --token bench --scenario none --user-rate-limit 100000000 \
    --other-rate-limit 100000000 > "$dir/sim.out" 2>"$dir/sim.err" &
  local sim=$!
  until grep -q listening "$dir/sim.out" 2>/dev/null; do sleep 0.2; done
  local base; base="$(awk '{print $3}' "$dir/sim.out" | head -1)"
  python3 - "$base" "$N" <<'PY'
import json, sys, urllib.request
base, n = sys.argv[1], int(sys.argv[2])
def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
users = [{"id": f"00u{i:017}", "profile": {"login": f"user{i}@example.com", "email": f"user{i}@mail.example.com",
          "firstName": f"User{i}", "lastName": "Bench"}} for i in range(n)]
for i in range(0, n, 2000):
    post("/sim/users", users[i:i + 2000])
events = [{"uuid": f"reset{i:07}", "eventType": "user.mfa.factor.reset_all", "legacyEventType": "core.user.factor.reset_all",
           "displayMessage": "Reset all factors for user", "severity": "INFO",
           "actor": {"id": "00uadmin0000000000001", "type": "User", "alternateId": "helpdesk@example.com", "displayName": "Help Desk"},
           "target": [{"id": f"00u{i:017}", "type": "User", "alternateId": f"user{i}@example.com", "displayName": f"User{i} Bench"}],
           "outcome": {"result": "SUCCESS"}, "client": {"ipAddress": "203.0.113.7"}} for i in range(n)]
for i in range(0, n, 2000):
    post("/sim/events", events[i:i + 2000])
PY
  cat > "$dir/fw.toml" <<TOML
[store]
path = "$dir/fw.db"
[email]
transport = "smtp"
from = "Security <security@example.com>"
[email.smtp]
host = "127.0.0.1"
port = $2
security = "none"
[[orgs]]
name = "bench"
url = "$base"
token_env = "TK"
[orgs.system_log]
since = "1h"
interval = "1s"
TOML
  TK=bench ./target/release/factorwatch run --config "$dir/fw.toml" 2> "$dir/log" &
  local fw=$!
  python3 - "$dir/fw.db" "$N" "$1" <<'PY'
import sqlite3, sys, time
db, n, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.time() + 900
while time.time() < deadline:
    time.sleep(1)
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        done, = c.execute("SELECT count(*) FROM outbox WHERE destination = 'email' AND state IN ('delivered', 'dead')").fetchone()
        c.close()
    except sqlite3.Error:
        continue
    if done >= n:
        break
else:
    sys.exit(f"{name}: not every notice was sent within 15 minutes")
PY
  kill -TERM "$fw"; wait "$fw" || true
  kill "$sim"; wait "$sim" 2>/dev/null || true
  python3 - "$dir/fw.db" "$N" <<'PY'
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
first_due, = c.execute("SELECT min(received_at) + 120000 FROM changes").fetchone()
last, delivered, dead = c.execute("SELECT max(delivered_at), sum(state = 'delivered'), sum(state = 'dead') FROM outbox WHERE destination = 'email'").fetchone()
print(f"{(last - first_due) / 1000:.2f} {delivered} {dead} {first_due}")
PY
}

# Postfix: also wait for the last message file.
rm -rf "$maildir"
p=$(run postfix 25)
read -r p_secs p_sent p_dead p_due <<< "$p"
until [ "$(find "$maildir/new" -type f 2>/dev/null | wc -l)" -ge "$N" ]; do sleep 0.5; done
p_files=$(python3 -c "import os,sys; d='$maildir/new'; print(f'{max(os.stat(os.path.join(d,f)).st_mtime for f in os.listdir(d)) - $p_due / 1000:.2f}')")
# The receiver's own pace: a plain client sending as many messages, of a notice's size, over as
# many connections as factorwatch's default pool (4), to the same server.
size=$(python3 -c "import os; d='$maildir/new'; f=os.listdir(d); print(sum(os.stat(os.path.join(d, x)).st_size for x in f) // len(f))")
rm -rf "$maildir"
pc_start=$(date +%s.%N)
pc_secs=$(source_pace 25)
until [ "$(find "$maildir/new" -type f 2>/dev/null | wc -l)" -ge "$N" ]; do sleep 0.5; done
pc_files=$(python3 -c "import os; d='$maildir/new'; print(f'{max(os.stat(os.path.join(d,f)).st_mtime for f in os.listdir(d)) - $pc_start:.2f}')")

# The same Postfix 20 ms away (round trip), FAR notices and messages.
far_port=$(free_port)
python3 scripts/bench/delay_proxy.py "$far_port" 25 10 > "$work/proxy.out" &
until grep -q ready "$work/proxy.out" 2>/dev/null; do sleep 0.2; done
all=$N
N=$FAR
f=$(run far "$far_port")
read -r f_secs f_sent f_dead _ <<< "$f"
fc_secs=$(source_pace "$far_port")
N=$all
postfix stop >/dev/null 2>&1 || true

port=$(free_port)
python3 -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Sink > /dev/null 2>&1 &
sleep 1
a=$(run aiosmtpd "$port")
read -r a_secs a_sent a_dead _ <<< "$a"
ac_secs=$(source_pace "$port")

python3 - "$N" "$p_secs" "$p_sent" "$p_dead" "$p_files" "$a_secs" "$a_sent" "$a_dead" "$size" "$pc_secs" "$pc_files" "$ac_secs" "$FAR" "$f_secs" "$f_sent" "$f_dead" "$fc_secs" <<'PY'
import sys
n = int(sys.argv[1])
p_secs, p_sent, p_dead, p_files, a_secs, a_sent, a_dead, size, pc_secs, pc_files, ac_secs, far, f_secs, f_sent, f_dead, fc_secs = sys.argv[2:]
print(f"mass reset: {n:,} users' factors reset at once, one notice each; factorwatch run, default [email] settings, this machine\n")
print("| SMTP server | notices accepted | dead | first due → last accepted | notices/s | last message file written |")
print("|---|---|---|---|---|---|")
print(f"| Postfix (Debian), Maildir | {int(p_sent):,} | {p_dead} | {float(p_secs):.1f} s | {int(p_sent) / float(p_secs):,.0f} | {float(p_files):.1f} s after the first was due |")
print(f"| aiosmtpd (Sink) | {int(a_sent):,} | {a_dead} | {float(a_secs):.1f} s | {int(a_sent) / float(a_secs):,.0f} | — |")
print(f"\nThe servers' own pace: Postfix's load generator `smtp-source` (C; 4 connections kept open, as factorwatch's default pool) sending {n:,} messages of {int(size):,} bytes (a notice's mean size in the Maildir) to the same server\n")
print("| SMTP server | messages | smtp-source's run | messages/s | last message file written |")
print("|---|---|---|---|---|")
print(f"| Postfix (Debian), Maildir | {n:,} | {float(pc_secs):.1f} s | {n / float(pc_secs):,.0f} | {float(pc_files):.1f} s after it started |")
print(f"| aiosmtpd (Sink) | {n:,} | {float(ac_secs):.1f} s | {n / float(ac_secs):,.0f} | — |")
far = int(far)
print(f"\nA relay 20 ms away (round trip: a proxy delays each direction 10 ms), the same Postfix behind it: {far:,} notices (factorwatch, timed as above; it pipelines MAIL, RCPT and DATA where the relay offers PIPELINING, as Postfix does) and {far:,} messages of {int(size):,} bytes (smtp-source, 4 connections; it does not pipeline)\n")
print("| sender | accepted | dead | time | per second |")
print("|---|---|---|---|---|")
print(f"| factorwatch | {int(f_sent):,} | {f_dead} | {float(f_secs):.1f} s (first due → last accepted) | {int(f_sent) / float(f_secs):,.0f} |")
print(f"| smtp-source | {far:,} | — | {float(fc_secs):.1f} s (its run) | {far / float(fc_secs):,.0f} |")
PY
