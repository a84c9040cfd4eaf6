-- live: every rollup's <target>_live view equals a fresh GROUP BY of the
-- source at the reader's snapshot, whatever is pending: writes not yet
-- refreshed (moves across buckets and scopes, deletes, NULL scopes), the
-- reader's own uncommitted writes, a pending TRUNCATE, a rollup not yet
-- backfilled, updated_at mode's unscanned rows; frozen buckets keep their
-- history; reading needs the privileges the rollup and its source need.
SET client_min_messages = error;
CREATE TABLE lv (id serial PRIMARY KEY, at timestamptz NOT NULL, ws int, model text NOT NULL, tokens int NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON lv (at);
INSERT INTO lv (at, ws, model, tokens)
SELECT timestamptz '2026-03-01' + g * interval '53 minutes', CASE WHEN g % 7 = 0 THEN NULL ELSE g % 5 END,
       (ARRAY['small', 'large'])[1 + g % 2], g
FROM generate_series(1, 3000) g;
SELECT memoria.create_rollup('lv_daily', 'lv', 'at', '{ws,model}', '{sum(tokens)::bigint AS tokens, count(*) AS n}',
                             scope => '{ws}', time_zone => 'Europe/Berlin') IS NOT NULL AS created;
SELECT c.relname, c.relkind, c.reloptions FROM pg_class c WHERE c.relname = 'lv_daily_live';
-- truth: what the view must return, from scratch.
CREATE VIEW lv_truth AS
SELECT memoria.bucket(at, '1 day', 'Europe/Berlin') AS bucket, ws, model, sum(tokens)::bigint AS tokens, count(*) AS n
FROM lv GROUP BY 1, 2, 3;
CREATE FUNCTION live_differences(live regclass, truth regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE d bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) UNION ALL '
                   '(SELECT * FROM %s EXCEPT ALL SELECT * FROM %s)) d', live, truth, truth, live) INTO d;
    RETURN d;
END $$;

-- Not backfilled yet: the view recomputes everything.
SELECT live_differences('memoria_rollup.lv_daily_live', 'lv_truth') AS differences,
       (SELECT count(*) FROM memoria_rollup.lv_daily) AS rollup_rows;
CALL memoria.backfill('lv_daily');
SELECT live_differences('memoria_rollup.lv_daily_live', 'lv_truth') AS differences;

-- Writes not refreshed: the rollup is stale, the view is not.
INSERT INTO lv (at, ws, model, tokens) VALUES ('2026-03-02 10:00', 1, 'small', 1000), ('2026-03-02 11:00', NULL, 'huge', 7);
UPDATE lv SET at = at + interval '3 days' WHERE id % 41 = 0;
UPDATE lv SET ws = CASE WHEN ws IS NULL THEN 2 WHEN ws = 3 THEN NULL ELSE ws END WHERE id % 37 = 0;
DELETE FROM lv WHERE id % 43 = 0;
DELETE FROM lv WHERE at::date = '2026-03-05' AND ws = 4;   -- a whole group goes
SELECT live_differences('memoria_rollup.lv_daily', 'lv_truth') > 0 AS rollup_is_stale,
       live_differences('memoria_rollup.lv_daily_live', 'lv_truth') AS live_differences;

-- The reader's own uncommitted writes, not in the log yet.
BEGIN;
UPDATE lv SET tokens = tokens + 1 WHERE id % 11 = 0;
INSERT INTO lv (at, ws, model, tokens) VALUES ('2026-01-01 00:00', 9, 'new', 1);
SELECT live_differences('memoria_rollup.lv_daily_live', 'lv_truth') AS own_writes_differences;
ROLLBACK;
SELECT live_differences('memoria_rollup.lv_daily_live', 'lv_truth') AS after_rollback;

-- A cursor opened before the same transaction refreshes: its snapshot's
-- rollup rows are older than the refresh, and its keys are still pending.
BEGIN;
UPDATE lv SET tokens = tokens + 100 WHERE id % 13 = 0;
DECLARE live_now CURSOR FOR SELECT * FROM memoria_rollup.lv_daily_live EXCEPT ALL SELECT * FROM lv_truth;
DECLARE truth_now CURSOR FOR SELECT * FROM lv_truth EXCEPT ALL SELECT * FROM memoria_rollup.lv_daily_live;
SELECT status FROM memoria.refresh('lv_daily');
FETCH ALL FROM live_now;
FETCH ALL FROM truth_now;
ROLLBACK;

