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
\echo '== 10. dimensions from joined tables: usage rows carry only task_id; workspace and agent come through joins'
CREATE TABLE workspace (id int PRIMARY KEY);
CREATE TABLE agent (id int PRIMARY KEY, workspace_id int NOT NULL REFERENCES workspace ON DELETE CASCADE);
CREATE TABLE agent_task_queue (id int PRIMARY KEY, agent_id int NOT NULL REFERENCES agent ON DELETE CASCADE);
CREATE TABLE task_event (id bigserial PRIMARY KEY, task_id int NOT NULL REFERENCES agent_task_queue ON DELETE CASCADE,
                         model text NOT NULL, tokens bigint NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO workspace SELECT g FROM generate_series(1, 200) g;
INSERT INTO agent SELECT g, 1 + g % 200 FROM generate_series(1, 2000) g;
INSERT INTO agent_task_queue SELECT g, 1 + g % 2000 FROM generate_series(1, 20000) g;
INSERT INTO task_event (task_id, model, tokens, created_at)
SELECT 1 + (hashint4(g) & 16383), (ARRAY['gpt-5', 'claude-opus', 'gemini-pro'])[1 + g % 3], 100 + g % 900,
       timestamptz '2026-03-01 00:00+00' + (g::float8 / 200000) * interval '30 days'
FROM generate_series(1, 200000) g;
-- The indexes a refresh follows a changed agent or task through.
CREATE INDEX ON task_event (task_id);
CREATE INDEX ON task_event (created_at);
CREATE INDEX ON agent_task_queue (agent_id);
CREATE VIEW task_event_v AS
SELECT e.created_at, e.model, e.tokens, e.task_id, q.agent_id, a.workspace_id
FROM task_event e JOIN agent_task_queue q ON q.id = e.task_id JOIN agent a ON a.id = q.agent_id;
SELECT memoria.create_rollup('tokens_by_agent', 'task_event_v', 'created_at', ARRAY['workspace_id', 'agent_id', 'model'],
    ARRAY['sum(tokens)::bigint AS tokens', 'count(DISTINCT task_id) AS tasks'], bucket => '1 hour') IS NOT NULL AS created;
SELECT rollup, status, rows_upserted FROM memoria.refresh_window('tokens_by_agent', '-infinity', 'infinity');
SELECT memoria.alter_rollup('tokens_by_agent', refresh_interval => interval '2 seconds') IS NOT NULL AS altered;
-- Agent 17 moves to workspace 3; nothing in task_event changes.
UPDATE agent SET workspace_id = 3 WHERE id = 17;
SELECT (SELECT sum(tokens) FROM memoria_rollup.tokens_by_agent WHERE workspace_id = 3) AS rollup_now,
       (SELECT sum(tokens) FROM memoria_rollup.tokens_by_agent_live WHERE workspace_id = 3) AS live_now,
       (SELECT sum(tokens) FROM task_event_v WHERE workspace_id = 3) AS truth;
DO $$
BEGIN
    FOR i IN 1 .. 120 LOOP
        EXIT WHEN (SELECT pending_keys = 0 FROM memoria.status WHERE rollup = 'tokens_by_agent');
        PERFORM pg_sleep(0.5);
    END LOOP;
END $$;
SELECT (SELECT sum(tokens) FROM memoria_rollup.tokens_by_agent WHERE workspace_id = 3) AS rollup_after_worker,
       (SELECT count(*) FROM memoria.verify('tokens_by_agent')) AS differences;
\x on
SELECT * FROM memoria.status;
