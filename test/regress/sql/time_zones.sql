-- time_zones: bucket boundaries come from the rollup's time zone only.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';

-- memoria.bucket: local-midnight days, DST days of 23 and 25 hours.
SELECT memoria.bucket(timestamptz '2026-03-29 00:30+00', '1 day', 'Europe/Paris');  -- 01:30 CET
SELECT memoria.bucket(timestamptz '2026-03-28 23:30+00', '1 day', 'Europe/Paris');  -- 00:30 CET next day
SELECT memoria.bucket(timestamptz '2026-10-25 22:59+00', '1 day', 'Europe/Paris');  -- 23:59 CET
SELECT memoria.bucket(timestamptz '2026-10-25 23:00+00', '1 day', 'Europe/Paris');  -- 00:00 next day
SELECT memoria.bucket(timestamptz '2026-03-29 01:30+00', '1 hour', 'Europe/Paris'); -- 03:30 CEST
SELECT memoria.bucket(timestamptz '2026-03-04 12:00+00', '7 days', 'UTC');          -- weeks start Monday
SELECT memoria.bucket(timestamp '2026-03-04 12:34', '15 minutes');
SELECT memoria.bucket(date '2026-03-04', '7 days');
SELECT memoria.bucket(timestamptz 'infinity', '1 day', 'UTC');
-- Bounds of a 23-hour and a 25-hour day.
SELECT memoria_internal.bucket_lo(b, '1 day', 'Europe/Paris') <= b AS lo_ok,
       memoria_internal.bucket_hi(b, '1 day', 'Europe/Paris') - memoria_internal.bucket_lo(b, '1 day', 'Europe/Paris') >= interval '23 hours' AS covers
FROM (VALUES (timestamptz '2026-03-28 23:00+00'), (timestamptz '2026-10-24 22:00+00')) v(b);

-- A Paris-time rollup across the spring-forward day.
CREATE TABLE clicks (at timestamptz NOT NULL, page text NOT NULL);
INSERT INTO clicks
SELECT timestamptz '2026-03-28 00:00+00' + g * interval '10 minutes', CASE WHEN g % 2 = 0 THEN 'home' ELSE 'docs' END
FROM generate_series(0, 3 * 144 - 1) g;
SELECT memoria.create_rollup('clicks_paris', 'clicks', 'at', ARRAY['page'], ARRAY['count(*) AS n'],
                             time_zone => 'Europe/Paris');
SELECT status FROM memoria.refresh_window('clicks_paris', '-infinity', 'infinity');
SET TimeZone = 'Europe/Paris';
SELECT bucket, page, n FROM memoria_rollup.clicks_paris ORDER BY 1, 2;
-- The 23-hour day has 23 * 6 / 2 = 69 clicks per page.
SELECT n FROM memoria_rollup.clicks_paris WHERE bucket = '2026-03-29 00:00' AND page = 'home';

-- Whoever refreshes, under any session TimeZone, the rows are the same.
CREATE TABLE snapshot_1 AS SELECT * FROM memoria_rollup.clicks_paris;
SET TimeZone = 'America/Los_Angeles';
INSERT INTO clicks VALUES ('2026-03-29 22:31+00', 'home'), ('2026-03-28 23:11+00', 'docs');
SELECT status FROM memoria.refresh('clicks_paris');
SET TimeZone = 'Asia/Kolkata';
DELETE FROM clicks WHERE at IN ('2026-03-29 22:31+00', '2026-03-28 23:11+00');
SELECT status FROM memoria.refresh('clicks_paris');
SELECT count(*) AS differences FROM (
    (SELECT * FROM snapshot_1 EXCEPT ALL SELECT * FROM memoria_rollup.clicks_paris)
    UNION ALL
    (SELECT * FROM memoria_rollup.clicks_paris EXCEPT ALL SELECT * FROM snapshot_1)) d;
SET TimeZone = 'UTC';
-- And equal to grouping by the Paris calendar day.
SELECT count(*) AS differences FROM (
    SELECT (date_trunc('day', at AT TIME ZONE 'Europe/Paris') AT TIME ZONE 'Europe/Paris') AS bucket, page, count(*) AS n
    FROM clicks GROUP BY 1, 2
    EXCEPT ALL SELECT * FROM memoria_rollup.clicks_paris) d;
