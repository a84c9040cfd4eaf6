-- upgrade: install the first release's SQL, use it with the current library,
-- ALTER EXTENSION UPDATE, and the extension's objects must then equal a fresh
-- install's, definition for definition.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE TEMP TABLE objects (install text, object text, definition text);
-- snapshot: every member of the extension, with what defines it.
CREATE FUNCTION pg_temp.snapshot(label text) RETURNS bigint LANGUAGE sql AS $$
WITH members AS (
    SELECT d.classid, d.objid FROM pg_depend d
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'memoria')
), described AS (
    SELECT label, pg_describe_object(m.classid, m.objid, 0),
           CASE m.classid
           WHEN 'pg_proc'::regclass THEN (
               SELECT concat_ws(' | ', pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.prosrc,
                                p.probin, p.proconfig::text, p.prosecdef, p.provolatile, p.proisstrict, p.proacl::text)
               FROM pg_proc p WHERE p.oid = m.objid)
           WHEN 'pg_class'::regclass THEN (
               SELECT concat_ws(' | ', c.relkind, c.relacl::text, c.reloptions::text,
                   CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END,
                   (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                      || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                      || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                      ', ' ORDER BY a.attnum)
                    FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                   (SELECT string_agg(pg_get_constraintdef(k.oid), ', ' ORDER BY k.conname)
                    FROM pg_constraint k WHERE k.conrelid = c.oid),
                   (SELECT string_agg(pg_get_triggerdef(t.oid), ', ' ORDER BY t.tgname)
                    FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal))
               FROM pg_class c WHERE c.oid = m.objid)
           WHEN 'pg_event_trigger'::regclass THEN (
               SELECT concat_ws(' | ', e.evtevent, e.evtfoid::regproc, e.evttags::text, e.evtenabled)
               FROM pg_event_trigger e WHERE e.oid = m.objid)
           WHEN 'pg_namespace'::regclass THEN (SELECT n.nspacl::text FROM pg_namespace n WHERE n.oid = m.objid)
           END
    FROM members m
), added AS (INSERT INTO pg_temp.objects SELECT * FROM described RETURNING 1)
SELECT count(*) FROM added
$$;

CREATE EXTENSION memoria VERSION '0.1.0';
SELECT extversion FROM pg_extension WHERE extname = 'memoria';

