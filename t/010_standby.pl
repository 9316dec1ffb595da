# A hot standby made with pg_basebackup serves the primary's KV rows, replicated through WAL:
# SQL and RESP reads show what the primary committed (not what the base backup copied, nor
# anything from an aborted transaction); writes fail with Postgres's read-only errors and
# Redis's read-only replica error; caches serve the primary's replicated fills and read their
# source themselves on a miss, storing nothing, and the primary's invalidations reach them. After
# promotion everything is served and written again. A read-only transaction on the primary
# refuses the functions that write. Crash recovery of a primary is not mistaken for a standby.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my ($primary, $pport) = start_resp_node('primary', undef, allows_streaming => 1);
ok(wait_for_listener($pport), 'the primary listener is up');
$primary->safe_psql('postgres', q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE agents (id text, state text) SERVER kv
  OPTIONS (key 'id', resp_prefix 'agent:');
INSERT INTO agents VALUES ('a1', 'idle'), ('a2', 'busy');
CREATE TABLE users (id int PRIMARY KEY, name text);
INSERT INTO users VALUES (1, 'ada');
SELECT eloqkv.create_cache('user_cache', 'SELECT id, name FROM users WHERE id = $1',
                           resp_prefix => 'user:');
SELECT eloqkv.invalidate_on_change('user_cache', 'users', 'id');
});
is(redis_cli($pport, 'SET', 'plain', 'before-backup'), 'OK', 'a RESP key on the primary');

$primary->backup('base');
my ($standby, $sport) = start_resp_standby('standby', $primary, 'base');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is($standby->safe_psql('postgres', 'SELECT name FROM users WHERE id = 1'), 'ada',
	'heap rows are replicated');

# ---- writes on the primary reach the standby ----
$primary->safe_psql('postgres', q{
UPDATE agents SET state = 'replicated' WHERE id = 'a1';
DELETE FROM agents WHERE id = 'a2';
INSERT INTO agents VALUES ('a4', 'after-backup');
});
$primary->safe_psql('postgres', q{
BEGIN;
INSERT INTO agents VALUES ('aborted', 'never');
UPDATE agents SET state = 'never' WHERE id = 'a1';
ROLLBACK;
});
is(redis_cli($pport, 'SET', 'plain', 'after-backup'), 'OK', 'a RESP write on the primary');
is(redis_cli($pport, 'HSET', 'agent:a5', 'state', 'from-resp'), '1', 'a row written over RESP');
# WAIT: the standby made the WAL of every write acknowledged before it durable; a second
# standby that is not there is waited for until the timeout.
is(redis_session($pport, "SET waited yes\nWAIT 1 60000\nWAIT 2 200\n"), "OK\n1\n1\n",
	'WAIT counts the standby');
# INFO replication and ROLE on the primary: the standby, as a Redis replica.
like(redis_cli($pport, 'ROLE'), qr/^master\n(\d+)\n127\.0\.0\.1\n$pport\n(\d+)$/,
	'ROLE lists the standby (on this host; the port taken to be ours)');
my $info = redis_cli($pport, 'INFO', 'replication');
like($info, qr/^role:master\r?$/m, 'INFO replication: a master');
like($info, qr/^connected_slaves:1\r?$/m, 'INFO replication counts the standby');
like($info, qr/^slave0:ip=127\.0\.0\.1,port=$pport,state=online,offset=(\d+),lag=\d+\r?$/m,
	'and describes it');
my ($acked) = $info =~ /^slave0:.*offset=(\d+)/m;
my ($end) = $info =~ /^master_repl_offset:(\d+)/m;
cmp_ok($acked, '>', 0, 'the standby has flushed WAL');
cmp_ok($acked, '<=', $end, 'no further than the primary logged');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT id, state FROM agents ORDER BY id'),
	"a1|replicated\na4|after-backup\na5|from-resp",
	'the standby reads what the primary committed, through SQL');
is($standby->safe_psql('postgres', 'SELECT id, state FROM agents ORDER BY id'),
	$primary->safe_psql('postgres', 'SELECT id, state FROM agents ORDER BY id'),
	'the same rows as the primary');

# ---- SQL on the standby ----
is($standby->safe_psql('postgres', 'SELECT name FROM user_cache WHERE id = 2'), '',
	'a cache miss on the standby reads the source (no such row)');
is($standby->safe_psql('postgres', 'SELECT name FROM user_cache WHERE id = 1'), 'ada',
	'a cache miss on the standby reads the source');
is($standby->safe_psql('postgres',
		q{SELECT coalesce((SELECT keys FROM eloqkv.keyspace_stats() WHERE name LIKE '%user_cache'), 0)}),
	'0', 'and stores nothing');
