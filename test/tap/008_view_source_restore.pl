# A rollup of a view joining a fact table to its dimension tables (and a
# dimension expression), through
# pg_dump and pg_restore (plain and -j 2): the definition, the rollup's rows
# and the writes pending at dump time, in the dirty log and in the link log
# (an agent moved, a task re-assigned, not yet refreshed), all come back; the
# restored rollup captures every table of the join again (capture triggers
# on each, nothing capture_disabled); after more writes to the dimension
# tables, _live and a refresh equal a fresh GROUP BY over the view; a joined
# table cannot be dropped from under the view.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('view_restore');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'memoria'
memoria.enabled = off
});
$node->start;

sub query {
    my ($db, $sql, $user) = @_;
    return $node->safe_psql($db, $sql, connstr => $node->connstr($db) . ' user=' . ($user // 'postgres'));
}

sub run_ok {
    my ($cmd, $name) = @_;
    my ($out, $err) = ('', '');
    IPC::Run::run($cmd, '>', \$out, '2>', \$err);
    is($? >> 8, 0, "$name: exits 0");
    unlike($err, qr/ERROR|error:|FATAL/, "$name: no error in its output");
}

my @conn = ('-h', $node->host, '-p', $node->port, '-U', 'postgres');

$node->safe_psql('postgres', 'CREATE ROLE app LOGIN; CREATE DATABASE src OWNER app;');
$node->safe_psql('src', 'CREATE EXTENSION memoria');
query('src', q{
    CREATE TABLE workspace (id int PRIMARY KEY);
    CREATE TABLE agent (id int PRIMARY KEY, workspace_id int NOT NULL REFERENCES workspace ON DELETE CASCADE);
    CREATE TABLE issue (id int PRIMARY KEY, project_id int);
    CREATE TABLE task (id int PRIMARY KEY, agent_id int NOT NULL REFERENCES agent ON DELETE CASCADE, issue_id int);
    CREATE INDEX ON task (agent_id);
    CREATE INDEX ON task (issue_id);
    CREATE TABLE usage (id serial PRIMARY KEY, task_id int NOT NULL REFERENCES task ON DELETE CASCADE,
                        model text NOT NULL, tokens bigint NOT NULL, at timestamptz NOT NULL);
    CREATE INDEX ON usage (task_id);
    CREATE VIEW usage_v AS
        SELECT u.at, u.model, u.tokens, u.task_id, a.workspace_id, t.agent_id, i.project_id
        FROM usage u JOIN task t ON t.id = u.task_id JOIN agent a ON a.id = t.agent_id
        LEFT JOIN issue i ON i.id = t.issue_id;
    INSERT INTO workspace SELECT g FROM generate_series(1, 4) g;
    INSERT INTO agent SELECT g, 1 + g % 4 FROM generate_series(1, 12) g;
    INSERT INTO issue SELECT g, g % 3 FROM generate_series(1, 6) g;
    INSERT INTO task SELECT g, 1 + g % 12, 1 + g % 7 FROM generate_series(1, 60) g;
    INSERT INTO usage (task_id, model, tokens, at)
        SELECT 1 + g % 60, 'm' || (g % 3), g, timestamptz '2024-01-01' + g * interval '53 minutes'
        FROM generate_series(1, 3000) g;
    SELECT memoria.create_rollup('usage_daily', 'usage_v', 'at',
                                 ARRAY['workspace_id', 'agent_id', 'project_id', 'upper(model) AS model'],
                                 ARRAY['sum(tokens)::bigint AS tokens', 'count(*) AS n']);
    SELECT status FROM memoria.refresh_window('usage_daily', '-infinity', 'infinity');
    -- Pending at dump time: writes to joined tables and to the fact table.
    UPDATE agent SET workspace_id = 4 WHERE id = 1;
    UPDATE task SET agent_id = 2 WHERE id IN (3, 4);
    UPDATE issue SET project_id = 9 WHERE id = 2;
    INSERT INTO usage (task_id, model, tokens, at) VALUES (5, 'm9', 1, '2024-01-02 03:00');
}, 'app');

my $truth = q{SELECT memoria.bucket(at, '1 day', 'UTC') AS bucket, workspace_id, agent_id, project_id, upper(model) AS model,
                     sum(tokens)::bigint AS tokens, count(*) AS n FROM usage_v GROUP BY 1, 2, 3, 4, 5};
sub differences {
    my ($table) = @_;
    my $r = "SELECT * FROM memoria_rollup.$table";
    return "SELECT count(*) FROM (($r EXCEPT ALL $truth) UNION ALL ($truth EXCEPT ALL $r)) d";
}
my $content_sql = q{SELECT count(*) || ' ' || md5(string_agg(t::text, ';' ORDER BY t::text)) FROM memoria_rollup.usage_daily t};
my $links_sql = q{SELECT string_agg(link::text || ':' || encode(k1, 'hex'), ',' ORDER BY link::text, k1) FROM (SELECT DISTINCT * FROM memoria_state.links_1) l};
my $content_at_dump = query('src', $content_sql);
my $links_at_dump = query('src', $links_sql);
like($links_at_dump, qr/agent:00000001.*issue:00000002.*task:00000003/,
     "src: the link log holds the writes to joined tables ($links_at_dump)");
isnt(query('src', differences('usage_daily')), '0', 'src: the rollup is stale at dump time');
is(query('src', differences('usage_daily_live')), '0', 'src: its _live view is exact at dump time');

my $dir = PostgreSQL::Test::Utils::tempdir;
run_ok(['pg_dump', @conn, '-Fc', '-f', "$dir/src.dump", '-d', 'src'], 'pg_dump -Fc');
run_ok(['pg_dump', @conn, '-Fp', '-f', "$dir/src.sql", '-d', 'src'], 'pg_dump -Fp');
$node->safe_psql('postgres', 'CREATE DATABASE r1 OWNER app; CREATE DATABASE r2 OWNER app; CREATE DATABASE r3 OWNER app;');
run_ok(['pg_restore', @conn, '-d', 'r1', "$dir/src.dump"], 'pg_restore into r1');
run_ok(['pg_restore', @conn, '-d', 'r2', '-j', '2', "$dir/src.dump"], 'pg_restore -j 2 into r2');
run_ok(['psql', @conn, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'r3', '-f', "$dir/src.sql"], 'psql < plain dump into r3');

for my $db ('r1', 'r2', 'r3') {
    is(query($db, $content_sql), $content_at_dump, "$db: the rollup has the rows it had at dump time");
    is(query($db, $links_sql), $links_at_dump, "$db: the link log's pending writes are back");
    unlike(query($db, "SELECT state FROM memoria.status WHERE rollup = 'usage_daily'", 'app'), qr/capture/,
       "$db: the rollup captures (not capture_disabled)");
    is(query($db, q{SELECT string_agg(tgrelid::regclass || '=' || n, ',' ORDER BY tgrelid::regclass::text) FROM (
                      SELECT tgrelid, count(*) n FROM pg_trigger WHERE tgname ~ '^zz_memoria_(capture|insert|replica|truncate)_'
                      GROUP BY 1) t}),
       'agent=2,issue=2,task=2,usage=4', "$db: capture triggers on every table of the join");
    is(query($db, differences('usage_daily_live'), 'app'), '0', "$db: _live is exact right after the restore");
    query($db, q{
        UPDATE agent SET workspace_id = 2 WHERE id IN (5, 6);
        DELETE FROM issue WHERE id = 3;
        INSERT INTO issue VALUES (3, 7);
        UPDATE task SET issue_id = NULL WHERE id = 10;
        DELETE FROM agent WHERE id = 7;
        INSERT INTO usage (task_id, model, tokens, at) VALUES (11, 'm1', 100, '2024-01-20 05:00');
    }, 'app');
    is(query($db, differences('usage_daily_live'), 'app'), '0', "$db: _live is exact after writes to every table");
    is(query($db, "SELECT status FROM memoria.refresh('usage_daily')", 'app'), 'ok', "$db: the refresh is ok");
    is(query($db, differences('usage_daily'), 'app'), '0', "$db: the rollup equals a fresh GROUP BY over the view");
    is(query($db, "SELECT count(*) FROM memoria.verify('usage_daily')", 'app'), '0', "$db: verify finds nothing");
    my ($out, $err) = ('', '');
    my $rc = $node->psql($db, 'DROP TABLE agent', stderr => \$err, connstr => $node->connstr($db) . ' user=app');
    like($err, qr/cannot drop table agent because other objects depend on it/, "$db: DROP TABLE agent refuses");
}

unlike(slurp_file($node->logfile), qr/cache lookup failed/, 'no "cache lookup failed" in the server log');
$node->stop;
done_testing();
