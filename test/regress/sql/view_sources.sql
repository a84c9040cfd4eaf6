-- view_sources: a rollup of a view joining a fact table to the tables its
-- dimensions come from.  Every table of the join is captured; after a write
-- to any of them (a task re-assigned, an agent moved, a dimension row
-- deleted with or without a cascade, a row appearing for a LEFT JOIN,
-- TRUNCATE) the rollup equals a fresh GROUP BY over the view once refreshed,
-- and its _live view before.  The shapes memoria cannot follow, and tables
-- the caller does not own, are refused at create_rollup; DDL on the view or
-- its tables is guarded; drop_rollup leaves nothing behind.
SET client_min_messages = warning;
CREATE TABLE vs_workspace (id int PRIMARY KEY);
CREATE TABLE vs_agent (id int PRIMARY KEY, workspace_id int NOT NULL REFERENCES vs_workspace ON DELETE CASCADE);
CREATE TABLE vs_project (id int PRIMARY KEY);
-- No foreign key: a task may name an issue that does not exist (yet).
CREATE TABLE vs_issue (id int PRIMARY KEY, project_id int REFERENCES vs_project ON DELETE SET NULL);
CREATE TABLE vs_task (id int PRIMARY KEY, agent_id int NOT NULL REFERENCES vs_agent ON DELETE CASCADE,
                      issue_id int, runtime_id int);
CREATE TABLE vs_usage (id serial PRIMARY KEY, task_id int NOT NULL REFERENCES vs_task ON DELETE CASCADE,
                       model text NOT NULL, tokens bigint NOT NULL, at timestamptz NOT NULL);
CREATE INDEX ON vs_usage (task_id);
CREATE INDEX ON vs_usage (at);
CREATE INDEX ON vs_task (issue_id);
CREATE INDEX ON vs_issue (project_id);
CREATE VIEW vs_usage_v AS
SELECT u.at, u.model, u.tokens, u.task_id, a.workspace_id, t.agent_id, t.runtime_id, i.project_id
FROM vs_usage u
JOIN vs_task t ON t.id = u.task_id
JOIN vs_agent a ON a.id = t.agent_id
LEFT JOIN vs_issue i ON i.id = t.issue_id;
INSERT INTO vs_workspace SELECT g FROM generate_series(1, 3) g;
INSERT INTO vs_agent SELECT g, 1 + g % 3 FROM generate_series(1, 6) g;
INSERT INTO vs_project SELECT g FROM generate_series(1, 3) g;
INSERT INTO vs_issue SELECT g, 1 + g % 3 FROM generate_series(1, 4) g;
INSERT INTO vs_task SELECT g, 1 + g % 6, 1 + g % 5, NULLIF(g % 3, 0) FROM generate_series(1, 20) g;
INSERT INTO vs_usage (task_id, model, tokens, at)
SELECT 1 + g % 20, 'm' || (g % 2), g, timestamptz '2026-01-01' + g * interval '37 minutes' FROM generate_series(1, 600) g;

-- The missing index on vs_task (agent_id) is named; the scope is the fact's
-- dimensions (model): keys are (day, model).
SELECT memoria.create_rollup('vs_daily', 'vs_usage_v', 'at', ARRAY['workspace_id', 'agent_id', 'project_id', 'model'],
    ARRAY['sum(tokens)::bigint AS tokens', 'count(*) AS events', 'count(DISTINCT task_id) AS tasks']) AS created;
CREATE INDEX ON vs_task (agent_id);
SELECT memoria.create_rollup('vs_runtime', 'vs_usage_v', 'at', ARRAY['runtime_id', 'model'],
    ARRAY['count(*) AS events'], bucket => '1 hour', filter => 'runtime_id IS NOT NULL') AS created;
