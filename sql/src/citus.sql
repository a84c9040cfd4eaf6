
------------------------------------------------------------------------------
-- Rollups of Citus distributed tables: the co-located mode (src/citus.hpp).
-- The coordinator keeps each distributed rollup's definition here and fans
-- memoria's calls out to its shard rollups: one ordinary rollup per pair of
-- co-located shards (source shard, rollup table shard) on the node holding
-- them, made there when first needed.  Each node's call runs in that node's
-- own transaction (Citus' run_command_on_colocated_placements), as the
-- caller.  Without Citus none of this is ever called.
------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS memoria.citus_rollups (
    name       text PRIMARY KEY,
    source     regclass NOT NULL,   -- a hash-distributed table
    target     regclass NOT NULL,   -- the rollup table, co-located with it
    -- create_rollup's arguments, and the creator's search_path: every shard
    -- rollup is made from them.
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE memoria.citus_rollups IS 'memoria: rollups of Citus distributed tables (one shard rollup per shard group on its node)';
-- Written only by memoria (create_rollup_part, citus_forget);
-- each role reads the rows of the sources it may manage.
REVOKE ALL ON memoria.citus_rollups FROM PUBLIC;
GRANT SELECT ON memoria.citus_rollups TO PUBLIC;
ALTER TABLE memoria.citus_rollups ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS owners_read ON memoria.citus_rollups;
CREATE POLICY owners_read ON memoria.citus_rollups FOR SELECT
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = source), 'MEMBER')
           OR pg_catalog.pg_has_role('pg_monitor', 'MEMBER'));
SELECT pg_catalog.pg_extension_config_dump('memoria.citus_rollups', '');

CREATE OR REPLACE FUNCTION memoria_internal.create_rollup_part(
    name text, source regclass, time_column text, dimensions text[], measures text[], bucket interval,
    time_zone text, scope text[], filter text, invalidation text, updated_at_column text, safety_lag interval,
    target text, mode text)
RETURNS regclass
AS 'MODULE_PATHNAME', 'memoria_create_rollup_part'
LANGUAGE C VOLATILE CALLED ON NULL INPUT;
-- (No SET search_path: as create_rollup, the caller's resolves the
-- expressions.  Anyone may call it: it checks what create_rollup checks, and
-- a shard rollup writes only an existing table of the caller's.)

-- create_rollup_from: create_rollup_part with the arguments a distributed
-- rollup's definition recorded, its expressions resolved with the
-- search_path it recorded.  (Everything else is evaluated before that path
-- is set: whoever calls, no object of the creator's stands in for a
-- built-in one.)
CREATE OR REPLACE FUNCTION memoria_internal.create_rollup_from(name text, source regclass, definition jsonb,
                                                               target text, mode text)
RETURNS regclass
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    time_column text := definition->>'time_column';
    dimensions text[] := ARRAY(SELECT jsonb_array_elements_text(definition->'dimensions'));
    measures text[] := ARRAY(SELECT jsonb_array_elements_text(definition->'measures'));
    bucket interval := (definition->>'bucket')::interval;
    time_zone text := definition->>'time_zone';
    scope text[] := CASE WHEN jsonb_typeof(definition->'scope') = 'array'
                         THEN ARRAY(SELECT jsonb_array_elements_text(definition->'scope')) END;
    filter text := definition->>'filter';
    lag interval := interval '5 minutes';
    made regclass;
BEGIN
    PERFORM set_config('search_path', definition->>'search_path', true);
    made := memoria_internal.create_rollup_part(name, source, time_column, dimensions, measures, bucket, time_zone,
                                                scope, filter, 'trigger', NULL, lag, target, mode);
    RETURN made;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_settle_owner(name text)
RETURNS void AS 'MODULE_PATHNAME', 'memoria_citus_settle_owner'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION memoria_internal.citus_forget(name text)
RETURNS void AS 'MODULE_PATHNAME', 'memoria_citus_forget'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

-- citus_rollup: the distributed rollup `name` the caller may manage (the
-- C entry points call the functions below only for names that exist).
CREATE OR REPLACE FUNCTION memoria_internal.citus_rollup(name text) RETURNS memoria.citus_rollups
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE c memoria.citus_rollups;
BEGIN
    SELECT * INTO c FROM memoria.citus_rollups r WHERE r.name = citus_rollup.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'must be a member of the owner of rollup "%"', citus_rollup.name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Only the owner of the source table (or a member of its role) may manage its rollups.';
    END IF;
    RETURN c;
END $$;

-- ---------------------------------------------------------------------------
-- On the coordinator: create, refresh, verify, drop.
-- ---------------------------------------------------------------------------

-- citus_create_rollup: create_rollup for a Citus table (its arguments).  The
-- rollup table is made and checked as for any rollup, then distributed by
-- the source's distribution column, co-located with it (create_rollup_part,
-- mode 'table').  Its shard rollups are made by the first refresh or
-- backfill: Citus runs them in connections of their own, which cannot see
-- the shards of an uncommitted table.
CREATE OR REPLACE FUNCTION memoria_internal.citus_create_rollup(
    name text, source regclass, time_column text, dimensions text[], measures text[], bucket interval,
    time_zone text, scope text[], filter text, invalidation text, updated_at_column text, safety_lag interval,
    target text)
