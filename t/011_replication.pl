# KV rows on every standby, through WAL: a primary, a standby from a quiet base backup, one from
# a base backup taken under SQL and RESP write load, and a standby cascaded from the first. After
# replay all four hold the same rows through SQL and RESP; an aborted transaction shows nowhere;
# a standby killed with -9 in the middle of replay comes back and catches up; a promoted
# standby keeps every replayed row and takes writes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my ($primary, $pport) = start_resp_node('primary', undef, allows_streaming => 1);
ok(wait_for_listener($pport), 'the primary listener is up');
$primary->safe_psql('postgres', q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE sessions (id text, data text, n int) SERVER kv
  OPTIONS (key 'id', resp_prefix 'sess:');
INSERT INTO sessions SELECT 's' || g, repeat('d', g % 50), g FROM generate_series(1, 2000) g;
});

sub make_standby
{
	my ($name, $upstream, $backup) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init_from_backup($upstream, $backup, has_streaming => 1);
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$node->append_conf('postgresql.conf', "eloqkv.resp_port = $port\n");
	$node->start;
	return ($node, $port);
}

# SQL write load: many small transactions (each commit sends a batch), some of them rolled back.
sub start_sql_load
{
	my ($tag, $n) = @_;
	my $sql = qq{DO \$\$ BEGIN FOR i IN 1..$n LOOP
  INSERT INTO sessions VALUES ('$tag' || i, md5(i::text), i)
    ON CONFLICT DO NOTHING;
  UPDATE sessions SET n = n + 1 WHERE id = 's' || (i % 2000 + 1);
  IF i % 10 = 0 THEN ROLLBACK; ELSE COMMIT; END IF;
END LOOP; END \$\$;};
	return IPC::Run::start(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', $primary->host, '-p', $primary->port,
			'-d', 'postgres', '-c', $sql ],
		'>', \my $out, '2>', \my $err);
}

# RESP write load: redis-benchmark SETs into the default keyspace.
sub start_resp_load
{
	my ($n) = @_;
	return IPC::Run::start(
		[ 'redis-benchmark', '-p', $pport, '-t', 'set', '-n', $n, '-r', '20000', '-d', '48',
			'-c', '4', '-q' ],
		'>', \my $out, '2>', \my $err);
}

sub sql_digest
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		q{SELECT count(*) || ' ' || md5(string_agg(id || '=' || data || '/' || n, ',' ORDER BY id))
		  FROM sessions});
}

# Every key of the default keyspace with its value, in key order, through RESP.
sub resp_digest
{
	my ($port) = @_;
	my @keys = sort split /\n/, `redis-cli -p $port --scan --pattern 'key:*' 2>&1`;
	my $values = @keys ? `redis-cli -p $port MGET @keys 2>&1` : '';
	return scalar(@keys) . ' ' . length($values) . ' ' . unpack('%32C*', $values);
}

$primary->backup('quiet');
my ($standby_a, $aport) = make_standby('standby_a', $primary, 'quiet');

# A base backup taken while both kinds of writes go on.
my $sql_load = start_sql_load('load1_', 3000);
my $resp_load = start_resp_load(60000);
$primary->backup('under_load');
ok($sql_load->finish, 'the SQL load ran without an error');
ok($resp_load->finish, 'so did the RESP load');
my ($standby_b, $bport) = make_standby('standby_b', $primary, 'under_load');

# A standby of a standby.
$standby_a->backup('from_a');
my ($standby_c, $cport) = make_standby('standby_c', $standby_a, 'from_a');

# An aborted transaction, then a marker row.
$primary->safe_psql('postgres', q{
BEGIN;
INSERT INTO sessions VALUES ('ghost', 'never', 0);
UPDATE sessions SET data = 'never' WHERE id = 's1';
ROLLBACK;
INSERT INTO sessions VALUES ('marker', 'last', 1);
});
is(redis_cli($pport, 'HSET', 'sess:resp_row', 'data', 'from-resp', 'n', '7'), '2',
	'a row written over RESP');

sub wait_all
{
	$primary->wait_for_catchup($standby_a);
	$primary->wait_for_catchup($standby_b);
	$standby_a->wait_for_catchup($standby_c, 'replay', $primary->lsn('insert'));
}
wait_all();

my $want_sql = sql_digest($primary);
my $want_resp = resp_digest($pport);
like($want_sql, qr/^\d+ /, "the primary's rows: $want_sql");
for my $s ([ 'standby_a', $standby_a, $aport ], [ 'standby_b (backup under load)', $standby_b, $bport ],
	[ 'standby_c (cascaded)', $standby_c, $cport ])
{
	my ($name, $node, $port) = @$s;
	is(sql_digest($node), $want_sql, "$name: the same rows through SQL");
	is(resp_digest($port), $want_resp, "$name: the same keys and values through RESP");
	is(redis_cli($port, 'HGET', 'sess:resp_row', 'data'), 'from-resp', "$name: the RESP-written row");
	is($node->safe_psql('postgres', q{SELECT count(*) FROM sessions WHERE id = 'ghost' OR data = 'never'}),
		'0', "$name: nothing of the aborted transaction");
}

# The replication view: each standby of a server with its KV replay lag.
is($primary->safe_psql('postgres',
		'SELECT application_name, kv_lag_bytes FROM eloqkv.replication ORDER BY 1'),
	"standby_a|0\nstandby_b|0", 'the primary lists both standbys, caught up');
is($standby_a->safe_psql('postgres',
		'SELECT application_name, kv_lag_bytes FROM eloqkv.replication ORDER BY 1'),
	"standby_c|0", 'a standby lists its cascaded standby');
is($standby_a->safe_psql('postgres',
		'SELECT role, waiting_batches, replay_stopped, kv_applied_lsn IS NOT NULL, next_sequence
		 FROM eloqkv.replication_position()'),
	"standby|0|f|t|" . $primary->safe_psql('postgres',
		'SELECT next_sequence FROM eloqkv.replication_position()'),
	'a standby reports its replay position, at the primary\'s next sequence number');

# kill -9 a standby while it replays a stream of writes, and start it again.
$sql_load = start_sql_load('load2_', 2000);
$resp_load = start_resp_load(40000);
sleep 1;
$standby_a->stop('immediate');
$standby_a->start;
$sql_load->finish;
$resp_load->finish;
wait_all();
$want_sql = sql_digest($primary);
$want_resp = resp_digest($pport);
is(sql_digest($standby_a), $want_sql, 'after kill -9 and restart, standby_a has every row');
is(resp_digest($aport), $want_resp, 'and every RESP key');
is(sql_digest($standby_c), $want_sql, 'and so has its cascaded standby');

# Promote the standby made under load; it keeps everything it replayed and takes writes.
$standby_b->promote;
$standby_b->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'standby_b was not promoted';
is(sql_digest($standby_b), $want_sql, 'the promoted standby kept every replayed row');
ok(wait_for_listener($bport), 'the promoted standby takes RESP writes');
$standby_b->safe_psql('postgres', q{INSERT INTO sessions VALUES ('after_promotion', 'new', 1)});
is($standby_b->safe_psql('postgres', q{SELECT data FROM sessions WHERE id = 'after_promotion'}),
	'new', 'and SQL writes');
is(redis_cli($bport, 'HGET', 'sess:after_promotion', 'data'), 'new', 'visible over RESP');

for my $node ($standby_a, $standby_b, $standby_c)
{
	ok(!$node->log_contains('KV replay:'), $node->name . ': KV replay never stopped');
	ok(!$node->log_contains('TRAP|terminated by signal'), $node->name . ': no crash');
}

done_testing();
