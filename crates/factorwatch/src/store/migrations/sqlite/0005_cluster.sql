-- Replicas and per-org leases (a shared store's pollers run on one replica per org; SQLite has
-- one replica, which holds every lease). A lease's token grows at each change of hands: a commit
-- carrying an older token is refused (fencing).
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);
CREATE TABLE leases (
    org        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    token      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    taken_at   INTEGER NOT NULL
);
ALTER TABLE sources ADD COLUMN updated_by TEXT;
-- Notices counted against the per-user hourly cap, shared by every replica.
CREATE TABLE notices_sent (
    org     TEXT NOT NULL,
    login   TEXT NOT NULL,
    sent_at INTEGER NOT NULL
);
CREATE INDEX notices_by_login ON notices_sent (org, login, sent_at);
