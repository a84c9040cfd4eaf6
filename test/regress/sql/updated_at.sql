-- updated_at mode: INSERTs write nothing on the write path; a refresh finds
-- new and corrected rows by their updated_at, up to a horizon that never
-- passes an open transaction.  Moves, DELETE and TRUNCATE are still captured
-- by triggers.  (Concurrent cases: test/isolation/specs/updated_at_horizon.spec.)
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE TABLE ua (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL,
    k          int NOT NULL,
    v          int NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    loose_ts   timestamptz,
    local_ts   timestamp NOT NULL DEFAULT localtimestamp
);

-- Arguments are checked up front, and a failed call leaves nothing behind.
SELECT memoria.create_rollup('ua_daily', 'ua', 'at', '{k}', '{sum(v) AS v}', invalidation => 'updated_at');
SELECT memoria.create_rollup('ua_daily', 'ua', 'at', '{k}', '{sum(v) AS v}', invalidation => 'updated_at',
                             updated_at_column => 'nope');
SELECT memoria.create_rollup('ua_daily', 'ua', 'at', '{k}', '{sum(v) AS v}', invalidation => 'updated_at',
                             updated_at_column => 'local_ts');
SELECT memoria.create_rollup('ua_daily', 'ua', 'at', '{k}', '{sum(v) AS v}', invalidation => 'updated_at',
                             updated_at_column => 'loose_ts');
