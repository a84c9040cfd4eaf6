# tools/common.sh: shared by tools/demo.sh and tools/test.sh.
# Installs what memoria needs on Debian 12, builds and installs it, and starts
# or stops a throwaway PostgreSQL 15 cluster.  Servers run as the postgres
# user (initdb refuses root).

PG_BIN=/usr/lib/postgresql/15/bin
PACKAGES="build-essential postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
          libtap-parser-sourcehandler-pgtap-perl libpq-dev libipc-run-perl python3"

# as_root CMD...: run CMD as root (sudo when not root already).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# as_pg CMD...: run CMD as the postgres OS user.
as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else as_root runuser -u postgres -- "$@"; fi; }

install_packages() {
    local missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "== installing Debian packages:$missing"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
}

# build_and_install [make variables...]: e.g. CHECKS=1 (tests: -Werror, asserts).
build_and_install() {
    echo "== building and installing memoria $*"
    make -s clean >/dev/null 2>&1 || true   # objects built with other flags
    make -s PG_CONFIG=$PG_BIN/pg_config "$@"
    as_root make -s PG_CONFIG=$PG_BIN/pg_config "$@" install >/dev/null
}

# start_cluster DIR PORT [extra postgresql.conf lines]: a fresh cluster in DIR.
start_cluster() {
    local dir=$1 port=$2
    shift 2
    as_root mkdir -p "$dir"
    as_root chown postgres "$dir"
    as_pg $PG_BIN/initdb -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
    {
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "listen_addresses = ''"
        echo "shared_preload_libraries = 'memoria, pg_cron'"
        echo "cron.database_name = 'postgres'"
        echo "max_prepared_transactions = 10"
        echo "fsync = off"
        for line in "$@"; do echo "$line"; done
    } | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
    as_pg $PG_BIN/pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

# stop_cluster DIR: stop it and remove its data (the logs stay): throwaway
# clusters of a few GB each would otherwise fill /tmp run after run.
stop_cluster() {
    local dir=$1
    [ -d "$dir/data" ] && as_pg $PG_BIN/pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    as_root rm -rf "$dir/data"
}
