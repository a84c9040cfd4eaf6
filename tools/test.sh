#!/usr/bin/env bash
# tools/test.sh: run every memoria test suite on a fresh Debian 12 machine.
# Installs packages, builds, installs, starts a throwaway PostgreSQL 15
# cluster, runs pg_regress, isolation, pgTAP and TAP suites, stops the cluster.
set -uo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
export PATH=$PG_BIN:$PATH

install_packages
build_and_install || exit 1

DIR=$(mktemp -d /tmp/memoria-test.XXXXXX)
PORT=${MEMORIA_TEST_PORT:-54329}
trap 'stop_cluster "$DIR"' EXIT
start_cluster "$DIR" "$PORT"
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

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS memoria_tap" -c "CREATE DATABASE memoria_tap"
psql -X -q -d memoria_tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION memoria"
run_suite "pgTAP" pg_prove -d memoria_tap test/pgtap/*.sql

# PostgreSQL::Test::Cluster makes its own clusters; it must not run as root,
# and writes its files under TESTDIR.
TAP_DIR=$DIR/tap
as_root mkdir -p "$TAP_DIR"
as_root chown postgres "$TAP_DIR"
TAP_TESTS=$(ls "$PWD"/test/tap/*.pl)
run_suite "TAP (background worker, pg_cron)" as_pg env -C "$TAP_DIR" PATH="$PATH" TESTDIR="$TAP_DIR" \
    PG_REGRESS=/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress \
    PERL5LIB=/usr/lib/postgresql/15/lib/pgxs/src/test/perl prove $TAP_TESTS
[ -d "$TAP_DIR/tmp_check/log" ] && grep -h "not ok" "$TAP_DIR"/tmp_check/log/regress_log_* | head -20

echo
echo "memoria test suites: $passed passed, $failed failed"
[ "$failed" = 0 ]