SELECT memoria.create_rollup('ua_daily', 'ua', 'at', '{k}', '{sum(v) AS v}', updated_at_column => 'updated_at');
SELECT memoria.create_rollup('ua_daily', 'ua', 'at', '{k}', '{sum(v) AS v}', invalidation => 'sometimes');
SELECT count(*) AS rollups, (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ua'::regclass) AS triggers
FROM memoria.rollups;

INSERT INTO ua (at, k, v) SELECT timestamptz '2026-05-01' + g * interval '5 hours', g % 3, g FROM generate_series(1, 50) g;
SELECT memoria.create_rollup('ua_daily', 'ua', 'at', '{k}', '{sum(v) AS v, count(*) AS n}',
                             invalidation => 'updated_at', updated_at_column => 'updated_at',
                             safety_lag => '0 seconds');
-- No trigger on INSERT.
SELECT pg_get_triggerdef(oid) ~ 'AFTER DELETE OR UPDATE ON' AS update_and_delete_only
FROM pg_trigger WHERE tgrelid = 'ua'::regclass AND tgname LIKE 'zz_memoria_capture%';
SET client_min_messages = warning;  -- backfill NOTICEs carry timings
CALL memoria.backfill('ua_daily');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');

-- An INSERT logs no key; the refresh finds it through updated_at.
INSERT INTO ua (at, k, v) VALUES ('2026-05-02 10:00', 1, 1000);
SELECT pending_keys FROM memoria.status WHERE rollup = 'ua_daily';
SELECT status, keys_refreshed FROM memoria.refresh('ua_daily');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');

-- A row stamped before its transaction began (copied with its old stamp, or
-- brought by logical replication with the publisher's) may be behind what
-- the last refresh scanned: the stale trigger logs its key.
INSERT INTO ua (at, k, v, updated_at) VALUES ('2026-05-03 10:00', 2, 500, now() - interval '1 hour');
SELECT pending_keys FROM memoria.status WHERE rollup = 'ua_daily';
SELECT status, keys_refreshed FROM memoria.refresh('ua_daily');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');
-- The table's owner may CREATE OR REPLACE a trigger of memoria's name: a
-- WHEN clause or a column list of their own is put back as memoria made it.
SELECT tgname AS ua_stale FROM pg_trigger WHERE tgrelid = 'ua'::regclass AND tgname LIKE 'zz_memoria_stale%' \gset
SELECT tgname AS ua_capture FROM pg_trigger WHERE tgrelid = 'ua'::regclass AND tgname LIKE 'zz_memoria_capture%' \gset
CREATE OR REPLACE TRIGGER :"ua_stale" AFTER INSERT ON ua FOR EACH ROW WHEN (false) EXECUTE FUNCTION memoria.capture();
CREATE OR REPLACE TRIGGER :"ua_capture" AFTER DELETE OR UPDATE OF v ON ua FOR EACH ROW EXECUTE FUNCTION memoria.capture();
-- (A WHEN clause that merely contains memoria's, in a literal, is not it.)
CREATE OR REPLACE TRIGGER :"ua_stale" AFTER INSERT ON ua FOR EACH ROW
WHEN (new.updated_at < now() AND 'x WHEN ((new.updated_at < now())) EXECUTE FUNCTION ' = '')
EXECUTE FUNCTION memoria.capture();
SELECT regexp_replace(pg_get_triggerdef(oid), '_[0-9]+ ', '_N ') AS as_made FROM pg_trigger
WHERE tgrelid = 'ua'::regclass AND tgname IN (:'ua_stale', :'ua_capture') ORDER BY 1;
INSERT INTO ua (at, k, v, updated_at) VALUES ('2026-05-03 11:00', 2, 501, now() - interval '1 hour');
UPDATE ua SET k = 2 WHERE id = 9;
SELECT status, keys_refreshed FROM memoria.refresh('ua_daily');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');

-- A correction that stamps updated_at: found by the scan, nothing logged.
UPDATE ua SET v = v + 1, updated_at = now() WHERE id = 10;
SELECT pending_keys FROM memoria.status WHERE rollup = 'ua_daily';
SELECT status, keys_refreshed FROM memoria.refresh('ua_daily');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');

-- Moves to another day or scope and deletes are logged by the trigger, even
-- when updated_at is not stamped.
UPDATE ua SET at = at + interval '10 days' WHERE id = 11;
UPDATE ua SET k = k + 10 WHERE id = 12;
DELETE FROM ua WHERE id = 13;
SELECT pending_keys FROM memoria.status WHERE rollup = 'ua_daily';
SELECT status, keys_refreshed FROM memoria.refresh('ua_daily');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');

-- A transaction's rows are stamped with its start: while it is open (this
-- very session here) the horizon stays below it, and the rows are found
-- once it has committed.
BEGIN;
INSERT INTO ua (at, k, v) VALUES ('2026-05-03 10:00', 2, 500);
SELECT status, keys_refreshed FROM memoria.refresh('ua_daily');
COMMIT;
SELECT status, keys_refreshed FROM memoria.refresh('ua_daily');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');

-- TRUNCATE still rebuilds.
TRUNCATE ua;
INSERT INTO ua (at, k, v) VALUES ('2026-05-04 10:00', 1, 7);
SELECT status FROM memoria.refresh('ua_daily');
SELECT k, v, n FROM memoria_rollup.ua_daily;

-- A correction that does not stamp updated_at: its stamp is older than its
-- transaction, so the UPDATE trigger logs the row's key (a refresh may have
-- scanned past the stamp).  refresh_window recomputes a window all the same.
UPDATE ua SET v = 8;
SELECT status FROM memoria.refresh('ua_daily');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');
SELECT status FROM memoria.refresh_window('ua_daily', '2026-05-04', '2026-05-05');
SELECT count(*) AS differences FROM memoria.verify('ua_daily');

-- safety_lag: a row is found only once it is that old (5 minutes by default).
SELECT memoria.create_rollup('ua_lagged', 'ua', 'at', '{k}', '{count(*) AS n}',
                             invalidation => 'updated_at', updated_at_column => 'updated_at');
CALL memoria.backfill('ua_lagged');
INSERT INTO ua (at, k, v) VALUES ('2026-05-04 11:00', 1, 1);
SELECT status FROM memoria.refresh('ua_lagged');
SELECT n AS new_row_not_counted_yet FROM memoria_rollup.ua_lagged;
SELECT scanned_through <= now() - interval '5 minutes' AS scan_stays_behind
FROM memoria.rollup_state JOIN memoria.rollups ON id = rollup_id WHERE name = 'ua_lagged';

-- A partitioned source, written through the parent and directly.
CREATE TABLE uap (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL,
                  updated_at timestamptz NOT NULL DEFAULT now()) PARTITION BY RANGE (at);
CREATE TABLE uap_may PARTITION OF uap FOR VALUES FROM ('2026-05-01') TO ('2026-06-01');
SELECT memoria.create_rollup('uap_daily', 'uap', 'at', '{k}', '{sum(v) AS v}',
                             invalidation => 'updated_at', updated_at_column => 'updated_at',
                             safety_lag => '0 seconds');
CREATE TABLE uap_june PARTITION OF uap FOR VALUES FROM ('2026-06-01') TO ('2026-07-01');
INSERT INTO uap VALUES ('2026-05-10', 1, 1), ('2026-06-10', 1, 2);
INSERT INTO uap_june VALUES ('2026-06-11', 2, 3);
UPDATE uap SET at = '2026-05-20' WHERE v = 2;   -- moves to the other partition
SELECT status FROM memoria.refresh('uap_daily');
SELECT bucket, k, v FROM memoria_rollup.uap_daily ORDER BY 1, 2;
SELECT count(*) AS differences FROM memoria.verify('uap_daily');
-- An UPDATE that moves a row to another partition without stamping it is a
-- DELETE and an INSERT underneath, with no UPDATE trigger: the row's new
-- key comes from the stale trigger (scanned_through is past its stamp).
UPDATE uap SET at = '2026-06-20' WHERE v = 1;
SELECT status FROM memoria.refresh('uap_daily');
SELECT count(*) AS differences FROM memoria.verify('uap_daily');
-- A row stamped by its own transaction fires nothing: the scan finds it.
SELECT dirty_log AS uap_log FROM memoria.rollups WHERE name = 'uap_daily' \gset
INSERT INTO uap VALUES ('2026-05-25', 3, 4);
SELECT count(*) AS keys_logged FROM :uap_log;
SELECT status FROM memoria.refresh('uap_daily');
SELECT count(*) AS differences FROM memoria.verify('uap_daily');
-- Disabled, it is reported like any capture trigger.
SELECT tgname AS stale_trigger FROM pg_trigger WHERE tgrelid = 'uap_may'::regclass AND tgname LIKE 'zz_memoria_stale%' \gset
ALTER TABLE uap_may DISABLE TRIGGER :"stale_trigger";
SELECT status FROM memoria.refresh('uap_daily');
ALTER TABLE uap_may ENABLE ALWAYS TRIGGER :"stale_trigger";
SELECT status FROM memoria.refresh('uap_daily');
SELECT count(*) AS differences FROM memoria.verify('uap_daily');
-- updated_at's precision may change: the stale trigger, whose WHEN reads the
-- column, steps aside for the command and is back on every partition.
ALTER TABLE uap ALTER COLUMN updated_at TYPE timestamptz(3);
SELECT count(*) AS stale_triggers FROM pg_trigger WHERE tgname = :'stale_trigger';
INSERT INTO uap VALUES ('2026-06-03', 4, 40, now() - interval '1 day');
SELECT status FROM memoria.refresh('uap_daily');
SELECT count(*) AS differences FROM memoria.verify('uap_daily');
-- What the command itself writes while the trigger stands aside (here a
-- CHECK constraint's function, the type unchanged: no rewrite) is not lost.
CREATE FUNCTION pg_temp.sneak(v int) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
    IF v = 40 THEN INSERT INTO uap VALUES ('2026-06-04', 5, 50, now() - interval '1 day'); END IF;
    RETURN true;
END $$;
ALTER TABLE uap ALTER COLUMN updated_at TYPE timestamptz(3), ADD CONSTRAINT uap_sneak CHECK (pg_temp.sneak(v));
SELECT status FROM memoria.refresh('uap_daily');
SELECT count(*) AS differences FROM memoria.verify('uap_daily');

SELECT memoria.drop_rollup(name, drop_table => true) FROM memoria.rollups WHERE name IN ('ua_daily', 'ua_lagged', 'uap_daily');
DROP TABLE ua, uap;
