-- lifecycle: a rollup table only memoria writes, DDL that would break it
-- refused, measures added (with an interrupted and resumed fill) and
-- dropped, a rename, dry runs that change nothing, ownership that follows
-- the source, and who sees what (rollups_info, pg_monitor).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
DROP ROLE IF EXISTS memoria_lc_alice;
DROP ROLE IF EXISTS memoria_lc_bob;
DROP ROLE IF EXISTS memoria_lc_carol;
DROP ROLE IF EXISTS memoria_lc_mon;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE ROLE memoria_lc_alice;
CREATE ROLE memoria_lc_bob;
CREATE ROLE memoria_lc_carol;
CREATE ROLE memoria_lc_mon IN ROLE pg_monitor;
CREATE SCHEMA lc AUTHORIZATION memoria_lc_alice;
GRANT USAGE, CREATE ON SCHEMA lc TO memoria_lc_bob, memoria_lc_carol;

SET ROLE memoria_lc_alice;
CREATE TABLE lc.calls (id int PRIMARY KEY, at timestamptz NOT NULL, ws int NOT NULL, ms int NOT NULL);
INSERT INTO lc.calls SELECT g, timestamptz '2026-01-01' + g * interval '3 hours', g % 3, g FROM generate_series(1, 600) g;
SELECT memoria.create_rollup('calls_daily', 'lc.calls', 'at', '{ws}', '{sum(ms) AS ms, count(*) AS n}')
    IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('calls_daily', '-infinity', 'infinity');

-- Only memoria writes the rollup table, whoever asks (its owner included).
INSERT INTO memoria_rollup.calls_daily VALUES ('2030-01-01', 1, 1, 1);
UPDATE memoria_rollup.calls_daily SET ms = 0;
DELETE FROM memoria_rollup.calls_daily;
TRUNCATE memoria_rollup.calls_daily;
COPY memoria_rollup.calls_daily FROM STDIN;
2030-01-01 00:00:00+00	1	1	1
\.
MERGE INTO memoria_rollup.calls_daily t USING (SELECT '2026-01-01'::timestamptz AS b, 1 AS w) s
    ON t.bucket = s.b AND t.ws = s.w WHEN MATCHED THEN UPDATE SET ms = 0;
SET memoria.writing_rollup = on;  -- only a superuser may stand in for memoria
-- DDL that would break it is refused; what does not is fine.
ALTER TABLE memoria_rollup.calls_daily DROP COLUMN ms;
ALTER TABLE memoria_rollup.calls_daily ALTER COLUMN n TYPE int;
ALTER TABLE memoria_rollup.calls_daily ADD COLUMN note text;
ALTER TABLE memoria_rollup.calls_daily DROP CONSTRAINT calls_daily_pkey;
ALTER TABLE memoria_rollup.calls_daily DISABLE TRIGGER ALL;
DROP TRIGGER zz_memoria_guard_1 ON memoria_rollup.calls_daily;
ALTER TRIGGER zz_memoria_guard_1 ON memoria_rollup.calls_daily RENAME TO mine;
ALTER TABLE memoria_rollup.calls_daily OWNER TO memoria_lc_bob;
CREATE INDEX calls_daily_ws ON memoria_rollup.calls_daily (ws, bucket);
COMMENT ON TABLE memoria_rollup.calls_daily IS 'calls per day and workspace';
GRANT SELECT ON memoria_rollup.calls_daily TO memoria_lc_carol;
ALTER TABLE memoria_rollup.calls_daily SET (fillfactor = 70);
ALTER TABLE memoria_rollup.calls_daily RENAME COLUMN ms TO total_ms;
ALTER TABLE memoria_rollup.calls_daily RENAME TO calls_per_day;
SELECT target FROM memoria.rollups_info;
-- Columns describe themselves.
SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a
WHERE a.attrelid = 'memoria_rollup.calls_per_day'::regclass AND a.attnum > 0 ORDER BY a.attnum;
INSERT INTO lc.calls VALUES (1000, '2026-01-02 05:00', 2, 7);
SELECT status FROM memoria.refresh('calls_daily');
SELECT count(*) AS differences FROM memoria.verify('calls_daily');
-- The source's owner may CREATE OR REPLACE a capture trigger: the insert
-- trigger without its NEW TABLE is put back as memoria made it.
SELECT tgname AS lc_insert FROM pg_trigger WHERE tgrelid = 'lc.calls'::regclass AND tgname LIKE 'zz_memoria_insert%' \gset
CREATE OR REPLACE TRIGGER :"lc_insert" AFTER INSERT ON lc.calls FOR EACH STATEMENT EXECUTE FUNCTION memoria.capture();
SELECT regexp_replace(pg_get_triggerdef(oid), '_[0-9]+ ', '_N ') AS as_made FROM pg_trigger
WHERE tgrelid = 'lc.calls'::regclass AND tgname = :'lc_insert';
INSERT INTO lc.calls VALUES (90001, '2026-01-03 05:00', 2, 8);
SELECT status FROM memoria.refresh('calls_daily');
SELECT count(*) AS differences FROM memoria.verify('calls_daily');

