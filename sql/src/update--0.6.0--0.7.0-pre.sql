-- memoria 0.6.0 -> 0.7.0, first part: what api.sql cannot replace in place.
DROP EVENT TRIGGER memoria_ddl_start, memoria_ddl_end, memoria_sql_drop, memoria_table_rewrite;
-- The additive path: the log of inserted rows' partial aggregates.
ALTER TABLE memoria.rollups ADD COLUMN delta_log regclass;