SELECT name, scope_attnums, link_log IS NOT NULL AS has_link_log FROM memoria.rollups WHERE name LIKE 'vs%' ORDER BY id;
SELECT tgrelid::regclass AS "table", count(*) AS triggers FROM pg_trigger
WHERE tgname LIKE 'zz\_memoria\_%' AND tgrelid::regclass::text LIKE 'vs%' GROUP BY 1 ORDER BY 1;
DO $$ BEGIN PERFORM memoria.refresh_window(name, '-infinity', 'infinity') FROM memoria.rollups WHERE name LIKE 'vs%'; END $$;

CREATE VIEW vs_daily_truth AS
SELECT memoria.bucket(at, '1 day', 'UTC') AS bucket, workspace_id, agent_id, project_id, model,
       sum(tokens)::bigint AS tokens, count(*) AS events, count(DISTINCT task_id) AS tasks
FROM vs_usage_v GROUP BY 1, 2, 3, 4, 5;
CREATE VIEW vs_runtime_truth AS
SELECT memoria.bucket(at, '1 hour', 'UTC') AS bucket, runtime_id, model, count(*) AS events
FROM vs_usage_v WHERE runtime_id IS NOT NULL GROUP BY 1, 2, 3;
CREATE FUNCTION vs_differences(a regclass, b regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE d bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) UNION ALL '
                   '(SELECT * FROM %s EXCEPT ALL SELECT * FROM %s)) d', a, b, b, a) INTO d;
    RETURN d;
END $$;
-- check(): stale rollup rows before the refresh, differences of _live
-- before it, and of the rollup after it (both must be 0).
CREATE FUNCTION vs_check(OUT stale_before bigint, OUT live bigint, OUT after_refresh bigint) LANGUAGE plpgsql AS $$
BEGIN
    stale_before := vs_differences('memoria_rollup.vs_daily', 'vs_daily_truth')
                    + vs_differences('memoria_rollup.vs_runtime', 'vs_runtime_truth');
    live := vs_differences('memoria_rollup.vs_daily_live', 'vs_daily_truth')
            + vs_differences('memoria_rollup.vs_runtime_live', 'vs_runtime_truth');
    PERFORM memoria.refresh('vs_daily');
    PERFORM memoria.refresh('vs_runtime');
    after_refresh := vs_differences('memoria_rollup.vs_daily', 'vs_daily_truth')
                     + vs_differences('memoria_rollup.vs_runtime', 'vs_runtime_truth');
END $$;
SELECT * FROM vs_check();

-- An agent moves to another workspace: its writes wait in the link log.
UPDATE vs_agent SET workspace_id = 3 WHERE id = 1;
SELECT rollup, pending_keys FROM memoria.status WHERE rollup LIKE 'vs%' ORDER BY 1;
SELECT * FROM vs_check();
-- Tasks re-assigned to another agent, runtime, issue.
UPDATE vs_task SET agent_id = 2 WHERE id IN (5, 6);
UPDATE vs_task SET runtime_id = 7 WHERE id = 8;
UPDATE vs_task SET runtime_id = NULL WHERE id = 9;
UPDATE vs_task SET issue_id = 99 WHERE id = 10;
SELECT * FROM vs_check();
-- An issue moved to another project, and a project deleted (SET NULL).
UPDATE vs_issue SET project_id = 3 WHERE id = 1;
DELETE FROM vs_project WHERE id = 2;
SELECT * FROM vs_check();
-- A row appears for a LEFT JOIN that found none: issue 99 is created.
INSERT INTO vs_issue VALUES (99, 1);
SELECT * FROM vs_check();
-- A dimension row deleted without a cascade: the LEFT JOIN finds nothing now.
DELETE FROM vs_issue WHERE id = 3;
SELECT * FROM vs_check();
-- Cascades: an agent, then a workspace, with their tasks and usage.
DELETE FROM vs_agent WHERE id = 4;
DELETE FROM vs_workspace WHERE id = 2;
SELECT * FROM vs_check();
-- A key (the id the join compares) changes, in the middle of a chain.
UPDATE vs_issue SET id = 1000 WHERE id = 1;
SELECT * FROM vs_check();
-- Several tables in one transaction, and a rolled-back savepoint.
BEGIN;
UPDATE vs_agent SET workspace_id = 1 WHERE id = 3;
INSERT INTO vs_usage (task_id, model, tokens, at) VALUES (1, 'm9', 5, '2026-01-03 10:00');
SAVEPOINT s;
UPDATE vs_issue SET project_id = NULL;
ROLLBACK TO s;
UPDATE vs_task SET agent_id = 3 WHERE id = 2;
-- The transaction's own writes show in _live before it commits.
SELECT vs_differences('memoria_rollup.vs_daily_live', 'vs_daily_truth') AS own_writes_live;
COMMIT;
SELECT * FROM vs_check();
-- TRUNCATE of a joined table rebuilds the rollup.
TRUNCATE vs_issue CASCADE;
SELECT rollup, pending_keys FROM memoria.status WHERE rollup LIKE 'vs%' ORDER BY 1;
SELECT * FROM vs_check();
SELECT count(*) AS wrong_groups FROM memoria.verify('vs_daily');

