-- The audit query reads newest first in commit order (transaction_id, position), filtered by
-- kind, kind and name, actor or event type; each filter has an index ending in that order, so a
-- page is an index range instead of a sort of every matching row.
DROP INDEX events_event_type;
DROP INDEX events_actor;
CREATE INDEX events_event_type ON events (event_type, transaction_id, position);
CREATE INDEX events_actor ON events ((metadata ->> 'actor'), transaction_id, position);
CREATE INDEX events_kind ON events (aggregate_type, transaction_id, position);
CREATE INDEX events_kind_name ON events (aggregate_type, aggregate_id, transaction_id, position);
