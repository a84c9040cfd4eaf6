-- backfill: slice by slice, one transaction per slice, resumable; then the
-- watermark is set and incremental refresh takes over.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET client_min_messages = warning;  -- progress NOTICEs carry timings
CREATE TABLE bf (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
INSERT INTO bf SELECT timestamptz '2026-01-01' + g * interval '3 hours', g % 3, g FROM generate_series(0, 8 * 30 * 4 - 1) g;
-- A measure that fails on one row, to interrupt the backfill half-way.
CREATE TABLE bf_poison (v int);
-- (Declared IMMUTABLE, as memoria requires; a test probe, it reads bf_poison.)
CREATE FUNCTION bf_check(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM bf_poison p WHERE p.v = bf_check.v) THEN RAISE EXCEPTION 'poisoned row %', v; END IF;
    RETURN v;
END $$;
SELECT memoria.create_rollup('bf_daily', 'bf', 'at', ARRAY['k'], ARRAY['sum(bf_check(v)) AS v', 'count(*) AS n']);
INSERT INTO bf_poison VALUES (500);   -- a row of 2026-03-04
\set VERBOSITY terse
CALL memoria.backfill('bf_daily', slice => '1 month');
\set VERBOSITY default
-- The slices before the failure are committed and the resume point is kept.
SELECT needs_backfill, backfill_progress > 0 AS some_progress, watermark IS NULL AS no_watermark FROM memoria.status;
SELECT max(bucket) < '2026-03-01' AS stopped_before_march FROM memoria_rollup.bf_daily;
-- A write to a finished slice while the backfill is interrupted.
UPDATE bf SET v = v + 1000 WHERE at = '2026-01-15 03:00+00';
DELETE FROM bf_poison;
CALL memoria.backfill('bf_daily', slice => '1 month');
SELECT needs_backfill, backfill_progress, watermark IS NOT NULL AS has_watermark FROM memoria.status;
SELECT min(bucket), max(bucket), count(*) FROM memoria_rollup.bf_daily;
-- The write is in the dirty log; refresh picks it up from the watermark on.
SELECT status, keys_refreshed FROM memoria.refresh('bf_daily');
SELECT count(*) AS differences FROM memoria.verify('bf_daily');
-- Running it again is harmless.
CALL memoria.backfill('bf_daily', window_start => '2026-02-01', window_end => '2026-03-01', slice => '7 days');
SELECT count(*) AS differences FROM memoria.verify('bf_daily');
CALL memoria.backfill('bf_daily', slice => '0 days');
CALL memoria.backfill('bf_daily', slice => '-1 day');
-- slice NULL (the default): slices of about ten million source rows by the
-- planner's estimate; one for a smaller source.
ANALYZE bf;
-- (Its NOTICEs carry timings: only the estimate it sizes slices by is shown.)
CALL memoria.backfill('bf_daily', slice => NULL);
SELECT memoria_internal.source_rows('bf_daily') > 0 AS estimated, needs_backfill FROM memoria.status WHERE rollup = 'bf_daily';

-- pg_cron lives in another database here: a clear error with a hint.
SELECT memoria.schedule('bf_daily', '*/5 * * * *');
SELECT memoria.unschedule('bf_daily');
SELECT memoria.schedule('no_such_rollup', '*/5 * * * *');
SELECT memoria.drop_rollup('bf_daily', drop_table => true);

-- Cancelled by statement_timeout part-way (each slice sleeps ~2 ms per row,
-- ~30 ms per 2-day slice, 60 slices): the slices before the cancel are
-- committed, nothing is half-written, and the next run resumes and completes.
CREATE FUNCTION bf_slow(v int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT v FROM pg_sleep(0.002) $$;
SELECT memoria.create_rollup('bf_slow', 'bf', 'at', ARRAY['k'], ARRAY['sum(bf_slow(v)) AS v']);
SET statement_timeout = '500ms';
\set VERBOSITY terse
CALL memoria.backfill('bf_slow', slice => '2 days');
\set VERBOSITY default
RESET statement_timeout;
SELECT needs_backfill, backfill_progress > 0 AND backfill_progress < 1 AS part_way
FROM memoria.status WHERE rollup = 'bf_slow';
-- Every bucket the rollup holds is already exact.
SELECT count(*) AS differences FROM memoria.verify('bf_slow', '-infinity',
    (SELECT max(bucket) + interval '1 day' FROM memoria_rollup.bf_slow));
CALL memoria.backfill('bf_slow', slice => '2 days');
SELECT needs_backfill, backfill_progress FROM memoria.status WHERE rollup = 'bf_slow';
SELECT count(*) AS differences FROM memoria.verify('bf_slow');
SELECT memoria.drop_rollup('bf_slow', drop_table => true);
