-- An aggregate's state every 50 events (api/src/snapshots.rs): loading one costs its snapshot
-- and the events after it, however long its history. A cache of the log, one row per
-- aggregate: deleting rows is always safe (the next load replays), and rows written by another
-- mcpd version are ignored.
CREATE TABLE aggregate_snapshots
(
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    last_sequence  bigint NOT NULL,
    format         text   NOT NULL,
    payload        text   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
