-- api: the life of one rollup through the SQL API.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
-- The extension and a usage table shaped like real data.
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'memoria';
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'memoria%' ORDER BY 1;

CREATE TABLE task_usage (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    workspace_id  int NOT NULL,
    provider      text NOT NULL,
    model         text,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL
);
CREATE INDEX ON task_usage (created_at);
-- Deterministic sample: 30 days of 2026-03, 5 workspaces, 2 providers, 3 models.
INSERT INTO task_usage (created_at, workspace_id, provider, model, input_tokens, output_tokens)
SELECT timestamptz '2026-03-01 00:00+00' + (g * 7919 % 43200) * interval '1 minute',
       g % 5, CASE WHEN g % 2 = 0 THEN 'openai' ELSE 'anthropic' END,
       CASE g % 3 WHEN 0 THEN 'small' WHEN 1 THEN 'large' ELSE NULL END,
       g % 1000, g % 100
FROM generate_series(1, 5000) g;
SELECT count(*), min(created_at) >= '2026-03-01 00:00+00' AS starts_in_march FROM task_usage;

SET TimeZone = 'UTC';

SELECT memoria.create_rollup(
    name        => 'usage_daily',
    source      => 'task_usage',
    time_column => 'created_at',
    dimensions  => ARRAY['workspace_id', 'provider', 'model'],
    measures    => ARRAY['sum(input_tokens) AS input_tokens',
                         'sum(output_tokens) AS output_tokens',
                         'count(*) AS events']);

-- The rollup table: bucket, dimensions with their source types, measures.
SELECT attname, format_type(atttypid, atttypmod), attnotnull
FROM pg_attribute WHERE attrelid = 'memoria_rollup.usage_daily'::regclass AND attnum > 0 ORDER BY attnum;
-- model is nullable, so the key is UNIQUE NULLS NOT DISTINCT rather than a primary key.
SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'memoria_rollup.usage_daily'::regclass;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'task_usage'::regclass AND NOT tgisinternal ORDER BY 1;

-- A new rollup is empty and needs a backfill.
SELECT rollup, source, target, invalidation, watermark, lag, pending_keys, needs_backfill, last_status, refreshes
FROM memoria.status;
SELECT count(*) FROM memoria_rollup.usage_daily;

-- Filling it: refresh_window over everything.
SELECT rollup, status, keys_refreshed, rows_upserted, rows_deleted, watermark IS NOT NULL AS has_watermark
FROM memoria.refresh_window('usage_daily', '-infinity', 'infinity');
SELECT needs_backfill, pending_keys, last_status, refreshes FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('usage_daily');
-- Exactly a fresh GROUP BY of the source.
(SELECT date_trunc('day', created_at, 'UTC') AS bucket, workspace_id, provider, model,
        sum(input_tokens), sum(output_tokens), count(*)
 FROM task_usage GROUP BY 1, 2, 3, 4
 EXCEPT ALL
 SELECT * FROM memoria_rollup.usage_daily)
UNION ALL
(SELECT * FROM memoria_rollup.usage_daily
 EXCEPT ALL
 SELECT date_trunc('day', created_at, 'UTC'), workspace_id, provider, model,
        sum(input_tokens), sum(output_tokens), count(*)
 FROM task_usage GROUP BY 1, 2, 3, 4);

-- Writes make keys dirty; the rollup lags until refreshed.
INSERT INTO task_usage (created_at, workspace_id, provider, model, input_tokens, output_tokens)
VALUES ('2026-03-02 10:00+00', 1, 'openai', 'small', 1000000, 1), ('2026-03-02 11:00+00', 9, 'new', NULL, 5, 5);
UPDATE task_usage SET input_tokens = input_tokens + 1 WHERE id = 10;
DELETE FROM task_usage WHERE id = 11;
SELECT pending_keys FROM memoria.status;
SELECT count(*) > 0 AS stale FROM memoria.verify('usage_daily');
SELECT bucket, dimensions, rollup_values, source_values FROM memoria.verify('usage_daily') WHERE dimensions->>'workspace_id' = '9';

SELECT rollup, status, keys_refreshed, rows_upserted, rows_deleted, error FROM memoria.refresh('usage_daily');
SELECT count(*) AS differences FROM memoria.verify('usage_daily');
SELECT pending_keys, last_status, last_error, refreshes FROM memoria.status;
-- Nothing left to do.
SELECT status, keys_refreshed FROM memoria.refresh();
SELECT memoria.lag('usage_daily') < interval '1 minute' AS lag_small;

