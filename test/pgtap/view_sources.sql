-- view_sources.sql: differential test of rollups whose source is a view
-- joining a fact table (task_usage) through INNER and LEFT JOIN chains to
-- dimension tables (agent_task_queue -> agent, issue -> project,
-- agent_runtime).  Seeded random workloads write to every table: usage
-- upserts, late and corrected rows, tasks re-assigned to another runtime,
-- agent or issue, issues moved between projects, agents and projects moved
-- between workspaces, deletes of every kind of dimension row (with their
-- FK cascades), new dimension rows, TRUNCATE ... CASCADE of a dimension
-- table and TRUNCATE of the fact table, multi-statement transactions and
-- rolled-back subtransactions, with refreshes (full or bounded by max_keys)
-- at random points.  At every checkpoint each rollup's _live view must
-- equal a fresh GROUP BY over its view, row for row; then, after a full
-- refresh, so must the rollup, and memoria.verify() must report nothing.
-- The workload runs three times, in READ COMMITTED, REPEATABLE READ and
-- SERIALIZABLE sessions.
SELECT plan(43);
SET client_min_messages = warning;

CREATE TABLE workspace (id uuid PRIMARY KEY DEFAULT gen_random_uuid());
CREATE TABLE project (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspace ON DELETE CASCADE
);
CREATE TABLE agent (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspace ON DELETE CASCADE
);
CREATE TABLE agent_runtime (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspace ON DELETE CASCADE,
    timezone text NOT NULL DEFAULT 'UTC'
);
CREATE TABLE issue (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workspace_id uuid NOT NULL REFERENCES workspace ON DELETE CASCADE,
    project_id uuid REFERENCES project ON DELETE SET NULL
);
CREATE TABLE agent_task_queue (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id uuid NOT NULL REFERENCES agent ON DELETE CASCADE,
    issue_id uuid REFERENCES issue ON DELETE CASCADE,
    runtime_id uuid REFERENCES agent_runtime ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE task_usage (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id uuid NOT NULL REFERENCES agent_task_queue ON DELETE CASCADE,
    provider text NOT NULL DEFAULT '',
    model text NOT NULL,
    input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cache_read_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz,
    UNIQUE (task_id, provider, model)
);
CREATE INDEX ON project (workspace_id);
CREATE INDEX ON agent (workspace_id);
CREATE INDEX ON agent_runtime (workspace_id);
CREATE INDEX ON issue (workspace_id);
CREATE INDEX ON issue (project_id);
CREATE INDEX ON agent_task_queue (agent_id);
CREATE INDEX ON agent_task_queue (issue_id);
CREATE INDEX ON agent_task_queue (runtime_id);
CREATE INDEX ON task_usage (task_id);
CREATE INDEX ON task_usage (created_at);

-- The fact table, an INNER JOIN chain to the agent, a LEFT JOIN to the issue.
CREATE VIEW usage_v AS
SELECT u.id, u.task_id, u.provider, u.model, u.input_tokens, u.output_tokens,
       u.cache_read_tokens, u.cache_write_tokens, u.created_at,
       a.workspace_id, q.runtime_id, q.agent_id, i.project_id
FROM task_usage u
JOIN agent_task_queue q ON q.id = u.task_id
JOIN agent a ON a.id = q.agent_id
LEFT JOIN issue i ON i.id = q.issue_id;

-- Only tasks with a runtime (INNER JOIN), with an attribute of the runtime
-- and one reached through two LEFT JOINs (issue -> project).
CREATE VIEW usage_rt_v AS
SELECT u.id, u.task_id, u.provider, u.model, u.input_tokens, u.output_tokens,
       u.cache_read_tokens, u.cache_write_tokens, u.created_at,
       a.workspace_id, q.runtime_id, r.timezone AS runtime_timezone,
       p.workspace_id AS project_workspace_id
FROM task_usage u
JOIN agent_task_queue q ON q.id = u.task_id
JOIN agent a ON a.id = q.agent_id
JOIN agent_runtime r ON r.id = q.runtime_id
LEFT JOIN issue i ON i.id = q.issue_id
LEFT JOIN project p ON p.id = i.project_id;

------------------------------------------------------------------------------
-- Random data, reproducible: every uuid and choice comes from random(),
-- seeded by setseed().
------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.ruuid() RETURNS uuid LANGUAGE sql AS $$ SELECT md5(random()::text)::uuid $$;
-- A time in the week from 2026-03-01; a late one, 1 to 21 days before it.
CREATE FUNCTION pg_temp.rat() RETURNS timestamptz LANGUAGE sql AS
$$ SELECT timestamptz '2026-03-01 00:00+00' + random() * interval '7 days' $$;
CREATE FUNCTION pg_temp.late_at() RETURNS timestamptz LANGUAGE sql AS
$$ SELECT timestamptz '2026-03-01 00:00+00' - (1 + random() * 20) * interval '1 day' $$;
CREATE FUNCTION pg_temp.rprovider() RETURNS text LANGUAGE sql AS
$$ SELECT (ARRAY['', 'anthropic', 'openai'])[1 + floor(random() * 3)::int] $$;
CREATE FUNCTION pg_temp.rmodel() RETURNS text LANGUAGE sql AS
$$ SELECT (ARRAY['m-small', 'm-large', 'm-huge'])[1 + floor(random() * 3)::int] $$;
CREATE FUNCTION pg_temp.rtz() RETURNS text LANGUAGE sql AS
$$ SELECT (ARRAY['UTC', 'Europe/Berlin', 'Asia/Tokyo', 'America/Chicago'])[1 + floor(random() * 4)::int] $$;

-- some(tbl, k): k random ids of tbl (fewer if it has fewer rows).
CREATE FUNCTION pg_temp.some(tbl text, k int) RETURNS SETOF uuid LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT id FROM %I ORDER BY md5(id::text || %L) LIMIT %s', tbl, random()::text, k);
END $$;
CREATE FUNCTION pg_temp.pick(tbl text) RETURNS uuid LANGUAGE sql AS $$ SELECT pg_temp.some(tbl, 1) $$;
CREATE FUNCTION pg_temp.ids(tbl text, k int) RETURNS uuid[] LANGUAGE sql AS $$ SELECT ARRAY(SELECT pg_temp.some(tbl, k)) $$;

-- populate(n): n workspaces, each with projects, agents, runtimes, issues.
CREATE FUNCTION pg_temp.populate(n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ws uuid;
BEGIN
    FOR w IN 1 .. n LOOP
        ws := pg_temp.ruuid();
        INSERT INTO workspace VALUES (ws);
        INSERT INTO project (id, workspace_id) SELECT pg_temp.ruuid(), ws FROM generate_series(1, 2);
        INSERT INTO agent (id, workspace_id) SELECT pg_temp.ruuid(), ws FROM generate_series(1, 3);
        INSERT INTO agent_runtime (id, workspace_id, timezone) SELECT pg_temp.ruuid(), ws, pg_temp.rtz() FROM generate_series(1, 2);
        INSERT INTO issue (id, workspace_id, project_id)
        SELECT pg_temp.ruuid(), ws, CASE WHEN random() < 0.25 THEN NULL ELSE pg_temp.pick('project') END
        FROM generate_series(1, 5);
    END LOOP;
END $$;

-- add_tasks(n): tasks of random agents, some without a runtime or an issue.
CREATE FUNCTION pg_temp.add_tasks(n int) RETURNS void LANGUAGE sql AS $$
    INSERT INTO agent_task_queue (id, agent_id, issue_id, runtime_id, created_at)
    SELECT id, agent_id, issue_id, runtime_id, created_at FROM (
        SELECT pg_temp.ruuid() AS id, pg_temp.pick('agent') AS agent_id,
               CASE WHEN random() < 0.2 THEN NULL ELSE pg_temp.pick('issue') END AS issue_id,
               CASE WHEN random() < 0.2 THEN NULL ELSE pg_temp.pick('agent_runtime') END AS runtime_id,
               pg_temp.rat() AS created_at
        FROM generate_series(1, n)) s
    WHERE agent_id IS NOT NULL
$$;

-- add_usage(n, late): an upsert of up to n usage rows of random tasks; a
-- conflicting row gets the new tokens, and sometimes the new time.
CREATE FUNCTION pg_temp.add_usage(n int, late boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    move_time boolean := random() < 0.3;
BEGIN
    INSERT INTO task_usage AS u (id, task_id, provider, model, input_tokens, output_tokens,
                                 cache_read_tokens, cache_write_tokens, created_at, updated_at)
    SELECT DISTINCT ON (s.task_id, s.provider, s.model) s.*
    FROM (SELECT pg_temp.ruuid() AS id, pg_temp.pick('agent_task_queue') AS task_id,
                 pg_temp.rprovider() AS provider, pg_temp.rmodel() AS model,
                 floor(random() * 1000)::bigint AS input_tokens, floor(random() * 500)::bigint AS output_tokens,
                 floor(random() * 3000)::bigint AS cache_read_tokens, floor(random() * 100)::bigint AS cache_write_tokens,
                 CASE WHEN late THEN pg_temp.late_at() ELSE pg_temp.rat() END AS created_at,
                 now() AS updated_at
          FROM generate_series(1, n)) s
    WHERE s.task_id IS NOT NULL
    ORDER BY s.task_id, s.provider, s.model, s.id
    ON CONFLICT (task_id, provider, model) DO UPDATE
    SET input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
        cache_read_tokens = EXCLUDED.cache_read_tokens, cache_write_tokens = EXCLUDED.cache_write_tokens,
        updated_at = EXCLUDED.updated_at,
        created_at = CASE WHEN move_time THEN EXCLUDED.created_at ELSE u.created_at END;
END $$;

-- refill(): after a TRUNCATE ... CASCADE, dimension rows where missing,
-- then tasks and usage.
CREATE FUNCTION pg_temp.refill() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM workspace) < 3 THEN PERFORM pg_temp.populate(2); END IF;
    INSERT INTO project (id, workspace_id) SELECT pg_temp.ruuid(), w.id FROM workspace w
    WHERE NOT EXISTS (SELECT FROM project p WHERE p.workspace_id = w.id);
    INSERT INTO agent_runtime (id, workspace_id, timezone) SELECT pg_temp.ruuid(), w.id, pg_temp.rtz() FROM workspace w
    WHERE NOT EXISTS (SELECT FROM agent_runtime r WHERE r.workspace_id = w.id);
    INSERT INTO issue (id, workspace_id, project_id)
    SELECT pg_temp.ruuid(), w.id, CASE WHEN random() < 0.25 THEN NULL ELSE pg_temp.pick('project') END
    FROM workspace w, generate_series(1, 4)
    WHERE (SELECT count(*) FROM issue i WHERE i.workspace_id = w.id) < 4;
    PERFORM pg_temp.add_tasks(60);
    PERFORM pg_temp.add_usage(250, false);
    PERFORM pg_temp.add_usage(30, true);
END $$;

------------------------------------------------------------------------------
-- The write actions of the workload.
------------------------------------------------------------------------------
CREATE TEMP TABLE vs_actions (workload text, kind text);
CREATE TEMP TABLE vs_checks (workload text, step int, rollup text, kind text, n bigint, iso text);
CREATE TEMP TABLE vs_current (workload text);
INSERT INTO vs_current VALUES ('setup');

CREATE FUNCTION pg_temp.act(kind text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    x uuid;
    y uuid;
    t timestamptz;
    s uuid[];
BEGIN
    -- (ids are picked first: a volatile function in WHERE runs once per row)
    INSERT INTO vs_actions SELECT workload, kind FROM vs_current;
    CASE kind
    WHEN 'upsert' THEN          -- (topping up when cascades left little)
        IF (SELECT count(*) FROM agent) < 6 THEN PERFORM pg_temp.populate(1); END IF;
        IF (SELECT count(*) FROM agent_task_queue) < 40 THEN PERFORM pg_temp.add_tasks(20); END IF;
        PERFORM pg_temp.add_usage(CASE WHEN (SELECT count(*) FROM task_usage) < 150 THEN 40
                                       ELSE 1 + floor(random() * 8)::int END, false);
    WHEN 'late' THEN
        PERFORM pg_temp.add_usage(1 + floor(random() * 3)::int, true);
    WHEN 'upd_tokens' THEN
        s := pg_temp.ids('task_usage', 1 + floor(random() * 5)::int);
        UPDATE task_usage SET input_tokens = floor(random() * 1000)::bigint, output_tokens = output_tokens + 7,
                              cache_read_tokens = cache_read_tokens * 2, updated_at = now()
        WHERE id = ANY (s);
    WHEN 'upd_time' THEN        -- to another hour, maybe another day, or a late time
        s := pg_temp.ids('task_usage', 1 + floor(random() * 4)::int);
        UPDATE task_usage SET created_at = CASE WHEN random() < 0.6 THEN created_at + (floor(random() * 97) - 48) * interval '1 hour'
                                                WHEN random() < 0.5 THEN pg_temp.late_at() ELSE pg_temp.rat() END,
                              updated_at = now()
        WHERE id = ANY (s);
    WHEN 'upd_model' THEN       -- another provider and model (unless taken)
        x := pg_temp.pick('task_usage');
        BEGIN
            UPDATE task_usage SET provider = pg_temp.rprovider(), model = pg_temp.rmodel() WHERE id = x;
        EXCEPTION WHEN unique_violation THEN NULL;
        END;
    WHEN 'usage_task' THEN      -- a usage row moved to another task
        x := pg_temp.pick('task_usage');
        y := pg_temp.pick('agent_task_queue');
        BEGIN
            UPDATE task_usage SET task_id = y WHERE id = x AND y IS NOT NULL;
        EXCEPTION WHEN unique_violation THEN NULL;
        END;
    WHEN 'del_usage' THEN
        s := pg_temp.ids('task_usage', 1 + floor(random() * 5)::int);
        DELETE FROM task_usage WHERE id = ANY (s);
    WHEN 'del_usage_using' THEN -- DELETE ... USING: the usage of one agent's tasks before some time
        x := pg_temp.pick('agent');
        t := pg_temp.rat();
        DELETE FROM task_usage u USING agent_task_queue q
        WHERE q.id = u.task_id AND q.agent_id = x AND u.created_at < t;
    WHEN 'task_runtime' THEN
        s := pg_temp.ids('agent_task_queue', 1 + floor(random() * 3)::int);
        UPDATE agent_task_queue SET runtime_id = CASE WHEN random() < 0.3 THEN NULL ELSE pg_temp.pick('agent_runtime') END
        WHERE id = ANY (s);
    WHEN 'task_runtime_from' THEN   -- UPDATE ... FROM: every task of one agent to one runtime
        x := pg_temp.pick('agent_runtime');
        y := pg_temp.pick('agent');
        UPDATE agent_task_queue q SET runtime_id = x FROM agent a WHERE a.id = q.agent_id AND a.id = y;
    WHEN 'task_agent' THEN
        s := pg_temp.ids('agent_task_queue', 1 + floor(random() * 3)::int);
        UPDATE agent_task_queue SET agent_id = coalesce(pg_temp.pick('agent'), agent_id) WHERE id = ANY (s);
    WHEN 'task_issue' THEN
        s := pg_temp.ids('agent_task_queue', 1 + floor(random() * 3)::int);
        UPDATE agent_task_queue SET issue_id = CASE WHEN random() < 0.3 THEN NULL ELSE pg_temp.pick('issue') END
        WHERE id = ANY (s);
    WHEN 'issue_project' THEN
        s := pg_temp.ids('issue', 1 + floor(random() * 2)::int);
        UPDATE issue SET project_id = CASE WHEN random() < 0.3 THEN NULL ELSE pg_temp.pick('project') END
        WHERE id = ANY (s);
    WHEN 'agent_workspace' THEN
        x := pg_temp.pick('agent');
        y := pg_temp.pick('workspace');
        UPDATE agent SET workspace_id = y WHERE id = x AND y IS NOT NULL;
    WHEN 'agents_workspace' THEN    -- every agent of one workspace to another
        x := pg_temp.pick('workspace');
        y := pg_temp.pick('workspace');
        UPDATE agent SET workspace_id = y WHERE workspace_id = x;
    WHEN 'project_workspace' THEN
        x := pg_temp.pick('project');
        y := pg_temp.pick('workspace');
        UPDATE project SET workspace_id = y WHERE id = x AND y IS NOT NULL;
    WHEN 'runtime_tz' THEN
        s := pg_temp.ids('agent_runtime', 2);
        UPDATE agent_runtime SET timezone = pg_temp.rtz() WHERE id = ANY (s);
    WHEN 'noop_update' THEN     -- dimension rows rewritten with the same values
        s := pg_temp.ids('agent', 3);
        UPDATE agent SET workspace_id = workspace_id WHERE id = ANY (s);
        s := pg_temp.ids('agent_task_queue', 3);
        UPDATE agent_task_queue SET runtime_id = runtime_id WHERE id = ANY (s);
    WHEN 'del_task' THEN
        s := pg_temp.ids('agent_task_queue', 1 + floor(random() * 2)::int);
        DELETE FROM agent_task_queue WHERE id = ANY (s);
    WHEN 'del_issue' THEN
        x := pg_temp.pick('issue');
        DELETE FROM issue WHERE id = x;
    WHEN 'del_project' THEN     -- its issues lose their project (SET NULL)
        x := pg_temp.pick('project');
        DELETE FROM project WHERE id = x;
    WHEN 'del_agent' THEN
        x := pg_temp.pick('agent');
        DELETE FROM agent WHERE id = x;
    WHEN 'del_runtime' THEN
        x := pg_temp.pick('agent_runtime');
        DELETE FROM agent_runtime WHERE id = x;
    WHEN 'del_workspace' THEN   -- cascades to everything below it
        IF (SELECT count(*) FROM workspace) > 2 THEN
            x := pg_temp.pick('workspace');
            DELETE FROM workspace WHERE id = x;
        END IF;
    WHEN 'new_dims' THEN        -- a new workspace with its rows, tasks and usage
        PERFORM pg_temp.populate(1);
        PERFORM pg_temp.add_tasks(6);
        PERFORM pg_temp.add_usage(15, false);
    WHEN 'new_tasks' THEN
        PERFORM pg_temp.add_tasks(4);
        PERFORM pg_temp.add_usage(6, false);
    WHEN 'new_dim_rows' THEN    -- dimension rows nothing refers to yet
        x := pg_temp.pick('workspace');
        INSERT INTO agent (id, workspace_id) VALUES (pg_temp.ruuid(), x);
        INSERT INTO agent_runtime (id, workspace_id, timezone) VALUES (pg_temp.ruuid(), x, pg_temp.rtz());
        INSERT INTO project (id, workspace_id) VALUES (pg_temp.ruuid(), x);
        INSERT INTO issue (id, workspace_id, project_id) VALUES (pg_temp.ruuid(), x, pg_temp.pick('project'));
    WHEN 'truncate_project' THEN    -- cascades to issue, agent_task_queue, task_usage
        TRUNCATE project CASCADE;
        PERFORM pg_temp.refill();
    WHEN 'truncate_runtime' THEN    -- cascades to agent_task_queue, task_usage
        TRUNCATE agent_runtime CASCADE;
        PERFORM pg_temp.refill();
    WHEN 'truncate_issue' THEN      -- cascades to agent_task_queue, task_usage
        TRUNCATE issue CASCADE;
        PERFORM pg_temp.refill();
    WHEN 'truncate_usage' THEN
        TRUNCATE task_usage;
        PERFORM pg_temp.add_usage(200, false);
        PERFORM pg_temp.add_usage(20, true);
    END CASE;
END $$;

-- choose(): a random kind of step, by weight.
CREATE FUNCTION pg_temp.choose(writes_only boolean) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    kinds text[] := ARRAY['upsert', 'late', 'upd_tokens', 'upd_time', 'upd_model', 'usage_task', 'del_usage',
                          'del_usage_using', 'task_runtime', 'task_runtime_from', 'task_agent', 'task_issue',
                          'issue_project', 'agent_workspace', 'agents_workspace', 'project_workspace', 'runtime_tz',
                          'noop_update', 'del_task', 'del_issue', 'del_project', 'del_agent', 'del_runtime',
                          'del_workspace', 'new_dims', 'new_tasks', 'new_dim_rows',
                          'batch', 'savepoint', 'refresh', 'refresh_bounded'];
    weights float8[] := ARRAY[16, 5, 5, 5, 3, 2, 4,
                              1.5, 4, 1.5, 3, 3,
                              3, 3, 1.2, 2, 2,
                              1.5, 2, 2, 2, 2, 2,
                              1.2, 3, 3, 1.5,
                              5, 3, 5, 6];
    nk int := CASE WHEN writes_only THEN 27 ELSE 31 END;
    total float8 := 0;
    d float8;
BEGIN
    FOR i IN 1 .. nk LOOP total := total + weights[i]; END LOOP;
    d := random() * total;
    FOR i IN 1 .. nk LOOP
        d := d - weights[i];
        IF d < 0 THEN RETURN kinds[i]; END IF;
    END LOOP;
    RETURN kinds[nk];
END $$;

------------------------------------------------------------------------------
-- What each rollup must hold, and the comparisons.
------------------------------------------------------------------------------
CREATE VIEW pg_temp.truth_hourly AS
SELECT memoria.bucket(created_at, '1 hour', 'UTC') AS bucket, workspace_id, runtime_id, agent_id, project_id, provider, model,
       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
       sum(cache_read_tokens)::bigint AS cache_read_tokens, sum(cache_write_tokens)::bigint AS cache_write_tokens,
       count(*) AS events, count(DISTINCT task_id) AS task_count
FROM usage_v GROUP BY 1, 2, 3, 4, 5, 6, 7;
CREATE VIEW pg_temp.truth_daily_f AS
SELECT memoria.bucket(created_at, '1 day', 'UTC') AS bucket, workspace_id, runtime_id, project_id, provider, model,
       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
       sum(cache_read_tokens)::bigint AS cache_read_tokens, sum(cache_write_tokens)::bigint AS cache_write_tokens,
       count(*) AS events, count(DISTINCT task_id) AS task_count
FROM usage_v WHERE runtime_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6;
CREATE VIEW pg_temp.truth_daily_rt AS
SELECT memoria.bucket(created_at, '1 day', 'Asia/Kolkata') AS bucket, workspace_id, runtime_id, runtime_timezone,
       project_workspace_id, provider, model,
       sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens,
       sum(cache_read_tokens)::bigint AS cache_read_tokens, sum(cache_write_tokens)::bigint AS cache_write_tokens,
       count(*) AS events, count(DISTINCT task_id) AS task_count
FROM usage_rt_v GROUP BY 1, 2, 3, 4, 5, 6, 7;

CREATE TEMP TABLE vs_rollups (rollup text PRIMARY KEY, truth text);
INSERT INTO vs_rollups VALUES ('vs_hourly', 'pg_temp.truth_hourly'), ('vs_daily_f', 'pg_temp.truth_daily_f'),
                              ('vs_daily_rt', 'pg_temp.truth_daily_rt');

-- diffs(a, b): rows of a not in b plus rows of b not in a (as bags).
CREATE FUNCTION pg_temp.diffs(a text, b text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s EXCEPT ALL SELECT * FROM %s)
                                          UNION ALL (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s)) d', a, b, b, a) INTO n;
    RETURN n;
END $$;

-- refresh_step(name, max_keys): a refresh; a rollup it reports as failing is recorded.
CREATE FUNCTION pg_temp.refresh_step(name text, keys int, step int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO vs_checks
    SELECT c.workload, step, r.rollup, 'refresh status ' || r.status || ': ' || coalesce(r.error, ''), 1,
           current_setting('transaction_isolation')
    FROM memoria.refresh(name, max_keys => keys) r, vs_current c
    WHERE r.status NOT IN ('ok', 'idle');
END $$;

-- checkpoint(step): each _live view against the truth, then a full refresh,
-- then each rollup against the truth and verify(); all in one transaction.
CREATE FUNCTION pg_temp.checkpoint(step int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    w text := (SELECT workload FROM vs_current);
    iso text := current_setting('transaction_isolation');
    r record;
BEGIN
    FOR r IN SELECT * FROM vs_rollups ORDER BY rollup LOOP
        IF to_regclass('memoria_rollup.' || r.rollup || '_live') IS NOT NULL THEN
            BEGIN
                INSERT INTO vs_checks VALUES (w, step, r.rollup, 'live', pg_temp.diffs('memoria_rollup.' || r.rollup || '_live', r.truth), iso);
            EXCEPTION WHEN OTHERS THEN
                INSERT INTO vs_checks VALUES (w, step, r.rollup, 'live error: ' || SQLERRM, 1, iso);
            END;
        END IF;
    END LOOP;
    PERFORM pg_temp.refresh_step(NULL, NULL, step);
    FOR r IN SELECT * FROM vs_rollups ORDER BY rollup LOOP
        INSERT INTO vs_checks VALUES (w, step, r.rollup, 'table', pg_temp.diffs('memoria_rollup.' || r.rollup, r.truth), iso);
        INSERT INTO vs_checks VALUES (w, step, r.rollup, 'verify', (SELECT count(*) FROM memoria.verify(r.rollup)), iso);
    END LOOP;
END $$;

-- run_workload: `steps` random steps, each its own transaction except the
-- batches; a checkpoint every `every` steps and at the end; the rare
-- TRUNCATEs at fixed steps.
CREATE PROCEDURE pg_temp.run_workload(label text, seed float8, steps int, every int, truncate_kind text) LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    n int;
    at_refresh int;
BEGIN
    UPDATE vs_current SET workload = label;
    PERFORM setseed(seed);
    COMMIT;
    FOR i IN 1 .. steps LOOP
        IF i = steps / 3 THEN
            kind := truncate_kind;
        ELSIF i = 2 * steps / 3 THEN
            kind := 'truncate_usage';
        ELSE
            kind := pg_temp.choose(false);
        END IF;
        IF kind = 'refresh' THEN
            INSERT INTO vs_actions VALUES (label, kind);
            PERFORM pg_temp.refresh_step(NULL, NULL, i);
        ELSIF kind = 'refresh_bounded' THEN
            INSERT INTO vs_actions VALUES (label, kind);
            PERFORM pg_temp.refresh_step((SELECT rollup FROM vs_rollups ORDER BY rollup OFFSET floor(random() * 3) LIMIT 1),
                                         1 + floor(random() * 6)::int, i);
        ELSIF kind = 'batch' THEN       -- several writes in one transaction, maybe a refresh among them
            INSERT INTO vs_actions VALUES (label, kind);
            n := 2 + floor(random() * 5)::int;
            at_refresh := CASE WHEN random() < 0.4 THEN 1 + floor(random() * n)::int ELSE 0 END;
            FOR j IN 1 .. n LOOP
                PERFORM pg_temp.act(pg_temp.choose(true));
                IF j = at_refresh THEN
                    PERFORM pg_temp.refresh_step(CASE WHEN random() < 0.5 THEN NULL ELSE 'vs_hourly' END,
                                                 CASE WHEN random() < 0.5 THEN NULL ELSE 3 END, i);
                END IF;
            END LOOP;
        ELSIF kind = 'savepoint' THEN   -- writes (and maybe a refresh) rolled back, then one that commits
            INSERT INTO vs_actions VALUES (label, kind);
            BEGIN
                FOR j IN 1 .. 1 + floor(random() * 3)::int LOOP
                    PERFORM pg_temp.act(pg_temp.choose(true));
                END LOOP;
                IF random() < 0.3 THEN
                    PERFORM pg_temp.refresh_step(NULL, NULL, i);
                END IF;
                RAISE EXCEPTION 'roll back';
            EXCEPTION WHEN raise_exception THEN NULL;
            END;
            PERFORM pg_temp.act(pg_temp.choose(true));
        ELSE
            PERFORM pg_temp.act(kind);
        END IF;
        COMMIT;
        IF i % every = 0 OR i = steps THEN
            PERFORM pg_temp.checkpoint(i);
            COMMIT;
        END IF;
    END LOOP;
END $$;

------------------------------------------------------------------------------
-- Setup: data, the rollups, refusals.
------------------------------------------------------------------------------
SELECT setseed(0.5);
SELECT pg_temp.populate(5);
SELECT pg_temp.add_tasks(80);
SELECT pg_temp.add_usage(300, false);
SELECT pg_temp.add_usage(40, true);

SELECT lives_ok($$SELECT memoria.create_rollup('vs_hourly', 'usage_v', 'created_at',
    ARRAY['workspace_id', 'runtime_id', 'agent_id', 'project_id', 'provider', 'model'],
    ARRAY['sum(input_tokens)::bigint AS input_tokens', 'sum(output_tokens)::bigint AS output_tokens',
          'sum(cache_read_tokens)::bigint AS cache_read_tokens', 'sum(cache_write_tokens)::bigint AS cache_write_tokens',
          'count(*) AS events', 'count(DISTINCT task_id) AS task_count'],
    bucket => '1 hour')$$, 'an hourly rollup of a view joining usage to task, agent and issue');
SELECT lives_ok($$SELECT memoria.create_rollup('vs_daily_f', 'usage_v', 'created_at',
    ARRAY['workspace_id', 'runtime_id', 'project_id', 'provider', 'model'],
    ARRAY['sum(input_tokens)::bigint AS input_tokens', 'sum(output_tokens)::bigint AS output_tokens',
          'sum(cache_read_tokens)::bigint AS cache_read_tokens', 'sum(cache_write_tokens)::bigint AS cache_write_tokens',
          'count(*) AS events', 'count(DISTINCT task_id) AS task_count'],
    filter => 'runtime_id IS NOT NULL')$$, 'a daily rollup of the view, with a filter on a joined column');
SELECT lives_ok($$SELECT memoria.create_rollup('vs_daily_rt', 'usage_rt_v', 'created_at',
    ARRAY['workspace_id', 'runtime_id', 'runtime_timezone', 'project_workspace_id', 'provider', 'model'],
    ARRAY['sum(input_tokens)::bigint AS input_tokens', 'sum(output_tokens)::bigint AS output_tokens',
          'sum(cache_read_tokens)::bigint AS cache_read_tokens', 'sum(cache_write_tokens)::bigint AS cache_write_tokens',
          'count(*) AS events', 'count(DISTINCT task_id) AS task_count'],
    time_zone => 'Asia/Kolkata')$$, 'a daily Kolkata rollup of a view with an INNER JOIN to the runtime and a LEFT JOIN chain');
SELECT is((SELECT scope FROM memoria.rollups_info WHERE rollup = 'vs_hourly'), ARRAY['provider', 'model'],
          'the default scope is the dimensions that are fact-table columns');

SELECT throws_ok($$SELECT memoria.create_rollup('vs_bad', 'usage_v', 'created_at', ARRAY['workspace_id', 'model'],
                   ARRAY['count(*) AS n'], scope => ARRAY['workspace_id'])$$, NULL, NULL,
                 'a scope naming a dimension of a joined table is refused');
SELECT throws_ok($$SELECT memoria.create_rollup('vs_bad', 'usage_v', 'created_at', ARRAY['project_id', 'model'],
                   ARRAY['count(*) AS n'], scope => ARRAY['model', 'project_id'])$$, NULL, NULL,
                 'a scope naming a dimension of a LEFT JOINed table is refused');
SELECT throws_ok($$SELECT memoria.create_rollup('vs_bad', 'usage_v', 'created_at', ARRAY['workspace_id', 'model'],
                   ARRAY['count(*) AS n'], invalidation => 'updated_at', updated_at_column => 'created_at')$$, NULL, NULL,
                 'updated_at invalidation is refused for a view source');
SELECT lives_ok($$SELECT memoria.create_rollup('vs_ok', 'usage_v', 'created_at', ARRAY['workspace_id', 'model'],
                   ARRAY['count(*) AS n'], scope => ARRAY['model']);
                 SELECT memoria.drop_rollup('vs_ok', drop_table => true)$$,
                'a scope naming a fact-table column is accepted (and the rollup drops)');
SELECT is((SELECT count(*) FROM memoria.rollups_info WHERE rollup IN ('vs_bad', 'vs_ok'))
          + (SELECT count(*) FROM pg_class WHERE relname IN ('vs_bad', 'vs_ok')), 0::bigint,
          'the refused and the dropped rollups leave nothing behind');

DO $$ BEGIN
    PERFORM memoria.refresh_window(rollup, '-infinity', 'infinity') FROM vs_rollups;
END $$;
SELECT bag_eq('SELECT * FROM memoria_rollup.vs_hourly', 'SELECT * FROM pg_temp.truth_hourly',
              'filled: the hourly rollup equals GROUP BY over the view');
SELECT bag_eq('SELECT * FROM memoria_rollup.vs_daily_f', 'SELECT * FROM pg_temp.truth_daily_f',
              'filled: the filtered daily rollup equals GROUP BY over the view');
SELECT bag_eq('SELECT * FROM memoria_rollup.vs_daily_rt', 'SELECT * FROM pg_temp.truth_daily_rt',
              'filled: the runtime daily rollup equals GROUP BY over its view');
SELECT is_empty($$SELECT t FROM unnest(ARRAY['task_usage', 'agent_task_queue', 'agent', 'issue', 'agent_runtime', 'project']) t
                  WHERE NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = t::regclass AND g.tgname LIKE 'zz\_memoria%')$$,
                'every base table of the views is captured');

-- The checks can fail: a rollup row off by one is seen by the comparison
-- and by verify() (the change is rolled back).
CREATE FUNCTION pg_temp.negative_control() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    BEGIN
        PERFORM set_config('memoria.writing_rollup', 'on', true);
        UPDATE memoria_rollup.vs_hourly SET events = events + 1
        WHERE ctid = (SELECT ctid FROM memoria_rollup.vs_hourly LIMIT 1);
        RAISE EXCEPTION '%', format('%s differences, %s from verify',
                                    pg_temp.diffs('memoria_rollup.vs_hourly', 'pg_temp.truth_hourly'),
                                    (SELECT count(*) FROM memoria.verify('vs_hourly')));
    EXCEPTION WHEN raise_exception THEN result := SQLERRM;
    END;
    RETURN result || ', then ' || pg_temp.diffs('memoria_rollup.vs_hourly', 'pg_temp.truth_hourly') || ' differences';
END $$;
SELECT is(pg_temp.negative_control(), '2 differences, 1 from verify, then 0 differences',
          'a wrong rollup row is caught by the comparison and by verify()');

------------------------------------------------------------------------------
-- The workloads.
------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.check_workload(label text, iso text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM vs_rollups ORDER BY rollup LOOP
        RETURN NEXT is_empty(format($q$SELECT step, kind, n FROM vs_checks
                                       WHERE workload = %L AND rollup = %L AND n <> 0 ORDER BY step, kind$q$, label, r.rollup),
                             format('%s: at every checkpoint %s equals GROUP BY over its view, so does its _live view, verify() is empty',
                                    label, r.rollup));
    END LOOP;
    FOR r IN SELECT * FROM vs_rollups ORDER BY rollup LOOP
        RETURN NEXT bag_eq(format('SELECT * FROM memoria_rollup.%I', r.rollup), format('SELECT * FROM %s', r.truth),
                           format('%s: at the end %s equals GROUP BY over its view', label, r.rollup));
    END LOOP;
    RETURN NEXT is_empty($q$SELECT v.* FROM vs_rollups r, memoria.verify(r.rollup) v$q$,
                         label || ': memoria.verify() reports nothing for any rollup');
    -- The workload did what it claims: every kind of step, checkpoints, the isolation level.
    RETURN NEXT is_empty(format($q$
        SELECT 'never ran: ' || k FROM unnest(ARRAY['upsert', 'late', 'upd_tokens', 'upd_time', 'upd_model', 'usage_task',
            'del_usage', 'del_usage_using', 'task_runtime', 'task_runtime_from', 'task_agent', 'task_issue', 'issue_project',
            'agent_workspace', 'agents_workspace', 'project_workspace', 'runtime_tz', 'noop_update', 'del_task', 'del_issue',
            'del_project', 'del_agent', 'del_runtime', 'del_workspace', 'new_dims', 'new_tasks', 'new_dim_rows',
            'batch', 'savepoint', 'refresh', 'refresh_bounded', 'truncate_usage']) k
        WHERE NOT EXISTS (SELECT FROM vs_actions a WHERE a.workload = %1$L AND a.kind = k)
        UNION ALL SELECT 'no dimension TRUNCATE' WHERE NOT EXISTS (SELECT FROM vs_actions a WHERE a.workload = %1$L AND a.kind LIKE 'truncate\_%%' AND a.kind <> 'truncate_usage')
        UNION ALL SELECT 'only ' || count(DISTINCT step) || ' checkpoints' FROM vs_checks WHERE workload = %1$L HAVING count(DISTINCT step) < 8
        UNION ALL SELECT DISTINCT 'checkpoint in ' || iso FROM vs_checks WHERE workload = %1$L AND iso <> %2$L
        UNION ALL SELECT 'only ' || count(*) || ' usage rows left' FROM task_usage HAVING count(*) < 100
        $q$, label, iso), label || ': the workload ran every kind of step, at ' || iso);
END $$;

SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
CALL pg_temp.run_workload('read committed', 0.21, 400, 40, 'truncate_project');
SELECT * FROM pg_temp.check_workload('read committed', 'read committed');

SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ;
SET TimeZone = 'America/Los_Angeles';   -- the session's zone changes no bucket
CALL pg_temp.run_workload('repeatable read', 0.42, 400, 40, 'truncate_runtime');
SELECT * FROM pg_temp.check_workload('repeatable read', 'repeatable read');

SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE;
SET TimeZone = 'Asia/Kathmandu';
CALL pg_temp.run_workload('serializable', 0.63, 400, 40, 'truncate_issue');
SELECT * FROM pg_temp.check_workload('serializable', 'serializable');

SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
RESET TimeZone;

------------------------------------------------------------------------------
-- Status, guards, drop.
------------------------------------------------------------------------------
SELECT is_empty($$SELECT rollup, pending_keys, last_status, last_error FROM memoria.status
                  WHERE rollup IN (SELECT rollup FROM vs_rollups) AND (pending_keys <> 0 OR last_status NOT IN ('ok', 'idle'))$$,
                'no key is left pending and no refresh failed');
SELECT throws_ok('DROP VIEW usage_v', NULL, NULL, 'the view a rollup reads cannot be dropped');
SELECT lives_ok($$SELECT memoria.drop_rollup(rollup, drop_table => true) FROM vs_rollups$$, 'the rollups drop');
SELECT is_empty($$SELECT g.tgrelid::regclass, g.tgname FROM pg_trigger g
                  WHERE g.tgrelid IN ('workspace'::regclass, 'project'::regclass, 'agent'::regclass, 'agent_runtime'::regclass,
                                      'issue'::regclass, 'agent_task_queue'::regclass, 'task_usage'::regclass)
                    AND g.tgname LIKE 'zz\_memoria%'$$,
                'drop_rollup leaves no memoria trigger on any of the tables');
DROP VIEW pg_temp.truth_hourly, pg_temp.truth_daily_f, pg_temp.truth_daily_rt;
SELECT lives_ok('DROP VIEW usage_v, usage_rt_v', 'the views drop once their rollups are gone');

DROP TABLE task_usage, agent_task_queue, issue, agent_runtime, agent, project, workspace;
SELECT * FROM finish();
