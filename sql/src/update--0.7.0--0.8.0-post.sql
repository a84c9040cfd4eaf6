-- memoria 0.7.0 -> 0.8.0, last part.

-- A rollup in updated_at mode over a partitioned source, or a partition, gets
-- its "moved" trigger: an UPDATE that moved a row to another partition
-- without a new stamp was not seen (memoria.verify() shows such rows;
-- memoria.refresh_window() repairs them).
SELECT memoria_internal.adopt(r.id)
FROM memoria.rollups r JOIN pg_catalog.pg_class c ON c.oid = r.source
WHERE r.updated_at_attnum IS NOT NULL AND (c.relkind = 'p' OR c.relispartition)
ORDER BY r.id;
