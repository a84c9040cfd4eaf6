-- catalog.sql: the objects memoria installs, their privileges, and the shape
-- of the tables it creates.
BEGIN;
SELECT plan(37);

SELECT has_schema('memoria');
SELECT has_schema('memoria_state');
SELECT has_schema('memoria_rollup');
SELECT has_function('memoria', 'create_rollup',
    ARRAY['text', 'regclass', 'text', 'text[]', 'text[]', 'interval', 'text', 'text[]', 'text', 'text', 'text', 'interval', 'text']);
SELECT function_returns('memoria', 'create_rollup',
    ARRAY['text', 'regclass', 'text', 'text[]', 'text[]', 'interval', 'text', 'text[]', 'text', 'text', 'text', 'interval', 'text'], 'regclass');
SELECT has_function('memoria', 'drop_rollup', ARRAY['text', 'boolean', 'boolean']);
SELECT has_function('memoria', 'refresh', ARRAY['text', 'bigint']);
SELECT has_function('memoria', 'refresh_window', ARRAY['text', 'timestamp with time zone', 'timestamp with time zone', 'boolean']);
SELECT has_function('memoria', 'verify', ARRAY['text', 'timestamp with time zone', 'timestamp with time zone', 'boolean']);
SELECT has_function('memoria', 'lag', ARRAY['text']);
SELECT function_returns('memoria', 'lag', ARRAY['text'], 'interval');
SELECT has_function('memoria', 'alter_rollup', ARRAY['text', 'interval', 'interval', 'text[]', 'text[]', 'text', 'boolean']);
SELECT has_function('memoria', 'run', ARRAY['text']);
SELECT is((SELECT prokind FROM pg_proc WHERE oid = 'memoria.run(text)'::regprocedure), 'p', 'memoria.run is a procedure');
SELECT has_view('memoria', 'status', 'memoria.status exists');
SELECT columns_are('memoria', 'status', ARRAY['rollup', 'source', 'target', 'invalidation', 'watermark', 'lag',
    'pending_keys', 'needs_backfill', 'backfill_progress', 'last_refresh_at', 'last_duration', 'last_status',
    'last_error', 'refreshes', 'scheduled_by', 'state', 'running_since', 'failing_keys', 'frozen_before',
    'frozen_keys_discarded']);
-- Result columns of refresh, by name and type.
SELECT is(
    (SELECT array_agg(a.name || ' ' || format_type(a.type, NULL) ORDER BY a.ord)
     FROM pg_proc p, unnest(p.proargnames, p.proallargtypes, p.proargmodes) WITH ORDINALITY a(name, type, mode, ord)
     WHERE p.oid = 'memoria.refresh(text, bigint)'::regprocedure AND a.mode = 't'),
    ARRAY['rollup text', 'status text', 'keys_refreshed bigint', 'rows_upserted bigint', 'rows_deleted bigint',
          'watermark timestamp with time zone', 'duration interval', 'error text'],
    'memoria.refresh returns the contract''s columns');

-- Every function that runs SQL pins its search_path.  The exceptions run no
-- SQL (bucket arithmetic, flags), pin it themselves where they do (the
-- capture trigger reads the catalog once per trigger and backend: a SET
-- clause would cost on every row), are procedures that COMMIT (memoria.run, memoria.backfill,
-- which use qualified names only), or
-- need the caller's search_path and pin their own inside (create_rollup and
-- its parts for Citus tables, citus_create_rollup, citus_create_partial_rollup,
-- citus_create_placement_rollup,
-- measure_combiners and create_rollup_part;
-- on_ddl_start, which resolves the ALTER TABLE's names as that command will).
SELECT is_empty($$
    SELECT p.oid::regprocedure::text FROM pg_proc p
    WHERE p.pronamespace IN ('memoria'::regnamespace, 'memoria_internal'::regnamespace)
      AND p.proconfig IS NULL AND p.prokind = 'f'
      AND p.proname NOT IN ('bucket', 'bucket_lo', 'bucket_hi', 'capture', 'worker_preloaded', 'guard_rollup',
                            'workers', 'wake_workers', 'relation_owner',
                            'create_rollup', 'citus_create_rollup', 'citus_create_partial_rollup', 'citus_create_placement_rollup',
                            'measure_combiners', 'create_rollup_part', 'on_ddl_start')
$$, 'every SQL-running memoria function has SET search_path');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_proc
                      WHERE pronamespace IN ('memoria'::regnamespace, 'memoria_internal'::regnamespace)
                        AND prosecdef AND proname <> 'follow_cron_job'),
          'only the pg_cron job follower is SECURITY DEFINER');

-- The API listing (\df memoria.*) shows the API only, each function with a comment.
SELECT is_empty($$
    SELECT proname FROM pg_proc WHERE pronamespace = 'memoria'::regnamespace AND proname LIKE '\_%'
$$, 'no internal helper in schema memoria');
SELECT is_empty($$
    SELECT p.oid::regprocedure::text FROM pg_proc p
    WHERE p.pronamespace = 'memoria'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
$$, 'every API function has a comment');

-- Catalog tables are private; the status view is public but filtered by owner.
SELECT table_privs_are('memoria', 'rollups', 'public', ARRAY[]::text[]);
SELECT table_privs_are('memoria', 'rollup_state', 'public', ARRAY[]::text[]);
SELECT table_privs_are('memoria', 'status', 'public', ARRAY['SELECT']);
SELECT schema_privs_are('memoria_state', 'public', ARRAY['USAGE']);
SELECT function_privs_are('memoria_internal', 'cron_call', ARRAY['text', 'text[]', 'text'], 'public', ARRAY['EXECUTE']);
SELECT has_extension('memoria');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'memoria'), false, 'memoria is not relocatable');

-- The tables a rollup gets.
CREATE TABLE tap_usage (at timestamptz NOT NULL, ws int NOT NULL, model varchar(20) NOT NULL, tokens int);
SELECT lives_ok($$SELECT memoria.create_rollup('tap_daily', 'tap_usage', 'at', ARRAY['ws', 'model'],
                  ARRAY['sum(tokens)::bigint AS tokens', 'count(*) AS events'], scope => ARRAY['ws'])$$,
                'create_rollup of a varchar dimension and a cast measure');
SELECT has_table('memoria_rollup', 'tap_daily', 'the rollup table is created');
SELECT columns_are('memoria_rollup', 'tap_daily', ARRAY['bucket', 'ws', 'model', 'tokens', 'events']);
SELECT col_type_is('memoria_rollup', 'tap_daily', 'bucket', 'timestamp with time zone', 'bucket is timestamp with time zone');
SELECT col_type_is('memoria_rollup', 'tap_daily', 'model', 'character varying(20)', 'model is character varying(20)');
SELECT col_type_is('memoria_rollup', 'tap_daily', 'tokens', 'bigint', 'tokens is bigint');
-- Dimensions are NOT NULL in the source, so the key is a real primary key.
SELECT col_is_pk('memoria_rollup', 'tap_daily', ARRAY['bucket', 'ws', 'model']::name[], 'the key is (bucket, dimensions)');
SELECT is((SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'memoria_rollup.tap_daily'::regclass),
          current_user::text, 'the rollup table belongs to the rollup''s owner');
-- The dirty log holds the bucket and the scope columns only.
SELECT is((SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
           WHERE attrelid = (SELECT dirty_log FROM memoria.rollups WHERE name = 'tap_daily') AND attnum > 0),
          ARRAY['bucket', 'ws'], 'the dirty log has bucket and scope columns');

SELECT * FROM finish();
ROLLBACK;
