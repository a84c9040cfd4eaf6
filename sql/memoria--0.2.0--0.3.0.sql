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

CREATE FUNCTION memoria._repair(rollup_id int) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_repair'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._repair(int) FROM PUBLIC;

-- The DDL hooks are C now (src/ddl_guard.cpp): the plpgsql ones and their
-- helpers go, event triggers first (a DROP FUNCTION fires sql_drop).
DROP EVENT TRIGGER memoria_ddl_end;
DROP EVENT TRIGGER memoria_sql_drop;
DROP EVENT TRIGGER memoria_table_rewrite;
DROP FUNCTION memoria._on_ddl_end();
DROP FUNCTION memoria._on_sql_drop();
DROP FUNCTION memoria._on_table_rewrite();
DROP FUNCTION memoria._mark_rebuild(int);
DROP FUNCTION memoria._check_rollup(text);
DROP FUNCTION memoria._adopt_trigger(oid, oid);
DROP FUNCTION memoria._dirty_all_keys(int, regclass);
DROP FUNCTION memoria._is_partitioned(oid);

CREATE FUNCTION memoria._on_ddl_end() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'memoria_on_ddl_end'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._on_ddl_end() FROM PUBLIC;
CREATE EVENT TRIGGER memoria_ddl_end ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'ALTER TRIGGER', 'CREATE FUNCTION', 'ALTER FUNCTION')
    EXECUTE FUNCTION memoria._on_ddl_end();

CREATE FUNCTION memoria._on_sql_drop() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'memoria_on_sql_drop'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._on_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER memoria_sql_drop ON sql_drop
    EXECUTE FUNCTION memoria._on_sql_drop();

CREATE FUNCTION memoria._on_table_rewrite() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'memoria_on_table_rewrite'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._on_table_rewrite() FROM PUBLIC;
CREATE EVENT TRIGGER memoria_table_rewrite ON table_rewrite
    EXECUTE FUNCTION memoria._on_table_rewrite();


-- Backfill progress for programs: JSON in each NOTICE's DETAIL.
CREATE OR REPLACE PROCEDURE memoria.backfill(name text, window_start timestamptz DEFAULT NULL,
                                  window_end timestamptz DEFAULT NULL, slice interval DEFAULT interval '1 month')
LANGUAGE plpgsql AS $$
DECLARE
    src_lo timestamptz;
    src_hi timestamptz;
    lo timestamptz;
    hi timestamptz;
    cur timestamptz;
    nxt timestamptz;
    started timestamptz := pg_catalog.clock_timestamp();
    run_started timestamptz := pg_catalog.clock_timestamp();
    state record;
    slices_total int;
    slices_done int := 0;
    slice_rows bigint;
    progress real;
    eta interval;
BEGIN
    IF slice IS NULL OR slice OPERATOR(pg_catalog.<=) interval '0' THEN
        RAISE EXCEPTION 'slice must be a positive interval' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example slice => ''1 month'' or ''7 days''.';
    END IF;
    SELECT r.lo, r.hi INTO src_lo, src_hi FROM memoria._source_range(backfill.name) r;
    lo := coalesce(window_start, src_lo);
    hi := coalesce(window_end, src_hi OPERATOR(pg_catalog.+) interval '1 microsecond');
    IF lo IS NULL OR hi IS NULL OR lo OPERATOR(pg_catalog.>=) hi THEN
        -- Nothing to read: an empty source, or an empty window.
        PERFORM memoria._backfill_state(backfill.name, NULL, 1, true, started,
                                        window_start IS NULL AND window_end IS NULL);
        COMMIT;
        RETURN;
    END IF;
    cur := lo;
    SELECT * INTO state FROM memoria._backfill_state(backfill.name, NULL, NULL, NULL, NULL, NULL);
    IF state.resume_at IS NOT NULL AND state.resume_at OPERATOR(pg_catalog.>) lo
       AND state.resume_at OPERATOR(pg_catalog.<) hi THEN
        cur := state.resume_at;
        started := coalesce(state.resume_started, started);
        RAISE NOTICE 'memoria.backfill %: resuming at %', backfill.name, cur
            USING DETAIL = pg_catalog.json_build_object('resume_at', cur::text)::text;
    END IF;
    slices_total := pg_catalog.ceil(EXTRACT(epoch FROM hi OPERATOR(pg_catalog.-) cur)
                                    OPERATOR(pg_catalog./) EXTRACT(epoch FROM slice))::int;
    LOOP
        nxt := least(cur OPERATOR(pg_catalog.+) slice, hi);
        SELECT rw.rows_upserted INTO slice_rows FROM memoria.refresh_window(backfill.name, cur, nxt) rw;
        slices_done := slices_done OPERATOR(pg_catalog.+) 1;
        progress := (EXTRACT(epoch FROM nxt OPERATOR(pg_catalog.-) lo)
                     OPERATOR(pg_catalog./) EXTRACT(epoch FROM hi OPERATOR(pg_catalog.-) lo))::real;
        PERFORM memoria._backfill_state(backfill.name, nxt, progress, false, started, false);
        eta := pg_catalog.date_trunc('second', (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) run_started)
                   OPERATOR(pg_catalog.*) ((slices_total OPERATOR(pg_catalog.-) slices_done)::float8
                                           OPERATOR(pg_catalog./) slices_done));
        -- The message for people; the same as JSON in DETAIL for programs (memoriactl).
        RAISE NOTICE 'memoria.backfill %: slice % of %, [%, %) done, % %%, % rows, ETA %', backfill.name,
            slices_done, slices_total, cur, nxt, pg_catalog.round((progress * 100)::numeric, 1), slice_rows, eta
            USING DETAIL = pg_catalog.json_build_object(
                'slice', slices_done, 'slices', slices_total, 'from', cur::text, 'to', nxt::text,
                'percent', pg_catalog.round((progress * 100)::numeric, 1), 'rows', slice_rows, 'eta', eta::text)::text;
        COMMIT;
        cur := nxt;
        EXIT WHEN cur OPERATOR(pg_catalog.>=) hi;
    END LOOP;
    -- Rows written while this ran are in the dirty log: refresh takes over
    -- from the watermark set here (the time the backfill began).
    PERFORM memoria._backfill_state(backfill.name, NULL, 1, true, started,
                                    window_start IS NULL AND window_end IS NULL);
    COMMIT;
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
