# The background worker: refreshes every database on its own, picks up new
# databases, obeys SIGHUP, comes back after being terminated, survives a
# failing rollup and a crash, and never runs on a standby.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'memoria'
memoria.naptime = 1
restart_after_crash = on
});
$node->start;

# A database with the extension, one rollup refreshed every second.
sub create_database {
    my ($db) = @_;
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql($db, q{
        CREATE EXTENSION memoria;
        CREATE TABLE ev (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
        SELECT memoria.create_rollup('ev_daily', 'ev', 'at', ARRAY['k'], ARRAY['sum(v) AS v', 'count(*) AS n']);
        SELECT memoria.alter_rollup('ev_daily', refresh_interval => '1 second');
        SELECT memoria.refresh_window('ev_daily', '-infinity', 'infinity');
    });
}

sub write_some {
    my ($db) = @_;
    $node->safe_psql($db, "INSERT INTO ev SELECT now() - g * interval '1 hour', g % 5, g FROM generate_series(1, 500) g;"
                        . " DELETE FROM ev WHERE v % 7 = 0;");
}

sub converges {
    my ($db, $what) = @_;
    ok($node->poll_query_until($db,
        "SELECT pending_keys = 0 AND last_status IN ('ok', 'idle') FROM memoria.status WHERE rollup = 'ev_daily'"),
        "$what: the worker refreshed $db");
    is($node->safe_psql($db, "SELECT count(*) FROM memoria.verify('ev_daily')"), '0', "$what: $db is exact");
}

sub worker_count {
    return $node->safe_psql('postgres',
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'memoria worker' AND datname = '$_[0]'");
}

# Two databases, refreshed without anyone calling refresh.
create_database($_) for qw(db1 db2);
write_some($_) for qw(db1 db2);
converges($_, 'two databases') for qw(db1 db2);
is($node->safe_psql('db1', "SELECT scheduled_by FROM memoria.status"), 'worker', 'status says the worker schedules it');

# A database created after start-up is picked up.
create_database('db3');
write_some('db3');
converges('db3', 'new database');

# SIGHUP: memoria.enabled = off stops the workers, on brings them back.
$node->append_conf('postgresql.conf', "memoria.enabled = off");
$node->reload;
ok($node->poll_query_until('postgres',
    "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'memoria worker'"), 'disabled: workers exit');
write_some('db1');
sleep 3;
isnt($node->safe_psql('db1', "SELECT pending_keys FROM memoria.status"), '0', 'disabled: nothing is refreshed');
$node->append_conf('postgresql.conf', "memoria.enabled = on");
$node->reload;
converges('db1', 'enabled again');

# A terminated worker comes back.
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'memoria worker' AND datname = 'db2'"),
   'db2 has a worker');
$node->safe_psql('postgres',
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'memoria worker' AND datname = 'db2'");
write_some('db2');
converges('db2', 'after pg_terminate_backend');

# A failing rollup does not stop the others; its error shows in status.
$node->safe_psql('db1', q{
    CREATE FUNCTION picky(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN IF v = 13 THEN RAISE EXCEPTION 'picky does not like 13'; END IF; RETURN v; END $$;
    SELECT memoria.create_rollup('ev_picky', 'ev', 'at', ARRAY['k'], ARRAY['sum(picky(v)) AS v']);
    SELECT memoria.alter_rollup('ev_picky', refresh_interval => '1 second');
});
$node->safe_psql('db1', "INSERT INTO ev VALUES (now(), 1, 13)");
write_some('db1');
ok($node->poll_query_until('db1', "SELECT last_status = 'error' FROM memoria.status WHERE rollup = 'ev_picky'"),
   'the failing rollup is marked as failed');
like($node->safe_psql('db1', "SELECT last_error FROM memoria.status WHERE rollup = 'ev_picky'"),
     qr/picky does not like 13/, 'its error message is kept');
converges('db1', 'beside a failing rollup');
$node->safe_psql('db1', "SELECT memoria.drop_rollup('ev_picky', drop_table => true)");

# The worker runs rollup SQL as the rollup's owner, never as a superuser.
$node->safe_psql('db2', q{
    CREATE ROLE app LOGIN;
    CREATE TABLE app_ev (at timestamptz NOT NULL, v int NOT NULL);
    ALTER TABLE app_ev OWNER TO app;
    SET ROLE app;
    -- who: the role that computed the row
    SELECT memoria.create_rollup('app_daily', 'app_ev', 'at', ARRAY[]::text[],
                                 ARRAY['sum(v) AS v', 'max(current_user::text) AS who']);
    SELECT memoria.alter_rollup('app_daily', refresh_interval => '1 second');
    RESET ROLE;
});
$node->safe_psql('db2', "INSERT INTO app_ev VALUES (now(), 1)");
ok($node->poll_query_until('db2', "SELECT pending_keys = 0 AND refreshes > 0 FROM memoria.status WHERE rollup = 'app_daily'"),
   'the worker refreshed a non-superuser rollup');
is($node->safe_psql('db2', "SELECT last_status FROM memoria.status WHERE rollup = 'app_daily'"), 'ok', 'successfully');
is($node->safe_psql('db2', "SELECT string_agg(DISTINCT who, ',') FROM memoria_rollup.app_daily"), 'app',
   'as its owner, never as a superuser');

# kill -9 of the worker in the middle of a refresh: crash recovery, then the
# rollup converges.
$node->safe_psql('db3', q{
    CREATE FUNCTION slow(v int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT v FROM pg_sleep(0.002) $$;
    SELECT memoria.create_rollup('ev_slow', 'ev', 'at', ARRAY['k'], ARRAY['sum(slow(v)) AS v']);
    SELECT memoria.alter_rollup('ev_slow', refresh_interval => '1 second');
});
write_some('db3');
# Poll for the pid itself: a separate "is it refreshing?" check races with
# the refresh finishing.
my $pid = '';
for (1 .. 1200) {
    $pid = $node->safe_psql('postgres',
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'memoria: refresh of rollup ev_slow%' LIMIT 1");
    last if $pid ne '';
    usleep(50_000);
}
ok($pid ne '', 'caught the worker refreshing');
kill 'KILL', $pid;
ok($node->poll_query_until('db3', "SELECT 1", '1'), 'the server is back after crash recovery');
ok($node->poll_query_until('db3',
    "SELECT bool_and(pending_keys = 0) FROM memoria.status", 't'), 'after the crash the rollups converge');
is($node->safe_psql('db3', "SELECT count(*) FROM memoria.verify('ev_slow')"), '0', 'ev_slow is exact after the crash');
is($node->safe_psql('db3', "SELECT count(*) FROM memoria.verify('ev_daily')"), '0', 'ev_daily is exact after the crash');

# A streaming standby runs no worker and logs no memoria errors.
$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
write_some('db1');
$node->wait_for_catchup($standby);
sleep 3;
is($standby->safe_psql('postgres',
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'memoria%'"), '0', 'no memoria process on the standby');
my $log = slurp_file($standby->logfile);
unlike($log, qr/ERROR.*memoria|memoria.*ERROR/, 'the standby logs no memoria errors');
converges('db1', 'primary beside a standby');

$standby->stop;

# A chain: the worker refreshes a rollup of a rollup in the same visit as the
# rollup below it, even when its own refresh_interval is far off (its name
# sorts first, so name order would refresh it before the level below).
$node->safe_psql('db1', q{
    SELECT memoria.create_rollup('a_weekly', 'memoria_rollup.ev_daily', 'bucket', ARRAY['k'],
                                 ARRAY['sum(v)::bigint AS v', 'sum(n)::bigint AS n'], bucket => '7 days');
    SELECT memoria.refresh_window('a_weekly', '-infinity', 'infinity');
    SELECT memoria.alter_rollup('a_weekly', refresh_interval => '1 hour');
    SELECT memoria.alter_rollup('ev_daily', refresh_interval => '1 hour');
});
ok($node->poll_query_until('db1', "SELECT count(*) = 2 FROM memoria.status WHERE last_refresh_at IS NOT NULL"),
   'both refreshed once');
$node->safe_psql('db1', "INSERT INTO ev VALUES (now(), 42, 4200)");
$node->safe_psql('db1', "SELECT memoria.alter_rollup('ev_daily', refresh_interval => '1 second')");
ok($node->poll_query_until('db1', "SELECT count(*) = 1 FROM memoria_rollup.a_weekly WHERE k = 42 AND v = 4200"),
   'a write reaches the top of the chain without waiting for its refresh_interval');
is($node->safe_psql('db1', "SELECT count(*) FROM memoria.verify('a_weekly')"), '0', 'the chain is exact');
$node->stop;
done_testing();
