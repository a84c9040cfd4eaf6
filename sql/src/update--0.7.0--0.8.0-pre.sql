-- memoria 0.7.0 -> 0.8.0, first part: what api.sql cannot replace in place.
DROP EVENT TRIGGER memoria_ddl_start, memoria_ddl_end, memoria_sql_drop, memoria_table_rewrite;
-- (citus.sql adds memoria.citus_rollups.)