-- A refresh changes nothing the view shows.
SELECT status FROM memoria.refresh('lv_daily');
SELECT live_differences('memoria_rollup.lv_daily_live', 'lv_truth') AS differences,
       live_differences('memoria_rollup.lv_daily', 'lv_truth') AS rollup_differences;

-- A pending TRUNCATE (and a refill).
BEGIN;
TRUNCATE lv;
INSERT INTO lv (at, ws, model, tokens) VALUES ('2026-03-03 12:00', 1, 'small', 5);
SELECT live_differences('memoria_rollup.lv_daily_live', 'lv_truth') AS truncate_differences,
       (SELECT count(*) FROM memoria_rollup.lv_daily_live) AS live_rows;
ROLLBACK;

-- updated_at mode: rows stamped after the last scan.
SELECT memoria.create_rollup('lv_ua', 'lv', 'at', '{ws,model}', '{sum(tokens)::bigint AS tokens, count(*) AS n}',
                             scope => '{ws}', time_zone => 'Europe/Berlin', invalidation => 'updated_at',
                             updated_at_column => 'updated_at', safety_lag => '0 seconds') IS NOT NULL AS created;
CALL memoria.backfill('lv_ua');
INSERT INTO lv (at, ws, model, tokens) VALUES ('2026-03-04 09:00', 3, 'large', 123);
UPDATE lv SET tokens = tokens * 2, updated_at = now() WHERE id % 29 = 0;
SELECT live_differences('memoria_rollup.lv_ua_live', 'lv_truth') AS updated_at_differences,
       live_differences('memoria_rollup.lv_ua', 'lv_truth') > 0 AS rollup_is_stale;

-- Frozen buckets keep their history: raw rows of March 1-3 go, the view
-- (like the rollup) still shows them.
SELECT status FROM memoria.refresh('lv_daily');
SELECT action FROM memoria.alter_rollup('lv_daily', freeze_after => '1 day');
SELECT memoria.drop_rollup('lv_ua', drop_table => true);
CREATE TEMP TABLE lv_history AS SELECT * FROM memoria_rollup.lv_daily WHERE bucket < '2026-03-04';
DELETE FROM lv WHERE at < '2026-03-03 23:00+01';
SELECT count(*) AS frozen_rows_in_view FROM memoria_rollup.lv_daily_live WHERE bucket < '2026-03-04';
SELECT count(*) AS history_differences FROM (
    (SELECT * FROM lv_history EXCEPT SELECT * FROM memoria_rollup.lv_daily_live WHERE bucket < '2026-03-04')
    UNION ALL (SELECT * FROM memoria_rollup.lv_daily_live WHERE bucket < '2026-03-04' EXCEPT SELECT * FROM lv_history)) d;

-- Measures added: the view follows.
SELECT action FROM memoria.alter_rollup('lv_daily', add_measures => '{max(tokens) AS biggest}');
SELECT attname FROM pg_attribute WHERE attrelid = 'memoria_rollup.lv_daily_live'::regclass AND attnum > 0 ORDER BY attnum;

-- Privileges: the view's own grant is not enough; the rollup table and the
-- source are read as the reader.
CREATE ROLE lv_reader;
GRANT USAGE ON SCHEMA memoria_rollup TO lv_reader;
GRANT SELECT ON memoria_rollup.lv_daily_live TO lv_reader;
SET ROLE lv_reader;
SELECT count(*) FROM memoria_rollup.lv_daily_live;
RESET ROLE;
GRANT SELECT ON memoria_rollup.lv_daily TO lv_reader;
SET ROLE lv_reader;
SELECT count(*) FROM memoria_rollup.lv_daily_live;
RESET ROLE;
GRANT SELECT ON lv TO lv_reader;
SET ROLE lv_reader;
SELECT count(*) > 0 AS reads FROM memoria_rollup.lv_daily_live;
SELECT count(*) FROM memoria_internal.live_keys(0) AS k(a timestamptz, b timestamptz);
RESET ROLE;
-- live_keys answers only those who may read the rollup table.
CREATE ROLE lv_nobody;
SELECT id AS lv_id FROM memoria.rollups WHERE name = 'lv_daily' \gset
SET ROLE lv_nobody;
SELECT count(*) FROM memoria_internal.live_keys(:lv_id) AS k(a timestamptz, b timestamptz, c int);
RESET ROLE;
DROP ROLE lv_nobody;

