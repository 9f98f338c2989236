-- "This wasn't me" reports: one per (org, change, user) — what makes a link single-use — with
-- the Okta steps asked for and what became of each (JSON).
CREATE TABLE reports (
    org         TEXT NOT NULL,
    change_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    finding_id  TEXT NOT NULL,
    reported_at INTEGER NOT NULL,
    steps       TEXT NOT NULL,
    PRIMARY KEY (org, change_id, user_id)
);
CREATE UNIQUE INDEX reports_by_finding ON reports (org, finding_id);
CREATE INDEX reports_by_time ON reports (reported_at);
-- The status page: the latest changes and findings, and deliveries per destination lately.
CREATE INDEX changes_by_time ON changes (received_at);
CREATE INDEX findings_by_time ON findings (created_at);
CREATE INDEX outbox_by_delivery ON outbox (delivered_at) WHERE delivered_at IS NOT NULL;
