#!/usr/bin/env bash
# bench/build_10m.sh [--rows N]: the scenarios of `make bench` whose goals
# hold at 10M rows too, on their own (the full bench/run.sh --scale 10 takes
# over an hour on 2 cores): full build (memoria.backfill vs INSERT ... SELECT
# ... GROUP BY), INSERT ... SELECT of all rows (no rollup vs memoria), and a
# refresh after 1% scattered churn vs the strongest lower bound.  Uses the
# installed memoria (make install first).  Writes bench/results/build_10m.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
export PATH=$PG_BIN:$PATH
ROWS=10000000
[ "${1:-}" = --rows ] && ROWS=$2
OUT=bench/results/build_10m.md
DIR=$(mktemp -d /tmp/memoria-bench10.XXXXXX)
PORT=${MEMORIA_BENCH_PORT:-54341}
trap 'stop_cluster "$DIR"' EXIT
start_cluster "$DIR" "$PORT" "memoria.enabled = off" "shared_buffers = '2GB'" "work_mem = '64MB'" \
    "max_wal_size = '16GB'" "checkpoint_timeout = '30min'" "jit = off"
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
tm() { psql -X -q -v ON_ERROR_STOP=1 -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1; }
now_ms() { date +%s%3N; }
say() { printf '== %s\n' "$*" >&2; }
COLS="at, workspace_id, provider, model, input_tokens, output_tokens, cost"
MEASURES="ARRAY['sum(input_tokens)::bigint AS input_tokens', 'sum(output_tokens)::bigint AS output_tokens', 'sum(cost) AS cost', 'count(*) AS events']"
psql -X -q -v ON_ERROR_STOP=1 -f bench/schema.sql
q "SELECT memoria.drop_rollup('bench_daily', drop_table => true)" >/dev/null

say "INSERT ... SELECT of $ROWS rows: no rollup, then memoria"
q "CREATE TABLE bench.src AS SELECT * FROM bench.make_events($ROWS) ORDER BY 1"
ins_plain=$(tm "INSERT INTO ev_plain ($COLS) SELECT * FROM bench.src")
q "SELECT memoria.create_rollup('bench_daily', 'ev_m', 'at', ARRAY['workspace_id', 'provider', 'model'], $MEASURES)" >/dev/null
q "SELECT count(*) FROM memoria.refresh_window('bench_daily', '-infinity', 'infinity')" >/dev/null
ins_m=$(tm "INSERT INTO ev_m ($COLS) SELECT * FROM bench.src")
q "SELECT count(*) FROM memoria.refresh('bench_daily')" >/dev/null
q "VACUUM ANALYZE ev_m"

say "full build, twice each"
q "CREATE TABLE bench.build_plain (LIKE memoria_rollup.bench_daily INCLUDING ALL)"
bp=(); bm=()
for rep in 1 2; do
    q "TRUNCATE bench.build_plain"
    bp+=("$(tm "INSERT INTO bench.build_plain SELECT date_trunc('day', at, 'UTC'), workspace_id, provider, model,
                sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cost), count(*) FROM ev_m GROUP BY 1, 2, 3, 4")")
    q "SELECT memoria.drop_rollup('bench_build', drop_table => true) FROM memoria.rollups WHERE name = 'bench_build'" >/dev/null
    q "SELECT memoria.create_rollup('bench_build', 'ev_m', 'at', ARRAY['workspace_id', 'provider', 'model'], $MEASURES)" >/dev/null
    start=$(now_ms)
    psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CALL memoria.backfill('bench_build')"
    bm+=("$(( $(now_ms) - start ))")
done
q "SELECT memoria.drop_rollup('bench_build', drop_table => true)" >/dev/null

say "refresh after 1% churn vs the strongest bound"
q "UPDATE ev_m SET input_tokens = input_tokens + 1 WHERE id % 100 = 7"
LOG=$(q "SELECT dirty_log::regclass FROM memoria.rollups WHERE name = 'bench_daily'")
q "CREATE TABLE bench.keys AS SELECT DISTINCT * FROM $LOG"
q "CREATE TABLE bench.bound_rollup AS SELECT * FROM memoria_rollup.bench_daily"
q "ALTER TABLE bench.bound_rollup ADD PRIMARY KEY (bucket, workspace_id, provider, model)"
q "VACUUM ANALYZE bench.keys, bench.bound_rollup"
keys=$(q "SELECT count(*) FROM bench.keys")
sb=$(q "SELECT bench.ms(\$q\$ DO \$d\$ DECLARE d timestamptz; BEGIN
    FOR d IN SELECT DISTINCT bucket FROM bench.keys ORDER BY 1 LOOP
        EXECUTE format(\$s\$INSERT INTO bench.bound_rollup
            SELECT %L::timestamptz, e.workspace_id, e.provider, e.model, sum(e.input_tokens), sum(e.output_tokens),
                   sum(e.cost), count(*) FROM ev_m e
            WHERE e.at >= %L AND e.at < %L AND (e.workspace_id, e.provider, e.model) IN
                  (SELECT k.workspace_id, k.provider, k.model FROM bench.keys k WHERE k.bucket = %L)
            GROUP BY 2, 3, 4
            ON CONFLICT (bucket, workspace_id, provider, model) DO UPDATE SET input_tokens = EXCLUDED.input_tokens,
               output_tokens = EXCLUDED.output_tokens, cost = EXCLUDED.cost, events = EXCLUDED.events\$s\$,
            d, d, d + interval '1 day', d);
    END LOOP; END \$d\$ \$q\$)")
mem=$(tm "SELECT count(*) FROM memoria.refresh('bench_daily')")
ok=$(q "SELECT count(*) FROM memoria.verify('bench_daily')")
[ "$ok" = 0 ] || { echo "memoria.verify found $ok differences" >&2; exit 1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
{
    echo "# Full build, ingest and refresh at $ROWS rows"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores; produced by \`bash bench/build_10m.sh\`"
    echo "(same cluster settings as \`make bench\`: shared_buffers 2GB, work_mem 64MB, fsync off)."
    echo
    echo "| scenario | baseline | baseline ms | memoria ms | ratio | target |"
    echo "| --- | --- | ---: | ---: | ---: | --- |"
    for i in 0 1; do
        echo "| full build, run $((i + 1)) | INSERT ... SELECT ... GROUP BY | ${bp[$i]} | ${bm[$i]} | $(ratio "${bm[$i]}" "${bp[$i]}") × the time | <= 1.10 |"
    done
    echo "| INSERT ... SELECT of $ROWS rows | no rollup | $ins_plain | $ins_m | $(ratio "$ins_plain" "$ins_m") × the throughput | >= 0.90 |"
    echo "| refresh after 1% churn ($keys keys) | strongest bound | $sb | $mem | $(ratio "$mem" "$sb") × the time | <= 1.3 |"
} > "$OUT"
cat "$OUT"