-- Join values are logged in their binary form: a writer's DateStyle or
-- extra_float_digits changes nothing; a renamed enum label rebuilds.  A
-- join under a nondeterministic collation matches as the view does.
CREATE COLLATION vs_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TYPE vs_tier AS ENUM ('free', 'pro');
CREATE TABLE vs_cal (day date PRIMARY KEY, holiday bool NOT NULL);
CREATE TABLE vs_team (code text COLLATE vs_ci PRIMARY KEY, name text NOT NULL);
CREATE TABLE vs_plan (tier vs_tier PRIMARY KEY, label text NOT NULL);
CREATE TABLE vs_hits (at timestamptz NOT NULL, day date NOT NULL, code text NOT NULL, tier vs_tier NOT NULL, n int NOT NULL);
CREATE INDEX ON vs_hits (day);
CREATE INDEX ON vs_hits (code);
CREATE INDEX ON vs_hits (tier);
CREATE VIEW vs_hits_v AS
SELECT h.at, h.n, c.holiday, t.name, p.label
FROM vs_hits h JOIN vs_cal c ON c.day = h.day JOIN vs_team t ON t.code = h.code JOIN vs_plan p ON p.tier = h.tier;
INSERT INTO vs_cal VALUES ('2024-02-01', false), ('2024-01-02', false), ('2024-02-13', false);
INSERT INTO vs_team VALUES ('abc', 'A');
INSERT INTO vs_plan VALUES ('free', 'F'), ('pro', 'P');
INSERT INTO vs_hits VALUES ('2024-02-01 10:00+00', '2024-02-01', 'abc', 'pro', 1), ('2024-01-02 10:00+00', '2024-01-02', 'ABC', 'free', 5),
                           ('2024-02-13 10:00+00', '2024-02-13', 'Abc', 'pro', 7);
SELECT memoria.create_rollup('vs_hits_daily', 'vs_hits_v', 'at', '{holiday,name,label}', '{sum(n) AS n}') AS created;
SELECT status FROM memoria.refresh_window('vs_hits_daily', '-infinity', 'infinity');
CREATE VIEW vs_hits_truth AS SELECT memoria.bucket(at, '1 day', 'UTC') AS bucket, holiday, name, label, sum(n) AS n
                             FROM vs_hits_v GROUP BY 1, 2, 3, 4;
SET DateStyle = 'SQL, DMY';
UPDATE vs_cal SET holiday = true WHERE day = '2024-02-01';
UPDATE vs_cal SET holiday = true WHERE day = '2024-02-13';
RESET DateStyle;
UPDATE vs_team SET name = 'B';
SELECT vs_differences('memoria_rollup.vs_hits_daily_live', 'vs_hits_truth') AS live,
       (SELECT status FROM memoria.refresh('vs_hits_daily')) AS refresh,
       vs_differences('memoria_rollup.vs_hits_daily', 'vs_hits_truth') AS after_refresh;
