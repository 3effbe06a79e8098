-- Custom roles and role bindings, projected from the `role` and `rolebinding` aggregates;
-- the spec is kept as JSON (rules, or role and users). Built-in roles live in code.
CREATE TABLE roles
(
    name             text PRIMARY KEY,
    spec             text NOT NULL,
    resource_version bigint NOT NULL,
    created_at       text NOT NULL,
    updated_at       text NOT NULL
);

CREATE TABLE role_bindings
(
    name             text PRIMARY KEY,
    role             text NOT NULL,
    spec             text NOT NULL,
    resource_version bigint NOT NULL,
    created_at       text NOT NULL,
    updated_at       text NOT NULL
);
CREATE INDEX role_bindings_role ON role_bindings (role);
