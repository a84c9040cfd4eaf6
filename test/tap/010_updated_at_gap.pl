# updated_at mode: a query string whose later transactions take the string's
# start as their now().  PostgreSQL stamps every transaction a query string
# begins after a COMMIT in it with the time the string arrived; between two of
# them no transaction start is published.  A client that stops reading holds
# the backend right there (writing results), for as long as it likes: the
# horizon must not pass the string's start meanwhile, or the rows its next
# transaction inserts are behind what the refresh scanned.
use strict;
use warnings;
use IO::Socket::UNIX;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('gap');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'memoria'\nmemoria.enabled = off\n");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION memoria;
    CREATE TABLE ev (at timestamptz NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
    CREATE INDEX ON ev (updated_at);
    -- A second a bucket: a row missed is never picked up by another row's key.
    SELECT memoria.create_rollup('ev_s', 'ev', 'at', '{}', '{count(*) AS n}', bucket => '1 second',
                                 invalidation => 'updated_at', updated_at_column => 'updated_at',
                                 safety_lag => '0 seconds');
});

# A raw protocol-3 client: PQexec would read every result at once.
sub message {
    my ($sock) = @_;
    my $head = '';
    while (length($head) < 5) { my $n = sysread($sock, $head, 5 - length($head), length($head)) or die "read: $!"; }
    my ($type, $len) = unpack('a1 N', $head);
    my $body = '';
    while (length($body) < $len - 4) {
        my $n = sysread($sock, $body, $len - 4 - length($body), length($body)) or die "read: $!";
    }
    return ($type, $body);
}

sub connect_slow_client {
    my $sock = IO::Socket::UNIX->new(Peer => $node->host . '/.s.PGSQL.' . $node->port) or die "connect: $!";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096);
    my $params = "user\0" . getpwuid($<) . "\0database\0postgres\0\0";
    syswrite($sock, pack('N N', 8 + length($params), 196608) . $params);
    my $pid;
    while (1) {
        my ($type, $body) = message($sock);
        $pid = unpack('N', $body) if $type eq 'K';
        die "startup failed: $body" if $type eq 'E';
        last if $type eq 'Z';
    }
    return ($sock, $pid);
}

# Each try sends one string: many empty transactions, then an INSERT in a
# transaction of its own, and reads nothing until the backend is stuck
# writing.  Where it sticks varies with the first result's size; only a stall
# between two transactions (no xact_start) is the case under test.
my ($between, $tries) = (0, 0);
for my $offset (1 .. 40) {
    last if $between >= 3;
    $tries++;
    my ($sock, $pid) = connect_slow_client();
    my $sql = "SELECT repeat('x', " . ($offset * 5) . ");" . ("BEGIN;COMMIT;" x (20000 + $offset))
        . "INSERT INTO ev (at) VALUES ('2031-01-01'::timestamptz + $offset * interval '1 second');";
    syswrite($sock, 'Q' . pack('N', 4 + length($sql) + 1) . $sql . "\0");
    my $state = '';
    for (1 .. 100) {
        $state = $node->safe_psql('postgres',
            "SELECT (xact_start IS NULL)::text || ' ' || coalesce(wait_event, '-') FROM pg_stat_activity WHERE pid = $pid");
        last if $state =~ /ClientWrite/;
        usleep(20_000);
    }
    $between++ if $state eq 'true ClientWrite';
    # A refresh while the client stalls, then the client drains, then another.
    $node->safe_psql('postgres', "SELECT memoria.refresh('ev_s')");
    while (1) { my ($type) = message($sock); last if $type eq 'Z'; }
    close($sock);
    $node->safe_psql('postgres', "SELECT memoria.refresh('ev_s')");
}
note "$between of $tries tries stalled between two transactions";
cmp_ok($between, '>=', 1, 'a client stalled the backend between two transactions of its string');
is($node->safe_psql('postgres', "SELECT count(*) FROM ev"), $tries, 'every INSERT committed');
is($node->safe_psql('postgres', "SELECT count(*) FROM memoria.verify('ev_s')"), '0',
   'no row lost to a stall between transactions of one query string');

$node->stop;
done_testing();
