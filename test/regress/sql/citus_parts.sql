-- citus_parts: the pieces rollups of Citus tables are made of (src/citus.hpp),
-- on a server without Citus: every mode of create_rollup_part, its
-- refusals, and a rollup writing an existing table of the right shape (as
-- a shard rollup writes its rollup-table shard), equal to a GROUP BY.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
SET client_min_messages = error;
CREATE TABLE cp (at timestamptz NOT NULL, ws int NOT NULL, model text, v int);
INSERT INTO cp SELECT timestamptz '2026-05-01' + g * interval '5 hours', g % 3, 'm' || (g % 2), g
FROM generate_series(1, 40) g;
-- Nothing distributed here.
SELECT count(*) AS distributed_rollups FROM memoria.citus_rollups;
SELECT count(*) AS shown FROM memoria.citus_status;
-- 'table' makes and distributes the table: refused for a table Citus does not know, nothing left.
SELECT memoria_internal.create_rollup_part('cp_r', 'cp', 'at', ARRAY['ws'], ARRAY['sum(v) AS v'], '1 day', 'UTC',
    NULL, NULL, 'trigger', NULL, '5 minutes', NULL, 'table');
SELECT to_regclass('memoria_rollup.cp_r') AS left_behind;
-- 'validate' checks the arguments against the source as it is now.
SELECT memoria_internal.create_rollup_part('cp_r', 'cp', 'at', ARRAY['ws'], ARRAY['sum(v) AS v'], '1 day', 'UTC',
    NULL, NULL, 'trigger', NULL, '5 minutes', NULL, 'validate') IS NULL AS valid;
SELECT memoria_internal.create_rollup_part('cp_r', 'cp', 'at', ARRAY['nope'], ARRAY['sum(v) AS v'], '1 day', 'UTC',
    NULL, NULL, 'trigger', NULL, '5 minutes', NULL, 'validate');
SELECT memoria_internal.create_rollup_part('cp_r', 'cp', 'at', ARRAY['ws'], ARRAY['sum(v) AS v'], '1 day', 'UTC',
    NULL, NULL, 'trigger', NULL, '5 minutes', NULL, 'everything');
-- 'shard' writes an existing table of the caller's with exactly the rollup's columns.
CREATE TABLE cp_wrong (bucket timestamptz NOT NULL, ws int NOT NULL, v bigint, extra int);
SELECT memoria_internal.create_rollup_part('cp_s', 'cp', 'at', ARRAY['ws', 'model'], ARRAY['sum(v) AS v'], '1 day',
    'UTC', ARRAY['ws'], NULL, 'trigger', NULL, '5 minutes', 'cp_wrong', 'shard');
SELECT memoria_internal.create_rollup_part('cp_s', 'cp', 'at', ARRAY['ws', 'model'], ARRAY['sum(v) AS v'], '1 day',
    'UTC', ARRAY['ws'], NULL, 'trigger', NULL, '5 minutes', 'cp_missing', 'shard');
CREATE TABLE cp_target (bucket timestamptz NOT NULL, ws int NOT NULL, model text, v bigint,
                        UNIQUE NULLS NOT DISTINCT (bucket, ws, model));
SELECT memoria_internal.create_rollup_part('cp_s', 'cp', 'at', ARRAY['ws', 'model'], ARRAY['sum(v) AS v'], '1 day',
    'UTC', ARRAY['ws'], NULL, 'trigger', NULL, '5 minutes', 'cp_target', 'shard');
SELECT to_regclass('memoria_rollup.cp_target_live') AS live_view, count(*) AS guard_triggers
FROM pg_trigger WHERE tgrelid = 'cp_target'::regclass AND tgname LIKE 'zz\_memoria\_guard\_%';
SELECT status FROM memoria.refresh_window('cp_s', '-infinity', 'infinity');
INSERT INTO cp VALUES ('2026-05-02 10:00', 1, NULL, 100);
UPDATE cp SET ws = 2 WHERE v = 7;
DELETE FROM cp WHERE v = 8;
SELECT status FROM memoria.refresh('cp_s');
SELECT count(*) AS differences FROM (
    (SELECT * FROM cp_target EXCEPT ALL
     SELECT memoria.bucket(at, '1 day', 'UTC'), ws, model, sum(v) FROM cp GROUP BY 1, 2, 3)
    UNION ALL
    (SELECT memoria.bucket(at, '1 day', 'UTC'), ws, model, sum(v) FROM cp GROUP BY 1, 2, 3 EXCEPT ALL
     SELECT * FROM cp_target)) d;
INSERT INTO cp_target VALUES ('2026-01-01', 1, 'forged', 1);
-- Dropped, it leaves the table a plain one.
SELECT memoria.drop_rollup('cp_s');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgname LIKE 'zz\_memoria\_%';
SELECT count(*) AS rows_kept FROM cp_target;
-- The catalog of distributed rollups is memoria's to write.
SELECT memoria_internal.citus_forget('nope');
CREATE ROLE cp_user;
SET ROLE cp_user;
INSERT INTO memoria.citus_rollups VALUES ('x', 'cp', 'cp', '{}');
SELECT count(*) AS visible FROM memoria.citus_rollups;
RESET ROLE;
DROP ROLE cp_user;
