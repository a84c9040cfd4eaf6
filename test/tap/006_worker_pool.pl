# The worker pool: more databases than workers all converge (no database
# starves, whatever its place in pg_database, databases without memoria
# listed first included); a database without memoria does not get a worker
# every naptime, and one that gets CREATE EXTENSION is served at once;
# memoria.workers() shows the pool to pg_monitor only; a worker's
# pg_stat_activity times are those of its current refresh.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('pool');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'memoria'
memoria.naptime = 1
memoria.max_workers = 2
max_worker_processes = 16
});
$node->start;

# Databases without memoria first: they come before the others in pg_database.
$node->safe_psql('postgres', "CREATE DATABASE plain_$_") for 1 .. 3;

my @dbs = map { "app_$_" } 1 .. 8;
for my $db (@dbs) {
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql($db, q{
        CREATE EXTENSION memoria;
        CREATE TABLE ev (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
        SELECT memoria.create_rollup('ev_daily', 'ev', 'at', ARRAY['k'], ARRAY['sum(v) AS v', 'count(*) AS n']);
        SELECT memoria.alter_rollup('ev_daily', refresh_interval => '1 second');
    });
}

# A steady trickle of writes into every database, then every one converges.
for my $round (1 .. 5) {
    for my $db (@dbs) {
        $node->safe_psql($db, "INSERT INTO ev SELECT now() - g * interval '1 hour', g % 5, g + $round "
                            . "FROM generate_series(1, 100) g; DELETE FROM ev WHERE v % 13 = $round");
    }
    usleep(300_000);
}
for my $db (@dbs) {
    ok($node->poll_query_until($db, "SELECT pending_keys = 0 AND refreshes > 0 FROM memoria.status"),
       "$db converged with 2 workers for 8 databases");
    is($node->safe_psql($db, "SELECT count(*) FROM memoria.verify('ev_daily')"), '0', "$db is exact");
}

# The pool, as pg_monitor sees it; the others may not look.
$node->safe_psql('postgres', "CREATE ROLE watcher LOGIN IN ROLE pg_monitor; CREATE ROLE nobody LOGIN");
my $pool = $node->safe_psql('app_1', "SELECT string_agg(database || '=' || state, ',' ORDER BY database) "
                                   . "FROM memoria.workers() WHERE database LIKE 'plain%'",
                            connstr => $node->connstr('app_1') . ' user=watcher');
is($pool, 'plain_1=no_memoria,plain_2=no_memoria,plain_3=no_memoria', 'pg_monitor sees databases without memoria');
my ($rc, $out, $err) = $node->psql('app_1', 'SELECT * FROM memoria.workers()',
                                   connstr => $node->connstr('app_1') . ' user=nobody');
like($err, qr/permission denied/, 'others may not see the pool');

# Databases without memoria are not visited every naptime.
my $starts = "SELECT sum(starts) FROM memoria.workers() WHERE database LIKE 'plain%'";
my $before = $node->safe_psql('app_1', $starts);
sleep 4;
is($node->safe_psql('app_1', $starts), $before, 'no worker started for databases without memoria in 4 naptimes');

# CREATE EXTENSION wakes the pool: the database is served at once.
$node->safe_psql('plain_3', q{
    CREATE EXTENSION memoria;
    CREATE TABLE ev (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
    INSERT INTO ev VALUES (now(), 1, 1);
    SELECT memoria.create_rollup('ev_daily', 'ev', 'at', ARRAY['k'], ARRAY['sum(v) AS v']);
});
ok($node->poll_query_until('plain_3', "SELECT refreshes > 0 FROM memoria.status", 't'),
   'a database that gets memoria is served at once, not after the recheck interval');

# A worker's xact_start and query_start are those of its current batch, not
# its own start: a slow rollup in small batches.
$node->append_conf('postgresql.conf', 'memoria.batch_keys = 20');
$node->reload;
sleep 1;
$node->safe_psql('app_1', q{
    CREATE FUNCTION slow(v int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT v FROM pg_sleep(0.01) $$;
    SELECT memoria.create_rollup('ev_slow', 'ev', 'at', ARRAY['k'], ARRAY['sum(slow(v)) AS v'], bucket => '1 hour');
    SELECT memoria.alter_rollup('ev_slow', refresh_interval => '1 second');
    INSERT INTO ev SELECT now() - g * interval '1 hour', g % 5, g FROM generate_series(1, 400) g;
});
ok($node->poll_query_until('postgres',
    "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'memoria worker' "
  . "AND query LIKE 'memoria: refresh of rollup ev_slow%' "
  . "AND xact_start > backend_start + interval '200 milliseconds' AND query_start >= xact_start"),
   "a worker's xact_start and query_start follow its batches");
ok($node->poll_query_until('app_1', "SELECT pending_keys = 0 FROM memoria.status WHERE rollup = 'ev_slow'"),
   'the slow rollup converges');

# Within a database, a rollup with a long backlog does not hold the others
# back: the worker takes a batch of each in turn, and of those that become
# due meanwhile.  (Only app_3 is served: with nobody waiting, its worker
# does not give way.)
$node->append_conf('postgresql.conf', "memoria.databases = 'app_3'");
$node->reload;
$node->safe_psql('app_3', q{
    CREATE FUNCTION slow(v int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT v FROM pg_sleep(0.01) $$;
    CREATE TABLE backlog (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
    SELECT memoria.create_rollup('a_slow', 'backlog', 'at', ARRAY['k'], ARRAY['sum(slow(v)) AS v'], bucket => '1 hour');
    SELECT memoria.alter_rollup('a_slow', refresh_interval => '1 second');
});
$node->safe_psql('app_3', "INSERT INTO backlog SELECT now() - g * interval '1 hour', g % 5, g FROM generate_series(1, 1500) g");
ok($node->poll_query_until('app_3', "SELECT refreshes > 1 FROM memoria.status WHERE rollup = 'a_slow'"),
   'the worker works through a backlog');
$node->safe_psql('app_3', "INSERT INTO ev VALUES (now(), 1, 1)");
ok($node->poll_query_until('app_3',
    "SELECT bool_and(CASE rollup WHEN 'ev_daily' THEN pending_keys = 0 ELSE pending_keys > 0 END) FROM memoria.status"),
   'meanwhile another rollup of the database is refreshed');
ok($node->poll_query_until('app_3', "SELECT pending_keys = 0 FROM memoria.status WHERE rollup = 'a_slow'"),
   'and the backlog is done too');
$node->append_conf('postgresql.conf', "memoria.databases = ''");
$node->reload;

# A rollup another session keeps busy (a refresh in an open transaction):
# the worker leaves it until its next visit rather than retrying at once.
my $bg = $node->background_psql('app_4');
$bg->query_safe('BEGIN');
$bg->query_safe("SELECT status FROM memoria.refresh('ev_daily')");
$node->safe_psql('app_4', "INSERT INTO ev VALUES (now(), 1, 1)");
my $commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = 'app_4'";
my $c0 = $node->safe_psql('postgres', $commits);
sleep 3;
my $c1 = $node->safe_psql('postgres', $commits);
cmp_ok($c1 - $c0, '<', 300, 'a busy rollup is not retried in a tight loop');
$bg->query_safe('COMMIT');
$bg->quit;
ok($node->poll_query_until('app_4', "SELECT pending_keys = 0 FROM memoria.status WHERE rollup = 'ev_daily'"),
   'once free, the busy rollup is refreshed');

# The launcher, terminated, comes back and serves every database again.
$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'memoria launcher'");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'memoria launcher'"),
   'the launcher is restarted');
for my $db (qw(app_1 app_5)) {
    $node->safe_psql($db, "INSERT INTO ev VALUES (now(), 2, 2)");
    ok($node->poll_query_until($db, "SELECT pending_keys = 0 FROM memoria.status WHERE rollup = 'ev_daily'"),
       "after the launcher's restart, $db is refreshed again");
}

# DROP DATABASE while a worker is in the middle of a long batch: the worker
# leaves, the drop succeeds.
$node->safe_psql('app_6', q{
    CREATE FUNCTION slow(v int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT v FROM pg_sleep(0.01) $$;
    CREATE TABLE backlog (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
    SELECT memoria.create_rollup('b_slow', 'backlog', 'at', ARRAY['k'], ARRAY['sum(slow(v)) AS v'], bucket => '1 hour');
});
$node->append_conf('postgresql.conf', 'memoria.batch_keys = 10000');
$node->reload;
$node->safe_psql('app_6', "INSERT INTO backlog SELECT now() - g * interval '1 hour', g % 5, g FROM generate_series(1, 2000) g");
ok($node->poll_query_until('postgres', "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'memoria worker' "
                                     . "AND datname = 'app_6' AND query LIKE 'memoria: refresh of rollup b_slow%'"),
   'a worker is in a long batch');
my ($drc, $dout, $derr) = $node->psql('postgres', 'DROP DATABASE app_6');
is($drc, 0, 'DROP DATABASE makes the worker leave mid-batch') or diag($derr);

# Log lines name their database.
$node->safe_psql('app_2', q{
    CREATE FUNCTION picky(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN IF v = 13 THEN RAISE EXCEPTION 'picky does not like 13'; END IF; RETURN v; END $$;
    SELECT memoria.create_rollup('ev_picky', 'ev', 'at', ARRAY['k'], ARRAY['sum(picky(v)) AS v']);
    INSERT INTO ev VALUES (now(), 1, 13);
});
ok($node->poll_query_until('app_2', "SELECT last_status = 'error' FROM memoria.status WHERE rollup = 'ev_picky'"),
   'the failing rollup fails');
like(slurp_file($node->logfile), qr/picky does not like 13.*\n(?:.*\n)*?.*memoria worker in database "app_2"/,
     "the worker's log lines name its database");

$node->stop;
done_testing();