-- Keys without a NULL are matched column by column: the groups of a NULL
-- model beside them (same days, same workspaces) are left as they are, and
-- a group that vanishes (its rows moved to another model) goes.  Then keys
-- with a NULL model.
UPDATE task_usage SET input_tokens = input_tokens + 1 WHERE model = 'small' AND workspace_id IN (1, 2);
UPDATE task_usage SET model = 'small' WHERE model = 'large' AND workspace_id = 3 AND created_at < '2026-03-05';
SELECT status, keys_refreshed > 0 AS refreshed, rows_deleted > 0 AS deleted FROM memoria.refresh('usage_daily');
SELECT count(*) AS differences FROM memoria.verify('usage_daily');
SELECT (SELECT count(*) FROM memoria_rollup.usage_daily WHERE model IS NULL)
     = (SELECT count(DISTINCT (date_trunc('day', created_at, 'UTC'), workspace_id, provider)) FROM task_usage
        WHERE model IS NULL) AS null_groups_kept;
UPDATE task_usage SET output_tokens = output_tokens + 1 WHERE model IS NULL AND workspace_id = 1;
UPDATE task_usage SET model = 'large' WHERE model IS NULL AND workspace_id = 2 AND created_at < '2026-03-05';
SELECT status, keys_refreshed > 0 AS refreshed, rows_deleted > 0 AS deleted FROM memoria.refresh('usage_daily');
SELECT count(*) AS differences FROM memoria.verify('usage_daily');

-- The watermark only moves forward.
SELECT watermark AS w1 FROM memoria.status \gset
SELECT status FROM memoria.refresh('usage_daily');
SELECT watermark >= :'w1' AS moved_forward FROM memoria.status;

-- max_keys bounds the work of one call; the rest waits for the next.
UPDATE task_usage SET output_tokens = output_tokens + 1 WHERE id IN (1, 2, 3, 4, 5, 6);
SELECT pending_keys FROM memoria.status;
SELECT status, keys_refreshed FROM memoria.refresh('usage_daily', max_keys => 2);
SELECT pending_keys FROM memoria.status;
SELECT status, keys_refreshed FROM memoria.refresh('usage_daily', max_keys => 100);
SELECT count(*) AS differences FROM memoria.verify('usage_daily');

-- alter_rollup sets the worker's interval.
SELECT * FROM memoria.alter_rollup('usage_daily', refresh_interval => interval '30 seconds');
SELECT refresh_interval FROM memoria.rollups WHERE name = 'usage_daily';

-- memoria.run refreshes in batches (it commits, so it is CALLed on its own).
INSERT INTO task_usage (created_at, workspace_id, provider, model, input_tokens, output_tokens)
SELECT '2026-03-20 00:00+00'::timestamptz + g * interval '1 hour', g % 7, 'openai', 'large', 1, 1 FROM generate_series(1, 48) g;
SET memoria.batch_keys = 3;
CALL memoria.run('usage_daily');
RESET memoria.batch_keys;
SELECT pending_keys FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('usage_daily');

-- drop_rollup removes triggers, state and (when asked) the table.
SELECT memoria.drop_rollup('usage_daily', drop_table => false);
SELECT count(*) FROM memoria.rollups;
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'task_usage'::regclass AND NOT tgisinternal;
SELECT count(*) FROM pg_class WHERE relnamespace = 'memoria_state'::regnamespace;
-- The kept table is a plain table now, and the source can be dropped without CASCADE later.
SELECT count(*) > 0 AS kept FROM memoria_rollup.usage_daily;
SELECT count(*) FROM pg_depend WHERE objid = 'memoria_rollup.usage_daily'::regclass AND refobjid = 'task_usage'::regclass;
DROP TABLE memoria_rollup.usage_daily;

-- Creating it again under the same name works; drop_table => true removes the table.
SELECT memoria.create_rollup('usage_daily', 'task_usage', 'created_at', ARRAY['workspace_id'], ARRAY['count(*) AS events']);
SELECT memoria.drop_rollup('usage_daily', drop_table => true);
SELECT to_regclass('memoria_rollup.usage_daily');

-- A rollup into a table of the caller's choosing.
CREATE SCHEMA analytics;
SELECT memoria.create_rollup('by_provider', 'task_usage', 'created_at', ARRAY['provider'],
                             ARRAY['count(*) AS events'], target => 'analytics.provider_daily');
SELECT status FROM memoria.refresh_window('by_provider', '2026-03-01', '2026-04-01');
SELECT needs_backfill FROM memoria.status WHERE rollup = 'by_provider';
SELECT provider, sum(events) FROM analytics.provider_daily GROUP BY 1 ORDER BY 1;

-- DROP TABLE of the source needs CASCADE, which takes the rollup along.
CREATE TABLE scratch_events (at timestamptz NOT NULL, kind text NOT NULL);
SELECT memoria.create_rollup('scratch', 'scratch_events', 'at', ARRAY['kind'], ARRAY['count(*) AS n']);
DROP TABLE scratch_events;
DROP TABLE scratch_events CASCADE;
SELECT rollup FROM memoria.status ORDER BY 1;
SELECT to_regclass('memoria_rollup.scratch');