SELECT count(*) AS differences FROM memoria.verify('clicks_paris');
-- A window starting on the change day: the bucket's time range is widened
-- (by the zone's largest offset near it), and rows of the day before read
-- that way must not replace that day's row.
SELECT status FROM memoria.refresh_window('clicks_paris', '2026-03-29', '2026-03-30');
SELECT count(*) AS differences FROM memoria.verify('clicks_paris');

-- Windowed recomputes across the fall-back night in 15-minute Paris buckets
-- (local 02:00-02:59 happens twice): window edges next to the change (read
-- with a per-row bucket check) and far from it (read by time range alone).
CREATE TABLE ticks (at timestamptz NOT NULL, n int NOT NULL);
INSERT INTO ticks SELECT timestamptz '2026-10-20 00:00+00' + g * interval '7 minutes', g % 5
FROM generate_series(0, 10 * 24 * 60 / 7) g;
SELECT memoria.create_rollup('ticks_q', 'ticks', 'at', ARRAY[]::text[], ARRAY['sum(n) AS total', 'count(*) AS c'],
                             bucket => '15 minutes', time_zone => 'Europe/Paris');
SELECT status FROM memoria.refresh_window('ticks_q', '2026-10-20', '2026-10-25 01:00+00');  -- ends in the change
SELECT status FROM memoria.refresh_window('ticks_q', '2026-10-25 01:00+00', '2026-10-31');  -- starts in it
CREATE TABLE ticks_expected AS
SELECT date_bin('15 minutes', at AT TIME ZONE 'Europe/Paris', timestamp '2000-01-03') AT TIME ZONE 'Europe/Paris' AS bucket,
       sum(n) AS total, count(*) AS c
FROM ticks GROUP BY 1;
SELECT count(*) AS differences FROM (
    (SELECT * FROM ticks_expected EXCEPT ALL SELECT * FROM memoria_rollup.ticks_q)
    UNION ALL (SELECT * FROM memoria_rollup.ticks_q EXCEPT ALL SELECT * FROM ticks_expected)) d;
SET memoria.writing_rollup = on;  -- a superuser standing in for memoria
TRUNCATE memoria_rollup.ticks_q;
RESET memoria.writing_rollup;
SELECT status FROM memoria.refresh_window('ticks_q', '2026-10-19', '2026-11-01');  -- the change well inside
SELECT count(*) AS differences FROM (
    (SELECT * FROM ticks_expected EXCEPT ALL SELECT * FROM memoria_rollup.ticks_q)
    UNION ALL (SELECT * FROM memoria_rollup.ticks_q EXCEPT ALL SELECT * FROM ticks_expected)) d;
SELECT count(*) AS differences FROM memoria.verify('ticks_q');
SELECT memoria.drop_rollup('ticks_q', drop_table => true);

-- timestamp and date sources: no time zone involved; hourly buckets.
CREATE TABLE readings (taken timestamp NOT NULL, day date NOT NULL, sensor int, value numeric);
INSERT INTO readings SELECT timestamp '2026-01-01' + g * interval '7 minutes', date '2026-01-01' + g / 200, g % 3, g
FROM generate_series(1, 1000) g;
SELECT memoria.create_rollup('readings_hourly', 'readings', 'taken', ARRAY['sensor'],
                             ARRAY['avg(value) AS mean', 'count(*) AS n'], bucket => '1 hour');
SELECT memoria.create_rollup('readings_weekly', 'readings', 'day', ARRAY['sensor'],
                             ARRAY['sum(value) AS total'], bucket => '7 days');
SELECT status FROM memoria.refresh_window('readings_hourly', '2026-01-01', '2026-01-02');
SELECT needs_backfill FROM memoria.status WHERE rollup = 'readings_hourly';
SELECT min(bucket), max(bucket), count(*) FROM memoria_rollup.readings_hourly;
SELECT status FROM memoria.refresh_window('readings_weekly', '-infinity', 'infinity');
SELECT * FROM memoria_rollup.readings_weekly ORDER BY 1, 2;
UPDATE readings SET taken = taken + interval '3 days', day = day + 3 WHERE value < 100;
SELECT status FROM memoria.refresh('readings_hourly');
SELECT status FROM memoria.refresh('readings_weekly');
SELECT count(*) AS differences FROM memoria.verify('readings_weekly');
-- The hourly rollup only held one day; the moved rows left it.
SELECT count(*) AS differences FROM memoria.verify('readings_hourly', '2026-01-01', '2026-01-02');
SELECT memoria.drop_rollup(rollup, drop_table => true) FROM memoria.status ORDER BY rollup;
