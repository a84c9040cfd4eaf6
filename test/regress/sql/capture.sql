-- capture: every way of writing to the source dirties the right keys.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE TABLE workspaces (id int PRIMARY KEY, name text);
INSERT INTO workspaces SELECT g, 'ws' || g FROM generate_series(1, 4) g;
CREATE TABLE spend (
    id int PRIMARY KEY,
    at timestamptz NOT NULL,
    workspace_id int NOT NULL REFERENCES workspaces ON DELETE CASCADE,
    amount int NOT NULL
);
INSERT INTO spend SELECT g, timestamptz '2026-06-01' + (g % 10) * interval '1 day', 1 + g % 4, g FROM generate_series(1, 400) g;
SELECT memoria.create_rollup('spend_daily', 'spend', 'at', ARRAY['workspace_id'],
                             ARRAY['sum(amount) AS amount', 'count(*) AS n']);
SELECT status FROM memoria.refresh_window('spend_daily', '-infinity', 'infinity');
CREATE FUNCTION check_exact(label text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE diffs bigint;
BEGIN
    PERFORM memoria.refresh('spend_daily');
    SELECT count(*) INTO diffs FROM memoria.verify('spend_daily');
    RETURN label || ': ' || CASE WHEN diffs = 0 THEN 'exact' ELSE diffs || ' differences' END;
END $$;

-- INSERT ... ON CONFLICT DO UPDATE (an insert that becomes an update of another day)
INSERT INTO spend VALUES (1, '2026-06-20', 1, 5), (1000, '2026-06-21', 2, 7)
ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at, amount = EXCLUDED.amount;
SELECT check_exact('on conflict');
-- UPDATE ... FROM, moving rows to another day and workspace
UPDATE spend s SET at = s.at + interval '3 days', workspace_id = w.id FROM workspaces w
WHERE w.id = 4 AND s.id % 7 = 0;
SELECT check_exact('update from');
-- DELETE ... USING
DELETE FROM spend s USING workspaces w WHERE s.workspace_id = w.id AND w.name = 'ws3' AND s.amount < 100;
SELECT check_exact('delete using');
-- MERGE
MERGE INTO spend s USING (SELECT g AS id FROM generate_series(395, 405) g) v ON s.id = v.id
WHEN MATCHED AND s.id % 2 = 0 THEN DELETE
WHEN MATCHED THEN UPDATE SET amount = s.amount * 2
WHEN NOT MATCHED THEN INSERT VALUES (v.id, '2026-06-05', 2, 1);
SELECT check_exact('merge');
-- COPY
COPY spend FROM stdin;
5001	2026-06-03 10:00:00+00	1	11
5002	2026-06-30 23:59:59+00	3	13
\.
SELECT check_exact('copy');
-- FK cascade: deleting a workspace deletes its spend rows
DELETE FROM workspaces WHERE id = 2;
SELECT check_exact('fk cascade');
SELECT count(*) FROM memoria_rollup.spend_daily WHERE workspace_id = 2;
-- A rolled-back subtransaction, and writes in the same transaction as a savepoint
BEGIN;
INSERT INTO spend VALUES (6001, '2026-06-07', 1, 100);
SAVEPOINT s1;
INSERT INTO spend VALUES (6002, '2026-06-08', 1, 100);
ROLLBACK TO s1;
UPDATE spend SET amount = amount + 1 WHERE id = 6001;
COMMIT;
SELECT check_exact('savepoints');
-- A rolled-back transaction leaves nothing dirty.
BEGIN;
INSERT INTO spend VALUES (7001, '2026-06-09', 1, 100);
ROLLBACK;
SELECT pending_keys FROM memoria.status;
-- A prepared transaction records its keys when prepared and applies them when committed.
BEGIN;
INSERT INTO spend VALUES (7002, '2026-06-09', 4, 100);
PREPARE TRANSACTION 'memoria_2pc';
SELECT pending_keys FROM memoria.status;
COMMIT PREPARED 'memoria_2pc';
SELECT pending_keys FROM memoria.status;
SELECT check_exact('two-phase commit');
-- One transaction changes a key, refreshes, and changes it again: the later
-- changes are captured too (a refresh forgets the keys it may consume).
BEGIN;
UPDATE spend SET amount = amount + 1 WHERE id = 6001;
SELECT status FROM memoria.refresh('spend_daily');
UPDATE spend SET amount = amount + 1 WHERE id = 6001;
SELECT status FROM memoria.refresh_window('spend_daily', '-infinity', 'infinity');
UPDATE spend SET amount = amount + 1 WHERE id = 6001;
COMMIT;
SELECT check_exact('write, refresh, write again');
-- The same with inserts (captured at the end of each INSERT statement).
BEGIN;
INSERT INTO spend VALUES (6003, '2026-06-11', 1, 5);
SELECT status FROM memoria.refresh('spend_daily');
INSERT INTO spend VALUES (6004, '2026-06-11', 1, 6);
COMMIT;
SELECT check_exact('insert, refresh, insert again');
-- One statement that deletes rows and inserts them on another day.
WITH moved AS (DELETE FROM spend WHERE id IN (6003, 6004) RETURNING *)
INSERT INTO spend SELECT id + 10, at + interval '2 days', workspace_id, amount FROM moved;
SELECT check_exact('delete and insert in one statement');
-- A user's own statement trigger reads the same inserted rows, after memoria's.
CREATE TABLE audit (rows bigint);
CREATE FUNCTION audit_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit SELECT count(*) FROM inserted; RETURN NULL; END $$;
CREATE TRIGGER zzz_audit AFTER INSERT ON spend REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION audit_rows();
INSERT INTO spend SELECT 6100 + g, '2026-06-12', 1 + 2 * (g % 2), g FROM generate_series(1, 3) g;
SELECT rows FROM audit;
SELECT check_exact('user statement trigger');
DROP TRIGGER zzz_audit ON spend;
-- The same with the refresh in a savepoint that rolls back.
BEGIN;
UPDATE spend SET amount = amount + 1 WHERE id = 6001;
SAVEPOINT s2;
SELECT status FROM memoria.refresh('spend_daily');
ROLLBACK TO s2;
UPDATE spend SET amount = amount + 1 WHERE id = 6001;
COMMIT;
SELECT check_exact('refresh in a rolled-back savepoint');
-- A statement touching many keys at once (more than the in-memory batch).
INSERT INTO spend SELECT 100000 + g, timestamptz '1980-01-01' + g * interval '1 day', (ARRAY[1, 3, 4])[1 + g % 3], 1
FROM generate_series(1, 20000) g;
SELECT pending_keys > 16384 AS many_keys FROM memoria.status;
SELECT check_exact('20000 keys');
-- A user BEFORE trigger that moves rows fires before memoria's (name order).
CREATE FUNCTION shift_day() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.at := NEW.at + interval '1 day'; RETURN NEW; END $$;
CREATE TRIGGER shift_day BEFORE INSERT ON spend FOR EACH ROW EXECUTE FUNCTION shift_day();
INSERT INTO spend VALUES (8001, '2026-06-01 23:30', 1, 9);
SELECT check_exact('user before trigger');
DROP TRIGGER shift_day ON spend;
-- Rows with a NULL time are not rolled up (and dirty nothing).
ALTER TABLE spend ALTER COLUMN at DROP NOT NULL;
INSERT INTO spend VALUES (9001, NULL, 1, 9);
SELECT check_exact('null time');
-- TRUNCATE marks the whole rollup for a rebuild; rows written after it count.
BEGIN;
TRUNCATE spend;
INSERT INTO spend VALUES (1, '2026-06-15', 1, 42);
COMMIT;
SELECT check_exact('truncate');
SELECT * FROM memoria_rollup.spend_daily;
-- TRUNCATE ... CASCADE from the referenced table
INSERT INTO spend VALUES (2, '2026-06-16', 3, 8);
SELECT check_exact('refill');
TRUNCATE workspaces CASCADE;
SELECT check_exact('truncate cascade');
SELECT count(*) FROM memoria_rollup.spend_daily;
SELECT memoria.drop_rollup('spend_daily', drop_table => true);

-- Partitioned source: writes through the parent, straight into a partition,
-- into partitions created later, a row moving between partitions, rows that
-- arrive by ATTACH or leave by DETACH or DROP of a partition, and TRUNCATE of
-- a partition created later.
CREATE TABLE metered (at timestamptz NOT NULL, meter text NOT NULL, qty int NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE metered_2026_01 PARTITION OF metered FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
SELECT memoria.create_rollup('metered_daily', 'metered', 'at', ARRAY['meter'], ARRAY['sum(qty) AS qty']);
SELECT status FROM memoria.refresh_window('metered_daily', '-infinity', 'infinity');
CREATE FUNCTION check_metered(label text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE diffs bigint;
BEGIN
    PERFORM memoria.refresh('metered_daily');
    SELECT count(*) INTO diffs FROM memoria.verify('metered_daily');
    RETURN label || ': ' || CASE WHEN diffs = 0 THEN 'exact' ELSE diffs || ' differences' END;
END $$;
INSERT INTO metered VALUES ('2026-01-05', 'a', 1), ('2026-01-06', 'b', 2);
INSERT INTO metered_2026_01 VALUES ('2026-01-07', 'a', 3);
SELECT check_metered('parent and partition writes');
CREATE TABLE metered_2026_02 PARTITION OF metered FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
INSERT INTO metered_2026_02 VALUES ('2026-02-02', 'c', 4);
UPDATE metered SET at = '2026-02-10' WHERE meter = 'b';
SELECT check_metered('new partition, row moved across partitions');
CREATE TABLE metered_2026_03 (qty int NOT NULL, meter text NOT NULL, at timestamptz NOT NULL);
INSERT INTO metered_2026_03 VALUES (5, 'd', '2026-03-03'), (6, 'e', '2026-03-04');
ALTER TABLE metered ATTACH PARTITION metered_2026_03 FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
SELECT check_metered('attach with rows');
INSERT INTO metered_2026_03 VALUES (7, 'd', '2026-03-05');
SELECT check_metered('write into an attached partition');
TRUNCATE metered_2026_02;
SELECT check_metered('truncate of a later partition');
ALTER TABLE metered DETACH PARTITION metered_2026_03;
SELECT check_metered('detach');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'metered_2026_03'::regclass AND NOT tgisinternal;
DROP TABLE metered_2026_01;
SELECT check_metered('drop partition');
-- A default partition: rows routed to it through the parent, written to it
-- directly, updated and deleted.
CREATE TABLE metered_other PARTITION OF metered DEFAULT;
INSERT INTO metered VALUES ('2027-05-05', 'f', 8);
INSERT INTO metered_other VALUES ('2027-06-06', 'g', 9);
SELECT check_metered('default partition');
UPDATE metered SET qty = qty + 1 WHERE meter = 'f';
DELETE FROM metered_other WHERE meter = 'g';
SELECT check_metered('default partition update and delete');
SELECT * FROM memoria_rollup.metered_daily ORDER BY 1, 2;
SELECT memoria.drop_rollup('metered_daily', drop_table => true);
SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname LIKE 'metered%' AND NOT t.tgisinternal;
