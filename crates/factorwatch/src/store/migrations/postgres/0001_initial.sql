-- factorwatch's schema on PostgreSQL: the SQLite schema at its version 4, with PostgreSQL's
-- types. Times are milliseconds since the epoch (BIGINT), as in SQLite.
CREATE TABLE changes (
    org         TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    action      TEXT NOT NULL,
    published   TEXT,
    received_at BIGINT NOT NULL,
    record      TEXT NOT NULL,
    raw         TEXT NOT NULL,
    user_id     TEXT,
    PRIMARY KEY (org, event_id)
);
CREATE INDEX changes_by_user ON changes (org, user_id);
CREATE INDEX changes_by_time ON changes (received_at);
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org             TEXT NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'change' CHECK (kind IN ('change', 'finding')),
    event_id        TEXT NOT NULL,
    destination     TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'dropped')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (org, kind, event_id, destination)
);
CREATE INDEX outbox_due ON outbox (destination, state, next_attempt_at, id);
CREATE INDEX outbox_by_delivery ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE TABLE sources (
    org              TEXT NOT NULL,
    source           TEXT NOT NULL,
    position         TEXT,
    newest_published TEXT,
    events_seen      BIGINT NOT NULL DEFAULT 0,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (org, source)
);
CREATE TABLE context_events (
    org        TEXT NOT NULL,
    uuid       TEXT NOT NULL,
    event_type TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    published  BIGINT NOT NULL,
    PRIMARY KEY (org, uuid)
);
CREATE INDEX context_by_user ON context_events (org, user_id, event_type, published);
-- Addresses compare case-insensitively (SQLite: COLLATE NOCASE).
CREATE TABLE addresses (
    org       TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    email     TEXT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE UNIQUE INDEX addresses_key ON addresses (org, user_id, lower(email));
CREATE TABLE rejects (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org         TEXT NOT NULL,
    source      TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    error       TEXT NOT NULL,
    raw         TEXT NOT NULL
);
CREATE TABLE signals (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org       TEXT NOT NULL,
    uuid      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    published BIGINT NOT NULL,
    body      TEXT NOT NULL,
    UNIQUE (org, uuid)
);
CREATE INDEX signals_by_org ON signals (org, id);
CREATE INDEX signals_by_time ON signals (org, kind, published);
CREATE TABLE detect_cursor (
    org        TEXT PRIMARY KEY,
    position   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE findings (
    org        TEXT NOT NULL,
    id         TEXT NOT NULL,
    rule       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    user_id    TEXT,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    record     TEXT NOT NULL,
    PRIMARY KEY (org, id)
);
CREATE INDEX findings_by_time ON findings (created_at);
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
CREATE TABLE reports (
    org         TEXT NOT NULL,
    change_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    finding_id  TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    steps       TEXT NOT NULL,
    PRIMARY KEY (org, change_id, user_id)
);
CREATE UNIQUE INDEX reports_by_finding ON reports (org, finding_id);
CREATE INDEX reports_by_time ON reports (reported_at);
