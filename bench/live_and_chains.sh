#!/usr/bin/env bash
# bench/live_and_chains.sh [--rows N] [--runs R] [--out DIR]: the cost of
# exact live reads and of the top of a chain of rollups.
#
# N usage events (default 1M) over 90 days, 200 workspaces, an index on the
# time column; a daily rollup by workspace and model, refreshed.
#   live:  1,000 rows updated at random over the 90 days and not refreshed
#          (about 1,000 pending keys); two 30-day dashboard queries (tokens per
#          workspace; one workspace's daily chart) on the rollup table, on its
#          _live view (exact), and on the raw table.  Goals: _live <= 5x the
#          rollup, >= 10x faster than raw.
#   chain: hourly -> daily -> monthly rollups of the same events; one more day
#          of events (N/90 rows) is inserted and the hourly and daily levels
#          refreshed; then the monthly level's refresh against recomputing
#          that month from the raw rows (the GROUP BY a monthly rollup of the
#          raw table, or a hand-written job, would run).
# Server-side times, median of R runs (default 5) in one warm session.  Writes
# DIR/live_and_chains.md (default bench/results) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
export PATH=$PG_BIN:$PATH

ROWS=1000000
RUNS=5
OUT=bench/results
while [ $# -gt 0 ]; do
    case $1 in
        --rows) ROWS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "usage: bench/live_and_chains.sh [--rows N] [--runs R] [--out DIR]" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"
DIR=$(mktemp -d /tmp/memoria-livebench.XXXXXX)
PORT=${MEMORIA_BENCH_PORT:-54342}
trap 'stop_cluster "$DIR"' EXIT
start_cluster "$DIR" "$PORT" "memoria.enabled = off" "shared_buffers = '1GB'" "work_mem = '64MB'" \
    "max_wal_size = '8GB'" "jit = off" "autovacuum = off"
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "== loading $ROWS rows" >&2
psql -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION memoria;
CREATE TABLE ev (id bigint PRIMARY KEY, at timestamptz NOT NULL, ws int NOT NULL, model text NOT NULL, tokens int NOT NULL);
CREATE INDEX ON ev (at);
INSERT INTO ev SELECT g, timestamptz '2026-04-01' - random() * interval '90 days', (random() * 199)::int,
                      (ARRAY['small', 'large', 'huge'])[1 + g % 3], (random() * 4000)::int
FROM generate_series(1, $ROWS) g ORDER BY 2;  -- stored in time order, as an append-mostly table is
SELECT NULL FROM memoria.create_rollup('ev_daily', 'ev', 'at', ARRAY['ws', 'model'],
                                       ARRAY['sum(tokens)::bigint AS tokens', 'count(*) AS n']);
SELECT NULL FROM memoria.create_rollup('ev_hourly', 'ev', 'at', ARRAY['ws', 'model'],
                                       ARRAY['sum(tokens)::bigint AS tokens', 'count(*) AS n'], bucket => '1 hour');
SELECT NULL FROM memoria.create_rollup('ev_day_of_hours', 'memoria_rollup.ev_hourly', 'bucket', ARRAY['ws', 'model'],
                                       ARRAY['sum(tokens)::bigint AS tokens', 'sum(n)::bigint AS n']);
SELECT NULL FROM memoria.create_rollup('ev_monthly', 'memoria_rollup.ev_day_of_hours', 'bucket', ARRAY['ws', 'model'],
                                       ARRAY['sum(tokens)::bigint AS tokens', 'sum(n)::bigint AS n'], bucket => '1 month');
SELECT count(*) FROM memoria.refresh_window('ev_daily', '-infinity', 'infinity');
SELECT count(*) FROM memoria.refresh_window('ev_hourly', '-infinity', 'infinity');
SELECT count(*) FROM memoria.refresh_window('ev_day_of_hours', '-infinity', 'infinity');
SELECT count(*) FROM memoria.refresh_window('ev_monthly', '-infinity', 'infinity');
VACUUM ANALYZE;
CREATE FUNCTION ms(sql text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); r record;
BEGIN
    FOR r IN EXECUTE sql LOOP END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END \$\$;
SQL

# ---- live reads --------------------------------------------------------------
dash="SELECT ws, sum(tokens) FROM %s WHERE bucket >= timestamptz '2026-03-02' GROUP BY ws"
raw="SELECT ws, sum(tokens) FROM ev WHERE at >= timestamptz '2026-03-02' GROUP BY ws"
# One workspace's daily chart (the dashboard of one tenant).
dash_ws="SELECT bucket, sum(tokens) FROM %s WHERE ws = 42 AND bucket >= timestamptz '2026-03-02' GROUP BY bucket"
raw_ws="SELECT date_trunc('day', at, 'UTC'), sum(tokens) FROM ev WHERE ws = 42 AND at >= timestamptz '2026-03-02' GROUP BY 1"
# In one session, after a first run that warms its caches (a new backend's
# first query loads the catalog: milliseconds that would swamp a rollup read).
times() { q "SELECT ms(\$x\$$1\$x\$) FROM generate_series(0, $RUNS)" | tail -n +2 | median; }
t_rollup=$(times "$(printf "$dash" memoria_rollup.ev_daily)")
t_raw=$(times "$raw")
t_rollup_ws=$(times "$(printf "$dash_ws" memoria_rollup.ev_daily)")
t_raw_ws=$(times "$raw_ws")
# Recent: 1,000 rows written into the newest two days (what a dashboard
# refreshed every few seconds sees between two refreshes).
q "INSERT INTO ev SELECT 10 * $ROWS + g, timestamptz '2026-04-01' - random() * interval '2 days', (random() * 199)::int,
                         (ARRAY['small', 'large', 'huge'])[1 + g % 3], (random() * 4000)::int FROM generate_series(1, 1000) g"