$primary->safe_psql('postgres', 'SELECT name FROM user_cache WHERE id = 1');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres',
		q{SELECT coalesce((SELECT keys FROM eloqkv.keyspace_stats() WHERE name LIKE '%user_cache'), 0)}),
	'1', "the primary's fill reaches the standby");
is($standby->safe_psql('postgres', 'SELECT name FROM user_cache WHERE id = 1'), 'ada',
	'and serves the read');
$primary->safe_psql('postgres', "UPDATE users SET name = 'grace' WHERE id = 1");
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', 'SELECT name FROM user_cache WHERE id = 1'), 'grace',
	"the primary's invalidation reaches the standby's cache");
like($standby->safe_psql('postgres', "EXPLAIN (COSTS OFF) SELECT * FROM agents WHERE id = 'a1'"),
	qr/Foreign Scan on agents/, 'EXPLAIN still works');
like(psql_error($standby, "INSERT INTO agents VALUES ('a3', 'new')"),
	qr/cannot execute INSERT in a read-only transaction/, 'an INSERT gets the read-only error');
like(psql_error($standby, "SELECT eloqkv.invalidate('user_cache', 1)"),
	qr/cannot execute eloqkv.invalidate\(\) in a read-only transaction/,
	'invalidate() gets the read-only error');
like(psql_error($standby, "SELECT eloqkv.upsert('agents', ROW('a3', 'new')::agents)"),
	qr/cannot execute eloqkv.upsert\(\) in a read-only transaction/,
	'upsert() gets the read-only error');
like(psql_error($standby, "SELECT eloqkv.create_resp_user('u', 'pw', 'postgres')"),
	qr/cannot execute eloqkv.create_resp_user\(\) in a read-only transaction/,
	'create_resp_user() gets the read-only error');
is($standby->safe_psql('postgres', 'SELECT state FROM eloqkv.engine_info()'), 'ready',
	'engine_info() still reports the local engine');

# ---- RESP on the standby ----
my $ready = 0;
for (1 .. 300)
{
	last if ($ready = redis_cli($sport, 'PING') eq 'PONG');
	usleep(100_000);
}
ok($ready, 'the standby listener is up');
is(redis_cli($sport, 'SET', 'plain', 'x'), "READONLY You can't write against a read only replica.",
	'a RESP write gets the read-only replica error');
is(redis_cli($sport, 'HSET', 'agent:a1', 'state', 'x'),
	"READONLY You can't write against a read only replica.", 'so does a write of a table row');
like(redis_cli($sport, 'WAIT', '0', '0'), qr/^ERR WAIT cannot be used with replica instances\./,
	'WAIT is refused on a standby, as on a Redis replica');
# INFO replication and ROLE on the standby: a Redis replica of the primary.
like(redis_cli($sport, 'ROLE'), qr/^slave\n127\.0\.0\.1\n$sport\nconnected\n\d+$/,
	'ROLE on the standby names its primary, connected');
$info = redis_cli($sport, 'INFO', 'replication');
like($info, qr/^role:slave\r?$/m, 'INFO replication on the standby: a slave');
like($info, qr/^master_link_status:up\r?$/m, 'its link is up');
my ($io_ago) = $info =~ /^master_last_io_seconds_ago:(-?\d+)/m;
ok(defined $io_ago && $io_ago >= 0 && $io_ago <= 60, 'and recent');
my ($replayed) = $info =~ /^slave_repl_offset:(\d+)/m;
my ($received) = $info =~ /^slave_read_repl_offset:(\d+)/m;
cmp_ok($replayed, '>', 0, 'it replayed WAL');
cmp_ok($received, '>', 0, 'and received it');
like($info, qr/^connected_slaves:0\r?$/m, 'no standby of its own');
is(redis_cli($sport, 'GET', 'plain'), 'after-backup', 'a RESP read of a key is served');
is(redis_cli($sport, 'HGET', 'agent:a1', 'state'), 'replicated', 'and of a table row');
is(redis_cli($sport, 'EXISTS', 'agent:aborted'), '0', 'an aborted write is not there');
is(redis_session($sport, "MULTI\nGET plain\nEXEC\n"), "OK\nQUEUED\nafter-backup\n",
	'MULTI with reads only is served');
is(redis_cli($sport, 'HGET', 'user:1', 'name'),
	'ERR cache misses are not filled on a standby; read the key on the primary',
	'a RESP cache miss on the standby is refused, not parked');
