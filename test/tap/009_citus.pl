# Rollups of Citus distributed tables (src/citus.hpp): a coordinator and two
# workers.  After every kind of write -- through the coordinator and on a
# worker, multi-shard transactions (two-phase commit), COPY, TRUNCATE -- and
# after shard moves, a split and a rebalance with keys pending and writers
# running, and a worker killed during a refresh, each rollup equals a fresh
# GROUP BY of its source.  Dropping a rollup leaves no trigger, log or
# catalog row of memoria's on any node.  memoria is installed at 0.7.0 and
# updated first, through the coordinator.
#
# Needs Citus (../shared/vendor/build-citus.sh builds it from the vendored
# source); skipped where it is not installed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $libdir = `pg_config --pkglibdir`;
chomp $libdir;
plan skip_all => "Citus is not installed ($libdir/citus.so is missing): see README, \"Citus\""
  unless -f "$libdir/citus.so";

# Shard splits decode WAL with Citus' own output plugin; a server that lists
# the plugins it allows must allow it.
my $plugins = (`postgres --describe-config 2>/dev/null` =~ /^output_plugin_libraries\t/m)
  ? "output_plugin_libraries = 'pgoutput, test_decoding, citus'" : '';

my @nodes;
for my $name ('coordinator', 'worker1', 'worker2') {
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init(allows_streaming => 'logical');
    $node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'citus,memoria'
max_prepared_transactions = 100
max_connections = 100
max_worker_processes = 32
citus.node_conninfo = 'sslmode=prefer'
memoria.enabled = off
});
    $node->append_conf('postgresql.conf', $plugins);
    # How Citus reaches this node from itself (shard moves): its socket.
    $node->append_conf('postgresql.conf', "citus.local_hostname = '" . $node->host . "'");
    $node->start;
    $node->safe_psql('postgres', 'CREATE EXTENSION citus');
    push @nodes, $node;
}
my ($coord, $w1, $w2) = @nodes;
$coord->safe_psql('postgres', sprintf(q{
    SELECT citus_set_coordinator_host('%s', %d);
    SELECT citus_add_node('%s', %d);
    SELECT citus_add_node('%s', %d);
    CREATE EXTENSION memoria VERSION '0.7.0';
    ALTER EXTENSION memoria UPDATE;
}, $coord->host, $coord->port, $w1->host, $w1->port, $w2->host, $w2->port));
# (Made at the previous version and updated: Citus runs both on the workers.)
my $version = $coord->safe_psql('postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'memoria'");
for my $node (@nodes) {
    is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'memoria'"), $version,
       $node->name . ": CREATE EXTENSION memoria VERSION '0.7.0' and ALTER EXTENSION UPDATE reached it");
}

sub fails_like {
    my ($node, $sql, $re, $label) = @_;
    my ($ret, $out, $err) = $node->psql('postgres', $sql);
    isnt($ret, 0, "$label: refused");
    like($err, $re, "$label: says why");
}

# ---------------------------------------------------------------------------
# Lifecycle: a rollup made before the table is distributed, then after.
# ---------------------------------------------------------------------------
$coord->safe_psql('postgres', q{
    CREATE TABLE usage (id bigserial, created_at timestamptz NOT NULL, ws int NOT NULL, model text NOT NULL,
                        tokens bigint NOT NULL);
    INSERT INTO usage (created_at, ws, model, tokens)
    SELECT timestamptz '2026-03-20' + (g % 400) * interval '1 hour', g % 40, 'm' || (g % 3), g
    FROM generate_series(1, 8000) g;
    SELECT memoria.create_rollup('usage_daily', 'usage', 'created_at', ARRAY['ws', 'model'],
        ARRAY['sum(tokens) AS tokens', 'count(*) AS n', 'count(DISTINCT tokens % 5) AS kinds'],
        time_zone => 'Europe/Berlin');
});
fails_like($coord, "SELECT create_distributed_table('usage', 'ws', shard_count => 8)", qr/trigger/i,
           'distributing a source that has a local rollup');
$coord->safe_psql('postgres', q{
    SELECT memoria.drop_rollup('usage_daily', drop_table => true, cascade => true);
    SELECT create_distributed_table('usage', 'ws', shard_count => 8);
    SELECT memoria.create_rollup('usage_daily', 'usage', 'created_at', ARRAY['ws', 'model'],
        ARRAY['sum(tokens) AS tokens', 'count(*) AS n', 'count(DISTINCT tokens % 5) AS kinds'],
        time_zone => 'Europe/Berlin');
    SELECT memoria.create_rollup('usage_hourly', 'usage', 'created_at', ARRAY['ws'],
        ARRAY['max(tokens) AS top', 'sum(tokens) AS tokens'], bucket => '1 hour', filter => 'tokens > 10');
});
is($coord->safe_psql('postgres', "SELECT state FROM memoria.citus_status WHERE rollup = 'usage_daily'"),
   'needs_backfill', 'a new distributed rollup needs its backfill');
is($coord->safe_psql('postgres', "SELECT partmethod FROM pg_dist_partition WHERE logicalrelid = 'memoria_rollup.usage_daily'::regclass"),
   'h', 'the rollup table is distributed');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_dist_partition p, pg_dist_partition q
    WHERE p.logicalrelid = 'usage'::regclass AND q.logicalrelid = 'memoria_rollup.usage_daily'::regclass
      AND p.colocationid = q.colocationid}), '1', 'co-located with its source');
fails_like($coord, "SELECT memoria.create_rollup('by_model', 'usage', 'created_at', ARRAY['ws', 'model'], ARRAY['count(*) AS n'],
                                                 scope => ARRAY['model'])",
           qr/distribution column "ws" .* must be a dimension of the rollup's scope/,
           'a rollup grouped by the distribution column, but not in its scope');
fails_like($coord, "SELECT memoria.create_rollup('by_model', 'usage', 'created_at', ARRAY['model'], ARRAY['avg(tokens) AS a'])",
           qr/measures\[1\] .*needs measures whose per-shard values combine/,
           'the partial mode: a measure that does not combine');
fails_like($coord, "SELECT memoria.create_rollup('by_model', 'usage', 'created_at', ARRAY['model'], ARRAY['count(DISTINCT ws) AS n'])",
           qr/needs measures whose per-shard values combine/, 'the partial mode: count(DISTINCT)');
fails_like($coord, "SELECT memoria.create_rollup('usage_daily', 'usage', 'created_at', ARRAY['ws'], ARRAY['count(*) AS n'])",
           qr/already exists/, 'a taken name');
# A reference table and a citus-local table: rollups of their placement on
# the coordinator, which every write reaches, wherever it is made.
$coord->safe_psql('postgres', q{
    CREATE TABLE payments (id bigserial PRIMARY KEY, plan text NOT NULL, cents int NOT NULL, paid_at timestamptz NOT NULL);
    SELECT create_reference_table('payments');
    INSERT INTO payments (plan, cents, paid_at)
    SELECT 'p' || (g % 4), g, timestamptz '2026-03-20' + g * interval '7 minutes' FROM generate_series(1, 3000) g;
    CREATE TABLE notes (id bigserial PRIMARY KEY, kind int NOT NULL, at timestamptz NOT NULL);
    SELECT citus_add_local_table_to_metadata('notes');
    INSERT INTO notes (kind, at) SELECT g % 5, timestamptz '2026-03-20' + g * interval '13 minutes' FROM generate_series(1, 2000) g;
    SELECT memoria.create_rollup('payments_daily', 'payments', 'paid_at', ARRAY['plan'],
                                 ARRAY['sum(cents) AS cents', 'count(*) AS n']);
    SELECT memoria.create_rollup('notes_hourly', 'notes', 'at', ARRAY['kind'], ARRAY['count(*) AS n'], bucket => '1 hour');
    CALL memoria.backfill('payments_daily');
    CALL memoria.backfill('notes_hourly');
});
$w1->safe_psql('postgres', q{
    INSERT INTO payments (plan, cents, paid_at) VALUES ('from_worker', 5, '2026-03-21 10:00');
    UPDATE payments SET plan = 'moved', paid_at = timestamptz '2026-03-25 12:00' WHERE id % 9 = 0;
    DELETE FROM notes WHERE id % 4 = 0;
});
$coord->safe_psql('postgres', q{
    BEGIN; DELETE FROM payments WHERE id % 5 = 0; UPDATE notes SET kind = 9 WHERE id % 7 = 0; COMMIT;
    BEGIN; DELETE FROM payments; ROLLBACK;
});
my %placement_group_by = (
    payments_daily => q{SELECT memoria.bucket(paid_at, '1 day', 'UTC'), plan, sum(cents), count(*) FROM payments GROUP BY 1, 2},
    notes_hourly => q{SELECT memoria.bucket(at, '1 hour', 'UTC'), kind, count(*) FROM notes GROUP BY 1, 2});
