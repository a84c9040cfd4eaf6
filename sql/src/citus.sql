
------------------------------------------------------------------------------
-- Rollups of Citus distributed tables: the co-located mode (src/citus.hpp).
-- The coordinator keeps each distributed rollup's definition here and fans
-- memoria's calls out to its shard rollups: one ordinary rollup per pair of
-- co-located shards (source shard, rollup table shard) on the node holding
-- them, made there when first needed.  Each node's call runs in that node's
-- own transaction (Citus' master_run_on_worker: citus_run_by_node), as the
-- caller.  Without Citus none of this is ever called.
------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS memoria.citus_rollups (
    name       text PRIMARY KEY,
    source     regclass NOT NULL,   -- a hash-distributed table
    target     regclass NOT NULL,   -- the rollup table, co-located with it
    -- create_rollup's arguments, and the creator's search_path: every shard
    -- rollup is made from them.
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The partial mode (a rollup not grouped by the distribution column):
    -- `target` holds each shard's partial rows; rollup_table, on the
    -- coordinator, their combination; outbox, co-located with the source,
    -- the buckets whose partial rows changed since the last combination.
    rollup_table regclass,
    outbox     regclass,
    watermark  timestamptz,         -- the partial mode: the rollup table's, at its last combination
    -- The end of the last refresh from the coordinator (the coordinator's
    -- background worker refreshes it again a refresh_interval later), and
    -- what failed in it (memoria.citus_status shows it).
    last_refresh_at timestamptz,
    last_error text
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

-- The rollups of reference and citus-local tables (of their placement on
-- this node, kept in memoria.rollups as any other): their table, whose
-- drop (with CASCADE, as Citus drops placements) is refused like a
-- distributed rollup's source.
CREATE TABLE IF NOT EXISTS memoria.citus_placements (
    rollup_id int PRIMARY KEY,        -- memoria.rollups.id
    source    regclass NOT NULL       -- the reference or citus-local table
);
REVOKE ALL ON memoria.citus_placements FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('memoria.citus_placements', '');
-- pg_dump does not see Citus' shards, so a rollup of one would not restore
-- (and its row would fail the whole COPY of the catalog): a dump leaves
-- rollups of placements out.  Their tables are dumped, as plain tables.
SELECT pg_catalog.pg_extension_config_dump('memoria.rollups',
    'WHERE id NOT IN (SELECT p.rollup_id FROM memoria.citus_placements p)');
SELECT pg_catalog.pg_extension_config_dump('memoria.rollup_state',
    'WHERE rollup_id NOT IN (SELECT p.rollup_id FROM memoria.citus_placements p)');

CREATE OR REPLACE FUNCTION memoria_internal.citus_record_placement(name text, source regclass) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_citus_record_placement'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

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

CREATE OR REPLACE FUNCTION memoria_internal.citus_follow_source(name text)
RETURNS boolean AS 'MODULE_PATHNAME', 'memoria_citus_follow_source'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

-- citus_unplaced: why rollup c has no shard groups (problem), or NULL; and
-- whether its next refresh mends it (follows).  pg_dump sees a distributed
-- table as a plain one: after a restore the source and the rollup's own
-- tables are plain tables.  Once the source is distributed again by the
-- same column, the next refresh distributes the rest with it
-- (citus_follow_source).
CREATE OR REPLACE FUNCTION memoria_internal.citus_unplaced(c memoria.citus_rollups, OUT problem text,
                                                           OUT follows boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    source_column text;
    source_colocation int;
    made_by text := coalesce(c.definition->'partial'->>'column', c.definition->>'distributed_by');
    below text;
    misplaced regclass;
BEGIN
    follows := false;
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        problem := 'Citus is not installed here (restored from a coordinator''s dump?): drop the rollup '
                   '(memoria.drop_rollup) and create it again';
        RETURN;
    END IF;
    SELECT column_to_column_name(d.logicalrelid, d.partkey), d.colocationid INTO source_column, source_colocation
    FROM pg_dist_partition d WHERE d.logicalrelid = c.source AND d.partmethod = 'h';
    IF source_column IS NULL THEN
        SELECT r.name INTO below FROM memoria.citus_rollups r WHERE c.source IN (r.target, r.rollup_table);
        problem := CASE WHEN below IS NOT NULL THEN
            format('its source %s is the table of rollup "%s" and is not distributed (restored from a dump?): it '
                   'follows that rollup''s source once that is distributed again', c.source, below)
        ELSE
            format('its source %s is not a hash-distributed table (restored from a dump?): distribute it again with '
                   'create_distributed_table()%s, and the next refresh distributes the rollup''s tables with it and '
                   'recomputes them', c.source, coalesce(format(' by column %I', made_by), ''))
        END;
        RETURN;
    END IF;
    IF made_by IS NOT NULL AND made_by <> source_column THEN
        problem := format('its source %s is distributed by column %I, not by %I as when the rollup was made: drop '
                          'the rollup (memoria.drop_rollup) and create it again', c.source, source_column, made_by);
        RETURN;
    END IF;
    SELECT t INTO misplaced FROM unnest(ARRAY[c.target, c.outbox]) t JOIN pg_dist_partition d ON d.logicalrelid = t
    WHERE d.colocationid IS DISTINCT FROM source_colocation LIMIT 1;
    IF misplaced IS NOT NULL THEN
        problem := format('its table %s is distributed but not co-located with its source %s: drop the rollup '
                          '(memoria.drop_rollup) and create it again', misplaced, c.source);
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(ARRAY[c.target, c.outbox]) t
               WHERE t IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_dist_partition d WHERE d.logicalrelid = t)) THEN
        problem := format('its table %s is not distributed (restored from a dump?): the next refresh distributes it '
                          'with its source and recomputes it', c.target);
        follows := true;
    END IF;
END $$;

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
    IF method OPERATOR(pg_catalog.=) 'n' THEN
        -- A reference or citus-local table: every write reaches its
        -- placement on this node (the coordinator) in the writer's
        -- transaction, so an ordinary rollup of that placement, kept here,
        -- sees them all.
        RETURN memoria_internal.citus_create_placement_rollup(name, source, time_column, dimensions, measures,
            bucket, time_zone, scope, filter, invalidation, updated_at_column, safety_lag, target);
    END IF;
    IF method IS DISTINCT FROM 'h' THEN
        RAISE EXCEPTION 'source % is a Citus table not distributed by hash', source
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'memoria rolls up hash-distributed, reference and citus-local tables.';
    END IF;
    IF COALESCE(invalidation, 'trigger') OPERATOR(pg_catalog.<>) 'trigger' THEN
        RAISE EXCEPTION 'invalidation: a rollup of a distributed table supports ''trigger'' only'
            USING ERRCODE = 'feature_not_supported', HINT = 'Leave invalidation at its default.';
    END IF;
    IF NOT distribution_column OPERATOR(pg_catalog.=) ANY (dimensions) THEN
        -- Not grouped by the distribution column: the partial mode.
        RETURN memoria_internal.citus_create_partial_rollup(name, source, distribution_column, time_column,
            dimensions, measures, bucket, time_zone, scope, filter, invalidation, target);
    END IF;
    IF NOT distribution_column OPERATOR(pg_catalog.=) ANY (COALESCE(scope, dimensions)) THEN
        RAISE EXCEPTION 'scope: the distribution column "%" of % must be a dimension of the rollup''s scope',
                        distribution_column, source
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Add it to the scope, or leave it out of the dimensions: a rollup that does not group by '
                         'it combines each shard''s partial rows on the coordinator.';
    END IF;
    -- Checks every argument as create_rollup does, makes the table,
    -- distributes it co-located with the source and records the rollup.
    rollup_table := memoria_internal.create_rollup_part(name, source, time_column, dimensions, measures, bucket,
        time_zone, scope, filter, invalidation, updated_at_column, safety_lag, target, 'table');
    RETURN rollup_table;
END $$;

-- citus_create_placement_rollup: citus_create_rollup for a reference or
-- citus-local table: an ordinary rollup (memoria.rollups) of its placement
-- on this node, named and kept as any other; its source shows as that
-- placement (the shard table).
CREATE OR REPLACE FUNCTION memoria_internal.citus_create_placement_rollup(
    name text, source regclass, time_column text, dimensions text[], measures text[], bucket interval,
    time_zone text, scope text[], filter text, invalidation text, updated_at_column text, safety_lag interval,
    target text)
RETURNS regclass
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT AS $$
-- (No SET search_path, as citus_create_rollup.)
DECLARE
    placement text;
    propagation text := pg_catalog.current_setting('citus.enable_ddl_propagation');
    made regclass;
BEGIN
    SELECT pg_catalog.shard_name(source, s.shardid) INTO placement
      FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_placement p ON p.shardid OPERATOR(pg_catalog.=) s.shardid
     WHERE s.logicalrelid OPERATOR(pg_catalog.=) source
       AND p.groupid OPERATOR(pg_catalog.=) (SELECT g.groupid FROM pg_catalog.pg_dist_local_group g);
    IF placement IS NULL THEN
        RAISE EXCEPTION 'source %: this node holds no placement of it', source
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Create the rollup on the coordinator, registered with citus_set_coordinator_host(), '
                         'which holds a copy of every reference table.';
    END IF;
    -- (memoria's triggers on the placement are this node's own.)
    PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', 'off', true);
    made := memoria.create_rollup(name, memoria_internal.citus_regclass(placement), time_column, dimensions, measures,
                                  bucket, time_zone, scope, filter, invalidation, updated_at_column, safety_lag, target);
    PERFORM pg_catalog.set_config('citus.enable_ddl_propagation', propagation, true);
    PERFORM memoria_internal.citus_record_placement(name, source);
    RETURN made;
END $$;

-- citus_create_partial_rollup: citus_create_rollup for a rollup that does
-- not group by the distribution column (the partial mode, src/citus.hpp).
-- Makes three tables, all the source owner's:
--   <table>_partials: distributed co-located with the source, a distributed
--     rollup grouped by the dimensions plus the distribution column as a
--     NULL expression: each shard rollup keeps its shard's partial rows;
--   <table>_changes: distributed co-located too, where a shard's partial
--     rows log their buckets as they change (citus_shard);
--   <table> (the rollup table), on the coordinator: the partial rows
--     combined (citus_combine), by every refresh on the coordinator.
CREATE OR REPLACE FUNCTION memoria_internal.citus_create_partial_rollup(
    name text, source regclass, distribution_column text, time_column text, dimensions text[], measures text[],
    bucket interval, time_zone text, scope text[], filter text, invalidation text, target text)
RETURNS regclass
LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT AS $$
-- (No SET search_path, as citus_create_rollup.)
DECLARE
    combine text[] := memoria_internal.measure_combiners(source, measures);
    parts text[];
    schema_name text;
    table_name text;
    stem text;
    partials regclass;
    rollup_table regclass;
    changes regclass;
    owner text := (SELECT pg_catalog.pg_get_userbyid(k.relowner) FROM pg_catalog.pg_class k
                   WHERE k.oid OPERATOR(pg_catalog.=) source);
    distribution_type text;
    columns text;
    keys text;
BEGIN
    FOR i IN 1 .. pg_catalog.cardinality(measures) LOOP
        IF combine[i] IS NULL THEN
            RAISE EXCEPTION 'measures[%] (%): a rollup of a distributed table that does not group by its distribution '
                            'column "%" needs measures whose per-shard values combine', i, measures[i], distribution_column
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Use count, sum (of integers, numeric or interval), min, max, bool_and or bool_or; '
                             'for an average keep sum and count.  Or group by the distribution column.';
        END IF;
    END LOOP;
    -- (Each shard's partial rows hold a value of the shard's in it.)
    PERFORM memoria_internal.citus_shard_value(source, distribution_column,
        (SELECT min(s.shardid) FROM pg_catalog.pg_dist_shard s WHERE s.logicalrelid OPERATOR(pg_catalog.=) source));
    -- The rollup table's name; the other two are named after it.
    IF target IS NULL THEN
        schema_name := 'memoria_rollup'; table_name := name;
    ELSE
        parts := pg_catalog.parse_ident(target);
        IF pg_catalog.cardinality(parts) = 1 THEN schema_name := pg_catalog.current_schema(); table_name := parts[1];
        ELSE schema_name := parts[pg_catalog.cardinality(parts) - 1]; table_name := parts[pg_catalog.cardinality(parts)];
        END IF;
    END IF;
    stem := table_name;
    -- (Short enough that Citus' shard names of the tables named after it
    -- stay under 64 bytes.)
    WHILE pg_catalog.octet_length(stem) > 38 LOOP stem := pg_catalog.left(stem, -1); END LOOP;
    -- (With its type modifier: the partials' column must have the type the
    -- shard rollups write, varchar(20) as varchar(20).)
    SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) INTO distribution_type
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid OPERATOR(pg_catalog.=) source AND a.attname OPERATOR(pg_catalog.=) distribution_column;
    partials := memoria_internal.create_rollup_part(name, source, time_column,
        dimensions OPERATOR(pg_catalog.||) pg_catalog.format('NULL::%s AS %I', distribution_type, distribution_column),
        measures, bucket, time_zone, scope, filter, invalidation, NULL, interval '5 minutes',
        pg_catalog.format('%I.%I', schema_name, stem OPERATOR(pg_catalog.||) '_partials'), 'table');
    -- The rollup table: the partials' columns but the distribution column,
    -- one row per bucket and dimensions.
    SELECT pg_catalog.string_agg(pg_catalog.format('%I %s%s', a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
                                 CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) t.typcollation
                                      THEN ' COLLATE ' OPERATOR(pg_catalog.||) a.attcollation::regcollation::text END),
                                 ', ' ORDER BY a.attnum),
           pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
             FILTER (WHERE a.attnum OPERATOR(pg_catalog.<=) (1 OPERATOR(pg_catalog.+) pg_catalog.cardinality(dimensions)))
      INTO columns, keys
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
     WHERE a.attrelid OPERATOR(pg_catalog.=) partials AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
       AND a.attname OPERATOR(pg_catalog.<>) distribution_column;
    EXECUTE pg_catalog.format('CREATE TABLE %I.%I (%s, UNIQUE NULLS NOT DISTINCT (%s)) WITH (fillfactor = 80)',
                              schema_name, table_name, columns, keys);
    rollup_table := pg_catalog.format('%I.%I', schema_name, table_name)::regclass;
    EXECUTE pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', rollup_table);
    IF pg_catalog.cardinality(dimensions) OPERATOR(pg_catalog.>) 0 THEN
        EXECUTE pg_catalog.format('CREATE INDEX ON %s (%I, bucket)', rollup_table,
                                  (SELECT a.attname FROM pg_catalog.pg_attribute a
                                   WHERE a.attrelid OPERATOR(pg_catalog.=) rollup_table AND a.attnum = 2));
    END IF;
    EXECUTE pg_catalog.format('CREATE TABLE %I.%I (bucket %s, %I %s)', schema_name, stem OPERATOR(pg_catalog.||) '_changes',
                              (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
                               WHERE a.attrelid OPERATOR(pg_catalog.=) partials AND a.attnum = 1),
                              distribution_column, distribution_type);
    changes := pg_catalog.format('%I.%I', schema_name, stem OPERATOR(pg_catalog.||) '_changes')::regclass;
    -- (Citus moves shards by logical replication, which needs it for deletes.)
    EXECUTE pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', changes);
    -- Only memoria writes the rollup table (citus_as_owner passes the guard).
    EXECUTE pg_catalog.format('CREATE TRIGGER zz_memoria_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                              'FOR EACH STATEMENT EXECUTE FUNCTION memoria_internal.guard_rollup()', rollup_table);
    IF owner OPERATOR(pg_catalog.<>) CURRENT_USER THEN
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %I', rollup_table, owner);
        EXECUTE pg_catalog.format('ALTER TABLE %s OWNER TO %I', changes, owner);
    END IF;
    -- Distributes the changes table and records both.
    PERFORM memoria_internal.citus_record_partial(name, rollup_table, changes, combine);
    RETURN rollup_table;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.measure_combiners(source regclass, measures text[]) RETURNS text[]
AS 'MODULE_PATHNAME', 'memoria_measure_combiners'
LANGUAGE C VOLATILE;

CREATE OR REPLACE FUNCTION memoria_internal.citus_record_partial(name text, rollup_table regclass, outbox regclass,
                                                                 combine text[]) RETURNS void
AS 'MODULE_PATHNAME', 'memoria_citus_record_partial'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

-- citus_grant_rollup_schema: on a node, CREATE on memoria_rollup for `role`
-- if it owns a table there (a distributed rollup table's shell), as on the
-- coordinator; whether it has it now.  (Anyone may ask: it gives nothing
-- that owning such a table does not already call for.)
CREATE OR REPLACE FUNCTION memoria_internal.citus_grant_rollup_schema(role text) RETURNS boolean
AS 'MODULE_PATHNAME', 'memoria_citus_grant_rollup_schema'
LANGUAGE C VOLATILE STRICT
SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION memoria_internal.citus_refreshed(name text, watermark timestamptz, error text)
RETURNS void
AS 'MODULE_PATHNAME', 'memoria_citus_refreshed'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

-- citus_combined_rows: a query of the partial mode's rollup table's rows
-- (for the buckets `condition` selects) from the partials.
CREATE OR REPLACE FUNCTION memoria_internal.citus_combined_rows(c memoria.citus_rollups, condition text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    nm int := cardinality(ARRAY(SELECT jsonb_array_elements_text(c.definition->'partial'->'combine')));
    cols text[];
    types text[];
    nk int;
BEGIN
    SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum), array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
      INTO cols, types
      FROM pg_attribute a WHERE a.attrelid = c.rollup_table AND a.attnum > 0 AND NOT a.attisdropped;
    nk := cardinality(cols) - nm;
    RETURN format('SELECT %s, %s FROM %s WHERE %s GROUP BY %s',
        array_to_string(cols[1:nk], ', '),
        (SELECT string_agg(format('CAST(pg_catalog.%s(%s) AS %s) AS %s',
                                  CASE WHEN k.f IN ('sum', 'min', 'max', 'bool_and', 'bool_or') THEN k.f END,
                                  cols[nk + k.i], types[nk + k.i], cols[nk + k.i]), ', ' ORDER BY k.i)
           FROM jsonb_array_elements_text(c.definition->'partial'->'combine') WITH ORDINALITY AS k(f, i)),
        c.target, condition, array_to_string(cols[1:nk], ', '));
END $$;

-- citus_combine: the partial mode's rollup table, made again for the
-- buckets whose partial rows changed (claimed from the changes table in
-- this transaction: Citus commits both on every node or on none), and for
-- every bucket that overlaps [window_start, window_end) if given (a
-- refresh_window or backfill: from the partial rows alone, whatever the
-- table holds); the rows written and deleted.  A NULL bucket claimed means
-- every bucket.  As the table's owner (citus_as_owner).
CREATE OR REPLACE FUNCTION memoria_internal.citus_combine(c memoria.citus_rollups, window_start timestamptz,
                                                          window_end timestamptz,
                                                          OUT upserted bigint, OUT deleted bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    claimed jsonb;
    nm int := cardinality(ARRAY(SELECT jsonb_array_elements_text(c.definition->'partial'->'combine')));
    cols text[];
    types text[];
    nk int;
    condition text;
    matches text;
    measures text;
    counts jsonb;
BEGIN
    upserted := 0; deleted := 0;
    -- (Buckets as text, written and read under citus_as_owner's settings.)
    claimed := memoria_internal.citus_as_owner(c.rollup_table, format(
        'WITH d AS (DELETE FROM %s RETURNING bucket) '
        'SELECT pg_catalog.json_build_object(''buckets'', pg_catalog.array_agg(DISTINCT d.bucket)::text, '
        '                                    ''all'', pg_catalog.bool_or(d.bucket IS NULL)) FROM d', c.outbox))::jsonb;
    SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum), array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
      INTO cols, types
      FROM pg_attribute a WHERE a.attrelid = c.rollup_table AND a.attnum > 0 AND NOT a.attisdropped;
    nk := cardinality(cols) - nm;
    IF (claimed->>'all')::boolean OR (window_start = '-infinity' AND window_end = 'infinity') THEN
        condition := 'true';
    ELSE
        condition := concat_ws(' OR ',
            CASE WHEN claimed->>'buckets' IS NOT NULL
                 THEN format('{b} = ANY (%L::%s[])', claimed->>'buckets', types[1]) END,
            CASE WHEN window_start IS NOT NULL
                 THEN format('({b} > %L::timestamptz - %L::interval AND {b} < %L::timestamptz)',
                             window_start, c.definition->>'bucket', window_end) END);
    END IF;
    IF condition IS NULL OR condition = '' THEN RETURN; END IF;
    matches := (SELECT string_agg(format('f.%1$s IS NOT DISTINCT FROM t.%1$s', x), ' AND ') FROM unnest(cols[1:nk]) x);
    measures := array_to_string(cols[nk + 1:], ', ');
    counts := memoria_internal.citus_as_owner(c.rollup_table, format(
        'WITH fresh AS MATERIALIZED (%1$s), '
        'up AS (INSERT INTO %2$s AS t SELECT * FROM fresh ON CONFLICT (%3$s) DO UPDATE SET (%4$s) = ROW(%5$s) '
        '       WHERE (%6$s) IS DISTINCT FROM (%5$s) RETURNING 1), '
        'gone AS (DELETE FROM %2$s AS t WHERE %7$s AND NOT EXISTS (SELECT 1 FROM fresh f WHERE %8$s) RETURNING 1) '
        'SELECT pg_catalog.json_build_object(''up'', (SELECT pg_catalog.count(*) FROM up), '
        '                                    ''gone'', (SELECT pg_catalog.count(*) FROM gone))',
        memoria_internal.citus_combined_rows(c, replace(condition, '{b}', 'bucket')), c.rollup_table,
        array_to_string(cols[1:nk], ', '), measures,
        (SELECT string_agg('excluded.' || x, ', ') FROM unnest(cols[nk + 1:]) x),
        (SELECT string_agg('t.' || x, ', ') FROM unnest(cols[nk + 1:]) x),
        replace(condition, '{b}', 't.bucket'),
        matches))::jsonb;
    upserted := (counts->>'up')::bigint; deleted := (counts->>'gone')::bigint;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_as_owner(rel regclass, sql text) RETURNS text
AS 'MODULE_PATHNAME', 'memoria_citus_as_owner'
LANGUAGE C VOLATILE
SET search_path = pg_catalog, pg_temp;

-- citus_command: a command for a pair of co-located shards, made of
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
    -- The partial mode: its rollup table has the partials' columns but the
    -- distribution column, as made.
    IF c.rollup_table IS NOT NULL AND EXISTS (
        (SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
         WHERE a.attrelid = c.target AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> d->'partial'->>'column'
         EXCEPT SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
         WHERE a.attrelid = c.rollup_table AND a.attnum > 0 AND NOT a.attisdropped)
        UNION ALL
        (SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
         WHERE a.attrelid = c.rollup_table AND a.attnum > 0 AND NOT a.attisdropped
         EXCEPT SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
         WHERE a.attrelid = c.target AND a.attnum > 0 AND NOT a.attisdropped)) THEN
        RAISE EXCEPTION 'its rollup table % would no longer have the rollup''s columns', c.rollup_table;
    END IF;
    -- The source's owner (new, maybe) owns the rollup table's shards in
    -- memoria_rollup, which Citus makes again on a shard move: on every node,
    -- it needs CREATE there.  (Granted from here, one node at a time: the
    -- nodes' own DDL hooks run in parallel sessions of one transaction.)
    IF (SELECT k.relnamespace FROM pg_class k WHERE k.oid = c.target) = 'memoria_rollup'::regnamespace THEN
        BEGIN
            PERFORM run_command_on_workers(format('GRANT CREATE ON SCHEMA memoria_rollup TO %I',
                (SELECT pg_get_userbyid(k.relowner) FROM pg_class k WHERE k.oid = c.source)), parallel => false);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'rollup "%": could not grant CREATE on schema memoria_rollup to the owner of % on the '
                          'workers: %', c.name, c.source, SQLERRM;
        END;
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'this change would break rollup "%": %', c.name, SQLERRM
        USING ERRCODE = 'dependent_objects_still_exist',
              HINT = 'A rollup of a distributed table is made again from its definition on every shard move; '
                     'drop the rollup first (memoria.drop_rollup), change the table, then create the rollup again.';
END $$;

-- citus_placements: citus_command(c, template) run on every pair of
-- co-located shards, in parallel, each node's in its own transactions, as
-- the caller; with per_node > 0 over at most per_node connections to each
-- node, its pairs in turn on each (a connection costs a backend's start,
-- which outweighs an incremental refresh's work), otherwise over one
-- connection per pair (a window or a backfill: the heaviest work, on every
-- shard at once).  Again one node at a time if a node answered "tuple
-- concurrently updated".  grant_to: see citus_run_by_node.
CREATE OR REPLACE FUNCTION memoria_internal.citus_placements(c memoria.citus_rollups, template text, per_node int,
                                                             grant_to text)
RETURNS TABLE (nodename text, nodeport int, shardid1 bigint, shardid2 bigint, success boolean, result text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    command text := memoria_internal.citus_command(c, template, true);
    answers jsonb := memoria_internal.citus_run_by_node(c, command,
                         CASE WHEN per_node > 0 THEN per_node ELSE 2147483647 END, true, grant_to);
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(answers) a
               WHERE NOT (a->>'success')::boolean AND a->>'result' LIKE '%tuple concurrently updated%') THEN
        answers := memoria_internal.citus_run_by_node(c, command, 1, false, grant_to);
    END IF;
    RETURN QUERY SELECT * FROM jsonb_to_recordset(answers)
                 AS x(nodename text, nodeport int, shardid1 bigint, shardid2 bigint, success boolean, result text);
END $$;

-- citus_run_by_node: command (a format() string of a pair's shard names, as
-- run_command_on_colocated_placements takes) on every pair of co-located
-- shards of c's source and table, over per_node connections to each node
-- holding some (all at once if parallel); the answers as
-- run_command_on_colocated_placements gives them, as a JSON array.  With
-- grant_to, each worker (one without a pair too) then grants CREATE on
-- memoria_rollup to that role where it lacks it: Citus makes a rollup
-- table's shards on a shard move as their owner.
CREATE OR REPLACE FUNCTION memoria_internal.citus_run_by_node(c memoria.citus_rollups, command text, per_node int,
                                                              parallel boolean, grant_to text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    chunks jsonb;
    answers jsonb := '[]';
    a record;
BEGIN
    IF NOT distributed_tables_colocated(c.source, c.target) THEN
        RAISE EXCEPTION 'tables % and % are not co-located', c.source, c.target;
    END IF;
    -- The pairs (the source's shards' placements; the co-located table's
    -- are on the same nodes), dealt out to per_node chunks on each node;
    -- and a chunk without pairs for a worker that holds none.
    WITH pairs AS (
        SELECT s1.shardid AS shardid1, s2.shardid AS shardid2, shard_name(c.source, s1.shardid) AS name1,
               shard_name(c.target, s2.shardid) AS name2, p.nodename, p.nodeport::int AS nodeport
        FROM pg_dist_shard s1 JOIN pg_dist_shard s2 USING (shardminvalue, shardmaxvalue)
        JOIN pg_dist_shard_placement p ON p.shardid = s1.shardid AND p.shardstate = 1
        WHERE s1.logicalrelid = c.source AND s2.logicalrelid = c.target),
    dealt AS (
        SELECT *, (row_number() OVER (PARTITION BY nodename, nodeport ORDER BY shardid1) - 1) % per_node AS chunk
        FROM pairs),
    node_chunks AS (
        SELECT nodename, nodeport, chunk,
               jsonb_agg(jsonb_build_array(shardid1, shardid2) ORDER BY shardid1) AS pairs,
               array_agg(ARRAY[name1, name2] ORDER BY shardid1) AS names
        FROM dealt GROUP BY nodename, nodeport, chunk
        UNION ALL
        SELECT w.node_name, w.node_port::int, 0, '[]', '{}'
        FROM master_get_active_worker_nodes() w
        WHERE grant_to IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM pairs p WHERE p.nodename = w.node_name AND p.nodeport = w.node_port))
    SELECT jsonb_agg(jsonb_build_object('nodename', d.nodename, 'nodeport', d.nodeport, 'pairs', d.pairs,
                                        'command', format('CALL memoria_internal.citus_run_pairs(%L, %L, %L)',
                                                          d.names, command, grant_to))
                     ORDER BY d.nodename, d.nodeport, d.chunk)
      INTO chunks FROM node_chunks d;
    IF chunks IS NULL THEN RETURN '[]'; END IF;
    -- Each chunk answers with its pairs' answers, in order; a chunk that
    -- failed as a whole (its node did not answer) fails each of its pairs.
    FOR a IN SELECT r.success, r.result, ch.value AS chunk
             FROM master_run_on_worker(ARRAY(SELECT x->>'nodename' FROM jsonb_array_elements(chunks) x),
                                       ARRAY(SELECT (x->>'nodeport')::int FROM jsonb_array_elements(chunks) x),
                                       ARRAY(SELECT x->>'command' FROM jsonb_array_elements(chunks) x),
                                       parallel) WITH ORDINALITY r
             JOIN jsonb_array_elements(chunks) WITH ORDINALITY ch ON ch.ordinality = r.ordinality
    LOOP
        answers := answers || coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'nodename', a.chunk->>'nodename', 'nodeport', (a.chunk->>'nodeport')::int,
                       'shardid1', (pr.value->>0)::bigint, 'shardid2', (pr.value->>1)::bigint,
                       'success', CASE WHEN a.success THEN (a.result::jsonb->(pr.ordinality::int - 1)->>'success')::boolean
                                       ELSE false END,
                       'result', CASE WHEN a.success THEN a.result::jsonb->(pr.ordinality::int - 1)->>'result'
                                      ELSE a.result END)
                   ORDER BY pr.ordinality)
            FROM jsonb_array_elements(a.chunk->'pairs') WITH ORDINALITY pr), '[]');
    END LOOP;
    RETURN answers;
END $$;

-- citus_fan_out: run memoria's refresh or refresh_window on every shard
-- rollup (command: its row as JSON); one row for the distributed rollup:
-- the counts added up, the watermark the least of the shards' (NULL if one
-- has none), the worst status, the errors with their shards.
CREATE OR REPLACE FUNCTION memoria_internal.citus_fan_out(c memoria.citus_rollups, template text,
    window_start timestamptz, window_end timestamptz, OUT rollup text, OUT status text, OUT keys_refreshed bigint, OUT rows_upserted bigint,
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
    combined boolean := true;
    unplaced text;
    follows boolean;
    followed boolean;
    answer text;
BEGIN
    rollup := c.name; keys_refreshed := 0; rows_upserted := 0; rows_deleted := 0; watermark := 'infinity';
    PERFORM memoria_internal.citus_settle_owner(c.name);
    BEGIN
        PERFORM memoria_internal.citus_check_locks(c, 'a refresh');
    EXCEPTION WHEN active_sql_transaction THEN
        status := 'error'; watermark := NULL; error := SQLERRM; duration := clock_timestamp() - started;
        RETURN;
    END;
    -- After a restore: the rollup's tables follow its source once that is
    -- distributed again, in a transaction of their own that the nodes then
    -- see; every shard rollup is new, and every bucket is combined again.
    SELECT u.problem, u.follows INTO unplaced, follows FROM memoria_internal.citus_unplaced(c) u;
    IF unplaced IS NOT NULL THEN
        IF follows THEN
            SELECT x.success, x.result INTO followed, answer FROM run_command_on_coordinator(
                format('SELECT memoria_internal.citus_follow_source(%L)', c.name)) x;
        END IF;
        IF NOT coalesce(followed AND answer = 't', false) THEN
            status := 'error'; watermark := NULL; error := 'rollup "' || c.name || '": ' || coalesce(answer, unplaced);
            PERFORM memoria_internal.citus_refreshed(c.name, NULL, error);
            duration := clock_timestamp() - started;
            RETURN;
        END IF;
        template := format('SELECT pg_catalog.row_to_json(x)::text FROM memoria.refresh_window({shard}, %L, %L) x',
                           '-infinity', 'infinity');
        window_start := '-infinity'; window_end := 'infinity';
    END IF;
    -- In parallel: an incremental refresh over memoria.citus_node_connections
    -- to each node, a window over one connection per shard group.  Again one
    -- node at a time if shard rollups of one node ran into each other in the
    -- catalog (after REASSIGN OWNED, each follows its source's new owner at
    -- once): a refresh is safe to repeat.  Citus makes the rollup table's
    -- shards on a shard move as their owner, who must be able to create in
    -- memoria_rollup on every node (a node added since too): each node
    -- grants it where it lacks, last.
    FOR p IN SELECT * FROM memoria_internal.citus_placements(c, template,
                 CASE WHEN window_start IS NULL   -- (an incremental refresh)
                      THEN coalesce(nullif(current_setting('memoria.citus_node_connections', true), '')::int, 1)
                 END,
                 (SELECT pg_get_userbyid(k.relowner) FROM pg_class k
                  WHERE k.oid = c.target AND k.relnamespace = 'memoria_rollup'::regnamespace))
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
    IF c.rollup_table IS NOT NULL THEN
        -- The partial mode: combine what changed, in this transaction.
        BEGIN
            SELECT x.upserted, x.deleted INTO rows_upserted, rows_deleted FROM memoria_internal.citus_combine(c, window_start, window_end) x;
            IF rows_upserted + rows_deleted > 0 THEN rank := greatest(rank, 1); END IF;
        EXCEPTION WHEN OTHERS THEN
            rank := 3; combined := false;
            error := concat_ws('; ', error, 'combining the shards'' partial rows: ' || SQLERRM);
        END;
    END IF;
    -- When and how it went, failed or not (the background worker comes back
    -- a refresh_interval later; citus_status shows the error), and the
    -- partial mode's watermark once combined.
    PERFORM memoria_internal.citus_refreshed(c.name, CASE WHEN combined THEN watermark END, error);
    IF c.rollup_table IS NOT NULL THEN
        watermark := (SELECT r.watermark FROM memoria.citus_rollups r WHERE r.name = c.name);
    END IF;
    status := (ARRAY['idle', 'ok', 'busy', 'error'])[rank + 1];
    duration := clock_timestamp() - started;
END $$;

-- citus_chain_depth: each distributed rollup's level in its chain (0: its
-- source is no distributed rollup's table).
CREATE OR REPLACE FUNCTION memoria_internal.citus_chain_depth(OUT name text, OUT depth int) RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE below (name, depth) AS (
        SELECT r.name, 0 FROM memoria.citus_rollups r
        UNION ALL
        SELECT r.name, b.depth + 1 FROM below b JOIN memoria.citus_rollups u ON u.name = b.name
        JOIN memoria.citus_rollups r ON r.source = u.target WHERE b.depth < 32)
    SELECT b.name, max(b.depth) FROM below b GROUP BY b.name
$$;

-- citus_refresh_order: the distributed rollups the caller may refresh (or
-- the one named), a rollup of another's table after it, then by name (as
-- memoria.refresh() orders local rollups): in one call, changes reach the
-- end of a chain.
CREATE OR REPLACE FUNCTION memoria_internal.citus_refresh_order(name text) RETURNS SETOF memoria.citus_rollups
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.* FROM memoria.citus_rollups r JOIN memoria_internal.citus_chain_depth() d ON d.name = r.name
    WHERE (citus_refresh_order.name IS NULL OR r.name = citus_refresh_order.name)
      AND pg_has_role((SELECT k.relowner FROM pg_class k WHERE k.oid = r.source), 'MEMBER')
    ORDER BY d.depth, r.name
