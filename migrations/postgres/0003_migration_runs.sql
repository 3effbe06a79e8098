-- Secret migration runs, projected from the `migration` aggregate.
CREATE TABLE migrations
(
    id               text PRIMARY KEY,
    from_backend     text    NOT NULL,
    to_backend       text    NOT NULL,
    names            text,
    keep_source      bigint NOT NULL,
    status           text    NOT NULL,
    moved            bigint NOT NULL,
    skipped          bigint NOT NULL,
    failed           bigint NOT NULL,
    resumed          bigint NOT NULL,
    last_error       text,
    resource_version bigint NOT NULL,
    created_at       text    NOT NULL,
    updated_at       text    NOT NULL
);
CREATE INDEX migrations_status ON migrations (status);
