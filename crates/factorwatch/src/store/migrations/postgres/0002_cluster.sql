-- Replicas and per-org leases (a lease's token grows at each change of hands: a commit carrying
-- an older token is refused), and outbox claims (a row being delivered by one replica is skipped
-- by the others until its claim expires: a replica that died mid-delivery leaves it to them).
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);
CREATE TABLE leases (
    org        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    taken_at   BIGINT NOT NULL
);
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claim_until BIGINT;
ALTER TABLE sources ADD COLUMN updated_by TEXT;
-- Notices counted against the per-user hourly cap, shared by every replica.
CREATE TABLE notices_sent (
    org     TEXT NOT NULL,
    login   TEXT NOT NULL,
    sent_at BIGINT NOT NULL
);
CREATE INDEX notices_by_login ON notices_sent (org, login, sent_at);