$$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_refresh(name text, max_keys bigint)
RETURNS TABLE (rollup text, status text, keys_refreshed bigint, rows_upserted bigint,
               rows_deleted bigint, watermark timestamptz, duration interval, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE c memoria.citus_rollups;
BEGIN
    IF citus_refresh.name IS NOT NULL THEN PERFORM memoria_internal.citus_rollup(citus_refresh.name); END IF;
    FOR c IN SELECT * FROM memoria_internal.citus_refresh_order(citus_refresh.name)
    LOOP
        -- One fan-out at a time per rollup (each shard rollup has its own lock too).
        IF NOT pg_try_advisory_xact_lock(1835363697, hashtext(c.name)) THEN
            RETURN QUERY SELECT c.name, 'busy'::text, 0::bigint, 0::bigint, 0::bigint, NULL::timestamptz,
                                '0'::interval, NULL::text;
            CONTINUE;
        END IF;
        RETURN QUERY SELECT * FROM memoria_internal.citus_fan_out(c, format(
            'SELECT pg_catalog.row_to_json(x)::text FROM memoria.refresh({shard}, %s) x',
            coalesce(max_keys::text, 'NULL')), NULL, NULL);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_refresh_window(name text, window_start timestamptz,
    window_end timestamptz, include_frozen boolean,
    OUT rollup text, OUT status text, OUT keys_refreshed bigint, OUT rows_upserted bigint,
    OUT rows_deleted bigint, OUT watermark timestamptz, OUT duration interval, OUT error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' AS $$
DECLARE c memoria.citus_rollups := memoria_internal.citus_rollup(name);
BEGIN
    PERFORM pg_advisory_xact_lock(1835363697, hashtext(c.name));
    SELECT * INTO rollup, status, keys_refreshed, rows_upserted, rows_deleted, watermark, duration, error
    FROM memoria_internal.citus_fan_out(c, format(
        'SELECT pg_catalog.row_to_json(x)::text FROM memoria.refresh_window({shard}, %L, %L, %L) x',
        window_start, window_end, coalesce(include_frozen, false)), window_start, window_end);
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_verify(name text, window_start timestamptz,
    window_end timestamptz, include_frozen boolean)
RETURNS TABLE (bucket text, dimensions jsonb, rollup_values jsonb, source_values jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    c memoria.citus_rollups := memoria_internal.citus_rollup(name);
    p record;
    unplaced text := (memoria_internal.citus_unplaced(c)).problem;
BEGIN
    IF unplaced IS NOT NULL THEN
        RAISE EXCEPTION 'cannot verify rollup "%": %', c.name, unplaced USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
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
    -- The partial mode: then its rollup table against the partials combined.
    IF c.rollup_table IS NOT NULL THEN
        RETURN QUERY SELECT * FROM memoria_internal.citus_verify_partial(c, coalesce(window_start, '-infinity'),
                                                                         coalesce(window_end, 'infinity'));
    END IF;
END $$;

-- citus_verify_partial: the rest of verify for the partial mode (after
-- citus_verify checked each shard rollup's partial rows against its source
-- shard): the rollup table against the partial rows combined.
CREATE OR REPLACE FUNCTION memoria_internal.citus_verify_partial(c memoria.citus_rollups, window_start timestamptz,
                                                                 window_end timestamptz)
RETURNS TABLE (bucket text, dimensions jsonb, rollup_values jsonb, source_values jsonb)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' AS $$
DECLARE
    nm int := cardinality(ARRAY(SELECT jsonb_array_elements_text(c.definition->'partial'->'combine')));
    cols text[];
    nk int;
    win text := format('bucket >= %L AND bucket < %L', window_start, window_end);
BEGIN
    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO cols
      FROM pg_attribute a WHERE a.attrelid = c.rollup_table AND a.attnum > 0 AND NOT a.attisdropped;
    nk := cardinality(cols) - nm;
    -- Rows on one side only (EXCEPT ALL: NULL dimensions compare equal),
    -- paired up by key.
    RETURN QUERY SELECT * FROM jsonb_to_recordset(coalesce(memoria_internal.citus_as_owner(c.rollup_table, format(
        'SELECT pg_catalog.json_agg(x) FROM ('
        'WITH s AS MATERIALIZED (%1$s), r AS (SELECT * FROM %2$s WHERE %3$s), '
        'd AS (SELECT ''r'' AS memoria_side, x.* FROM (TABLE r EXCEPT ALL TABLE s) x '
        '      UNION ALL SELECT ''s'', y.* FROM (TABLE s EXCEPT ALL TABLE r) y) '
        'SELECT pg_catalog.min(d.bucket)::text, (pg_catalog.array_agg(pg_catalog.to_jsonb(d) OPERATOR(pg_catalog.-) ARRAY[%4$s]))[1], '
        '       (pg_catalog.array_agg(pg_catalog.to_jsonb(d) OPERATOR(pg_catalog.-) ARRAY[%5$s]) FILTER (WHERE d.memoria_side OPERATOR(pg_catalog.=) ''r''))[1], '
        '       (pg_catalog.array_agg(pg_catalog.to_jsonb(d) OPERATOR(pg_catalog.-) ARRAY[%5$s]) FILTER (WHERE d.memoria_side OPERATOR(pg_catalog.=) ''s''))[1] '
        'FROM d GROUP BY %6$s ORDER BY 1) x(bucket, dimensions, rollup_values, source_values)',
        memoria_internal.citus_combined_rows(c, win), c.rollup_table, win,
        (SELECT string_agg(quote_literal(x), ', ') FROM unnest(ARRAY['memoria_side', 'bucket'] || cols[nk + 1:]) x),
        (SELECT string_agg(quote_literal(x), ', ') FROM unnest(ARRAY['memoria_side'] || cols[1:nk]) x),
        (SELECT string_agg('d.' || quote_ident(x), ', ') FROM unnest(cols[1:nk]) x)))::jsonb, '[]')
    ) AS x(bucket text, dimensions jsonb, rollup_values jsonb, source_values jsonb);
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_drop_rollup(name text, drop_table boolean, cascade boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c memoria.citus_rollups := memoria_internal.citus_rollup(name);
    p record;
    dependent record;
BEGIN
    PERFORM memoria_internal.citus_check_locks(c, 'drop_rollup');
    -- The rollups of its table (a chain), as for a local rollup: refused,
    -- or with cascade dropped first, alike.
    -- (Local rollups of the partial mode's table through memoria.status:
    -- the ones the caller may see.  Any other's depends on the table.)
    FOR dependent IN SELECT r.name FROM memoria.citus_rollups r WHERE r.source IN (c.target, c.rollup_table)
                     UNION SELECT s.rollup FROM memoria.status s WHERE s.source = c.rollup_table ORDER BY 1
    LOOP
        IF NOT cascade THEN
            RAISE EXCEPTION 'cannot drop rollup "%": rollup "%" is a rollup of its table', c.name, dependent.name
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = format('memoria.drop_rollup(%L, cascade => true) drops the rollups of its table too.', c.name);
        END IF;
        PERFORM memoria.drop_rollup(dependent.name, drop_table, true);
    END LOOP;
    PERFORM pg_advisory_xact_lock(1835363697, hashtext(c.name));
    -- The shard rollups first (their triggers, logs and state on each node),
    -- in the nodes' own transactions: if this transaction then fails, the
    -- next refresh makes them again, from their source shards.
    -- One at a time: dropping a rollup may change its owner's grant on
    -- schema memoria_rollup, one catalog row for all of a node's.
    -- (None where its tables are not co-located: restored from a dump.)
    IF (memoria_internal.citus_unplaced(c)).problem IS NULL THEN
        FOR p IN SELECT * FROM run_command_on_colocated_placements(c.source, c.target,
                     'SELECT memoria_internal.citus_drop_shard_rollup(%2$L)', parallel => false)
        LOOP
            IF NOT p.success THEN
                RAISE EXCEPTION 'could not drop the shard rollup of shard % on %:%: %', p.shardid2, p.nodename,
                                p.nodeport, p.result
                    USING ERRCODE = 'object_in_use', HINT = 'Nothing was dropped on the coordinator; try again.';
            END IF;
        END LOOP;
    END IF;
    PERFORM memoria_internal.citus_forget(c.name);
    IF c.rollup_table IS NOT NULL THEN
        -- The partial mode: its own tables go; the rollup table as asked.
        EXECUTE format('DROP TABLE %s, %s', c.target, c.outbox);
        IF drop_table THEN EXECUTE format('DROP TABLE %s', c.rollup_table);
        ELSE EXECUTE format('DROP TRIGGER IF EXISTS zz_memoria_guard ON %s', c.rollup_table);  -- (a plain table now)
        END IF;
    ELSIF drop_table THEN
        EXECUTE format('DROP TABLE %s', c.target);
    END IF;
END $$;

-- citus_drop_all_rollups: DROP EXTENSION memoria CASCADE's first step
-- (citus.hpp): every distributed rollup dropped, newest first, as
-- drop_rollup(name, drop_table => true, cascade => true) does.  The nodes
-- drop their shard rollups in their own transactions, so whatever can
-- refuse is asked of every rollup first: if the DROP then fails or is rolled
-- back, the next refresh makes the shard rollups again.
CREATE OR REPLACE FUNCTION memoria_internal.citus_drop_all_rollups() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c memoria.citus_rollups;
    down text;
    newest text;
BEGIN
    FOR c IN SELECT * FROM memoria.citus_rollups LOOP
        PERFORM memoria_internal.citus_check_locks(c, 'DROP EXTENSION memoria CASCADE');
    END LOOP;
    SELECT string_agg(format('%s:%s: %s', w.nodename, w.nodeport, w.result), '; ') INTO down
    FROM run_command_on_workers('SELECT 1') w WHERE NOT w.success;
    IF down IS NOT NULL THEN
        RAISE EXCEPTION 'DROP EXTENSION memoria CASCADE needs every Citus node to drop the shard rollups: %', down
            USING ERRCODE = 'object_in_use', HINT = 'Nothing was dropped; try again once every node answers.';
    END IF;
    LOOP
        SELECT r.name INTO newest FROM memoria.citus_rollups r ORDER BY r.created_at DESC, r.name DESC LIMIT 1;
        EXIT WHEN newest IS NULL;
        PERFORM memoria.drop_rollup(newest, drop_table => true, cascade => true);
    END LOOP;
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
    unplaced text;
    follows boolean;
BEGIN
    FOR c IN SELECT * FROM memoria.citus_rollups r WHERE citus_status.name IS NULL OR r.name = citus_status.name
             ORDER BY r.name LOOP
        rollup := c.name; source := c.source; target := coalesce(c.rollup_table, c.target);
        shard_groups := 0; shard_rollups := 0; watermark := 'infinity'; pending_keys := 0;
        needs_backfill := false; errors := NULL; no_watermark := false; state := 'idle';
        SELECT u.problem, u.follows INTO unplaced, follows FROM memoria_internal.citus_unplaced(c) u;
        IF unplaced IS NOT NULL THEN
            -- Restored: an error until the source is distributed again, then
            -- a backfill that the next refresh makes.
            IF follows THEN
                state := 'needs_backfill';
            ELSE
                state := 'error'; errors := unplaced;
            END IF;
            needs_backfill := true; watermark := NULL; lag := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- (With, for the partial mode, how many of the triggers logging a
        -- partials shard's changed buckets are there and enabled.)
        -- (One connection per node, its shard groups in turn.)
        FOR p IN SELECT * FROM jsonb_to_recordset(memoria_internal.citus_run_by_node(c,
            'SELECT pg_catalog.row_to_json(x)::text FROM (SELECT s.*,
                 (SELECT pg_catalog.count(*) FROM pg_catalog.pg_trigger t
                  WHERE t.tgrelid = memoria_internal.citus_regclass(%2$L) AND t.tgenabled IN (''O'', ''A'')
                    AND t.tgname IN (''zz_memoria_changes_insert'', ''zz_memoria_changes_update'',
                                     ''zz_memoria_changes_delete'')) AS changes_logged
             FROM memoria.status s WHERE s.target = memoria_internal.citus_regclass(%2$L)) x', 1, true, NULL))
                 AS x(nodename text, nodeport int, shardid1 bigint, shardid2 bigint, success boolean, result text)
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
            -- Changes not logged are never combined: the rollup table would
            -- go stale without a word.
            IF c.rollup_table IS NOT NULL AND (o->>'changes_logged')::int < 3 THEN
                state := 'capture_disabled';
                errors := concat_ws('; ', errors, format(
                    'shard %s on %s:%s: a trigger zz_memoria_changes_* of %s is disabled or missing (enable it there, '
                    'then memoria.refresh_window(%L, ''-infinity'', ''infinity'') combines every bucket again)',
                    p.shardid2, p.nodename, p.nodeport, o->>'target', c.name));
            END IF;
        END LOOP;
        IF shard_groups = 0 OR no_watermark THEN watermark := NULL; END IF;
        -- The partial mode: the rollup table's own, from its last combination.
        IF c.rollup_table IS NOT NULL THEN watermark := c.watermark; END IF;
        IF c.last_error IS NOT NULL THEN
            errors := concat_ws('; ', errors, 'the last refresh from the coordinator: ' || c.last_error);
        END IF;
        IF state = 'idle' AND needs_backfill THEN state := 'needs_backfill'; END IF;
        IF errors IS NOT NULL AND state NOT IN ('error', 'capture_disabled') THEN state := 'error'; END IF;
        lag := CASE WHEN isfinite(watermark) THEN clock_timestamp() - watermark END;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE OR REPLACE VIEW memoria.citus_status AS SELECT * FROM memoria_internal.citus_status();
GRANT SELECT ON memoria.citus_status TO PUBLIC;
COMMENT ON VIEW memoria.citus_status IS 'memoria: each rollup of a Citus distributed table, from its shard rollups on the nodes';

-- ---------------------------------------------------------------------------
-- On the node holding a pair of co-located shards.
-- ---------------------------------------------------------------------------

-- citus_run_pairs: on a node, command (see citus_run_by_node) for each pair
-- of shard names in turn, each in a transaction of its own, as if each had
-- its own connection: one pair's error is its answer alone, and a pair's
-- locks and settings go with its commit.  (A cancel, statement_timeout
-- included, stops the CALL: the pairs done before stay done.)  The answers,
-- in order, as a JSON array of {success, result} (result: the first column
-- of the command's first row, or the error), in `answers`.  As the caller,
-- with the caller's rights.  Then CREATE on memoria_rollup for grant_to
-- where it lacks it (citus_grant_rollup_schema), if it can.
-- (A procedure that commits takes no SET clause: every name is qualified.)
CREATE OR REPLACE PROCEDURE memoria_internal.citus_run_pairs(names text[], command text, grant_to text,
                                                             INOUT answers text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    done jsonb := '[]';
    answer text;
BEGIN
    FOR i IN 1 .. coalesce(pg_catalog.array_length(names, 1), 0) LOOP
        BEGIN
            EXECUTE pg_catalog.format(command, names[i][1], names[i][2]) INTO answer;
            done := done OPERATOR(pg_catalog.||)
                    pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('success', true, 'result', answer));
        EXCEPTION WHEN OTHERS THEN
            done := done OPERATOR(pg_catalog.||)
                    pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('success', false, 'result', SQLERRM));
        END;
        COMMIT;
    END LOOP;
    IF grant_to IS NOT NULL THEN
        BEGIN
            IF NOT pg_catalog.has_schema_privilege(grant_to, 'memoria_rollup', 'CREATE') THEN
                PERFORM memoria_internal.citus_grant_rollup_schema(grant_to);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            NULL;  -- (granted by another session meanwhile; or by the next refresh)
        END;
    END IF;
    answers := done::text;
END $$;

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
    shard_value text;
BEGIN
    IF shard_rollup IS NOT NULL THEN RETURN shard_rollup; END IF;
    IF d ? 'partial' THEN
        -- The partial mode: the partial rows' distribution column holds a
        -- value of this shard's, so that Citus keeps them here through moves
        -- and splits (the definition's NULL stands for it).
        shard_value := memoria_internal.citus_shard_value(src, d->'partial'->>'column',
            substring((SELECT k.relname FROM pg_class k WHERE k.oid = tgt) FROM '_([0-9]+)$')::bigint);
        d := jsonb_set(d, '{dimensions,-1}', to_jsonb(format('%L::%s AS %I', shard_value,
            (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = src AND a.attname = d->'partial'->>'column'), d->'partial'->>'column')));
    END IF;
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
    IF d ? 'partial' THEN PERFORM memoria_internal.citus_log_partial_changes(tgt, d, shard_value); END IF;
    PERFORM memoria.refresh_window(shard_rollup, '-infinity', 'infinity');
    RETURN shard_rollup;
END $$;

-- citus_log_partial_changes: the partial mode (citus_create_partial_rollup):
-- the partials table shard `partials` logs the buckets of its changed rows
-- in the changes table's co-located shard, in the same transaction.
CREATE OR REPLACE FUNCTION memoria_internal.citus_log_partial_changes(partials regclass, definition jsonb,
                                                                      shard_value text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changes regclass := (definition->'partial'->>'outbox')::regclass;
    changes_shard text;
    shard bigint := substring((SELECT k.relname FROM pg_class k WHERE k.oid = partials) FROM '_([0-9]+)$')::bigint;
BEGIN
    SELECT memoria_internal.citus_regclass(shard_name(changes, o.shardid))::text INTO changes_shard
      FROM pg_dist_shard o, pg_dist_shard p
     WHERE p.shardid = shard AND o.logicalrelid = changes AND o.shardminvalue = p.shardminvalue;
    IF changes_shard IS NULL THEN
        RAISE EXCEPTION 'no shard of % is co-located with %', changes, partials
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER zz_memoria_changes_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS changed '
                   'FOR EACH STATEMENT EXECUTE FUNCTION memoria_internal.citus_partials_changed(%L, %L)', partials, changes_shard,
                   shard_value);
    EXECUTE format('CREATE OR REPLACE TRIGGER zz_memoria_changes_update AFTER UPDATE ON %s REFERENCING NEW TABLE AS changed '
                   'FOR EACH STATEMENT EXECUTE FUNCTION memoria_internal.citus_partials_changed(%L, %L)', partials, changes_shard,
                   shard_value);
    EXECUTE format('CREATE OR REPLACE TRIGGER zz_memoria_changes_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS changed '
                   'FOR EACH STATEMENT EXECUTE FUNCTION memoria_internal.citus_partials_changed(%L, %L)', partials, changes_shard,
                   shard_value);
    -- (Whatever this shard's partial rows were before: every bucket again.
    -- As the owner, restricted: a domain of the distribution column is its.)
    PERFORM memoria_internal.citus_as_owner(partials, format('INSERT INTO %s VALUES (NULL, %L)', changes_shard,
                                                             shard_value));
END $$;

-- citus_shard_value: a value of `table`'s column `column_name` (as text)
-- that Citus' hash puts in shard `shard` (the first of 0, 1, 2, ... cast
-- to the column's type; md5 of them for a uuid).
CREATE OR REPLACE FUNCTION memoria_internal.citus_shard_value(table_name regclass, column_name text, shard bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    type_name text := (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                       WHERE a.attrelid = table_name AND a.attname = column_name);
    lo int;
    hi int;
    found text;
BEGIN
    SELECT s.shardminvalue::int, s.shardmaxvalue::int INTO lo, hi FROM pg_dist_shard s WHERE s.shardid = shard;
    -- As the table's owner (a domain's CHECK is the owner's code).  (The
    -- series in the target list: produced lazily, as far as needed.)
    BEGIN
        found := memoria_internal.citus_as_owner(table_name, format(
            'SELECT x.v::text FROM (SELECT %s AS v FROM (SELECT pg_catalog.generate_series(0, 10000000) AS i) s) x '
            'WHERE pg_catalog.worker_hash(x.v) BETWEEN %s AND %s LIMIT 1',
            CASE WHEN type_name = 'uuid' THEN 'pg_catalog.md5(s.i::text)::uuid'
                 ELSE format('s.i::text::%s', type_name) END, lo, hi));
    EXCEPTION WHEN data_exception OR syntax_error_or_access_rule_violation THEN
        found := NULL;
    END;
    IF found IS NULL THEN
        RAISE EXCEPTION 'no value of % hashes into shard %', type_name, shard
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'The partial mode needs a distribution column of an integer, text or uuid type.';
    END IF;
    RETURN found;
END $$;

CREATE OR REPLACE FUNCTION memoria_internal.citus_partials_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- (The shard's value of the distribution column, as text: the
    -- column's type reads it.)
    EXECUTE format('INSERT INTO %s SELECT d.bucket, %L FROM (SELECT DISTINCT bucket FROM changed) d',
                   TG_ARGV[0]::regclass, TG_ARGV[1]);
    RETURN NULL;
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