UPDATE vs_plan SET label = 'P2' WHERE tier = 'pro';
ALTER TYPE vs_tier RENAME VALUE 'pro' TO 'premium';
SELECT vs_differences('memoria_rollup.vs_hits_daily_live', 'vs_hits_truth') AS live,
       (SELECT status FROM memoria.refresh('vs_hits_daily')) AS refresh,
       vs_differences('memoria_rollup.vs_hits_daily', 'vs_hits_truth') AS after_refresh;
SELECT * FROM memoria_rollup.vs_hits_daily ORDER BY 1;
-- drop_rollup keeping the table takes the link log along.
SELECT 'memoria_state.links_' || id AS hits_links FROM memoria.rollups WHERE name = 'vs_hits_daily' \gset
SELECT to_regclass(:'hits_links') IS NOT NULL AS link_log_before;
SELECT memoria.drop_rollup('vs_hits_daily');
SELECT to_regclass(:'hits_links') IS NOT NULL AS link_log_after;
DROP TABLE memoria_rollup.vs_hits_daily;
DROP VIEW vs_hits_truth, vs_hits_v;
DROP TABLE vs_hits, vs_cal, vs_team, vs_plan;
DROP TYPE vs_tier;
DROP COLLATION vs_ci;

-- Shapes memoria cannot follow, each refused with its reason.
CREATE VIEW vs_agg AS SELECT at, count(*) AS n FROM vs_usage GROUP BY at;
SELECT memoria.create_rollup('x', 'vs_agg', 'at', '{}', '{count(*) AS n}');
CREATE VIEW vs_theta AS SELECT u.at, t.agent_id FROM vs_usage u JOIN vs_task t ON t.id > u.task_id;
SELECT memoria.create_rollup('x', 'vs_theta', 'at', '{agent_id}', '{count(*) AS n}');
CREATE VIEW vs_right AS SELECT u.at, t.agent_id FROM vs_usage u RIGHT JOIN vs_task t ON t.id = u.task_id;
SELECT memoria.create_rollup('x', 'vs_right', 'at', '{agent_id}', '{count(*) AS n}');
CREATE VIEW vs_nullable_fact AS SELECT u.at, t.agent_id FROM vs_task t LEFT JOIN vs_usage u ON u.task_id = t.id;
SELECT memoria.create_rollup('x', 'vs_nullable_fact', 'at', '{agent_id}', '{count(*) AS n}');
CREATE VIEW vs_sub AS SELECT u.at, u.model FROM vs_usage u WHERE u.task_id IN (SELECT id FROM vs_task);
SELECT memoria.create_rollup('x', 'vs_sub', 'at', '{model}', '{count(*) AS n}');
CREATE VIEW vs_now AS SELECT u.at, u.model, now() AS seen FROM vs_usage u;
SELECT memoria.create_rollup('x', 'vs_now', 'at', '{model}', '{count(*) AS n}');
CREATE VIEW vs_comma AS SELECT u.at, t.agent_id FROM vs_usage u, vs_task t WHERE t.id = u.task_id;
SELECT memoria.create_rollup('x', 'vs_comma', 'at', '{agent_id}', '{count(*) AS n}');
CREATE VIEW vs_nested AS SELECT v.at, v.model FROM vs_usage_v v;
SELECT memoria.create_rollup('x', 'vs_nested', 'at', '{model}', '{count(*) AS n}');
CREATE VIEW vs_twice AS SELECT u.at, t1.agent_id FROM vs_usage u JOIN vs_task t1 ON t1.id = u.task_id
                        JOIN vs_task t2 ON t2.id = t1.id;
