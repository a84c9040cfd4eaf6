-- chains: rollups of rollups.  refresh() and run() take a chain's lower
-- levels first, so one call brings the whole chain up to date (the names
-- are chosen so that name order would be wrong); drop_rollup of a rollup
-- another reads from needs cascade.
SET client_min_messages = error;  -- (refresh() also refreshes other suites' failing rollups)
CREATE TABLE ch_ev (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
INSERT INTO ch_ev SELECT timestamptz '2026-01-01' + g * interval '37 minutes', g % 3, g FROM generate_series(1, 2000) g;
SELECT memoria.create_rollup('z_hourly', 'ch_ev', 'at', ARRAY['k'], ARRAY['sum(v)::bigint AS v', 'count(*) AS n'],
                             bucket => '1 hour') IS NOT NULL AS created;
SELECT memoria.create_rollup('m_daily', 'memoria_rollup.z_hourly', 'bucket', ARRAY['k'],
                             ARRAY['sum(v)::bigint AS v', 'sum(n)::bigint AS n']) IS NOT NULL AS created;
SELECT memoria.create_rollup('a_weekly', 'memoria_rollup.m_daily', 'bucket', ARRAY['k'],
                             ARRAY['sum(v)::bigint AS v', 'sum(n)::bigint AS n'], bucket => '7 days') IS NOT NULL AS created;
SELECT rollup, depends_on FROM memoria.rollups_info WHERE rollup IN ('z_hourly', 'm_daily', 'a_weekly') ORDER BY 1;

-- Filled level by level.
SELECT rollup, status FROM memoria.refresh_window('z_hourly', '-infinity', 'infinity');
SELECT rollup, status FROM memoria.refresh_window('m_daily', '-infinity', 'infinity');
SELECT rollup, status FROM memoria.refresh_window('a_weekly', '-infinity', 'infinity');
-- The truth, from the raw events.
CREATE VIEW ch_truth AS
SELECT memoria.bucket(at, '7 days', 'UTC') AS bucket, k, sum(v)::bigint AS v, count(*) AS n FROM ch_ev GROUP BY 1, 2;
SELECT count(*) AS weekly_differences FROM (
    (SELECT * FROM ch_truth EXCEPT SELECT bucket, k, v, n FROM memoria_rollup.a_weekly)
    UNION ALL (SELECT bucket, k, v, n FROM memoria_rollup.a_weekly EXCEPT SELECT * FROM ch_truth)) d;

-- Writes at the bottom; one refresh(), lowest level first, brings the top
-- up to date.
INSERT INTO ch_ev VALUES ('2026-01-03 10:00', 1, 1000), ('2026-02-01 00:30', 4, 7);
UPDATE ch_ev SET k = 2 WHERE v % 97 = 0;
DELETE FROM ch_ev WHERE v % 89 = 0;
SELECT rollup, status, keys_refreshed > 0 AS did_work FROM memoria.refresh()
WHERE rollup IN ('z_hourly', 'm_daily', 'a_weekly');
SELECT rollup, pending_keys FROM memoria.status WHERE rollup IN ('z_hourly', 'm_daily', 'a_weekly') ORDER BY 1;
SELECT count(*) AS weekly_differences FROM (
    (SELECT * FROM ch_truth EXCEPT SELECT bucket, k, v, n FROM memoria_rollup.a_weekly)
    UNION ALL (SELECT bucket, k, v, n FROM memoria_rollup.a_weekly EXCEPT SELECT * FROM ch_truth)) d;

-- And with run(): batches of the lower level first.
UPDATE ch_ev SET v = v + 1 WHERE k = 0;
SET memoria.batch_keys = 5;
CALL memoria.run();
RESET memoria.batch_keys;
SELECT rollup, pending_keys FROM memoria.status WHERE rollup IN ('z_hourly', 'm_daily', 'a_weekly') ORDER BY 1;
SELECT count(*) AS weekly_differences FROM (
    (SELECT * FROM ch_truth EXCEPT SELECT bucket, k, v, n FROM memoria_rollup.a_weekly)
    UNION ALL (SELECT bucket, k, v, n FROM memoria_rollup.a_weekly EXCEPT SELECT * FROM ch_truth)) d;
SELECT rollup, count(*) AS differences FROM (SELECT 'z_hourly' AS rollup, * FROM memoria.verify('z_hourly')
    UNION ALL SELECT 'm_daily', * FROM memoria.verify('m_daily')
    UNION ALL SELECT 'a_weekly', * FROM memoria.verify('a_weekly')) v GROUP BY 1;

-- Dropping a rollup another reads from needs cascade, with or without its table.
SELECT memoria.drop_rollup('z_hourly');
SELECT memoria.drop_rollup('m_daily', drop_table => true);
SELECT rollup FROM memoria.status WHERE rollup IN ('z_hourly', 'm_daily', 'a_weekly') ORDER BY 1;
-- cascade drops the rollups above it too (and, asked, their tables).
SELECT memoria.drop_rollup('z_hourly', drop_table => true, cascade => true);
SELECT count(*) AS rollups_left FROM memoria.rollups WHERE name IN ('z_hourly', 'm_daily', 'a_weekly');
SELECT count(*) AS tables_left FROM pg_class WHERE relnamespace = 'memoria_rollup'::regnamespace
   AND relname IN ('z_hourly', 'm_daily', 'a_weekly');
-- The top of a chain drops alone.
SELECT memoria.create_rollup('z_hourly', 'ch_ev', 'at', ARRAY['k'], ARRAY['count(*) AS n'], bucket => '1 hour') IS NOT NULL;
SELECT memoria.create_rollup('m_daily', 'memoria_rollup.z_hourly', 'bucket', ARRAY['k'], ARRAY['sum(n)::bigint AS n']) IS NOT NULL;
SELECT memoria.drop_rollup('m_daily', drop_table => true);
SELECT memoria.drop_rollup('z_hourly', drop_table => true);
DROP VIEW ch_truth;
DROP TABLE ch_ev;
