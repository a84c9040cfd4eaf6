-- drop_extension: DROP EXTENSION memoria refuses while rollups exist, naming
-- them (it would drop the user's data); with CASCADE it leaves no trigger,
-- state or schema behind, and creating it again works.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE TABLE de_src (at timestamptz NOT NULL, k int NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE de_src_1 PARTITION OF de_src FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE de_plain (at date NOT NULL, k int NOT NULL);
SELECT memoria.create_rollup('de_a', 'de_src', 'at', ARRAY['k'], ARRAY['count(*) AS n']) IS NOT NULL AS created;
SELECT memoria.create_rollup('de_b', 'de_plain', 'at', ARRAY['k'], ARRAY['count(*) AS n']) IS NOT NULL AS created;
INSERT INTO de_src VALUES ('2026-01-02', 1);
SELECT count(*) > 0 AS has_triggers FROM pg_trigger WHERE tgname LIKE 'zz_memoria%';
DROP EXTENSION memoria;
SELECT count(*) AS rollups_kept FROM memoria.rollups;
DROP EXTENSION memoria CASCADE;
SELECT count(*) AS memoria_triggers FROM pg_trigger WHERE tgname LIKE 'zz_memoria%';
SELECT count(*) AS memoria_schemas FROM pg_namespace WHERE nspname LIKE 'memoria%';
SELECT count(*) AS memoria_event_triggers FROM pg_event_trigger WHERE evtname LIKE 'memoria%';
-- The sources work as plain tables.
INSERT INTO de_src VALUES ('2026-01-03', 2);
INSERT INTO de_plain VALUES ('2026-01-03', 2);
TRUNCATE de_src;
CREATE EXTENSION memoria;
SELECT memoria.create_rollup('de_a', 'de_src', 'at', ARRAY['k'], ARRAY['count(*) AS n']) IS NOT NULL AS created;
INSERT INTO de_src VALUES ('2026-01-04', 3);
SELECT status FROM memoria.refresh_window('de_a', '-infinity', 'infinity');
SELECT * FROM memoria_rollup.de_a;
DROP TABLE de_src CASCADE;
DROP TABLE de_plain;
SELECT count(*) FROM memoria.rollups WHERE name LIKE 'de_%';
