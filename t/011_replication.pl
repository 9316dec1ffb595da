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
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

# Crashes below restart the server in place, as a production server does.
my ($primary, $pport) =
  start_resp_node('primary', "restart_after_crash = on\n", allows_streaming => 1);
ok(wait_for_listener($pport), 'the primary listener is up');
$primary->safe_psql('postgres', q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE sessions (id text, data text, n int) SERVER kv
  OPTIONS (key 'id', resp_prefix 'sess:');
INSERT INTO sessions SELECT 's' || g, repeat('d', g % 50), g FROM generate_series(1, 2000) g;
});

# Standbys restart every process after one dies (kill -9 below).
my $crash_restarts = "restart_after_crash = on\n";

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

# RESP write load: redis-benchmark SETs (one value for all keys), and SETs of a distinct value per
# key (key:d<i>), so that a value applied to the wrong key or lost shows in the digest. (The pipe
# waits up to 3 minutes for replies: a durable SET costs two fsyncs, and on a loaded 2-core
# machine redis-cli's default 30 s was seen to pass without a reply.)
sub start_resp_load
{
	my ($n, $tag) = @_;
	my $pipe = '';
	for my $i (1 .. $n / 10)
	{
		my ($k, $v) = ("key:d" . ($i % 5000), "$tag-$i");
		$pipe .= sprintf("*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$%d\r\n%s\r\n",
			length($k), $k, length($v), $v);
	}
	my ($out, $err, $pout, $perr) = ('', '', '', '');
	return [
		[ IPC::Run::start(
			[ 'redis-benchmark', '-p', $pport, '-t', 'set', '-n', $n, '-r', '20000', '-d', '48',
				'-c', '4', '-q' ],
			'>', \$out, '2>', \$err), \$out, \$err ],
		[ IPC::Run::start([ 'redis-cli', '-p', $pport, '--pipe', '--pipe-timeout', '180' ], '<', \$pipe, '>', \$pout,
			'2>', \$perr), \$pout, \$perr ] ];
}

sub finish_load
{
	my ($procs) = @_;
	my $ok = 1;
	for my $p (@$procs)
	{
		my ($h, $out, $err) = @$p;
		next if $h->finish;
		$ok = 0;
		diag("load failed: " . join(' ', $h->full_results) . "\n$$out\n$$err");
	}
	return $ok;
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
	my $values = '';
	while (my @chunk = splice(@keys, 0, 500))
	{
		$values .= join("\n", @chunk) . "\n" . `redis-cli -p $port MGET @chunk 2>&1`;
	}
	return md5_hex($values);
}

$primary->backup('quiet');
my ($standby_a, $aport) = start_resp_standby('standby_a', $primary, 'quiet', $crash_restarts);

# A base backup taken while both kinds of writes go on.
my $sql_load = start_sql_load('load1_', 3000);
my $resp_load = start_resp_load(60000, 'load1');
$primary->backup('under_load');
ok($sql_load->finish, 'the SQL load ran without an error');
ok(finish_load($resp_load), 'so did the RESP load');
my ($standby_b, $bport) = start_resp_standby('standby_b', $primary, 'under_load', $crash_restarts);

# A standby of a standby.
$standby_a->backup('from_a');
my ($standby_c, $cport) = start_resp_standby('standby_c', $standby_a, 'from_a', $crash_restarts);

# While pg_basebackup copies the data directory, the engine deletes no file it may have listed:
# compaction and checkpoints wait for the end of the backup.
my $log_offset = -s $primary->logfile;    # earlier backups logged the same lines
my $slow = IPC::Run::start(
	[ 'pg_basebackup', '-D', $primary->basedir . '/slow_backup', '-h', $primary->host, '-p',
		$primary->port, '--max-rate=8M', '-X', 'none', '--no-sync' ],
	'>', \my $slow_out, '2>', \my $slow_err);
$primary->wait_for_log(qr/eloqkv: a base backup started/, $log_offset);
$log_offset = -s $primary->logfile;
like(psql_error($primary, 'SELECT eloqkv.compact()'),
	qr/a copy of the data directory is in progress \(a base backup\); compaction and checkpoints wait until it ends/,
	'compaction waits while a base backup runs');
ok($slow->finish, 'the slow base backup completed');
$primary->wait_for_log(qr/eloqkv: the base backup ended/, $log_offset);
like($primary->safe_psql('postgres', 'SELECT eloqkv.compact()'), qr/^\d+$/,
	'and runs again after it');

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

# kill -9 a process of a standby while it replays a stream of writes: every process of the
# standby restarts, replay included, and catches up. Then kill -9 a RESP worker of the primary under load: the primary restarts,
# replays its WAL, and its standbys go on from where they were.
sub startup_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'});
}
$sql_load = start_sql_load('load2_', 2000);
$resp_load = start_resp_load(40000, 'load2');
sleep 1;
# (A startup process that dies ends the standby; any other child that dies restarts it all.)
my $old_startup = startup_pid($standby_a);
my ($standby_pm) = split /\n/, slurp_file($standby_a->data_dir . '/postmaster.pid');
my $standby_worker = `pgrep -P $standby_pm -f 'eloqkv resp worker 0'`;
chomp $standby_worker;
kill 'KILL', $standby_worker;
ok($standby_a->poll_query_until('postgres',
		"SELECT pid <> $old_startup FROM pg_stat_activity WHERE backend_type = 'startup'"),
	'the standby restarted (and its replay) after kill -9 of one of its processes');
$sql_load->finish;
finish_load($resp_load);
wait_all();
$want_sql = sql_digest($primary);
$want_resp = resp_digest($pport);
is(sql_digest($standby_a), $want_sql, 'after kill -9 mid-replay, standby_a has every row');
is(resp_digest($aport), $want_resp, 'and every RESP key and value');
is(sql_digest($standby_c), $want_sql, 'and so has its cascaded standby');

$resp_load = start_resp_load(40000, 'load3');
sleep 1;
my ($postmaster) = split /\n/, slurp_file($primary->data_dir . '/postmaster.pid');
my $wpid = `pgrep -P $postmaster -f 'eloqkv resp worker 0'`;
chomp $wpid;
my $crash_offset = -s $primary->logfile;
kill 'KILL', $wpid;
$_->[0]->kill_kill for @$resp_load;    # its clients lost their connections
# The other worker answers until the postmaster has seen the death: wait for the restart first.
$primary->wait_for_log(qr/all server processes terminated; reinitializing/, $crash_offset);
ok(wait_for_listener($pport), 'the primary is back after kill -9 of a RESP worker under load');
is(redis_cli($pport, 'SET', 'key:after_crash', 'yes'), 'OK', 'and takes writes');
wait_all();
$want_sql = sql_digest($primary);
$want_resp = resp_digest($pport);
is(sql_digest($standby_a), $want_sql, "after the primary's crash, the standbys have every row");
is(resp_digest($aport), $want_resp, 'and every RESP key and value');
is(resp_digest($cport), $want_resp, 'so has the cascaded standby');

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

for my $node ($primary, $standby_a, $standby_b, $standby_c)
{
	ok(!$node->log_contains('KV replay:'), $node->name . ': KV replay never stopped');
	ok(!$node->log_contains('TRAP:'), $node->name . ': no failed assertion');
}
# Only the processes killed on purpose died.
for my $node ($standby_b, $standby_c)
{
	ok(!$node->log_contains('terminated by signal'), $node->name . ': no crash');
}

done_testing();