-- ... nor does DDL that would let anyone else write it, or break it.
CREATE TABLE lc.par (LIKE memoria_rollup.calls_per_day);
ALTER TABLE memoria_rollup.calls_per_day INHERIT lc.par;
CREATE TABLE lc.ppar (LIKE memoria_rollup.calls_per_day) PARTITION BY RANGE (bucket);
ALTER TABLE lc.ppar ATTACH PARTITION memoria_rollup.calls_per_day FOR VALUES FROM ('-infinity') TO ('infinity');
ALTER TABLE memoria_rollup.calls_per_day ENABLE REPLICA TRIGGER zz_memoria_guard_1;
CREATE FUNCTION lc.meddle() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n := 42; RETURN NEW; END $$;
CREATE TRIGGER meddle BEFORE INSERT OR UPDATE ON memoria_rollup.calls_per_day FOR EACH ROW EXECUTE FUNCTION lc.meddle();
CREATE RULE keep AS ON DELETE TO memoria_rollup.calls_per_day DO INSTEAD NOTHING;
ALTER TABLE memoria_rollup.calls_per_day ADD CONSTRAINT small CHECK (n < 1000);
CREATE TABLE lc.workspaces (ws int PRIMARY KEY);
INSERT INTO lc.workspaces VALUES (0), (1), (2);
ALTER TABLE memoria_rollup.calls_per_day ADD FOREIGN KEY (ws) REFERENCES lc.workspaces;
CREATE TABLE lc.refs (b timestamptz, ws int, FOREIGN KEY (b, ws) REFERENCES memoria_rollup.calls_per_day (bucket, ws));
ALTER TABLE memoria_rollup.calls_per_day FORCE ROW LEVEL SECURITY;
ALTER TABLE memoria_rollup.calls_per_day ALTER COLUMN n SET NOT NULL;
ALTER TABLE memoria_rollup.calls_per_day SET UNLOGGED;
-- (A rollup table memoria writes with every trigger it has: ENABLE ALWAYS is fine.)
ALTER TABLE memoria_rollup.calls_per_day ENABLE ALWAYS TRIGGER zz_memoria_guard_1;
ALTER TABLE memoria_rollup.calls_per_day ENABLE TRIGGER zz_memoria_guard_1;
DROP TABLE lc.par, lc.ppar, lc.workspaces;

-- rollups_info: the definition, for its owner.
SELECT rollup, owner, source, target, time_column, bucket, time_zone, dimensions, scope, measures, filter,
       invalidation, refresh_interval, freeze_after, depends_on
FROM memoria.rollups_info;

-- Dry runs change nothing and say what would happen.
SELECT * FROM memoria.alter_rollup('calls_daily', add_measures => '{max(ms) AS slowest}', drop_measures => '{n}',
                                   rename_to => 'calls_by_day', refresh_interval => '5 minutes', dry_run => true);
