-- differential.sql: the backbone of memoria's correctness.  Seeded random
-- workloads of thousands of mixed statements (multi-row and single-row
-- INSERT, UPDATE that moves rows across buckets and scopes, DELETE,
-- transactions with rolled-back savepoints, occasional TRUNCATE) run against
-- a source with five rollups of different shapes (one in updated_at mode)
-- and three chains hourly -> daily -> monthly (in UTC, Berlin, Kathmandu),
-- with refreshes (full or bounded by max_keys) at random points.  After each workload every rollup
-- must equal a fresh GROUP BY of the source, row for row, and
-- memoria.verify() must report nothing.
-- Most statements commit on their own, as application writes do; one workload
-- runs as a single transaction inside a savepoint instead.  Writers switch
-- the additive path (memoria.additive_path) on and off at random: inserts
-- then fold into partials or dirty their keys, mixed in one rollup, and the
-- result must not depend on it.
SELECT plan(33);
DROP TABLE IF EXISTS diff_usage CASCADE;

CREATE TABLE diff_usage (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    ws int NOT NULL,
    model text,
    tokens bigint NOT NULL,
    cost numeric(10, 3) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON diff_usage (at);
CREATE INDEX ON diff_usage (updated_at);
-- The usual companion of an updated_at column: every UPDATE stamps it.
CREATE FUNCTION pg_temp.stamp() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER stamp BEFORE UPDATE ON diff_usage FOR EACH ROW EXECUTE FUNCTION pg_temp.stamp();

DO $$ BEGIN
PERFORM memoria.create_rollup('diff_daily', 'diff_usage', 'at', ARRAY['ws', 'model'],
    ARRAY['sum(tokens) AS tokens', 'count(*) AS events', 'max(cost) AS max_cost']);
PERFORM memoria.create_rollup('diff_ws', 'diff_usage', 'at', ARRAY['ws', 'model'],
    ARRAY['sum(cost) AS cost', 'count(DISTINCT model) AS models'], scope => ARRAY['ws'], time_zone => 'America/New_York');
PERFORM memoria.create_rollup('diff_hourly', 'diff_usage', 'at', ARRAY['model'],
    ARRAY['sum(tokens) AS tokens'], bucket => '1 hour', time_zone => 'Asia/Kolkata', scope => ARRAY[]::text[]);
PERFORM memoria.create_rollup('diff_big', 'diff_usage', 'at', ARRAY['ws'],
    ARRAY['count(*) AS n', 'avg(tokens) AS avg_tokens'], bucket => '7 days', filter => 'tokens > 500');
-- Additive: scope narrower than its dimensions, a nullable dimension,
-- count(x), a sum with FILTER, min, and a rollup filter.
PERFORM memoria.create_rollup('diff_add', 'diff_usage', 'at', ARRAY['ws', 'model'],
    ARRAY['count(model) AS with_model', 'sum(tokens) FILTER (WHERE tokens > 500) AS big_tokens', 'min(at) AS first_at',
          'count(*) AS n'], scope => ARRAY['ws'], filter => 'tokens > 100', time_zone => 'Europe/Berlin');
PERFORM memoria.create_rollup('diff_ua', 'diff_usage', 'at', ARRAY['ws', 'model'],
    ARRAY['sum(tokens) AS tokens', 'count(*) AS events'], scope => ARRAY['ws'], filter => 'tokens > 100',
    invalidation => 'updated_at', updated_at_column => 'updated_at', safety_lag => '0 seconds');
-- Chains: each level reads the one below; the monthly one must equal a
-- GROUP BY of raw rows by local month.
FOR z IN 1 .. 3 LOOP
    PERFORM memoria.create_rollup('diff_h_' || z, 'diff_usage', 'at', ARRAY['ws'],
        ARRAY['sum(tokens)::bigint AS tokens', 'count(*) AS events'], bucket => '1 hour',
        time_zone => (ARRAY['UTC', 'Europe/Berlin', 'Asia/Kathmandu'])[z]);
    PERFORM memoria.create_rollup('diff_d_' || z, ('memoria_rollup.diff_h_' || z)::regclass, 'bucket', ARRAY['ws'],
        ARRAY['sum(tokens)::bigint AS tokens', 'sum(events)::bigint AS events'],
        time_zone => (ARRAY['UTC', 'Europe/Berlin', 'Asia/Kathmandu'])[z]);
    PERFORM memoria.create_rollup('diff_m_' || z, ('memoria_rollup.diff_d_' || z)::regclass, 'bucket', ARRAY['ws'],
        ARRAY['sum(tokens)::bigint AS tokens', 'sum(events)::bigint AS events'], bucket => '1 month',
        time_zone => (ARRAY['UTC', 'Europe/Berlin', 'Asia/Kathmandu'])[z]);
END LOOP;
-- Backfilled (of an empty source): from here on inserts may take the
-- additive path (a rollup waiting for its backfill recomputes them).
PERFORM memoria.refresh_window(name, '-infinity', 'infinity') FROM memoria.rollups;
END $$;

-- random_at: a time in the 20 days from 2026-03-20 (over the US and EU DST changes).
CREATE FUNCTION pg_temp.random_at() RETURNS timestamptz LANGUAGE sql AS
$$ SELECT timestamptz '2026-03-20 00:00+00' + random() * interval '20 days' $$;
CREATE FUNCTION pg_temp.random_model() RETURNS text LANGUAGE sql AS
$$ SELECT (ARRAY['small', 'large', 'huge', NULL])[1 + floor(random() * 4)::int] $$;

-- run_workload: `statements` random statements, refreshing now and then;
-- each statement commits when commit_each.
CREATE PROCEDURE pg_temp.run_workload(seed float8, statements int, commit_each boolean) LANGUAGE plpgsql AS $$
DECLARE
    dice float8;
    n int;
BEGIN
    PERFORM setseed(seed);
    FOR i IN 1 .. statements LOOP
        IF random() < 0.1 THEN
            PERFORM set_config('memoria.additive_path', (random() < 0.7)::text, false);
        END IF;
        dice := random();
        IF dice < 0.25 THEN          -- multi-row insert
            n := 1 + floor(random() * 50)::int;
            INSERT INTO diff_usage (at, ws, model, tokens, cost)
            SELECT pg_temp.random_at(), floor(random() * 8)::int, pg_temp.random_model(),
                   floor(random() * 1000)::int, round((random() * 10)::numeric, 3)
            FROM generate_series(1, n);
        ELSIF dice < 0.45 THEN       -- single-row insert
            INSERT INTO diff_usage (at, ws, model, tokens, cost)
            VALUES (pg_temp.random_at(), floor(random() * 8)::int, pg_temp.random_model(),
                    floor(random() * 1000)::int, round((random() * 10)::numeric, 3));
        ELSIF dice < 0.55 THEN       -- correction of measures
            UPDATE diff_usage SET tokens = tokens + floor(random() * 100)::int, cost = cost + 1
            WHERE id % 97 = floor(random() * 97)::int;
        ELSIF dice < 0.63 THEN       -- move rows to another day (and hour)
            UPDATE diff_usage SET at = pg_temp.random_at() WHERE id % 131 = floor(random() * 131)::int;
        ELSIF dice < 0.70 THEN       -- move rows to another scope
            UPDATE diff_usage SET ws = (ws + 1) % 8, model = pg_temp.random_model()
            WHERE id % 113 = floor(random() * 113)::int;
        ELSIF dice < 0.80 THEN       -- deletes, some whole groups
            DELETE FROM diff_usage WHERE id % 89 = floor(random() * 89)::int;
        ELSIF dice < 0.84 THEN       -- a subtransaction that rolls back
            BEGIN
                INSERT INTO diff_usage (at, ws, model, tokens, cost)
                VALUES (pg_temp.random_at(), 9, 'ghost', 1, 1);
                UPDATE diff_usage SET tokens = 0 WHERE ws = 3;
                RAISE EXCEPTION 'roll back';
            EXCEPTION WHEN raise_exception THEN NULL;
            END;
        ELSIF dice < 0.841 THEN      -- rarely, a TRUNCATE and a refill
            TRUNCATE diff_usage;
            INSERT INTO diff_usage (at, ws, model, tokens, cost)
            SELECT pg_temp.random_at(), g % 8, pg_temp.random_model(), g, 1 FROM generate_series(1, 200) g;
        ELSIF dice < 0.93 THEN       -- a refresh of everything dirty
            PERFORM memoria.refresh();
        ELSE                         -- a bounded refresh of one rollup
            PERFORM memoria.refresh((ARRAY['diff_daily', 'diff_ws', 'diff_hourly', 'diff_big', 'diff_ua', 'diff_add'])[1 + floor(random() * 6)::int],
                                    max_keys => 1 + floor(random() * 20)::int);
        END IF;
        IF commit_each THEN
            COMMIT;
        END IF;
    END LOOP;
    -- Drain: refresh until nothing is pending.
    PERFORM memoria.refresh();
END $$;

-- truth_*: what each rollup must hold, computed from scratch.
CREATE VIEW pg_temp.truth_daily AS
SELECT date_trunc('day', at, 'UTC') AS bucket, ws, model, sum(tokens) AS tokens, count(*) AS events, max(cost) AS max_cost
FROM diff_usage GROUP BY 1, 2, 3;
CREATE VIEW pg_temp.truth_ws AS
SELECT date_trunc('day', at, 'America/New_York') AS bucket, ws, model, sum(cost) AS cost, count(DISTINCT model) AS models
FROM diff_usage GROUP BY 1, 2, 3;
CREATE VIEW pg_temp.truth_hourly AS
SELECT date_trunc('hour', at, 'Asia/Kolkata') AS bucket, model, sum(tokens) AS tokens
FROM diff_usage GROUP BY 1, 2;
CREATE VIEW pg_temp.truth_big AS
SELECT memoria.bucket(at, '7 days', 'UTC') AS bucket, ws, count(*) AS n, avg(tokens) AS avg_tokens
FROM diff_usage WHERE tokens > 500 GROUP BY 1, 2;
CREATE VIEW pg_temp.truth_add AS
SELECT date_trunc('day', at, 'Europe/Berlin') AS bucket, ws, model, count(model) AS with_model,
       sum(tokens) FILTER (WHERE tokens > 500) AS big_tokens, min(at) AS first_at, count(*) AS n
FROM diff_usage WHERE tokens > 100 GROUP BY 1, 2, 3;
CREATE VIEW pg_temp.truth_ua AS
SELECT date_trunc('day', at, 'UTC') AS bucket, ws, model, sum(tokens) AS tokens, count(*) AS events
FROM diff_usage WHERE tokens > 100 GROUP BY 1, 2, 3;

CREATE FUNCTION pg_temp.truth_monthly(z text) RETURNS TABLE (bucket timestamptz, ws int, tokens bigint, events bigint)
LANGUAGE sql AS $$
SELECT date_trunc('month', at, z), ws, sum(tokens)::bigint, count(*) FROM diff_usage GROUP BY 1, 2
$$;

CREATE FUNCTION pg_temp.check_all(label text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    FOR z IN 1 .. 3 LOOP
        RETURN NEXT set_eq(format('SELECT * FROM memoria_rollup.diff_m_%s', z),
                           format('SELECT * FROM pg_temp.truth_monthly(%L)', (ARRAY['UTC', 'Europe/Berlin', 'Asia/Kathmandu'])[z]),
                           label || ': hourly -> daily -> monthly chain in ' || (ARRAY['UTC', 'Europe/Berlin', 'Asia/Kathmandu'])[z]
                           || ' equals GROUP BY of raw rows by month');
    END LOOP;
    RETURN NEXT set_eq('SELECT * FROM memoria_rollup.diff_daily', 'SELECT * FROM pg_temp.truth_daily',
                       label || ': daily rollup equals GROUP BY');
    RETURN NEXT set_eq('SELECT * FROM memoria_rollup.diff_ws', 'SELECT * FROM pg_temp.truth_ws',
                       label || ': New York, scope ws, equals GROUP BY');
    RETURN NEXT set_eq('SELECT * FROM memoria_rollup.diff_hourly', 'SELECT * FROM pg_temp.truth_hourly',
                       label || ': Kolkata hourly, empty scope, equals GROUP BY');
    RETURN NEXT set_eq('SELECT * FROM memoria_rollup.diff_big', 'SELECT * FROM pg_temp.truth_big',
                       label || ': weekly with filter equals GROUP BY');
    RETURN NEXT set_eq('SELECT * FROM memoria_rollup.diff_ua', 'SELECT * FROM pg_temp.truth_ua',
                       label || ': updated_at mode with filter equals GROUP BY');
    RETURN NEXT set_eq('SELECT * FROM memoria_rollup.diff_add', 'SELECT * FROM pg_temp.truth_add',
                       label || ': additive path (scope ws, FILTER, filter) equals GROUP BY');
END $$;

CALL pg_temp.run_workload(0.11, 1500, true);
SELECT * FROM pg_temp.check_all('seed 0.11');
CALL pg_temp.run_workload(0.57, 1500, true);
SELECT * FROM pg_temp.check_all('seed 0.57');
BEGIN;
SAVEPOINT in_a_subtransaction;
CALL pg_temp.run_workload(0.93, 400, false);
RELEASE in_a_subtransaction;
COMMIT;
-- Rows of that transaction are stamped with its start: an updated_at scan
-- can only take them once it has committed.
DO $$ BEGIN PERFORM memoria.refresh('diff_ua'); END $$;
SELECT * FROM pg_temp.check_all('seed 0.93, one transaction');
SELECT is_empty($$
    SELECT * FROM memoria.verify('diff_daily') UNION ALL SELECT * FROM memoria.verify('diff_ws')
    UNION ALL SELECT * FROM memoria.verify('diff_hourly') UNION ALL SELECT * FROM memoria.verify('diff_big')
    UNION ALL SELECT * FROM memoria.verify('diff_ua') UNION ALL SELECT * FROM memoria.verify('diff_add')
    UNION ALL SELECT v.* FROM memoria.rollups r, memoria.verify(r.name) v WHERE r.name ~ '^diff_[hdm]_'
$$, 'memoria.verify reports nothing for any rollup');
SELECT ok((SELECT count(*) FROM diff_usage) > 300, 'the workload left a substantial source');
SELECT is((SELECT array_agg(name ORDER BY name) FROM memoria.rollups WHERE delta_log IS NOT NULL),
          ARRAY['diff_add', 'diff_daily', 'diff_hourly'], 'the rollups whose measures merge take the additive path');
SELECT ok((SELECT bool_and(pending_keys = 0) FROM memoria.status), 'no key is left pending');
SELECT ok((SELECT bool_and(last_status IN ('ok', 'idle')) FROM memoria.status), 'no refresh failed');

SELECT lives_ok($$SELECT memoria.drop_rollup(name, drop_table => true, cascade => true) FROM memoria.rollups
                  WHERE name LIKE 'diff%' AND name !~ '^diff_[dm]_'$$,
                'the rollups drop');
DROP TABLE diff_usage CASCADE;
SELECT * FROM finish();
