-- memoria's functions, views and event triggers (sql/src/api.sql).  Both the
-- install script and the update script from the previous release are built from this file
-- (Makefile): CREATE OR REPLACE keeps what users may depend on (memoria.bucket
-- in their indexes, for one); the update drops what changed shape first.
-- The API lives in schema memoria; what only memoria calls lives in
-- memoria_internal.  Every function pins its search_path or qualifies
-- every name.

------------------------------------------------------------------------------
-- Defining, changing and dropping rollups (src/create.cpp, src/alter.cpp)
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION memoria.create_rollup(
    name              text,
    source            regclass,
    time_column       text,
    dimensions        text[],
    measures          text[],
    bucket            interval DEFAULT interval '1 day',
    time_zone         text     DEFAULT 'UTC',
    scope             text[]   DEFAULT NULL,
    filter            text     DEFAULT NULL,
    invalidation      text     DEFAULT 'trigger',
    updated_at_column text     DEFAULT NULL,
    safety_lag        interval DEFAULT interval '5 minutes',
    target            text     DEFAULT NULL)
RETURNS regclass
AS 'MODULE_PATHNAME', 'memoria_create_rollup'
LANGUAGE C VOLATILE CALLED ON NULL INPUT;
-- No SET search_path here: the caller's resolves (and is recorded for) the
-- measure and filter expressions; the function pins its own before it runs
-- any SQL of memoria's.
COMMENT ON FUNCTION memoria.create_rollup(text, regclass, text, text[], text[], interval, text, text[], text, text,
                                          text, interval, text)
    IS 'Create a rollup table of source, kept up to date incrementally; returns the table';