SELECT memoria.create_rollup('x', 'vs_twice', 'at', '{agent_id}', '{count(*) AS n}');
CREATE VIEW vs_time_expr AS SELECT coalesce(u.at, u.at) AS at, u.model FROM vs_usage u;
SELECT memoria.create_rollup('x', 'vs_time_expr', 'at', '{model}', '{count(*) AS n}');
CREATE VIEW vs_sample AS SELECT u.at, t.agent_id FROM vs_usage u TABLESAMPLE BERNOULLI (50) JOIN vs_task t ON t.id = u.task_id;
SELECT memoria.create_rollup('x', 'vs_sample', 'at', '{agent_id}', '{count(*) AS n}');
CREATE TABLE vs_arr (ids int[] PRIMARY KEY, name text);
CREATE VIEW vs_array_join AS SELECT u.at, a.name FROM vs_usage u JOIN vs_arr a ON a.ids = ARRAY[u.task_id];
SELECT memoria.create_rollup('x', 'vs_array_join', 'at', '{name}', '{count(*) AS n}');
CREATE TABLE vs_arr2 (ids int[] NOT NULL, at timestamptz NOT NULL);
CREATE VIEW vs_array_join2 AS SELECT u.at, a.name FROM vs_arr2 u JOIN vs_arr a ON a.ids = u.ids;
SELECT memoria.create_rollup('x', 'vs_array_join2', 'at', '{name}', '{count(*) AS n}');
CREATE VIEW vs_ctid AS SELECT u.at, u.ctid AS pos FROM vs_usage u;
SELECT memoria.create_rollup('x', 'vs_ctid', 'at', '{pos}', '{count(*) AS n}');
CREATE TABLE vs_parted (id int NOT NULL, region int NOT NULL, name text) PARTITION BY LIST (region);
CREATE TABLE vs_parted_1 PARTITION OF vs_parted FOR VALUES IN (1);
CREATE VIEW vs_part_twice AS SELECT u.at, p.name, q.name AS other FROM vs_usage u JOIN vs_parted p ON p.id = u.task_id
                             LEFT JOIN vs_parted_1 q ON q.id = u.task_id;
SELECT memoria.create_rollup('x', 'vs_part_twice', 'at', '{name,other}', '{count(*) AS n}');
SELECT memoria.create_rollup('x', 'vs_usage_v', 'at', '{workspace_id,model}', '{count(*) AS n}',
                             scope => '{workspace_id}');
SELECT memoria.create_rollup('x', 'vs_usage_v', 'at', '{model}', '{count(*) AS n}', invalidation => 'updated_at',
                             updated_at_column => 'at');
-- Nothing was left behind.
SELECT count(*) AS rollups FROM memoria.rollups WHERE name = 'x';

-- A view over tables the caller does not own: refused (memoria would put
-- triggers on them).
CREATE ROLE memoria_vs_mallory;
GRANT SELECT ON vs_usage, vs_task TO memoria_vs_mallory;
GRANT CREATE ON SCHEMA public TO memoria_vs_mallory;
SET ROLE memoria_vs_mallory;
CREATE VIEW vs_mallory AS SELECT u.at, t.agent_id FROM vs_usage u JOIN vs_task t ON t.id = u.task_id;
SELECT memoria.create_rollup('x', 'vs_mallory', 'at', '{agent_id}', '{count(*) AS n}');
DROP VIEW vs_mallory;
RESET ROLE;

