#!/usr/bin/env bash
# bench/citus.sh [--rows N] [--runs R] [--scale S] [--out DIR]: a rollup of a Citus
# distributed table (src/citus.hpp) on a coordinator and two workers, each a
# throwaway cluster on this machine.  Needs Citus (../shared/vendor/build-citus.sh).
#
#   1. write overhead: the same N-row load (default 1M) into two identical
#      distributed tables, one without a rollup and one with a daily rollup
#      (its shard rollups made, so every shard captures): one INSERT ... SELECT
#      through the coordinator, then 1000-row INSERTs with Citus' default
#      connection cache and with a connection per shard cached; throughput
#      ratio (no rollup / with rollup time, higher is better; goal >= 0.90);
#      and the INSERT ... SELECT into a third table whose shards have a
#      trigger that keeps a transition table and does nothing (the floor of
#      any capture by statement trigger);
#   2. refresh after 1% churn scattered over 30 days: memoria.refresh()
#      against the strongest bound, a pushed-down INSERT ... SELECT ... GROUP
#      BY ... ON CONFLICT of exactly the dirty keys' rows into a co-located
#      copy of the rollup table, the keys given for free, both tables
#      analyzed (ratio memoria /
#      bound, lower is better; goal <= 1.3); and a refresh with nothing to
#      do (the fan-out alone);
#   3. the partial mode (a rollup by model only): refresh after 1% churn and
#      after 100 changed rows, against the same kind of bound into a table on
#      the coordinator;
#   4. the same after 100 changed rows once the table holds --scale times as
#      many rows (default 10; 0 skips it) and an index on (ws, created_at):
#      the bound reads every row of the changed (day, model) buckets, the
#      partial mode each shard's rows of its changed (day, ws) keys, so the
#      fan-out's fixed cost weighs less.
# R runs (default 5) of each, alternating; medians.  Writes DIR/citus.md
# (default bench/results) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
export PATH=$PG_BIN:$PATH

ROWS=1000000
RUNS=5
SCALE=10
OUT=bench/results
while [ $# -gt 0 ]; do
    case $1 in
        --rows) ROWS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --scale) SCALE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "usage: bench/citus.sh [--rows N] [--runs R] [--scale S] [--out DIR]" >&2; exit 2 ;;
    esac
done
if [ ! -f "$($PG_BIN/pg_config --pkglibdir)/citus.so" ]; then
    echo "bench/citus.sh: Citus is not installed (see README, \"Citus\")" >&2
    exit 2
fi
mkdir -p "$OUT"
DIR=$(mktemp -d /tmp/memoria-citusbench.XXXXXX)
chmod 755 "$DIR"
PORT=${MEMORIA_BENCH_PORT:-54361}
trap 'for n in c w1 w2; do stop_cluster "$DIR/$n"; done' EXIT
i=0
for n in c w1 w2; do
    start_cluster "$DIR/$n" $((PORT + i)) "shared_preload_libraries = 'citus, memoria'" "memoria.enabled = off" \
        "shared_buffers = '512MB'" "work_mem = '64MB'" "max_wal_size = '8GB'" "jit = off" "autovacuum = off" \
        "max_prepared_transactions = 100" "citus.node_conninfo = 'sslmode=prefer'" "citus.local_hostname = '$DIR/$n'"
    psql -X -q -h "$DIR/$n" -p $((PORT + i)) -U postgres -d postgres -c "CREATE EXTENSION citus"
    i=$((i + 1))