CREATE OR REPLACE FUNCTION memoria.drop_rollup(name text, drop_table boolean DEFAULT false, cascade boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'memoria_drop_rollup'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION memoria.drop_rollup(text, boolean, boolean)
    IS 'Drop a rollup: its triggers, state, pending keys, pg_cron jobs and (with drop_table) its table; with cascade, the rollups of its table too';

CREATE OR REPLACE FUNCTION memoria.alter_rollup(name text, refresh_interval interval DEFAULT NULL,
                                     freeze_after interval DEFAULT NULL, add_measures text[] DEFAULT NULL,
                                     drop_measures text[] DEFAULT NULL, rename_to text DEFAULT NULL,
                                     dry_run boolean DEFAULT false)
RETURNS TABLE (step int, action text, detail text)
AS 'MODULE_PATHNAME', 'memoria_alter_rollup'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION memoria.alter_rollup(text, interval, interval, text[], text[], text, boolean)
    IS 'Change a rollup (refresh interval, freezing, measures, name); one row per step, dry_run changes nothing';

------------------------------------------------------------------------------
-- Refreshing (src/refresh.cpp, src/verify.cpp)
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION memoria.refresh(name text DEFAULT NULL, max_keys bigint DEFAULT NULL)
RETURNS TABLE (rollup text, status text, keys_refreshed bigint, rows_upserted bigint,
               rows_deleted bigint, watermark timestamptz, duration interval, error text)
AS 'MODULE_PATHNAME', 'memoria_refresh'
LANGUAGE C VOLATILE CALLED ON NULL INPUT ROWS 1
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION memoria.refresh(text, bigint)
    IS 'Recompute the dirty keys of one rollup (or every rollup the caller may refresh) from the source';

CREATE OR REPLACE FUNCTION memoria.refresh_window(name text, window_start timestamptz, window_end timestamptz,
    include_frozen boolean DEFAULT false,
    OUT rollup text, OUT status text, OUT keys_refreshed bigint, OUT rows_upserted bigint,
    OUT rows_deleted bigint, OUT watermark timestamptz, OUT duration interval, OUT error text)
AS 'MODULE_PATHNAME', 'memoria_refresh_window'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION memoria.refresh_window(text, timestamptz, timestamptz, boolean)
    IS 'Recompute every bucket overlapping [window_start, window_end) from the source (frozen ones only if asked)';

CREATE OR REPLACE FUNCTION memoria.verify(name text,
    window_start timestamptz DEFAULT '-infinity', window_end timestamptz DEFAULT 'infinity',
    include_frozen boolean DEFAULT false)
RETURNS TABLE (bucket text, dimensions jsonb, rollup_values jsonb, source_values jsonb)
AS 'MODULE_PATHNAME', 'memoria_verify'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION memoria.verify(text, timestamptz, timestamptz, boolean)
    IS 'Rows where the rollup differs from a fresh aggregation of the source (none: exact)';

-- The bucket a time value falls in: the same C++ code the capture trigger uses.
CREATE OR REPLACE FUNCTION memoria.bucket(ts timestamptz, width interval, time_zone text DEFAULT 'UTC')
RETURNS timestamptz AS 'MODULE_PATHNAME', 'memoria_bucket_timestamptz'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION memoria.bucket(ts timestamp, width interval, time_zone text DEFAULT 'UTC')
RETURNS timestamp AS 'MODULE_PATHNAME', 'memoria_bucket_timestamp'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION memoria.bucket(ts date, width interval, time_zone text DEFAULT 'UTC')
RETURNS date AS 'MODULE_PATHNAME', 'memoria_bucket_date'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION memoria.bucket(timestamptz, interval, text) IS 'The bucket of width a time value falls in, in time_zone';
COMMENT ON FUNCTION memoria.bucket(timestamp, interval, text) IS 'The bucket of width a time value falls in';
COMMENT ON FUNCTION memoria.bucket(date, interval, text) IS 'The bucket of width a date falls in';

-- Inclusive bounds of the source values that can fall in a bucket (a
-- superset near DST changes, so statements re-check with memoria.bucket).
CREATE OR REPLACE FUNCTION memoria_internal.bucket_lo(b timestamptz, width interval, time_zone text)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'memoria_bucket_lo_timestamptz'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION memoria_internal.bucket_hi(b timestamptz, width interval, time_zone text)
RETURNS timestamptz AS 'MODULE_PATHNAME', 'memoria_bucket_hi_timestamptz'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION memoria_internal.bucket_lo(b timestamp, width interval, time_zone text)
RETURNS timestamp AS 'MODULE_PATHNAME', 'memoria_bucket_lo_timestamp'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION memoria_internal.bucket_hi(b timestamp, width interval, time_zone text)
RETURNS timestamp AS 'MODULE_PATHNAME', 'memoria_bucket_hi_timestamp'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION memoria_internal.bucket_lo(b date, width interval, time_zone text)
RETURNS date AS 'MODULE_PATHNAME', 'memoria_bucket_lo_date'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION memoria_internal.bucket_hi(b date, width interval, time_zone text)
RETURNS date AS 'MODULE_PATHNAME', 'memoria_bucket_hi_date'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

------------------------------------------------------------------------------
-- Triggers (src/capture.cpp, src/triggers.cpp)
------------------------------------------------------------------------------

-- Capture trigger.  Anyone may attach it to a table (the owner of a source
-- must, to create its partitions), but it acts only for the triggers memoria
-- made: it reads which rollup a trigger serves from the catalog, never from
-- its arguments.  (CREATE OR REPLACE: the update keeps it, triggers use it.)
CREATE OR REPLACE FUNCTION memoria.capture() RETURNS trigger
AS 'MODULE_PATHNAME', 'memoria_capture'
LANGUAGE C;
COMMENT ON FUNCTION memoria.capture()
    IS 'Trigger function of memoria''s capture triggers (it serves only the triggers memoria creates)';

-- On every rollup table, BEFORE INSERT/UPDATE/DELETE/TRUNCATE: only
-- memoria writes a rollup table.
CREATE OR REPLACE FUNCTION memoria_internal.guard_rollup() RETURNS trigger
AS 'MODULE_PATHNAME', 'memoria_guard_rollup'
LANGUAGE C;

------------------------------------------------------------------------------
-- Observing
------------------------------------------------------------------------------

-- Why a rollup's capture cannot be trusted now (a trigger missing or
-- disabled), or NULL; NULL too for a rollup the caller may not see.
CREATE OR REPLACE FUNCTION memoria_internal.capture_problem(rollup_id int) RETURNS text
AS 'MODULE_PATHNAME', 'memoria_capture_problem'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;

-- Distinct keys waiting in a rollup's dirty log (NULL for a rollup the caller may not see).
CREATE OR REPLACE FUNCTION memoria_internal.pending_keys(rollup_id int) RETURNS bigint
AS 'MODULE_PATHNAME', 'memoria_pending_keys'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;

-- The first bucket that is not frozen (NULL: nothing is frozen), as text.
CREATE OR REPLACE FUNCTION memoria_internal.frozen_before(rollup_id int) RETURNS text
AS 'MODULE_PATHNAME', 'memoria_frozen_before'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;

