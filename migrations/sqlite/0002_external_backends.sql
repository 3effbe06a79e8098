-- Secrets on external backends record where their values are.
ALTER TABLE secrets ADD COLUMN external_ref text;

-- An openbao backend's token secret, in columns so "which backends depend on this secret" is
-- an indexed query.
ALTER TABLE secret_backends ADD COLUMN token_secret text;
ALTER TABLE secret_backends ADD COLUMN token_key text;
CREATE INDEX secret_backends_token_secret ON secret_backends (token_secret);
