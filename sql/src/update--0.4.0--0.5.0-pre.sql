
-- memoria 0.4.0 -> 0.5.0, first part: what api.sql cannot replace in place.
DROP EVENT TRIGGER memoria_ddl_end, memoria_sql_drop, memoria_table_rewrite;
-- drop_rollup gains cascade.
DROP FUNCTION memoria.drop_rollup(text, boolean);
