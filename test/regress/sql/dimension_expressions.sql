-- dimension_expressions: a dimension may be an expression with an alias
-- ('lower(model) AS model'), on a table or a view source.  It becomes a
-- column of the rollup table named by its alias, typed as the expression;
-- rows group by its value; writes that change it are recomputed exactly;
-- _live agrees; bad expressions are refused with the reason; DDL that would
-- break it is refused; the functions it calls are dependencies.
SET client_min_messages = warning;
CREATE TABLE de_events (id serial PRIMARY KEY, at timestamptz NOT NULL, model text NOT NULL, payload jsonb,
                        tokens int NOT NULL);
CREATE INDEX ON de_events (at);
INSERT INTO de_events (at, model, payload, tokens)
SELECT timestamptz '2026-01-01' + g * interval '41 minutes', (ARRAY['GPT-5', 'gpt-5', 'Claude'])[1 + g % 3],
       CASE WHEN g % 5 <> 0 THEN jsonb_build_object('team', 't' || (g % 4)) END, g
FROM generate_series(1, 2000) g;
CREATE FUNCTION de_family(m text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT split_part(lower(m), '-', 1) $$;
SELECT memoria.create_rollup('de_daily', 'de_events', 'at',
    ARRAY['lower(model) AS model', '(payload->>''team'') AS team', 'de_family(model) AS family',
          'date_part(''hour'', at AT TIME ZONE ''UTC'')::int AS hour_of_day'],
    ARRAY['sum(tokens)::bigint AS tokens', 'count(*) AS n']) AS created;
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull FROM pg_attribute
WHERE attrelid = 'memoria_rollup.de_daily'::regclass AND attnum > 0 ORDER BY attnum;
SELECT col_description('memoria_rollup.de_daily'::regclass, 2) AS model_comment;
SELECT dimensions, scope FROM memoria.rollups_info WHERE rollup = 'de_daily';
SELECT status FROM memoria.refresh_window('de_daily', '-infinity', 'infinity');
CREATE VIEW de_truth AS
SELECT memoria.bucket(at, '1 day', 'UTC') AS bucket, lower(model) AS model, payload->>'team' AS team,
       de_family(model) AS family, date_part('hour', at AT TIME ZONE 'UTC')::int AS hour_of_day,
       sum(tokens)::bigint AS tokens, count(*) AS n
FROM de_events GROUP BY 1, 2, 3, 4, 5;
CREATE FUNCTION de_differences(t regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE d bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %s EXCEPT ALL SELECT * FROM de_truth) UNION ALL '
                   '(SELECT * FROM de_truth EXCEPT ALL SELECT * FROM %s)) d', t, t) INTO d;
    RETURN d;
END $$;
SELECT de_differences('memoria_rollup.de_daily') AS differences;
-- Writes that change an expression's value (GPT-5 -> gpt-5 groups with it),
-- its NULLs, and the hour.
UPDATE de_events SET model = 'GPT-5' WHERE id % 7 = 0;
UPDATE de_events SET payload = NULL WHERE id % 9 = 0;
UPDATE de_events SET at = at + interval '90 minutes' WHERE id % 13 = 0;
DELETE FROM de_events WHERE id % 11 = 0;
SELECT de_differences('memoria_rollup.de_daily_live') AS live_differences;
SELECT status FROM memoria.refresh('de_daily');
SELECT de_differences('memoria_rollup.de_daily') AS differences;
SELECT count(*) AS wrong_groups FROM memoria.verify('de_daily');

