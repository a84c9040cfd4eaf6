
-- memoria 0.5.0 -> 0.6.0, first part: what api.sql cannot replace in place.
DROP EVENT TRIGGER memoria_ddl_start, memoria_ddl_end, memoria_sql_drop, memoria_table_rewrite;
-- View sources: the log of writes to a view's joined tables.
ALTER TABLE memoria.rollups ADD COLUMN link_log regclass;
-- Dimensions may be expressions ('lower(model) AS model').
ALTER TABLE memoria.rollups ADD COLUMN dimension_exprs text[];
-- A replaced view source's rebuild waits for the writers that began before.
ALTER TABLE memoria.rollup_state ADD COLUMN rebuild_after_xid bigint;
