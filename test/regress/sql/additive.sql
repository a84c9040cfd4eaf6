-- additive: which rollups take the additive path (inserts folded into
-- partial aggregates that a refresh adds to the rollup), and that the
-- rollup stays equal to a fresh GROUP BY across its edges: NULL inputs and
-- dimensions, FILTER and the rollup's filter, rolled-back savepoints, an
-- overflowing sum, measures added (not backfilled yet) or dropped while
-- partials are pending, a refresh inside the writing transaction, the
-- replica role, frozen buckets, TRUNCATE, refresh_window.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
SET client_min_messages = error;
CREATE TABLE ad (id serial, at timestamptz NOT NULL, ws int, model text, tokens int, big bigint, cost numeric,
                 day date, score float8, ok boolean);

-- Which measures merge: count, sum of integers or numeric, min/max of a type
-- without collation (FILTER and filter of built-in leakproof functions).
CREATE FUNCTION ad_try(name text, measures text[], filter text DEFAULT NULL) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE additive boolean;
BEGIN
    PERFORM memoria.create_rollup(name, 'ad', 'at', '{ws}', measures, filter => filter);
    SELECT delta_log IS NOT NULL INTO additive FROM memoria.rollups r WHERE r.name = ad_try.name;
    PERFORM memoria.drop_rollup(name, drop_table => true);
    RETURN additive;
END $$;
SELECT m, ad_try('ad_try', m::text[]) AS additive FROM (VALUES
    ('{count(*) AS n}'), ('{count(model) AS n}'), ('{sum(tokens) AS s}'), ('{sum(big) AS s}'), ('{sum(cost) AS s}'),
    ('{min(day) AS d, max(at) AS a}'), ('{max(cost) AS c}'), ('{"count(*) FILTER (WHERE ok) AS n"}'),
    ('{"sum(tokens) FILTER (WHERE tokens > 10) AS s"}'),
    ('{sum(score) AS s}'), ('{avg(tokens) AS a}'), ('{min(model) AS m}'), ('{"count(DISTINCT model) AS n"}'),
    ('{"sum(tokens + 1) AS s"}'), ('{sum(tokens)::numeric AS s}'), ('{"sum(tokens) FILTER (WHERE cost > 1) AS s"}'))
    AS t (m);
SELECT ad_try('ad_try', '{count(*) AS n}', 'tokens > 5 AND ok') AS leakproof_filter,
       ad_try('ad_try', '{count(*) AS n}', 'cost > 5') AS numeric_filter;

CREATE VIEW ad_truth AS
SELECT memoria.bucket(at, '1 day', 'UTC') AS bucket, ws, model, count(*) AS n, count(model) AS with_model,
       sum(tokens) AS tokens, sum(big) AS big, sum(cost) AS cost, min(day) AS first_day, max(at) AS last_at,
       count(*) FILTER (WHERE ok) AS oks
FROM ad WHERE tokens IS DISTINCT FROM 0 GROUP BY 1, 2, 3;
SELECT memoria.create_rollup('ad_daily', 'ad', 'at', '{ws,model}',
    '{count(*) AS n, count(model) AS with_model, sum(tokens) AS tokens, sum(big) AS big, sum(cost) AS cost,
      min(day) AS first_day, max(at) AS last_at, "count(*) FILTER (WHERE ok) AS oks"}',
    filter => 'tokens IS DISTINCT FROM 0', scope => '{ws}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('ad_daily', '-infinity', 'infinity');
-- ad_pending: partials and keys pending; ad_check: also the rows that
-- differ from the truth, and what verify finds.
CREATE FUNCTION ad_pending(OUT partials bigint, OUT keys bigint) LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT count(*) FROM %s', (SELECT delta_log FROM memoria.rollups WHERE name = 'ad_daily')) INTO partials;
    EXECUTE format('SELECT count(*) FROM %s', (SELECT dirty_log FROM memoria.rollups WHERE name = 'ad_daily')) INTO keys;
END $$;
CREATE FUNCTION ad_check(OUT differences bigint, OUT verify bigint, OUT partials bigint, OUT keys bigint)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT count(*) INTO differences FROM ((SELECT * FROM memoria_rollup.ad_daily EXCEPT SELECT * FROM ad_truth)
                                 UNION ALL (SELECT * FROM ad_truth EXCEPT SELECT * FROM memoria_rollup.ad_daily)) d;
    SELECT count(*) INTO verify FROM memoria.verify('ad_daily', '-infinity', 'infinity');
    SELECT p.partials, p.keys INTO partials, keys FROM ad_pending() p;
END $$;

