#!/usr/bin/env bash
# bench/pool.sh [options]: the background worker pool under many databases.
#
# Starts a throwaway PostgreSQL 15 cluster (shared_preload_libraries =
# 'memoria') with --plain databases without memoria (created first, so they
# come first in pg_database), then --databases databases each with one rollup
# whose refresh_interval is --interval, and measures, with memoria.max_workers
# = --workers and memoria.naptime = --naptime:
#   baseline  memoria.enabled = off, no writes (--idle seconds)
#   warmup    memoria.enabled = on (reload) until every database was visited
#             (copies of the template are adopted on their first refresh),
#             then two refresh intervals to settle (not measured)
#   idle      no writes (--idle seconds)
#   busy      a trickle: one single-row INSERT into each database every
#             --write-period seconds, spread evenly, each round in a new
#             random order (--duration seconds)
#   drain     no writes, until every write is in its rollup (bounded)
# Every --sample seconds it records each database's memoria.status
# (watermark, last_refresh_at, refreshes, pending_keys), memoria.workers()
# (worker starts, databases running/waiting) and, from /proc, the CPU time of
# the postmaster, of the memoria launcher, of the exited children of the
# postmaster (= the memoria workers: nothing else exits during a phase:
# autovacuum is off and the benchmark's connections stay open) and of the
# machine.  A write's lag is the time from its commit until the first
# watermark at or after it (the rollup reflects every change committed before
# its watermark): the ideal, a pool that refreshes every database exactly
# every refresh_interval, gives lags uniform in [0, refresh_interval].  The
# gaps between a database's successive watermarks bound the lag whatever the
# writes' timing (a database is sampled at least twice per refresh_interval
# by default; a missed refresh would only lengthen a gap).
#
# Baselines of the same run: the ideal lag (refresh_interval) and worker
# start rate (databases / refresh_interval); the postmaster's and the
# launcher's CPU with memoria.enabled = off.  Writes DIR/pool.md (default
# bench/results) and prints it.  Benchmarks the installed memoria (sudo make
# install first); needs dblink (contrib, part of postgresql-15).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
export PATH=$PG_BIN:$PATH

NDB=200
NPLAIN=20
WORKERS=4
INTERVAL='10 seconds'
NAPTIME=1
DURATION=120
IDLE=60
WRITE_PERIOD=5
SAMPLE=5
OUT=bench/results
ARGS=""
for a in "$@"; do case $a in *[[:space:]]*) ARGS+=" '$a'" ;; *) ARGS+=" $a" ;; esac; done
usage() {
    echo "usage: bench/pool.sh [--databases N] [--plain N] [--workers N] [--interval INTERVAL] [--naptime S]" >&2
    echo "                     [--duration S] [--idle S] [--write-period S] [--sample S] [--out DIR]" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
        --databases) NDB=$2 ;;
        --plain) NPLAIN=$2 ;;
        --workers) WORKERS=$2 ;;
        --interval) INTERVAL=$2 ;;
        --naptime) NAPTIME=$2 ;;
        --duration) DURATION=$2 ;;
        --idle) IDLE=$2 ;;
        --write-period) WRITE_PERIOD=$2 ;;
        --sample) SAMPLE=$2 ;;
        --out) OUT=$2 ;;
        *) usage ;;
    esac
    shift 2
done
for v in "$NDB" "$NPLAIN" "$WORKERS" "$NAPTIME" "$DURATION" "$IDLE"; do
    [[ $v =~ ^[0-9]+$ ]] || usage
done
[[ $WRITE_PERIOD =~ ^[0-9.]+$ && $SAMPLE =~ ^[0-9.]+$ ]] || usage
[ "$NDB" -ge 1 ] || usage

install_packages
if [ ! -f "$($PG_BIN/pg_config --pkglibdir)/memoria.so" ] || [ ! -f "$($PG_BIN/pg_config --sharedir)/extension/dblink.control" ]; then
    echo "bench/pool.sh benchmarks the installed memoria: run sudo make install first (dblink comes with postgresql-15)" >&2
    exit 1
fi
mkdir -p "$OUT"
# What is measured: the build the server loads at its start.
SO=$($PG_BIN/pg_config --pkglibdir)/memoria.so
SO_MTIME=$(date -u -r "$SO" +%s)
BUILD="the installed memoria.so of $(date -u -d "@$SO_MTIME" '+%Y-%m-%d %H:%M:%S UTC')"
if git rev-parse --git-dir >/dev/null 2>&1; then
    BUILD="$BUILD (work tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src sql 2>/dev/null || echo ', src/ or sql/ modified'))"
fi
say() { printf '== %s\n' "$*" >&2; }
START=$(date +%s)

