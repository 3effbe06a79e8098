-- The event log: the columns sqlite-es reads and writes (its INSERT names them), plus a global
-- position and the commit time. SQLite has one writer at a time, so assigning the position in
-- the inserting transaction gives commit order. The position is an explicit column (filled by
-- a trigger) rather than the rowid, which VACUUM may renumber.
CREATE TABLE events
(
    aggregate_type text                          NOT NULL,
    aggregate_id   text                          NOT NULL,
    sequence       integer CHECK (sequence >= 0) NOT NULL,
    event_type     text                          NOT NULL,
    event_version  text                          NOT NULL,
    payload        text                          NOT NULL,
    metadata       text                          NOT NULL,
    position       integer,
    recorded_at    text                          NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- sqlite-es recognises a clash on this primary key as an optimistic-concurrency conflict.
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;

CREATE UNIQUE INDEX events_position ON events (position);
CREATE INDEX events_event_type ON events (event_type, position);
CREATE INDEX events_recorded_at ON events (recorded_at);
CREATE INDEX events_actor ON events (json_extract(metadata, '$.actor'), position);

CREATE TRIGGER events_assign_position AFTER INSERT ON events
BEGIN
    UPDATE events
    SET position = (SELECT COALESCE(MAX(position), 0) + 1 FROM events)
    WHERE rowid = NEW.rowid;
END;

-- Where each projection has got to in the log. Updated in the same transaction as its rows.
CREATE TABLE projection_checkpoints
(
    name           text PRIMARY KEY,
    transaction_id integer NOT NULL,
    position       integer NOT NULL,
    updated_at     text    NOT NULL
) STRICT;

CREATE TABLE secret_backends
(
    name             text PRIMARY KEY,
    type             text    NOT NULL,
    description      text    NOT NULL,
    is_default       integer NOT NULL,
    config           text,
    resource_version integer NOT NULL,
    created_at       text    NOT NULL,
    updated_at       text    NOT NULL
) STRICT;
CREATE INDEX secret_backends_is_default ON secret_backends (is_default);

CREATE TABLE secrets
(
    name             text PRIMARY KEY,
    backend          text    NOT NULL,
    description      text    NOT NULL,
    keys             text    NOT NULL,
    data_version     integer NOT NULL,
    value_ref        text    NOT NULL,
    resource_version integer NOT NULL,
    created_at       text    NOT NULL,
    updated_at       text    NOT NULL
) STRICT;
CREATE INDEX secrets_backend ON secrets (backend);

CREATE TABLE llms
(
    name             text PRIMARY KEY,
    type             text    NOT NULL,
    model            text    NOT NULL,
    url              text,
    tier             text    NOT NULL,
    description      text    NOT NULL,
    api_key_secret   text,
    api_key_key      text,
    extra            text    NOT NULL,
    resource_version integer NOT NULL,
    created_at       text    NOT NULL,
    updated_at       text    NOT NULL
) STRICT;
CREATE INDEX llms_api_key_secret ON llms (api_key_secret);
CREATE INDEX llms_type ON llms (type);
CREATE INDEX llms_tier ON llms (tier);

-- Values of secrets on plaintext backends: mutable, outside the log. One row per written
-- version of a secret's data; the secret's events name the current one (value_ref).
CREATE TABLE plaintext_secret_values
(
    value_ref  text PRIMARY KEY,
    secret     text NOT NULL,
    data       text NOT NULL,
    created_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
CREATE INDEX plaintext_secret_values_secret ON plaintext_secret_values (secret);