-- Whether the library was loaded by shared_preload_libraries (so the worker runs).
CREATE OR REPLACE FUNCTION memoria_internal.worker_preloaded() RETURNS boolean
AS 'MODULE_PATHNAME', 'memoria_worker_preloaded'
LANGUAGE C STABLE;

CREATE OR REPLACE FUNCTION memoria_internal.relation_owner(rel regclass) RETURNS oid
AS 'MODULE_PATHNAME', 'memoria_relation_owner'
LANGUAGE C STABLE STRICT;

-- pg_cron, here or in the database cron.database_name names (src/cron.cpp):
-- cron_database() says where; cron_call() lists, schedules, unschedules or
-- renames a rollup's jobs there, as the caller (pg_cron's row security shows
-- each role its own jobs).  Not SECURITY DEFINER: memoria.status calls it.
CREATE OR REPLACE FUNCTION memoria_internal.cron_database() RETURNS text
AS 'MODULE_PATHNAME', 'memoria_cron_database'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;
CREATE OR REPLACE FUNCTION memoria_internal.cron_call(action text, args text[], mode text) RETURNS text
AS 'MODULE_PATHNAME', 'memoria_cron_call'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- The jobs of this database's rollups: named memoria:<rollup> (in another
-- database: memoria:<rollup>@<database>), or whose command only refreshes
-- one rollup (CALL memoria.run('<rollup>')).  NULL when pg_cron's database
-- cannot be read.
CREATE OR REPLACE FUNCTION memoria_internal.cron_jobs()
RETURNS TABLE (jobid bigint, jobname text, schedule text, active boolean, username text, rollup text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT j.* FROM json_to_recordset(memoria_internal.cron_call('jobs', '{}', 'quiet')::json)
        AS j(jobid bigint, jobname text, schedule text, active boolean, username text, rollup text)
$$;

-- Rollups a role may see: its own (as a member of the source's owner), or
-- every one for members of pg_monitor (read-only).
CREATE OR REPLACE VIEW memoria_internal.visible_rollups WITH (security_barrier) AS
SELECT r.id, r.name, r.owner, r.source, r.target, r.dirty_log, r.time_attnum, r.time_type, r.dimension_attnums,
       r.scope_attnums, r.measures, r.measure_names, r.bucket, r.time_zone, r.filter, r.invalidation,
       r.updated_at_attnum, r.safety_lag, r.search_path, r.refresh_interval, r.created_at, r.settings, r.freeze_after,
       c.relowner AS source_owner, r.link_log, r.dimension_exprs
FROM memoria.rollups r
CROSS JOIN LATERAL (SELECT memoria_internal.relation_owner(r.source) AS relowner) c
WHERE c.relowner IS NOT NULL
  AND (pg_catalog.pg_has_role(c.relowner, 'MEMBER') OR pg_catalog.pg_has_role('pg_monitor', 'MEMBER'));

CREATE OR REPLACE VIEW memoria.status WITH (security_barrier) AS
SELECT r.name                                   AS rollup,
       r.source,
       r.target,
       r.invalidation,
       s.watermark,
       clock_timestamp() - s.watermark          AS lag,
       memoria_internal.pending_keys(r.id)      AS pending_keys,
       s.needs_backfill,
       s.backfill_progress,
       s.last_refresh_at,
       s.last_duration,
       s.last_status,
       s.last_error,
       s.refreshes,
       CASE WHEN EXISTS (SELECT 1 FROM json_to_recordset(cron.jobs) AS j(rollup text, active boolean)
                         WHERE j.rollup = r.name AND j.active) THEN 'pg_cron'
            WHEN cron.jobs IS NULL THEN 'unknown'
            WHEN current_setting('memoria.enabled', true) = 'on'
                 AND memoria_internal.worker_preloaded() THEN 'worker'
            ELSE 'manual' END                   AS scheduled_by,
       CASE WHEN memoria_internal.capture_problem(r.id) IS NOT NULL THEN 'capture_disabled'
            WHEN l.pid IS NOT NULL THEN 'refreshing'
            WHEN s.last_status = 'error' OR s.failing_keys > 0 THEN 'error'
            WHEN s.needs_backfill THEN 'needs_backfill'
            ELSE 'idle' END                     AS state,
       (SELECT a.xact_start FROM pg_stat_activity a WHERE a.pid = l.pid) AS running_since,
       s.failing_keys,
       memoria_internal.frozen_before(r.id)     AS frozen_before,
       s.frozen_keys_discarded
FROM memoria_internal.visible_rollups r
JOIN memoria.rollup_state s ON s.rollup_id = r.id
-- (Once per query: in another database, pg_cron's jobs are a worker away.)
CROSS JOIN (SELECT memoria_internal.cron_call('jobs', '{}', 'quiet')::json AS jobs OFFSET 0) cron
LEFT JOIN LATERAL (SELECT lk.pid FROM pg_locks lk
                   WHERE lk.locktype = 'advisory' AND lk.granted
                     AND lk.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND lk.classid = 1835363695 AND lk.objid = r.id AND lk.objsubid = 2
                   LIMIT 1) l ON true;
GRANT SELECT ON memoria.status TO PUBLIC;
COMMENT ON VIEW memoria.status IS 'memoria: each rollup''s freshness, backlog, last outcome and state';

CREATE OR REPLACE VIEW memoria.rollups_info WITH (security_barrier) AS
SELECT r.name                                   AS rollup,
       r.source_owner::regrole                  AS owner,
       r.source,
       r.target,
       a.attname::text                          AS time_column,
       r.bucket,
       r.time_zone,
       ARRAY(SELECT coalesce(r.dimension_exprs[u.i::int] || ' AS ' || quote_ident(t.attname), d.attname::text)
             FROM unnest(r.dimension_attnums) WITH ORDINALITY AS u(n, i)
             LEFT JOIN pg_attribute d ON d.attrelid = r.source AND d.attnum = u.n
             LEFT JOIN pg_attribute t ON t.attrelid = r.target AND t.attnum = u.i + 1
             ORDER BY u.i) AS dimensions,
       ARRAY(SELECT d.attname::text FROM unnest(r.scope_attnums) WITH ORDINALITY AS u(n, i)
             JOIN pg_attribute d ON d.attrelid = r.source AND d.attnum = u.n ORDER BY u.i) AS scope,
       r.measures,
       r.filter,
       r.invalidation,
       r.refresh_interval,
       r.freeze_after,
       ARRAY(SELECT s.name FROM memoria.rollups s WHERE s.target = r.source ORDER BY 1) AS depends_on
FROM memoria_internal.visible_rollups r
JOIN pg_attribute a ON a.attrelid = r.source AND a.attnum = r.time_attnum;
GRANT SELECT ON memoria.rollups_info TO PUBLIC;
COMMENT ON VIEW memoria.rollups_info IS 'memoria: each rollup''s definition';

-- How far behind the source a rollup may be: now minus its watermark.
CREATE OR REPLACE FUNCTION memoria.lag(name text) RETURNS interval
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE result interval;
BEGIN
    SELECT s.lag INTO result FROM memoria.status s WHERE s.rollup = lag.name;
    IF NOT FOUND THEN
        -- A rollup of a distributed table: its shard groups' (src/citus.hpp).
        SELECT s.lag INTO result FROM memoria_internal.citus_status(lag.name) s;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rollup "%" does not exist', lag.name
            USING ERRCODE = 'undefined_object',
                  HINT = 'See SELECT rollup FROM memoria.status for the rollups you can see.';
    END IF;
    RETURN result;
END $$;
COMMENT ON FUNCTION memoria.lag(text) IS 'How far behind its source a rollup may be: now minus its watermark';

------------------------------------------------------------------------------
-- Scheduling entry point: refresh in batches, committing between batches.
-- A procedure with a SET clause cannot COMMIT, so this one has none and uses
-- qualified names only.  It must be CALLed outside a transaction block.
------------------------------------------------------------------------------
-- The keys a rollup's <target>_live view recomputes (src/live.cpp), at the
-- calling query's snapshot: (rebuild_from, bucket, scope...).  Anyone may
-- call it; it answers only those who may read the rollup table.
CREATE OR REPLACE FUNCTION memoria_internal.live_keys(rollup_id int) RETURNS SETOF record
AS 'MODULE_PATHNAME', 'memoria_live_keys'
LANGUAGE C STABLE STRICT ROWS 100
SET search_path = pg_catalog, pg_temp;

-- (Again) a rollup's _live view.
CREATE OR REPLACE FUNCTION memoria_internal.create_live_view(rollup_id int) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_create_live_view'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria_internal.create_live_view(int) FROM PUBLIC;

-- The rollups the caller may refresh, lower levels of a chain first.
CREATE OR REPLACE FUNCTION memoria_internal.refresh_order() RETURNS SETOF text
AS 'MODULE_PATHNAME', 'memoria_refresh_order'
LANGUAGE C STABLE
SET search_path = pg_catalog, pg_temp;

-- Whether pg_cron runs this session (its own background workers, or its
-- libpq connections).
CREATE OR REPLACE FUNCTION memoria_internal.run_by_pg_cron() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT current_setting('application_name') = 'pg_cron'
        OR EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = pg_backend_pid() AND backend_type = 'pg_cron')
$$;

CREATE OR REPLACE PROCEDURE memoria.run(name text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    batch    bigint := pg_catalog.current_setting('memoria.batch_keys')::bigint;
    target   text;
    result   record;
    done     bigint;
    trouble  text;   -- what a pg_cron run must report: a rollup busy or failing
    failure_code text;
    failure  text;   -- the last error of a batch of this rollup
BEGIN
    FOR target IN
        -- The caller's rollups, a chain's lower levels first: a rollup of a
        -- rollup sees what this run just refreshed below it.  The rollups of
        -- distributed tables first (src/citus.hpp): a local rollup may read
        -- the partial mode's table, never the other way round.
        SELECT x.name FROM (
            SELECT c.name, 0 AS part, c.ordinality AS n
            FROM memoria_internal.citus_refresh_order(run.name) WITH ORDINALITY AS c
            UNION ALL
            SELECT o.name, 1, o.n FROM memoria_internal.refresh_order() WITH ORDINALITY AS o(name, n)
            WHERE run.name IS NULL OR o.name OPERATOR(pg_catalog.=) run.name) x
        ORDER BY x.part, x.n
    LOOP
        done := 0;
        failure := NULL;
        LOOP
            SELECT * INTO result FROM memoria.refresh(target, batch);
            COMMIT;
            done := done OPERATOR(pg_catalog.+) result.keys_refreshed;
            IF result.status OPERATOR(pg_catalog.=) 'error' THEN
                failure := result.error;
            END IF;
            -- On while batches are full; past keys that fail (status
            -- 'error', the others refreshed) too, until a batch does nothing.
            EXIT WHEN (result.status OPERATOR(pg_catalog.<>) 'ok' AND result.status OPERATOR(pg_catalog.<>) 'error')
                   OR result.keys_refreshed OPERATOR(pg_catalog.=) 0
                   OR (result.status OPERATOR(pg_catalog.=) 'ok' AND result.keys_refreshed OPERATOR(pg_catalog.<) batch);
        END LOOP;
        IF result.status OPERATOR(pg_catalog.=) 'busy' AND done OPERATOR(pg_catalog.=) 0 THEN
            trouble := pg_catalog.concat_ws('; ', trouble, pg_catalog.format(
                'rollup "%s" was busy: another session is refreshing it, so this run refreshed nothing', target));
            failure_code := coalesce(failure_code, '55P03');
        ELSIF failure IS NOT NULL THEN
            trouble := pg_catalog.concat_ws('; ', trouble, pg_catalog.format(
                'refresh of rollup "%s" failed: %s', target, failure));
            failure_code := coalesce(failure_code, '55000');
        END IF;
    END LOOP;
    IF run.name IS NOT NULL AND target IS NULL THEN
        -- Let refresh() raise its usual error for an unknown or foreign rollup.
        PERFORM memoria.refresh(run.name, 0);
    END IF;
    -- pg_cron records only a failed run's message: a run that did not do
    -- its job fails (what it did stays committed).
    IF trouble IS NOT NULL AND memoria_internal.run_by_pg_cron() THEN
        RAISE EXCEPTION 'memoria: %', trouble USING ERRCODE = failure_code,
            HINT = 'SELECT * FROM memoria.status shows each rollup''s state and last error.';
    END IF;
END $$;
COMMENT ON PROCEDURE memoria.run(text)
    IS 'Refresh in batches of memoria.batch_keys keys, committing between batches (for pg_cron)';

------------------------------------------------------------------------------
-- Backfill: fill a rollup slice by slice, one transaction per slice,
-- resumable from the last committed slice.
------------------------------------------------------------------------------

-- The first and last value of the source's time column (as timestamptz, read
-- in the session's time zone for timestamp and date columns).
CREATE OR REPLACE FUNCTION memoria_internal.source_range(name text, OUT lo timestamptz, OUT hi timestamptz)
AS 'MODULE_PATHNAME', 'memoria_source_range'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

-- Reads (next => NULL, finished => NULL) or records backfill progress.
CREATE OR REPLACE FUNCTION memoria_internal.backfill_state(name text, next timestamptz, progress real, finished boolean,
                                                started timestamptz, complete boolean,
                                                OUT resume_at timestamptz, OUT resume_started timestamptz)
AS 'MODULE_PATHNAME', 'memoria_backfill_state'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- A procedure with a SET clause cannot COMMIT, so this one has none and uses
-- qualified names only.  CALL it outside a transaction block.
-- The planner's estimate of the rows in a rollup's source (backfill's slices).
CREATE OR REPLACE FUNCTION memoria_internal.source_rows(name text) RETURNS float8
AS 'MODULE_PATHNAME', 'memoria_source_rows'
LANGUAGE C STABLE STRICT
SET search_path = pg_catalog, pg_temp;

-- slice NULL: slices of about SLICE_ROWS (10 million) source rows, by the
-- planner's estimate and the source's time range (one slice for a smaller
-- source: each slice reads its range of the source once).
CREATE OR REPLACE PROCEDURE memoria.backfill(name text, window_start timestamptz DEFAULT NULL,
                                  window_end timestamptz DEFAULT NULL, slice interval DEFAULT NULL)
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
    IF slice OPERATOR(pg_catalog.<=) interval '0' THEN
        RAISE EXCEPTION 'slice must be a positive interval' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'For example slice => ''1 month'' or ''7 days'', or NULL to size slices by the source''s rows.';
    END IF;
    IF EXISTS (SELECT 1 FROM memoria.citus_rollups c WHERE c.name OPERATOR(pg_catalog.=) backfill.name) THEN
        -- A rollup of a distributed table: each shard rollup fills on its node.
        PERFORM memoria_internal.citus_backfill(backfill.name, window_start, window_end);
        RETURN;
    END IF;
    SELECT r.lo, r.hi INTO src_lo, src_hi FROM memoria_internal.source_range(backfill.name) r;
    lo := coalesce(window_start, src_lo);
    hi := coalesce(window_end, src_hi OPERATOR(pg_catalog.+) interval '1 microsecond');
    IF lo IS NULL OR hi IS NULL OR lo OPERATOR(pg_catalog.>=) hi THEN
        -- Nothing to read: an empty source, or an empty window.
        PERFORM memoria_internal.backfill_state(backfill.name, NULL, 1, true, started,
                                                window_start IS NULL AND window_end IS NULL);
        COMMIT;
        RETURN;
    END IF;
    IF slice IS NULL THEN
        slice := greatest(interval '1 day',
                          (src_hi OPERATOR(pg_catalog.-) src_lo OPERATOR(pg_catalog.+) interval '1 microsecond')
                          OPERATOR(pg_catalog.*) (1e7::float8 OPERATOR(pg_catalog./)
                                                  greatest(memoria_internal.source_rows(backfill.name), 1e7::float8)));
        -- (Whole: the source fits one slice.)
        IF memoria_internal.source_rows(backfill.name) OPERATOR(pg_catalog.<=) 1e7 THEN
            slice := hi OPERATOR(pg_catalog.-) lo;
        END IF;
    END IF;
    cur := lo;
    SELECT * INTO state FROM memoria_internal.backfill_state(backfill.name, NULL, NULL, NULL, NULL, NULL);
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
        -- Frozen buckets are skipped: their raw rows may be gone.
        SELECT rw.rows_upserted INTO slice_rows FROM memoria.refresh_window(backfill.name, cur, nxt) rw;
        slices_done := slices_done OPERATOR(pg_catalog.+) 1;
        progress := (EXTRACT(epoch FROM nxt OPERATOR(pg_catalog.-) lo)
                     OPERATOR(pg_catalog./) EXTRACT(epoch FROM hi OPERATOR(pg_catalog.-) lo))::real;
        PERFORM memoria_internal.backfill_state(backfill.name, nxt, progress, false, started, false);
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
    PERFORM memoria_internal.backfill_state(backfill.name, NULL, 1, true, started,
                                            window_start IS NULL AND window_end IS NULL);
    COMMIT;
END $$;
COMMENT ON PROCEDURE memoria.backfill(text, timestamptz, timestamptz, interval)
    IS 'Fill a rollup slice by slice, one transaction per slice, resumable after a crash or cancel';

------------------------------------------------------------------------------
-- pg_cron (optional): a job named memoria:<rollup> that CALLs memoria.run.
------------------------------------------------------------------------------
-- A rollup's job name: memoria:<rollup>, or memoria:<rollup>@<database> when
-- pg_cron lives in another database (its job names are unique per role
-- across every database).
CREATE OR REPLACE FUNCTION memoria_internal.cron_job_name(name text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'memoria:' || name || CASE WHEN memoria_internal.cron_database() IS DISTINCT FROM current_database()
                                      THEN '@' || current_database() ELSE '' END
$$;

-- The command of a rollup's job: DO with one string literal (no dollar
-- quote a name could close).  After DROP EXTENSION memoria, a job in this
-- database removes itself; one run from another database says so.
CREATE OR REPLACE FUNCTION memoria_internal.cron_command(name text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'DO ' || quote_literal(format(
        'BEGIN IF to_regprocedure(''memoria.run(text)'') IS NOT NULL THEN CALL memoria.run(%L); '
        'ELSIF to_regclass(''cron.job'') IS NOT NULL THEN PERFORM cron.unschedule(%L); '
        'ELSE RAISE EXCEPTION ''memoria is not installed in database %%: remove pg_cron job %%'', '
        'current_database(), %L; END IF; END',
        name, memoria_internal.cron_job_name(name), memoria_internal.cron_job_name(name)))
$$;

-- A job name pg_cron can hold (its jobname is a name: 63 bytes).
CREATE OR REPLACE FUNCTION memoria_internal.check_cron_job_name(name text, argument text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF octet_length(memoria_internal.cron_job_name(name)) > 63 THEN
        RAISE EXCEPTION '%: pg_cron job name "%" is longer than pg_cron allows (63 bytes)',
            argument, memoria_internal.cron_job_name(name)
            USING ERRCODE = 'name_too_long',
                  HINT = 'Give the rollup a shorter name (memoria.alter_rollup(name, rename_to => ...)), or make the job '
                         'yourself with a name of your own: a job whose command is CALL memoria.run(''<rollup>'') '
                         'is the rollup''s too.';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION memoria.schedule(name text, schedule text) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM memoria.alter_rollup(schedule.name);  -- the rollup exists and is the caller's
    PERFORM memoria_internal.check_cron_job_name(schedule.name, 'name');
    RETURN memoria_internal.cron_call('schedule', ARRAY[memoria_internal.cron_job_name(schedule.name), schedule.schedule,
                                                        memoria_internal.cron_command(schedule.name)], 'now')::bigint;
END $$;
COMMENT ON FUNCTION memoria.schedule(text, text)
    IS 'Create or replace the pg_cron job memoria:<name> that refreshes the rollup (memoria:<name>@<database> when pg_cron lives in another database)';

CREATE OR REPLACE FUNCTION memoria.unschedule(name text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM memoria.alter_rollup(unschedule.name);
    RETURN memoria_internal.cron_call('unschedule', ARRAY[unschedule.name], 'now')::bigint > 0;
END $$;
COMMENT ON FUNCTION memoria.unschedule(text) IS 'Remove the pg_cron jobs of a rollup';

-- Whatever removes or renames a rollup (drop_rollup, alter_rollup, DROP
-- TABLE ... CASCADE, DROP SCHEMA ... CASCADE) removes or renames its pg_cron
-- jobs too: here in the same transaction, in pg_cron's own database when
-- this transaction commits.
CREATE OR REPLACE FUNCTION memoria_internal.follow_cron_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF memoria_internal.cron_database() IS NOT NULL THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM memoria_internal.cron_call('unschedule', ARRAY[OLD.name], 'at_commit');
        ELSIF NEW.name IS DISTINCT FROM OLD.name THEN
            IF EXISTS (SELECT 1 FROM memoria_internal.cron_jobs() j WHERE j.rollup = OLD.name) THEN
                PERFORM memoria_internal.check_cron_job_name(NEW.name, 'rename_to');
            END IF;
            PERFORM memoria_internal.cron_call('rename', ARRAY[OLD.name, NEW.name, memoria_internal.cron_command(NEW.name)],
                                               'at_commit');
        END IF;
    END IF;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION memoria_internal.follow_cron_job() FROM PUBLIC;
CREATE OR REPLACE TRIGGER follow_cron_job AFTER DELETE OR UPDATE OF name ON memoria.rollups
    FOR EACH ROW EXECUTE FUNCTION memoria_internal.follow_cron_job();

------------------------------------------------------------------------------
-- DDL hooks (C, src/ddl_guard.cpp).  After DDL on a rollup's source tree or
-- on a function its expressions call, the rollup must still fit (or the DDL
-- fails), and its capture triggers are brought in line with the source (new,
-- attached or detached partitions, a source that became a partition, trigger
-- modes).  DDL on a rollup table must leave what memoria writes in place.  A
-- dropped source, rollup table or dirty log takes its rollup along (DROP
-- TABLE ... CASCADE, DROP SCHEMA ... CASCADE); a dropped partition, or a
-- rewrite of the source, marks its rollups for a rebuild; a memoria trigger
-- cannot be dropped or renamed by hand.  After a restore, the hooks adopt
-- a rollup once its triggers are back.  Not SECURITY DEFINER: they switch to
-- the extension's owner only for memoria's own catalog and DDL.
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION memoria_internal.on_ddl_end() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'memoria_on_ddl_end'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria_internal.on_ddl_end() FROM PUBLIC;
CREATE EVENT TRIGGER memoria_ddl_end ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TRIGGER', 'ALTER TRIGGER', 'CREATE RULE',
                 'CREATE FUNCTION', 'ALTER FUNCTION', 'CREATE VIEW', 'ALTER VIEW')
    EXECUTE FUNCTION memoria_internal.on_ddl_end();

-- (No SET search_path: it resolves the names of the ALTER TABLE it runs
-- before as that command will; its own SQL pins its search_path.)
CREATE OR REPLACE FUNCTION memoria_internal.on_ddl_start() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'memoria_on_ddl_start'
LANGUAGE C;
REVOKE ALL ON FUNCTION memoria_internal.on_ddl_start() FROM PUBLIC;
CREATE EVENT TRIGGER memoria_ddl_start ON ddl_command_start
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'DROP EXTENSION')
    EXECUTE FUNCTION memoria_internal.on_ddl_start();

CREATE OR REPLACE FUNCTION memoria_internal.on_sql_drop() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'memoria_on_sql_drop'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria_internal.on_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER memoria_sql_drop ON sql_drop
    EXECUTE FUNCTION memoria_internal.on_sql_drop();

CREATE OR REPLACE FUNCTION memoria_internal.on_table_rewrite() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'memoria_on_table_rewrite'
LANGUAGE C
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria_internal.on_table_rewrite() FROM PUBLIC;
CREATE EVENT TRIGGER memoria_table_rewrite ON table_rewrite
    EXECUTE FUNCTION memoria_internal.on_table_rewrite();

------------------------------------------------------------------------------
-- The background worker pool (src/worker.cpp).
------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION memoria.workers(OUT database text, OUT state text, OUT since timestamptz,
                                           OUT next_due timestamptz, OUT pid int, OUT starts bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'memoria_workers'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION memoria.workers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION memoria.workers() TO pg_monitor;
COMMENT ON FUNCTION memoria.workers()
    IS 'The worker pool, cluster-wide: each database, its state (running, waiting, idle, no_memoria, unknown, disabled) and since when';

-- This database has new work for the pool (once the transaction commits).
CREATE OR REPLACE FUNCTION memoria_internal.wake_workers() RETURNS void
AS 'MODULE_PATHNAME', 'memoria_wake_workers'
LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION memoria_internal.wake_workers() FROM PUBLIC;
SELECT memoria_internal.wake_workers();  -- a database that just got memoria is visited at once

-- A rollup brought to this version's layout, or adopted after a restore:
-- its triggers, dependencies and grants (the update script calls it for
-- every rollup).
CREATE OR REPLACE FUNCTION memoria_internal.adopt(rollup_id int) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_adopt'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria_internal.adopt(int) FROM PUBLIC;

-- A rollup given the additive path (a delta log) if its measures allow it,
-- or its delta log made again for its measures (the update script calls it
-- for every rollup made before 0.7.0).
CREATE OR REPLACE FUNCTION memoria_internal.settle_delta_log(rollup_id int) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_settle_delta_log'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria_internal.settle_delta_log(int) FROM PUBLIC;
