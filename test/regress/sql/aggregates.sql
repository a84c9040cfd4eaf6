-- aggregates: any aggregate works, because buckets are recomputed, never
-- delta-applied; NULL dimensions are their own group; scope and filter.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE TABLE calls (
    at timestamptz NOT NULL, tenant int, region text, endpoint text, latency_ms double precision, cost numeric(12, 4)
);
INSERT INTO calls
SELECT timestamptz '2026-05-01' + (g * 3571 % 20160) * interval '1 minute',
       CASE WHEN g % 13 = 0 THEN NULL ELSE g % 4 END,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (ARRAY['eu', 'us', 'ap'])[1 + g % 3] END,
       '/v1/' || (g % 5), (g % 997) / 3.0, (g % 101) / 7.0
FROM generate_series(1, 4000) g;

SELECT memoria.create_rollup('calls_stats', 'calls', 'at', ARRAY['tenant', 'region'], ARRAY[
    'count(*) AS calls',
    'count(DISTINCT endpoint) AS endpoints',
    'sum(cost) AS cost',
    'avg(cost) AS avg_cost',
    'min(latency_ms) AS fastest',
    'max(latency_ms) AS slowest',
    'percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50',
    'count(*) FILTER (WHERE latency_ms > 300) AS slow_calls',
    'string_agg(DISTINCT endpoint, '','' ORDER BY endpoint) AS endpoint_list',
    'bool_or(region IS NULL) AS any_unknown_region'],
    scope => ARRAY['tenant'],
    filter => 'endpoint <> ''/v1/4''');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'memoria_rollup.calls_stats'::regclass AND attnum > 0 ORDER BY attnum;
SELECT status FROM memoria.refresh_window('calls_stats', '-infinity', 'infinity');

-- NULL tenants and regions each form their own group.
SELECT tenant, region, sum(calls) FROM memoria_rollup.calls_stats
WHERE tenant IS NULL OR region IS NULL GROUP BY 1, 2 ORDER BY 1, 2;

-- The expected content, written out by hand.
CREATE VIEW calls_truth AS
SELECT date_trunc('day', at, 'UTC') AS bucket, tenant, region, count(*) AS calls, count(DISTINCT endpoint) AS endpoints,
       sum(cost) AS cost, avg(cost) AS avg_cost, min(latency_ms) AS fastest, max(latency_ms) AS slowest,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
       count(*) FILTER (WHERE latency_ms > 300) AS slow_calls,
       string_agg(DISTINCT endpoint, ',' ORDER BY endpoint) AS endpoint_list,
       bool_or(region IS NULL) AS any_unknown_region
FROM calls WHERE endpoint <> '/v1/4' GROUP BY 1, 2, 3;
CREATE FUNCTION calls_differences() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM ((SELECT * FROM calls_truth EXCEPT ALL SELECT * FROM memoria_rollup.calls_stats)
                          UNION ALL (SELECT * FROM memoria_rollup.calls_stats EXCEPT ALL SELECT * FROM calls_truth)) d $$;
SELECT calls_differences();

-- Writes to one tenant recompute every (tenant, region) row of that tenant and day,
-- including a group that disappears and one that appears.
DELETE FROM calls WHERE tenant = 1 AND region = 'eu' AND at < '2026-05-02';
INSERT INTO calls VALUES ('2026-05-01 12:00+00', 1, 'moon', '/v1/0', 1, 1);
UPDATE calls SET latency_ms = latency_ms * 10 WHERE tenant IS NULL AND at < '2026-05-03';
-- Rows outside the filter dirty their key too, and change nothing.
UPDATE calls SET cost = cost + 1 WHERE endpoint = '/v1/4' AND tenant = 2;
SELECT pending_keys FROM memoria.status;
SELECT calls_differences() > 0 AS stale;
SELECT status, rows_upserted > 0 AS upserted, rows_deleted FROM memoria.refresh('calls_stats');
SELECT calls_differences();
SELECT count(*) AS differences FROM memoria.verify('calls_stats');
-- A dimension change moves rows between scopes: both are recomputed.
UPDATE calls SET tenant = 3 WHERE tenant = 2 AND at < '2026-05-02';
SELECT status FROM memoria.refresh('calls_stats');
SELECT calls_differences();

-- Two rollups on one source stay independent.
SELECT memoria.create_rollup('calls_hourly_eu', 'calls', 'at', ARRAY['endpoint'], ARRAY['count(*) AS n'],
                             bucket => '1 hour', time_zone => 'Asia/Tokyo', filter => 'region = ''eu''');
SELECT status FROM memoria.refresh_window('calls_hourly_eu', '-infinity', 'infinity');
INSERT INTO calls VALUES ('2026-05-03 01:00+00', 0, 'eu', '/v1/9', 1, 1);
SELECT rollup, status, keys_refreshed FROM memoria.refresh() ORDER BY 1;
SELECT count(*) AS differences FROM memoria.verify('calls_hourly_eu');
SELECT calls_differences();
SELECT memoria.drop_rollup(rollup, drop_table => true) FROM memoria.status ORDER BY rollup;

-- Measures and filters may call the caller's own functions and aggregates,
-- resolved with the caller's search_path, whoever refreshes later.
CREATE SCHEMA app;
CREATE FUNCTION app.doubled(v double precision) RETURNS double precision LANGUAGE sql IMMUTABLE AS $$ SELECT v * 2 $$;
CREATE AGGREGATE app.product(double precision) (sfunc = float8mul, stype = double precision, initcond = '1');
SET search_path = app, public;
SELECT memoria.create_rollup('calls_custom', 'calls', 'at', ARRAY['region'],
    ARRAY['sum(doubled(latency_ms)) AS doubled_latency', 'product(1 + tenant) AS tenant_product'],
    filter => 'doubled(latency_ms) > 100');
RESET search_path;
SELECT status FROM memoria.refresh_window('calls_custom', '-infinity', 'infinity');
INSERT INTO calls VALUES ('2026-05-02 10:00+00', 2, 'eu', '/v1/1', 500, 1);
SET search_path = pg_catalog;
SELECT status FROM memoria.refresh('calls_custom');
RESET search_path;
SELECT count(*) AS differences FROM memoria.verify('calls_custom');
SELECT memoria.drop_rollup('calls_custom', drop_table => true);
