-- tools/demo.sql: the demo's SQL (run by tools/demo.sh).
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
SET TimeZone = 'Europe/Paris';  -- the rollup's days are Paris days; so are this session's literals
CREATE EXTENSION IF NOT EXISTS memoria;

\echo '== 1. a usage table with 1,000,000 rows: 90 days, 200 workspaces, 3 providers, 6 models'
CREATE TABLE task_usage (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    workspace_id  int NOT NULL,
    provider      text NOT NULL,
    model         text NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL
);
\timing on
INSERT INTO task_usage (created_at, workspace_id, provider, model, input_tokens, output_tokens)
SELECT timestamptz '2026-01-01 00:00+00' + (g::float8 / 1000000) * interval '90 days',
       1 + (hashint4(g) & 1023) % 200,
       (ARRAY['openai', 'anthropic', 'google'])[1 + g % 3],
       (ARRAY['gpt-5', 'gpt-5-mini', 'claude-opus', 'claude-haiku', 'gemini-pro', 'gemini-flash'])[1 + (g % 3) * 2 + (g / 7) % 2],
       100 + (hashint4(g * 7) & 4095), 10 + (hashint4(g * 13) & 511)
FROM generate_series(1, 1000000) g;
CREATE INDEX ON task_usage (created_at);
\timing off

\echo '== 2. a daily rollup per workspace, provider and model (Europe/Paris days)'
SELECT memoria.create_rollup(
    name        => 'task_usage_daily',
    source      => 'task_usage',
    time_column => 'created_at',
    dimensions  => ARRAY['workspace_id', 'provider', 'model'],
    measures    => ARRAY['sum(input_tokens) AS input_tokens',
                         'sum(output_tokens) AS output_tokens',
                         'count(*) AS events'],
    time_zone   => 'Europe/Paris');
\timing on
SELECT rollup, status, keys_refreshed AS buckets, rows_upserted FROM memoria.refresh_window('task_usage_daily', '-infinity', 'infinity');
\timing off
SELECT memoria.alter_rollup('task_usage_daily', refresh_interval => interval '2 seconds');

\echo '== 3. the application keeps writing: new events, a correction moving rows to another day, deletes'
SELECT pg_sleep(3);  -- let the worker take the rollup's first turn
INSERT INTO task_usage (created_at, workspace_id, provider, model, input_tokens, output_tokens)
SELECT timestamptz '2026-03-31 12:00+00' + g * interval '1 second', 7, 'anthropic', 'claude-opus', 1000, 100
FROM generate_series(1, 5000) g;
UPDATE task_usage SET created_at = created_at - interval '1 day', input_tokens = input_tokens + 1
WHERE workspace_id = 42 AND created_at >= '2026-02-10' AND created_at < '2026-02-11';
DELETE FROM task_usage WHERE workspace_id = 99 AND created_at < '2026-01-15';
SELECT rollup, pending_keys, lag, scheduled_by FROM memoria.status;

\echo '== 4. nobody calls refresh: the background worker does it within its 2-second interval'
DO $$
BEGIN
    FOR i IN 1 .. 120 LOOP
        EXIT WHEN (SELECT pending_keys = 0 FROM memoria.status WHERE rollup = 'task_usage_daily');
        PERFORM pg_sleep(0.5);
    END LOOP;
END $$;
SELECT rollup, pending_keys, last_status, last_duration, refreshes, scheduled_by FROM memoria.status;

\echo '== 5. the rollup next to the ground truth (workspace 42, February 8-12)'
SELECT r.bucket::date AS day, r.provider, r.model, r.input_tokens AS rollup_input, t.input_tokens AS truth_input,
       r.events AS rollup_events, t.events AS truth_events
FROM memoria_rollup.task_usage_daily r
JOIN (SELECT memoria.bucket(created_at, '1 day', 'Europe/Paris') AS bucket, provider, model,
             sum(input_tokens) AS input_tokens, count(*) AS events
      FROM task_usage WHERE workspace_id = 42 GROUP BY 1, 2, 3) t USING (bucket, provider, model)
WHERE r.workspace_id = 42 AND r.bucket >= '2026-02-08' AND r.bucket < '2026-02-12'
ORDER BY 1, 2, 3;

\echo '== 6. a 30-day dashboard query: rollup vs raw GROUP BY'
\timing on
SELECT provider, sum(input_tokens) AS input_tokens, sum(events) AS events
FROM memoria_rollup.task_usage_daily
WHERE workspace_id = 7 AND bucket >= '2026-03-01' GROUP BY 1 ORDER BY 1;
SELECT provider, sum(input_tokens) AS input_tokens, count(*) AS events
FROM task_usage WHERE workspace_id = 7 AND created_at >= memoria.bucket('2026-03-01', '1 day', 'Europe/Paris')
GROUP BY 1 ORDER BY 1;
\timing off

\echo '== 7. verify: rows where the rollup and a fresh aggregation differ (none = exact)'
SELECT count(*) AS differences FROM memoria.verify('task_usage_daily');

\echo '== 8. monthly invoices: a rollup of the daily rollup, in calendar months (Paris time)'
SELECT memoria.create_rollup('task_usage_monthly', 'memoria_rollup.task_usage_daily', 'bucket', ARRAY['workspace_id'],
    ARRAY['sum(input_tokens)::bigint AS input_tokens', 'sum(output_tokens)::bigint AS output_tokens'],
    bucket => '1 month', time_zone => 'Europe/Paris') IS NOT NULL AS created;
SELECT rollup, status FROM memoria.refresh_window('task_usage_monthly', '-infinity', 'infinity');
SELECT bucket::date AS month, input_tokens, output_tokens FROM memoria_rollup.task_usage_monthly
WHERE workspace_id = 7 ORDER BY 1;

\echo '== 9. exact live reads: a write not refreshed yet is in <rollup>_live, not in the rollup'
BEGIN;
INSERT INTO task_usage (created_at, workspace_id, provider, model, input_tokens, output_tokens)
VALUES ('2026-03-31 23:00+02', 7, 'openai', 'gpt-5', 1000000, 0);
SELECT (SELECT sum(input_tokens) FROM memoria_rollup.task_usage_daily WHERE workspace_id = 7) AS daily_rollup,
       (SELECT sum(input_tokens) FROM memoria_rollup.task_usage_daily_live WHERE workspace_id = 7) AS daily_live,
       (SELECT sum(input_tokens) FROM task_usage WHERE workspace_id = 7) AS truth;
COMMIT;
-- The worker refreshes the daily rollup, and then, in the same visit, the monthly one.
DO $$
BEGIN
    FOR i IN 1 .. 120 LOOP
        EXIT WHEN (SELECT bool_and(pending_keys = 0) FROM memoria.status);
        PERFORM pg_sleep(0.5);
    END LOOP;
END $$;
SELECT bucket::date AS month, input_tokens FROM memoria_rollup.task_usage_monthly
WHERE workspace_id = 7 AND bucket >= '2026-03-01' ORDER BY 1;
\x on
SELECT * FROM memoria.status;