sub placement_exact {
    my ($label) = @_;
    my $status = $coord->safe_psql('postgres', q{SELECT string_agg(status, ',') FROM memoria.refresh()
                                                  WHERE rollup IN ('payments_daily', 'notes_hourly')});
    unlike($status, qr/error|busy/, "$label: refreshed");
    for my $r (sort keys %placement_group_by) {
        is($coord->safe_psql('postgres', qq{
            WITH fresh AS MATERIALIZED ($placement_group_by{$r}), kept AS MATERIALIZED (SELECT * FROM memoria_rollup.$r)
            SELECT (SELECT count(*) FROM (TABLE fresh EXCEPT ALL TABLE kept) a) + (SELECT count(*) FROM (TABLE kept EXCEPT ALL TABLE fresh) b)}),
           '0', "$label: $r equals a GROUP BY of its source");
        is($coord->safe_psql('postgres', "SELECT count(*) FROM memoria.verify('$r')"), '0', "$label: $r verifies");
    }
}
placement_exact('a reference and a citus-local table, written on the coordinator and a worker');
$coord->safe_psql('postgres', 'TRUNCATE payments');
$w2->safe_psql('postgres', q{INSERT INTO payments (plan, cents, paid_at) VALUES ('after', 1, '2026-03-22')});
placement_exact('after TRUNCATE of the reference table');
is($coord->safe_psql('postgres', q{SELECT string_agg(rollup || ':' || state, ',' ORDER BY rollup) FROM memoria.status
                                   WHERE rollup IN ('payments_daily', 'notes_hourly')}),
   'notes_hourly:idle,payments_daily:idle', 'memoria.status lists rollups of a placement');
# A superuser's refresh never runs an owner's code with its rights: here a
# domain of the distribution column, whose CHECK the partial mode's shard
# values and change log go through on every node.
$coord->safe_psql('postgres', q{
    CREATE ROLE carol LOGIN;
    GRANT CREATE ON SCHEMA public TO carol;
    SET ROLE carol;
    CREATE FUNCTION public.sneaky(int) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN
        -- Back to the session's user (allowed to a superuser's session,
        -- unless restricted), then promote itself.
        PERFORM set_config('role', session_user, true);
        PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
        IF current_setting('is_superuser') = 'on' THEN EXECUTE 'ALTER ROLE carol SUPERUSER'; END IF;
        PERFORM set_config('role', 'carol', true);
        RETURN true;
    EXCEPTION WHEN OTHERS THEN RETURN true;
    END $$;
    CREATE DOMAIN public.tenant_id AS int CHECK (public.sneaky(VALUE));
    CREATE TABLE public.d_usage (tenant public.tenant_id NOT NULL, at timestamptz NOT NULL, kind text NOT NULL);
    SELECT create_distributed_table('public.d_usage', 'tenant', shard_count => 4);
    INSERT INTO public.d_usage SELECT g % 7, timestamptz '2026-03-20' + g * interval '1 hour', 'k' || (g % 2)
    FROM generate_series(1, 200) g;
    SELECT memoria.create_rollup('d_by_kind', 'public.d_usage', 'at', ARRAY['kind'], ARRAY['count(*) AS n']);
    RESET ROLE;
    SELECT count(*) FROM memoria.refresh();
    SELECT count(*) FROM memoria.verify('d_by_kind');
});
for my $node (@nodes) {
    is($node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'carol'"), 'f',
       $node->name . ": a superuser's refresh ran no code of the owner's as a superuser");
}
is($coord->safe_psql('postgres', q{SELECT count(*) FROM memoria.verify('d_by_kind')}), '0',
   'the partial mode: a distribution column of a domain');
$coord->safe_psql('postgres', q{SELECT memoria.drop_rollup('d_by_kind', drop_table => true); DROP TABLE public.d_usage});
fails_like($coord, 'DROP TABLE payments', qr/cannot drop the source table of rollup "payments_daily"/,
           'DROP TABLE of a reference table with a rollup');
fails_like($coord, "SELECT undistribute_table('notes')", qr/cannot drop the source table of rollup "notes_hourly"/,
           'undistribute_table of a citus-local table with a rollup');
fails_like($w1, "SELECT memoria.create_rollup('on_worker', 'notes', 'at', ARRAY['kind'], ARRAY['count(*) AS n'])",
           qr/this node holds no placement of it/, 'a rollup of a citus-local table made on a worker');
