-- bench/schema.sql: the tables every scenario uses.  :rows is the scale.
--   ev_plain   no rollup at all (the write baseline)
--   ev_m       a memoria rollup (trigger mode), plus a materialized view
--   ev_r       the hand-written reference design (bench/reference.sql)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS memoria;
CREATE SCHEMA bench;

-- Usage events: 90 days, 200 workspaces, 3 providers x 2 models each.
CREATE FUNCTION bench.make_events(n bigint, days int DEFAULT 90, newest timestamptz DEFAULT '2026-04-01')
RETURNS TABLE (at timestamptz, workspace_id int, provider text, model text,
               input_tokens int, output_tokens int, cost numeric(12, 6))
LANGUAGE sql AS $$
    SELECT newest - random() * make_interval(days => days),
           (random() * 199)::int,
           (ARRAY['openai', 'anthropic', 'google'])[p],
           (ARRAY['openai', 'anthropic', 'google'])[p] || CASE WHEN random() < 0.7 THEN '-small' ELSE '-large' END,
           (random() * 4000)::int, (random() * 1000)::int, round((random() * 0.05)::numeric, 6)
    FROM generate_series(1, n) g, LATERAL (SELECT 1 + floor(random() * 3)::int + 0 * g AS p) p  -- per row
$$;

CREATE TABLE ev_plain (
    id bigserial PRIMARY KEY, at timestamptz NOT NULL, workspace_id int NOT NULL, provider text NOT NULL,
    model text NOT NULL, input_tokens int NOT NULL, output_tokens int NOT NULL, cost numeric(12, 6) NOT NULL);
CREATE INDEX ON ev_plain (at);
CREATE TABLE ev_m (LIKE ev_plain INCLUDING ALL);
CREATE TABLE ev_r (LIKE ev_plain INCLUDING ALL);

-- The aggregate every design maintains.
SELECT NULL FROM memoria.create_rollup('bench_daily', 'ev_m', 'at', ARRAY['workspace_id', 'provider', 'model'],
    ARRAY['sum(input_tokens)::bigint AS input_tokens', 'sum(output_tokens)::bigint AS output_tokens',
          'sum(cost) AS cost', 'count(*) AS events']);

-- ms(sql): server-side milliseconds of one statement (reads only: a write's
-- commit, where memoria flushes its keys, happens after it returns).
CREATE FUNCTION bench.ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