-- Inserts of every kind of value: one partial per group, no key.
INSERT INTO ad (at, ws, model, tokens, big, cost, day, ok)
SELECT timestamptz '2026-05-01' + g * interval '7 hours', CASE WHEN g % 9 = 0 THEN NULL ELSE g % 3 END,
       CASE WHEN g % 4 = 0 THEN NULL ELSE 'm' || g % 2 END, CASE WHEN g % 11 = 0 THEN NULL ELSE g % 50 END,
       g * 1000000000000, CASE WHEN g % 5 = 0 THEN NULL ELSE g / 3.0 END, date '2026-01-01' + g % 30, g % 3 = 0
FROM generate_series(1, 300) g;
SELECT partials > 0 AS partials_pending, keys FROM ad_pending();
SELECT status, keys_refreshed > 0 AS refreshed FROM memoria.refresh('ad_daily');
SELECT * FROM ad_check();

-- A rolled-back savepoint: its rows never count; the groups it touched are
-- recomputed.
BEGIN;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-02 10:00', 1, 'm1', 5);
SAVEPOINT s;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-02 10:00', 1, 'm1', 500), ('2026-05-03', 2, 'x', 1);
ROLLBACK TO s;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-04', 1, 'm1', 7);
COMMIT;
SELECT * FROM ad_pending();
SELECT status FROM memoria.refresh('ad_daily');
SELECT * FROM ad_check();

-- A sum that would overflow int8 in the writer: that group is recomputed
-- (and the refresh reports the overflow of the measure itself, which
-- sum(bigint) -> numeric does not have).
INSERT INTO ad (at, ws, model, big) VALUES ('2026-05-05', 1, 'm1', 9223372036854775807), ('2026-05-05', 1, 'm1', 9);
SELECT * FROM ad_pending();
SELECT status FROM memoria.refresh('ad_daily');
SELECT * FROM ad_check();

-- Inserts and updates in one transaction, then a refresh in it: the
-- transaction's partials are written first (or become keys in a savepoint).
BEGIN;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-06', 2, 'm0', 3);
UPDATE ad SET tokens = tokens + 1 WHERE at = '2026-05-06';
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-06', 2, 'm0', 4);
SELECT status FROM memoria.refresh('ad_daily');
SAVEPOINT s;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-07', 0, 'm0', 9);
SELECT status FROM memoria.refresh('ad_daily');
RELEASE s;
COMMIT;
SELECT * FROM ad_check();

-- The apply worker of logical replication (replica role) writes keys, not
-- partials.
SET session_replication_role = replica;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-08', 1, 'm1', 1);
RESET session_replication_role;
SELECT * FROM ad_pending();
SELECT status FROM memoria.refresh('ad_daily');

-- A rollup restored from a dump and not adopted yet writes keys: its table
-- already counts the rows a parallel pg_restore may still load.
UPDATE memoria.rollup_state SET recorded_in = 'another cluster' FROM memoria.rollups r
WHERE rollup_id = r.id AND r.name = 'ad_daily';
\c
SET client_min_messages = error;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-08', 1, 'm1', 1);
SELECT * FROM ad_pending();
SELECT status FROM memoria.refresh('ad_daily');
SELECT recorded_in <> 'another cluster' AS adopted FROM memoria.rollup_state s JOIN memoria.rollups r
ON r.id = s.rollup_id WHERE r.name = 'ad_daily';
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-08', 1, 'm1', 1);
SELECT * FROM ad_pending();
SELECT status FROM memoria.refresh('ad_daily');

-- memoria.additive_path = off: keys, as before 0.7.0.
SET memoria.additive_path = off;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-08', 1, 'm1', 2);
RESET memoria.additive_path;
SELECT * FROM ad_pending();
SELECT status FROM memoria.refresh('ad_daily');
SELECT * FROM ad_check();

-- A measure added: until the backfill its column is NULL in the rollup's
-- rows, so inserts are recomputed (all columns), not merged.  The partials
-- pending when it changes become keys; the log is made for the new measures.
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-09', 1, 'm1', 10);
SELECT * FROM ad_pending();
SELECT step, action FROM memoria.alter_rollup('ad_daily', add_measures => '{sum(tokens) AS tokens2}');
SELECT delta_log IS NOT NULL AS additive FROM memoria.rollups WHERE name = 'ad_daily';
SELECT partials, keys FROM ad_pending();
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-10', 1, 'm1', 11);
SELECT status FROM memoria.refresh('ad_daily');
SELECT tokens, tokens2 FROM memoria_rollup.ad_daily WHERE bucket = '2026-05-10 00:00+00' AND ws = 1 AND model = 'm1';
CALL memoria.backfill('ad_daily');
SELECT count(*) AS differences FROM memoria.verify('ad_daily', '-infinity', 'infinity');
SELECT step, action FROM memoria.alter_rollup('ad_daily', drop_measures => '{tokens2}');

