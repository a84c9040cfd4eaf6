-- retention: freeze_after keeps history when raw rows go (DELETE, TRUNCATE,
-- DETACH or DROP PARTITION), for a daily rollup in UTC and an hourly one in
-- Europe/Berlin; frozen buckets are skipped by verify and refresh_window
-- unless asked.  Data is relative to now(): outputs are counts and booleans.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';

-- 120 days of usage, one row every 7 hours (cuts fall at any time of day).
CREATE TABLE usage (id int PRIMARY KEY, at timestamptz NOT NULL, ws int NOT NULL, tokens int NOT NULL);
INSERT INTO usage SELECT g, now() - interval '120 days' + g * interval '7 hours', g % 3, g
FROM generate_series(0, 410) g;
SELECT memoria.create_rollup('usage_daily', 'usage', 'at', '{ws}', '{sum(tokens) AS tokens, count(*) AS n}')
    IS NOT NULL AS created;
SELECT memoria.create_rollup('usage_hourly', 'usage', 'at', '{ws}', '{sum(tokens) AS tokens}',
                             bucket => '1 hour', time_zone => 'Europe/Berlin') IS NOT NULL AS created;
-- The control: the same daily rollup, never frozen.
SELECT memoria.create_rollup('usage_unfrozen', 'usage', 'at', '{ws}', '{sum(tokens) AS tokens}') IS NOT NULL AS created;
SELECT rollup, status FROM memoria.refresh_window('usage_daily', '-infinity', 'infinity')
UNION ALL SELECT rollup, status FROM memoria.refresh_window('usage_hourly', '-infinity', 'infinity')
UNION ALL SELECT rollup, status FROM memoria.refresh_window('usage_unfrozen', '-infinity', 'infinity');

-- Without freeze_after, retention erases history: the reason to freeze.
CREATE TABLE history AS SELECT 'daily' AS r, bucket, ws, tokens FROM memoria_rollup.usage_daily
                        UNION ALL SELECT 'hourly', bucket, ws, tokens FROM memoria_rollup.usage_hourly
                        UNION ALL SELECT 'unfrozen', bucket, ws, tokens FROM memoria_rollup.usage_unfrozen;

-- A write not refreshed yet, in a bucket about to freeze: freezing applies
-- it first (it was made while the bucket was live).
INSERT INTO usage VALUES (5000, now() - interval '50 days', 1, 777);
-- Freeze what ended 30 days ago; a dry run first changes nothing.
SELECT step, action, detail LIKE 'would be: buckets before % are frozen: % rollup rows in % buckets%' AS says
FROM memoria.alter_rollup('usage_daily', freeze_after => '30 days', dry_run => true);
SELECT freeze_after FROM memoria.rollups WHERE name = 'usage_daily';
SELECT action FROM memoria.alter_rollup('usage_daily', freeze_after => '30 days');
SELECT action FROM memoria.alter_rollup('usage_hourly', freeze_after => '30 days');
SELECT count(*) AS differences FROM memoria.verify('usage_daily', include_frozen => true);
-- (The history to keep, now with that write.)
DELETE FROM history;
SELECT status FROM memoria.refresh_window('usage_unfrozen', '-infinity', 'infinity');
INSERT INTO history SELECT 'daily' AS r, bucket, ws, tokens FROM memoria_rollup.usage_daily
                   UNION ALL SELECT 'hourly', bucket, ws, tokens FROM memoria_rollup.usage_hourly
                   UNION ALL SELECT 'unfrozen', bucket, ws, tokens FROM memoria_rollup.usage_unfrozen;
SELECT rollup, frozen_before IS NOT NULL AS shows_boundary FROM memoria.status ORDER BY 1;
-- (The control, usage_unfrozen, loses what retention deletes.)
SELECT rollup, freeze_after FROM memoria.rollups_info ORDER BY 1;
-- The boundary: daily at UTC midnight 30 days ago, hourly at the hour.
SELECT frozen_before::timestamptz = date_trunc('day', now() - interval '30 days') AS daily_at_midnight
FROM memoria.status WHERE rollup = 'usage_daily';
SELECT frozen_before::timestamptz = date_trunc('hour', now() - interval '30 days') AS hourly_at_the_hour
FROM memoria.status WHERE rollup = 'usage_hourly';

