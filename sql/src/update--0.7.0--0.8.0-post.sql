-- memoria 0.7.0 -> 0.8.0, last part.

-- A rollup in updated_at mode gets its "stale" trigger, which logs the key of
-- a row inserted with a stamp older than its transaction: one an UPDATE
-- moved to another partition without a new stamp, one logical replication
-- brought with the publisher's, one copied with its old stamp.  Such rows
-- written before were not seen (memoria.verify() shows them;
-- memoria.refresh_window() repairs them).
SELECT memoria_internal.adopt(id) FROM memoria.rollups WHERE updated_at_attnum IS NOT NULL ORDER BY id;
