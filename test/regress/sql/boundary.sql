-- boundary: the edges of PostgreSQL where writes could pass unseen, or a
-- refresh see something other than every row.  Each case is exact, or a
-- clear error at the moment it happens.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE FUNCTION bcheck(rollup text, label text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; err text; diffs bigint;
BEGIN
    SELECT status, error INTO st, err FROM memoria.refresh(rollup);
    IF st <> 'ok' AND st <> 'idle' THEN RETURN label || ': refresh ' || st || ': ' || err; END IF;
    SELECT count(*) INTO diffs FROM memoria.verify(rollup);
    RETURN label || ': ' || CASE WHEN diffs = 0 THEN 'exact' ELSE diffs || ' differences' END;
END $$;

-- session_replication_role = replica (bulk loaders; logical replication's
-- apply worker runs so too): every write path is still captured.
CREATE TABLE rep (id int PRIMARY KEY, at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
INSERT INTO rep SELECT g, timestamptz '2026-05-01' + g * interval '5 hours', g % 3, g FROM generate_series(1, 60) g;
SELECT memoria.create_rollup('rep_daily', 'rep', 'at', '{k}', '{sum(v) AS v, count(*) AS n}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('rep_daily', '-infinity', 'infinity');
SET session_replication_role = replica;
INSERT INTO rep VALUES (100, '2026-05-02 03:00', 1, 1000);
INSERT INTO rep SELECT 200 + g, '2026-05-20', g % 3, g FROM generate_series(1, 5) g;
COPY rep FROM STDIN WITH (FORMAT csv);
300,2026-05-21 00:00:00+00,2,30
301,2026-05-22 00:00:00+00,0,31
\.
UPDATE rep SET at = at + interval '3 days', k = 2 WHERE id % 7 = 0;
DELETE FROM rep WHERE id % 11 = 0;
RESET session_replication_role;
SELECT bcheck('rep_daily', 'writes under session_replication_role = replica');
TRUNCATE rep;
SELECT bcheck('rep_daily', 'truncate');

-- DISABLE TRIGGER: capture is off, and says so; refresh refuses to move the
-- watermark over writes nobody saw; once enabled again, the rollup is rebuilt.
INSERT INTO rep SELECT g, timestamptz '2026-05-01' + g * interval '5 hours', g % 3, g FROM generate_series(1, 60) g;
SELECT bcheck('rep_daily', 'refilled');
ALTER TABLE rep DISABLE TRIGGER USER;
SELECT rollup, state FROM memoria.status WHERE rollup = 'rep_daily';
UPDATE rep SET v = v * 10 WHERE id < 20;
SELECT status, error FROM memoria.refresh('rep_daily');
SELECT rollup, state, last_status FROM memoria.status WHERE rollup = 'rep_daily';
ALTER TABLE rep ENABLE TRIGGER USER;
SELECT rollup, state FROM memoria.status WHERE rollup = 'rep_daily';
SELECT bcheck('rep_daily', 'enabled again: rebuilt');
-- ENABLE TRIGGER (origin only) puts back the modes memoria needs.
ALTER TABLE rep DISABLE TRIGGER ALL;
ALTER TABLE rep ENABLE TRIGGER ALL;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'rep'::regclass AND NOT tgisinternal ORDER BY 1;
SET session_replication_role = replica;
INSERT INTO rep VALUES (400, '2026-05-03', 1, 4);
RESET session_replication_role;
SELECT bcheck('rep_daily', 'replica writes after DISABLE/ENABLE TRIGGER ALL');

-- A plain source that becomes a partition: inserts routed through the
-- parent fire no statement trigger on it, so it switches to a row trigger.
CREATE TABLE part_parent (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE part_may (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
INSERT INTO part_may SELECT timestamptz '2026-05-01' + g * interval '7 hours', g % 2, g FROM generate_series(1, 50) g;
SELECT memoria.create_rollup('may_daily', 'part_may', 'at', '{k}', '{sum(v) AS v}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('may_daily', '-infinity', 'infinity');
ALTER TABLE part_parent ATTACH PARTITION part_may FOR VALUES FROM ('2026-05-01') TO ('2026-06-01');
SELECT tgname, tgtype FROM pg_trigger WHERE tgrelid = 'part_may'::regclass AND tgname LIKE 'zz_memoria%' ORDER BY 1;
INSERT INTO part_parent VALUES ('2026-05-05 05:00', 1, 500), ('2026-05-06', 0, 600);
COPY part_parent FROM STDIN WITH (FORMAT csv);
2026-05-07 00:00:00+00,1,700
\.
SELECT bcheck('may_daily', 'inserts routed through the new parent');
ALTER TABLE part_parent DETACH PARTITION part_may;
INSERT INTO part_may VALUES ('2026-05-08', 1, 800);
SELECT bcheck('may_daily', 'detached again: a plain table');
-- A source that is a partition from the start.
CREATE TABLE part_jun PARTITION OF part_parent FOR VALUES FROM ('2026-06-01') TO ('2026-07-01');
SELECT memoria.create_rollup('jun_daily', 'part_jun', 'at', '{k}', '{sum(v) AS v}') IS NOT NULL AS created;
INSERT INTO part_parent VALUES ('2026-06-05', 1, 5), ('2026-06-06', 0, 6);
UPDATE part_parent SET v = v + 1 WHERE at = '2026-06-05';
SELECT bcheck('jun_daily', 'a partition as source, written through its parent');

-- Classic inheritance: writes to a child fire no trigger of the parent, yet
-- the parent's reads include the child's rows.  Refused, then and later.
CREATE TABLE inh_parent (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
CREATE TABLE inh_child () INHERITS (inh_parent);
SELECT memoria.create_rollup('inh_daily', 'inh_parent', 'at', '{k}', '{sum(v) AS v}');
DROP TABLE inh_child;
SELECT memoria.create_rollup('inh_daily', 'inh_parent', 'at', '{k}', '{sum(v) AS v}') IS NOT NULL AS created;
CREATE TABLE inh_child () INHERITS (inh_parent);
CREATE TABLE inh_loose (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
ALTER TABLE inh_loose INHERIT inh_parent;

-- Stored generated columns are computed after BEFORE triggers: a rollup
-- over them captures with AFTER row triggers.
CREATE TABLE gen (id int PRIMARY KEY, at timestamptz NOT NULL, v int NOT NULL,
                  day date GENERATED ALWAYS AS ((at AT TIME ZONE 'UTC')::date) STORED,
                  parity int GENERATED ALWAYS AS (v % 2) STORED);
INSERT INTO gen (id, at, v) SELECT g, timestamptz '2026-05-01' + g * interval '9 hours', g FROM generate_series(1, 40) g;
SELECT memoria.create_rollup('gen_daily', 'gen', 'day', '{parity}', '{sum(v) AS v, count(*) AS n}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('gen_daily', '-infinity', 'infinity');
SELECT tgname, tgtype FROM pg_trigger WHERE tgrelid = 'gen'::regclass AND tgname LIKE 'zz_memoria%' ORDER BY 1;
INSERT INTO gen (id, at, v) VALUES (100, '2026-05-03 04:00', 7), (101, '2026-05-30', 8);
UPDATE gen SET at = at + interval '4 days', v = v + 1 WHERE id % 5 = 0;
DELETE FROM gen WHERE id % 9 = 0;
SELECT bcheck('gen_daily', 'generated time and scope columns');

-- A FOR ALL TABLES publication publishes the dirty logs and rollup tables
-- too: their DELETEs and UPDATEs need a replica identity.
SET client_min_messages = error;  -- "wal_level is insufficient" (harmless here)
CREATE PUBLICATION every_table FOR ALL TABLES;
RESET client_min_messages;
CREATE TABLE pub (at timestamptz NOT NULL, k int, v int NOT NULL);
ALTER TABLE pub REPLICA IDENTITY FULL;  -- the source's own needs
INSERT INTO pub SELECT timestamptz '2026-05-01' + g * interval '7 hours', nullif(g % 3, 0), g FROM generate_series(1, 30) g;
SELECT memoria.create_rollup('pub_daily', 'pub', 'at', '{k}', '{sum(v) AS v}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('pub_daily', '-infinity', 'infinity');
UPDATE pub SET v = v + 1 WHERE v % 4 = 0;
DELETE FROM pub WHERE v % 5 = 0;
SELECT bcheck('pub_daily', 'under a FOR ALL TABLES publication, nullable dimension');
UPDATE rep SET v = v + 1 WHERE id < 5;
SELECT bcheck('rep_daily', 'under a FOR ALL TABLES publication, primary key');
DROP PUBLICATION every_table;

-- Row level security: the owner reads every row unless FORCEd, and a
-- refresh is never a session's view of the source.
CREATE TABLE rls (at timestamptz NOT NULL, tenant text NOT NULL, v int NOT NULL);
INSERT INTO rls SELECT timestamptz '2026-05-01' + g * interval '11 hours', 't' || g % 3, g FROM generate_series(1, 30) g;
ALTER TABLE rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tenant ON rls USING (tenant = current_setting('app.tenant', true));
ALTER TABLE rls FORCE ROW LEVEL SECURITY;
SELECT memoria.create_rollup('rls_daily', 'rls', 'at', '{tenant}', '{sum(v) AS v}');
ALTER TABLE rls NO FORCE ROW LEVEL SECURITY;
SELECT memoria.create_rollup('rls_daily', 'rls', 'at', '{tenant}', '{sum(v) AS v}') IS NOT NULL AS created;
SET app.tenant = 't1';
SELECT status FROM memoria.refresh_window('rls_daily', '-infinity', 'infinity');
SELECT count(DISTINCT tenant) AS tenants FROM memoria_rollup.rls_daily;
RESET app.tenant;
ALTER TABLE rls FORCE ROW LEVEL SECURITY;

-- Types and collations of dimensions stay what the rollup was made for.
CREATE TABLE coll (at timestamptz NOT NULL, model text NOT NULL, v int NOT NULL);
INSERT INTO coll VALUES ('2026-05-01', 'a', 1), ('2026-05-01', 'A', 2);
SELECT memoria.create_rollup('coll_daily', 'coll', 'at', '{model}', '{sum(v) AS v}') IS NOT NULL AS created;
ALTER TABLE coll ALTER COLUMN model TYPE text COLLATE "C";
ALTER TABLE coll ALTER COLUMN model TYPE text COLLATE "default";

-- Tables that lose rows without a trigger: temporary and unlogged.
CREATE TEMP TABLE tmp_src (at timestamptz NOT NULL, v int NOT NULL);
DO $$ BEGIN  -- (the temporary schema's name varies)
    PERFORM memoria.create_rollup('tmp_daily', 'tmp_src', 'at', '{}', '{sum(v) AS v}');
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE '%', regexp_replace(SQLERRM, 'pg_temp_\d+', 'pg_temp');
END $$;
CREATE UNLOGGED TABLE unl (at timestamptz NOT NULL, v int NOT NULL);
SELECT memoria.create_rollup('unl_daily', 'unl', 'at', '{}', '{sum(v) AS v}');
SELECT memoria.create_rollup('tgt_temp', 'coll', 'at', '{}', '{sum(v) AS v}', target => 'pg_temp.tgt');
ALTER TABLE coll SET UNLOGGED;

-- Expressions that change without any write: refused.
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{sum(v) FILTER (WHERE at > now() - interval ''1 day'') AS v}');
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{count(*) AS n}', filter => 'at < current_date');
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{count(*) AS n}', filter => 'at > ''today''::timestamptz');
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{count(*) AS n}', filter => $$at > ' Now '$$);
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{sum(v * random())::int AS v}');
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{count(*) AS n}',
                             filter => 'model IN (SELECT model FROM coll WHERE v > 1)');
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{max((SELECT 1)) AS n}');
-- Only IMMUTABLE functions (and built-in date/time ones, run in the
-- rollup's time zone): age() reads the clock, current_setting() the
-- session, a STABLE function of the user's could read anything.
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{count(*) AS n}', filter => $$age(at) < '1 day'$$);
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{count(*) AS n}',
                             filter => $$model = current_setting('app.model', true)$$);
-- Text read as a time at refresh ('now' in a row), a time with time zone
-- (its offset depends on the current date): refused too.
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{max(model::timestamptz) AS m}');
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{max(at::time::timetz) AS m}');
-- A user's aggregate is labelled IMMUTABLE whatever its functions do: they
-- are checked instead.
CREATE TABLE knob (x int);
CREATE FUNCTION knob_step(int, int) RETURNS int LANGUAGE sql AS $$ SELECT coalesce($1, 0) + $2 * (SELECT x FROM knob) $$;
CREATE AGGREGATE knob_sum(int) (sfunc = knob_step, stype = int);
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{knob_sum(v) AS v}');
CREATE FUNCTION recent(t timestamptz) RETURNS boolean LANGUAGE sql STABLE AS $$ SELECT t > now() - interval '1 day' $$;
SELECT memoria.create_rollup('x', 'coll', 'at', '{}', '{count(*) AS n}', filter => 'recent(at)');
SELECT count(*) AS rollups_named_x FROM memoria.rollups WHERE name = 'x';
-- ... while date/time built-ins are fine.
SELECT memoria.create_rollup('tz_ok', 'coll', 'at', '{}',
                             ARRAY['count(*) FILTER (WHERE date_part(''hour'', at) < 12) AS mornings',
                                   'max(to_char(at, ''YYYY-MM-DD HH24:MI'')) AS last_seen'],
                             filter => $$at::date >= '2026-01-01'$$) IS NOT NULL AS created;
SELECT memoria.drop_rollup('tz_ok', drop_table => true);

-- A function of the user's in a measure: the rollup table depends on it like
-- a view; replacing it rebuilds the rollup, renaming or making it volatile
-- is refused.
CREATE FUNCTION weight(v int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT v * 2 $$;
SELECT memoria.create_rollup('fn_daily', 'coll', 'at', '{model}', '{sum(weight(v)) AS w}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('fn_daily', '-infinity', 'infinity');
DROP FUNCTION weight(int);
CREATE OR REPLACE FUNCTION weight(v int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT v * 3 $$;
SELECT bcheck('fn_daily', 'measure function replaced');
SELECT sum(w) AS tripled FROM memoria_rollup.fn_daily;
ALTER FUNCTION weight(int) RENAME TO heft;
ALTER FUNCTION weight(int) VOLATILE;

-- A user's BEFORE trigger that sorts after memoria's and moves the row:
-- capture sees the row as stored.
CREATE TABLE late (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
INSERT INTO late SELECT timestamptz '2026-05-01' + g * interval '9 hours', g % 2, g FROM generate_series(1, 20) g;
SELECT memoria.create_rollup('late_daily', 'late', 'at', '{k}', '{sum(v) AS v}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('late_daily', '-infinity', 'infinity');
CREATE FUNCTION shift() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.k := 7; NEW.at := NEW.at + interval '2 days'; RETURN NEW; END $$;
CREATE TRIGGER zzz_shift BEFORE INSERT OR UPDATE ON late FOR EACH ROW EXECUTE FUNCTION shift();
UPDATE late SET v = v + 1 WHERE v < 5;
INSERT INTO late VALUES ('2026-05-03', 0, 100);
SELECT bcheck('late_daily', 'a later BEFORE trigger moved rows');

-- The expressions' text means what it meant to its creator: a date literal
-- written under DateStyle DMY reads the same in an MDY session.
SET DateStyle = 'ISO, DMY';
CREATE TABLE ds (at timestamptz NOT NULL, v int NOT NULL);
INSERT INTO ds SELECT timestamptz '2026-01-01' + g * interval '1 day', 1 FROM generate_series(0, 59) g;
SELECT memoria.create_rollup('ds_daily', 'ds', 'at', '{}', '{count(*) AS n}', filter => $$at >= '02/01/2026'$$)
       IS NOT NULL AS created;  -- 2 January
SET DateStyle = 'ISO, MDY';       -- here '02/01/2026' would be 1 February
SELECT status FROM memoria.refresh_window('ds_daily', '-infinity', 'infinity');
SELECT sum(n) AS days_counted FROM memoria_rollup.ds_daily;
SELECT count(*) AS differences FROM memoria.verify('ds_daily');
RESET DateStyle;

-- refresh_window near DST changes reads exactly its own buckets: windows
-- starting 48-54 hours before Paris' spring change (2026-03-29 01:00 UTC),
-- weekly windows starting in the week New York springs forward (2026-03-08),
-- and a backfill in 7-day slices, one of them starting 50 hours before
-- Paris' change; each compared with a fresh GROUP BY.
CREATE TABLE dst (at timestamptz NOT NULL, v int NOT NULL);
INSERT INTO dst SELECT timestamptz '2026-02-25' + g * interval '20 minutes', 1 FROM generate_series(0, 3500) g;
SELECT memoria.create_rollup('dst_paris', 'dst', 'at', '{}', '{count(*) AS n}', time_zone => 'Europe/Paris')
       IS NOT NULL AS created;
SELECT memoria.create_rollup('dst_ny', 'dst', 'at', '{}', '{count(*) AS n}', bucket => '7 days',
                             time_zone => 'America/New_York') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('dst_paris', '-infinity', 'infinity');
SELECT status FROM memoria.refresh_window('dst_ny', '-infinity', 'infinity');
SELECT count(*) FILTER (WHERE w.status = 'ok') AS paris_windows
FROM generate_series(54, 48, -1) h,
     memoria.refresh_window('dst_paris', timestamptz '2026-03-29 01:00+00' - h * interval '1 hour',
                            timestamptz '2026-03-29 01:00+00' - h * interval '1 hour' + interval '10 days') w;
SELECT count(*) AS paris_differences FROM memoria.verify('dst_paris');
SELECT count(*) FILTER (WHERE w.status = 'ok') AS new_york_windows
FROM generate_series(0, 6 * 24, 12) h,
     memoria.refresh_window('dst_ny', timestamptz '2026-03-02 05:00+00' + h * interval '1 hour',
                            timestamptz '2026-03-02 05:00+00' + h * interval '1 hour' + interval '7 days') w;
SELECT count(*) AS new_york_differences FROM memoria.verify('dst_ny');
-- (A superuser may stand in for memoria to damage it on purpose.)
SET memoria.writing_rollup = on;
TRUNCATE memoria_rollup.dst_paris;
RESET memoria.writing_rollup;
SET client_min_messages = warning;  -- backfill NOTICEs carry timings
CALL memoria.backfill('dst_paris', window_start => '2026-03-19 23:00+00', window_end => '2026-04-10', slice => '7 days');
RESET client_min_messages;
SELECT count(*) AS backfill_differences FROM memoria.verify('dst_paris', '2026-03-19 23:00+00', '2026-04-10');

SELECT memoria.drop_rollup(name, drop_table => true) FROM memoria.rollups
WHERE name IN ('rep_daily', 'may_daily', 'jun_daily', 'inh_daily', 'gen_daily', 'pub_daily', 'rls_daily',
               'coll_daily', 'fn_daily', 'late_daily', 'ds_daily', 'dst_paris', 'dst_ny') ORDER BY name;
DROP TABLE rep, part_parent, part_may, inh_loose, inh_parent, gen, pub, rls, coll, unl, late, ds, dst;
DROP AGGREGATE knob_sum(int);
DROP FUNCTION recent(timestamptz), weight(int), shift(), knob_step(int, int);
DROP TABLE knob;
DROP FUNCTION bcheck(text, text);
