-- Secret migration runs, projected from the `migration` aggregate.
CREATE TABLE migrations
(
    id               text PRIMARY KEY,
    from_backend     text    NOT NULL,
    to_backend       text    NOT NULL,
    names            text,
    keep_source      integer NOT NULL,
    status           text    NOT NULL,
    moved            integer NOT NULL,
    skipped          integer NOT NULL,
    failed           integer NOT NULL,
    resumed          integer NOT NULL,
    last_error       text,
    resource_version integer NOT NULL,
    created_at       text    NOT NULL,
    updated_at       text    NOT NULL
);
CREATE INDEX migrations_status ON migrations (status);