keys_recent=$(q "SELECT pending_keys FROM memoria.status WHERE rollup = 'ev_daily'")
t_live_recent=$(times "$(printf "$dash" memoria_rollup.ev_daily_live)")
t_live_ws_recent=$(times "$(printf "$dash_ws" memoria_rollup.ev_daily_live)")
q "SELECT count(*) FROM memoria.refresh('ev_daily')"
# Scattered: 1,000 corrections at random over the 90 days (every bucket of
# the 30 days read has pending keys: the whole 30 days are recomputed).
q "UPDATE ev SET tokens = tokens + 1 WHERE id IN (SELECT (random() * ($ROWS - 1))::int + 1 FROM generate_series(1, 1000))"
keys=$(q "SELECT pending_keys FROM memoria.status WHERE rollup = 'ev_daily'")
t_live=$(times "$(printf "$dash" memoria_rollup.ev_daily_live)")
t_live_ws=$(times "$(printf "$dash_ws" memoria_rollup.ev_daily_live)")
exact=$(q "SELECT count(*) FROM ((SELECT * FROM memoria_rollup.ev_daily_live EXCEPT ALL
            SELECT memoria.bucket(at, '1 day', 'UTC'), ws, model, sum(tokens)::bigint, count(*) FROM ev GROUP BY 1, 2, 3)
           UNION ALL (SELECT memoria.bucket(at, '1 day', 'UTC'), ws, model, sum(tokens)::bigint, count(*) FROM ev GROUP BY 1, 2, 3
            EXCEPT ALL SELECT * FROM memoria_rollup.ev_daily_live)) d")
[ "$exact" = 0 ] || { echo "ev_daily_live differs from a fresh GROUP BY ($exact rows)" >&2; exit 1; }

# ---- chain -------------------------------------------------------------------
q "SELECT count(*) FROM memoria.refresh()"
newest=$(q "SELECT max(at) FROM ev")
chain=() month=()
for run in $(seq 1 "$RUNS"); do
    q "INSERT INTO ev SELECT $ROWS * (1 + $run) + g, timestamptz '$newest' - random() * interval '1 day', (random() * 199)::int,
                             (ARRAY['small', 'large', 'huge'])[1 + g % 3], (random() * 4000)::int
       FROM generate_series(1, $ROWS / 90) g"
    q "SELECT count(*) FROM memoria.refresh('ev_hourly')"
    q "SELECT count(*) FROM memoria.refresh('ev_day_of_hours')"
    chain+=("$(q "SELECT extract(epoch FROM duration) * 1000 FROM memoria.refresh('ev_monthly')")")
    month+=("$(q "SELECT ms(\$x\$SELECT date_trunc('month', at, 'UTC'), ws, model, sum(tokens), count(*) FROM ev
                  WHERE at >= date_trunc('month', timestamptz '$newest' - interval '1 day', 'UTC') GROUP BY 1, 2, 3\$x\$)")")
done
t_chain=$(printf '%s\n' "${chain[@]}" | median)
t_month=$(printf '%s\n' "${month[@]}" | median)
[ "$(q "SELECT count(*) FROM memoria.verify('ev_monthly')")" = 0 ] || { echo "ev_monthly differs" >&2; exit 1; }

REPORT=$DIR/live_and_chains.md
{
    echo "# Live reads and chains ($ROWS rows, 90 days, 200 workspaces)"
    echo
    echo "Generated by \`bench/live_and_chains.sh\` on $(date -u +%Y-%m-%d); server-side ms, median of $RUNS runs."
    echo
    echo "| scenario | ms | ratio | goal |"
    echo "| --- | --- | --- | --- |"
    awk -v r="$t_rollup" -v l="$t_live" -v w="$t_raw" -v k="$keys" -v lr="$t_live_recent" -v kr="$keys_recent" 'BEGIN {
        printf "| 30-day dashboard on the rollup table | %.1f | 1 | |\n", r;
        printf "| the same on the raw table | %.1f | %.1f x the rollup | |\n", w, w / r;
        printf "| the same on its _live view, %d keys pending in the newest two days | %.1f | %.1f x the rollup, %.1f x faster than raw | <= 5, >= 10 |\n", kr, lr, lr / r, w / lr;
        printf "| the same on its _live view, %d keys pending scattered over 90 days | %.1f | %.1f x the rollup, %.1f x faster than raw | <= 5, >= 10 |\n", k, l, l / r, w / l }'
    awk -v r="$t_rollup_ws" -v l="$t_live_ws" -v w="$t_raw_ws" -v k="$keys" -v lr="$t_live_ws_recent" -v kr="$keys_recent" 'BEGIN {
        printf "| one workspace'"'"'s 30-day daily chart on the rollup table | %.1f | 1 | |\n", r;
        printf "| the same on the raw table | %.1f | %.1f x the rollup | |\n", w, w / r;
        printf "| the same on its _live view, %d keys pending in the newest two days | %.1f | %.1f x the rollup, %.1f x faster than raw | <= 5, >= 10 |\n", kr, lr, lr / r, w / lr;
        printf "| the same on its _live view, %d keys pending scattered over 90 days | %.1f | %.1f x the rollup, %.1f x faster than raw | <= 5, >= 10 |\n", k, l, l / r, w / l }'
    awk -v c="$t_chain" -v m="$t_month" 'BEGIN {
        printf "| monthly level of hourly -> daily -> monthly, after a day of rows | %.1f | %.3f x the raw month | |\n", c, c / m;
        printf "| recomputing that month from raw rows | %.1f | 1 | |\n", m }'
} > "$REPORT"
cp "$REPORT" "$OUT/live_and_chains.md"
cat "$REPORT"
