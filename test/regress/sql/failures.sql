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