CREATE FUNCTION history_kept() RETURNS TABLE (r text, kept boolean, lost_rows boolean) LANGUAGE sql AS $$
    SELECT h.r, count(*) FILTER (WHERE cur.tokens IS DISTINCT FROM h.tokens) = 0,
           count(*) FILTER (WHERE cur.tokens IS NULL) > 0
    FROM history h
    LEFT JOIN (SELECT 'daily' AS r, bucket, ws, tokens FROM memoria_rollup.usage_daily
               UNION ALL SELECT 'hourly', bucket, ws, tokens FROM memoria_rollup.usage_hourly
               UNION ALL SELECT 'unfrozen', bucket, ws, tokens FROM memoria_rollup.usage_unfrozen) cur
      ON cur.r = h.r AND cur.bucket = h.bucket AND cur.ws = h.ws
    WHERE h.bucket < now() - interval '31 days'
    GROUP BY h.r ORDER BY h.r
$$;
CREATE FUNCTION recent_exact() RETURNS TABLE (r text, differences bigint) LANGUAGE sql AS $$
    SELECT 'daily', count(*) FROM memoria.verify('usage_daily')
    UNION ALL SELECT 'hourly', count(*) FROM memoria.verify('usage_hourly')
$$;

-- Retention by DELETE, cut 85 days back at an odd time of day, plus writes
-- to recent days: old history stays, recent days stay exact.
DELETE FROM usage WHERE at < now() - interval '85 days 5 hours';
UPDATE usage SET tokens = tokens + 1000 WHERE at > now() - interval '10 days';
SELECT rollup, status FROM memoria.refresh() ORDER BY 1;
SELECT * FROM history_kept();
SELECT * FROM recent_exact();
SELECT rollup, frozen_keys_discarded > 0 AS discarded_counted FROM memoria.status ORDER BY 1;
-- verify skips frozen buckets unless asked: the raw rows are gone there.
SELECT count(*) > 0 AS frozen_differ FROM memoria.verify('usage_daily', include_frozen => true);
-- refresh_window leaves frozen buckets alone unless asked.
SELECT rows_upserted, rows_deleted FROM memoria.refresh_window('usage_daily', '-infinity', now() - interval '40 days');
SELECT * FROM history_kept();

-- Batches count live keys only: many frozen keys ahead of a live one do not
-- stop memoria.run before it.
DELETE FROM usage WHERE at < now() - interval '60 days';
UPDATE usage SET tokens = tokens + 1 WHERE at > now() - interval '3 days';
SET memoria.batch_keys = 2;
CALL memoria.run('usage_daily');
RESET memoria.batch_keys;
SELECT pending_keys FROM memoria.status WHERE rollup = 'usage_daily';
SELECT count(*) AS differences FROM memoria.verify('usage_daily');

-- A write made while its bucket was live is applied even if the refresh
-- comes after the bucket's end plus freeze_after (frozen is counted from
-- the watermark).
CREATE TABLE ret_ticks (at timestamptz NOT NULL, v int NOT NULL);
SELECT memoria.create_rollup('ticks_s', 'ret_ticks', 'at', '{}', '{sum(v) AS v}', bucket => '1 second') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('ticks_s', '-infinity', 'infinity');
SELECT action FROM memoria.alter_rollup('ticks_s', freeze_after => '1 second');
INSERT INTO ret_ticks VALUES (clock_timestamp(), 5);
SELECT pg_sleep(2.5);
SELECT status FROM memoria.refresh('ticks_s');
SELECT count(*) AS differences FROM memoria.verify('ticks_s', include_frozen => true);

-- An update that moves an old row into a recent day: the recent day is
-- recomputed, the old one stays frozen.
UPDATE usage SET at = now() - interval '2 days' WHERE id = (SELECT min(id) FROM usage);
SELECT rollup, status FROM memoria.refresh() ORDER BY 1;
SELECT * FROM history_kept();
SELECT * FROM recent_exact();

-- TRUNCATE marks a rebuild: of what is not frozen.
TRUNCATE usage;
SELECT rollup, status FROM memoria.refresh() ORDER BY 1;
SELECT * FROM history_kept();
SELECT * FROM recent_exact();
SELECT count(*) AS recent_rows FROM memoria_rollup.usage_daily WHERE bucket >= now() - interval '29 days';

