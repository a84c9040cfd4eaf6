#!/usr/bin/env bash
# bench/run.sh [--scale N] [--out DIR]: memoria's benchmarks (make bench).
#
# Starts a throwaway PostgreSQL 15 cluster and measures memoria against
# baselines taken in the same run, on the same data (machines are noisy:
# the ratios are the result, absolute times are context):
#   1. write overhead: no rollup vs memoria vs the hand-written reference
#      (bench/reference.sql): INSERT ... SELECT, 1000-row INSERTs, single-row
#      INSERTs at 1 and 4 clients, UPDATE of 1%, COPY; backend memory in COPY
#   2. (pg_ivm is measured only if installed; it is not packaged by Debian)
#   3. refresh after 0.1%, 1%, 10% churn scattered over 90 days, and 1% within
#      the newest two days, vs the strongest lower bound (each dirty bucket
#      read by one range scan with the bucket as a constant, aggregating only
#      the dirty keys' rows, upserted as a hand-written per-bucket refresh
#      would), a GROUP BY of exactly the dirty keys' rows in one statement,
#      REFRESH MATERIALIZED VIEW, the reference; then again with indexes on
#      the dimension columns (as foreign keys usually have)
#   4. full build: memoria.backfill vs INSERT ... SELECT ... GROUP BY
#   5. no-op refresh (server time); 100 x (insert 10k rows + refresh), with
#      the additive path (additive.hpp) and without
#   6. read path: a 30-day dashboard query, rollup vs raw GROUP BY
# --scale N: N million source rows (default 1, about 8 minutes on 2 cores).
# --no-reference: leave out the slow PL/pgSQL reference (for large scales).
# BENCH_SKIP=rows1000,single,stream,stream_off leaves out those scenarios
# (1000-row INSERTs, single-row INSERTs, the streams, the stream without the
# additive path): the ones whose size does not follow --scale.
# Writes DIR/results.md, DIR/results.tsv and DIR/*.png (default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
export PATH=$PG_BIN:$PATH

SCALE=1
OUT=bench/results
REFERENCE=1
while [ $# -gt 0 ]; do
    case $1 in
        --scale) SCALE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-reference) REFERENCE=0; shift ;;
        *) echo "usage: bench/run.sh [--scale N] [--out DIR] [--no-reference]" >&2; exit 2 ;;
    esac
done
ROWS=${BENCH_ROWS:-$((SCALE * 1000000))}  # (BENCH_ROWS: a quick check of the script)
PACKAGES="$PACKAGES gnuplot-nox"   # pgbench comes with postgresql-15
install_packages
build_and_install
mkdir -p "$OUT"

DIR=$(mktemp -d /tmp/memoria-bench.XXXXXX)
PORT=${MEMORIA_BENCH_PORT:-54340}
trap 'stop_cluster "$DIR"' EXIT
start_cluster "$DIR" "$PORT" "memoria.enabled = off" "shared_buffers = '2GB'" "work_mem = '64MB'" \
    "max_wal_size = '16GB'" "checkpoint_timeout = '30min'" "jit = off"
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
RESULTS=$DIR/results.tsv
: > "$RESULTS"

