-- memoria 0.2.0 -> 0.3.0: the trust boundary.
\echo Use "ALTER EXTENSION memoria UPDATE" to load this file. \quit

-- The settings that decide what a rollup's expressions mean (rollups made
-- before this version get PostgreSQL's defaults), and since when a capture
-- trigger is missing or disabled.
ALTER TABLE memoria.rollups ADD COLUMN settings text[];
ALTER TABLE memoria.rollup_state ADD COLUMN capture_lost_at timestamptz;
ALTER TABLE memoria.rollup_state ADD COLUMN capture_tables oid[];

CREATE FUNCTION memoria._capture_problem(rollup_id int) RETURNS text
AS 'MODULE_PATHNAME', 'memoria_capture_problem'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;

CREATE FUNCTION memoria._in_own_ddl() RETURNS boolean
AS 'MODULE_PATHNAME', 'memoria_in_own_ddl'
LANGUAGE C VOLATILE;

CREATE FUNCTION memoria._after_ddl(rollup_id int) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_after_ddl'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._after_ddl(int) FROM PUBLIC;

CREATE FUNCTION memoria._function_changed(rollup_id int) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_function_changed'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._function_changed(int) FROM PUBLIC;

CREATE FUNCTION memoria._repair(rollup_id int) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_repair'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._repair(int) FROM PUBLIC;

-- The DDL hooks: one C entry point per rollup instead of plpgsql.
DROP EVENT TRIGGER memoria_ddl_end;
DROP FUNCTION memoria._on_ddl_end();
DROP FUNCTION memoria._check_rollup(text);
DROP FUNCTION memoria._adopt_trigger(oid, oid);
DROP FUNCTION memoria._dirty_all_keys(int, regclass);
DROP FUNCTION memoria._is_partitioned(oid);
-- A function the rollup's expressions call was replaced or altered: it must
-- still fit; the rollup is rebuilt.
CREATE FUNCTION memoria._on_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rollup_id int;
BEGIN
    IF memoria._in_own_ddl() THEN
        RETURN;  -- memoria's own trigger DDL, in the middle of its work
    END IF;
    -- A capture trigger keeps its name: capture() finds its rollup by it.
    IF tg_tag = 'ALTER TRIGGER' AND EXISTS (
        SELECT 1 FROM pg_event_trigger_ddl_commands() c JOIN pg_trigger t ON t.oid = c.objid
        WHERE c.classid = 'pg_trigger'::regclass AND t.tgfoid = 'memoria.capture()'::regprocedure) THEN
        RAISE EXCEPTION 'cannot alter a capture trigger of a memoria rollup'
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'memoria finds a trigger''s rollup by its name; leave its triggers as they are.';
    END IF;
    -- CREATE OR REPLACE / ALTER of a function a rollup's expressions call
    -- (the rollup table depends on it, as a view would).
    IF tg_tag IN ('CREATE FUNCTION', 'ALTER FUNCTION') THEN
        FOR rollup_id IN
            SELECT DISTINCT r.id FROM memoria.rollups r
            JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = r.target
                            AND d.refclassid = 'pg_proc'::regclass
            JOIN pg_event_trigger_ddl_commands() c ON c.classid = 'pg_proc'::regclass AND c.objid = d.refobjid
            ORDER BY r.id
        LOOP
            PERFORM memoria._function_changed(rollup_id);
        END LOOP;
        RETURN;
    END IF;
    -- Every rollup whose source is the table changed, or above or below it
    -- in an inheritance or partition tree.
    FOR rollup_id IN
        WITH RECURSIVE changed AS (
            SELECT c.objid AS relid FROM pg_event_trigger_ddl_commands() c
            WHERE c.classid = 'pg_class'::regclass
        ), up (relid) AS (
            SELECT relid FROM changed
            UNION SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.relid
        ), down (relid) AS (
            SELECT relid FROM changed
            UNION SELECT i.inhrelid FROM pg_inherits i JOIN down ON i.inhparent = down.relid
        )
        SELECT ro.id FROM memoria.rollups ro
        WHERE ro.source IN (SELECT relid FROM up UNION SELECT relid FROM down)
        ORDER BY ro.id
    LOOP
        PERFORM memoria._after_ddl(rollup_id);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION memoria._on_ddl_end() FROM PUBLIC;

