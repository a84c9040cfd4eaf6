-- failures: a key whose recompute fails (a measure's division by zero, a
-- dimension value too large for the rollup's key) stays pending and is
-- reported; every other key is refreshed; the watermark waits.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';

CREATE TABLE fl_ev (at timestamptz NOT NULL, k text NOT NULL, v int NOT NULL);
INSERT INTO fl_ev SELECT timestamptz '2026-03-01' + g * interval '5 hours', 'k' || g % 4, 1 + g % 9
FROM generate_series(0, 300) g;
SELECT memoria.create_rollup('fl_daily', 'fl_ev', 'at', '{k}', '{sum(v) AS v, sum(100 / v) AS inv}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('fl_daily', '-infinity', 'infinity');
SELECT watermark AS before FROM memoria.status \gset

-- One poisoned row among good writes to other days and keys.
INSERT INTO fl_ev VALUES ('2026-03-05 10:00', 'k1', 0);
INSERT INTO fl_ev SELECT timestamptz '2026-03-10' + g * interval '1 day', 'k' || g % 4, 5 FROM generate_series(0, 20) g;
\set VERBOSITY terse
SELECT status, keys_refreshed, error FROM memoria.refresh('fl_daily');
SELECT state, failing_keys, pending_keys, last_error LIKE '%22012%' AS has_sqlstate,
       watermark = :'before' AS watermark_waits FROM memoria.status;
-- Every other day is exact (verify, too, divides by zero on the poisoned one).
SELECT count(*) AS differences FROM memoria.verify('fl_daily', '2026-03-06', 'infinity');
-- Every refresh tries it again, and the others go on.
INSERT INTO fl_ev VALUES ('2026-03-20 10:00', 'k2', 3);
SELECT status, keys_refreshed FROM memoria.refresh('fl_daily');
SELECT count(*) AS differences FROM memoria.verify('fl_daily', '2026-03-06', 'infinity');
-- Fixed at the source: the key refreshes, the state clears, the watermark moves.
DELETE FROM fl_ev WHERE v = 0;
SELECT status, keys_refreshed FROM memoria.refresh('fl_daily');
SELECT state, failing_keys, pending_keys, watermark > :'before' AS watermark_moved FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('fl_daily');

-- A dimension value too large for the rollup table's key: that key alone.
INSERT INTO fl_ev VALUES ('2026-03-07 10:00', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g), 1);
INSERT INTO fl_ev SELECT timestamptz '2026-03-11' + g * interval '1 day', 'k' || g % 4, 7 FROM generate_series(0, 5) g;
SELECT status, keys_refreshed, error FROM memoria.refresh('fl_daily');
SELECT failing_keys, pending_keys FROM memoria.status;

-- In batches (memoria.run, the worker): the failing key does not hold the
-- others back.
INSERT INTO fl_ev SELECT timestamptz '2026-04-01' + g * interval '1 day', 'k' || g % 4, 2 FROM generate_series(0, 30) g;
SET memoria.batch_keys = 4;
SET client_min_messages = error;  -- (each batch warns about the failing key)
CALL memoria.run('fl_daily');
RESET client_min_messages;
RESET memoria.batch_keys;
SELECT failing_keys, pending_keys FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('fl_daily');
DELETE FROM fl_ev WHERE length(k) > 100;
SELECT status FROM memoria.refresh('fl_daily');
SELECT state, failing_keys, pending_keys FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('fl_daily');

-- Failing keys in the oldest buckets, batches smaller than their number:
-- each batch still refreshes its share of the good keys.
INSERT INTO fl_ev VALUES ('2026-02-01 10:00', 'k1', 0), ('2026-02-01 11:00', 'k2', 0);
INSERT INTO fl_ev SELECT timestamptz '2026-05-01' + g * interval '1 day', 'k' || g % 4, 3 FROM generate_series(0, 49) g;
SET memoria.batch_keys = 2;
SET client_min_messages = error;
CALL memoria.run('fl_daily');
RESET client_min_messages;
RESET memoria.batch_keys;
SELECT state, failing_keys, pending_keys FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('fl_daily', '2026-02-02', 'infinity');
-- A limited refresh that does not reach them keeps reporting them.
INSERT INTO fl_ev VALUES ('2026-06-01 10:00', 'k3', 4);
SET client_min_messages = error;  -- (which failing key a warning names varies)
SELECT status, keys_refreshed FROM memoria.refresh('fl_daily', 1);
RESET client_min_messages;
SELECT state, failing_keys, last_error IS NOT NULL AS still_says_why FROM memoria.status;
DELETE FROM fl_ev WHERE v = 0;
SELECT status FROM memoria.refresh('fl_daily');
SELECT state, failing_keys, pending_keys FROM memoria.status;

-- After a TRUNCATE (a full rebuild), a bad row fails its key only.
TRUNCATE fl_ev;
INSERT INTO fl_ev SELECT timestamptz '2026-03-01' + g * interval '5 hours', 'k' || g % 4, 1 + g % 9
FROM generate_series(0, 100) g;
INSERT INTO fl_ev VALUES ('2026-03-02 10:00', 'k1', 0);
SELECT status, error FROM memoria.refresh('fl_daily');
SELECT state, failing_keys, pending_keys FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('fl_daily', '2026-03-03', 'infinity');
DELETE FROM fl_ev WHERE v = 0;
SELECT status FROM memoria.refresh('fl_daily');
SELECT count(*) AS differences FROM memoria.verify('fl_daily');

-- When many keys fail, a refresh isolates a few dozen and leaves the rest
-- pending (bounded work); fixed, everything refreshes.
UPDATE fl_ev SET v = 0 WHERE at < '2026-03-20';
SET client_min_messages = error;
SELECT status, error LIKE 'at least 32 keys cannot be recomputed%' AS bounded FROM memoria.refresh('fl_daily');
RESET client_min_messages;
SELECT failing_keys AS at_most_32, pending_keys > failing_keys AS rest_pending FROM memoria.status;
UPDATE fl_ev SET v = 1 WHERE v = 0;
SELECT status FROM memoria.refresh('fl_daily');
SELECT state, failing_keys, pending_keys FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('fl_daily');

-- A huge value in an error message is cut short.
CREATE TABLE fl_text (at timestamptz NOT NULL, s text NOT NULL);
INSERT INTO fl_text VALUES ('2026-03-01', '1');
SELECT memoria.create_rollup('fl_text_daily', 'fl_text', 'at', '{}', '{sum(s::int) AS n}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('fl_text_daily', '-infinity', 'infinity');
INSERT INTO fl_text VALUES ('2026-03-02', repeat('x', 100000));
SET client_min_messages = error;
SELECT status, length(error) < 1000 AS short FROM memoria.refresh('fl_text_daily');
RESET client_min_messages;
SELECT length(last_error) < 1000 AS short FROM memoria.status WHERE rollup = 'fl_text_daily';

-- More failing keys than one refresh isolates: refresh after refresh, every
-- good key still gets done (bisection takes the keys in another order each
-- time), and only the failing ones stay pending.
CREATE TABLE fl_many (at timestamptz NOT NULL, k text NOT NULL, v int NOT NULL);
SELECT memoria.create_rollup('fl_many_daily', 'fl_many', 'at', '{k}', '{sum(100 / v) AS inv}') IS NOT NULL AS created;
SELECT status FROM memoria.refresh_window('fl_many_daily', '-infinity', 'infinity');
INSERT INTO fl_many SELECT timestamptz '2020-01-01' + (i / 10) * interval '1 day', 'k' || i % 10,
       CASE WHEN i % 25 = 7 THEN 0 ELSE 1 END FROM generate_series(0, 999) i;
SET client_min_messages = error;
DO $$
BEGIN
    FOR i IN 1..60 LOOP
        PERFORM memoria.refresh('fl_many_daily');
        EXIT WHEN (SELECT pending_keys FROM memoria.status WHERE rollup = 'fl_many_daily') = 40;
    END LOOP;
END $$;
RESET client_min_messages;
SELECT pending_keys AS only_the_40_failing FROM memoria.status WHERE rollup = 'fl_many_daily';
SELECT count(*) AS good_keys_wrong FROM memoria_rollup.fl_many_daily r
JOIN (SELECT memoria.bucket(at, '1 day') AS b, k, sum(100 / nullif(v, 0)) AS inv, bool_and(v <> 0) AS good
      FROM fl_many GROUP BY 1, 2) s ON s.b = r.bucket AND s.k = r.k
WHERE s.good AND r.inv IS DISTINCT FROM s.inv;
SELECT count(*) AS good_keys_missing FROM (SELECT memoria.bucket(at, '1 day') AS b, k FROM fl_many
      GROUP BY 1, 2 HAVING bool_and(v <> 0)) s
WHERE NOT EXISTS (SELECT 1 FROM memoria_rollup.fl_many_daily r WHERE r.bucket = s.b AND r.k = s.k);
