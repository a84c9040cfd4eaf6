-- bench/reference.sql: the hand-written design memoria replaces, as teams
-- write it in PL/pgSQL (e.g. multica's task_usage_daily): a per-row trigger
-- upserts the (day, workspace, provider, model) key into a dirty-key queue
-- with ON CONFLICT DO UPDATE, and a refresh function claims the queue,
-- deletes the rollup rows of those keys and re-inserts them from a GROUP BY.
-- Written carefully (it claims keys with DELETE ... RETURNING, so it loses
-- nothing); it is a performance baseline, not a straw man.
CREATE TABLE ref_dirty (
    bucket timestamptz NOT NULL, workspace_id int NOT NULL, provider text NOT NULL, model text NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, workspace_id, provider, model));

CREATE FUNCTION ref_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO ref_dirty (bucket, workspace_id, provider, model)
        VALUES (date_trunc('day', OLD.at, 'UTC'), OLD.workspace_id, OLD.provider, OLD.model)
        ON CONFLICT (bucket, workspace_id, provider, model) DO UPDATE SET queued_at = now();
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO ref_dirty (bucket, workspace_id, provider, model)
        VALUES (date_trunc('day', NEW.at, 'UTC'), NEW.workspace_id, NEW.provider, NEW.model)
        ON CONFLICT (bucket, workspace_id, provider, model) DO UPDATE SET queued_at = now();
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ref_capture AFTER INSERT OR UPDATE OR DELETE ON ev_r
    FOR EACH ROW EXECUTE FUNCTION ref_capture();

CREATE TABLE ref_daily (
    bucket timestamptz NOT NULL, workspace_id int NOT NULL, provider text NOT NULL, model text NOT NULL,
    input_tokens bigint, output_tokens bigint, cost numeric, events bigint,
    PRIMARY KEY (bucket, workspace_id, provider, model));

-- ref_refresh(): recompute the queued keys; returns the rows written.
CREATE FUNCTION ref_refresh() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(4242);
    CREATE TEMP TABLE ref_batch ON COMMIT DROP AS SELECT bucket, workspace_id, provider, model FROM ref_dirty LIMIT 0;
    WITH claimed AS (DELETE FROM ref_dirty RETURNING bucket, workspace_id, provider, model)
    INSERT INTO ref_batch SELECT * FROM claimed;
    ANALYZE ref_batch;
    DELETE FROM ref_daily d USING ref_batch b
    WHERE (d.bucket, d.workspace_id, d.provider, d.model) = (b.bucket, b.workspace_id, b.provider, b.model);
    INSERT INTO ref_daily
    SELECT date_trunc('day', e.at, 'UTC'), e.workspace_id, e.provider, e.model,
           sum(e.input_tokens), sum(e.output_tokens), sum(e.cost), count(*)
    FROM ev_r e
    JOIN ref_batch b ON date_trunc('day', e.at, 'UTC') = b.bucket AND e.workspace_id = b.workspace_id
                    AND e.provider = b.provider AND e.model = b.model
    WHERE e.at >= (SELECT min(bucket) FROM ref_batch) AND e.at < (SELECT max(bucket) FROM ref_batch) + interval '1 day'
    GROUP BY 1, 2, 3, 4;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
