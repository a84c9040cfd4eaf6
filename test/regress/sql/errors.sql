-- errors: every bad argument gets a SQLSTATE, a message naming the argument
-- and a hint, and leaves nothing behind.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
-- expect_error: run a statement, show its SQLSTATE, message and hint.
CREATE FUNCTION expect_error(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; msg text; hint text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || msg || CASE WHEN hint <> '' THEN E'\n       hint: ' || hint ELSE '' END;
END $$;
CREATE TABLE ev (at timestamptz NOT NULL, at_text text, ws int, model text, tokens int);
CREATE MATERIALIZED VIEW ev_view AS SELECT * FROM ev;

-- name
SELECT expect_error($$SELECT memoria.create_rollup(NULL, 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup(repeat('x', 70), 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
-- source
SELECT expect_error($$SELECT memoria.create_rollup('r', 'no_such_table', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev_view', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
-- time_column
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'nope', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at_text', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'ctid', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
-- dimensions
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', NULL, ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws', 'nope'], ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws', 'ws'], ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['at'], ARRAY['sum(tokens) AS tokens'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws', NULL], ARRAY['sum(tokens) AS tokens'])$$);
-- scope
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], scope => ARRAY['model'])$$);
-- measures
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], NULL)$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY[]::text[])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens)'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['tokens AS t'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(nope) AS t'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS t', 'count(*) AS t'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['count(*) AS ws'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) OVER () AS t'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens AS t'])$$);
-- no way to smuggle a second statement or clause through an expression slot
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['count(*) AS n; DROP TABLE ev'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['count(*) AS n FROM pg_class'])$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['count(*) AS n, count(*) AS m'])$$);
-- a comment inside an expression is harmless: each expression sits on lines of its own
SELECT memoria.create_rollup('r_comment', 'ev', 'at', ARRAY['ws'], ARRAY['count(*) AS n -- events']);
SELECT status FROM memoria.refresh_window('r_comment', '-infinity', 'infinity');
SELECT memoria.drop_rollup('r_comment', drop_table => true);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], filter => 'true) OR (true')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], filter => 'true GROUP BY ws')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], filter => 'true; DROP TABLE ev')$$);
-- filter
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], filter => 'nope > 1')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], filter => 'tokens')$$);
-- bucket
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], bucket => '5 months')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], bucket => '1 month 1 day')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], bucket => '7 minutes')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], bucket => '1 day 1 hour')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], bucket => '0 days')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], bucket => '-1 day')$$);
-- time_zone
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], time_zone => 'Mars/Olympus_Mons')$$);
-- invalidation
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], invalidation => 'magic')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], updated_at_column => 'at')$$);
-- target
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], target => 'public.ev')$$);
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'], target => 'a.b.c.d')$$);
-- duplicate name
SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens']) IS NOT NULL AS created;
SELECT expect_error($$SELECT memoria.create_rollup('r', 'ev', 'at', ARRAY['model'], ARRAY['sum(tokens) AS tokens'])$$);
-- source not owned by the caller
CREATE ROLE memoria_stranger;
SET ROLE memoria_stranger;
SELECT expect_error($$SELECT memoria.create_rollup('r2', 'ev', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'])$$);
-- ... who can neither refresh, alter nor drop another owner's rollup
SELECT expect_error($$SELECT * FROM memoria.refresh('r')$$);
SELECT expect_error($$SELECT memoria.refresh_window('r', '-infinity', 'infinity')$$);
SELECT expect_error($$SELECT memoria.alter_rollup('r', refresh_interval => '1 hour')$$);
SELECT expect_error($$SELECT memoria.drop_rollup('r')$$);
SELECT expect_error($$SELECT * FROM memoria.verify('r')$$);
-- ... nor see it
SELECT count(*) FROM memoria.status;
SELECT expect_error($$SELECT memoria.lag('r')$$);
-- refresh(NULL) covers only the caller's own rollups
SELECT count(*) FROM memoria.refresh();
RESET ROLE;
DROP ROLE memoria_stranger;

-- refresh, refresh_window, verify, lag, drop_rollup on bad input
SELECT expect_error($$SELECT * FROM memoria.refresh('no_such_rollup')$$);
SELECT expect_error($$SELECT * FROM memoria.refresh('r', max_keys => -1)$$);
SELECT expect_error($$SELECT memoria.refresh_window(NULL, '-infinity', 'infinity')$$);
SELECT expect_error($$SELECT memoria.refresh_window('r', NULL, 'infinity')$$);
SELECT expect_error($$SELECT memoria.refresh_window('r', '2026-02-01', '2026-01-01')$$);
SELECT expect_error($$SELECT * FROM memoria.verify('no_such_rollup')$$);
SELECT expect_error($$SELECT memoria.lag('no_such_rollup')$$);
SELECT expect_error($$SELECT memoria.drop_rollup('no_such_rollup')$$);
SELECT expect_error($$SELECT memoria.drop_rollup(NULL)$$);
SELECT expect_error($$SELECT memoria.alter_rollup('r', refresh_interval => '0 seconds')$$);
SELECT expect_error($$CALL memoria.run('no_such_rollup')$$);

-- Nothing was left behind by the failures: one rollup, its two logs (keys, and
-- partials of inserts), two triggers.
SELECT name FROM memoria.rollups;
SELECT count(*) FROM pg_class WHERE relnamespace = 'memoria_state'::regnamespace;
SELECT count(*) FROM pg_class WHERE relnamespace = 'memoria_rollup'::regnamespace AND relkind = 'r';
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ev'::regclass AND NOT tgisinternal;
SELECT memoria.drop_rollup('r', drop_table => true);
DROP MATERIALIZED VIEW ev_view;
DROP TABLE ev;
