-- memoria's schemas and catalog (sql/src/catalog.sql; make builds the
-- install script from this file and sql/src/api.sql).

CREATE SCHEMA memoria;          -- the API and the catalog
CREATE SCHEMA memoria_internal; -- functions memoria calls itself (not API)
CREATE SCHEMA memoria_state;    -- one dirty-key log table per rollup (internal)
CREATE SCHEMA memoria_rollup;   -- default home of rollup tables
COMMENT ON SCHEMA memoria IS 'memoria: API and catalog of incremental rollups';
COMMENT ON SCHEMA memoria_internal IS 'memoria: internal functions (not part of the API)';
COMMENT ON SCHEMA memoria_state IS 'memoria: internal per-rollup dirty-key logs';
COMMENT ON SCHEMA memoria_rollup IS 'memoria: default schema of rollup tables';
-- USAGE only: each dirty log belongs to the extension (its rollup's owner may
-- read, add and claim keys); nobody but the extension can create objects in
-- these schemas.
GRANT USAGE ON SCHEMA memoria, memoria_internal, memoria_state, memoria_rollup TO PUBLIC;

-- One row per rollup: its definition.  Columns are stored as attribute
-- numbers of the source, so that renaming a column keeps the rollup working;
-- tables, roles and types as reg* values, which pg_dump writes as names and
-- a restore resolves again.
CREATE TABLE memoria.rollups (
    id                int PRIMARY KEY,     -- chosen by create_rollup: a dump carries it
    name              text NOT NULL UNIQUE,
    owner             regrole NOT NULL,    -- the source's owner, as memoria last granted the log to
    source            regclass NOT NULL,
    target            regclass NOT NULL,
    dirty_log         regclass NOT NULL,
    time_attnum       int2 NOT NULL,
    time_type         regtype NOT NULL,
    dimension_attnums int2[] NOT NULL,
    scope_attnums     int2[] NOT NULL,
    measures          text[] NOT NULL,     -- each 'expression AS alias', as validated
    measure_names     text[] NOT NULL,
    bucket            interval NOT NULL,
    time_zone         text NOT NULL,
    filter            text,
    invalidation      text NOT NULL CHECK (invalidation IN ('trigger', 'updated_at')),
    updated_at_attnum int2,
    safety_lag        interval NOT NULL,
    search_path       text NOT NULL,       -- the creator's, used to resolve measures
    refresh_interval  interval NOT NULL DEFAULT interval '1 minute',
    created_at        timestamptz NOT NULL DEFAULT now(),
    settings          text[],              -- 'name=value': the creator's DateStyle, IntervalStyle, ...
    freeze_after      interval,            -- buckets that ended longer ago never change (NULL: none)
    link_log          regclass,            -- a view source's log of writes to its joined tables (NULL: none)
    dimension_exprs   text[],              -- per dimension, its expression (NULL: a column; all NULL: none)
    delta_log         regclass             -- the additive path's log of inserted rows' partial aggregates (NULL: none)
);

-- One row per rollup: what refreshes did. Kept apart from the definition so that
-- refreshes only ever lock this row.
CREATE TABLE memoria.rollup_state (
    rollup_id         int PRIMARY KEY,         -- memoria.rollups.id (no foreign key: a parallel
                                               -- pg_restore may load this table first)
    watermark         timestamptz,
    needs_backfill    boolean NOT NULL DEFAULT true,
    backfill_next     timestamptz,         -- resume point of a running backfill
    backfill_progress real,                -- 0..1 while a backfill runs
    backfill_started  timestamptz,         -- when the running backfill began
    last_refresh_at   timestamptz,
    last_duration     interval,
    last_status       text,
    last_error        text,
    refreshes         bigint NOT NULL DEFAULT 0,
    scanned_through   timestamptz,         -- updated_at mode: rows up to here were scanned
    capture_lost_at   timestamptz,         -- since when a capture trigger is missing or disabled
    capture_tables    regclass[],          -- the source and its partitions, as memoria last saw them
    frozen_keys_discarded bigint NOT NULL DEFAULT 0,  -- dirty keys of frozen buckets dropped by refreshes
    failing_keys      bigint NOT NULL DEFAULT 0,  -- keys the last refresh could not recompute (left pending)
    -- Where memoria last recorded what a dump does not carry (dependencies,
    -- grants): 'system identifier:database oid'.  A row restored elsewhere
    -- (pg_restore, pg_upgrade, CREATE DATABASE ... TEMPLATE) differs, and
    -- memoria adopts the rollup again once its triggers are back.
    recorded_in       text,
    -- A view source replaced: transactions that began writing before this
    -- transaction id may have captured with the old join, so the rebuild it
    -- asked for waits until they have all ended (a full transaction id).
    rebuild_after_xid bigint
);
REVOKE ALL ON memoria.rollups, memoria.rollup_state FROM PUBLIC;
-- pg_dump dumps their rows (after CREATE EXTENSION, before the triggers).
SELECT pg_catalog.pg_extension_config_dump('memoria.rollups', '');
SELECT pg_catalog.pg_extension_config_dump('memoria.rollup_state', '');
