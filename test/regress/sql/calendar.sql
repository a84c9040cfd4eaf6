-- calendar: buckets of '1 week' (ISO, Monday), '1 month', '3 months',
-- '1 year' (and other divisors of a year) in the rollup's time zone.
-- memoria.bucket() must agree with PostgreSQL's date_trunc() at every
-- instant, across DST changes (also one at local midnight on the first of a
-- month) and leap days; rollups of each width stay exact through writes
-- that move rows across month and year boundaries.
SET client_min_messages = error;  -- (refresh() also refreshes other suites' failing rollups)

-- Every 97 minutes over 2016-2025 (and around the DST changes at midnight:
-- America/Sao_Paulo 2017-10-15, 2018-02-18, America/Asuncion 2017-10-01,
-- the first of a month), in six zones (Lord_Howe shifts by 30 minutes, Kathmandu is UTC+5:45).
CREATE TEMP TABLE instants AS
SELECT timestamptz '2016-01-01 00:00 UTC' + g * interval '97 minutes' AS at FROM generate_series(0, 54300) g
UNION ALL
SELECT t + s * interval '1 minute'
FROM unnest(ARRAY[timestamptz '2017-10-15 02:00 UTC', '2018-02-18 02:00 UTC', '2017-10-01 03:00 UTC',
                  '2017-09-30 23:00 UTC', '2018-03-25 00:00 UTC']) t, generate_series(-180, 180) s;
SELECT count(*) AS disagreements
FROM instants, unnest(ARRAY['UTC', 'Europe/Berlin', 'America/Sao_Paulo', 'America/Asuncion', 'Australia/Lord_Howe', 'Asia/Kathmandu']) z,
     (VALUES ('1 week', 'week'), ('1 month', 'month'), ('3 months', 'quarter'), ('1 year', 'year')) w(width, unit)
WHERE memoria.bucket(at, width::interval, z) IS DISTINCT FROM date_trunc(unit, at, z);
-- Two, four, six and 24 months: from January 2000, in whole months (local
-- midnight of the first month, resolved as PostgreSQL resolves local times).
SELECT count(*) AS disagreements
FROM instants, unnest(ARRAY['UTC', 'America/Asuncion']) z, unnest(ARRAY[2, 4, 6, 24]) m
WHERE memoria.bucket(at, make_interval(months => m), z) IS DISTINCT FROM
      (date_trunc('month', at AT TIME ZONE z)
       - make_interval(months => ((extract(year FROM at AT TIME ZONE z)::int - 2000) * 12
                                  + extract(month FROM at AT TIME ZONE z)::int - 1) % m)) AT TIME ZONE z;
-- timestamp and date columns.
SELECT count(*) AS disagreements
FROM instants, (VALUES ('1 week', 'week'), ('1 month', 'month'), ('3 months', 'quarter'), ('1 year', 'year')) w(width, unit)
WHERE memoria.bucket(at AT TIME ZONE 'UTC', width::interval) IS DISTINCT FROM date_trunc(unit, at AT TIME ZONE 'UTC')
   OR memoria.bucket((at AT TIME ZONE 'UTC')::date, width::interval)
      IS DISTINCT FROM date_trunc(unit, (at AT TIME ZONE 'UTC')::date)::date;
-- The month that starts at a local midnight that does not exist.
SELECT memoria.bucket(timestamptz '2017-10-15 12:00 UTC', '1 month', 'America/Asuncion') AS asuncion_october_2017;
-- Bucket bounds, leap years included.
SELECT memoria_internal.bucket_lo(date '2024-02-01', '1 month', 'UTC') AS lo,
       memoria_internal.bucket_hi(date '2024-02-01', '1 month', 'UTC') AS hi_leap,
       memoria_internal.bucket_hi(date '2023-02-01', '1 month', 'UTC') AS hi,
       memoria_internal.bucket_hi(date '2024-01-01', '1 year', 'UTC') AS hi_year;
SELECT memoria_internal.bucket_lo(timestamptz '2017-10-01 03:00 UTC', '1 month', 'America/Asuncion') AS lo,
       memoria_internal.bucket_hi(timestamptz '2017-10-01 03:00 UTC', '1 month', 'America/Asuncion') AS hi;
-- Widths that are not calendar units are refused.
SELECT memoria.bucket(now(), '5 months');
SELECT memoria.bucket(now(), '1 month 2 days');
SELECT memoria.bucket(now(), '-1 month');

-- Rollups: monthly in Sao Paulo, quarterly in Asuncion, yearly in UTC,
-- monthly over a date column.
CREATE TABLE cal_ev (at timestamptz NOT NULL, d date NOT NULL, k int NOT NULL, v int NOT NULL);
INSERT INTO cal_ev SELECT at, (at AT TIME ZONE 'UTC')::date, (extract(epoch FROM at) / 97)::bigint % 4, 1
FROM instants WHERE at < '2019-01-01';
SELECT memoria.create_rollup('cal_monthly', 'cal_ev', 'at', '{k}', '{sum(v)::bigint AS v, count(*) AS n}',
                             bucket => '1 month', time_zone => 'America/Sao_Paulo') IS NOT NULL AS created;
SELECT memoria.create_rollup('cal_quarterly', 'cal_ev', 'at', '{k}', '{sum(v)::bigint AS v}',
                             bucket => '3 months', time_zone => 'America/Asuncion') IS NOT NULL AS created;
SELECT memoria.create_rollup('cal_yearly', 'cal_ev', 'at', '{k}', '{count(*) AS n}', bucket => '1 year') IS NOT NULL AS created;
SELECT memoria.create_rollup('cal_weekly', 'cal_ev', 'at', '{k}', '{count(*) AS n}', bucket => '1 week',
                             time_zone => 'Europe/Berlin') IS NOT NULL AS created;
SELECT memoria.create_rollup('cal_date_monthly', 'cal_ev', 'd', '{k}', '{count(*) AS n}', bucket => '1 month') IS NOT NULL AS created;
SELECT r.rollup, r.bucket FROM memoria.rollups_info r WHERE r.rollup LIKE 'cal%' ORDER BY 1;
CALL memoria.backfill('cal_monthly', slice => '45 days');
SELECT rollup, status FROM memoria.refresh_window('cal_quarterly', '-infinity', 'infinity')
UNION ALL SELECT rollup, status FROM memoria.refresh_window('cal_yearly', '-infinity', 'infinity')
UNION ALL SELECT rollup, status FROM memoria.refresh_window('cal_weekly', '-infinity', 'infinity')
UNION ALL SELECT rollup, status FROM memoria.refresh_window('cal_date_monthly', '-infinity', 'infinity');
SELECT (SELECT count(*) FROM memoria_rollup.cal_monthly) AS monthly_rows,
       (SELECT count(*) FROM memoria_rollup.cal_quarterly) AS quarterly_rows,
       (SELECT count(*) FROM memoria_rollup.cal_yearly) AS yearly_rows;
SELECT bucket, sum(v) FROM memoria_rollup.cal_monthly WHERE bucket < '2016-04-01' GROUP BY 1 ORDER BY 1;

-- Writes across month, quarter and year boundaries; a refresh; all exact.
UPDATE cal_ev SET at = at + interval '20 days', d = d + 20 WHERE v = 1 AND extract(day FROM at) = 15;
DELETE FROM cal_ev WHERE at BETWEEN '2017-12-31 20:00' AND '2018-01-01 04:00';
INSERT INTO cal_ev VALUES ('2017-10-01 03:30 UTC', '2017-10-01', 1, 5), ('2018-02-28 23:59 UTC', '2018-02-28', 2, 7);
SELECT rollup, status FROM memoria.refresh() WHERE rollup LIKE 'cal%' ORDER BY 1;
SELECT rollup, count(*) AS differences FROM (
    SELECT 'cal_monthly' AS rollup, * FROM memoria.verify('cal_monthly')
    UNION ALL SELECT 'cal_quarterly', * FROM memoria.verify('cal_quarterly')
    UNION ALL SELECT 'cal_yearly', * FROM memoria.verify('cal_yearly')
    UNION ALL SELECT 'cal_weekly', * FROM memoria.verify('cal_weekly')
    UNION ALL SELECT 'cal_date_monthly', * FROM memoria.verify('cal_date_monthly')) v GROUP BY 1 ORDER BY 1;
-- Against date_trunc directly: the monthly rollup is a GROUP BY of local months.
SELECT count(*) AS differences FROM (
    (SELECT date_trunc('month', at, 'America/Sao_Paulo') AS bucket, k, sum(v)::bigint AS v, count(*) AS n FROM cal_ev GROUP BY 1, 2
     EXCEPT SELECT bucket, k, v, n FROM memoria_rollup.cal_monthly)
    UNION ALL
    (SELECT bucket, k, v, n FROM memoria_rollup.cal_monthly
     EXCEPT SELECT date_trunc('month', at, 'America/Sao_Paulo'), k, sum(v)::bigint, count(*) FROM cal_ev GROUP BY 1, 2)) d;
-- A yearly rollup of the monthly one: a chain of calendar buckets.
SELECT memoria.create_rollup('cal_yearly_of_monthly', 'memoria_rollup.cal_monthly', 'bucket', '{k}',
                             '{sum(v)::bigint AS v}', bucket => '1 year', time_zone => 'America/Sao_Paulo') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('cal_yearly_of_monthly', '-infinity', 'infinity');
INSERT INTO cal_ev VALUES ('2018-06-15 12:00 UTC', '2018-06-15', 3, 100);
SELECT rollup, status FROM memoria.refresh() WHERE rollup LIKE 'cal%' ORDER BY 1;
SELECT count(*) AS differences FROM memoria.verify('cal_yearly_of_monthly');
SELECT v FROM memoria_rollup.cal_yearly_of_monthly WHERE k = 3 AND bucket = '2018-01-01 00:00-02';

SELECT memoria.drop_rollup(name, drop_table => true, cascade => true) FROM memoria.rollups WHERE name = 'cal_monthly';
SELECT memoria.drop_rollup(name, drop_table => true) FROM memoria.rollups WHERE name LIKE 'cal%';
DROP TABLE cal_ev;
