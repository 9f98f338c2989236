-- The schema of factorwatch 0.1 (every database made before migrations were versioned).
CREATE TABLE IF NOT EXISTS changes (
    org         TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    action      TEXT NOT NULL,
    published   TEXT,
    received_at INTEGER NOT NULL,
    record      TEXT NOT NULL,
    raw         TEXT NOT NULL,
    PRIMARY KEY (org, event_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org             TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    destination     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'dropped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (org, event_id, destination),
    FOREIGN KEY (org, event_id) REFERENCES changes (org, event_id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (destination, state, next_attempt_at, id);
CREATE TABLE IF NOT EXISTS sources (
    org              TEXT NOT NULL,
    source           TEXT NOT NULL,
    position         TEXT,
    newest_published TEXT,
    events_seen      INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (org, source)
);
CREATE TABLE IF NOT EXISTS context_events (
    org        TEXT NOT NULL,
    uuid       TEXT NOT NULL,
    event_type TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    published  INTEGER NOT NULL,
    PRIMARY KEY (org, uuid)
);
CREATE INDEX IF NOT EXISTS context_by_user ON context_events (org, user_id, event_type, published);
CREATE TABLE IF NOT EXISTS addresses (
    org       TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    email     TEXT NOT NULL COLLATE NOCASE,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (org, user_id, email)
);
CREATE TABLE IF NOT EXISTS rejects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org         TEXT NOT NULL,
    source      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    error       TEXT NOT NULL,
    raw         TEXT NOT NULL
);