-- DDL: a replaced view is followed (its new tables captured) and rebuilt;
-- one that would read a table its owner does not own, or no longer fits,
-- is refused; dropping a joined table needs CASCADE (the view depends on it).
CREATE TABLE vs_runtime (id int PRIMARY KEY, zone text NOT NULL DEFAULT 'UTC');
INSERT INTO vs_runtime SELECT g, 'UTC' FROM generate_series(0, 7) g;
CREATE OR REPLACE VIEW vs_usage_v AS
SELECT u.at, u.model, u.tokens, u.task_id, a.workspace_id, t.agent_id, t.runtime_id, i.project_id, r.zone
FROM vs_usage u
JOIN vs_task t ON t.id = u.task_id
JOIN vs_agent a ON a.id = t.agent_id
LEFT JOIN vs_issue i ON i.id = t.issue_id
LEFT JOIN vs_runtime r ON r.id = t.runtime_id;
SELECT count(*) AS runtime_triggers FROM pg_trigger WHERE tgrelid = 'vs_runtime'::regclass AND tgname LIKE 'zz\_memoria%';
SELECT * FROM vs_check();
-- Mallory's own rollup of her own tables: her view may not come to join a
-- table of someone else's.
SET ROLE memoria_vs_mallory;
CREATE TABLE vs_m_usage (at timestamptz NOT NULL, ws int NOT NULL, n int NOT NULL);
CREATE TABLE vs_m_ws (id int PRIMARY KEY);
CREATE VIEW vs_m AS SELECT u.at, u.ws FROM vs_m_usage u JOIN vs_m_ws w ON w.id = u.ws;
SELECT memoria.create_rollup('vs_m', 'vs_m', 'at', '{ws}', '{count(*) AS n}') AS created;
CREATE OR REPLACE VIEW vs_m AS SELECT u.at, u.ws FROM vs_m_usage u JOIN vs_m_ws w ON w.id = u.ws
                                                   JOIN vs_task t ON t.id = u.ws;
SELECT memoria.drop_rollup('vs_m', drop_table => true);
DROP VIEW vs_m;
DROP TABLE vs_m_usage, vs_m_ws;
RESET ROLE;
-- A replaced view that no longer joins on equality: refused.
CREATE OR REPLACE VIEW vs_usage_v AS
SELECT u.at, u.model, u.tokens, u.task_id, a.workspace_id, t.agent_id, t.runtime_id, i.project_id, r.zone
FROM vs_usage u
JOIN vs_task t ON t.id = u.task_id
JOIN vs_agent a ON a.id = t.agent_id
LEFT JOIN vs_issue i ON i.id = t.issue_id
LEFT JOIN vs_runtime r ON r.id > t.runtime_id;
DROP TABLE vs_runtime;
-- A joined table's capture trigger disabled: warned, and the rollup rebuilt once it is back.
SELECT format('ALTER TABLE vs_agent DISABLE TRIGGER zz_memoria_capture_%s', id) AS disable,
       format('ALTER TABLE vs_agent ENABLE TRIGGER zz_memoria_capture_%s', id) AS enable
FROM memoria.rollups WHERE name = 'vs_daily' \gset
SET client_min_messages = error;  -- (the warning names the trigger)
:disable;
SELECT rollup, state FROM memoria.status WHERE rollup = 'vs_daily';
:enable;
SET client_min_messages = warning;
UPDATE vs_agent SET workspace_id = 1;
SELECT * FROM vs_check();

-- drop_rollup: no trigger left on any table, no log.
SELECT memoria.drop_rollup('vs_daily', drop_table => true), memoria.drop_rollup('vs_runtime', drop_table => true);
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgname LIKE 'zz\_memoria%' AND tgrelid::regclass::text LIKE 'vs%';
SELECT count(*) AS logs_left FROM pg_class WHERE relnamespace = 'memoria_state'::regnamespace
                                           AND relname <> ALL (SELECT 'dirty_' || id FROM memoria.rollups);
DROP VIEW vs_daily_truth, vs_runtime_truth, vs_usage_v, vs_agg, vs_theta, vs_right, vs_nullable_fact, vs_sub, vs_now,
          vs_comma, vs_nested, vs_twice, vs_time_expr, vs_sample, vs_ctid, vs_part_twice, vs_array_join, vs_array_join2;
DROP TABLE vs_usage, vs_task, vs_issue, vs_project, vs_agent, vs_workspace, vs_runtime, vs_parted, vs_arr, vs_arr2;
DROP FUNCTION vs_check(), vs_differences(regclass, regclass);
REVOKE ALL ON SCHEMA public FROM memoria_vs_mallory;
DROP ROLE memoria_vs_mallory;
