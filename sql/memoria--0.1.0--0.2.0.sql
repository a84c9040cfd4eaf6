-- memoria 0.1.0 -> 0.2.0
\echo Use "ALTER EXTENSION memoria UPDATE" to load this file. \quit

-- invalidation => 'updated_at': how far the updated_at column has been scanned.
ALTER TABLE memoria.rollup_state ADD COLUMN scanned_through timestamptz;