-- Freezing less is refused (frozen buckets may have lost their raw rows).
\set VERBOSITY terse
SELECT * FROM memoria.alter_rollup('usage_daily', freeze_after => '60 days');
SELECT * FROM memoria.alter_rollup('usage_daily', freeze_after => '0 days');
\set VERBOSITY default
SELECT action FROM memoria.alter_rollup('usage_daily', freeze_after => '20 days');

-- A partitioned source, pg_partman style: monthly partitions, the oldest
-- detached, the next dropped.
CREATE TABLE ev (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL) PARTITION BY RANGE (at);
DO $$
DECLARE m timestamptz;
BEGIN
    FOR m IN SELECT generate_series(date_trunc('month', now()) - interval '5 months', date_trunc('month', now()),
                                    interval '1 month') LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF ev FOR VALUES FROM (%L) TO (%L)',
                       'ev_' || to_char(m, 'YYYYMM'), m, m + interval '1 month');
    END LOOP;
END $$;
INSERT INTO ev SELECT now() - interval '150 days' + g * interval '5 hours', g % 4, g FROM generate_series(0, 700) g
WHERE now() - interval '150 days' + g * interval '5 hours' < date_trunc('month', now()) + interval '1 month';
SELECT memoria.create_rollup('ev_daily', 'ev', 'at', '{k}', '{sum(v) AS v}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('ev_daily', '-infinity', 'infinity');
SELECT action FROM memoria.alter_rollup('ev_daily', freeze_after => '45 days');
CREATE TABLE ev_history AS SELECT * FROM memoria_rollup.ev_daily;
CREATE FUNCTION ev_kept() RETURNS TABLE (kept boolean, lost bigint) LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE cur.v IS DISTINCT FROM h.v) = 0, count(*) FILTER (WHERE cur.v IS NULL)
    FROM ev_history h LEFT JOIN memoria_rollup.ev_daily cur USING (bucket, k)
    WHERE h.bucket < now() - interval '46 days'
$$;
SELECT format('ALTER TABLE ev DETACH PARTITION %I', min(c.relname)) AS detach,
       format('DROP TABLE %I', min(c.relname)) AS drop_detached
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ev'::regclass \gset
:detach;
SELECT status FROM memoria.refresh('ev_daily');
SELECT * FROM ev_kept();
:drop_detached;
SELECT format('DROP TABLE %I', min(c.relname)) AS drop_oldest
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ev'::regclass \gset
:drop_oldest;
SELECT status FROM memoria.refresh('ev_daily');
SELECT * FROM ev_kept();
SELECT count(*) AS recent_differences FROM memoria.verify('ev_daily');
-- A date source, frozen by local dates in its zone.
CREATE TABLE daily_sales (day date NOT NULL, shop int NOT NULL, amount int NOT NULL);
INSERT INTO daily_sales SELECT current_date - g, g % 2, g FROM generate_series(0, 99) g;
SELECT memoria.create_rollup('sales_weekly', 'daily_sales', 'day', '{shop}', '{sum(amount) AS amount}',
                             bucket => '7 days', time_zone => 'Asia/Tokyo') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('sales_weekly', '-infinity', 'infinity');
SELECT action FROM memoria.alter_rollup('sales_weekly', freeze_after => '4 weeks');
CREATE TABLE sales_history AS SELECT * FROM memoria_rollup.sales_weekly;
SELECT extract(isodow FROM frozen_before::date) AS frozen_before_is_monday FROM memoria.status WHERE rollup = 'sales_weekly';
DELETE FROM daily_sales WHERE day < current_date - 60;
SELECT status FROM memoria.refresh('sales_weekly');
SELECT count(*) > 0 AND count(*) FILTER (WHERE cur.amount IS DISTINCT FROM h.amount) = 0 AS old_weeks_kept
FROM sales_history h LEFT JOIN memoria_rollup.sales_weekly cur USING (bucket, shop)
WHERE h.bucket < current_date - 70;
SELECT count(*) AS differences FROM memoria.verify('sales_weekly');