-- TRUNCATE and refresh_window take the partials of what they recompute.
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-11', 1, 'm1', 1);
SELECT status FROM memoria.refresh_window('ad_daily', '2026-05-11', '2026-05-12');
SELECT * FROM ad_check();
BEGIN;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-12', 1, 'm1', 1);
TRUNCATE ad;
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-12', 1, 'm1', 2);
COMMIT;
SELECT status FROM memoria.refresh('ad_daily');
SELECT * FROM ad_check();

-- The rollup's owner may read and claim the partials, not add any: a forged
-- partial would go into the rollup as it is (forged keys only cost a
-- recompute).  After REASSIGN OWNED the new owner gets the same.
CREATE ROLE ad_owner;
CREATE ROLE ad_heir;
CREATE TABLE ad_own (at timestamptz NOT NULL, k int NOT NULL);
ALTER TABLE ad_own OWNER TO ad_owner;
SET ROLE ad_owner;
SELECT memoria.create_rollup('ad_own', 'ad_own', 'at', '{k}', '{count(*) AS n}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('ad_own', '-infinity', 'infinity');
INSERT INTO ad_own VALUES ('2026-05-01', 1), ('2026-05-01', 1);
RESET ROLE;
SELECT (SELECT delta_log FROM memoria.rollups WHERE name = 'ad_own') AS ad_own_deltas \gset
SET ROLE ad_owner;
INSERT INTO :ad_own_deltas VALUES ('2026-05-01', 1, 1000000);
SELECT status FROM memoria.refresh('ad_own');
SELECT n FROM memoria_rollup.ad_own;
RESET ROLE;
REASSIGN OWNED BY ad_owner TO ad_heir;
INSERT INTO ad_own VALUES ('2026-05-01', 1);
SELECT status FROM memoria.refresh('ad_own');
SET ROLE ad_heir;
INSERT INTO :ad_own_deltas VALUES ('2026-05-01', 1, 1000000);
INSERT INTO ad_own VALUES ('2026-05-01', 1);
SELECT status FROM memoria.refresh('ad_own');
SELECT n FROM memoria_rollup.ad_own;
RESET ROLE;
SELECT memoria.drop_rollup('ad_own', drop_table => true);
DROP TABLE ad_own;
DROP ROLE ad_owner, ad_heir;

-- Many groups in subtransactions: memory stays bounded (they become keys,
-- written as they gather).
CREATE TABLE ad_many (at timestamptz NOT NULL, g int);
SELECT memoria.create_rollup('ad_many', 'ad_many', 'at', '{g}', '{count(*) AS n}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('ad_many', '-infinity', 'infinity');
DO $$ BEGIN
    FOR i IN 0 .. 9 LOOP
        BEGIN
            INSERT INTO ad_many SELECT '2026-06-01', g FROM generate_series(i * 60000, i * 60000 + 59999) g;
        EXCEPTION WHEN others THEN NULL;
        END;
    END LOOP;
    IF (SELECT sum(total_bytes) FROM pg_backend_memory_contexts WHERE name LIKE 'memoria%') > 48 * 1024 * 1024 THEN
        RAISE EXCEPTION 'memoria holds more than 48 MB';
    END IF;
END $$;
SELECT memoria.drop_rollup('ad_many', drop_table => true);
DROP TABLE ad_many;

-- Frozen buckets: their partials are discarded, like their keys.
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-12', 1, 'm1', 5);
SELECT status FROM memoria.refresh('ad_daily');
SELECT step, action FROM memoria.alter_rollup('ad_daily', freeze_after => '1 day');
INSERT INTO ad (at, ws, model, tokens) VALUES ('2026-05-12', 1, 'm1', 1000), (now(), 1, 'm1', 1);
SELECT status FROM memoria.refresh('ad_daily');
SELECT tokens FROM memoria_rollup.ad_daily WHERE bucket = '2026-05-12 00:00+00';
SELECT frozen_keys_discarded > 0 AS discarded FROM memoria.rollup_state s JOIN memoria.rollups r ON r.id = s.rollup_id WHERE r.name = 'ad_daily';

-- (The frozen bucket keeps what it had: the only difference from the source.)
SELECT bucket, tokens FROM ad_truth EXCEPT SELECT bucket, tokens FROM memoria_rollup.ad_daily;
SELECT memoria.drop_rollup('ad_daily', drop_table => true);
SELECT count(*) AS left_behind FROM pg_class WHERE relnamespace = 'memoria_state'::regnamespace;
DROP VIEW ad_truth;
DROP FUNCTION ad_check(), ad_pending(), ad_try(text, text[], text);
DROP TABLE ad;