SELECT rollup, measures, refresh_interval FROM memoria.rollups_info;
SELECT needs_backfill FROM memoria.status;
SELECT attname FROM pg_attribute WHERE attrelid = 'memoria_rollup.calls_per_day'::regclass AND attnum > 0
    AND NOT attisdropped ORDER BY attnum;
-- Bad changes are refused, naming the argument, and change nothing either.
SELECT * FROM memoria.alter_rollup('calls_daily', add_measures => '{max(ms)}');
SELECT * FROM memoria.alter_rollup('calls_daily', add_measures => '{ms AS raw}');
SELECT * FROM memoria.alter_rollup('calls_daily', add_measures => '{max(ms) AS ws}');
SELECT * FROM memoria.alter_rollup('calls_daily', add_measures => '{max(ms) AS x, min(ms) AS x}');
SELECT * FROM memoria.alter_rollup('calls_daily', add_measures => '{max(ms) AS slowest}', drop_measures => '{nope}');
SELECT * FROM memoria.alter_rollup('calls_daily', drop_measures => '{total_ms, ms, n}');
SELECT * FROM memoria.alter_rollup('calls_daily', rename_to => '');
SELECT attname FROM pg_attribute WHERE attrelid = 'memoria_rollup.calls_per_day'::regclass AND attnum > 0
    AND NOT attisdropped ORDER BY attnum;

-- Add a measure, and fill it with a backfill that fails half-way (a row
-- that makes the new measure divide by zero), then resumes.
SELECT * FROM memoria.alter_rollup('calls_daily', add_measures => '{sum(1000 / ms) AS inverse}');
SELECT needs_backfill, state FROM memoria.status;
SELECT count(*) FILTER (WHERE inverse IS NULL) > 0 AS null_until_filled FROM memoria_rollup.calls_per_day;
-- Meanwhile refresh keeps every column of the keys it recomputes.
INSERT INTO lc.calls VALUES (1001, '2026-01-03 05:00', 2, 9);
SELECT status FROM memoria.refresh('calls_daily');
SELECT inverse IS NOT NULL AS refreshed_key_has_it FROM memoria_rollup.calls_per_day WHERE bucket = '2026-01-03' AND ws = 2;
INSERT INTO lc.calls VALUES (2000, '2026-02-10 12:00', 1, 0);
\set VERBOSITY terse
CALL memoria.backfill('calls_daily', slice => '2 weeks');
SELECT needs_backfill, backfill_progress > 0 AS part_done FROM memoria.status;
DELETE FROM lc.calls WHERE id = 2000;
CALL memoria.backfill('calls_daily', slice => '2 weeks');
\set VERBOSITY default
SELECT needs_backfill, state FROM memoria.status;
SELECT count(*) FILTER (WHERE inverse IS NULL) AS still_null FROM memoria_rollup.calls_per_day;
SELECT count(*) AS differences FROM memoria.verify('calls_daily');

-- Several measures in one call are stored as given; a domain's DEFAULT (run
-- for every row by ADD COLUMN) runs with the owner's rights only.
CREATE TABLE lc.who (name text);
CREATE FUNCTION lc.stamp() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN INSERT INTO lc.who VALUES (current_user); RETURN 0; END $$;
CREATE DOMAIN lc.stamped AS bigint DEFAULT lc.stamp();
SELECT step, action FROM memoria.alter_rollup('calls_daily',
    add_measures => ARRAY['max(ms) + 0 AS a1', 'min(ms) - 0 AS a2', 'max(ms + 1) AS a3',
                          'sum(ms)::lc.stamped AS a4_with_a_much_longer_name_than_the_others']);
SELECT measures FROM memoria.rollups_info;
SELECT DISTINCT name AS default_ran_as FROM lc.who;
CALL memoria.backfill('calls_daily', slice => '1 year');
SELECT count(*) AS differences FROM memoria.verify('calls_daily');
SELECT bool_and(a2 = (SELECT min(ms) FROM lc.calls c WHERE memoria.bucket(c.at, '1 day') = t.bucket AND c.ws = t.ws))
    AS a2_is_min FROM memoria_rollup.calls_per_day t;
