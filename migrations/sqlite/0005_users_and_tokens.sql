-- Users and API tokens, projected from the `user` and `token` aggregates. Tokens are kept
-- only as their SHA-256 hash.
CREATE TABLE users
(
    name             text PRIMARY KEY,
    description      text NOT NULL,
    resource_version integer NOT NULL,
    created_at       text NOT NULL,
    updated_at       text NOT NULL
);

CREATE TABLE tokens
(
    id               text PRIMARY KEY,
    user_name        text NOT NULL,
    hash             text NOT NULL,
    expires_at       text,
    description      text NOT NULL,
    revoked          integer NOT NULL,
    resource_version integer NOT NULL,
    created_at       text NOT NULL,
    updated_at       text NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_name);

-- When each token was last used. Written by authentication (at most once a minute per token),
-- not by a projection: it is not an event.
CREATE TABLE token_usage
(
    id           text PRIMARY KEY,
    last_used_at text NOT NULL
);
