-- The audit query reads newest first (by position) filtered by kind, kind and name, actor or
-- event type; each filter has an index ending in the order column, so a page is an index range.
CREATE INDEX events_kind ON events (aggregate_type, position);
CREATE INDEX events_kind_name ON events (aggregate_type, aggregate_id, position);