SELECT step, action FROM memoria.alter_rollup('calls_daily', drop_measures => ARRAY['a1', 'a2', 'a3', 'a4_with_a_much_longer_name_than_the_others']);
-- A column renamed in the table is taken: its name is not free.
SELECT * FROM memoria.alter_rollup('calls_daily', add_measures => '{max(ms) AS total_ms}');
-- CALL memoria.run as the owner (what its pg_cron job does).
INSERT INTO lc.calls VALUES (3000, '2026-01-06 05:00', 0, 5);
CALL memoria.run('calls_daily');
SELECT pending_keys FROM memoria.status;

-- Drop a measure, rename the rollup.
SELECT * FROM memoria.alter_rollup('calls_daily', drop_measures => '{n}', rename_to => 'calls_by_day');
SELECT rollup, measures FROM memoria.rollups_info;
UPDATE lc.calls SET at = at + interval '1 day' WHERE id % 10 = 0;
SELECT status FROM memoria.refresh('calls_by_day');
SELECT count(*) AS differences FROM memoria.verify('calls_by_day');
RESET ROLE;

-- Who sees what: the owner its own rollups, pg_monitor every rollup
-- (read-only), anyone else nothing.
SET ROLE memoria_lc_bob;
SELECT count(*) AS bob_sees FROM memoria.rollups_info;
SELECT count(*) AS bob_sees FROM memoria.status;
SET ROLE memoria_lc_mon;
SELECT rollup, pending_keys IS NOT NULL AS counts_keys, state FROM memoria.status;
SELECT rollup, measures FROM memoria.rollups_info;
SELECT status FROM memoria.refresh('calls_by_day');
RESET ROLE;

-- Ownership follows the source: ALTER TABLE ... OWNER TO, then REASSIGN
-- OWNED and DROP ROLE of the old owner.
ALTER TABLE lc.calls OWNER TO memoria_lc_bob;
SELECT tableowner FROM pg_tables WHERE tablename = 'calls_per_day';
SELECT owner FROM memoria.rollups_info;
SET ROLE memoria_lc_bob;
INSERT INTO lc.calls VALUES (1002, '2026-01-04 05:00', 1, 11);
SELECT status FROM memoria.refresh('calls_by_day');
SELECT count(*) AS differences FROM memoria.verify('calls_by_day');
RESET ROLE;
SET ROLE memoria_lc_alice;
SELECT count(*) AS alice_sees FROM memoria.status;
RESET ROLE;
REASSIGN OWNED BY memoria_lc_bob TO memoria_lc_carol;
DROP OWNED BY memoria_lc_bob;
DROP ROLE memoria_lc_bob;
SET ROLE memoria_lc_carol;
SELECT owner FROM memoria.rollups_info;
INSERT INTO lc.calls VALUES (1003, '2026-01-05 05:00', 0, 13);
SELECT status, error FROM memoria.refresh('calls_by_day');
SELECT count(*) AS differences FROM memoria.verify('calls_by_day');
RESET ROLE;
SELECT has_table_privilege('memoria_lc_carol', dirty_log, 'INSERT') AS carol_writes_log FROM memoria.rollups;
-- A plain owner change of the rollup table alone is refused (it follows the source).
ALTER TABLE memoria_rollup.calls_per_day OWNER TO memoria_lc_alice;

-- drop_rollup leaves a plain table, which anyone may write again.
SELECT memoria.drop_rollup('calls_by_day');
SET ROLE memoria_lc_carol;
DELETE FROM memoria_rollup.calls_per_day WHERE bucket < '2026-01-05';
RESET ROLE;
DROP TABLE memoria_rollup.calls_per_day;
DROP SCHEMA lc CASCADE;
-- (Owners of rollups in memoria_rollup may create there: DROP OWNED revokes it.)
DROP OWNED BY memoria_lc_alice, memoria_lc_carol;
DROP ROLE memoria_lc_alice;
DROP ROLE memoria_lc_carol;
DROP ROLE memoria_lc_mon;
