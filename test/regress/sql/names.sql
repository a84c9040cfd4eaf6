-- Odd names: schemas, tables, columns and rollup names with quotes, spaces,
-- semicolons and mixed case are plain names everywhere memoria builds SQL.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET client_min_messages = warning;
CREATE SCHEMA "Odd Schema; -- x";
CREATE TABLE "Odd Schema; -- x"."Usage ""Events""; DROP TABLE t" (
    "Created At"  timestamptz NOT NULL,
    "work;space"  int NOT NULL,
    "Mo""del"     text,
    "tok'ens"     int NOT NULL
);
INSERT INTO "Odd Schema; -- x"."Usage ""Events""; DROP TABLE t"
SELECT timestamptz '2026-02-01' + g * interval '5 hours', g % 3, CASE WHEN g % 4 = 0 THEN NULL ELSE 'M' || g % 2 END, g
FROM generate_series(1, 60) g;
CREATE TABLE t (x int);  -- what an injection would drop

SELECT memoria.create_rollup('daily"; DROP TABLE t; --', '"Odd Schema; -- x"."Usage ""Events""; DROP TABLE t"',
                             'Created At', ARRAY['work;space', 'Mo"del'], ARRAY['sum("tok''ens") AS "Tok''ens; x"'],
                             scope => ARRAY['work;space'], filter => '"tok''ens" > 2');
SELECT memoria.create_rollup('Mixed Case ''quoted''', '"Odd Schema; -- x"."Usage ""Events""; DROP TABLE t"',
                             'Created At', ARRAY['Mo"del'], ARRAY['count(*) AS "N"'],
                             target => '"Odd Schema; -- x"."Rollup ""Table"""');
CALL memoria.backfill('daily"; DROP TABLE t; --');
CALL memoria.backfill('Mixed Case ''quoted''');
INSERT INTO "Odd Schema; -- x"."Usage ""Events""; DROP TABLE t" VALUES ('2026-02-02 01:00', 1, 'M1', 100);
UPDATE "Odd Schema; -- x"."Usage ""Events""; DROP TABLE t" SET "work;space" = 2 WHERE "tok'ens" = 7;
DELETE FROM "Odd Schema; -- x"."Usage ""Events""; DROP TABLE t" WHERE "tok'ens" = 8;
SELECT rollup, status FROM memoria.refresh() ORDER BY 1;
SELECT r.name, (SELECT count(*) FROM memoria.verify(r.name)) AS differences FROM memoria.rollups r ORDER BY 1;
SELECT rollup, source, target, pending_keys FROM memoria.status ORDER BY 1;
SELECT * FROM memoria_rollup."daily""; DROP TABLE t; --" WHERE bucket = '2026-02-02' ORDER BY 2, 3;
SELECT memoria.lag('Mixed Case ''quoted''') IS NOT NULL AS has_lag;
SELECT count(*) AS t_still_exists FROM t;

-- An expression cannot carry a second statement or escape its slot.
SELECT memoria.create_rollup('inj', '"Odd Schema; -- x"."Usage ""Events""; DROP TABLE t"', 'Created At',
                             ARRAY['work;space'], ARRAY['count(*) AS n FROM t; DROP TABLE t; SELECT 1']);
SELECT memoria.create_rollup('inj', '"Odd Schema; -- x"."Usage ""Events""; DROP TABLE t"', 'Created At',
                             ARRAY['work;space'], ARRAY['count(*) AS n'], filter => 'true) OR (true');
SELECT memoria.create_rollup('inj', '"Odd Schema; -- x"."Usage ""Events""; DROP TABLE t"', 'Created At',
                             ARRAY['work;space'], ARRAY['count(*) AS n'], filter => 'true GROUP BY 1 --');
SELECT count(*) AS t_still_exists FROM t;

SELECT memoria.drop_rollup('daily"; DROP TABLE t; --', drop_table => true);
DROP SCHEMA "Odd Schema; -- x" CASCADE;
SELECT count(*) AS rollups_left FROM memoria.rollups;
DROP TABLE t;
