#!/usr/bin/env bash
# tools/test.sh: run every memoria test suite on a fresh Debian 12 machine.
# Installs packages, builds, installs, starts a throwaway PostgreSQL 15
# cluster, runs pg_regress, isolation, pgTAP and TAP suites, stops the cluster.
set -uo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
export PATH=$PG_BIN:$PATH

install_packages
# -Werror, and memoria's own invariants checked (MEMORIA_ASSERT).
build_and_install CHECKS=1 || exit 1

DIR=$(mktemp -d /tmp/memoria-test.XXXXXX)
PORT=${MEMORIA_TEST_PORT:-54329}
trap 'stop_cluster "$DIR"' EXIT
# The regression suites assert exact outputs: no background refresh beside
# them (the worker has its own TAP suites, on clusters of their own).
start_cluster "$DIR" "$PORT" "memoria.enabled = off"
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres

passed=0
failed=0
run_suite() {  # run_suite NAME CMD...
    echo "== $1"
    if "${@:2}"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "!! suite $1 FAILED"; fi
}

run_suite "pg_regress and isolation specs" make -s installcheck PG_CONFIG=$PG_BIN/pg_config
[ -f regress_out/regression.diffs ] && cat regress_out/regression.diffs | head -200
[ -f test/isolation/out/regression.diffs ] && cat test/isolation/out/regression.diffs | head -200

run_suite "pgTAP" make -s pgtap PG_CONFIG=$PG_BIN/pg_config

# PostgreSQL::Test::Cluster makes its own clusters; it must not run as root,
# and writes its files under TESTDIR.
TAP_DIR=$DIR/tap
as_root mkdir -p "$TAP_DIR"
as_root chown postgres "$TAP_DIR"
run_suite "TAP (worker, pg_cron, memoriactl, subscriber, dump/restore, pool, pg_cron database, view source restore, Citus, updated_at gap)" as_pg env PATH="$PATH" TESTDIR="$TAP_DIR" \
    make -s -C "$PWD" tap PG_CONFIG=$PG_BIN/pg_config
[ -d "$TAP_DIR/tmp_check/log" ] && grep -h "not ok" "$TAP_DIR"/tmp_check/log/regress_log_* | head -20

echo
echo "memoria test suites: $passed passed, $failed failed"
[ "$failed" = 0 ]
