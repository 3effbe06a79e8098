-- Paths mcpd has claimed on OpenBao (or Vault) servers, keyed by where they are (server URL,
-- namespace, mount and path). A path is claimed only after mcpd saw it empty, and before mcpd
-- writes to it; mcpd overwrites a path only if it holds a claim here (or the path carries the
-- `managed-by: mcpd` marker earlier versions wrote), so it never overwrites data it did not
-- write, not even after a crash between the claim and the write.
CREATE TABLE openbao_claims
(
    location   text PRIMARY KEY,
    backend    text NOT NULL,
    secret     text NOT NULL,
    claimed_at text NOT NULL
);
