# pg_cron in its own database (cron.database_name = 'postgres'), the
# application in others: memoria.schedule, unschedule, scheduled_by, drop and
# rename reach pg_cron's catalog there, as the calling role, with pg_cron's
# privileges; a drop or rename rolled back leaves the job alone; two
# databases' rollups of one name get a job each; a cron run that found its
# rollup busy, or whose refresh failed, says so in pg_cron's run log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crondb');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'memoria, pg_cron'
cron.database_name = 'postgres'
max_worker_processes = 20
memoria.enabled = off
});
# pg_cron's default: each run over a libpq connection (002 uses its
# background workers).
$node->append_conf('postgresql.conf', "cron.host = '" . $node->host . "'");
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_cron;
    CREATE DATABASE app;
    CREATE DATABASE app2;
    CREATE ROLE alice LOGIN;
    CREATE ROLE owners NOLOGIN;
    GRANT owners TO alice;
});
for my $db ('app', 'app2') {
    $node->safe_psql($db, q{
        CREATE EXTENSION memoria;
        CREATE TABLE ev (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
        SELECT memoria.create_rollup('ev_daily', 'ev', 'at', ARRAY['k'], ARRAY['sum(v) AS v', 'count(*) AS n']);
    });
}
sub cron { return $node->safe_psql('postgres', $_[0]); }
sub app { return $node->safe_psql('app', $_[0]); }

# schedule from app: the job lives in postgres, runs in app.
like(app("SELECT memoria.schedule('ev_daily', '0 0 1 1 *')"), qr/^\d+$/, 'schedule from another database returns the job id');
app("SELECT memoria.schedule('ev_daily', '* * * * *')");
is(cron("SELECT string_agg(jobname || ' ' || database || ' ' || username || ' ' || schedule, ',') FROM cron.job"),
   'memoria:ev_daily@app app postgres * * * * *', 'one job, replaced, named for its database, running in app');
is(app("SELECT scheduled_by FROM memoria.status"), 'pg_cron', 'status in app sees the job in postgres');
$node->safe_psql('app2', "SELECT memoria.schedule('ev_daily', '0 0 1 1 *')");
is(cron("SELECT count(*) FROM cron.job"), '2', "app2's rollup of the same name gets a job of its own");
is($node->safe_psql('app2', "SELECT scheduled_by FROM memoria.status"), 'pg_cron', 'each database sees its own');
$node->safe_psql('app2', "SELECT memoria.drop_rollup('ev_daily', drop_table => true)");
is(cron("SELECT string_agg(jobname, ',') FROM cron.job"), 'memoria:ev_daily@app',
   "drop_rollup in app2 removes app2's job only");

# The job refreshes the rollup in app.
app("INSERT INTO ev SELECT now() - g * interval '1 hour', g % 5, g FROM generate_series(1, 500) g");
ok($node->poll_query_until('app', "SELECT pending_keys = 0 FROM memoria.status"), 'the job refreshed the rollup in app');
is(app("SELECT count(*) FROM memoria.verify('ev_daily')"), '0', 'exactly');
ok($node->poll_query_until('postgres', "SELECT count(*) > 0 FROM cron.job_run_details WHERE status = 'succeeded'"),
   'and pg_cron recorded a successful run');

# Rolled back, a drop or a rename leaves the job as it was; committed, the
# rename takes the job along.
app("BEGIN; SELECT memoria.drop_rollup('ev_daily'); ROLLBACK;");
is(cron("SELECT string_agg(jobname, ',') FROM cron.job"), 'memoria:ev_daily@app', 'a rolled-back drop keeps the job');
app("SELECT * FROM memoria.alter_rollup('ev_daily', rename_to => 'ev_days', dry_run => true)");
is(cron("SELECT string_agg(jobname, ',') FROM cron.job"), 'memoria:ev_daily@app', 'a dry-run rename keeps the job');
app("BEGIN; SELECT * FROM memoria.alter_rollup('ev_daily', rename_to => 'ev_days'); SAVEPOINT s; "
  . "SELECT * FROM memoria.alter_rollup('ev_days', rename_to => 'ev_nope'); ROLLBACK TO s; COMMIT;");
is(cron("SELECT jobname || ' ' || (command LIKE '%memoria.run(''''ev_days'''')%') FROM cron.job"), 'memoria:ev_days@app true',
   'a committed rename renames the job and its command (not the rolled-back one)');
app("SELECT * FROM memoria.alter_rollup('ev_days', rename_to => 'ev_daily')");

# A name no command can be broken out of: quotes, a dollar quote, a
# backslash.  The renamed job's command runs as written.
my $awkward = q{e'v$memoria$;\\};
app("SELECT * FROM memoria.alter_rollup('ev_daily', rename_to => \$n\$$awkward\$n\$)");
my $cmd = cron("SELECT command FROM cron.job WHERE jobname = \$n\$memoria:$awkward\@app\$n\$");
isnt($cmd, '', 'the job follows a rename to an awkward name');
my ($r0, $o0, $e0) = $node->psql('app', $cmd);
is($r0 . $e0, '0', 'and its command runs as written (no quote is broken)');
app("SELECT * FROM memoria.alter_rollup(\$n\$$awkward\$n\$, rename_to => 'ev_daily')");
is(cron("SELECT jobname FROM cron.job"), 'memoria:ev_daily@app', 'renamed back');

# pg_cron's job names are 63 bytes: a name that would not fit is refused.
app("SELECT memoria.create_rollup('ev_" . ('x' x 50) . "', 'ev', 'at', ARRAY['k'], ARRAY['count(*) AS n'])");
($r0, $o0, $e0) = $node->psql('app', "SELECT memoria.schedule('ev_" . ('x' x 50) . "', '* * * * *')");
like($e0, qr/name: pg_cron job name "memoria:ev_x+\@app" is longer than pg_cron allows \(63 bytes\)/,
     'a job name longer than pg_cron allows is refused');
app("SELECT memoria.drop_rollup('ev_" . ('x' x 50) . "', drop_table => true)");

# A job made by hand with cron.schedule_in_database is seen and cleaned up.
app("SELECT memoria.create_rollup('ev_hourly', 'ev', 'at', ARRAY['k'], ARRAY['count(*) AS n'], bucket => '1 hour')");
cron("SELECT cron.schedule_in_database('nightly hourly', '0 3 * * *', 'CALL memoria.run(''ev_hourly'');', 'app')");
is(app("SELECT scheduled_by FROM memoria.status WHERE rollup = 'ev_hourly'"), 'pg_cron', 'a hand-made job is seen');
app("SELECT memoria.drop_rollup('ev_hourly', drop_table => true)");
is(cron("SELECT count(*) FROM cron.job WHERE jobname = 'nightly hourly'"), '0', 'and removed with its rollup');

# unschedule.
is(app("SELECT memoria.unschedule('ev_daily')"), 't', 'unschedule from app removes the job');
is(app("SELECT scheduled_by FROM memoria.status"), 'manual', 'status says so');
is(app("SELECT memoria.unschedule('ev_daily')"), 'f', 'a second unschedule finds none');

# A role without pg_cron's privileges gets pg_cron's error and a hint; with
# them (granted in postgres, as pg_cron asks), it schedules its own rollup,
# also through SET ROLE to a role that cannot log in.
app(q{
    CREATE TABLE alice_ev (at timestamptz NOT NULL, k int NOT NULL);
    ALTER TABLE alice_ev OWNER TO owners;
    SELECT memoria.create_rollup('alice_daily', 'alice_ev', 'at', ARRAY['k'], ARRAY['count(*) AS n']);
});
my ($ret, $out, $err) = $node->psql('app', "SET ROLE owners; SELECT memoria.schedule('alice_daily', '* * * * *')",
                                    extra_params => ['-U', 'alice']);
like($err, qr/ERROR:  pg_cron in database "postgres": permission denied for schema cron.*HINT:  In database postgres: GRANT USAGE ON SCHEMA cron TO owners/s,
     'without pg_cron privileges: pg_cron\'s error, with the grants to ask for');
cron(q{GRANT USAGE ON SCHEMA cron TO owners;
       GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) TO owners;});
($ret, $out, $err) = $node->psql('app', "SET ROLE owners; SELECT memoria.schedule('alice_daily', '* * * * *')",
                                 extra_params => ['-U', 'alice']);
like($out, qr/^\d+$/, 'with them, the owner schedules (as a NOLOGIN role, through SET ROLE)') or diag($err);
is(cron("SELECT username FROM cron.job WHERE jobname = 'memoria:alice_daily\@app'"), 'owners', 'the job runs as that role');
is($node->safe_psql('app', "SET ROLE owners; SELECT rollup || ' ' || scheduled_by FROM memoria.status",
                    extra_params => ['-U', 'alice']), 'alice_daily pg_cron', 'and its status sees it (row security)');
# The owner's rename or drop changes its own jobs only: a superuser's job
# that refreshes the rollup stays as it was.
cron("SELECT cron.schedule_in_database('dba nightly', '0 4 * * *', 'CALL memoria.run(''alice_daily'')', 'app')");
$node->safe_psql('app', "SET ROLE owners; SELECT * FROM memoria.alter_rollup('alice_daily', rename_to => 'alice_days')",
                 extra_params => ['-U', 'alice']);
is(cron("SELECT string_agg(jobname || ': ' || command, ', ' ORDER BY jobname) FROM cron.job "
      . "WHERE jobname IN ('dba nightly', 'memoria:alice_days\@app', 'memoria:alice_daily\@app')"),
   "dba nightly: CALL memoria.run('alice_daily'), memoria:alice_days\@app: "
   . app("SELECT memoria_internal.cron_command('alice_days')"),
   "the owner's rename renames its job, not the superuser's");
is(cron("SELECT username FROM cron.job WHERE jobname = 'memoria:alice_days\@app'"), 'owners',
   'the renamed job still runs as the owner');
$node->safe_psql('app', "SET ROLE owners; SELECT * FROM memoria.alter_rollup('alice_days', rename_to => 'alice_daily')",
                 extra_params => ['-U', 'alice']);
cron("SELECT cron.unschedule('dba nightly')");
($ret, $out, $err) = $node->psql('app', "SELECT memoria.schedule('ev_daily', '* * * * *')", extra_params => ['-U', 'alice']);
like($err, qr/permission denied for rollup "ev_daily"/, "another role's rollup cannot be scheduled");

# A run that found its rollup busy, or whose refresh failed, fails with a
# message saying so; the other rollups of the run are still refreshed.
app("SELECT memoria.schedule('ev_daily', '* * * * *')");
app("SELECT memoria.create_rollup('ev_bad', 'ev', 'at', ARRAY['k'], ARRAY['sum(100 / v) AS r'])");
app("SELECT memoria.schedule('ev_bad', '* * * * *')");
$node->psql('app', "SET ROLE owners; SELECT memoria.unschedule('alice_daily')", extra_params => ['-U', 'alice']);
my $holder = $node->background_psql('app');   # a refresh of ev_daily in an open transaction
$holder->query_safe('BEGIN');
$holder->query_safe("SELECT status FROM memoria.refresh('ev_daily')");
app("INSERT INTO ev VALUES (now(), 1, 0), (now() - interval '3 days', 2, 7)");
my $before = cron("SELECT coalesce(max(runid), 0) FROM cron.job_run_details");
ok($node->poll_query_until('postgres',
    "SELECT count(DISTINCT jobid) = 2 FROM cron.job_run_details WHERE runid > $before AND status IN ('succeeded', 'failed')"),
   'both jobs ran');
like(cron("SELECT return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid) "
        . "WHERE runid > $before AND j.jobname = 'memoria:ev_daily\@app' AND d.status = 'failed'"),
     qr/rollup "ev_daily" was busy: another session is refreshing it, so this run refreshed nothing/,
     'a busy run failed, saying the rollup was busy');
like(cron("SELECT return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid) "
        . "WHERE runid > $before AND j.jobname = 'memoria:ev_bad\@app' AND d.status = 'failed'"),
     qr/refresh of rollup "ev_bad" failed: .*division by zero/, 'a failing refresh failed the run, saying why');
is(app("SELECT failing_keys FROM memoria.status WHERE rollup = 'ev_bad'"), '1', 'the good keys were refreshed');
$holder->query_safe('COMMIT');
$holder->quit;

# A monitoring role reads status without error (pg_cron's row security shows
# it no job, so it cannot tell pg_cron schedules them).
$node->safe_psql('postgres', "CREATE ROLE watcher LOGIN IN ROLE pg_monitor");
is($node->safe_psql('app', "SELECT count(*) FROM memoria.status", extra_params => ['-U', 'watcher']), '3',
   'a pg_monitor role reads status');

# Without pg_cron's extension in postgres: a clear error, and no job to clean.
cron("SELECT cron.unschedule(jobid) FROM cron.job");
cron("DROP EXTENSION pg_cron");
($ret, $out, $err) = $node->psql('app', "SELECT memoria.schedule('ev_daily', '* * * * *')");
like($err, qr/pg_cron is not installed in database "postgres", which cron.database_name names/, 'no pg_cron there: clear error');
($ret, $out, $err) = $node->psql('app', "SELECT memoria.drop_rollup('ev_bad', drop_table => true)");
is($err, '', 'and a drop says nothing about jobs');
is(app("SELECT string_agg(DISTINCT scheduled_by, ',') FROM memoria.status"), 'manual', 'status: manual');

$node->stop;
done_testing();