-- A role that may read the rollup table but not the source learns no key
-- (keys exist for rows the filter would hide).
CREATE ROLE lv_table_only;
GRANT SELECT ON memoria_rollup.lv_daily TO lv_table_only;
SET ROLE lv_table_only;
SELECT count(*) FROM memoria_internal.live_keys(:lv_id) AS k(a timestamptz, b timestamptz, c int);
RESET ROLE;
REVOKE ALL ON memoria_rollup.lv_daily FROM lv_table_only;
DROP ROLE lv_table_only;

-- DDL on a column the view does not read leaves it (and its grants) alone;
-- a change to one it reads sets it aside and back.
ALTER TABLE lv ADD COLUMN junk int;
ALTER TABLE lv ALTER COLUMN junk TYPE bigint;
ALTER TABLE lv DROP COLUMN junk;
SELECT has_table_privilege('lv_reader', 'memoria_rollup.lv_daily_live', 'SELECT') AS grant_kept;
DROP VIEW lv_truth;  -- (it reads ws too)
ALTER TABLE lv ALTER COLUMN ws TYPE int USING ws + 0;  -- (a rewrite: the rollup is rebuilt)
SELECT count(*) AS live_views FROM pg_class WHERE relname = 'lv_daily_live';
CREATE VIEW lv_truth AS
SELECT memoria.bucket(at, '1 day', 'Europe/Berlin') AS bucket, ws, model, sum(tokens)::bigint AS tokens, count(*) AS n,
       max(tokens) AS biggest
FROM lv GROUP BY 1, 2, 3;
-- (Every bucket is frozen by now, freeze_after being a day: the view shows
-- the rollup's history, where the measure added later is NULL.)
SELECT count(*) AS after_type_change FROM (
    (SELECT bucket, ws, model, tokens, n FROM memoria_rollup.lv_daily_live WHERE bucket >= '2026-03-05'
     EXCEPT ALL SELECT bucket, ws, model, tokens, n FROM lv_truth WHERE bucket >= '2026-03-05')
    UNION ALL
    (SELECT bucket, ws, model, tokens, n FROM lv_truth WHERE bucket >= '2026-03-05'
     EXCEPT ALL SELECT bucket, ws, model, tokens, n FROM memoria_rollup.lv_daily_live WHERE bucket >= '2026-03-05')) d;

-- drop_rollup takes the view along.
SELECT memoria.drop_rollup('lv_daily');
SELECT count(*) AS views_left FROM pg_class WHERE relname = 'lv_daily_live';
REVOKE ALL ON memoria_rollup.lv_daily FROM lv_reader;
REVOKE ALL ON lv FROM lv_reader;
REVOKE ALL ON SCHEMA memoria_rollup FROM lv_reader;
DROP ROLE lv_reader;
DROP TABLE memoria_rollup.lv_daily;
-- A rollup of a partition: ALTER TABLE on the partitioned parent reaches it.
CREATE TABLE lvp (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE lvp_2026 PARTITION OF lvp FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO lvp SELECT timestamptz '2026-02-01' + g * interval '1 hour', g % 3, g FROM generate_series(1, 100) g;
SELECT memoria.create_rollup('lvp_daily', 'lvp_2026', 'at', '{k}', '{sum(v)::bigint AS v}') IS NOT NULL AS created;
ALTER TABLE lvp ALTER COLUMN v TYPE bigint;
SELECT count(*) AS live_views FROM pg_class WHERE relname = 'lvp_daily_live';
SELECT memoria.drop_rollup('lvp_daily', drop_table => true);
DROP TABLE lvp;
-- A relation already named <table>_live: the rollup is made, without a view.
CREATE TABLE memoria_rollup.lv_taken_live (x int);
SET client_min_messages = warning;
SELECT memoria.create_rollup('lv_taken', 'lv', 'at', '{ws}', '{count(*) AS n}') IS NOT NULL AS created;
SET client_min_messages = error;
SELECT memoria.drop_rollup('lv_taken', drop_table => true);
DROP TABLE memoria_rollup.lv_taken_live;
DROP VIEW lv_truth;
DROP FUNCTION live_differences(regclass, regclass);
DROP TABLE lv;
