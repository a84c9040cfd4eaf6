# memoriactl, the real binary, against a throwaway cluster: each subcommand's
# output and exit code, clear errors (connection, missing extension, unknown
# rollup, bad arguments), the non-TTY backfill format, and a backfill
# interrupted with SIGINT, then resumed and verified.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use IPC::Run;
use JSON::PP;

my $bindir = `pg_config --bindir`;
chomp $bindir;
my $ctl = $ENV{MEMORIACTL} // "$bindir/memoriactl";
ok(-x $ctl, "memoriactl is installed ($ctl)");

my $node = PostgreSQL::Test::Cluster->new('ctl');
$node->init;
$node->start;
my $db = $node->connstr('postgres');

# memoriactl ARGS...: (exit code, stdout, stderr).
sub ctl {
    my ($out, $err) = ('', '');
    IPC::Run::run([$ctl, @_], '>', \$out, '2>', \$err);
    return ($? >> 8, $out, $err);
}

my ($rc, $out, $err);
($rc, $out) = ctl('--help');
is($rc, 0, '--help exits 0');
like($out, qr/check-lag/, '--help lists the commands');
($rc, $out) = ctl('--version');
like($out, qr/^memoriactl \d+\.\d+\.\d+/, '--version');
($rc, $out, $err) = ctl();
is($rc, 2, 'no command: exit 2');
like($err, qr/Try "memoriactl --help"/, 'with a usage hint');
($rc, $out, $err) = ctl('-d', $db, 'verify');
is($rc, 2, 'verify without a rollup: exit 2');
($rc, $out, $err) = ctl('-d', $db, 'status', '--bogus');
like($err, qr/unknown option "--bogus"/, 'unknown option named');
($rc, $out, $err) = ctl('-d', 'host=/nonexistent port=1 dbname=x', 'status');
is($rc, 2, 'connection failure: exit 2');
like($err, qr/cannot connect/, 'connection failure explained');
($rc, $out, $err) = ctl('-d', $db, 'status');
is($rc, 2, 'missing extension: exit 2');
like($err, qr/memoria is not installed in database "postgres".*\nhint: .*CREATE EXTENSION memoria/s,
     'missing extension explained, with a hint');