-- Refused, each with its reason.
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['lower(model)'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['lower(model) m'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['sum(tokens) AS s'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['random() AS r'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['(SELECT 1) AS r'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['lower(model) AS model', 'model'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['lower(model) AS bucket'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['lower(model) AS m'], ARRAY['count(*) AS n'],
                             scope => ARRAY['m']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['lower(model) AS m'], ARRAY['count(*) AS m']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['lower(model) -- AS x'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['1) AS x, (SELECT 1 AS y'], ARRAY['count(*) AS n']);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['nope(model) AS m'], ARRAY['count(*) AS n']);
-- A quoted alias, with a doubled quote in it.
SELECT memoria.create_rollup('de_quoted', 'de_events', 'at', ARRAY['upper(model) AS "M""x"'], ARRAY['count(*) AS n']) AS created;
SELECT attname FROM pg_attribute WHERE attrelid = 'memoria_rollup.de_quoted'::regclass AND attnum = 2;
SELECT memoria.drop_rollup('de_quoted', drop_table => true);
SELECT memoria.create_rollup('x', 'de_events', 'at', ARRAY['tokens::text::xid AS x'], ARRAY['count(*) AS n']);
SELECT count(*) AS rollups FROM memoria.rollups WHERE name = 'x';
-- A comment in an expression: rollups_info shows it so that it reads back.
SELECT memoria.create_rollup('de_comment', 'de_events', 'at', ARRAY[E'lower(model) -- the family\n AS m'],
                             ARRAY['count(*) AS n']) AS created;
SELECT memoria.create_rollup('de_comment_copy', 'de_events', 'at',
                             (SELECT dimensions FROM memoria.rollups_info WHERE rollup = 'de_comment'),
                             ARRAY['count(*) AS n']) AS created_again;
SELECT memoria.drop_rollup(name, drop_table => true) FROM memoria.rollups WHERE name LIKE 'de\_comment%';
-- An expression that reads the session's TimeZone (the hour of a
-- timestamptz): _live recomputes with the reader's settings, so it asks for
-- the rollup's.
SELECT memoria.create_rollup('de_hours', 'de_events', 'at', ARRAY['date_part(''hour'', at)::int AS hour_of_day'],
                             ARRAY['count(*) AS n'], time_zone => 'UTC') AS created;
SELECT status FROM memoria.refresh_window('de_hours', '-infinity', 'infinity');
INSERT INTO de_events (at, model, tokens) VALUES ('2026-01-02 05:30+00', 'x', 1);
SET TimeZone = 'Asia/Tokyo';
SELECT count(*) FROM memoria_rollup.de_hours_live;
SET TimeZone = 'UTC';
SELECT count(*) AS live_differences FROM ((SELECT * FROM memoria_rollup.de_hours_live
    EXCEPT ALL SELECT memoria.bucket(at, '1 day', 'UTC'), date_part('hour', at)::int, count(*) FROM de_events GROUP BY 1, 2)
    UNION ALL (SELECT memoria.bucket(at, '1 day', 'UTC'), date_part('hour', at)::int, count(*) FROM de_events GROUP BY 1, 2
    EXCEPT ALL SELECT * FROM memoria_rollup.de_hours_live)) d;
RESET TimeZone;
SELECT memoria.drop_rollup('de_hours', drop_table => true);

-- A scope column made NOT NULL after a NULL key was logged: the key and its
-- rollup row still hold the NULL, and go when recomputed.
CREATE TABLE de_nn (at timestamptz NOT NULL, ws int, tokens int);
INSERT INTO de_nn VALUES ('2024-01-01 01:00', 1, 10), ('2024-01-01 02:00', NULL, 20);
SELECT memoria.create_rollup('de_nn', 'de_nn', 'at', ARRAY['ws'], ARRAY['count(*) AS n']) AS created;
SELECT status FROM memoria.refresh_window('de_nn', '-infinity', 'infinity');
DELETE FROM de_nn WHERE ws IS NULL;
ALTER TABLE de_nn ALTER COLUMN ws SET NOT NULL;
SELECT ws, n FROM memoria_rollup.de_nn_live ORDER BY 1;
SELECT status FROM memoria.refresh('de_nn');
SELECT ws, n FROM memoria_rollup.de_nn ORDER BY 1;
SELECT memoria.drop_rollup('de_nn', drop_table => true);
DROP TABLE de_nn;

-- DDL: a column an expression reads cannot go; a function it calls
-- cannot be dropped without CASCADE.
DROP VIEW de_truth;
ALTER TABLE de_events DROP COLUMN payload;
DROP FUNCTION de_family(text);

-- A view source with an expression over a joined table's column: the
-- scope is the fact's columns only.
CREATE TABLE de_team (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE de_usage (at timestamptz NOT NULL, team_id int NOT NULL, model text NOT NULL, tokens int NOT NULL);
CREATE INDEX ON de_usage (team_id);
INSERT INTO de_team VALUES (1, 'Red'), (2, 'Blue');
INSERT INTO de_usage SELECT timestamptz '2026-01-01' + g * interval '3 hours', 1 + g % 2, 'm' || (g % 3), g
FROM generate_series(1, 200) g;
CREATE VIEW de_usage_v AS SELECT u.at, u.model, u.tokens, t.name AS team FROM de_usage u JOIN de_team t ON t.id = u.team_id;
SELECT memoria.create_rollup('de_teams', 'de_usage_v', 'at', ARRAY['lower(team) AS team', 'model'],
                             ARRAY['sum(tokens)::bigint AS tokens']) AS created;
SELECT dimensions, scope FROM memoria.rollups_info WHERE rollup = 'de_teams';
SELECT status FROM memoria.refresh_window('de_teams', '-infinity', 'infinity');
UPDATE de_team SET name = 'GREEN' WHERE id = 2;
CREATE VIEW de_teams_truth AS SELECT memoria.bucket(at, '1 day', 'UTC') AS bucket, lower(team) AS team, model,
                                     sum(tokens)::bigint AS tokens FROM de_usage_v GROUP BY 1, 2, 3;
SELECT count(*) AS live_differences FROM ((SELECT * FROM memoria_rollup.de_teams_live EXCEPT ALL SELECT * FROM de_teams_truth)
    UNION ALL (SELECT * FROM de_teams_truth EXCEPT ALL SELECT * FROM memoria_rollup.de_teams_live)) d;
SELECT status FROM memoria.refresh('de_teams');
SELECT count(*) AS differences FROM ((SELECT * FROM memoria_rollup.de_teams EXCEPT ALL SELECT * FROM de_teams_truth)
    UNION ALL (SELECT * FROM de_teams_truth EXCEPT ALL SELECT * FROM memoria_rollup.de_teams)) d;
SELECT DISTINCT team FROM memoria_rollup.de_teams ORDER BY 1;

SELECT memoria.drop_rollup('de_daily', drop_table => true), memoria.drop_rollup('de_teams', drop_table => true);
DROP VIEW de_teams_truth, de_usage_v;
DROP TABLE de_events, de_usage, de_team;
DROP FUNCTION de_family(text), de_differences(regclass);
