-- Idempotency-Key: a write that carries one claims it in the transaction that appends its events,
-- so a retry finds the change it made even when mcpd died before answering (the answer is
-- stored afterwards, when there is one to store). Keyed per user: one user's keys never meet
-- another's. Rows expire after the key lifetime.
CREATE TABLE idempotency_keys (
    actor TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    request_id TEXT NOT NULL,
    aggregate_type TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status INTEGER,
    content_type TEXT,
    location TEXT,
    body TEXT,
    PRIMARY KEY (actor, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
