# A rollup on a logical-replication subscriber stays exact: the apply worker
# runs with session_replication_role = replica and fires row triggers only
# (no statement trigger), the initial table sync copies rows in, and the
# publisher's UPDATEs, DELETEs, COPY and TRUNCATE arrive as replicated changes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->start;

my $schema = q{
    CREATE TABLE usage (id int PRIMARY KEY, at timestamptz NOT NULL, ws int NOT NULL, tokens int NOT NULL);
    CREATE TABLE metered (at timestamptz NOT NULL, ws int NOT NULL, tokens int NOT NULL) PARTITION BY RANGE (at);
    CREATE TABLE metered_05 PARTITION OF metered FOR VALUES FROM ('2026-05-01') TO ('2026-06-01');
    CREATE TABLE metered_06 PARTITION OF metered FOR VALUES FROM ('2026-06-01') TO ('2026-07-01');
    ALTER TABLE metered_05 REPLICA IDENTITY FULL;
    ALTER TABLE metered_06 REPLICA IDENTITY FULL;
    CREATE TABLE stamped (id int PRIMARY KEY, at timestamptz NOT NULL, ws int NOT NULL, tokens int NOT NULL,
                          updated_at timestamptz NOT NULL DEFAULT now());
};
$pub->safe_psql('postgres', $schema);
$sub->safe_psql('postgres', $schema);
$pub->safe_psql('postgres', q{
    INSERT INTO usage SELECT g, timestamptz '2026-05-01' + g * interval '5 hours', g % 4, g FROM generate_series(1, 200) g;
    INSERT INTO metered SELECT timestamptz '2026-05-01' + g * interval '7 hours', g % 3, g FROM generate_series(1, 200) g;
    INSERT INTO stamped SELECT g, timestamptz '2026-05-01' + g * interval '6 hours', g % 4, g FROM generate_series(1, 100) g;
    CREATE PUBLICATION usage_pub FOR TABLE usage, metered, stamped;
});

# The rollups exist before the subscription: the initial copy is captured too.
$sub->safe_psql('postgres', q{
    CREATE EXTENSION memoria;
    SELECT memoria.create_rollup('usage_daily', 'usage', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens', 'count(*) AS n']);
    SELECT memoria.create_rollup('metered_daily', 'metered', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens']);
    SELECT memoria.create_rollup('stamped_daily', 'stamped', 'at', ARRAY['ws'], ARRAY['sum(tokens) AS tokens'],
                                 invalidation => 'updated_at', updated_at_column => 'updated_at',
                                 safety_lag => '0 seconds');
});
my $connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION usage_sub CONNECTION '$connstr' PUBLICATION usage_pub");
$sub->wait_for_subscription_sync($pub, 'usage_sub');

# exact(label): refresh the rollups on the subscriber; each equals a GROUP BY.
sub exact {
    my ($label) = @_;
    $pub->wait_for_catchup('usage_sub');
    for my $r ('usage_daily', 'metered_daily', 'stamped_daily') {
        my $status = $sub->safe_psql('postgres', "SELECT status || coalesce(' ' || error, '') FROM memoria.refresh('$r')");
        like($status, qr/^(ok|idle)$/, "$label: $r refreshed");
        is($sub->safe_psql('postgres', "SELECT count(*) FROM memoria.verify('$r')"), '0', "$label: $r exact");
    }
}

exact('initial table sync');
$pub->safe_psql('postgres', q{
    INSERT INTO usage VALUES (1000, '2026-05-03 01:00', 1, 500);
    INSERT INTO usage SELECT 2000 + g, '2026-05-20', g % 4, g FROM generate_series(1, 50) g;
    INSERT INTO metered VALUES ('2026-06-15', 1, 7), ('2026-05-15', 2, 8);
});
exact('inserts');
$pub->safe_psql('postgres', q{
    COPY usage FROM PROGRAM 'printf "3000,2026-05-04 00:00:00+00,2,30\n3001,2026-05-05 00:00:00+00,3,31\n"' WITH (FORMAT csv);
    UPDATE usage SET at = at + interval '2 days', ws = 3 WHERE id % 7 = 0;
    UPDATE metered SET at = at + interval '20 days' WHERE tokens % 9 = 0 AND at < '2026-05-20';
    DELETE FROM usage WHERE id % 11 = 0;
    DELETE FROM metered WHERE tokens % 13 = 0;
});
exact('copy, updates moving rows across days and partitions, deletes');
$pub->safe_psql('postgres', 'TRUNCATE usage, metered');
exact('truncate');
$pub->safe_psql('postgres', q{
    INSERT INTO usage SELECT g, timestamptz '2026-05-01' + g * interval '3 hours', g % 4, g FROM generate_series(1, 100) g;
    INSERT INTO metered SELECT timestamptz '2026-05-01' + g * interval '9 hours', g % 3, g FROM generate_series(1, 100) g;
});
exact('refilled after truncate');

# updated_at mode: replicated rows keep the publisher's stamps.  A
# subscription that lags behind a refresh brings rows stamped before what the
# refresh scanned: the stale trigger logs their keys.
$sub->safe_psql('postgres', 'ALTER SUBSCRIPTION usage_sub DISABLE');
$pub->safe_psql('postgres', q{
    INSERT INTO stamped VALUES (9000, '2026-05-09', 1, 90);
    UPDATE stamped SET tokens = tokens + 1, updated_at = now() WHERE id = 7;
});
$sub->safe_psql('postgres', "SELECT memoria.refresh('stamped_daily')");
$sub->safe_psql('postgres', 'ALTER SUBSCRIPTION usage_sub ENABLE');
exact('a subscription that lagged behind a refresh');

is($sub->safe_psql('postgres', "SELECT count(*) FROM memoria.status WHERE state = 'capture_disabled'"), '0',
   'capture is intact on the subscriber');

$sub->stop;
$pub->stop;
done_testing();