# Odd shapes: a table in schema public (Citus names its shards unqualified
# there), a name too long to name a shard rollup after, and a measure
# calling a function of its owner's schema, found through "$user".
$coord->safe_psql('postgres', q{
    CREATE ROLE alice LOGIN;
    CREATE SCHEMA alice AUTHORIZATION alice;
    GRANT CREATE ON SCHEMA public TO alice;
    CREATE FUNCTION alice.doubled(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 2';
    ALTER FUNCTION alice.doubled(bigint) OWNER TO alice;
    SELECT create_distributed_function('alice.doubled(bigint)');
    ALTER TABLE usage OWNER TO alice;
    SET ROLE alice;
    SET search_path = "$user", public;
    SELECT memoria.create_rollup('usage_in_public', 'usage', 'created_at', ARRAY['ws'], ARRAY['count(*) AS n'],
                                 target => 'public.usage_in_public');
    SELECT memoria.create_rollup('a_rollup_whose_name_is_longer_than_any_shard_rollup_name', 'usage', 'created_at',
        ARRAY['ws', 'model'], ARRAY['sum(doubled(tokens)) AS doubled'], target => 'alice.long_named');
    -- In memoria_rollup, where alice may not create tables on the workers.
    SELECT memoria.create_rollup('usage_by_alice', 'usage', 'created_at', ARRAY['ws'], ARRAY['min(tokens) AS least']);
    -- The partial mode: not grouped by the distribution column.
    SELECT memoria.create_rollup('by_model', 'usage', 'created_at', ARRAY['model'],
        ARRAY['sum(tokens) AS tokens', 'count(*) AS n', 'max(tokens) AS top', 'min(model) AS first_model',
              'bool_or(tokens % 97 = 0) AS any97'], time_zone => 'Asia/Kolkata');
    SELECT memoria.create_rollup('hourly_total', 'usage', 'created_at', ARRAY[]::text[],
        ARRAY['sum(doubled(tokens)) AS doubled', 'count(*) FILTER (WHERE model = ''m1'') AS m1'],
        bucket => '1 hour', filter => 'tokens % 3 <> 0', target => 'alice.hourly_total');
    SELECT memoria.create_rollup('by_lower_model', 'usage', 'created_at', ARRAY['upper(model) AS big_model'],
        ARRAY['count(*) AS n'], target => 'public.by_lower_model');
});
# alice owns the rollup tables' shards there, which Citus makes again on a
# shard move (as her); granted once per node by the coordinator.
is($w1->safe_psql('postgres', q{SELECT has_schema_privilege('alice', 'memoria_rollup', 'CREATE')}), 't',
   'the source owner may create in memoria_rollup on the workers');
# Made by a superuser's backfill (as pg_cron's runs are): "$user" is alice.
$coord->safe_psql('postgres', 'CALL memoria.backfill(\'usage_daily\'); CALL memoria.backfill(\'usage_hourly\');
    CALL memoria.backfill(\'usage_in_public\');
    CALL memoria.backfill(\'a_rollup_whose_name_is_longer_than_any_shard_rollup_name\');
    CALL memoria.backfill(\'usage_by_alice\'); CALL memoria.backfill(\'by_model\');
    CALL memoria.backfill(\'hourly_total\'); CALL memoria.backfill(\'by_lower_model\')');

# exact(label): refresh every rollup; each equals a GROUP BY of the source,
# and verify() agrees.
my %table = (usage_daily => 'memoria_rollup.usage_daily', usage_hourly => 'memoria_rollup.usage_hourly',
             usage_by_alice => 'memoria_rollup.usage_by_alice',
             usage_in_public => 'public.usage_in_public',
             a_rollup_whose_name_is_longer_than_any_shard_rollup_name => 'alice.long_named',
             by_model => 'memoria_rollup.by_model', hourly_total => 'alice.hourly_total',
             by_lower_model => 'public.by_lower_model');
my %group_by = (
    by_model => q{SELECT memoria.bucket(created_at, '1 day', 'Asia/Kolkata') AS bucket, model, sum(tokens) AS tokens,
                         count(*) AS n, max(tokens) AS top, min(model) AS first_model, bool_or(tokens % 97 = 0) AS any97
                  FROM usage GROUP BY 1, 2},
    hourly_total => q{SELECT memoria.bucket(created_at, '1 hour', 'UTC') AS bucket, sum(tokens * 2) AS doubled,
                             count(*) FILTER (WHERE model = 'm1') AS m1
                      FROM usage WHERE tokens % 3 <> 0 GROUP BY 1},
    by_lower_model => q{SELECT memoria.bucket(created_at, '1 day', 'UTC') AS bucket, upper(model) AS big_model,
                               count(*) AS n FROM usage GROUP BY 1, 2},
    usage_by_alice => q{SELECT memoria.bucket(created_at, '1 day', 'UTC') AS bucket, ws, min(tokens) AS least
                        FROM usage GROUP BY 1, 2},
    usage_in_public => q{SELECT memoria.bucket(created_at, '1 day', 'UTC') AS bucket, ws, count(*) AS n
                         FROM usage GROUP BY 1, 2},
    a_rollup_whose_name_is_longer_than_any_shard_rollup_name =>
        q{SELECT memoria.bucket(created_at, '1 day', 'UTC') AS bucket, ws, model, sum(tokens * 2) AS doubled
          FROM usage GROUP BY 1, 2, 3},
    usage_daily => q{SELECT memoria.bucket(created_at, '1 day', 'Europe/Berlin') AS bucket, ws, model,
                            sum(tokens) AS tokens, count(*) AS n, count(DISTINCT tokens % 5) AS kinds
                     FROM usage GROUP BY 1, 2, 3},
    usage_hourly => q{SELECT memoria.bucket(created_at, '1 hour', 'UTC') AS bucket, ws, max(tokens) AS top,
                             sum(tokens) AS tokens
                      FROM usage WHERE tokens > 10 GROUP BY 1, 2},
);
# differs_sql(r): the number of rows by which rollup r's table and a fresh
# GROUP BY of its source differ.
sub differs_sql {
    my ($r) = @_;
    return qq{WITH fresh AS MATERIALIZED ($group_by{$r}),
                   kept AS MATERIALIZED (SELECT * FROM $table{$r})
              SELECT (SELECT count(*) FROM (SELECT * FROM fresh EXCEPT ALL SELECT * FROM kept) a)
                   + (SELECT count(*) FROM (SELECT * FROM kept EXCEPT ALL SELECT * FROM fresh) b)};
}
sub exact {
    my ($label, $db) = @_;
    $db //= 'postgres';
    my $status = $coord->safe_psql($db,
        "SELECT string_agg(rollup || ' ' || status || coalesce(' ' || error, ''), '; ' ORDER BY rollup) FROM memoria.refresh()");
    unlike($status, qr/error|busy/, "$label: refreshed ($status)");
    for my $r (sort keys %group_by) {
        is($coord->safe_psql($db, differs_sql($r)), '0', "$label: $r equals a GROUP BY of the source");
        is($coord->safe_psql($db, "SELECT count(*) FROM memoria.verify('$r')"), '0', "$label: $r verifies");
    }
}
exact('backfilled');
is($coord->safe_psql('postgres', q{SELECT state, shard_groups = shard_rollups, watermark IS NOT NULL,
                                          memoria.lag('usage_daily') < interval '1 hour'
                                   FROM memoria.citus_status WHERE rollup = 'usage_daily'}),
   'idle|t|t|t', 'citus_status and lag: every shard group refreshed');

# ---------------------------------------------------------------------------
# The differential workload.
# ---------------------------------------------------------------------------
my $seed = $ENV{MEMORIA_SEED} // time;
srand($seed);
note("workload seed $seed (MEMORIA_SEED=$seed reproduces it)");
sub day { sprintf("(timestamptz '2026-03-20' + interval '%d minutes')", int(rand(14 * 24 * 60))) }
my @writes = (
    sub { sprintf(q{INSERT INTO usage (created_at, ws, model, tokens)
                    SELECT %s + g * interval '17 minutes', (g * 7 + %d) %% 40, 'm' || (g %% 4), g %% 97
                    FROM generate_series(1, %d) g}, day(), int(rand(40)), 1 + int(rand(300))) },
    # (Citus evaluates a STABLE expression only without column references.)
    sub { sprintf(q{UPDATE usage SET created_at = %s WHERE id %% 23 = %d}, day(), int(rand(23))) },
    sub { sprintf(q{UPDATE usage SET model = 'm%d', tokens = tokens + 3 WHERE ws = %d AND id %% 5 = %d},
                  int(rand(5)), int(rand(40)), int(rand(5))) },
    sub { sprintf(q{DELETE FROM usage WHERE ws = %d AND id %% 7 = %d}, int(rand(40)), int(rand(7))) },
    # A multi-shard transaction: two-phase commit across both workers.
    sub { sprintf(q{BEGIN; UPDATE usage SET tokens = tokens + 1 WHERE id %% 11 = %d;
                    DELETE FROM usage WHERE id %% 101 = %d;
                    INSERT INTO usage (created_at, ws, model, tokens) VALUES (%s, 1, 'm9', 9), (%s, 2, 'm9', 9);
                    COMMIT}, int(rand(11)), int(rand(101)), day(), day()) },
    # A transaction rolled back: nothing of it may count.
    sub { sprintf(q{BEGIN; DELETE FROM usage WHERE ws = %d; ROLLBACK}, int(rand(40))) },
);
for my $round (1 .. 12) {
    for (1 .. 8) {
        $coord->safe_psql('postgres', $writes[int(rand(@writes))]->());
    }
    # On a worker: Citus routes it from there (and runs its own shards locally).
    $w1->safe_psql('postgres', sprintf(q{
        INSERT INTO usage (created_at, ws, model, tokens) SELECT %s, g %% 40, 'w1', g FROM generate_series(1, 60) g;
        UPDATE usage SET tokens = tokens * 2 WHERE ws = %d AND model = 'w1'}, day(), int(rand(40))));
    $w2->safe_psql('postgres', sprintf(q{DELETE FROM usage WHERE ws = %d AND id %% 3 = 0}, int(rand(40))));
    # COPY through the coordinator.
    my $rows = join('', map { sprintf("2026-03-%02d 12:00:00+00\t%d\tcopy\t%d\n", 16 + $_ % 14, $_ % 40, $_) } 1 .. 200);
    $coord->safe_psql('postgres', "COPY usage (created_at, ws, model, tokens) FROM STDIN;\n$rows\\.\n");
    $coord->safe_psql('postgres', 'TRUNCATE usage') if $round == 6;
    # Refresh now and then (a limited one too), so keys pile up in between;
    # over one connection per shard group, one per node, or three per node.
    my $conns = 'SET memoria.citus_node_connections = ' . (0, 1, 3)[$round % 3] . ';';
    $coord->safe_psql('postgres', "$conns SELECT * FROM memoria.refresh('usage_daily', 50)") if $round % 3 == 1;
    $coord->safe_psql('postgres', "$conns SELECT * FROM memoria.refresh()") if $round % 4 == 2;
    $coord->safe_psql('postgres', "$conns CALL memoria.run()") if $round % 5 == 3;  # the pg_cron entry point
}
exact('after the random workload');

# A change to the source that would break the definition the shard rollups
# are made from again after a move is refused; one that does not, is not.
fails_like($coord, 'ALTER TABLE usage RENAME COLUMN model TO model_name', qr/this change would break rollup ".*": dimensions: column "model" does not exist/,
           'renaming a dimension column');
$coord->safe_psql('postgres', 'ALTER TABLE usage ADD COLUMN note text');
fails_like($coord, 'ALTER TABLE usage ALTER COLUMN tokens TYPE numeric', qr/this change would break rollup/,
           'changing the type of a measured column');
fails_like($coord, 'DROP FUNCTION alice.doubled(bigint)', qr/depends on function/, 'DROP FUNCTION of a measure\'s function');
fails_like($coord, 'DROP FUNCTION alice.doubled(bigint) CASCADE', qr/cannot drop the rollup table of rollup/,
           'DROP FUNCTION ... CASCADE of a measure\'s function');
$coord->safe_psql('postgres', q{
    CREATE TABLE local_usage (at timestamptz NOT NULL, ws int);
    SELECT memoria.create_rollup('local_daily', 'local_usage', 'at', ARRAY['ws'], ARRAY['count(*) AS n']);
});
fails_like($coord, "SELECT * FROM memoria.alter_rollup('local_daily', rename_to => 'usage_daily')", qr/already exists/,
           'a local rollup renamed as a distributed one');
fails_like($coord, "SELECT memoria.create_rollup('local_daily', 'usage', 'created_at', ARRAY['ws'], ARRAY['count(*) AS n'])",
           qr/already exists/, 'a distributed rollup named as a local one');
$coord->safe_psql('postgres', "SELECT memoria.drop_rollup('local_daily', drop_table => true); DROP TABLE local_usage");
# A new owner (of the source, the measure's function, some rollup tables):
# the other rollup tables follow at the next refresh, so that shard rollups
# made after the moves below are the new owner's too.
$coord->safe_psql('postgres', q{
    CREATE ROLE bob LOGIN;
    GRANT CREATE ON SCHEMA public TO bob;
    REASSIGN OWNED BY alice TO bob;
});
exact('after the source changed owner');
is($coord->safe_psql('postgres', q{SELECT string_agg(DISTINCT pg_get_userbyid(t.relowner), ',')
                                   FROM memoria.citus_rollups r JOIN pg_class t ON t.oid = r.target}),
   'bob', 'the rollup tables followed their source to its new owner');
# A refresh or drop from a transaction that wrote to the source would wait
# for itself (the nodes' transactions wait for this one): refused.
like($coord->safe_psql('postgres', q{BEGIN; INSERT INTO usage (created_at, ws, model, tokens) VALUES (now(), 1, 'x', 1);
    SELECT status || ' ' || error FROM memoria.refresh('usage_daily'); ROLLBACK}),
     qr/^error .*cannot run in a transaction that wrote to its source/, 'a refresh after a write in its transaction');
fails_like($coord, q{BEGIN; DELETE FROM usage WHERE ws = 1; SELECT memoria.drop_rollup('usage_hourly'); COMMIT},
           qr/cannot run in a transaction that wrote/, 'a drop after a write in its transaction');

# ---------------------------------------------------------------------------
# Shard moves, a split and a rebalance, with keys pending and writers busy.
# ---------------------------------------------------------------------------
my $pgbench_script = "$PostgreSQL::Test::Utils::tmp_check/citus_writes.sql";
PostgreSQL::Test::Utils::append_to_file($pgbench_script, q{
\set ws random(0, 39)
INSERT INTO usage (created_at, ws, model, tokens) VALUES (timestamptz '2026-03-20' + random() * interval '14 days', :ws, 'bench', :ws);
UPDATE usage SET tokens = tokens + 1 WHERE ws = :ws AND id % 50 = 7;
DELETE FROM usage WHERE ws = :ws AND id % 997 = 5;
});
sub with_writers {
    my ($label, $sql) = @_;
    # Keys pending in the logs of the shards about to move.
    $coord->safe_psql('postgres', 'UPDATE usage SET tokens = tokens + 1 WHERE id % 13 = 0');
    my ($out, $err) = ('', '');
    my $bench = IPC::Run::start(
        ['pgbench', '-n', '-c', '2', '-T', '4', '-f', $pgbench_script, '-h', $coord->host, '-p', $coord->port,
         'postgres'], '>', \$out, '2>', \$err);
    sleep 1;
    $coord->safe_psql('postgres', $sql);
    $bench->finish;
    like($out, qr/number of transactions actually processed: [1-9]/, "$label: writers ran throughout");
    exact($label);
}
my ($shard, $from) = split /\|/, $coord->safe_psql('postgres', q{
    SELECT s.shardid, n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
    JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = 'usage'::regclass ORDER BY 1 LIMIT 1});
my ($to_host, $to_port) = $from == $w1->port ? ($w2->host, $w2->port) : ($w1->host, $w1->port);
my ($from_host) = $from == $w1->port ? $w1->host : $w2->host;
with_writers('after a shard move (logical replication)',
    "SELECT citus_move_shard_placement($shard, '$from_host', $from, '$to_host', $to_port, shard_transfer_mode => 'force_logical')");
my ($split_shard, $lo, $hi) = split /\|/, $coord->safe_psql('postgres', q{
    SELECT shardid, shardminvalue, shardmaxvalue FROM pg_dist_shard WHERE logicalrelid = 'usage'::regclass ORDER BY 1 DESC LIMIT 1});
my $mid = int(($lo + $hi) / 2);
my $split_node = $coord->safe_psql('postgres', qq{
    SELECT n.nodeid FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE p.shardid = $split_shard});
with_writers('after a shard split',
    "SELECT citus_split_shard_by_split_points($split_shard, ARRAY['$mid'], ARRAY[$split_node, $split_node], shard_transfer_mode => 'force_logical')");
with_writers('after a rebalance', q{SELECT rebalance_table_shards('usage', shard_transfer_mode => 'block_writes')});
$coord->safe_psql('postgres', 'CALL citus_cleanup_orphaned_resources()');
is($coord->safe_psql('postgres', 'SELECT shard_groups = shard_rollups FROM memoria.citus_status WHERE rollup = \'usage_daily\''),
   't', 'every shard group has its shard rollup');
my $shard_rollups = 0;
$shard_rollups += $_->safe_psql('postgres', "SELECT count(*) FROM memoria.rollups") for @nodes;
# (8 distributed rollups, and the 2 of a reference and a citus-local table.)
is($shard_rollups, 2 + 8 * $coord->safe_psql('postgres', "SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'usage'::regclass"),
   'old placements took their shard rollups with them');

# ---------------------------------------------------------------------------
# A worker killed during a refresh.
# ---------------------------------------------------------------------------
$coord->safe_psql('postgres', q{
    INSERT INTO usage (created_at, ws, model, tokens)
    SELECT timestamptz '2026-03-20' + (g % 300) * interval '1 hour', g % 40, 'late', g FROM generate_series(1, 60000) g});
# A session on worker1 holds one of its source shards, so that the refresh
# there is under way and waits; worker1 dies then.
my $held = $coord->safe_psql('postgres', sprintf(q{
    SELECT shard_name('usage'::regclass, s.shardid) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
    JOIN pg_dist_node n USING (groupid) WHERE s.logicalrelid = 'usage'::regclass AND n.nodeport = %d LIMIT 1},
    $w1->port));
my ($hout, $herr, $rout, $rerr) = ('', '', '', '');
my $holder = IPC::Run::start(
    ['psql', '-X', '-h', $w1->host, '-p', $w1->port, '-d', 'postgres', '-c',
     "SET citus.enable_manual_changes_to_shards = on; BEGIN; LOCK TABLE $held IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)"], '>', \$hout, '2>', \$herr);
$w1->poll_query_until('postgres', "SELECT count(*) > 0 FROM pg_locks WHERE relation = '$held'::regclass AND mode = 'AccessExclusiveLock' AND granted")
  or die 'the lock holder did not start';
my $refresh = IPC::Run::start(
    ['psql', '-X', '-At', '-h', $coord->host, '-p', $coord->port, '-d', 'postgres', '-c',
     "SELECT status || coalesce(' ' || error, '') FROM memoria.refresh('usage_daily')"],
    '>', \$rout, '2>', \$rerr);
ok($w1->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity
                                        WHERE wait_event_type = 'Lock' AND query LIKE '%memoria.refresh%'}),
   'the refresh on worker1 is under way, waiting');
$w1->stop('immediate');
$refresh->finish;
$holder->finish;
like($rout, qr/^error .*shard/, "the refresh reports the shard it lost ($rout)");
my $during = $coord->safe_psql('postgres', "SELECT status FROM memoria.refresh('usage_daily')");
is($during, 'error', 'a refresh with a worker down says error');
$w1->start;
exact('after a worker was killed and came back');

# ---------------------------------------------------------------------------
# Privileges, DROP TABLE, drop_rollup.
# ---------------------------------------------------------------------------
$coord->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');
fails_like($coord, "SET ROLE mallory; SELECT * FROM memoria.refresh('usage_daily')", qr/must be a member of the owner/,
           'another role refreshing it');
fails_like($coord, "SET ROLE mallory; SELECT memoria.drop_rollup('usage_daily')", qr/must be a member of the owner/,
           'another role dropping it');
fails_like($coord, "INSERT INTO memoria_rollup.usage_daily VALUES (now(), 1, 'forged', 1, 1, 1)",
           qr/memoria maintains its rows/, 'a write to the rollup table, through Citus');
fails_like($coord, 'DROP TABLE usage', qr/depends on table usage/, 'DROP TABLE of the source');
# Citus' conversions drop the table with CASCADE: that would take the rollup
# table along silently, so no CASCADE drops a distributed rollup's tables.
fails_like($coord, 'DROP TABLE usage CASCADE', qr/cannot drop the source table of rollup "usage_daily"/,
           'DROP TABLE ... CASCADE of the source');
fails_like($coord, "SELECT undistribute_table('usage')", qr/cannot drop the source table of rollup/,
           'undistribute_table of the source');
fails_like($coord, "SELECT alter_distributed_table('usage', shard_count => 4, cascade_to_colocated => true)",
           qr/cannot drop the source table of rollup/, 'alter_distributed_table of the source');
fails_like($coord, "SELECT undistribute_table('memoria_rollup.usage_hourly')", qr/cannot drop the rollup table of rollup/,
           'undistribute_table of the rollup table');
fails_like($coord, 'DROP TABLE memoria_rollup.by_model', qr/cannot drop the rollup table of rollup "by_model"/,
           'the partial mode: DROP TABLE of the rollup table');
fails_like($coord, 'DROP TABLE memoria_rollup.by_model_partials CASCADE', qr/cannot drop the partials table of rollup "by_model"/,
           'the partial mode: DROP TABLE of the partials');
fails_like($coord, 'DROP TABLE memoria_rollup.by_model_changes', qr/cannot drop the changes table of rollup "by_model"/,
           'the partial mode: DROP TABLE of the changes table');
fails_like($coord, "SET ROLE mallory; DELETE FROM memoria_rollup.by_model", qr/permission denied/,
           'the partial mode: another role writing the rollup table');
fails_like($coord, "DELETE FROM memoria_rollup.by_model WHERE model = 'm1'", qr/memoria maintains its rows/,
           'the partial mode: its owner writing the rollup table');
fails_like($coord, "ALTER TABLE memoria_rollup.by_model DROP COLUMN any97", qr/would no longer have the rollup's columns/,
           'the partial mode: dropping a column of the rollup table');
# The owner's trigger on its rollup table runs as the owner, whoever
# refreshes (here a superuser): it cannot make itself a superuser.
my $owner = $coord->safe_psql('postgres', "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'usage'::regclass");
# owner_trigger(name, body, m): the owner's statement trigger `name` (its
# function's plpgsql body) on the partial mode's rollup table, then an
# UPDATE of every m-th row of the source.
sub owner_trigger {
    my ($name, $body, $m) = @_;
    $coord->safe_psql('postgres', qq{
        CREATE FUNCTION public.$name() RETURNS trigger LANGUAGE plpgsql AS \$\$ $body \$\$;
        ALTER FUNCTION public.$name() OWNER TO $owner;
        SET ROLE $owner;
        CREATE TRIGGER $name AFTER INSERT OR UPDATE OR DELETE ON memoria_rollup.by_model
            FOR EACH STATEMENT EXECUTE FUNCTION public.$name();
        RESET ROLE;
        UPDATE usage SET tokens = tokens + 1 WHERE id % $m = 0;
    });
}
owner_trigger('promote', "BEGIN
    IF current_setting('is_superuser') = 'on' THEN EXECUTE 'ALTER ROLE $owner SUPERUSER'; END IF;
    RETURN NULL;
END", 17);
$coord->safe_psql('postgres', q{SELECT count(*) FROM memoria.refresh('by_model'); DROP TRIGGER promote ON memoria_rollup.by_model});
is($coord->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = '$owner'"), 'f',
   'the partial mode: a superuser\'s refresh runs the owner\'s trigger as the owner');
# A combination that fails (here the owner's trigger refuses) is recorded:
# status shows why, and the background worker waits its refresh_interval
# before it tries again.
owner_trigger('refuse', "BEGIN RAISE EXCEPTION 'the owner refuses'; END", 19);
my $watermark_before = $coord->safe_psql('postgres', "SELECT watermark FROM memoria.citus_rollups WHERE name = 'by_model'");
like($coord->safe_psql('postgres', "SELECT status || ' ' || error FROM memoria.refresh('by_model')"),
     qr/^error .*combining the shards' partial rows: the owner refuses/, 'the partial mode: a failed combination says why');
is($coord->safe_psql('postgres', "SELECT watermark FROM memoria.citus_rollups WHERE name = 'by_model'"), $watermark_before,
   'the partial mode: a failed combination leaves the watermark where it was');
like($coord->safe_psql('postgres', q{SELECT s.state || ': ' || s.errors || ' / ' || (r.last_refresh_at > now() - interval '1 minute')
                                   FROM memoria.citus_status s JOIN memoria.citus_rollups r ON r.name = s.rollup
                                   WHERE s.rollup = 'by_model'}),
     qr/^error: .*the last refresh from the coordinator: .*the owner refuses.* \/ true$/,
     'the partial mode: citus_status shows it, and last_refresh_at is set');
$coord->safe_psql('postgres', q{DROP TRIGGER refuse ON memoria_rollup.by_model});
is($coord->safe_psql('postgres', q{SELECT status || coalesce(' ' || error, '') FROM memoria.refresh('by_model')}), 'ok',
   'the partial mode: once the trigger is gone the refresh combines again');
is($coord->safe_psql('postgres', q{SELECT state || coalesce(': ' || errors, '') FROM memoria.citus_status WHERE rollup = 'by_model'}),
   'idle', 'the partial mode: and citus_status forgets the error');
# The owner may call the internal citus_refreshed on its own rollup, but
# cannot set a watermark beyond now (nor break citus_status for everyone).
$coord->safe_psql('postgres', qq{SET ROLE $owner; SELECT memoria_internal.citus_refreshed('by_model', 'infinity', NULL)});
is($coord->safe_psql('postgres', q{SELECT watermark <= now() AND lag >= interval '0' FROM memoria.citus_status WHERE rollup = 'by_model'}),
   't', 'the partial mode: no watermark beyond now');
# Buckets round-trip whatever the refreshing session's date style and zone.
$coord->safe_psql('postgres', q{
    INSERT INTO usage (created_at, ws, model, tokens) VALUES ('2026-03-21 20:00+00', 3, 'zone', 1);
    SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Asia/Kolkata';
    SELECT count(*) FROM memoria.refresh('by_model');
});
# A DBA disables, on a worker, the triggers logging a partials shard's changed
# buckets: status says so (the table would go stale unnoticed otherwise),
# verify finds the stale rows, and the documented way back repairs them.
my ($partials_id, $partials_shard) = split /\|/, $coord->safe_psql('postgres', sprintf(q{
    SELECT s.shardid, shard_name('memoria_rollup.by_model_partials'::regclass, s.shardid)
    FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
    WHERE s.logicalrelid = 'memoria_rollup.by_model_partials'::regclass AND n.nodeport = %d ORDER BY 1 LIMIT 1},
    $w1->port));
$w1->safe_psql('postgres', "SET citus.enable_manual_changes_to_shards = on;
                            ALTER TABLE $partials_shard DISABLE TRIGGER zz_memoria_changes_insert,
                                DISABLE TRIGGER zz_memoria_changes_update, DISABLE TRIGGER zz_memoria_changes_delete");
like($coord->safe_psql('postgres', "SELECT state || ': ' || errors FROM memoria.citus_status WHERE rollup = 'by_model'"),
     qr/^capture_disabled: shard \d+ on .*: a trigger zz_memoria_changes_\* of .*by_model_partials_\d+ is disabled or missing/,
     'the partial mode: status reports disabled change log triggers on a worker');
# (A write to that shard alone: a bucket another shard also changed would
# be combined from every shard's partial rows anyway.)
$coord->safe_psql('postgres', qq{
    INSERT INTO usage (created_at, ws, model, tokens)
    SELECT '2026-03-02 12:00+00', ws, 'unlogged', 1 FROM generate_series(0, 1000) ws
    WHERE get_shard_id_for_distribution_column('memoria_rollup.by_model_partials', ws) = $partials_id LIMIT 1;
    SELECT count(*) FROM memoria.refresh('by_model');
});
isnt($coord->safe_psql('postgres', "SELECT count(*) FROM memoria.verify('by_model')"), '0',
     'the partial mode: verify finds what the disabled triggers left stale');
$w1->safe_psql('postgres', "SET citus.enable_manual_changes_to_shards = on;
                            ALTER TABLE $partials_shard ENABLE TRIGGER zz_memoria_changes_insert,
                                ENABLE TRIGGER zz_memoria_changes_update, ENABLE TRIGGER zz_memoria_changes_delete");
is($coord->safe_psql('postgres', "SELECT state FROM memoria.citus_status WHERE rollup = 'by_model'"), 'idle',
   'the partial mode: status is back to idle once the triggers are enabled');
$coord->safe_psql('postgres', q{SELECT count(*) FROM memoria.refresh_window('by_model', '-infinity', 'infinity')});
is($coord->safe_psql('postgres', "SELECT count(*) FROM memoria.verify('by_model')"), '0',
   'the partial mode: refresh_window over everything repairs it');
# A shard rollup refreshed on its own node (as each node's memoria worker
# does): the coordinator's next refresh still combines what it changed.
$coord->safe_psql('postgres', q{UPDATE usage SET tokens = tokens + 1000 WHERE id % 13 = 0});
for my $node ($w1, $w2) {
    $node->safe_psql('postgres', q{SELECT count(*) FROM memoria.refresh()});
}
exact('after the nodes refreshed their shard rollups themselves');
exact('after the refused conversions');

# The coordinator's background worker (the nodes' pools stay off) refreshes
# every distributed rollup, fanning out, and combines the partial ones.
$coord->safe_psql('postgres', q{
    UPDATE usage SET tokens = tokens + 5 WHERE id % 11 = 0;
    INSERT INTO usage (created_at, ws, model, tokens)
    SELECT timestamptz '2026-03-22' + g * interval '1 hour', g % 40, 'by the worker', g FROM generate_series(1, 200) g;
});
is($coord->safe_psql('postgres', 'SELECT ' . join(' + ', map { '(' . differs_sql($_) . ')' } sort keys %group_by) . ' > 0'),
   't', 'the writes made the rollups stale');
$coord->safe_psql('postgres', 'ALTER SYSTEM SET memoria.enabled = on; SELECT pg_reload_conf()');
my $all_exact = 'SELECT ' . join(' + ', map { '(' . differs_sql($_) . ')' } sort keys %group_by) . ' = 0';
ok($coord->poll_query_until('postgres', $all_exact), 'the coordinator\'s worker brought every distributed rollup up to date');
is($coord->safe_psql('postgres', 'SELECT count(*) FROM memoria.citus_rollups WHERE last_refresh_at IS NULL'), '0',
   'citus_rollups says when each was last refreshed');
$coord->safe_psql('postgres', 'ALTER SYSTEM RESET memoria.enabled; SELECT pg_reload_conf()');
ok($coord->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'memoria worker'"),
   'the pool, off again, has stopped');
# A new owner's rollup in memoria_rollup, moved before anything else
# happened to it: Citus makes the rollup table's shard on the other node as
# its owner, who may create in memoria_rollup on every node.
$coord->safe_psql('postgres', q{
    CREATE ROLE dave LOGIN;
    GRANT CREATE ON SCHEMA public TO dave;
    SET ROLE dave;
    CREATE TABLE dave_usage (created_at timestamptz NOT NULL, ws int NOT NULL, tokens int NOT NULL);
    SELECT create_distributed_table('dave_usage', 'ws', shard_count => 2, colocate_with => 'none');
    INSERT INTO dave_usage SELECT timestamptz '2026-03-20' + g * interval '1 hour', g % 10, g FROM generate_series(1, 500) g;
    SELECT memoria.create_rollup('dave_daily', 'dave_usage', 'created_at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens']);
    SELECT count(*) FROM memoria.refresh('dave_daily');
});
for my $node ($w1, $w2) {
    is($node->safe_psql('postgres', q{SELECT has_schema_privilege('dave', 'memoria_rollup', 'CREATE')}), 't',
       $node->name . ': the owner of a distributed rollup table in memoria_rollup may create there');
}
my ($dave_shard, $dave_port) = split /\|/, $coord->safe_psql('postgres', q{
    SELECT s.shardid, n.nodeport FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n USING (groupid)
    WHERE s.logicalrelid = 'dave_usage'::regclass ORDER BY 1 LIMIT 1});
my $dave_to = $dave_port == $w1->port ? $w2 : $w1;
my ($move_rc, $move_out, $move_err) = $coord->psql('postgres', sprintf(
    q{SELECT citus_move_shard_placement(%d, '%s', %d, '%s', %d, shard_transfer_mode => 'block_writes')},
    $dave_shard, $dave_port == $w1->port ? $w1->host : $w2->host, $dave_port, $dave_to->host, $dave_to->port));
is($move_rc, 0, "a shard of a new owner's rollup moves ($move_err)");
$coord->safe_psql('postgres', 'CALL citus_cleanup_orphaned_resources()');   # (the old placement, with its shard rollup)
$coord->safe_psql('postgres', q{INSERT INTO dave_usage VALUES ('2026-03-21 05:00+00', 3, 1000)});
is($coord->safe_psql('postgres', q{SET ROLE dave; SELECT count(*) FROM memoria.refresh('dave_daily');
                                   SELECT count(*) FROM memoria.verify('dave_daily')}), "1\n0",
   'and the rollup stays exact after the move');
$coord->safe_psql('postgres', q{SET ROLE dave; SELECT memoria.drop_rollup('dave_daily', drop_table => true);
                                DROP TABLE dave_usage});
# Chains: a distributed rollup of a distributed rollup's table, and a local
# rollup of the partial mode's table (made without a word from Citus about
# its _live view).  drop_rollup refuses to leave them without their source;
# with cascade it drops them first (below).
my ($chain_rc, $chain_out, $chain_err) = $coord->psql('postgres', q{
    SELECT memoria.create_rollup('usage_weekly', 'memoria_rollup.usage_daily', 'bucket', ARRAY['ws'],
                                 ARRAY['sum(tokens) AS tokens'], bucket => '7 days');
    SELECT memoria.create_rollup('model_weekly', 'memoria_rollup.by_model', 'bucket', ARRAY['model'],
                                 ARRAY['sum(tokens) AS tokens'], bucket => '7 days');
    CALL memoria.backfill('model_weekly');
    SELECT count(*) FROM memoria.refresh();
});
is($chain_rc, 0, 'rollups of a distributed and of a partial rollup table: made, filled and refreshed');
unlike($chain_err, qr/WARNING|ERROR/, 'no warning from Citus about the local rollup\'s _live view');
# weekly_differs(below, dim, table): rows by which a weekly rollup's table
# differs from a GROUP BY of the rollup table below it.
sub weekly_differs {
    my ($below, $dim, $table) = @_;
    return $coord->safe_psql('postgres', qq{
        WITH fresh AS (SELECT memoria.bucket(bucket, '7 days', 'UTC') AS bucket, $dim, sum(tokens) AS tokens
                       FROM memoria_rollup.$below GROUP BY 1, 2)
        SELECT count(*) FROM ((SELECT * FROM fresh EXCEPT ALL SELECT * FROM $table)
                              UNION ALL (SELECT * FROM $table EXCEPT ALL SELECT * FROM fresh)) d});
}
for my $chain (['usage_weekly', 'usage_daily', 'ws', 'memoria_rollup.usage_weekly'],
               ['model_weekly', 'by_model', 'model', 'memoria_rollup.model_weekly']) {
    my ($name, $below, $dim, $table) = @$chain;
    is(weekly_differs($below, $dim, $table), '0', "$name equals a GROUP BY of $below\'s table");
    fails_like($coord, "SELECT memoria.drop_rollup('$below')", qr/cannot drop rollup "$below": rollup "$name" is a rollup of its table/,
               "drop_rollup('$below') while $name reads its table");
}
# One refresh() carries a write to the end of a chain whose upper rollup's
# name sorts before its source's: distributed rollups are refreshed in chain
# order, as local ones are.
$coord->safe_psql('postgres', q{
    SELECT memoria.create_rollup('daily_by_week', 'memoria_rollup.usage_daily', 'bucket', ARRAY['ws'],
                                 ARRAY['sum(tokens) AS tokens'], bucket => '7 days');
    CALL memoria.backfill('daily_by_week');
    INSERT INTO usage (created_at, ws, model, tokens)
    SELECT timestamptz '2026-03-22' + g * interval '1 hour', g % 40, 'chain', g FROM generate_series(1, 50) g;
    SELECT count(*) FROM memoria.refresh();
});
is(weekly_differs('usage_daily', 'ws', 'memoria_rollup.daily_by_week'), '0',
   'one refresh() reaches daily_by_week through usage_daily, whose name sorts after it');
is(weekly_differs('by_model', 'model', 'memoria_rollup.model_weekly'), '0',
   'and model_weekly, a local rollup, through the partial mode\'s by_model, refreshed before it');
$coord->safe_psql('postgres', q{SELECT memoria.drop_rollup('daily_by_week', drop_table => true)});
# refresh() reads the local rollups after the distributed ones' refreshes,
# which may give the partial mode's table (and the local rollups of it) to
# their source's new owner.
$coord->safe_psql('postgres', q{
    CREATE TABLE owned (at timestamptz NOT NULL, ws int NOT NULL, model text, tokens int);
    SELECT create_distributed_table('owned', 'ws', shard_count => 4);
    SELECT memoria.create_rollup('owned_model', 'owned', 'at', ARRAY['model'], ARRAY['sum(tokens) AS tokens']);
    SELECT memoria.create_rollup('owned_week', 'memoria_rollup.owned_model', 'bucket', ARRAY[]::text[],
                                 ARRAY['sum(tokens)::bigint AS tokens'], bucket => '7 days');
    INSERT INTO owned VALUES ('2026-03-01', 1, 'a', 1);
    SELECT count(*) FROM memoria.refresh();
    ALTER TABLE owned OWNER TO alice;
    INSERT INTO owned VALUES ('2026-03-02', 2, 'a', 2);
});
is($coord->safe_psql('postgres', q{SELECT string_agg(rollup || ': ' || error, '; ') FROM memoria.refresh() WHERE status = 'error'}),
   '', 'refresh() after a source changed owner: no error, the local rollup of its partial table included');
is($coord->safe_psql('postgres', q{SELECT (SELECT count(*) FROM memoria.verify('owned_week')) + (SELECT count(*) FROM memoria.verify('owned_model'))}),
   '0', 'and both verify');
$coord->safe_psql('postgres', q{SELECT memoria.drop_rollup('owned_model', drop_table => true, cascade => true); DROP TABLE owned});
# pg_dump does not see Citus' shards: rollups of placements stay out of the
# catalog's data (a row naming a shard would fail the whole COPY on restore).
my $dump = `pg_dump -h @{[$coord->host]} -p @{[$coord->port]} -d postgres --data-only 2>&1`;
my ($catalog_rows) = $dump =~ /^COPY memoria\.rollups .*?\n(.*?)^\\\.$/ms;
ok(defined $catalog_rows, 'pg_dump dumps the catalog');
unlike($catalog_rows // '', qr/payments_daily|notes_hourly/, 'pg_dump leaves rollups of placements out');
like($dump, qr/^COPY memoria\.citus_rollups .*usage_daily/ms, 'pg_dump keeps the distributed rollups');
# Restored into a Citus cluster (here a new database on the same nodes):
# pg_dump sees a distributed table as a plain one, so the rollups say what
# to do until the source is distributed again; then the next refresh
# distributes their tables with it and recomputes them.  Keys pending at the
# dump (logged on the workers, not dumped) are not lost.
$coord->safe_psql('postgres', q{
    INSERT INTO usage (created_at, ws, model, tokens)
    SELECT timestamptz '2026-03-21' + g * interval '37 minutes', g % 40, 'm_pending', g FROM generate_series(1, 200) g;
    DELETE FROM usage WHERE id % 17 = 0;
});
my $dump_fc = $coord->basedir . '/citus.dump';
command_ok(['pg_dump', '-h', $coord->host, '-p', $coord->port, '-Fc', '-f', $dump_fc, '-d', 'postgres'],
           'pg_dump -Fc of the coordinator');
for my $node (@nodes) {
    $node->safe_psql('postgres', 'CREATE DATABASE restored');
    $node->safe_psql('restored', 'CREATE EXTENSION citus');
}
$coord->safe_psql('restored', sprintf(q{
    SELECT citus_set_coordinator_host('%s', %d);
    SELECT citus_add_node('%s', %d);
    SELECT citus_add_node('%s', %d);
}, $coord->host, $coord->port, $w1->host, $w1->port, $w2->host, $w2->port));
command_ok(['pg_restore', '-h', $coord->host, '-p', $coord->port, '-d', 'restored', $dump_fc],
           'pg_restore into a Citus coordinator');
like($coord->safe_psql('restored', "SELECT state || ': ' || errors FROM memoria.citus_status WHERE rollup = 'usage_daily'"),
     qr/^error: its source public\.usage is not a hash-distributed table .*create_distributed_table\(\) by column ws/,
     'restored: citus_status says the source must be distributed again, and by which column');
like($coord->safe_psql('restored', "SELECT status || ': ' || error FROM memoria.refresh('by_model')"),
     qr/^error: rollup "by_model": its source public\.usage is not a hash-distributed table/,
     'restored: a refresh says so too');
fails_like($coord, "\\c restored\nSELECT count(*) FROM memoria.verify('usage_daily')",
           qr/cannot verify rollup "usage_daily": its source public\.usage is not a hash-distributed table/,
           'restored: verify refuses rather than find nothing to compare');
$coord->safe_psql('restored', q{SELECT memoria.drop_rollup('usage_weekly', drop_table => true)});
is($coord->safe_psql('restored', q{SELECT count(*) FROM memoria.citus_rollups WHERE name = 'usage_weekly'}) .
   $coord->safe_psql('restored', q{SELECT to_regclass('memoria_rollup.usage_weekly') IS NULL}), '0t',
   'restored: drop_rollup before the source is distributed again');
$coord->safe_psql('restored', q{SELECT create_distributed_table('usage', 'ws', shard_count => 4);
                                SELECT truncate_local_data_after_distributing_table('usage')});
is($coord->safe_psql('restored', q{SELECT string_agg(DISTINCT state, ',') FROM memoria.citus_status}), 'needs_backfill',
   'restored: once the source is distributed, every rollup needs the backfill its next refresh makes');
# A rollup's table distributed by hand, away from its source: that rollup
# says so and can be dropped; the others go on.
$coord->safe_psql('restored', q{SELECT create_distributed_table('public.by_lower_model_partials', 'ws', shard_count => 2,
                                                                colocate_with => 'none')});
like($coord->safe_psql('restored', q{SELECT state || ': ' || errors FROM memoria.citus_status WHERE rollup = 'by_lower_model'}),
     qr/^error: its table public\.by_lower_model_partials is distributed but not co-located with its source/,
     'restored: a rollup table distributed away from its source');
# As the source's owner, as the background worker refreshes.
is($coord->safe_psql('restored', qq{SET ROLE $owner; SELECT string_agg(rollup || ' ' || status, '; ')
                                    FROM memoria.refresh() WHERE status = 'error'}), 'by_lower_model error',
   'restored: the owner\'s refresh distributes the rollups\' tables and fills them (all but the misplaced one)');
$coord->safe_psql('restored', q{SELECT memoria.drop_rollup('by_lower_model', drop_table => true)});
delete $group_by{by_lower_model};
is($coord->safe_psql('restored', q{SELECT count(*) FROM memoria.citus_rollups r WHERE NOT EXISTS (
        SELECT 1 FROM pg_dist_partition p, pg_dist_partition s WHERE p.logicalrelid = r.target AND s.logicalrelid = r.source
                                                                 AND p.colocationid = s.colocationid)}), '0',
   'restored: each rollup table co-located with its source again');
exact('restored and distributed again', 'restored');
$coord->safe_psql('restored', q{
    INSERT INTO usage (created_at, ws, model, tokens)
    SELECT timestamptz '2026-03-22' + g * interval '53 minutes', g % 40, 'm_after', g FROM generate_series(1, 300) g;
    UPDATE usage SET model = 'm_moved', tokens = tokens + 1 WHERE id % 11 = 0;
    DELETE FROM usage WHERE id % 23 = 0;
});
exact('restored, then written', 'restored');
$coord->safe_psql('postgres', qq{
    SELECT memoria.drop_rollup('usage_daily', drop_table => true, cascade => true);
    SELECT memoria.drop_rollup('usage_hourly');
    SELECT memoria.drop_rollup('usage_in_public', drop_table => true);
    SELECT memoria.drop_rollup('usage_by_alice', drop_table => true);
    SELECT memoria.drop_rollup('a_rollup_whose_name_is_longer_than_any_shard_rollup_name', drop_table => true);
    SET ROLE $owner;   -- (the owner of the source, not a superuser)
    SELECT memoria.drop_rollup('by_model', drop_table => true, cascade => true);
    SELECT memoria.drop_rollup('hourly_total', drop_table => true);
    RESET ROLE;
    SELECT memoria.drop_rollup('by_lower_model');
    SELECT memoria.drop_rollup('payments_daily', drop_table => true);
    SELECT memoria.drop_rollup('notes_hourly', drop_table => true);
    DROP TABLE payments, notes;
});
is($coord->safe_psql('postgres', q{SELECT count(*) FROM memoria.citus_placements}), '0', 'no placement record left');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname IN ('by_model', 'by_model_partials',
                                   'by_model_changes', 'hourly_total', 'hourly_total_partials', 'hourly_total_changes',
                                   'by_lower_model_partials', 'by_lower_model_changes')}),
   '0', 'the partial mode: its tables are gone');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname IN ('usage_weekly', 'model_weekly', 'usage_daily')}),
   '0', 'drop_rollup with cascade and drop_table: the rollups of its table and their tables are gone');
is($coord->safe_psql('postgres', "SELECT count(*) > 0 FROM public.by_lower_model"), 't',
   'the partial mode: without drop_table the rollup table stays');
for my $node (@nodes) {
    is($node->safe_psql('postgres', q{
        SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zz\_memoria\_%')
             + (SELECT count(*) FROM memoria.rollups)
             + (SELECT count(*) FROM pg_class WHERE relnamespace = 'memoria_state'::regnamespace)}),
       '0', $node->name . ': no trigger, rollup or log of memoria left');
}
is($coord->safe_psql('postgres', "SELECT count(*) FROM memoria.citus_rollups"), '0', 'no definition left');
is($coord->safe_psql('postgres', "SELECT to_regclass('memoria_rollup.usage_hourly') IS NOT NULL"), 't',
   'without drop_table the rollup table stays');
$coord->safe_psql('postgres', 'DROP TABLE usage CASCADE');

# DROP EXTENSION memoria CASCADE on a coordinator that holds shards: the
# distributed rollups go first (left to the cascade, Citus' drop of a rollup
# table ran into the cascade's own drop of its shards: a distributed deadlock).
$coord->safe_psql('postgres', sprintf(q{
    SELECT citus_set_node_property('%s', %d, 'shouldhaveshards', true);
    CREATE TABLE last_usage (created_at timestamptz NOT NULL, ws int NOT NULL, model text NOT NULL);
    SELECT create_distributed_table('last_usage', 'ws', shard_count => 6);
    INSERT INTO last_usage SELECT timestamptz '2026-03-20' + g * interval '1 hour', g %% 30, 'm' || (g %% 3)
    FROM generate_series(1, 600) g;
    SELECT memoria.create_rollup('last_daily', 'last_usage', 'created_at', ARRAY['ws'], ARRAY['count(*) AS n']);
    SELECT memoria.create_rollup('last_by_model', 'last_usage', 'created_at', ARRAY['model'], ARRAY['count(*) AS n']);
    SELECT memoria.create_rollup('last_weekly', 'memoria_rollup.last_daily', 'bucket', ARRAY['ws'],
                                 ARRAY['sum(n) AS n'], bucket => '7 days');
    SELECT count(*) FROM memoria.refresh();
}, $coord->host, $coord->port));
is($coord->safe_psql('postgres', q{SELECT count(*) > 0 FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
                                   WHERE s.logicalrelid = 'memoria_rollup.last_daily'::regclass AND p.groupid = 0}),
   't', 'the coordinator holds shards of a rollup table');
fails_like($coord, "SET ROLE $owner; DROP EXTENSION memoria CASCADE", qr/must be owner of extension memoria/,
           'DROP EXTENSION memoria CASCADE by a role that does not own it');
is($coord->safe_psql('postgres', q{SELECT string_agg(DISTINCT (shard_rollups = shard_groups)::text, ',') FROM memoria.citus_status}),
   'true', 'and it dropped no shard rollup first');
my ($dropext_rc, $dropext_out, $dropext_err) = $coord->psql('postgres', "SET lock_timeout = '60s'; DROP EXTENSION memoria CASCADE");
is($dropext_rc, 0, "DROP EXTENSION memoria CASCADE on a coordinator that holds shards ($dropext_err)");
for my $node (@nodes) {
    is($node->safe_psql('postgres', q{SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'memoria')
                                           + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zz\_memoria\_%')}),
       '0', $node->name . ': DROP EXTENSION memoria CASCADE left no trigger of memoria');
}

$_->stop for @nodes;
done_testing();
