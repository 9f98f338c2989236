"""SQLite alone, doing what factorwatch's store does for one run: how little CPU any program needs
that keeps the same promises, whatever its parser, driver or language.

Takes the changes a `factorwatch run --once` stored (its database, DB) and writes them again into a
fresh database with factorwatch's own schema (read from DB) and settings (8 KiB pages, WAL,
synchronous=FULL, 8 MiB page cache), one commit per System Log page of 1,000 changes with the
page's cursor, as factorwatch commits them. Set-based statements (INSERT … SELECT from an
in-memory copy made before the clock starts): no driver round trip per row, no parsing, no
serializing, nothing but SQLite's own work. Each step adds to the one before:

  records     each change row without Okta's event (its record only) and the cursor; primary key
              only (what dropping the stored event would leave)
  changes     + Okta's event in each change row (as factorwatch keeps it, for `ecs` and `raw`)
  indexes     + the changes table's secondary indexes (by user, by time)
  outbox      + an outbox row per change for one destination, with the outbox's indexes
  delivery    + delivery: the outbox read back 500 rows at a time with each change's record
                (SQLite reads it; nothing is sent), each round's rows marked delivered

Prints the SQLite version Python's sqlite3 module runs on (end-to-end.sh points it at factorwatch's
own, built from the same source with the same flags), then one line per step and run: step cpu_s
wall_s changes (closing the database, and so its last checkpoint, included).

    python3 store_floor.py DB RUNS WORKDIR
"""
import os
import sqlite3
import sys
import time

PAGE = 1000  # events per System Log page (the `limit` factorwatch asks for)
ROUND = 500  # outbox rows per delivery round (a sink's default batch)
STEPS = ("records", "changes", "indexes", "outbox", "delivery")


def schema(src):
    """factorwatch's statements for the tables a run writes, tables first."""
    rows = src.execute(
        "SELECT type, tbl_name, sql FROM sqlite_master "
        "WHERE tbl_name IN ('changes', 'outbox', 'sources') AND sql IS NOT NULL "
        "ORDER BY type = 'index'"
    ).fetchall()
    assert rows, "no factorwatch schema in the database"
    return rows


def run(step, statements, path):
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA page_size = 8192")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA cache_size = -8192")
    db.execute("PRAGMA temp_store = MEMORY")
    level = STEPS.index(step)
    for kind, table, sql in statements:
        if kind == "index" and table == "changes" and level < 2:
            continue
        db.execute(sql)
    db.execute("ATTACH ? AS src", (SOURCE,))
    db.execute("CREATE TEMP TABLE t AS SELECT * FROM src.changes ORDER BY rowid")
    db.execute("DETACH src")
    (n,) = db.execute("SELECT count(*) FROM t").fetchone()
    assert n > 0, "the source database holds no changes"

    cpu, wall = time.process_time(), time.perf_counter()
    for first in range(0, n, PAGE):
        page = (first, first + PAGE)
        db.execute("BEGIN")
        db.execute(
            "INSERT INTO changes (org, event_id, event_type, action, published, received_at, record, raw, user_id) "
            "SELECT org, event_id, event_type, action, published, received_at, record, "
            "CASE WHEN ? THEN raw ELSE '' END, user_id FROM t WHERE rowid > ? AND rowid <= ?",
            (level >= 1, *page),
        )
        if level >= 3:
            db.execute(
                "INSERT INTO outbox (org, event_id, destination, state, next_attempt_at, created_at) "
                "SELECT org, event_id, 'file', 'pending', received_at, received_at FROM t "
                "WHERE rowid > ? AND rowid <= ?",
                page,
            )
        db.execute(
            "INSERT INTO sources (org, source, position, events_seen, updated_at) VALUES ('bench', 'system_log', ?, ?, 0) "
            "ON CONFLICT (org, source) DO UPDATE SET position = excluded.position, events_seen = excluded.events_seen",
            (f"cursor-{first}", first),
        )
        db.execute("COMMIT")
    if level >= 4:
        while True:
            ids = db.execute(
                "SELECT o.id, length(c.record) FROM outbox o "
                "JOIN changes c ON c.org = o.org AND c.event_id = o.event_id "
                "WHERE o.destination = 'file' AND o.state = 'pending' ORDER BY o.next_attempt_at, o.id LIMIT ?",
                (ROUND,),
            ).fetchall()
            if not ids:
                break
            # One statement a round (ids are integers SQLite just gave): no per-row call.
            db.execute("BEGIN")
            db.execute(
                "UPDATE outbox SET state = 'delivered', delivered_at = 1 WHERE id IN (%s)"
                % ",".join(str(int(i)) for i, _ in ids)
            )
            db.execute("COMMIT")
    db.close()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall

    check = sqlite3.connect(path)
    (stored,) = check.execute("SELECT count(*) FROM changes").fetchone()
    (delivered,) = check.execute("SELECT count(*) FROM outbox WHERE state = 'delivered'").fetchone()
    check.close()
    assert stored == n, f"{step}: {stored} of {n} changes stored"
    assert delivered == (n if level >= 4 else 0), f"{step}: {delivered} delivered"
    return n, cpu, wall


if __name__ == "__main__":
    SOURCE, runs, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    src = sqlite3.connect(f"file:{SOURCE}?mode=ro", uri=True)
    statements = schema(src)
    src.close()
    print(f"sqlite {sqlite3.sqlite_version}")
    for _ in range(runs):
        for step in STEPS:
            n, cpu, wall = run(step, statements, os.path.join(work, "floor.db"))
            print(f"{step} {cpu:.3f} {wall:.3f} {n}")
