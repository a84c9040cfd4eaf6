#!/usr/bin/env bash
# tools/demo.sh: memoria on a throwaway local PostgreSQL 15 cluster.
# Installs packages, builds and installs memoria, loads 1M rows of sample
# usage data (90 days, 200 workspaces, several providers and models), creates
# a daily rollup, changes data (inserts, corrections, deletes), refreshes, and
# prints the rollup next to the ground truth and memoria.status.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/common.sh
export PATH=$PG_BIN:$PATH

install_packages
build_and_install

DIR=$(mktemp -d /tmp/memoria-demo.XXXXXX)
PORT=${MEMORIA_DEMO_PORT:-54330}
trap 'stop_cluster "$DIR"' EXIT
start_cluster "$DIR" "$PORT" "memoria.naptime = 2"
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
psql -X -q -v ON_ERROR_STOP=1 -f tools/demo.sql
echo
echo "(the throwaway cluster in $DIR is stopped now; run tools/demo.sh again any time)"
