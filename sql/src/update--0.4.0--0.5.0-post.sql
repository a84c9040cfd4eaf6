
-- memoria 0.4.0 -> 0.5.0, last part: helpers 0.5.0 no longer uses.
DROP FUNCTION memoria_internal.require_pg_cron();
DROP FUNCTION memoria_internal.cron_job_exists(text);

-- Every rollup gets its <target>_live view.
SELECT memoria_internal.create_live_view(id) FROM memoria.rollups ORDER BY id;
