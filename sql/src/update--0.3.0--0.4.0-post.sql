
-- memoria 0.3.0 -> 0.4.0, last part: the internal helpers moved to schema
-- memoria_internal, and every rollup adopted (guard trigger on its table,
-- dependencies, owner, recorded_in).
DROP FUNCTION memoria._capture_problem(int);
DROP FUNCTION memoria._pending_keys(int);
DROP FUNCTION memoria._worker_preloaded();
DROP FUNCTION memoria._cron_job_exists(text);
DROP FUNCTION memoria._source_range(text);
DROP FUNCTION memoria._backfill_state(text, timestamptz, real, boolean, timestamptz, boolean);
DROP FUNCTION memoria._require_pg_cron();
DROP FUNCTION memoria._forget_cron_job();
DROP FUNCTION memoria._on_ddl_end();
DROP FUNCTION memoria._on_sql_drop();
DROP FUNCTION memoria._on_table_rewrite();
DROP FUNCTION memoria._repair(int);
DROP FUNCTION memoria._bucket_lo(timestamptz, interval, text), memoria._bucket_hi(timestamptz, interval, text),
              memoria._bucket_lo(timestamp, interval, text), memoria._bucket_hi(timestamp, interval, text),
              memoria._bucket_lo(date, interval, text), memoria._bucket_hi(date, interval, text);

SELECT memoria_internal.adopt(id) FROM memoria.rollups ORDER BY id;
