-- The event log: the columns postgres-es reads and writes (its INSERT names them), plus a
-- global position, the id of the inserting transaction and the commit time. A sequence value
-- alone is not commit order (position 10 can commit after 11), so readers only read rows whose
-- transaction is older than every running one (transaction_id < pg_snapshot_xmin(...)) and
-- order by (transaction_id, position): no event that commits late is ever skipped.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    position       bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz                  NOT NULL DEFAULT now(),
    -- postgres-es recognises a clash on this primary key as an optimistic-concurrency conflict.
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_commit_order ON events (transaction_id, position);
CREATE INDEX events_event_type ON events (event_type, position);
CREATE INDEX events_recorded_at ON events (recorded_at);
CREATE INDEX events_actor ON events ((metadata ->> 'actor'), position);

CREATE TABLE projection_checkpoints
(
    name           text PRIMARY KEY,
    transaction_id bigint NOT NULL,
    position       bigint NOT NULL,
    updated_at     text   NOT NULL
);

CREATE TABLE secret_backends
(
    name             text PRIMARY KEY,
    type             text   NOT NULL,
    description      text   NOT NULL,
    is_default       bigint NOT NULL,
    config           text,
    resource_version bigint NOT NULL,
    created_at       text   NOT NULL,
    updated_at       text   NOT NULL
);
CREATE INDEX secret_backends_is_default ON secret_backends (is_default);

CREATE TABLE secrets
(
    name             text PRIMARY KEY,
    backend          text   NOT NULL,
    description      text   NOT NULL,
    keys             text   NOT NULL,
    data_version     bigint NOT NULL,
    value_ref        text   NOT NULL,
    resource_version bigint NOT NULL,
    created_at       text   NOT NULL,
    updated_at       text   NOT NULL
);
CREATE INDEX secrets_backend ON secrets (backend);

CREATE TABLE llms
(
    name             text PRIMARY KEY,
    type             text   NOT NULL,
    model            text   NOT NULL,
    url              text,
    tier             text   NOT NULL,
    description      text   NOT NULL,
    api_key_secret   text,
    api_key_key      text,
    extra            text   NOT NULL,
    resource_version bigint NOT NULL,
    created_at       text   NOT NULL,
    updated_at       text   NOT NULL
);
CREATE INDEX llms_api_key_secret ON llms (api_key_secret);
CREATE INDEX llms_type ON llms (type);
CREATE INDEX llms_tier ON llms (tier);

CREATE TABLE plaintext_secret_values
(
    value_ref  text PRIMARY KEY,
    secret     text NOT NULL,
    data       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plaintext_secret_values_secret ON plaintext_secret_values (secret);