-- The current library serves the 0.1.0 SQL.
CREATE TABLE up_src (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL,
                     updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO up_src SELECT timestamptz '2026-01-01' + g * interval '9 hours', g % 4, g FROM generate_series(1, 80) g;
SELECT memoria.create_rollup('up_a', 'up_src', 'at', '{k}', '{sum(v) AS v}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('up_a', '-infinity', 'infinity');
INSERT INTO up_src VALUES ('2026-01-03', 1, 1000);
SELECT status, keys_refreshed FROM memoria.refresh('up_a');
SELECT count(*) AS differences FROM memoria.verify('up_a');
-- What 0.2.0 added needs the update, and says so.
SELECT memoria.create_rollup('up_b', 'up_src', 'at', '{k}', '{count(*) AS n}',
                             invalidation => 'updated_at', updated_at_column => 'updated_at');

ALTER EXTENSION memoria UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'memoria';
-- The rollup made under 0.1.0 keeps working; the new features work.
DELETE FROM up_src WHERE v = 1000;
SELECT status, keys_refreshed FROM memoria.refresh('up_a');
SELECT count(*) AS differences FROM memoria.verify('up_a');
SELECT memoria.create_rollup('up_b', 'up_src', 'at', '{k}', '{count(*) AS n}',
                             invalidation => 'updated_at', updated_at_column => 'updated_at') IS NOT NULL AS created;
ALTER TABLE up_src RENAME COLUMN v TO value;   -- the 0.2.0 ALTER guard
-- 0.2.0's dirty logs belonged to the rollup's owner, its triggers carried
-- arguments and fired in origin sessions only.
SELECT r.name, pg_get_userbyid(c.relowner) = current_user AS log_owned_by_me
FROM memoria.rollups r JOIN pg_class c ON c.oid = r.dirty_log ORDER BY 1;

-- What an owner could leave on its 0.2.0 dirty log, and memoria would then
-- have run with elevated rights: a trigger, an index.
-- (With them there, this library refuses to write the log: a write to the
-- source fails rather than skip the index or be seen by the trigger.)
INSERT INTO up_src VALUES ('2026-01-02', 3, 77);   -- a pending key, to keep across the update
SELECT dirty_log::regclass AS up_a_log FROM memoria.rollups WHERE name = 'up_a' \gset
CREATE FUNCTION up_spy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'spy ran'; RETURN NEW; END $$;
CREATE TRIGGER spy BEFORE INSERT ON :up_a_log FOR EACH ROW EXECUTE FUNCTION up_spy();
CREATE INDEX ON :up_a_log (k);
INSERT INTO up_src VALUES ('2026-01-03', 3, 78);
-- ... or move the log away, and squat the name memoria would set it aside to.
SELECT dirty_log::regclass AS up_b_log FROM memoria.rollups WHERE name = 'up_b' \gset
ALTER TABLE :up_b_log SET SCHEMA public;
CREATE TABLE public.dirty_2_before_0_3_0 ();

ALTER EXTENSION memoria UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'memoria';
-- 0.7.0: rollups whose measures merge take the additive path.
SELECT name, delta_log IS NOT NULL AS additive FROM memoria.rollups ORDER BY 1;
-- The update repairs the rollups made before it: logs owned by the
-- extension, this version's triggers, replica sessions captured.
SELECT r.name, pg_get_userbyid(c.relowner) = (SELECT pg_get_userbyid(nspowner) FROM pg_namespace
                                              WHERE nspname = 'memoria') AS log_owned_by_extension
FROM memoria.rollups r JOIN pg_class c ON c.oid = r.dirty_log ORDER BY 1;
SELECT r.name, c.relhastriggers OR c.relhasindex AS anything_left, c.relname
FROM memoria.rollups r JOIN pg_class c ON c.oid = r.dirty_log ORDER BY 1;
SELECT count(*) AS old_logs_left FROM pg_class WHERE relname LIKE 'dirty\_%\_before%' AND relnamespace = 'memoria_state'::regnamespace;
SELECT pending_keys FROM memoria.status WHERE rollup = 'up_a';   -- the key moved to the new log
SELECT tgname, tgenabled, tgnargs FROM pg_trigger WHERE tgrelid = 'up_src'::regclass AND NOT tgisinternal ORDER BY 1;
SET session_replication_role = replica;
INSERT INTO up_src VALUES ('2026-01-04', 2, 5);
UPDATE up_src SET at = at + interval '1 day' WHERE v = 3;
RESET session_replication_role;
SELECT rollup, status FROM memoria.refresh() ORDER BY 1;
SELECT count(*) AS differences FROM memoria.verify('up_a');
SELECT rollup, state FROM memoria.status ORDER BY 1;
-- 0.4.0: rollup tables guarded, rollups at home here, the catalog dumped by pg_dump.
SELECT r.name, count(t.oid) AS guard_triggers FROM memoria.rollups r
LEFT JOIN pg_trigger t ON t.tgrelid = r.target AND t.tgname LIKE 'zz\_memoria\_guard\_%' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS not_adopted FROM memoria.rollup_state WHERE recorded_in IS NULL;
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'memoria';

SELECT pg_temp.snapshot('updated') > 40 AS many_objects;
SELECT memoria.drop_rollup(name, drop_table => true) FROM memoria.rollups;
DROP EXTENSION memoria;
CREATE EXTENSION memoria;
SELECT pg_temp.snapshot('fresh') > 40 AS many_objects;

-- Objects or definitions in one install and not in the other: none.
(SELECT 'only after update' AS where_, object, definition FROM objects WHERE install = 'updated'
 EXCEPT SELECT 'only after update', object, definition FROM objects WHERE install = 'fresh')
UNION ALL
(SELECT 'only in fresh install', object, definition FROM objects WHERE install = 'fresh'
 EXCEPT SELECT 'only in fresh install', object, definition FROM objects WHERE install = 'updated')
ORDER BY 1, 2;
DROP TABLE up_src, public.dirty_2_before_0_3_0;
DROP FUNCTION up_spy();
