-- refresh_window: recomputes whole buckets whatever is dirty; idempotent.
-- (Every suite runs alone too: it starts from a fresh memoria.)
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS memoria CASCADE;
CREATE EXTENSION memoria;
RESET client_min_messages;
SET TimeZone = 'UTC';
CREATE TABLE orders (at timestamptz NOT NULL, shop int NOT NULL, total int NOT NULL);
INSERT INTO orders SELECT timestamptz '2026-07-01' + g * interval '20 minutes', g % 3, g FROM generate_series(1, 2000) g;
SELECT memoria.create_rollup('orders_daily', 'orders', 'at', ARRAY['shop'], ARRAY['sum(total) AS total']);
-- A window that does not hold every source row fills part of the rollup and
-- leaves it marked as needing a backfill.
SELECT status, keys_refreshed FROM memoria.refresh_window('orders_daily', '2026-07-10', '2026-07-12');
SELECT min(bucket), max(bucket) FROM memoria_rollup.orders_daily;
SELECT needs_backfill, watermark IS NULL AS no_watermark FROM memoria.status;
-- Windows are half-open and cover every bucket they overlap.
SELECT status, keys_refreshed FROM memoria.refresh_window('orders_daily', '2026-07-14 23:59', '2026-07-15 00:01');
SELECT bucket FROM memoria_rollup.orders_daily WHERE bucket >= '2026-07-13' GROUP BY 1 ORDER BY 1;
-- Idempotent: running it again changes nothing.
SELECT rows_upserted, rows_deleted FROM memoria.refresh_window('orders_daily', '2026-07-10', '2026-07-12');
-- A window covering all the data completes the backfill.
SELECT status FROM memoria.refresh_window('orders_daily', '2026-07-01', '2026-08-01');
SELECT needs_backfill, watermark IS NOT NULL AS has_watermark FROM memoria.status;
SELECT count(*) AS differences FROM memoria.verify('orders_daily');
-- It also repairs a rollup row someone changed by hand, and removes stray rows.
-- Only memoria writes a rollup table: the guard trigger refuses anyone
-- else; a superuser may stand in for memoria to damage it on purpose.
UPDATE memoria_rollup.orders_daily SET total = -1 WHERE bucket = '2026-07-20' AND shop = 1;
SET memoria.writing_rollup = on;
UPDATE memoria_rollup.orders_daily SET total = -1 WHERE bucket = '2026-07-20' AND shop = 1;
INSERT INTO memoria_rollup.orders_daily VALUES ('2026-07-21', 99, 1);
RESET memoria.writing_rollup;
SELECT bucket, dimensions, rollup_values, source_values FROM memoria.verify('orders_daily', '2026-07-20', '2026-07-22');
SELECT rows_upserted, rows_deleted FROM memoria.refresh_window('orders_daily', '2026-07-20', '2026-07-22');
SELECT count(*) AS differences FROM memoria.verify('orders_daily');
SELECT memoria.drop_rollup('orders_daily', drop_table => true);