$primary->safe_psql('postgres', 'SELECT name FROM user_cache WHERE id = 1');
$primary->wait_for_catchup($standby);
is(redis_cli($sport, 'HGET', 'user:1', 'name'), 'grace', "a RESP cache hit on the primary's fill");
like(redis_cli($sport, 'INFO', 'replication'), qr/role:slave/, 'INFO says it is a replica');
is(redis_session($sport, "MULTI\nSET plain y\nEXEC\n"),
	"OK\nREADONLY You can't write against a read only replica.\n\n"
	  . "EXECABORT Transaction discarded because of previous errors.\n\n",
	'MULTI with a write is discarded');

# ---- a read-only transaction on the primary ----
is($primary->safe_psql('postgres', "BEGIN READ ONLY; SELECT state FROM agents WHERE id = 'a1'; COMMIT;"),
	'replicated', 'the primary reads KV rows in a read-only transaction');
like(psql_error($primary, "BEGIN READ ONLY; SELECT eloqkv.invalidate('user_cache', 1);"),
	qr/cannot execute eloqkv.invalidate\(\) in a read-only transaction/,
	'and refuses invalidate() there');

# ---- the link down: the primary stopped ----
$primary->stop('fast');
my $down = 0;
for (1 .. 300)
{
	last if ($down = redis_cli($sport, 'INFO', 'replication') =~ /^master_link_status:down\r?$/m);
	usleep(100_000);
}
ok($down, 'INFO replication on the standby: the link is down once the primary stopped');
$info = redis_cli($sport, 'INFO', 'replication');
like($info, qr/^master_last_io_seconds_ago:-1\r?$/m, 'no last I/O while it is down');
like($info, qr/^master_link_down_since_seconds:\d+\r?$/m, 'and how long it has been down');
like($info, qr/^master_host:127\.0\.0\.1\r?$/m, 'the primary it last reached is still named');
like(redis_cli($sport, 'ROLE'), qr/^slave\n127\.0\.0\.1\n$sport\n(connect|connecting)\n-1$/,
	'ROLE: not connected, no offset');
$primary->start;

# ---- promotion ----
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the standby was not promoted';
ok(wait_for_listener($sport), 'after promotion a RESP write is served');
is(redis_cli($sport, 'SET', 'plain', 'after-promotion'), 'OK', 'over the copied key');
is(redis_cli($sport, 'GET', 'plain'), 'after-promotion', 'and read back');
like(redis_cli($sport, 'INFO', 'replication'), qr/role:master/, 'INFO says master');
like(redis_cli($sport, 'ROLE'), qr/^master\n\d+/, 'and so does ROLE');
$standby->safe_psql('postgres', "INSERT INTO agents VALUES ('a3', 'new')");
is($standby->safe_psql('postgres', 'SELECT id, state FROM agents ORDER BY id'),
	"a1|replicated\na3|new\na4|after-backup\na5|from-resp",
	'SQL reads and writes KV rows after promotion');
is($standby->safe_psql('postgres', "SELECT name FROM user_cache WHERE id = 1"), 'grace',
	'a cache fills after promotion');
ok(!$standby->log_contains('TRAP|terminated by signal'), 'no crash in the standby log');

# ---- crash recovery is not a standby ----
# The listener starts with the postmaster, so it answers during crash recovery, which
# RecoveryInProgress() also reports: it must not call itself a replica then. A few hundred MB
# of WAL make the replay long enough to ask; a child process asks INFO all along while start()
# waits for the server to be ready.
$primary->safe_psql('postgres', q{
ALTER SYSTEM SET checkpoint_timeout = '1h';
ALTER SYSTEM SET max_wal_size = '4GB';
SELECT pg_reload_conf();
CHECKPOINT;
CREATE TABLE wal_filler AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 300000) g;
});
$primary->stop('immediate');
my $samples_file = $primary->basedir . '/info_samples';
my $asker = fork() // die "fork: $!";
if ($asker == 0)
{
	open(my $out, '>', $samples_file) or die "$samples_file: $!";
	$out->autoflush(1);
	while (1)
	{
		my ($role) = (redis_cli($pport, 'INFO', 'replication') =~ /role:(\w+)/);
		print $out ($role // 'none'), "\n";
		usleep(20_000);
	}
}
$primary->start;
kill 'TERM', $asker;
waitpid($asker, 0);
my @roles = grep { $_ ne 'none' } split /\n/, slurp_file($samples_file);
note(scalar(@roles) . ' INFO replies while the primary started and recovered');
SKIP:
{
	skip 'the listener answered nothing before recovery ended', 1 if !@roles;
	is(scalar(grep { $_ ne 'master' } @roles), 0, 'every INFO during crash recovery says role:master');
}
ok(wait_for_listener($pport), 'and writes are served after it');

done_testing();
