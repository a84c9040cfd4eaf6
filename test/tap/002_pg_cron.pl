# memoria.schedule with a real pg_cron: the job runs memoria.run as the
# rollup's owner, succeeds (its status is part of the contract), the rollup
# converges, cron and the background worker together never double count, and
# the job goes away with its rollup.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'memoria, pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 20
memoria.naptime = 1
memoria.enabled = off
});
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_cron;
    CREATE EXTENSION memoria;
    CREATE TABLE ev (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
    SELECT memoria.create_rollup('ev_daily', 'ev', 'at', ARRAY['k'], ARRAY['sum(v) AS v', 'count(*) AS n']);
    SELECT memoria.refresh_window('ev_daily', '-infinity', 'infinity');
});

$node->safe_psql('postgres', "SELECT memoria.schedule('ev_daily', '0 0 1 1 *')");
$node->safe_psql('postgres', "SELECT memoria.schedule('ev_daily', '* * * * *')");
is($node->safe_psql('postgres', "SELECT count(*) || ' ' || min(schedule) FROM cron.job WHERE jobname = 'memoria:ev_daily'"),
   '1 * * * * *', 'schedule creates, then replaces, one job named memoria:ev_daily');
is($node->safe_psql('postgres', "SELECT scheduled_by FROM memoria.status"), 'pg_cron', 'status says pg_cron schedules it');

# With the worker off, only pg_cron can refresh.
$node->safe_psql('postgres', "INSERT INTO ev SELECT now() - g * interval '1 hour', g % 5, g FROM generate_series(1, 2000) g");
ok($node->poll_query_until('postgres', "SELECT pending_keys = 0 FROM memoria.status"), 'the pg_cron job refreshed the rollup');
ok($node->poll_query_until('postgres',
    "SELECT count(*) > 0 FROM cron.job_run_details d JOIN cron.job j USING (jobid) "
  . "WHERE j.jobname = 'memoria:ev_daily' AND d.status IN ('succeeded', 'failed')"), 'the job finished');
is($node->safe_psql('postgres',
    "SELECT string_agg(DISTINCT d.status, ',') FROM cron.job_run_details d JOIN cron.job j USING (jobid) "
  . "WHERE j.jobname = 'memoria:ev_daily' AND d.status IN ('succeeded', 'failed')"), 'succeeded', 'and it succeeded');
is($node->safe_psql('postgres', "SELECT count(*) FROM memoria.verify('ev_daily')"), '0', 'the rollup is exact');

# pg_cron and the worker at once: still exact, and a run fails only when it
# found the worker refreshing (and says so).
$node->append_conf('postgresql.conf', "memoria.enabled = on");
$node->reload;
$node->safe_psql('postgres', "SELECT memoria.alter_rollup('ev_daily', refresh_interval => '1 second')");
my $runs = $node->safe_psql('postgres', "SELECT count(*) FROM cron.job_run_details");
for my $i (1 .. 30) {
    $node->safe_psql('postgres', "INSERT INTO ev SELECT now() - g * interval '1 hour', g % 5, g FROM generate_series(1, 200) g;"
                               . " UPDATE ev SET v = v + 1 WHERE k = $i % 5; DELETE FROM ev WHERE v % 97 = $i");
    sleep 1 if $i % 3 == 0;
}
ok($node->poll_query_until('postgres', "SELECT count(*) > $runs FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')"),
   'another cron run happened beside the worker');
ok($node->poll_query_until('postgres', "SELECT pending_keys = 0 FROM memoria.status"), 'both together converge');
is($node->safe_psql('postgres', "SELECT count(*) FROM memoria.verify('ev_daily')"), '0', 'nothing counted twice');
is($node->safe_psql('postgres', "SELECT count(*) FROM cron.job_run_details WHERE status = 'failed' "
                               . "AND return_message NOT LIKE '%rollup \"ev_daily\" was busy: another session is refreshing it%'"),
   '0', 'no cron run failed, but for runs that found the worker refreshing and said so');

# A rename takes the job along; the renamed job still refreshes.
$node->safe_psql('postgres', "SELECT * FROM memoria.alter_rollup('ev_daily', rename_to => 'ev_by_day')");
is($node->safe_psql('postgres', "SELECT string_agg(jobname, ',') FROM cron.job WHERE jobname LIKE 'memoria:%'"),
   'memoria:ev_by_day', 'alter_rollup(rename_to) renames the job');
$node->safe_psql('postgres', "SELECT * FROM memoria.alter_rollup('ev_by_day', rename_to => 'ev_daily')");
is($node->safe_psql('postgres', "SELECT command LIKE '%memoria.run(''''ev_daily'''')%' FROM cron.job WHERE jobname = 'memoria:ev_daily'"),
   't', 'and its command, renamed back');

# unschedule, and drop_rollup removes a job.
is($node->safe_psql('postgres', "SELECT memoria.unschedule('ev_daily')"), 't', 'unschedule removes the job');
is($node->safe_psql('postgres', "SELECT memoria.unschedule('ev_daily')"), 'f', 'a second unschedule finds none');
$node->safe_psql('postgres', "SELECT memoria.schedule('ev_daily', '* * * * *')");
$node->safe_psql('postgres', "SELECT memoria.drop_rollup('ev_daily', drop_table => true)");
is($node->safe_psql('postgres', "SELECT count(*) FROM cron.job WHERE jobname LIKE 'memoria:%'"), '0',
   'drop_rollup removes its cron job');

# DROP EXTENSION memoria cannot reach into pg_cron's catalog in the same
# command; the orphaned job removes itself the next time it runs.
$node->safe_psql('postgres', q{
    SELECT memoria.create_rollup('ev_again', 'ev', 'at', ARRAY['k'], ARRAY['count(*) AS n']);
    SELECT memoria.schedule('ev_again', '* * * * *');
});
$node->safe_psql('postgres', "DROP EXTENSION memoria CASCADE");
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM cron.job WHERE jobname LIKE 'memoria:%'"),
   'after DROP EXTENSION the job removes itself on its next run');
is($node->safe_psql('postgres',
    "SELECT count(*) FROM cron.job_run_details WHERE status = 'failed' AND command LIKE '%ev_again%'"), '0',
   'and that last run did not fail');

$node->stop;
done_testing();
