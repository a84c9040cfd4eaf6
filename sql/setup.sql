-- setup: install the extension and a usage table shaped like real data.
CREATE EXTENSION memoria;
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'memoria';
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'memoria%' ORDER BY 1;

CREATE TABLE task_usage (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    workspace_id  int NOT NULL,
    provider      text NOT NULL,
    model         text,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL
);
CREATE INDEX ON task_usage (created_at);
-- Deterministic sample: 30 days of 2026-03, 5 workspaces, 2 providers, 3 models.
INSERT INTO task_usage (created_at, workspace_id, provider, model, input_tokens, output_tokens)
SELECT timestamptz '2026-03-01 00:00+00' + (g * 7919 % 43200) * interval '1 minute',
       g % 5, CASE WHEN g % 2 = 0 THEN 'openai' ELSE 'anthropic' END,
       CASE g % 3 WHEN 0 THEN 'small' WHEN 1 THEN 'large' ELSE NULL END,
       g % 1000, g % 100
FROM generate_series(1, 5000) g;
SELECT count(*), min(created_at) >= '2026-03-01 00:00+00' AS starts_in_march FROM task_usage;
