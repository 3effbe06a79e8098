-- Requests mcpd refused (401, 403): who or which peer, what, when and why; never a token or a
-- value. An audit stream of its own beside the event log (which records changes only), bounded
-- in rows and in rate by mcpd. `suppressed` > 0 marks a row standing for that many refusals
-- that were not recorded one by one (more came than the rate allows).
CREATE TABLE access_denials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    request_id TEXT NOT NULL,
    actor TEXT,
    token_id TEXT,
    source_address TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status BIGINT NOT NULL,
    reason TEXT NOT NULL,
    suppressed BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX access_denials_actor ON access_denials (actor, id);
CREATE INDEX access_denials_at ON access_denials (at);