done
export PGHOST=$DIR/c PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
# ms SQL: the server-side milliseconds of one statement (psql's \timing).
ms() { psql -X -q -v ON_ERROR_STOP=1 -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

q -c "SELECT citus_set_coordinator_host('$DIR/c', $PORT)" \
  -c "SELECT citus_add_node('$DIR/w1', $((PORT + 1)))" -c "SELECT citus_add_node('$DIR/w2', $((PORT + 2)))" >/dev/null
q >/dev/null <<SQL
CREATE EXTENSION memoria;
CREATE TABLE plain (id bigserial, created_at timestamptz NOT NULL, ws int NOT NULL, model text NOT NULL, tokens bigint NOT NULL);
CREATE TABLE rolled (LIKE plain INCLUDING ALL);
SELECT create_distributed_table('plain', 'ws', shard_count => 8);
SELECT create_distributed_table('rolled', 'ws', colocate_with => 'plain');
SELECT memoria.create_rollup('rolled_daily', 'rolled', 'created_at', ARRAY['ws', 'model'],
                             ARRAY['sum(tokens) AS tokens', 'count(*) AS n']);
-- The floor of any capture by statement trigger: the same table with a
-- trigger on every shard that keeps a transition table and does nothing.
CREATE TABLE floor (LIKE plain INCLUDING ALL);
SELECT create_distributed_table('floor', 'ws', colocate_with => 'plain');
CREATE FUNCTION public.bench_noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';  -- (Citus makes it on the workers)
SELECT run_command_on_placements('floor', 'CREATE TRIGGER bench_noop AFTER INSERT ON %s REFERENCING NEW TABLE AS inserted
                                           FOR EACH STATEMENT EXECUTE FUNCTION public.bench_noop()');
SQL
q -c "SELECT status FROM memoria.refresh('rolled_daily')" >/dev/null   # makes the shard rollups
[ "$(q -c "SELECT count(*) FROM run_command_on_placements('floor', 'SELECT count(*) FROM pg_trigger
                WHERE tgrelid = ''%s''::regclass AND tgname = ''bench_noop''') WHERE result = '1'")" = 8 ] \
    || { echo "bench/citus.sh: the floor table's shards lack their trigger" >&2; exit 1; }
load() {  # load TABLE ROWS: one INSERT ... SELECT of ROWS rows over 30 days
    echo "INSERT INTO $1 (created_at, ws, model, tokens)
          SELECT timestamptz '2026-11-01' + (random() * 30 * 86400) * interval '1 second', (random() * 199)::int,
                 'm' || (g % 4), g % 1000 FROM generate_series(1, $2) g"
}
batches() {  # batches TABLE CONNS: 100 INSERTs of 1000 rows, in one psql session
    echo "SET citus.max_cached_conns_per_worker = $2;"
    for b in $(seq 1 100); do load "$1" 1000; echo ";"; done
}

echo "== 1. write overhead ($ROWS rows)"
: > "$DIR/ins_plain"; : > "$DIR/ins_floor"; : > "$DIR/ins_rolled"; : > "$DIR/b_plain"; : > "$DIR/b_rolled"; : > "$DIR/c_plain"; : > "$DIR/c_rolled"
for run in $(seq 1 "$RUNS"); do
    q -c "TRUNCATE plain" -c "TRUNCATE rolled" -c "TRUNCATE floor" -c "SELECT status FROM memoria.refresh('rolled_daily')" >/dev/null
    ms "$(load plain "$ROWS")" >> "$DIR/ins_plain"
    ms "$(load floor "$ROWS")" >> "$DIR/ins_floor"
    ms "$(load rolled "$ROWS")" >> "$DIR/ins_rolled"
    # With Citus' default connection cache (one per worker: most shard
    # statements start a backend), then with one connection per shard cached.
    for conns in 1 8; do
        for t in plain rolled; do
            s=$(date +%s.%N); batches $t $conns | q >/dev/null; e=$(date +%s.%N)
            awk -v s="$s" -v e="$e" 'BEGIN {printf "%.1f\n", (e - s) * 1000}' >> "$DIR/$([ $conns = 1 ] && echo b || echo c)_$t"
        done
    done
    q -c "SELECT status FROM memoria.refresh('rolled_daily')" >/dev/null
done
ins_plain=$(median < "$DIR/ins_plain"); ins_rolled=$(median < "$DIR/ins_rolled"); ins_floor=$(median < "$DIR/ins_floor")
b_plain=$(median < "$DIR/b_plain"); b_rolled=$(median < "$DIR/b_rolled")
c_plain=$(median < "$DIR/c_plain"); c_rolled=$(median < "$DIR/c_rolled")
differences=$(q -c "SELECT count(*) FROM memoria.verify('rolled_daily')")

echo "== 2. refresh after 1% churn"
# The bound's table: a co-located copy of the rollup table, kept by hand.
q <<'SQL' >/dev/null
CREATE TABLE bound (LIKE memoria_rollup.rolled_daily INCLUDING ALL);
SELECT create_distributed_table('bound', 'ws', colocate_with => 'rolled');
INSERT INTO bound SELECT * FROM memoria_rollup.rolled_daily;
CREATE TABLE dirty (bucket timestamptz, ws int, model text);
SELECT create_distributed_table('dirty', 'ws', colocate_with => 'rolled');
SQL
: > "$DIR/r_memoria"; : > "$DIR/r_bound"; : > "$DIR/r_keys"
for run in $(seq 1 "$RUNS"); do
    k=$((run * 7 % 100))
    q -c "TRUNCATE dirty" -c "INSERT INTO dirty SELECT DISTINCT memoria.bucket(created_at, '1 day', 'UTC'), ws, model
                              FROM rolled WHERE id % 100 = $k" \
      -c "UPDATE rolled SET tokens = tokens + 1 WHERE id % 100 = $k" -c "ANALYZE rolled" -c "ANALYZE dirty" >/dev/null
    q -c "SELECT count(*) FROM dirty" >> "$DIR/r_keys"
    ms "SELECT * FROM memoria.refresh('rolled_daily')" >> "$DIR/r_memoria"
    ms "INSERT INTO bound
        SELECT d.bucket, r.ws, r.model, sum(r.tokens), count(*)
        FROM rolled r JOIN dirty d ON d.ws = r.ws AND d.model = r.model
         AND d.bucket = memoria.bucket(r.created_at, '1 day', 'UTC')
        GROUP BY d.bucket, r.ws, r.model
        ON CONFLICT (bucket, ws, model) DO UPDATE SET tokens = excluded.tokens, n = excluded.n" >> "$DIR/r_bound"
done
r_memoria=$(median < "$DIR/r_memoria"); r_bound=$(median < "$DIR/r_bound"); keys=$(median < "$DIR/r_keys")
# What a refresh with nothing to do costs: the fan-out to every shard group.
: > "$DIR/noop"
for run in $(seq 1 5); do ms "SELECT * FROM memoria.refresh('rolled_daily')" >> "$DIR/noop"; done
noop=$(median < "$DIR/noop")
bound_differences=$(q -c "SELECT count(*) FROM (SELECT * FROM bound EXCEPT SELECT * FROM memoria_rollup.rolled_daily) x")
differences2=$(q -c "SELECT count(*) FROM memoria.verify('rolled_daily')")

echo "== 3. the partial mode: a rollup by model only"
# Its bound: the same pushed-down INSERT ... SELECT ... GROUP BY ... ON
# CONFLICT of exactly the dirty (day, model) keys' rows, into a copy of its
# table on the coordinator, the keys given for free (a reference table).
q <<'SQL' >/dev/null
SELECT memoria.create_rollup('rolled_by_model', 'rolled', 'created_at', ARRAY['model'],
                             ARRAY['sum(tokens) AS tokens', 'count(*) AS n']);
SQL
ms "SELECT * FROM memoria.refresh('rolled_by_model')" > "$DIR/p_fill"
q <<'SQL' >/dev/null
CREATE TABLE bound_model (LIKE memoria_rollup.rolled_by_model);
ALTER TABLE bound_model ADD UNIQUE (bucket, model);
INSERT INTO bound_model SELECT * FROM memoria_rollup.rolled_by_model;
CREATE TABLE dirty_model (bucket timestamptz, model text);
SELECT create_reference_table('dirty_model');
SQL
: > "$DIR/p_memoria"; : > "$DIR/p_bound"; : > "$DIR/p_keys"; : > "$DIR/q_memoria"; : > "$DIR/q_bound"
for run in $(seq 1 "$RUNS"); do
    # 1% churn (every day and model), then 100 rows (a few keys).
    for churn in 100 10000; do
        k=$((run * 13 % churn))
        q -c "TRUNCATE dirty_model" -c "INSERT INTO dirty_model SELECT DISTINCT memoria.bucket(created_at, '1 day', 'UTC'), model
                                    FROM rolled WHERE id % $churn = $k" \
          -c "UPDATE rolled SET tokens = tokens + 1 WHERE id % $churn = $k" -c "ANALYZE rolled" >/dev/null
        [ $churn = 100 ] && q -c "SELECT count(*) FROM dirty_model" >> "$DIR/p_keys"
        ms "SELECT * FROM memoria.refresh('rolled_by_model')" >> "$DIR/$([ $churn = 100 ] && echo p || echo q)_memoria"
        ms "INSERT INTO bound_model
            SELECT memoria.bucket(r.created_at, '1 day', 'UTC'), r.model, sum(r.tokens), count(*)
            FROM rolled r WHERE (memoria.bucket(r.created_at, '1 day', 'UTC'), r.model) IN (SELECT * FROM dirty_model)
            GROUP BY 1, 2
            ON CONFLICT (bucket, model) DO UPDATE SET tokens = excluded.tokens, n = excluded.n" \
            >> "$DIR/$([ $churn = 100 ] && echo p || echo q)_bound"
    done
done
p_fill=$(cat "$DIR/p_fill"); p_keys=$(median < "$DIR/p_keys")
p_memoria=$(median < "$DIR/p_memoria"); p_bound=$(median < "$DIR/p_bound")
q_memoria=$(median < "$DIR/q_memoria"); q_bound=$(median < "$DIR/q_bound")
: > "$DIR/p_noop"
for run in $(seq 1 5); do ms "SELECT * FROM memoria.refresh('rolled_by_model')" >> "$DIR/p_noop"; done
p_noop=$(median < "$DIR/p_noop")
p_differences=$(q -c "SELECT count(*) FROM memoria.verify('rolled_by_model')")
p_bound_differences=$(q -c "SELECT count(*) FROM (SELECT * FROM bound_model EXCEPT SELECT * FROM memoria_rollup.rolled_by_model) x")

if [ "$SCALE" -gt 1 ]; then
    echo "== 4. the partial mode, the table $SCALE times as large"
    big_rows=$(q -c "SELECT count(*) * $SCALE FROM rolled")
    # (And the index a multi-tenant usage table has: its tenant, then time.)
    q -c "$(load rolled $((big_rows - $(q -c "SELECT count(*) FROM rolled"))))" \
      -c "CREATE INDEX ON rolled (ws, created_at)" -c "ANALYZE rolled" >/dev/null
    q -c "SELECT count(*) FROM memoria.refresh('rolled_by_model')" -c "SELECT count(*) FROM memoria.refresh('rolled_daily')" \
      -c "TRUNCATE bound_model" -c "INSERT INTO bound_model SELECT * FROM memoria_rollup.rolled_by_model" >/dev/null
    : > "$DIR/s_memoria"; : > "$DIR/s_bound"
    for run in $(seq 1 "$RUNS"); do
        step=$((big_rows / 100)); k=$((run * 17 % step))
        q -c "TRUNCATE dirty_model" -c "INSERT INTO dirty_model SELECT DISTINCT memoria.bucket(created_at, '1 day', 'UTC'), model
                                    FROM rolled WHERE id % $step = $k" \
          -c "UPDATE rolled SET tokens = tokens + 1 WHERE id % $step = $k" >/dev/null
        ms "SELECT * FROM memoria.refresh('rolled_by_model')" >> "$DIR/s_memoria"
        ms "INSERT INTO bound_model
            SELECT memoria.bucket(r.created_at, '1 day', 'UTC'), r.model, sum(r.tokens), count(*)
            FROM rolled r WHERE (memoria.bucket(r.created_at, '1 day', 'UTC'), r.model) IN (SELECT * FROM dirty_model)
            GROUP BY 1, 2
            ON CONFLICT (bucket, model) DO UPDATE SET tokens = excluded.tokens, n = excluded.n" >> "$DIR/s_bound"
    done
    s_memoria=$(median < "$DIR/s_memoria"); s_bound=$(median < "$DIR/s_bound")
    s_differences=$(q -c "SELECT count(*) FROM memoria.verify('rolled_by_model')")
    s_bound_differences=$(q -c "SELECT count(*) FROM (SELECT * FROM bound_model EXCEPT SELECT * FROM memoria_rollup.rolled_by_model) x")
fi

cores=$(nproc)
{
    echo "# memoria on Citus: a coordinator and two workers on one machine ($cores cores)"
    echo
    echo "bench/citus.sh --rows $ROWS --runs $RUNS; medians of $RUNS runs; $(date -u +%Y-%m-%d)."
    echo "A distributed table of $ROWS usage events over 30 days, 200 workspaces, 4 models, 8 shards;"
    echo "a daily rollup grouped by (workspace, model), co-located. All three servers share the machine."
    echo
    echo "| measure | no rollup / bound | memoria | ratio | goal |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| INSERT ... SELECT of $ROWS rows (ms) | $ins_plain | $ins_rolled | $(ratio "$ins_plain" "$ins_rolled") throughput | >= 0.90 |"
    echo "| the same into a table whose shards have a no-op trigger with a transition table (ms) | $ins_plain | $ins_floor | $(ratio "$ins_plain" "$ins_floor") throughput | |"
    echo "| 100 INSERTs of 1000 rows (ms) | $b_plain | $b_rolled | $(ratio "$b_plain" "$b_rolled") throughput | >= 0.90 |"
    echo "| the same, citus.max_cached_conns_per_worker = 8 (ms) | $c_plain | $c_rolled | $(ratio "$c_plain" "$c_rolled") throughput | >= 0.90 |"
    echo "| refresh after 1% churn, $keys dirty keys (ms) | $r_bound | $r_memoria | $(ratio "$r_memoria" "$r_bound") x the bound | <= 1.3 |"
    echo
    echo "The three servers share the machine's cores, so the CPU the workers spend capturing is taken from"
    echo "the coordinator that feeds them; the no-op trigger's row is the floor of any capture by statement"
    echo "trigger here (PostgreSQL copying every inserted row into the transition table)."
    echo
    echo "A refresh with nothing to do (the fan-out to 8 shard groups on two workers): $noop ms."
    echo
    echo "verify() after the loads: $differences differences; after the churn: $differences2;"
    echo "the bound's table differs from the rollup in $bound_differences rows."
    echo
    echo "The partial mode: a daily rollup grouped by model only (4 models), its partial rows per shard"
    echo "combined into a table on the coordinator. Its first refresh (making the shard rollups and"
    echo "filling them): $p_fill ms."
    echo
    echo "| measure | bound | memoria | ratio |"
    echo "| --- | --- | --- | --- |"
    echo "| refresh after 1% churn, $p_keys dirty keys (ms) | $p_bound | $p_memoria | $(ratio "$p_memoria" "$p_bound") x the bound |"
    echo "| refresh after 100 rows changed (ms) | $q_bound | $q_memoria | $(ratio "$q_memoria" "$q_bound") x the bound |"
    echo
    echo "A refresh with nothing to do: $p_noop ms. verify() after the churn: $p_differences differences;"
    echo "the bound's table differs from the rollup in $p_bound_differences rows."
    if [ "$SCALE" -gt 1 ]; then
        echo
        echo "The same table grown to $big_rows rows ($SCALE times as large), with an index on (ws, created_at),"
        echo "100 rows changed:"
        echo
        echo "| measure | bound | memoria | ratio |"
        echo "| --- | --- | --- | --- |"
        echo "| refresh after 100 rows changed, $big_rows rows (ms) | $s_bound | $s_memoria | $(ratio "$s_memoria" "$s_bound") x the bound |"
        echo
        echo "verify(): $s_differences differences; the bound's table differs from the rollup in $s_bound_differences rows."
    fi
} | tee "$OUT/citus.md"
