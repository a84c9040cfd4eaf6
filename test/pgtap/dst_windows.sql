-- dst_windows.sql: differential test of refresh_window and backfill slices
-- around every offset change of 2018 in zones with odd rules: Paris and New
-- York (DST at night), Sao Paulo (DST at midnight: some days start at 01:00),
-- Lord Howe (a 30-minute shift), Kathmandu (+05:45, no DST).  For each zone
-- and bucket width, windows starting at awkward distances before each change
-- are refreshed, in an order that lets a wrong write survive, and the rollup
-- must then equal a fresh GROUP BY; so must a backfill in slices.
BEGIN;
SET client_min_messages = warning;
CREATE TABLE dst_src (at timestamptz NOT NULL, v int NOT NULL);
INSERT INTO dst_src SELECT timestamptz '2018-01-01 00:00+00' + g * interval '37 minutes', g % 7
FROM generate_series(0, 14300) g;  -- about 2018-01-01 .. 2019-01-05

CREATE TEMP TABLE cases (zone text, width interval);
INSERT INTO cases SELECT z, w
FROM unnest(ARRAY['Europe/Paris', 'America/New_York', 'America/Sao_Paulo', 'Australia/Lord_Howe', 'Asia/Kathmandu']) z,
     unnest(ARRAY[interval '1 day', interval '7 days', interval '1 hour', interval '30 minutes']) w;
SELECT plan((SELECT count(*)::int * 2 FROM cases));

-- The instants where a zone's offset from UTC changes in 2018 (to the 10 minutes).
CREATE FUNCTION pg_temp.changes(zone text) RETURNS SETOF timestamptz LANGUAGE sql AS $$
    SELECT t FROM generate_series(timestamptz '2018-01-01 00:00+00', '2018-12-31', interval '10 minutes') t
    WHERE (t AT TIME ZONE zone) - (t AT TIME ZONE 'UTC')
       <> ((t - interval '10 minutes') AT TIME ZONE zone) - ((t - interval '10 minutes') AT TIME ZONE 'UTC')
$$;

CREATE FUNCTION pg_temp.check_case(zone text, width interval) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    name text := 'dst_' || md5(zone || width::text);
    change timestamptz;
    hours int;
    len interval;
    windows int := 0;
BEGIN
    PERFORM memoria.create_rollup(name, 'dst_src', 'at', '{}', '{count(*) AS n, sum(v) AS v}',
                                  bucket => width, time_zone => zone);
    PERFORM memoria.refresh_window(name, '-infinity', 'infinity');
    -- Some changes have none in 2018 (Kathmandu): then windows around fixed dates.
    FOR change IN SELECT c FROM pg_temp.changes(zone) c
                  UNION ALL SELECT timestamptz '2018-03-25 01:00+00' WHERE NOT EXISTS (SELECT pg_temp.changes(zone))
    LOOP
        FOREACH hours IN ARRAY ARRAY[170, 100, 72, 54, 53, 50, 49, 48, 30, 24, 6, 1, 0] LOOP
            FOREACH len IN ARRAY ARRAY[interval '10 days', interval '3 days', interval '1 day', interval '40 days'] LOOP
                PERFORM memoria.refresh_window(name, change - hours * interval '1 hour',
                                               change - hours * interval '1 hour' + len);
                windows := windows + 1;
            END LOOP;
        END LOOP;
    END LOOP;
    RETURN NEXT is((SELECT count(*) FROM memoria.verify(name)), 0::bigint,
                   format('%s, %s buckets: %s windows near offset changes, then exact', zone, width, windows));
    -- Slices as memoria.backfill walks them (it commits, so not callable
    -- here): 7 days each from an awkward start, 50 hours before the first
    -- change, into an emptied rollup.
    SET LOCAL memoria.writing_rollup = on;  -- a superuser standing in for memoria
    EXECUTE format('TRUNCATE memoria_rollup.%I', name);
    change := coalesce((SELECT min(c) FROM pg_temp.changes(zone) c), '2018-03-25 01:00+00');
    PERFORM memoria.refresh_window(name, s, least(s + interval '7 days', '2019-01-01'))
    FROM generate_series(change - interval '50 hours', '2019-01-01', interval '7 days') s
    WHERE s < '2019-01-01';
    RETURN NEXT is((SELECT count(*) FROM memoria.verify(name, change - interval '50 hours', '2019-01-01')), 0::bigint,
                   format('%s, %s buckets: backfill in 7-day slices, exact', zone, width));
    PERFORM memoria.drop_rollup(name, drop_table => true);
END $$;

SELECT pg_temp.check_case(zone, width) FROM cases ORDER BY zone, width;

SELECT * FROM finish();
ROLLBACK;