CREATE EVENT TRIGGER memoria_ddl_end ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'ALTER TRIGGER', 'CREATE FUNCTION', 'ALTER FUNCTION')
    EXECUTE FUNCTION memoria._on_ddl_end();

CREATE OR REPLACE FUNCTION memoria._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- A capture trigger of a rollup that stays goes only by memoria's hand
    -- (drop_rollup, or a layout change); dropped by anyone else, writes
    -- would silently stop being captured.  (Its table tells memoria's
    -- triggers from others named alike.)
    IF NOT memoria._in_own_ddl() AND EXISTS (
        SELECT 1 FROM pg_event_trigger_dropped_objects() d
        JOIN memoria.rollups r ON d.object_identity LIKE 'zz\_memoria\_%\_' || r.id || ' on %'
        JOIN memoria.rollup_state s ON s.rollup_id = r.id
        WHERE d.object_type = 'trigger' AND d.original
          AND to_regclass(substring(d.object_identity FROM ' on (.*)$'))::oid = ANY (s.capture_tables)) THEN
        RAISE EXCEPTION 'cannot drop a capture trigger of a memoria rollup'
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Drop the rollup with memoria.drop_rollup(), which removes its triggers.';
    END IF;
    -- A dropped partition took its rows along without a row trigger firing:
    -- its rollup is rebuilt (a NULL bucket in the dirty log).
    PERFORM memoria._mark_rebuild(r.id)
    FROM memoria.rollups r JOIN memoria.rollup_state s ON s.rollup_id = r.id
    WHERE s.capture_tables && ARRAY(SELECT d.objid FROM pg_event_trigger_dropped_objects() d
                                    WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0)
      AND EXISTS (SELECT 1 FROM pg_class WHERE oid = r.dirty_log)
      AND EXISTS (SELECT 1 FROM pg_class WHERE oid = r.source);
    DELETE FROM memoria.rollups r
    USING pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_class'::regclass
      AND d.objsubid = 0
      AND d.objid IN (r.source, r.target, r.dirty_log);
END $$;
REVOKE ALL ON FUNCTION memoria._on_sql_drop() FROM PUBLIC;

-- The "rebuild everything" marker: one C writer, which checks the log.
CREATE OR REPLACE FUNCTION memoria._mark_rebuild(rollup_id int) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_mark_rebuild'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._mark_rebuild(int) FROM PUBLIC;

CREATE OR REPLACE FUNCTION memoria._on_table_rewrite() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel oid := pg_event_trigger_table_rewrite_oid();
BEGIN
    PERFORM memoria._mark_rebuild(ro.id) FROM memoria.rollups ro
    WHERE ro.source = rel OR ro.source IN (SELECT relid FROM pg_partition_ancestors(rel));
END $$;

-- memoria.status gains state.
CREATE OR REPLACE VIEW memoria.status WITH (security_barrier) AS
SELECT r.name                                   AS rollup,
       r.source::regclass                       AS source,
       r.target::regclass                       AS target,
       r.invalidation,
       s.watermark,
       clock_timestamp() - s.watermark          AS lag,
       memoria._pending_keys(r.id)              AS pending_keys,
       s.needs_backfill,
       s.backfill_progress,
       s.last_refresh_at,
       s.last_duration,
       s.last_status,
       s.last_error,
       s.refreshes,
       CASE WHEN to_regclass('cron.job') IS NOT NULL
                 AND memoria._cron_job_exists(r.name) THEN 'pg_cron'
            WHEN current_setting('memoria.enabled', true) = 'on'
                 AND memoria._worker_preloaded() THEN 'worker'
            ELSE 'manual' END                   AS scheduled_by,
       CASE WHEN memoria._capture_problem(r.id) IS NOT NULL THEN 'capture_disabled'
            WHEN EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.locktype = 'advisory' AND l.granted
                           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                           AND l.classid = 1835363695 AND l.objid = r.id AND l.objsubid = 2)
                 THEN 'refreshing'
            WHEN s.last_status = 'error' THEN 'error'
            WHEN s.needs_backfill THEN 'needs_backfill'
            ELSE 'idle' END                     AS state
FROM memoria.rollups r
JOIN memoria.rollup_state s ON s.rollup_id = r.id
WHERE pg_has_role(r.owner, 'MEMBER');
GRANT SELECT ON memoria.status TO PUBLIC;

-- Existing rollups: dirty logs owned by the extension, this version's triggers.
SELECT memoria._repair(id) FROM memoria.rollups ORDER BY id;
