-- Projection status visible from every replica: the error a read model last stopped or
-- retried on (cleared when it applies events again).
ALTER TABLE projection_checkpoints ADD COLUMN last_error text;
ALTER TABLE projection_checkpoints ADD COLUMN error_at text;

-- The latest rebuild of each read model: progress while it runs, the outcome after.
CREATE TABLE projection_rebuilds
(
    name         text PRIMARY KEY,
    status       text   NOT NULL,
    replayed     bigint NOT NULL,
    total        bigint NOT NULL,
    requested_by text   NOT NULL,
    started_at   text   NOT NULL,
    updated_at   text   NOT NULL,
    finished_at  text,
    error        text
);