DIR=$(mktemp -d /tmp/memoria-pool.XXXXXX)
PORT=${MEMORIA_BENCH_PORT:-54341}
trap 'stop_cluster "$DIR"; rm -rf "$DIR"' EXIT
MAXCONN=$((NDB + NPLAIN + 30))
MAXWP=$((WORKERS + 12 > 16 ? WORKERS + 12 : 16))
say "cluster in $DIR: $NPLAIN databases without memoria, $NDB with one rollup each, $WORKERS workers"
start_cluster "$DIR" "$PORT" "shared_preload_libraries = 'memoria'" "memoria.enabled = off" \
    "memoria.max_workers = $WORKERS" "memoria.naptime = $NAPTIME" "max_worker_processes = $MAXWP" \
    "max_connections = $MAXCONN" "autovacuum = off" "jit = off"
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

IVSEC=$(q "SELECT extract(epoch FROM interval '$INTERVAL')::float8")
W=${#NDB}
dbname() { printf "m_%0${W}d" "$1"; }

# ---- databases -------------------------------------------------------------
say "creating $NPLAIN databases without memoria, a template, $NDB copies"
for i in $(seq "$NPLAIN"); do printf 'CREATE DATABASE plain_%02d;\n' "$i"; done | psql -X -q -v ON_ERROR_STOP=1
q "CREATE DATABASE m_template"
psql -X -q -v ON_ERROR_STOP=1 -d m_template >/dev/null <<EOF
CREATE EXTENSION memoria;
CREATE TABLE ev (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 at timestamptz NOT NULL DEFAULT now(), k int NOT NULL, v int NOT NULL);
SELECT memoria.create_rollup('ev_daily', 'ev', 'at', ARRAY['k'], ARRAY['sum(v) AS v', 'count(*) AS n']);
SELECT memoria.alter_rollup('ev_daily', refresh_interval => '$INTERVAL');
INSERT INTO ev (at, k, v) SELECT now() - g * interval '1 minute', g % 10, 1 FROM generate_series(1, 1000) g;
SET client_min_messages = warning;
CALL memoria.backfill('ev_daily');   -- a new rollup has no watermark until its backfill
SELECT * FROM memoria.refresh();
VACUUM ANALYZE;
EOF
q "ALTER DATABASE m_template IS_TEMPLATE true"
t0=$(date +%s)
for i in $(seq "$NDB"); do echo "CREATE DATABASE $(dbname "$i") TEMPLATE m_template;"; done | psql -X -q -v ON_ERROR_STOP=1
CREATE_S=$(( $(date +%s) - t0 ))

# ---- the driver: one session, one dblink connection per database -------------
PM=$(head -1 "$DIR/data/postmaster.pid")
HZ=$(getconf CLK_TCK)
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'EOF'
CREATE EXTENSION dblink;
CREATE SCHEMA bench;
CREATE TABLE bench.config (ndb int, write_period float8, sample_every float8, pm int, hz int, interval_s float8);
CREATE TABLE bench.dbnames (i int PRIMARY KEY, name text, conninfo text);
-- One row per sample: cumulative counters.
CREATE TABLE bench.samples (phase text, n int, at timestamptz, pm_ticks bigint, child_ticks bigint,
                            launcher_pid int, launcher_ticks bigint, cpu_busy bigint, cpu_total bigint,
                            starts numeric, running bigint, waiting bigint, unvisited bigint,
                            live_ticks bigint, harness_ticks bigint);
-- One row per sample and database: its memoria.status.
CREATE TABLE bench.dbs (phase text, n int, db int, at timestamptz, watermark timestamptz,
                        last_refresh_at timestamptz, last_duration interval, refreshes bigint, pending_keys bigint);
CREATE TABLE bench.writes (db int, at timestamptz);   -- at: after the INSERT's commit returned
CREATE TABLE bench.events (phase text, at timestamptz, what text);

-- CPU ticks of a process (utime + stime, or its reaped children's cutime + cstime).
-- NULL when the process is gone.
CREATE FUNCTION bench.ticks(pid int, children bool) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    f text[];
BEGIN
    IF pid IS NULL THEN RETURN NULL; END IF;
    f := string_to_array(regexp_replace(pg_read_file('/proc/' || pid || '/stat'), '^.*\) ', ''), ' ');
    RETURN CASE WHEN children THEN f[14]::bigint + f[15]::bigint ELSE f[12]::bigint + f[13]::bigint END;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END $$;
-- The machine's busy and total ticks.
CREATE FUNCTION bench.cpu() RETURNS bigint[] LANGUAGE sql AS $$
    SELECT ARRAY[f[1] + f[2] + f[3] + f[6] + f[7] + f[8], f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7] + f[8]]
    FROM (SELECT string_to_array(regexp_replace(split_part(pg_read_file('/proc/stat'), E'\n', 1), '^cpu +', ''),
                                 ' ')::bigint[] AS f) s $$;

CREATE FUNCTION bench.connect_all() RETURNS int LANGUAGE sql AS $$
    SELECT count(dblink_connect('c' || i, conninfo)) FROM bench.dbnames $$;

CREATE PROCEDURE bench.sample(p_phase text, p_n int) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench.samples
    SELECT p_phase, p_n, clock_timestamp(), bench.ticks(c.pm, false), bench.ticks(c.pm, true),
           l.pid, bench.ticks(l.pid, false), u.v[1], u.v[2], w.starts, w.running, w.waiting, w.unvisited,
           -- the cluster's long-lived processes (all but memoria's workers), and the benchmark's own
           (SELECT sum(bench.ticks(a.pid, false)) FROM pg_stat_activity a
            WHERE a.backend_type IS DISTINCT FROM 'memoria worker'),
           (SELECT sum(bench.ticks(a.pid, false)) FROM pg_stat_activity a
            WHERE a.application_name = 'bench' OR a.pid = pg_backend_pid())
    FROM bench.config c
    CROSS JOIN (SELECT bench.cpu() AS v) u
    LEFT JOIN LATERAL (SELECT pid FROM pg_stat_activity WHERE backend_type = 'memoria launcher' LIMIT 1) l ON true
    CROSS JOIN dblink('c1', $q$SELECT sum(starts), count(*) FILTER (WHERE state = 'running'),
                                      count(*) FILTER (WHERE state = 'waiting'),
                                      count(*) FILTER (WHERE starts = 0) FROM memoria.workers()$q$)
               AS w(starts numeric, running bigint, waiting bigint, unvisited bigint);
    INSERT INTO bench.dbs
    SELECT p_phase, p_n, d.i, t.*
    FROM bench.dbnames d,
         LATERAL dblink('c' || d.i, 'SELECT clock_timestamp(), watermark, last_refresh_at, last_duration, refreshes,
                                           pending_keys FROM memoria.status')
                 AS t(at timestamptz, watermark timestamptz, last_refresh_at timestamptz, last_duration interval,
                      refreshes bigint, pending_keys bigint);
END $$;

-- bench.phase: samples every sample_every seconds for p_seconds; with p_write,
-- one single-row INSERT into each database every write_period seconds, spread
-- evenly; p_until 'served' (every database visited since the phase began) or
-- 'drained' (every write in its rollup) ends it earlier (p_seconds is then the
-- timeout).
CREATE PROCEDURE bench.phase(p_phase text, p_seconds float8, p_write bool, p_until text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    c bench.config;
    t0 timestamptz := clock_timestamp();
    t_end timestamptz;
    next_sample timestamptz;
    next_write timestamptz;
    step interval;
    v_slot bigint := 0;
    v_n int := 0;
    v_db int;
    v_done bool;
    v_order int[];
BEGIN
    SELECT * INTO c FROM bench.config;
    t_end := t0 + p_seconds * interval '1 second';
    step := (c.write_period / c.ndb) * interval '1 second';
    INSERT INTO bench.events VALUES (p_phase, t0, 'start');
    CALL bench.sample(p_phase, v_n);
    COMMIT;
    next_sample := t0 + c.sample_every * interval '1 second';
    next_write := t0;
    LOOP
        PERFORM pg_sleep(greatest(0, extract(epoch FROM
            least(next_sample, t_end, CASE WHEN p_write THEN next_write END) - clock_timestamp())));
        IF p_write AND clock_timestamp() >= next_write AND clock_timestamp() < t_end THEN
            -- Each round writes every database once, in a new random order: a
            -- database's write comes at a random point of its refresh cycle.
            IF v_slot % c.ndb = 0 THEN
                v_order := (SELECT array_agg(i ORDER BY random()) FROM generate_series(1, c.ndb) i);
            END IF;
            v_db := v_order[v_slot % c.ndb + 1];
            PERFORM dblink_exec('c' || v_db, format('INSERT INTO ev (k, v) VALUES (%s, 1)', (v_slot / c.ndb) % 10));
            INSERT INTO bench.writes VALUES (v_db, clock_timestamp());
            v_slot := v_slot + 1;
            next_write := t0 + v_slot * step;
        END IF;
        IF clock_timestamp() >= next_sample OR clock_timestamp() >= t_end THEN
            v_n := v_n + 1;
            CALL bench.sample(p_phase, v_n);
            COMMIT;
            EXIT WHEN clock_timestamp() >= t_end;
            IF p_until = 'served' THEN
                SELECT bool_and(d.last_refresh_at >= t0) AND (SELECT s.unvisited = 0 FROM bench.samples s
                                                              WHERE s.phase = p_phase AND s.n = v_n)
                INTO v_done FROM bench.dbs d WHERE d.phase = p_phase AND d.n = v_n;
            ELSIF p_until = 'drained' THEN
                SELECT bool_and(coalesce(d.watermark, '-infinity') >= coalesce((SELECT max(w.at) FROM bench.writes w WHERE w.db = d.db), '-infinity'))
                INTO v_done FROM bench.dbs d WHERE d.phase = p_phase AND d.n = v_n;
            END IF;
            IF v_done THEN
                INSERT INTO bench.events VALUES (p_phase, clock_timestamp(), p_until);
                COMMIT;
                EXIT;
            END IF;
            next_sample := next_sample + c.sample_every * interval '1 second';
            IF next_sample < clock_timestamp() THEN
                next_sample := clock_timestamp() + c.sample_every * interval '1 second';
            END IF;
        END IF;
    END LOOP;
    INSERT INTO bench.events VALUES (p_phase, clock_timestamp(), 'end');
    COMMIT;
    RAISE NOTICE '% done: % s, % samples, % writes', p_phase, round(extract(epoch FROM clock_timestamp() - t0)), v_n, v_slot;
END $$;
EOF
{
    echo "INSERT INTO bench.config VALUES ($NDB, $WRITE_PERIOD, $SAMPLE, $PM, $HZ, $IVSEC);"
    for i in $(seq "$NDB"); do
        echo "INSERT INTO bench.dbnames VALUES ($i, '$(dbname "$i")', 'host=$DIR port=$PORT user=postgres dbname=$(dbname "$i") application_name=bench');"
    done
} | psql -X -q -v ON_ERROR_STOP=1

# ---- the run ---------------------------------------------------------------
SETTLE=$(awk -v s="$IVSEC" 'BEGIN {print 2 * s}')
DRAIN=$(awk -v s="$IVSEC" 'BEGIN {print (6 * s > 60) ? 6 * s : 60}')
say "phases: baseline ${IDLE}s (memoria.enabled = off), warmup, settle ${SETTLE}s, idle ${IDLE}s, busy ${DURATION}s, drain"
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<EOF
SET client_min_messages = notice;
SELECT bench.connect_all();
CALL bench.phase('baseline', $IDLE, false);
ALTER SYSTEM SET memoria.enabled = on;
SELECT pg_reload_conf();
CALL bench.phase('warmup', 900, false, 'served');
CALL bench.phase('settle', $SETTLE, false);
CALL bench.phase('idle', $IDLE, false);
CALL bench.phase('busy', $DURATION, true);
CALL bench.phase('drain', $DRAIN, false, 'drained');
EOF

# ---- report ----------------------------------------------------------------
say "writing $OUT/pool.md"
q "CREATE INDEX ON bench.dbs (db, watermark)"
q "CREATE INDEX ON bench.writes (db, at)"
psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<'EOF'
-- Per phase: wall seconds and deltas of the cumulative counters.
CREATE VIEW bench.phase_stats AS
SELECT s0.phase, extract(epoch FROM s1.at - s0.at) AS secs,
       (s1.pm_ticks - s0.pm_ticks)::float8 / c.hz AS pm_s,
       (s1.child_ticks - s0.child_ticks)::float8 / c.hz AS workers_s,
       (s1.launcher_ticks - s0.launcher_ticks)::float8 / c.hz AS launcher_s,
       (SELECT count(DISTINCT launcher_pid) FROM bench.samples x WHERE x.phase = s0.phase) AS launcher_pids,
       (s1.harness_ticks - s0.harness_ticks)::float8 / c.hz AS harness_s,
       ((s1.live_ticks - s0.live_ticks) - (s1.launcher_ticks - s0.launcher_ticks)
        - (s1.harness_ticks - s0.harness_ticks))::float8 / c.hz AS others_s,
       ((s1.cpu_busy - s0.cpu_busy) - (s1.pm_ticks - s0.pm_ticks) - (s1.child_ticks - s0.child_ticks)
        - (s1.live_ticks - s0.live_ticks))::float8 / c.hz AS outside_s,
       (s1.cpu_busy - s0.cpu_busy)::float8 / nullif(s1.cpu_total - s0.cpu_total, 0) AS machine_busy,
       s1.starts - s0.starts AS starts,
       (SELECT max(waiting) FROM bench.samples x WHERE x.phase = s0.phase) AS max_waiting,
       (SELECT avg(waiting) FROM bench.samples x WHERE x.phase = s0.phase) AS avg_waiting
FROM bench.samples s0
JOIN bench.samples s1 ON s1.phase = s0.phase AND s1.n = (SELECT max(n) FROM bench.samples x WHERE x.phase = s0.phase)
CROSS JOIN bench.config c
WHERE s0.n = 0;
-- Each write's lag: until the first watermark at or after its commit (NULL: never).
CREATE VIEW bench.write_lag AS
SELECT w.db, w.at,
       extract(epoch FROM (SELECT min(d.watermark) FROM bench.dbs d WHERE d.db = w.db AND d.watermark >= w.at) - w.at)
           AS lag
FROM bench.writes w;
-- Per busy sample and database: memoria.status.lag, and the age of the oldest
-- committed write not in the rollup yet.
CREATE VIEW bench.busy_lag AS
SELECT d.n, d.db, extract(epoch FROM d.at - d.watermark) AS status_lag,
       coalesce(extract(epoch FROM d.at - (SELECT min(w.at) FROM bench.writes w
                                           WHERE w.db = d.db AND w.at <= d.at AND w.at > d.watermark)), 0) AS pending_age
FROM bench.dbs d WHERE d.phase = 'busy';
-- Refreshes per database during a phase.
-- The gap from each refresh of a database to its next (watermark to watermark), for
-- the refreshes that started during a phase: the longest a write can wait.
CREATE VIEW bench.gaps AS
SELECT e.phase, g.db, g.gap
FROM (SELECT db, watermark,
             extract(epoch FROM lead(watermark) OVER (PARTITION BY db ORDER BY watermark) - watermark) AS gap
      FROM (SELECT DISTINCT db, watermark FROM bench.dbs WHERE watermark IS NOT NULL) d) g
JOIN (SELECT phase, min(at) FILTER (WHERE what = 'start') AS t0, max(at) FILTER (WHERE what = 'end') AS t1
      FROM bench.events GROUP BY phase) e ON g.watermark >= e.t0 AND g.watermark < e.t1
WHERE g.gap IS NOT NULL;
CREATE VIEW bench.refreshes AS
SELECT phase, db, max(refreshes) - min(refreshes) AS refreshes FROM bench.dbs GROUP BY phase, db;
EOF
r() { q "$1"; }
pct() { awk -v s="$1" -v t="$2" 'BEGIN {printf "%.1f %%", (t > 0) ? 100 * s / t : 0}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }
# phase FIELD PHASE
ph() { r "SELECT $1 FROM bench.phase_stats WHERE phase = '$2'"; }
declare -A P
for phase in baseline idle busy; do
    for f in secs pm_s workers_s launcher_s harness_s others_s outside_s launcher_pids machine_busy starts max_waiting avg_waiting; do
        P[$phase.$f]=$(ph "$f" "$phase")
    done
    # CPU as % of one core, over the phase's wall time.
    for f in pm_s workers_s launcher_s harness_s others_s outside_s; do P[$phase.$f.pct]=$(awk -v s="${P[$phase.$f]}" -v t="${P[$phase.secs]}" 'BEGIN {print 100 * s / t}'); done
done
HZ_RES=$(awk -v h="$HZ" -v t="${P[baseline.secs]}" 'BEGIN {print 100 / h / t}')   # one tick, as % of a core
# The baseline's postmaster and launcher CPU can be below one clock tick: the
# ratio then uses one tick (and says so with ">").
floor_ratio() {   # floor_ratio MEMORIA_PCT BASELINE_PCT
    awk -v a="$1" -v b="$2" -v f="$HZ_RES" 'BEGIN {if (b > 0) printf "%.1f", a / b; else if (a < f) print "n/a"; else printf "> %.0f", a / f}'
}
IFS='|' read -r LAG_MAX LAG_P95 LAG_P50 NWRITES NLOST < <(r "SELECT round(max(lag)::numeric, 2), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY lag)::numeric, 2),
    round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)::numeric, 2), count(*), count(*) - count(lag) FROM bench.write_lag")
IFS='|' read -r H1_P95 H1_MAX H2_P95 H2_MAX < <(r "WITH b AS (SELECT min(at) t0, max(at) t1 FROM bench.writes)
    SELECT round(percentile_cont(0.95) WITHIN GROUP (ORDER BY lag) FILTER (WHERE at < t0 + (t1 - t0) / 2)::numeric, 2),
           round((max(lag) FILTER (WHERE at < t0 + (t1 - t0) / 2))::numeric, 2),
           round(percentile_cont(0.95) WITHIN GROUP (ORDER BY lag) FILTER (WHERE at >= t0 + (t1 - t0) / 2)::numeric, 2),
           round((max(lag) FILTER (WHERE at >= t0 + (t1 - t0) / 2))::numeric, 2) FROM bench.write_lag, b")
IFS='|' read -r SLAG_MAX PAGE_MAX < <(r "SELECT round(max(status_lag)::numeric, 2), round(max(pending_age)::numeric, 2) FROM bench.busy_lag")
IFS='|' read -r GAP_MAX GAP_P95 NGAPS PERIOD_BUSY GAP_MIN < <(r "SELECT round(max(gap)::numeric, 2), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY gap)::numeric, 2), count(*),
    round(avg(gap)::numeric, 2), round(min(gap)::numeric, 2)
    FROM bench.gaps WHERE phase = 'busy'")
IFS='|' read -r IGAP_MAX IGAP_P95 PERIOD_IDLE IGAP_MIN < <(r "SELECT round(max(gap)::numeric, 2), round(percentile_cont(0.95) WITHIN GROUP (ORDER BY gap)::numeric, 2),
    round(avg(gap)::numeric, 2), round(min(gap)::numeric, 2)
    FROM bench.gaps WHERE phase = 'idle'")
SERIES=$(r "SELECT string_agg(to_char(m, 'FM990.0'), ' ' ORDER BY n) FROM (SELECT n, max(pending_age) m FROM bench.busy_lag GROUP BY n) s")
IDLE_SLAG=$(r "SELECT round(max(extract(epoch FROM at - watermark))::numeric, 2) FROM bench.dbs WHERE phase = 'idle'")
IFS='|' read -r REF_MIN REF_AVG REF_MAX STARVED < <(r "SELECT min(refreshes), round(avg(refreshes), 1), max(refreshes), count(*) FILTER (WHERE refreshes = 0)
    FROM bench.refreshes WHERE phase = 'busy'")
IFS='|' read -r IREF_MIN IREF_AVG IREF_MAX < <(r "SELECT min(refreshes), round(avg(refreshes), 1), max(refreshes) FROM bench.refreshes WHERE phase = 'idle'")
WARMUP_S=$(r "SELECT round(extract(epoch FROM max(at) FILTER (WHERE what = 'served') - min(at) FILTER (WHERE what = 'start'))::numeric, 1)
    FROM bench.events WHERE phase = 'warmup'")
DRAINED=$(r "SELECT count(*) FROM bench.events WHERE phase = 'drain' AND what = 'drained'")
DRAIN_S=$(r "SELECT round(extract(epoch FROM max(at) - min(at))::numeric, 1) FROM bench.events WHERE phase = 'drain'")
REFRESH_MS=$(r "SELECT round((extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY last_duration)) * 1000)::numeric, 1) || ' / '
    || round((extract(epoch FROM max(last_duration)) * 1000)::numeric, 1) FROM bench.dbs WHERE phase = 'busy'")
IDEAL_RATE=$(awk -v n="$NDB" -v s="$IVSEC" 'BEGIN {print n / s}')
for phase in idle busy; do
    P[$phase.rate]=$(awk -v s="${P[$phase.starts]}" -v t="${P[$phase.secs]}" 'BEGIN {print s / t}')
    P[$phase.ms_per_start]=$(awk -v c="${P[$phase.workers_s]}" -v s="${P[$phase.starts]}" 'BEGIN {if (s > 0) printf "%.1f", 1000 * c / s; else print "-"}')
done
P[baseline.rate]=$(awk -v s="${P[baseline.starts]}" -v t="${P[baseline.secs]}" 'BEGIN {print s / t}')
# The server log: problems, by message.
LOGPROBLEMS=$(grep -aE '(ERROR|WARNING|FATAL|PANIC):' "$DIR/server.log" | sed -E 's/^[^]]*\] //' | sort | uniq -c | sort -rn | head -10 || true)
NLOGPROBLEMS=$(grep -acE '(ERROR|WARNING|FATAL|PANIC):' "$DIR/server.log" || true)
NLOGLINES=$(wc -l < "$DIR/server.log")
VERSION=$(q 'SELECT version()' | cut -d, -f1)
if [ "$(date -u -r "$SO" +%s)" != "$SO_MTIME" ]; then
    BUILD="$BUILD; **memoria.so was reinstalled during the run** (the server kept the build it loaded at its start)"
fi
RUNTIME=$(( $(date +%s) - START ))

f2() { awk -v v="$1" 'BEGIN {printf "%.2f", v}'; }
fp() { awk -v v="$1" 'BEGIN {printf "%.2f %%", v}'; }
{
    echo "# memoria worker pool benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo));"
    echo "$VERSION; $BUILD;"
    echo "produced by \`bash bench/pool.sh$ARGS\` in $((RUNTIME / 60)) min $((RUNTIME % 60)) s."
    echo
    echo "$NDB databases with memoria (one rollup each, refresh_interval $INTERVAL) and $NPLAIN without"
    echo "(created first) plus \`postgres\`; memoria.max_workers = $WORKERS, memoria.naptime = ${NAPTIME}s."
    echo "Busy: one single-row INSERT into every database every ${WRITE_PERIOD} s (spread evenly, each round in a"
    echo "new random order, from one session with one open connection per database), for ${DURATION} s;"
    echo "idle: no writes, ${IDLE} s."
    echo
    echo "Ratios compare measurements of the same run with their baseline (lower is better):"
    echo "the ideal pool refreshes every database exactly every refresh_interval, so a write's lag"
    echo "(commit to the first watermark at or after it) is uniform in [0, refresh_interval] and no"
    echo "database waits more than refresh_interval between two refreshes; CPU is % of one core over"
    echo "the phase, against the same cluster with \`memoria.enabled = off\`, idle."
    echo
    echo "| measure | baseline | baseline | memoria | ratio |"
    echo "| --- | --- | ---: | ---: | ---: |"
    echo "| worst write lag (busy, $NWRITES writes) | ideal: refresh_interval | $(f2 "$IVSEC") s | $LAG_MAX s | $(ratio "$LAG_MAX" "$IVSEC") |"
    echo "| p95 write lag | ideal: 0.95 x refresh_interval | $(f2 "$(awk -v s="$IVSEC" 'BEGIN {print 0.95 * s}')") s | $LAG_P95 s | $(ratio "$LAG_P95" "$(awk -v s="$IVSEC" 'BEGIN {print 0.95 * s}')") |"
    echo "| median write lag | ideal: 0.5 x refresh_interval | $(f2 "$(awk -v s="$IVSEC" 'BEGIN {print 0.5 * s}')") s | $LAG_P50 s | $(ratio "$LAG_P50" "$(awk -v s="$IVSEC" 'BEGIN {print 0.5 * s}')") |"
    echo "| worst memoria.status.lag, sampled (busy) | ideal: refresh_interval | $(f2 "$IVSEC") s | $SLAG_MAX s | $(ratio "$SLAG_MAX" "$IVSEC") |"
    echo "| worst gap between two refreshes of a database (busy, $NGAPS gaps) | ideal: refresh_interval | $(f2 "$IVSEC") s | $GAP_MAX s | $(ratio "$GAP_MAX" "$IVSEC") |"
    echo "| p95 gap between two refreshes of a database (busy) | ideal: refresh_interval | $(f2 "$IVSEC") s | $GAP_P95 s | $(ratio "$GAP_P95" "$IVSEC") |"
    echo "| mean gap between two refreshes of a database (busy) | refresh_interval | $(f2 "$IVSEC") s | $PERIOD_BUSY s | $(ratio "$PERIOD_BUSY" "$IVSEC") |"
    echo "| worker starts per second (busy) | ideal: databases / refresh_interval | $(f2 "$IDEAL_RATE") | $(f2 "${P[busy.rate]}") | $(ratio "${P[busy.rate]}" "$IDEAL_RATE") |"
    echo "| worker starts per second (idle) | ideal: databases / refresh_interval | $(f2 "$IDEAL_RATE") | $(f2 "${P[idle.rate]}") | $(ratio "${P[idle.rate]}" "$IDEAL_RATE") |"
    echo "| postmaster CPU, idle | memoria.enabled = off, idle | $(fp "${P[baseline.pm_s.pct]}") | $(fp "${P[idle.pm_s.pct]}") | $(floor_ratio "${P[idle.pm_s.pct]}" "${P[baseline.pm_s.pct]}") |"
    echo "| postmaster CPU, busy | memoria.enabled = off, idle | $(fp "${P[baseline.pm_s.pct]}") | $(fp "${P[busy.pm_s.pct]}") | $(floor_ratio "${P[busy.pm_s.pct]}" "${P[baseline.pm_s.pct]}") |"
    echo "| launcher CPU, idle | memoria.enabled = off, idle | $(fp "${P[baseline.launcher_s.pct]}") | $(fp "${P[idle.launcher_s.pct]}") | $(floor_ratio "${P[idle.launcher_s.pct]}" "${P[baseline.launcher_s.pct]}") |"
    echo "| launcher CPU, busy | memoria.enabled = off, idle | $(fp "${P[baseline.launcher_s.pct]}") | $(fp "${P[busy.launcher_s.pct]}") | $(floor_ratio "${P[busy.launcher_s.pct]}" "${P[baseline.launcher_s.pct]}") |"
    echo "| all memoria workers' CPU, idle | memoria.enabled = off, idle | $(fp "${P[baseline.workers_s.pct]}") | $(fp "${P[idle.workers_s.pct]}") | - |"
    echo "| all memoria workers' CPU, busy | memoria.enabled = off, idle | $(fp "${P[baseline.workers_s.pct]}") | $(fp "${P[busy.workers_s.pct]}") | - |"
    echo
    echo "Per phase, CPU seconds over the phase (harness: the benchmark's session and its $NDB connections,"
    echo "which run the INSERTs and their capture triggers, and the sampling; other server processes:"
    echo "checkpointer, WAL writer, ...; outside: the rest of the machine; machine busy: share of all $(nproc) cores):"
    echo
    echo "| phase | seconds | postmaster | launcher | workers | worker starts | CPU per start | databases waiting (mean / max) | harness | other server processes | outside the cluster | machine busy |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for phase in baseline idle busy; do
        echo "| $phase | $(awk -v v="${P[$phase.secs]}" 'BEGIN {printf "%.0f", v}') | $(f2 "${P[$phase.pm_s]}") s | $(f2 "${P[$phase.launcher_s]}") s | $(f2 "${P[$phase.workers_s]}") s | ${P[$phase.starts]} | ${P[$phase.ms_per_start]:--} ms | $(awk -v v="${P[$phase.avg_waiting]}" 'BEGIN {printf "%.1f", v}') / ${P[$phase.max_waiting]} | $(f2 "${P[$phase.harness_s]}") s | $(f2 "${P[$phase.others_s]}") s | $(f2 "${P[$phase.outside_s]}") s | $(fp "$(awk -v v="${P[$phase.machine_busy]}" 'BEGIN {print 100 * v}')") |"
    done
    NOISY=$(awk -v a="${P[baseline.outside_s.pct]}" -v b="${P[idle.outside_s.pct]}" -v c="${P[busy.outside_s.pct]}" 'BEGIN {m = a; if (b > m) m = b; if (c > m) m = c; print (m > 5) ? m : ""}')
    if [ -n "$NOISY" ]; then
        echo
        echo "**The machine was not quiet**: processes outside this cluster used up to $(awk -v v="$NOISY" 'BEGIN {printf "%.0f", v}') % of a core"
        echo "during a phase; lags may include that contention (the CPU figures per process do not)."
    fi
    echo
    echo "Checks:"
    echo
    echo "- starvation: $STARVED of $NDB databases had no refresh during the busy phase; refreshes per database"
    echo "  busy min / mean / max $REF_MIN / $REF_AVG / $REF_MAX, idle $IREF_MIN / $IREF_AVG / $IREF_MAX"
    echo "  (gap between two refreshes of a database, min / mean: idle $IGAP_MIN / $PERIOD_IDLE s, busy $GAP_MIN / $PERIOD_BUSY s)."
    echo "- writes never in their rollup by the end: $NLOST of $NWRITES; the drain after the trickle"
    if [ "$DRAINED" = 1 ]; then echo "  reflected every write within $DRAIN_S s."; else echo "  did NOT reflect every write within its $DRAIN_S s."; fi
    echo "- lag over time: p95 / worst write lag $H1_P95 / $H1_MAX s in the first half of the busy phase,"
    echo "  $H2_P95 / $H2_MAX s in the second. Age of the oldest write not yet in its rollup, worst over the"
    echo "  databases, at each ${SAMPLE}-second sample (s): $SERIES"
    echo "- idle: worst / p95 / mean gap between two refreshes of a database $IGAP_MAX / $IGAP_P95 / $PERIOD_IDLE s."
    echo "- worst memoria.status.lag sampled while idle: $IDLE_SLAG s. Refresh duration (last_duration, busy"
    echo "  samples) median / max: $REFRESH_MS ms."
    echo "- first pass after \`memoria.enabled = on\` (every database visited, copies adopted): ${WARMUP_S:-not finished in 900} s."
    echo "- launcher processes seen: baseline ${P[baseline.launcher_pids]}, idle ${P[idle.launcher_pids]}, busy ${P[busy.launcher_pids]} (more than 1: it restarted)."
    echo "- server log: $NLOGPROBLEMS ERROR/WARNING/FATAL/PANIC lines over the whole run ($NLOGLINES lines in all)."
    if [ -n "$LOGPROBLEMS" ]; then
        echo
        echo '```'
        echo "$LOGPROBLEMS"
        echo '```'
    fi
    echo
    echo "Setup: one throwaway cluster (fsync off, autovacuum off so that the only processes exiting"
    echo "during a phase are memoria's workers, jit off, max_worker_processes $MAXWP, max_connections $MAXCONN);"
    echo "the databases are copies of a template with the extension, a 1000-row table and its rollup"
    echo "(CREATE DATABASE ... TEMPLATE: $NDB copies in ${CREATE_S} s). Workers' CPU is the postmaster's"
    echo "reaped children's (cutime + cstime) over the phase; CPU times have a resolution of 1/$HZ s."
    echo "Lags come from each database's watermark sampled every ${SAMPLE} s: a write's lag ends at the"
    echo "watermark of the refresh that reflects it (that refresh's commit comes a refresh duration later)."
} > "$OUT/pool.md"
cat "$OUT/pool.md"
