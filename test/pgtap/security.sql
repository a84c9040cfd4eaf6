-- security.sql: who may do what, and as whom memoria runs what.
-- Roles: alice owns a source and its rollup; bob is another user; mallory
-- has nothing but the TEMP privilege every role has by default.  Each attack
-- below worked on 0.2.0 (forged capture triggers writing into another role's
-- table, a rollup owner's trigger or rule on its dirty log running as a
-- superuser); each must now fail, and leave nothing behind.
BEGIN;
SELECT plan(46);
CREATE ROLE memoria_alice NOLOGIN;
CREATE ROLE memoria_bob NOLOGIN;
CREATE ROLE memoria_mallory NOLOGIN;
GRANT CREATE ON SCHEMA public TO memoria_alice, memoria_bob;

SET ROLE memoria_alice;
CREATE TABLE sec_src (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
-- Probes: the measure records who computes it; the filter refuses to run as
-- a superuser.  (Declared IMMUTABLE, which they are not, since memoria
-- accepts only that; no argument, so they run when a refresh is planned.)
CREATE FUNCTION sec_who() RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT current_user || CASE WHEN rolsuper THEN ' (superuser)' ELSE '' END FROM pg_roles WHERE rolname = current_user $$;
CREATE FUNCTION sec_not_superuser() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'the filter ran as superuser %', current_user;
    END IF;
    RETURN true;
END $$;
INSERT INTO sec_src SELECT timestamptz '2026-04-01' + g * interval '6 hours', g % 2, g FROM generate_series(1, 40) g;
SELECT lives_ok($$SELECT memoria.create_rollup('sec_daily', 'sec_src', 'at', '{k}',
                                               '{sum(v) AS v, max(sec_who()) AS who}',
                                               filter => 'sec_not_superuser()')$$,
                'a non-superuser creates a rollup on its own table');
RESET ROLE;

-- A superuser drives every path that evaluates the expressions.
SELECT is((SELECT status FROM memoria.refresh_window('sec_daily', '-infinity', 'infinity')), 'ok',
          'refresh_window by a superuser');
INSERT INTO sec_src VALUES ('2026-04-02 01:00', 1, 7);
SELECT is((SELECT status FROM memoria.refresh('sec_daily')), 'ok', 'refresh by a superuser');
SELECT is((SELECT count(*) FROM memoria.verify('sec_daily')), 0::bigint, 'verify by a superuser');
SELECT is((SELECT array_agg(DISTINCT who) FROM memoria_rollup.sec_daily), ARRAY['memoria_alice'],
          'the measure and the filter ran as the rollup''s owner, never as the caller or a superuser');

SELECT id AS sec_id, dirty_log::regclass AS sec_log, dirty_log::oid AS sec_log_oid, target::oid AS sec_target_oid
FROM memoria.rollups WHERE name = 'sec_daily' \gset
SELECT count(*) AS sec_rows FROM memoria_rollup.sec_daily \gset

-- Another role: nothing of alice's rollup.
SET ROLE memoria_bob;
SELECT throws_ok($$SELECT * FROM memoria.refresh('sec_daily')$$, '42501', NULL, 'another role cannot refresh it');
SELECT is_empty($$SELECT * FROM memoria.refresh()$$, 'refresh of "every rollup" skips rollups of others');
SELECT throws_ok($$SELECT * FROM memoria.refresh_window('sec_daily', '-infinity', 'infinity')$$, '42501', NULL,
                 'nor refresh a window of it');
SELECT throws_ok($$SELECT memoria.alter_rollup('sec_daily', refresh_interval => '1 hour')$$, '42501', NULL,
                 'nor alter it');
SELECT throws_ok($$SELECT memoria.drop_rollup('sec_daily')$$, '42501', NULL, 'nor drop it');
SELECT throws_ok($$SELECT * FROM memoria.verify('sec_daily')$$, '42501', NULL, 'nor verify it');
SELECT is_empty($$SELECT * FROM memoria.status$$, 'memoria.status shows another role nothing');
SELECT is(memoria_internal.capture_problem(:sec_id), NULL, 'nor does capture_problem');
SELECT throws_ok($$SELECT * FROM memoria.rollup_state$$, '42501', NULL, 'nor can it read the state table');
SELECT throws_ok($$INSERT INTO memoria.rollups (name) VALUES ('forged')$$, '42501', NULL,
                 'nor write a catalog row');
SELECT throws_ok('SELECT * FROM ' || :'sec_log', '42501', NULL, 'nor the rollup''s dirty log');
SELECT throws_ok($$SELECT * FROM memoria_rollup.sec_daily$$, '42501', NULL, 'nor the rollup table, ungranted');
SELECT throws_ok($$SELECT memoria.create_rollup('bob_daily', 'sec_src', 'at', '{k}', '{count(*) AS n}')$$,
                 '42501', NULL, 'nor create a rollup of a table it does not own');
-- A function of another role's in a measure: that role could change it, or
-- drop it with the rollup table, under the rollup.
CREATE TABLE bob_own (at timestamptz NOT NULL, v int NOT NULL);
SELECT throws_ok($$SELECT memoria.create_rollup('bob_foreign', 'bob_own', 'at', '{}', '{sum(sec_who()::int) AS v}')$$,
                 '42501', NULL, 'nor call a function of another role''s in a measure');
SELECT throws_ok(format('SELECT memoria_internal.adopt(%s)', :sec_id), '42501', NULL, 'nor the adopt function');
-- A trigger named like alice's, on a table of bob's own.
CREATE TABLE bob_src (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
SELECT lives_ok(format('CREATE TRIGGER zz_memoria_capture_%s BEFORE INSERT ON bob_src FOR EACH ROW '
                       'EXECUTE FUNCTION memoria.capture()', :sec_id),
                'anyone may attach memoria.capture() to its own table');
SELECT throws_ok($$INSERT INTO bob_src VALUES (now(), 1, 1)$$, '39P01', NULL,
                 'but a trigger named like another rollup''s captures nothing: the write fails');
RESET ROLE;

-- mallory, with the TEMP privilege only: a capture trigger on its temp table
-- with forged arguments naming alice's rollup table as the "dirty log".
SET ROLE memoria_mallory;
CREATE TEMP TABLE evil (at timestamptz, k int);
SELECT lives_ok(format($$CREATE TRIGGER forged BEFORE INSERT ON pg_temp.evil FOR EACH ROW
                         EXECUTE FUNCTION memoria.capture('%s', '%s', '%s', '1', '86400000000', 'UTC', '2')$$,
                       :sec_id, :sec_target_oid, 'pg_temp.evil'::regclass::oid),
                'a role with TEMP only attaches memoria.capture() with forged arguments');
SELECT throws_ok($$INSERT INTO pg_temp.evil VALUES ('2026-04-03', 1)$$, '39P01', NULL,
                 'its writes fail: capture() trusts no argument');
CREATE TRIGGER garbage AFTER INSERT ON pg_temp.evil FOR EACH STATEMENT EXECUTE FUNCTION memoria.capture('x', 'y');
DROP TRIGGER forged ON pg_temp.evil;
SELECT throws_ok($$INSERT INTO pg_temp.evil VALUES ('2026-04-03', 1)$$, '39P01', NULL,
                 'arguments of the wrong kind are an error, not a crash');
SELECT lives_ok($$SELECT * FROM memoria.refresh()$$, 'a refresh flushes whatever mallory''s writes gathered');
RESET ROLE;
SELECT is((SELECT count(*) FROM memoria_rollup.sec_daily), :'sec_rows'::bigint,
          'nothing was written into alice''s rollup table');
SELECT is((SELECT count(*) FROM memoria.rollups), 1::bigint, 'nor into the catalog');

-- alice owns the rollup, not its dirty log: no trigger, rule or column
-- change of hers can stand in the path of memoria's elevated code.
SET ROLE memoria_alice;
SELECT throws_ok(format('CREATE TRIGGER t BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()', :'sec_log'),
                 '42501', NULL, 'the owner cannot put a trigger on its dirty log');
SELECT throws_ok(format('CREATE RULE "_RETURN" AS ON SELECT TO %s DO INSTEAD SELECT now() AS bucket, 1 AS k', :'sec_log'),
                 '42501', NULL, 'nor turn it into a view');
SELECT throws_ok(format('ALTER TABLE %s ALTER COLUMN k TYPE bigint', :'sec_log'), '42501', NULL,
                 'nor change its column types');
SELECT lives_ok(format('SELECT count(*) FROM %s', :'sec_log'), 'it may read the log of its rollup');
-- Nor can the owner make capture stop silently.
SELECT throws_ok(format('DROP TRIGGER zz_memoria_capture_%s ON sec_src', :sec_id), '2BP01', NULL,
                 'the owner cannot drop a capture trigger');
SELECT throws_ok(format('ALTER TRIGGER zz_memoria_capture_%s ON sec_src RENAME TO quiet', :sec_id), '2BP01', NULL,
                 'nor rename one');
RESET ROLE;
SELECT is((SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = :'sec_log'::regclass),
          (SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'memoria'),
          'the dirty log belongs to the extension''s owner');
-- alice's domain, whose CHECK and DEFAULT call her function, on a scope
-- column: memoria's own writes to the dirty log (the "rebuild" marker after
-- a rewrite, after capture comes back) run as the extension's owner, so the
-- log has the base type, and her function never runs there.
SET ROLE memoria_alice;
CREATE TABLE sec_calls (who text, superuser boolean);
CREATE FUNCTION sec_note() RETURNS boolean LANGUAGE sql VOLATILE AS
$$ INSERT INTO sec_calls SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user RETURNING true $$;
CREATE DOMAIN sec_tag AS text DEFAULT 'x' CHECK (sec_note());
CREATE TABLE sec_dom (at timestamptz NOT NULL, tag sec_tag NOT NULL, other int, v int NOT NULL);
SELECT lives_ok($$SELECT memoria.create_rollup('sec_dom_daily', 'sec_dom', 'at', '{tag}', '{sum(v) AS v}')$$,
                'a rollup with a domain-typed scope column');
RESET ROLE;
SELECT is((SELECT format_type(a.atttypid, NULL) FROM pg_attribute a JOIN memoria.rollups r ON a.attrelid = r.dirty_log
           WHERE r.name = 'sec_dom_daily' AND a.attname = 'tag'), 'text', 'its dirty log column has the base type');
SET ROLE memoria_alice;
ALTER TABLE sec_dom ALTER COLUMN other TYPE bigint;   -- a rewrite: memoria marks a rebuild
SET client_min_messages = error;
ALTER TABLE sec_dom DISABLE TRIGGER USER;
ALTER TABLE sec_dom ENABLE TRIGGER USER;             -- capture is back: another rebuild marker
RESET client_min_messages;
RESET ROLE;
SELECT is((SELECT count(*) FROM sec_calls WHERE superuser), 0::bigint,
          'a domain of the owner''s never runs with elevated rights');

-- bob names triggers of his like the superuser's rollup's, on a view of his
-- whose column calls his function, and on a table he then drops.
CREATE TABLE sec_su_src (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
SELECT memoria.create_rollup('sec_su_daily', 'sec_su_src', 'at', '{k}', '{sum(v) AS v}') IS NOT NULL AS created \gset
SELECT id AS su_id, dirty_log::regclass AS su_log FROM memoria.rollups WHERE name = 'sec_su_daily' \gset
SET ROLE memoria_bob;
CREATE TABLE bob_calls (who text, superuser boolean);
CREATE FUNCTION bob_note() RETURNS int LANGUAGE sql VOLATILE AS
$$ INSERT INTO bob_calls SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user RETURNING 1 $$;
CREATE VIEW bob_view AS SELECT now() AS at, bob_note() AS k;
SELECT lives_ok(format('CREATE TRIGGER zz_memoria_truncate_%s BEFORE INSERT ON bob_view FOR EACH STATEMENT '
                       'EXECUTE FUNCTION memoria.capture()', :su_id),
                'bob plants a trigger named like the superuser''s rollup''s on his view');
-- ... and on a table of his whose trigger depends on the rollup table (a
-- regclass in its WHEN clause), with an implicit cast of his that a read of
-- its time column would run.
CREATE TYPE bob_time AS (x int);
CREATE FUNCTION bob_cast(bob_time) RETURNS timestamptz LANGUAGE sql AS
$$ INSERT INTO bob_calls SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user RETURNING now() $$;
CREATE CAST (bob_time AS timestamptz) WITH FUNCTION bob_cast(bob_time) AS IMPLICIT;
CREATE TABLE bob_bait (at bob_time, k int);
INSERT INTO bob_bait VALUES (ROW(1), 1);
GRANT SELECT ON bob_bait TO PUBLIC;
SELECT lives_ok(format('CREATE TRIGGER zz_memoria_truncate_%s AFTER INSERT ON bob_bait FOR EACH ROW '
                       'WHEN (pg_relation_size(%L::regclass) >= 0) EXECUTE FUNCTION memoria.capture()',
                       :su_id, 'memoria_rollup.sec_su_daily'),
                'and one whose WHEN clause depends on the rollup table');
CREATE TABLE bob_gone (a int);
SELECT lives_ok(format('CREATE TRIGGER zz_memoria_truncate_%s BEFORE TRUNCATE ON bob_gone FOR EACH STATEMENT '
                       'EXECUTE FUNCTION memoria.capture()', :su_id),
                'and on a table of his');
DROP TABLE bob_gone;
RESET ROLE;
ALTER TABLE sec_su_src ADD COLUMN extra int;   -- memoria reconciles the rollup's triggers
SELECT is((SELECT count(*) FROM bob_calls), 0::bigint, 'memoria never read bob''s view');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'bob_view'::regclass), 1::bigint, 'nor dropped his trigger');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'bob_bait'::regclass), 1::bigint,
          'nor took his table for a partition that left');
SELECT is_empty(format('SELECT 1 FROM %s WHERE bucket IS NULL', :'su_log'),
                'dropping his table marked no rebuild of the superuser''s rollup');

SET ROLE memoria_alice;
GRANT SELECT ON memoria_rollup.sec_daily TO memoria_bob;
SET ROLE memoria_bob;
SELECT lives_ok($$SELECT * FROM memoria_rollup.sec_daily$$, 'a granted role reads the rollup table like any table');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
