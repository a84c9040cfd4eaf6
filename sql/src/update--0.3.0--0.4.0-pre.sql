-- memoria 0.3.0 -> 0.4.0, first part: the catalog in its 0.4.0 shape, and the
-- API objects whose shape changed dropped (sql/src/api.sql follows).

-- Catalog values pg_dump can carry: tables, roles and types by name; ids
-- chosen by create_rollup rather than by a sequence pg_dump would not dump.
-- (The status view reads these columns: it is made again below.  A view of
-- the user's over it would go too: the update refuses, saying which.)
DO $$
DECLARE views text;
BEGIN
    SELECT string_agg(DISTINCT w.ev_class::pg_catalog.regclass::text, ', ') INTO views
    FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid
    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
      AND d.refobjid = 'memoria.status'::pg_catalog.regclass
      AND w.ev_class <> 'memoria.status'::pg_catalog.regclass;
    IF views IS NOT NULL THEN
        RAISE EXCEPTION 'memoria 0.4.0 makes the view memoria.status again, and % depend on it', views
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Drop them, run ALTER EXTENSION memoria UPDATE, then create them again.';
    END IF;
END $$;
DROP VIEW memoria.status;
ALTER TABLE memoria.rollups
    ALTER id DROP IDENTITY,
    ALTER owner TYPE regrole USING owner::regrole,
    ALTER source TYPE regclass USING source::regclass,
    ALTER target TYPE regclass USING target::regclass,
    ALTER dirty_log TYPE regclass USING dirty_log::regclass,
    ALTER time_type TYPE regtype USING time_type::regtype,
    ADD COLUMN freeze_after interval;
ALTER TABLE memoria.rollup_state
    DROP CONSTRAINT rollup_state_rollup_id_fkey,
    ALTER capture_tables TYPE regclass[] USING capture_tables::regclass[],
    ADD COLUMN frozen_keys_discarded bigint NOT NULL DEFAULT 0,
    ADD COLUMN failing_keys bigint NOT NULL DEFAULT 0,
    ADD COLUMN recorded_in text;
SELECT pg_catalog.pg_extension_config_dump('memoria.rollups', '');
SELECT pg_catalog.pg_extension_config_dump('memoria.rollup_state', '');

CREATE SCHEMA memoria_internal;
COMMENT ON SCHEMA memoria_internal IS 'memoria: internal functions (not part of the API)';
GRANT USAGE ON SCHEMA memoria_internal TO PUBLIC;

-- Event triggers and the catalog's trigger are made again by api.sql.
DROP EVENT TRIGGER memoria_ddl_end;
DROP EVENT TRIGGER memoria_sql_drop;
DROP EVENT TRIGGER memoria_table_rewrite;
DROP TRIGGER forget_cron_job ON memoria.rollups;

-- New arguments or results.
DROP FUNCTION memoria.refresh_window(text, timestamptz, timestamptz);
DROP FUNCTION memoria.verify(text, timestamptz, timestamptz);
DROP FUNCTION memoria.alter_rollup(text, interval);