RETURNS regclass
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT AS $$
-- (No SET search_path: the caller's resolves and is recorded for the
-- expressions; every name below is qualified.)
DECLARE
    method "char";
    distribution_column text;
    rollup_table regclass;
BEGIN
    SELECT p.partmethod, pg_catalog.column_to_column_name(p.logicalrelid, p.partkey)
      INTO method, distribution_column
      FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) source;
    IF method IS DISTINCT FROM 'h' THEN
        RAISE EXCEPTION 'source % is a Citus table not distributed by hash', source
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'memoria rolls up a Citus table distributed by hash (create_distributed_table), '
                         'grouping by its distribution column; reference and citus-local tables are not supported.';
    END IF;
    IF NOT distribution_column OPERATOR(pg_catalog.=) ANY (COALESCE(scope, dimensions)) THEN
        RAISE EXCEPTION 'scope: the distribution column "%" of % must be a dimension of the rollup''s scope',
                        distribution_column, source
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'A rollup of a distributed table keeps each group on the node that holds its rows, so it '
                         'groups by the distribution column.  Rollups across shards are not supported yet.';
    END IF;
    IF COALESCE(invalidation, 'trigger') OPERATOR(pg_catalog.<>) 'trigger' THEN
        RAISE EXCEPTION 'invalidation: a rollup of a distributed table supports ''trigger'' only'
            USING ERRCODE = 'feature_not_supported', HINT = 'Leave invalidation at its default.';
    END IF;
    -- Checks every argument as create_rollup does, makes the table,
    -- distributes it co-located with the source and records the rollup.
    rollup_table := memoria_internal.create_rollup_part(name, source, time_column, dimensions, measures, bucket,
        time_zone, scope, filter, invalidation, updated_at_column, safety_lag, target, 'table');
    RETURN rollup_table;
END $$;

-- citus_command: a command for run_command_on_colocated_placements, made of
-- `template`, where {shard} stands for the shard rollup's name on the node:
-- made there first if `make`.  The placements' shard names come in as %L;
-- every other % is doubled (the command is a format() string).
CREATE OR REPLACE FUNCTION memoria_internal.citus_command(c memoria.citus_rollups, template text, make boolean)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT replace(replace(template, '%', '%%'), '{shard}',
                   CASE WHEN make
                        THEN format('memoria_internal.citus_shard(%%L, %%L, %s)',
                                    replace(quote_literal(c.definition::text), '%', '%%'))
                        ELSE 'memoria_internal.citus_existing_shard_rollup(%2$L)' END)
$$;

-- citus_check_locks: refuse to fan out from a transaction that holds more
-- than a read lock on the rollup's tables or their partitions (it wrote the
-- source, or made the rollup): the nodes' own transactions would wait for
-- it, and it for them.
CREATE OR REPLACE FUNCTION memoria_internal.citus_check_locks(c memoria.citus_rollups, what text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_locks l
               WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND l.mode <> 'AccessShareLock'
                 AND (l.relation IN (c.source, c.target)
                      OR l.relation IN (SELECT t.relid FROM pg_partition_tree(c.source) t
                                        UNION ALL SELECT t.relid FROM pg_partition_tree(c.target) t))) THEN
        RAISE EXCEPTION '% of rollup "%" cannot run in a transaction that wrote to its source or made it', what, c.name
            USING ERRCODE = 'active_sql_transaction',
                  HINT = 'It runs on each node in a transaction of its own, which would wait for this one: '
                         'commit first, then call it.';
    END IF;
