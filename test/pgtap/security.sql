-- security.sql: who may do what, and as whom a rollup's expressions run.
-- A measure that records current_user shows it is always the rollup's owner,
-- even when a superuser refreshes; another role can neither refresh, alter,
-- drop nor read the owner's rollup or its state, until granted.
BEGIN;
SELECT plan(19);
CREATE ROLE memoria_alice NOLOGIN;
CREATE ROLE memoria_bob NOLOGIN;
GRANT CREATE ON SCHEMA public TO memoria_alice, memoria_bob;

SET ROLE memoria_alice;
CREATE TABLE sec_src (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
CREATE TABLE sec_who (name text, superuser boolean);
CREATE FUNCTION sec_probe(v int) RETURNS int LANGUAGE sql VOLATILE AS
$$ INSERT INTO sec_who SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user RETURNING v $$;
INSERT INTO sec_src SELECT timestamptz '2026-04-01' + g * interval '6 hours', g % 2, g FROM generate_series(1, 40) g;
SELECT lives_ok($$SELECT memoria.create_rollup('sec_daily', 'sec_src', 'at', '{k}', '{sum(sec_probe(v)) AS v}',
                                               filter => 'sec_probe(v) > 0')$$,
                'a non-superuser creates a rollup on its own table');
RESET ROLE;

-- A superuser drives every path that evaluates the expressions.
SELECT is((SELECT status FROM memoria.refresh_window('sec_daily', '-infinity', 'infinity')), 'ok',
          'refresh_window by a superuser');
INSERT INTO sec_src VALUES ('2026-04-02 01:00', 1, 7);
SELECT is((SELECT status FROM memoria.refresh('sec_daily')), 'ok', 'refresh by a superuser');
SELECT is((SELECT count(*) FROM memoria.verify('sec_daily')), 0::bigint, 'verify by a superuser');
SELECT is((SELECT array_agg(DISTINCT name) FROM sec_who), ARRAY['memoria_alice'],
          'the measure and the filter ran as the rollup''s owner, never as the caller');
SELECT is((SELECT bool_or(superuser) FROM sec_who), false, 'and never as a superuser');

SELECT dirty_log::regclass AS sec_log FROM memoria.rollups WHERE name = 'sec_daily' \gset
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
SELECT throws_ok($$SELECT * FROM memoria.rollup_state$$, '42501', NULL, 'nor can it read the state table');
SELECT throws_ok('SELECT * FROM ' || :'sec_log', '42501', NULL, 'nor the rollup''s dirty log');
SELECT throws_ok($$SELECT * FROM memoria_rollup.sec_daily$$, '42501', NULL, 'nor the rollup table, ungranted');
SELECT throws_ok($$SELECT memoria.create_rollup('bob_daily', 'sec_src', 'at', '{k}', '{count(*) AS n}')$$,
                 '42501', NULL, 'nor create a rollup of a table it does not own');
RESET ROLE;
SET ROLE memoria_alice;
GRANT SELECT ON memoria_rollup.sec_daily TO memoria_bob;
SET ROLE memoria_bob;
SELECT lives_ok($$SELECT * FROM memoria_rollup.sec_daily$$, 'a granted role reads the rollup table like any table');
RESET ROLE;
SELECT is((SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = :'sec_log'::regclass), 'memoria_alice',
          'the dirty log belongs to the rollup''s owner');

SELECT * FROM finish();
ROLLBACK;
