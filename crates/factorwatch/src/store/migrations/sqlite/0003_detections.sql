-- The detections: their journal of signals, where the detection worker stands in it, the
-- findings it made (and which Okta events each is made of), and a key/value table for settings
-- kept with the data (the phone-number hashing key). The outbox now carries findings as well as
-- changes: `kind` says which, and the foreign key to `changes` goes (SQLite cannot drop one, so
-- the table is rebuilt; ids are kept).
CREATE TABLE signals (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    org       TEXT NOT NULL,
    uuid      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    published INTEGER NOT NULL,
    body      TEXT NOT NULL,
    UNIQUE (org, uuid)
);
CREATE INDEX signals_by_org ON signals (org, id);
CREATE INDEX signals_by_time ON signals (org, kind, published);
CREATE TABLE detect_cursor (
    org        TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE findings (
    org        TEXT NOT NULL,
    id         TEXT NOT NULL,
    rule       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    user_id    TEXT,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    record     TEXT NOT NULL,
    PRIMARY KEY (org, id)
);
CREATE TABLE finding_events (
    org        TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    finding_id TEXT NOT NULL,
    PRIMARY KEY (org, event_id, finding_id)
);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org             TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'change' CHECK (kind IN ('change', 'finding')),
    event_id        TEXT NOT NULL,
    destination     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (org, kind, event_id, destination)
);
INSERT INTO outbox_new (id, org, kind, event_id, destination, state, attempts, next_attempt_at, last_error, created_at, delivered_at)
    SELECT id, org, 'change', event_id, destination, state, attempts, next_attempt_at, last_error, created_at, delivered_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (destination, state, next_attempt_at, id);