# ---- helpers ---------------------------------------------------------------
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
# tm SQL: client-side milliseconds of one autocommit statement (includes the
# commit, where memoria writes its dirty keys).
tm() { psql -X -q -v ON_ERROR_STOP=1 -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
now_ms() { date +%s%3N; }
say() { printf '== %s\n' "$*" >&2; }
# record KIND SCENARIO BASELINE BASE MEMORIA TARGET: KIND tput compares
# throughput (ratio = baseline time / memoria time, higher is better), KIND
# time compares cost (ratio = memoria / baseline, lower is better).
record() {
    [ "$REFERENCE" = 0 ] && [ "$3" = "reference (PL/pgSQL)" ] && return
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"
}
# skip SCENARIO: whether BENCH_SKIP names it.
skip() { [[ ",${BENCH_SKIP:-}," == *",$1,"* ]]; }
# ref COMMAND...: run it for the reference design only when it is measured.
ref() { if [ "$REFERENCE" = 1 ]; then "$@"; fi; }
TABLES="ev_plain ev_m ev_r"
[ "$REFERENCE" = 0 ] && TABLES="ev_plain ev_m"

COLS="at, workspace_id, provider, model, input_tokens, output_tokens, cost"
psql -X -q -v ON_ERROR_STOP=1 -f bench/schema.sql
psql -X -q -v ON_ERROR_STOP=1 -f bench/reference.sql
LOG=$(q "SELECT dirty_log::regclass FROM memoria.rollups WHERE name = 'bench_daily'")
DELTAS=$(q "SELECT delta_log::regclass FROM memoria.rollups WHERE name = 'bench_daily'")
HAVE_IVM=$(q "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_ivm'")

clear_all() {
    q "TRUNCATE ev_plain, ev_m, ev_r, ref_dirty, ref_daily"
    # (Only memoria writes its rollup table: a refresh of the empty source empties it.)
    q "SELECT count(*) FROM memoria.refresh_window('bench_daily', '-infinity', 'infinity')" >/dev/null
    q "TRUNCATE $LOG, $DELTAS"
}
# reload: the same ROWS rows in all three tables, every rollup built.  Rows
# are stored in time order, as in an append-only event table.
reload() {
    clear_all
    q "INSERT INTO ev_plain ($COLS) SELECT * FROM bench.make_events($ROWS) ORDER BY 1"
    q "INSERT INTO ev_m SELECT * FROM ev_plain ORDER BY id"
    ref q "INSERT INTO ev_r SELECT * FROM ev_plain ORDER BY id"
    q "TRUNCATE $LOG, $DELTAS"
    q "SELECT count(*) FROM memoria.refresh_window('bench_daily', '-infinity', 'infinity')" >/dev/null
    ref q "SELECT ref_refresh()" >/dev/null
    q "VACUUM ANALYZE ev_plain, ev_m, ev_r, ref_daily, memoria_rollup.bench_daily"
}

# ---- 1. write overhead -----------------------------------------------------
say "1a. one INSERT ... SELECT of $ROWS rows"
declare -A T
for rep in 1 2 3; do
    for t in $TABLES; do
        [ "$t" = ev_r ] && [ "$rep" -gt 1 ] && continue   # slow; one run is enough for its ratio
        clear_all
        T[$t]+="$(tm "INSERT INTO $t ($COLS) SELECT * FROM bench.make_events($ROWS)") "
    done
done
for t in $TABLES; do T[$t]=$(echo ${T[$t]} | tr ' ' '\n' | median); done
record tput "INSERT ... SELECT of $ROWS rows" "no rollup" "${T[ev_plain]}" "${T[ev_m]}" ">= 0.90"
record tput "INSERT ... SELECT of $ROWS rows" "reference (PL/pgSQL)" "${T[ev_r]:-}" "${T[ev_m]}" "-"
echo "INSERT...SELECT ${T[ev_plain]} ${T[ev_m]} ${T[ev_r]:-}" > "$DIR/writes.raw"

if ! skip rows1000; then
say "1b. 1000-row INSERT statements"
STMTS=$((ROWS / 5000))
declare -A TPS
for t in $TABLES; do
    echo "INSERT INTO $t ($COLS) SELECT * FROM bench.make_events(1000);" > "$DIR/insert_1000_$t.sql"
done
for rep in 1 2 3; do
    for t in $TABLES; do
        tps=$(pgbench -n -c 1 -t "$STMTS" -f "$DIR/insert_1000_$t.sql" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        TPS[$t]+="$(awk -v t="$tps" 'BEGIN {print 1000 / t}') "    # ms per statement
    done
done
for t in $TABLES; do TPS[$t]=$(echo ${TPS[$t]} | tr ' ' '\n' | median); done
record tput "1000-row INSERTs ($STMTS statements)" "no rollup" "${TPS[ev_plain]}" "${TPS[ev_m]}" ">= 0.90"
record tput "1000-row INSERTs ($STMTS statements)" "reference (PL/pgSQL)" "${TPS[ev_r]:-}" "${TPS[ev_m]}" "-"
echo "1000-row ${TPS[ev_plain]} ${TPS[ev_m]} ${TPS[ev_r]:-}" >> "$DIR/writes.raw"
fi

for clients in 1 4; do
    skip single && continue
    say "1c. single-row INSERTs, $clients client(s)"
    declare -A ONE=()
    for t in $TABLES; do
        cat > "$DIR/insert_1_$t.sql" <<EOF
\\set ws random(0, 199)
INSERT INTO $t ($COLS) VALUES (now() - random() * interval '90 days', :ws, 'openai', 'openai-small', 100, 50, 0.01);
EOF
    done
    for rep in 1 2 3; do
        for t in $TABLES; do
            tps=$(pgbench -n -c "$clients" -j "$clients" -T 6 -f "$DIR/insert_1_$t.sql" 2>/dev/null \
                  | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            ONE[$t]+="$(awk -v t="$tps" 'BEGIN {print 1000 / t}') "
        done
    done
    for t in $TABLES; do ONE[$t]=$(echo ${ONE[$t]} | tr ' ' '\n' | median); done
    target=">= 0.85"; [ "$clients" = 1 ] && target="-"
    record tput "single-row INSERTs, $clients client(s)" "no rollup" "${ONE[ev_plain]}" "${ONE[ev_m]}" "$target"
    record tput "single-row INSERTs, $clients client(s)" "reference (PL/pgSQL)" "${ONE[ev_r]:-}" "${ONE[ev_m]}" "-"
    echo "1-row-x$clients ${ONE[ev_plain]} ${ONE[ev_m]} ${ONE[ev_r]:-}" >> "$DIR/writes.raw"
done

say "reloading $ROWS rows into every table"
reload
say "1d. UPDATE of 1% of the rows"
declare -A UPD=()
for rep in 1 2 3; do
    for t in $TABLES; do
        UPD[$t]+="$(tm "UPDATE $t SET input_tokens = input_tokens + 1 WHERE id % 100 = $rep") "
    done
done
for t in $TABLES; do UPD[$t]=$(echo ${UPD[$t]} | tr ' ' '\n' | median); done
record tput "UPDATE of 1% of rows" "no rollup" "${UPD[ev_plain]}" "${UPD[ev_m]}" "-"
record tput "UPDATE of 1% of rows" "reference (PL/pgSQL)" "${UPD[ev_r]:-}" "${UPD[ev_m]}" "-"
echo "UPDATE-1% ${UPD[ev_plain]} ${UPD[ev_m]} ${UPD[ev_r]:-}" >> "$DIR/writes.raw"

say "1e. COPY of $ROWS rows, and the COPY backend's peak memory"
q "COPY (SELECT $COLS FROM ev_plain) TO '$DIR/events.copy'"
# copy_with_memory TABLE: COPY into TABLE, polling the backend's memory
# contexts into the server log; prints "ms peak_bytes".
copy_with_memory() {
    local t=$1 start pid peak
    start=$(now_ms)
    psql -X -q -v ON_ERROR_STOP=1 -c "SET application_name = 'bench_copy'" -c "COPY $t ($COLS) FROM '$DIR/events.copy'" &
    local bg=$!
    pid=""
    while kill -0 $bg 2>/dev/null; do
        [ -z "$pid" ] && pid=$(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'bench_copy'")
        [ -n "$pid" ] && q "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null 2>&1 || true
        sleep 0.2
    done
    wait $bg
    local ms=$(( $(now_ms) - start ))
    peak=$(grep -a "\[$pid\] LOG:  Grand total: " "$DIR/server.log" | sed 's/.*Grand total: \([0-9]*\) bytes.*/\1/' | sort -n | tail -1)
    echo "$ms ${peak:-0}"
}
declare -A CP=() MEM=()
for rep in 1 2; do
    for t in $TABLES; do
        [ "$t" = ev_r ] && [ "$rep" -gt 1 ] && continue
        q "TRUNCATE $t"; q "TRUNCATE $LOG, $DELTAS, ref_dirty"
        read -r ms peak < <(copy_with_memory "$t")
        CP[$t]+="$ms "
        MEM[$t]=$(( ${MEM[$t]:-0} > peak ? ${MEM[$t]:-0} : peak ))
    done
done
for t in $TABLES; do CP[$t]=$(echo ${CP[$t]} | tr ' ' '\n' | median); done
record tput "COPY of $ROWS rows" "no rollup" "${CP[ev_plain]}" "${CP[ev_m]}" ">= 0.90"
record tput "COPY of $ROWS rows" "reference (PL/pgSQL)" "${CP[ev_r]:-}" "${CP[ev_m]}" "-"
record mem "COPY backend peak memory (KiB)" "no rollup" "$((MEM[ev_plain] / 1024))" "$((MEM[ev_m] / 1024))" "+<= 16384"
echo "COPY ${CP[ev_plain]} ${CP[ev_m]} ${CP[ev_r]:-}" >> "$DIR/writes.raw"
[ "$HAVE_IVM" = 0 ] && say "2. pg_ivm is not installed: skipped"

# ---- 3. refresh after churn ------------------------------------------------
say "reloading"
reload
q "CREATE MATERIALIZED VIEW bench_mv AS SELECT date_trunc('day', at, 'UTC') AS bucket, workspace_id, provider, model,
   sum(input_tokens)::bigint AS input_tokens, sum(output_tokens)::bigint AS output_tokens, sum(cost) AS cost,
   count(*) AS events FROM ev_m GROUP BY 1, 2, 3, 4"
: > "$DIR/refresh.dat"
# The strongest lower bound of a refresh: each dirty bucket read by one
# range scan with the bucket as a constant, aggregating only the dirty keys'
# rows, upserted into a copy of the rollup as a hand-written per-bucket
# refresh would (bench.keys: the dirty keys).
q "CREATE TABLE bench.bound_rollup (LIKE memoria_rollup.bench_daily INCLUDING ALL)"
q "CREATE FUNCTION bench.strongest_bound() RETURNS void LANGUAGE plpgsql AS \$f\$
DECLARE d timestamptz;
BEGIN
    FOR d IN SELECT DISTINCT bucket FROM bench.keys ORDER BY 1 LOOP
        EXECUTE format(\$s\$
            INSERT INTO bench.bound_rollup
            SELECT %L::timestamptz, e.workspace_id, e.provider, e.model, sum(e.input_tokens), sum(e.output_tokens),
                   sum(e.cost), count(*)
            FROM ev_m e
            WHERE e.at >= %L AND e.at < %L
              AND (e.workspace_id, e.provider, e.model) IN
                  (SELECT k.workspace_id, k.provider, k.model FROM bench.keys k WHERE k.bucket = %L)
            GROUP BY 2, 3, 4
            ON CONFLICT (bucket, workspace_id, provider, model) DO UPDATE
            SET input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
                cost = EXCLUDED.cost, events = EXCLUDED.events\$s\$, d, d, d + interval '1 day', d);
    END LOOP;
END \$f\$"
# measure_refresh LABEL TARGET_SB TARGET_MV: the strongest bound, the dirty
# keys' GROUP BY, memoria.refresh, the reference and REFRESH MATERIALIZED
# VIEW after the churn just applied to ev_m and ev_r; prints "lb mem ref mv".
measure_refresh() {
    q "DROP TABLE IF EXISTS bench.keys"
    q "CREATE TABLE bench.keys AS SELECT DISTINCT * FROM $LOG"
    q "ANALYZE bench.keys"
    q "TRUNCATE bench.bound_rollup"
    q "INSERT INTO bench.bound_rollup SELECT * FROM memoria_rollup.bench_daily"
    q "VACUUM ANALYZE bench.bound_rollup"
    local keys lb="" sb="" mem ref mv lo hi
    keys=$(q "SELECT count(*) FROM bench.keys")
    # The dirty days as constants, so that the planner sees how much to read.
    lo=$(q "SELECT min(bucket) FROM bench.keys")
    hi=$(q "SELECT max(bucket) FROM bench.keys")
    for rep in 1 2 3; do
        lb+="$(q "SELECT bench.ms(\$q\$
            SELECT count(*) FROM (
                SELECT date_trunc('day', e.at, 'UTC'), e.workspace_id, e.provider, e.model,
                       sum(e.input_tokens), sum(e.output_tokens), sum(e.cost), count(*)
                FROM ev_m e JOIN bench.keys k
                  ON date_trunc('day', e.at, 'UTC') = k.bucket AND e.workspace_id = k.workspace_id
                 AND e.provider = k.provider AND e.model = k.model
                WHERE e.at >= '$lo' AND e.at < timestamptz '$hi' + interval '1 day'
                GROUP BY 1, 2, 3, 4) s \$q\$)") "
    done
    lb=$(echo $lb | tr ' ' '\n' | median)
    for rep in 1 2 3; do sb+="$(q "SELECT bench.ms('SELECT bench.strongest_bound()')") "; done
    sb=$(echo $sb | tr ' ' '\n' | median)
    mem=$(tm "SELECT count(*) FROM memoria.refresh('bench_daily')")
    ref=$(ref tm "SELECT ref_refresh()")
    mv=$(tm "REFRESH MATERIALIZED VIEW bench_mv")
    record time "$1 ($keys keys)" "strongest bound: per-bucket range scan of the dirty keys' rows + upsert" "$sb" "$mem" "$2"
    record time "$1 ($keys keys)" "GROUP BY of the dirty keys' rows (one statement)" "$lb" "$mem" "-"
    record time "$1 ($keys keys)" "REFRESH MATERIALIZED VIEW" "$mv" "$mem" "$3"
    record time "$1 ($keys keys)" "reference (PL/pgSQL)" "$ref" "$mem" "-"
    echo "$sb $mem ${ref:-0} $mv"
}
for churn in 0.001 0.01 0.1; do
    say "3. refresh after ${churn} churn"
    every=$(awk -v c="$churn" 'BEGIN {print int(1 / c + 0.5)}')
    q "UPDATE ev_m SET input_tokens = input_tokens + 1 WHERE id % $every = 7"
    ref q "UPDATE ev_r SET input_tokens = input_tokens + 1 WHERE id % $every = 7"
    lb_target="-"; mv_target="-"
    [ "$churn" = 0.01 ] && { lb_target="<= 1.3"; mv_target="<= 0.05"; }
    echo "$churn $(measure_refresh "refresh after ${churn} churn" "$lb_target" "$mv_target")" >> "$DIR/refresh.dat"
done
# Usage data is mostly corrected while it is fresh: the same 1% of rows, all
# within the newest two days (late events, re-priced calls).
say "3. refresh after 1% churn within the newest two days"
for t in $TABLES; do
    [ "$t" = ev_plain ] && continue
    q "UPDATE $t SET input_tokens = input_tokens + 1 WHERE id IN (
        SELECT id FROM $t WHERE at >= timestamptz '2026-04-01' - interval '2 days' ORDER BY id LIMIT $((ROWS / 100)))"
done
measure_refresh "refresh after 0.01 churn in the newest 2 days" "-" "-" > /dev/null
# A schema with indexes on its dimension columns (foreign keys usually
# have them): the planner may then probe them per key.
say "3. refresh after 1% churn, with indexes on workspace_id and model"
q "CREATE INDEX ev_m_ws ON ev_m (workspace_id)"
q "CREATE INDEX ev_m_model ON ev_m (model)"
q "VACUUM ANALYZE ev_m"
q "UPDATE ev_m SET input_tokens = input_tokens + 1 WHERE id % 100 = 11"
ref q "UPDATE ev_r SET input_tokens = input_tokens + 1 WHERE id % 100 = 11"
measure_refresh "refresh after 0.01 churn, dimension indexes" "<= 1.3" "-" > /dev/null
q "DROP INDEX ev_m_ws, ev_m_model"
ok=$(q "SELECT count(*) FROM memoria.verify('bench_daily')")
[ "$ok" = 0 ] || { echo "memoria.verify found $ok differences after the churn runs" >&2; exit 1; }

# ---- 4. full build ---------------------------------------------------------
say "4. full build"
q "CREATE TABLE bench.build_plain (LIKE memoria_rollup.bench_daily INCLUDING ALL)"
bp=""; bm=""
for rep in 1 2; do
    q "TRUNCATE bench.build_plain"
    bp+="$(tm "INSERT INTO bench.build_plain SELECT date_trunc('day', at, 'UTC'), workspace_id, provider, model,
              sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cost), count(*) FROM ev_m GROUP BY 1, 2, 3, 4") "
    q "SELECT memoria.drop_rollup('bench_build', drop_table => true) FROM memoria.rollups WHERE name = 'bench_build'" >/dev/null
    q "SELECT memoria.create_rollup('bench_build', 'ev_m', 'at', ARRAY['workspace_id', 'provider', 'model'],
        ARRAY['sum(input_tokens)::bigint AS input_tokens', 'sum(output_tokens)::bigint AS output_tokens',
              'sum(cost) AS cost', 'count(*) AS events'])" >/dev/null
    start=$(now_ms)
    psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CALL memoria.backfill('bench_build')"
    bm+="$(( $(now_ms) - start )) "
done
record time "full build of $ROWS rows" "INSERT ... SELECT ... GROUP BY" "$(echo $bp | tr ' ' '\n' | median)" \
    "$(echo $bm | tr ' ' '\n' | median)" "<= 1.10"
q "SELECT memoria.drop_rollup('bench_build', drop_table => true)" >/dev/null   # one rollup on ev_m again
q "VACUUM ANALYZE ev_m"

# ---- 5. steady state -------------------------------------------------------
say "5. no-op refresh and a stream of 100 x (insert 10k rows + refresh)"
noop=$(for i in $(seq 50); do echo "SELECT extract(epoch FROM duration) * 1000 FROM memoria.refresh('bench_daily');"; done \
       | psql -X -q -At | median)
refnoop=$(for i in $(seq 50); do echo "SELECT bench.ms('SELECT ref_refresh()');"; done | psql -X -q -At | median)
record time "no-op refresh (server time, ms)" "reference (PL/pgSQL)" "$refnoop" "$noop" "<= 2 ms"
stream() {  # stream TABLE REFRESH_SQL: ms for 100 x (insert 10k rows; refresh)
    local start
    start=$(now_ms)
    for i in $(seq 100); do
        echo "INSERT INTO $1 ($COLS) SELECT * FROM bench.make_events(10000, 2, now());"
        [ -n "$2" ] && echo "$2;"
    done | psql -X -q -v ON_ERROR_STOP=1 >/dev/null
    echo $(( $(now_ms) - start ))
}
if ! skip stream; then
sp=$(stream ev_plain "")
sm=$(stream ev_m "SELECT count(*) FROM memoria.refresh('bench_daily')")
sr=$(ref stream ev_r "SELECT ref_refresh()")
record time "100 x (insert 10k rows + refresh)" "inserts alone, no rollup" "$sp" "$sm" "<= 1.5"
if ! skip stream_off; then
    # Without the additive path every refresh recomputes the buckets it dirtied.
    q "ALTER DATABASE postgres SET memoria.additive_path = off"
    soff=$(stream ev_m "SELECT count(*) FROM memoria.refresh('bench_daily')")
    q "ALTER DATABASE postgres RESET memoria.additive_path"
    record time "100 x (insert 10k rows + refresh), additive path off" "inserts alone, no rollup" "$sp" "$soff" "-"
fi
record time "100 x (insert 10k rows + refresh)" "reference (PL/pgSQL)" "$sr" "$sm" "-"
ok=$(q "SELECT count(*) FROM memoria.verify('bench_daily')")
[ "$ok" = 0 ] || { echo "memoria.verify found $ok differences after the stream" >&2; exit 1; }
fi

# ---- 6. read path ----------------------------------------------------------
say "6. a 30-day dashboard query for one workspace"
q "VACUUM ANALYZE ev_m, memoria_rollup.bench_daily"
raw=$(for i in $(seq 5); do echo "SELECT bench.ms(\$q\$SELECT date_trunc('day', at, 'UTC'), sum(input_tokens), sum(output_tokens),
        sum(cost) FROM ev_m WHERE workspace_id = 42 AND at >= '2026-03-02' AND at < '2026-04-01' GROUP BY 1\$q\$);"; done \
      | psql -X -q -At | median)
rolled=$(for i in $(seq 5); do echo "SELECT bench.ms(\$q\$SELECT bucket, sum(input_tokens), sum(output_tokens), sum(cost)
        FROM memoria_rollup.bench_daily WHERE workspace_id = 42 AND bucket >= '2026-03-02' AND bucket < '2026-04-01'
        GROUP BY 1\$q\$);"; done | psql -X -q -At | median)
record time "30-day dashboard query, one workspace" "raw GROUP BY (index on at)" "$raw" "$rolled" "-"

# ---- report ----------------------------------------------------------------
say "writing $OUT/results.md and plots"
{
    echo "# memoria benchmark results"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); scale $SCALE ($ROWS source rows); $(nproc) cores;"
    echo "$(q 'SELECT version()' | cut -d, -f1); produced by \`make bench\` (bench/run.sh --scale $SCALE)."
    echo
    echo "Ratios compare measurements of the same run. *throughput* rows: memoria's"
    echo "throughput relative to the baseline (1.00 = as fast; higher is better)."
    echo "*cost* rows: memoria's time relative to the baseline (lower is better)."
    echo
    echo "| scenario | baseline | baseline | memoria | ratio | target | met |"
    echo "| --- | --- | ---: | ---: | ---: | --- | --- |"
    awk -F'\t' '
        function fmt(kind, v) { return kind == "mem" ? sprintf("%d KiB", v) : sprintf("%.1f ms", v) }
        {
            kind = $1; base = $4; mem = $5; target = $6
            if (kind == "tput") { ratio = (mem > 0) ? base / mem : 0; what = "throughput" }
            else { ratio = (base > 0) ? mem / base : 0; what = (kind == "mem") ? "memory" : "cost" }
            met = "-"
            if (target ~ /^>=/) { split(target, t, " "); met = (ratio >= t[2]) ? "yes" : "**no**" }
            else if (target ~ /^\+<=/) { split(target, t, " "); met = (mem - base <= t[2]) ? "yes" : "**no**"; target = "+" t[2] " KiB at most" }
            else if (target ~ /ms$/) { split(target, t, " "); met = (mem <= t[2]) ? "yes" : "**no**" }
            else if (target ~ /^<=/) { split(target, t, " "); met = (ratio <= t[2]) ? "yes" : "**no**" }
            printf "| %s | %s | %s | %s | %.2f %s | %s | %s |\n", $2, $3, fmt(kind, base), fmt(kind, mem), ratio, what, target, met
        }' "$RESULTS"
    echo
    echo "Setup: one throwaway cluster (fsync off, shared_buffers 2GB, jit off, memoria's worker off);"
    echo "every table has an index on \`at\`. Medians of 2-3 runs (the slow reference, one)."
    echo "The reference is bench/reference.sql: per-row PL/pgSQL trigger upserting a dirty-key"
    echo "queue with ON CONFLICT DO UPDATE, and a PL/pgSQL refresh of the queued keys."
    [ "$HAVE_IVM" = 0 ] && echo "pg_ivm is not installed on this machine (not packaged by Debian): not measured."
    echo
    echo "![write throughput](writes.png) ![refresh cost](refresh.png)"
} > "$OUT/results.md"
cp "$RESULTS" "$OUT/results.tsv"

