-- memoria 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION memoria UPDATE" to load this file. \quit

-- invalidation => 'updated_at': how far the updated_at column has been scanned.
ALTER TABLE memoria.rollup_state ADD COLUMN scanned_through timestamptz;

-- After an ALTER TABLE of a rollup's source: ERROR unless the rollup still
-- fits it (columns kept with their types, measures and filter still valid).
CREATE FUNCTION memoria._check_rollup(name text) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_check_rollup'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION memoria._check_rollup(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION memoria._on_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r memoria.rollups;
    trig text;
    def text;
    rel oid;
    new_trigger oid;
BEGIN
    -- ALTER TABLE of a source: the rollup must still fit it, or the ALTER fails.
    IF tg_tag = 'ALTER TABLE' THEN
        PERFORM memoria._check_rollup(ro.name) FROM memoria.rollups ro
        WHERE ro.source IN (SELECT c.objid FROM pg_event_trigger_ddl_commands() c
                            WHERE c.classid = 'pg_class'::regclass);
    END IF;
    FOR r IN
        SELECT DISTINCT ro.* FROM memoria.rollups ro
        JOIN pg_event_trigger_ddl_commands() c ON c.classid = 'pg_class'::regclass
        WHERE memoria._is_partitioned(ro.source)
          AND (c.objid = ro.source OR ro.source IN (SELECT relid FROM pg_partition_ancestors(c.objid)))
    LOOP
        trig := 'zz_memoria_truncate_' || r.id;
        -- New partitions (created or attached): the TRUNCATE trigger, and
        -- their rows' keys (none for a new empty partition).
        FOR rel IN
            SELECT t.relid FROM pg_partition_tree(r.source) t
            WHERE t.relid <> r.source
              AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = t.relid AND tgname = trig)
        LOOP
            SELECT substring(pg_get_triggerdef(oid) FROM 'EXECUTE FUNCTION .*$') INTO def
            FROM pg_trigger WHERE tgrelid = r.source AND tgname = trig;
            EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT %s', trig, rel::regclass, def);
            SELECT oid INTO new_trigger FROM pg_trigger WHERE tgrelid = rel AND tgname = trig;
            PERFORM memoria._adopt_trigger(new_trigger, r.target);
            PERFORM memoria._dirty_all_keys(r.id, rel::regclass);
        END LOOP;
        -- Detached partitions: their rows left the source.
        FOR rel IN
            SELECT tgrelid FROM pg_trigger
            WHERE tgname = trig AND tgrelid <> r.source
              AND tgrelid NOT IN (SELECT relid FROM pg_partition_tree(r.source))
        LOOP
            PERFORM memoria._dirty_all_keys(r.id, rel::regclass);
            EXECUTE format('DROP TRIGGER %I ON %s', trig, rel::regclass);
        END LOOP;
    END LOOP;
END $$;

-- An ALTER TABLE that rewrites a source (ALTER COLUMN TYPE ... USING ...)
-- changes rows without firing row triggers: rebuild its rollups.
CREATE FUNCTION memoria._on_table_rewrite() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel oid := pg_event_trigger_table_rewrite_oid();
    log regclass;
BEGIN
    FOR log IN
        SELECT ro.dirty_log::regclass FROM memoria.rollups ro
        WHERE ro.source = rel OR ro.source IN (SELECT relid FROM pg_partition_ancestors(rel))
    LOOP
        EXECUTE format('INSERT INTO %s (bucket) VALUES (NULL)', log);
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION memoria._on_table_rewrite() FROM PUBLIC;

CREATE EVENT TRIGGER memoria_table_rewrite ON table_rewrite
    EXECUTE FUNCTION memoria._on_table_rewrite();

-- memoria.status failed for roles other than superusers (no EXECUTE on this
-- SECURITY DEFINER helper); pg_cron's row security is the right filter.
-- Whether pg_cron has a job memoria:<name> that the caller can see (pg_cron's
-- row security shows each role its own jobs).  pg_cron is optional, so it is
-- looked up late.  Not SECURITY DEFINER: memoria.status calls it for anyone.
CREATE OR REPLACE FUNCTION memoria._cron_job_exists(rollup_name text) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE found boolean;
BEGIN
    IF to_regclass('cron.job') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM cron.job WHERE jobname = $1)'
        INTO found USING 'memoria:' || rollup_name;
    RETURN found;
END $$;
GRANT EXECUTE ON FUNCTION memoria._cron_job_exists(text) TO PUBLIC;


-- backfill's progress NOTICE also says how many rollup rows each slice wrote
-- (memoriactl shows rows per second).
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
        RAISE NOTICE 'memoria.backfill %: resuming at %', backfill.name, cur;
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
        RAISE NOTICE 'memoria.backfill %: slice % of %, [%, %) done, % %%, % rows, ETA %', backfill.name,
            slices_done, slices_total, cur, nxt, pg_catalog.round((progress * 100)::numeric, 1), slice_rows,
            pg_catalog.date_trunc('second', (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) run_started)
                OPERATOR(pg_catalog.*) ((slices_total OPERATOR(pg_catalog.-) slices_done)::float8
                                        OPERATOR(pg_catalog./) slices_done));
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