$node->safe_psql('postgres', q{
    CREATE EXTENSION memoria;
    CREATE TABLE ev (at timestamptz NOT NULL, k int NOT NULL, v int NOT NULL);
    INSERT INTO ev SELECT timestamptz '2026-01-01' + g * interval '1 hour', g % 5, g FROM generate_series(1, 3000) g;
    CREATE FUNCTION slow(v int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT v FROM pg_sleep(0.002) $$;
    SELECT memoria.create_rollup('ev_daily', 'ev', 'at', ARRAY['k'], ARRAY['sum(v) AS v', 'count(*) AS n']);
    SELECT memoria.create_rollup('ev_slow', 'ev', 'at', ARRAY['k'], ARRAY['sum(slow(v)) AS v']);
});

($rc, $out) = ctl('-d', $db, 'status');
is($rc, 0, 'status exits 0');
like($out, qr/^rollup\s+watermark\s+lag\s+pending/m, 'status prints a table header');
like($out, qr/^ev_daily\s+-\s+-\s+0\s+.*needed/m, 'a new rollup shows no watermark and a needed backfill');
($rc, $out) = ctl('-d', $db, 'status', '--json');
my $status = decode_json($out);
is(scalar(@$status), 2, 'status --json: one object per rollup');
is($status->[0]{rollup}, 'ev_daily', 'with the rollup name');
ok(exists $status->[0]{pending_keys} && exists $status->[0]{last_error}, 'and the status columns');

# backfill, not on a terminal: one line per slice.
($rc, $out) = ctl('-d', $db, 'backfill', 'ev_daily', '--slice', '1 month');
is($rc, 0, 'backfill exits 0');
like($out, qr/^slice 1\/5 \[2026-01-01 .*\) [0-9.]+% \d+ rows \(\d+ rows\/s\) ETA \S+$/m,
     'one plain line per slice when stdout is not a terminal');
like($out, qr/^backfill of ev_daily complete: 5 slices, \d+ rollup rows, [0-9.]+ s$/m, 'a closing summary');
($rc, $out) = ctl('-d', $db, 'verify', 'ev_daily');
is($rc, 0, 'verify of an exact rollup exits 0');
like($out, qr/ev_daily matches its source/, 'and says so');

# A backfill interrupted by SIGINT, then resumed.
my ($bout, $berr) = ('', '');
my $h = IPC::Run::start([$ctl, '-d', $db, 'backfill', 'ev_slow', '--slice', '5 days'], '>', \$bout, '2>', \$berr);
IPC::Run::pump($h) until $bout =~ /^slice 3\//m;
$h->signal('INT');
$h->finish;
is($h->result, 130, 'SIGINT: exit 130');
like($berr, qr/interrupted; the slices done are committed, run the same command again to resume/,
     'SIGINT: explained');
my ($needs, $progress) = split /\|/,
    $node->safe_psql('postgres', "SELECT needs_backfill, backfill_progress FROM memoria.status WHERE rollup = 'ev_slow'");
is($needs, 't', 'the interrupted backfill is not marked done');
ok($progress > 0 && $progress < 1, "its progress is kept ($progress)");
is($node->safe_psql('postgres',
    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL memoria.backfill%' AND pid <> pg_backend_pid()"),
   '0', 'the server-side backfill was cancelled, not left running');
($rc, $out) = ctl('-d', $db, 'backfill', 'ev_slow', '--slice', '5 days');
is($rc, 0, 'the second run exits 0');
like($out, qr/^resuming at 2026-01-/m, 'it resumes where the first stopped');
unlike($out, qr/^slice \d+\/25 /m, 'rather than starting over');
($rc, $out) = ctl('-d', $db, 'verify', 'ev_slow');
is($rc, 0, 'the resumed backfill is exact');

# refresh
$node->safe_psql('postgres', "INSERT INTO ev VALUES ('2026-01-02 05:00', 1, 1000)");
($rc, $out) = ctl('-d', $db, 'refresh', 'ev_daily');
is($rc, 0, 'refresh exits 0');
like($out, qr/^ev_daily: ok, 1 keys, 1 rows upserted, 0 deleted/m, 'refresh says what it did');
($rc, $out, $err) = ctl('-d', $db, 'refresh', 'nope');
is($rc, 2, 'refresh of an unknown rollup: exit 2');
like($err, qr/rollup "nope" does not exist/, 'named in the message');
$node->safe_psql('postgres', q{
    CREATE FUNCTION fail(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RAISE EXCEPTION 'measure failed'; END $$;
    SELECT memoria.create_rollup('ev_bad', 'ev', 'at', ARRAY['k'], ARRAY['sum(fail(v)) AS v']);
    INSERT INTO ev VALUES ('2026-01-03 05:00', 1, 1);
});
($rc, $out) = ctl('-d', $db, 'refresh');
is($rc, 1, 'refresh exits 1 when a rollup failed');
like($out, qr/^ev_bad: error.*\n  error: .*measure failed/m, 'with the error');
like($out, qr/^ev_daily: ok/m, 'the others were refreshed');
# A failing rollup makes status exit 1 and check-lag CRITICAL, whatever its lag.
($rc, $out) = ctl('-d', $db, 'status');
is($rc, 1, 'status exits 1 while a rollup fails');
like($out, qr/^ev_bad .* error /m, 'and shows its state');
($rc, $out) = ctl('-d', $db, 'status', '--json');
my ($bad) = grep { $_->{rollup} eq 'ev_bad' } @{decode_json($out)};
my ($good) = grep { $_->{rollup} eq 'ev_daily' } @{decode_json($out)};
is($bad->{state}, 'error', 'status --json: the state');
like($out, qr/"lag_seconds": [\d.]+[,}]/, 'status --json: lag in seconds, as a JSON number');
ok(defined $good->{lag_seconds} && $good->{lag_seconds} > 0, 'a positive one');
($rc, $out) = ctl('-d', $db, 'check-lag', '--warn', '1h', '--crit', '2h');
is($rc, 2, 'check-lag: a failing rollup is CRITICAL');
like($out, qr/^MEMORIA CRITICAL - ev_bad error: .*measure failed/, 'naming it and its error');
# As a monitoring role (pg_monitor), not the owner: the same truth.
$node->safe_psql('postgres', "CREATE ROLE watcher LOGIN IN ROLE pg_monitor");
($rc, $out) = ctl('-d', $node->connstr('postgres') . ' user=watcher', 'check-lag', '--warn', '1h', '--crit', '2h');
is($rc, 2, 'check-lag as pg_monitor sees the failing rollup');
$node->safe_psql('postgres', "SELECT memoria.drop_rollup('ev_bad', drop_table => true)");
($rc, $out) = ctl('-d', $node->connstr('postgres') . ' user=watcher', 'check-lag');
like($out, qr/^MEMORIA OK - 2 rollups/, 'and every rollup');

# verify with a difference
$node->safe_psql('postgres', "SET memoria.writing_rollup = on; UPDATE memoria_rollup.ev_daily SET v = v + 1 WHERE bucket = '2026-01-05' AND k = 2");
($rc, $out) = ctl('-d', $db, 'verify', 'ev_daily', '--from', '2026-01-01', '--to', '2026-02-01');
is($rc, 1, 'verify exits 1 on a difference');
like($out, qr/^2026-01-05 00:00:00\+00 \{"k": 2\}: rollup \{.*\}, source \{.*\}\n.*1 differing group$/m,
     'and prints the differing group');
$node->safe_psql('postgres', "SELECT memoria.refresh_window('ev_daily', '2026-01-05', '2026-01-06')");

# check-lag: monitoring-plugin conventions.
($rc, $out) = ctl('-d', $db, 'check-lag');
is($rc, 0, 'check-lag OK: exit 0');
like($out, qr/^MEMORIA OK - 2 rollups, max lag \S+ \(ev_\w+\) \| ev_daily=\d+s;600;1800 ev_slow=\d+s;600;1800$/,
     'one status line with perfdata');
($rc, $out) = ctl('-d', $db, 'check-lag', '--warn', '0s', '--crit', '1h', 'ev_daily');
is($rc, 1, 'check-lag WARNING: exit 1');
like($out, qr/^MEMORIA WARNING - ev_daily lag /, 'WARNING line');
($rc, $out) = ctl('-d', $db, 'check-lag', '--warn', '0s', '--crit', '0s');
is($rc, 2, 'check-lag CRITICAL: exit 2');
($rc, $out) = ctl('-d', $db, 'check-lag', 'ev_daily', 'nope');
is($rc, 3, 'check-lag of an unknown rollup: UNKNOWN');
like($out, qr/^MEMORIA UNKNOWN - nope does not exist/, 'UNKNOWN line');
($rc, $out) = ctl('-d', $db, 'check-lag', '--warn', 'banana');
is($rc, 3, 'check-lag with a bad threshold: UNKNOWN');
($rc, $out) = ctl('-d', 'host=/nonexistent port=1 dbname=x', 'check-lag');
is($rc, 3, 'check-lag without a server: UNKNOWN');
like($out, qr/^MEMORIA UNKNOWN - cannot connect/, 'UNKNOWN line for the connection');

# The postgres_exporter query file: every query runs as a pg_monitor role
# and returns the columns its metrics name.
my $yaml = slurp_file("$FindBin::RealBin/../../tools/prometheus/memoria.yaml");
my $checked = 0;
while ($yaml =~ /^(\w+):\n  query: \|\n((?:    .*\n)+)(?:  master: true\n)?  metrics:\n((?:    .*\n)+)/mg) {
    my ($name, $query, $metrics) = ($1, $2, $3);
    my @columns = $metrics =~ /^    - (\w+):$/mg;
    my ($qrc, $qout, $qerr) = $node->psql('postgres', "COPY ($query LIMIT 1) TO STDOUT WITH (FORMAT csv, HEADER)",
                                          connstr => $node->connstr('postgres') . ' user=watcher');
    is($qrc, 0, "exporter query $name runs as pg_monitor") or diag($qerr);
    my ($header) = split /\n/, $qout;
    is($header, join(',', @columns), "exporter query $name returns its metrics' columns");
    $checked++;
}
is($checked, 2, 'both exporter queries were checked');

$node->stop;
done_testing();