# Plots: relative write throughput (no rollup = 1), refresh time vs churn.
awk '{printf "%s %.3f %.3f\n", $1, $2 / $3, ($4 > 0 ? $2 / $4 : 0)}' "$DIR/writes.raw" > "$DIR/writes.dat"
gnuplot <<EOF
set terminal png size 900,500
set output '$OUT/writes.png'
set title 'Write throughput relative to no rollup (1.0 = no overhead), $ROWS rows'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:1.2]
set ytics 0.1
set grid ytics
set xtics rotate by -20
plot '$DIR/writes.dat' using 2:xtic(1) title 'memoria', '' using 3 title 'reference (PL/pgSQL)'
set output '$OUT/refresh.png'
set title 'Refresh time after churn, $ROWS rows'
set style data linespoints
set logscale xy
set xlabel 'fraction of rows changed'
set ylabel 'ms'
set xtics auto rotate by 0
set yrange [*:*]
set ytics auto
plot '$DIR/refresh.dat' using 1:3 title 'memoria.refresh', '' using 1:2 title 'lower bound (GROUP BY of dirty keys)', \
     '' using 1:4 title 'reference (PL/pgSQL)', '' using 1:5 title 'REFRESH MATERIALIZED VIEW'
EOF
cat "$OUT/results.md"
