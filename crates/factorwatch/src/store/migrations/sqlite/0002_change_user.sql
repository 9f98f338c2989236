-- Who each change is about, as a column: coalescing a user's notices looked them up with
-- json_extract over every pending row.
ALTER TABLE changes ADD COLUMN user_id TEXT;
UPDATE changes SET user_id = json_extract(record, '$.user.id');
CREATE INDEX IF NOT EXISTS changes_by_user ON changes (org, user_id);
