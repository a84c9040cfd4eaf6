-- ALTER TABLE of a source: renames keep working (memoria stores attribute
-- numbers and OIDs); anything that would leave the rollup silently wrong or
-- failing is refused at the ALTER, naming the rollup; a rewrite that changes
-- values without firing row triggers rebuilds the rollup.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE TABLE alt (at timestamptz NOT NULL, ws int NOT NULL, model text, tokens int NOT NULL,
                  cost numeric(10, 3) NOT NULL, note text);
INSERT INTO alt SELECT timestamptz '2026-01-01' + g * interval '7 hours', g % 3, 'm' || (g % 2), g, g / 10.0
FROM generate_series(1, 100) g;
SELECT memoria.create_rollup('alt_daily', 'alt', 'at', '{ws,model}', '{sum(tokens) AS tokens, sum(cost) AS cost}',
                             filter => 'note IS NULL');
SELECT status FROM memoria.refresh_window('alt_daily', '-infinity', 'infinity');

-- Renames of the table and of the time and dimension columns: nothing to do.
ALTER TABLE alt RENAME TO alt_events;
ALTER TABLE alt_events RENAME COLUMN ws TO workspace;
ALTER TABLE alt_events RENAME COLUMN at TO created_at;
INSERT INTO alt_events VALUES ('2026-01-02', 1, 'm1', 5, 1, NULL);
UPDATE alt_events SET workspace = 2 WHERE tokens = 10;
SELECT status, keys_refreshed FROM memoria.refresh('alt_daily');
SELECT count(*) AS differences FROM memoria.verify('alt_daily');
SELECT source, target FROM memoria.status WHERE rollup = 'alt_daily';

-- Refused, each undone: a column a measure or the filter names, a dropped
-- dimension, type changes of the time column, a dimension or a measure's input.
ALTER TABLE alt_events RENAME COLUMN tokens TO input_tokens;
ALTER TABLE alt_events RENAME COLUMN note TO remark;
ALTER TABLE alt_events DROP COLUMN model;
ALTER TABLE alt_events ALTER COLUMN workspace TYPE bigint;
ALTER TABLE alt_events ALTER COLUMN created_at TYPE timestamp;
ALTER TABLE alt_events ALTER COLUMN tokens TYPE bigint;
SELECT attname FROM pg_attribute WHERE attrelid = 'alt_events'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;

-- Accepted: a type change that keeps every type the rollup sees, and new columns.
ALTER TABLE alt_events ALTER COLUMN cost TYPE numeric(12, 3);
ALTER TABLE alt_events ADD COLUMN extra int;
SELECT count(*) AS differences FROM memoria.verify('alt_daily');

-- A rewrite that changes values (USING) fires no row trigger: the rollup is
-- marked for a rebuild, and the next refresh makes it exact again.
ALTER TABLE alt_events ALTER COLUMN cost TYPE numeric(10, 3) USING cost * 2;
SELECT pending_keys FROM memoria.status WHERE rollup = 'alt_daily';
SELECT count(*) > 0 AS stale_until_refreshed FROM memoria.verify('alt_daily');
SELECT status FROM memoria.refresh('alt_daily');
SELECT count(*) AS differences FROM memoria.verify('alt_daily');

-- updated_at mode: its column must stay timestamptz NOT NULL.
ALTER TABLE alt_events ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
SELECT memoria.create_rollup('alt_ua', 'alt_events', 'created_at', '{workspace}', '{count(*) AS n}',
                             invalidation => 'updated_at', updated_at_column => 'updated_at') IS NOT NULL AS created;
ALTER TABLE alt_events ALTER COLUMN updated_at DROP NOT NULL;
ALTER TABLE alt_events DROP COLUMN updated_at;

SELECT memoria.drop_rollup(name, drop_table => true) FROM memoria.rollups WHERE name IN ('alt_daily', 'alt_ua');
-- Without rollups the table alters freely.
ALTER TABLE alt_events DROP COLUMN model;
DROP TABLE alt_events;