END $$;

-- citus_validate: the distributed rollup's definition still holds for its
-- source as it is now (after DDL on it: the shard rollups are made from
-- it again after every shard move); ERROR otherwise.
CREATE OR REPLACE FUNCTION memoria_internal.citus_validate(name text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c memoria.citus_rollups := memoria_internal.citus_rollup(name);
    d jsonb := c.definition;
BEGIN
    PERFORM memoria_internal.create_rollup_from(c.name, c.source, d, c.target::text, 'validate');
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'this change would break rollup "%": %', c.name, SQLERRM
        USING ERRCODE = 'dependent_objects_still_exist',
              HINT = 'A rollup of a distributed table is made again from its definition on every shard move; '
                     'drop the rollup first (memoria.drop_rollup), change the table, then create the rollup again.';
END $$;

-- citus_placements: run_command_on_colocated_placements of
-- citus_command(c, template), in parallel, then one at a time if a node
-- answered "tuple concurrently updated".
CREATE OR REPLACE FUNCTION memoria_internal.citus_placements(c memoria.citus_rollups, template text)
RETURNS TABLE (nodename text, nodeport int, shardid1 bigint, shardid2 bigint, success boolean, result text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    command text := memoria_internal.citus_command(c, template, true);
    answers jsonb := (SELECT jsonb_agg(to_jsonb(x))
                      FROM run_command_on_colocated_placements(c.source, c.target, command) x);
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(answers) a
               WHERE NOT (a->>'success')::boolean AND a->>'result' LIKE '%tuple concurrently updated%') THEN
        RETURN QUERY SELECT * FROM run_command_on_colocated_placements(c.source, c.target, command, parallel => false);
    ELSE
        RETURN QUERY SELECT * FROM jsonb_to_recordset(COALESCE(answers, '[]'))
                     AS x(nodename text, nodeport int, shardid1 bigint, shardid2 bigint, success boolean, result text);
    END IF;
END $$;

-- citus_fan_out: run memoria's refresh or refresh_window on every shard
-- rollup (command: its row as JSON); one row for the distributed rollup:
-- the counts added up, the watermark the least of the shards' (NULL if one
-- has none), the worst status, the errors with their shards.
CREATE OR REPLACE FUNCTION memoria_internal.citus_fan_out(c memoria.citus_rollups, template text,
    OUT rollup text, OUT status text, OUT keys_refreshed bigint, OUT rows_upserted bigint,
    OUT rows_deleted bigint, OUT watermark timestamptz, OUT duration interval, OUT error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    started timestamptz := clock_timestamp();
    p record;
    o jsonb;
    shards int := 0;
    rank int := 0;                -- idle, ok, busy, error
    no_watermark boolean := false;
BEGIN
    rollup := c.name; keys_refreshed := 0; rows_upserted := 0; rows_deleted := 0; watermark := 'infinity';
    PERFORM memoria_internal.citus_settle_owner(c.name);
    BEGIN
        PERFORM memoria_internal.citus_check_locks(c, 'a refresh');
    EXCEPTION WHEN active_sql_transaction THEN
        status := 'error'; watermark := NULL; error := SQLERRM; duration := clock_timestamp() - started;
        RETURN;
    END;
    -- In parallel; again one at a time if shard rollups of one node ran
    -- into each other in the catalog (after REASSIGN OWNED, each follows
    -- its source's new owner at once): a refresh is safe to repeat.
    FOR p IN SELECT * FROM memoria_internal.citus_placements(c, template)
    LOOP
        shards := shards + 1;
        IF NOT p.success THEN
            rank := 3; no_watermark := true;
            error := concat_ws('; ', error, format('shard %s on %s:%s: %s', p.shardid2, p.nodename, p.nodeport, p.result));
            CONTINUE;
        END IF;
        o := p.result::jsonb;
        keys_refreshed := keys_refreshed + coalesce((o->>'keys_refreshed')::bigint, 0);
        rows_upserted := rows_upserted + coalesce((o->>'rows_upserted')::bigint, 0);
        rows_deleted := rows_deleted + coalesce((o->>'rows_deleted')::bigint, 0);
        IF o->>'watermark' IS NULL THEN no_watermark := true;
        ELSE watermark := least(watermark, (o->>'watermark')::timestamptz); END IF;
        rank := greatest(rank, CASE o->>'status' WHEN 'error' THEN 3 WHEN 'busy' THEN 2 WHEN 'ok' THEN 1 ELSE 0 END);
        IF o->>'error' IS NOT NULL THEN
            error := concat_ws('; ', error, format('shard %s on %s:%s: %s', p.shardid2, p.nodename, p.nodeport, o->>'error'));
        END IF;
    END LOOP;
    IF shards = 0 THEN
        rank := 3; no_watermark := true;
        error := format('no placement of %s and %s was found', c.source, c.target);
    END IF;
    IF no_watermark THEN watermark := NULL; END IF;
    status := (ARRAY['idle', 'ok', 'busy', 'error'])[rank + 1];
    duration := clock_timestamp() - started;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_refresh(name text, max_keys bigint)
RETURNS TABLE (rollup text, status text, keys_refreshed bigint, rows_upserted bigint,
               rows_deleted bigint, watermark timestamptz, duration interval, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE c memoria.citus_rollups;
BEGIN
    IF citus_refresh.name IS NOT NULL THEN PERFORM memoria_internal.citus_rollup(citus_refresh.name); END IF;
    FOR c IN SELECT * FROM memoria.citus_rollups r
             WHERE (citus_refresh.name IS NULL OR r.name = citus_refresh.name)
               AND pg_has_role((SELECT k.relowner FROM pg_class k WHERE k.oid = r.source), 'MEMBER')
             ORDER BY r.name
    LOOP
        -- One fan-out at a time per rollup (each shard rollup has its own lock too).
        IF NOT pg_try_advisory_xact_lock(1835363697, hashtext(c.name)) THEN
            RETURN QUERY SELECT c.name, 'busy'::text, 0::bigint, 0::bigint, 0::bigint, NULL::timestamptz,
                                '0'::interval, NULL::text;
            CONTINUE;
        END IF;
        RETURN QUERY SELECT * FROM memoria_internal.citus_fan_out(c, format(
            'SELECT pg_catalog.row_to_json(x)::text FROM memoria.refresh({shard}, %s) x',
            coalesce(max_keys::text, 'NULL')));
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_refresh_window(name text, window_start timestamptz,
    window_end timestamptz, include_frozen boolean,
    OUT rollup text, OUT status text, OUT keys_refreshed bigint, OUT rows_upserted bigint,
    OUT rows_deleted bigint, OUT watermark timestamptz, OUT duration interval, OUT error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE c memoria.citus_rollups := memoria_internal.citus_rollup(name);
BEGIN
    PERFORM pg_advisory_xact_lock(1835363697, hashtext(c.name));
    SELECT * INTO rollup, status, keys_refreshed, rows_upserted, rows_deleted, watermark, duration, error
    FROM memoria_internal.citus_fan_out(c, format(
        'SELECT pg_catalog.row_to_json(x)::text FROM memoria.refresh_window({shard}, %L, %L, %L) x',
        window_start, window_end, coalesce(include_frozen, false)));
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_verify(name text, window_start timestamptz,
    window_end timestamptz, include_frozen boolean)
RETURNS TABLE (bucket text, dimensions jsonb, rollup_values jsonb, source_values jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c memoria.citus_rollups := memoria_internal.citus_rollup(name);
    p record;
BEGIN
    FOR p IN SELECT * FROM run_command_on_colocated_placements(c.source, c.target,
        memoria_internal.citus_command(c, format(
            'SELECT COALESCE(pg_catalog.json_agg(v), ''[]'')::text FROM memoria.verify({shard}, %L, %L, %L) v',
            coalesce(window_start, '-infinity'), coalesce(window_end, 'infinity'), coalesce(include_frozen, false)),
            false))
    LOOP
        IF NOT p.success THEN
            RAISE EXCEPTION 'verify of rollup "%" failed on shard % (%:%): %', c.name, p.shardid2, p.nodename,
                            p.nodeport, p.result
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'A shard without a shard rollup gets one at the next memoria.refresh().';
        END IF;
        RETURN QUERY SELECT * FROM jsonb_to_recordset(p.result::jsonb)
                     AS x(bucket text, dimensions jsonb, rollup_values jsonb, source_values jsonb);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_drop_rollup(name text, drop_table boolean, cascade boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c memoria.citus_rollups := memoria_internal.citus_rollup(name);
    p record;
BEGIN
    PERFORM memoria_internal.citus_check_locks(c, 'drop_rollup');
    PERFORM pg_advisory_xact_lock(1835363697, hashtext(c.name));
    -- The shard rollups first (their triggers, logs and state on each node),
    -- in the nodes' own transactions: if this transaction then fails, the
    -- next refresh makes them again, from their source shards.
    -- One at a time: dropping a rollup may change its owner's grant on
    -- schema memoria_rollup, one catalog row for all of a node's.
    FOR p IN SELECT * FROM run_command_on_colocated_placements(c.source, c.target,
                 'SELECT memoria_internal.citus_drop_shard_rollup(%2$L)', parallel => false)
    LOOP
        IF NOT p.success THEN
            RAISE EXCEPTION 'could not drop the shard rollup of shard % on %:%: %', p.shardid2, p.nodename,
                            p.nodeport, p.result
                USING ERRCODE = 'object_in_use', HINT = 'Nothing was dropped on the coordinator; try again.';
        END IF;
    END LOOP;
    PERFORM memoria_internal.citus_forget(c.name);
    IF drop_table THEN EXECUTE format('DROP TABLE %s', c.target); END IF;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_backfill(name text, window_start timestamptz,
                                                           window_end timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE r record;
BEGIN
    SELECT * INTO r FROM memoria_internal.citus_refresh_window(name, coalesce(window_start, '-infinity'),
                                                               coalesce(window_end, 'infinity'), false);
    IF r.status = 'error' THEN
        RAISE EXCEPTION 'backfill of rollup "%" failed: %', name, r.error
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Fix the cause, then call it again.';
    END IF;
    RAISE NOTICE 'rollup "%": every shard backfilled (% keys)', name, r.keys_refreshed;
END $$;

-- citus_status: each distributed rollup the caller may see (or the one
-- named), from its shard rollups' state on their nodes.
CREATE OR REPLACE FUNCTION memoria_internal.citus_status(name text DEFAULT NULL)
RETURNS TABLE (rollup text, source regclass, target regclass, shard_groups int, shard_rollups int,
               watermark timestamptz, lag interval, pending_keys bigint, needs_backfill boolean,
               state text, errors text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c memoria.citus_rollups;
    p record;
    o jsonb;
    no_watermark boolean;
BEGIN
    FOR c IN SELECT * FROM memoria.citus_rollups r WHERE citus_status.name IS NULL OR r.name = citus_status.name
             ORDER BY r.name LOOP
        rollup := c.name; source := c.source; target := c.target;
        shard_groups := 0; shard_rollups := 0; watermark := 'infinity'; pending_keys := 0;
        needs_backfill := false; errors := NULL; no_watermark := false; state := 'idle';
        FOR p IN SELECT * FROM run_command_on_colocated_placements(c.source, c.target,
            'SELECT pg_catalog.row_to_json(s)::text FROM memoria.status s
             WHERE s.target = memoria_internal.citus_regclass(%2$L)')
        LOOP
            shard_groups := shard_groups + 1;
            IF NOT p.success OR coalesce(p.result, '') = '' THEN
                no_watermark := true; needs_backfill := true;
                IF NOT p.success THEN
                    errors := concat_ws('; ', errors, format('shard %s on %s:%s: %s', p.shardid2, p.nodename,
                                                             p.nodeport, p.result));
                END IF;
                CONTINUE;
            END IF;
            o := p.result::jsonb;
            shard_rollups := shard_rollups + 1;
            pending_keys := pending_keys + coalesce((o->>'pending_keys')::bigint, 0);
            needs_backfill := needs_backfill OR (o->>'needs_backfill')::boolean;
            IF o->>'watermark' IS NULL THEN no_watermark := true;
            ELSE watermark := least(watermark, (o->>'watermark')::timestamptz); END IF;
            IF o->>'state' IN ('error', 'capture_disabled') THEN
                state := o->>'state';
                errors := concat_ws('; ', errors, format('shard %s on %s:%s: %s', p.shardid2, p.nodename,
                                                         p.nodeport, coalesce(o->>'last_error', o->>'state')));
            ELSIF o->>'state' = 'refreshing' AND state = 'idle' THEN state := 'refreshing';
            END IF;
        END LOOP;
        IF shard_groups = 0 OR no_watermark THEN watermark := NULL; END IF;
        IF state = 'idle' AND needs_backfill THEN state := 'needs_backfill'; END IF;
        IF errors IS NOT NULL AND state NOT IN ('error', 'capture_disabled') THEN state := 'error'; END IF;
        lag := clock_timestamp() - watermark;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE OR REPLACE VIEW memoria.citus_status AS SELECT * FROM memoria_internal.citus_status();
GRANT SELECT ON memoria.citus_status TO PUBLIC;
COMMENT ON VIEW memoria.citus_status IS 'memoria: each rollup of a Citus distributed table, from its shard rollups on the nodes';

-- ---------------------------------------------------------------------------
-- On the node holding a pair of co-located shards.
-- ---------------------------------------------------------------------------

-- citus_regclass: a shard's name as Citus gives it (shard_name(): unqualified
-- in schema public) as a regclass.
CREATE OR REPLACE FUNCTION memoria_internal.citus_regclass(shard text) RETURNS regclass
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT (CASE WHEN cardinality(parse_ident(shard)) = 1 THEN 'public.' || shard ELSE shard END)::regclass
$$;

-- citus_shard_rollup: the name of the shard rollup writing target_shard
-- (NULL: none yet).
CREATE OR REPLACE FUNCTION memoria_internal.citus_shard_rollup(target_shard text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT i.rollup FROM memoria.rollups_info i WHERE i.target = memoria_internal.citus_regclass(target_shard)
$$;

-- citus_existing_shard_rollup: citus_shard_rollup, or an ERROR saying so.
CREATE OR REPLACE FUNCTION memoria_internal.citus_existing_shard_rollup(target_shard text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE shard_rollup text := memoria_internal.citus_shard_rollup(target_shard);
BEGIN
    IF shard_rollup IS NULL THEN
        RAISE EXCEPTION 'shard % has no shard rollup yet (a new rollup, or a shard moved or split)', target_shard
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN shard_rollup;
END $$;

-- citus_shard: the shard rollup of (source_shard, target_shard), made now if
-- missing, from the distributed rollup's definition: a new rollup, or shards
-- that moved or split (whatever keys they had pending stayed behind with
-- their old node's log).  Either way it is filled again from its source
-- shard before anything reads its watermark.  It is made as the rollup
-- table's owner (who made the distributed rollup), whoever refreshes; named
-- after the distributed rollup and its table shard's id (short enough for
-- any name, unique on the node).
CREATE OR REPLACE FUNCTION memoria_internal.citus_shard(source_shard text, target_shard text, definition jsonb)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    shard_rollup text := memoria_internal.citus_shard_rollup(target_shard);
    src regclass := memoria_internal.citus_regclass(source_shard);
    tgt regclass := memoria_internal.citus_regclass(target_shard);
    d jsonb := definition;
    prefix text := d->>'name';
    owner text;
    target_name text := tgt::text;  -- qualified: under this function's search_path
BEGIN
    IF shard_rollup IS NOT NULL THEN RETURN shard_rollup; END IF;
    WHILE octet_length(prefix) > 40 LOOP prefix := left(prefix, -1); END LOOP;
    shard_rollup := prefix || '_' || substring((SELECT k.relname FROM pg_class k WHERE k.oid = tgt) FROM '_([0-9]+)$');
    owner := (SELECT pg_get_userbyid(k.relowner) FROM pg_class k WHERE k.oid = tgt);
    IF owner <> current_user THEN PERFORM set_config('role', owner, true); END IF;
    -- memoria's tables and triggers of a shard are this node's own.
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    -- (A name taken by a rollup of this node's: another one.)
    FOR attempt IN 1 .. 5 LOOP
        BEGIN
            PERFORM memoria_internal.create_rollup_from(shard_rollup, src, d, target_name, 'shard');
            EXIT;
        EXCEPTION WHEN duplicate_object THEN
            IF attempt = 5 THEN RAISE; END IF;
            shard_rollup := shard_rollup || '_' || substr(md5(random()::text), 1, 6);
        END;
    END LOOP;
    PERFORM memoria.refresh_window(shard_rollup, '-infinity', 'infinity');
    RETURN shard_rollup;
END $$;

-- citus_drop_shard_rollup: drop the shard rollup writing target_shard, if any
-- (the shard itself stays).
CREATE OR REPLACE FUNCTION memoria_internal.citus_drop_shard_rollup(target_shard text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE shard_rollup text := memoria_internal.citus_shard_rollup(target_shard);
BEGIN
    IF shard_rollup IS NULL THEN RETURN; END IF;
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
    PERFORM memoria.drop_rollup(shard_rollup, drop_table => false);
END $$;
