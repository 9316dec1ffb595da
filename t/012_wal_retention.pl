# The WAL that KV writes may still need is kept until the engine has synced them. A replication
# slot, eloqkv_engine, held by the maintenance worker on primaries and standbys, follows the
# engine's durable position. When the engine's files lose their unsynced tail (simulated here by
# putting back an older copy of them and of the slot) while WAL kept the writes, startup replays
# the kept KV records before redo, and every acknowledged write is there again. When that WAL is
# gone, the log says which writes could not come back.
use strict;
use warnings;
use File::Path qw(rmtree);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::RecursiveCopy;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

# wal_keep_size keeps the WAL older copies of the slot point to: this test puts such copies back.
my ($node, $port) =
  start_resp_node('primary', "wal_keep_size = '1GB'\n", allows_streaming => 1);
ok(wait_for_listener($port), 'the listener is up');
sub sql { return $node->safe_psql('postgres', $_[0]); }

# The listener takes the server's state at its next poll: waits until $command is refused.
sub wait_for_refusal
{
	my ($port, $command) = @_;
	for (1 .. 100)
	{
		my @args = $command eq 'GET' ? ('probe') : ('probe', '1');
		return 1 if redis_cli($port, $command, @args) =~ /^ERR KV writes with sequence numbers/;
		usleep(100_000);
	}
	return 0;
}

my $slot_query = q{SELECT slot_type || ' ' || active || ' ' || (restart_lsn IS NOT NULL)
  FROM pg_replication_slots WHERE slot_name = 'eloqkv_engine'};
ok($node->poll_query_until('postgres', $slot_query, 'physical true true'),
	'the primary has an active physical slot eloqkv_engine');
like(slurp_file($node->logfile),
	qr/LOG:  eloqkv: created replication slot "eloqkv_engine" to keep the WAL that KV writes/,
	'its creation is logged');

my $err = psql_error($node, q{SELECT pg_drop_replication_slot('eloqkv_engine')});
like($err, qr/ERROR:  replication slot "eloqkv_engine" is active for PID \d+/,
	'the slot cannot be dropped while the engine holds it');

sql(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE agents (id text, state text) SERVER kv
  OPTIONS (key 'id', resp_prefix 'agent:');
INSERT INTO agents VALUES ('kept', 'old'), ('deleted-later', 'old'), ('updated-later', 'old');
});
is(redis_cli($port, 'SET', 'plain:old', 'v0'), 'OK', 'a RESP write');

# The slot follows the engine: once the writes are synced it moves past them.
my $after_writes = sql('SELECT pg_current_wal_insert_lsn()');
ok($node->poll_query_until('postgres',
		qq{SELECT restart_lsn >= '$after_writes' FROM pg_replication_slots
		   WHERE slot_name = 'eloqkv_engine'}),
	'the slot moves past writes the engine has synced');

# ---- the engine's files lose writes that WAL still has ----
$node->stop('fast');
my $saved = PostgreSQL::Test::Utils::tempdir();
my $engine_dir = $node->data_dir . '/eloqkv';
my $slot_dir = $node->data_dir . '/pg_replslot/eloqkv_engine';
PostgreSQL::Test::RecursiveCopy::copypath($engine_dir, "$saved/eloqkv");
PostgreSQL::Test::RecursiveCopy::copypath($slot_dir, "$saved/slot");
$node->start;
ok(wait_for_listener($port), 'the listener is back');

# Writes before a checkpoint are behind the redo start: only the slot's WAL has them then.
sql(q{
INSERT INTO agents VALUES ('sql-before-checkpoint', 'a');
DELETE FROM agents WHERE id = 'deleted-later';
UPDATE agents SET state = 'new' WHERE id = 'updated-later';
});
sql(q{BEGIN; INSERT INTO agents VALUES ('rolled-back', 'x'); ROLLBACK;});
is(redis_cli($port, 'SET', 'plain:before', 'v1'), 'OK', 'a RESP write before the checkpoint');
is(redis_cli($port, 'HSET', 'agent:resp-before', 'state', 'b'), '1',
	'a RESP row write before the checkpoint');
sql('CHECKPOINT');
sql(q{INSERT INTO agents VALUES ('sql-after-checkpoint', 'c');});
is(redis_cli($port, 'SET', 'plain:after', 'v2'), 'OK', 'a RESP write after the checkpoint');

my $expected_rows = join("\n",
	'kept|old', 'resp-before|b', 'sql-after-checkpoint|c', 'sql-before-checkpoint|a',
	'updated-later|new');
is(sql('SELECT id, state FROM agents ORDER BY id'), $expected_rows, 'the rows before the crash');

$node->stop('immediate');
rmtree($engine_dir);
rmtree($slot_dir);
PostgreSQL::Test::RecursiveCopy::copypath("$saved/eloqkv", $engine_dir);
PostgreSQL::Test::RecursiveCopy::copypath("$saved/slot", $slot_dir);
my $offset = -s $node->logfile;
$node->start;
ok(wait_for_listener($port), 'the listener is up after recovery');

like(slurp_file($node->logfile, $offset),
	qr/LOG:  eloqkv: replayed [1-9]\d* KV records from the WAL kept between [0-9A-F]+\/[0-9A-F]+ and the redo start [0-9A-F]+\/[0-9A-F]+/,
	'startup replays the KV records the slot kept');
is(sql('SELECT id, state FROM agents ORDER BY id'), $expected_rows,
	'every committed SQL write is back, the rolled-back one is not');
is(redis_session($port, "GET plain:old\nGET plain:before\nGET plain:after\nHGET agent:resp-before state\n"),
	"v0\nv1\nv2\nb\n", 'every acknowledged RESP write is back');
is(redis_cli($port, 'SET', 'plain:later', 'v3'), 'OK', 'and the engine takes new writes');
ok($node->poll_query_until('postgres', $slot_query, 'physical true true'),
	'the slot is held again');

# ---- a standby keeps WAL for its engine too ----
$node->backup('base');
my ($standby, $sport) = start_resp_standby('standby', $node, 'base');
ok($standby->poll_query_until('postgres', $slot_query, 'physical true true'),
	'the standby has its own active slot eloqkv_engine');
sql(q{INSERT INTO agents VALUES ('to-standby', 'd');});
my $replayed = sql('SELECT pg_current_wal_insert_lsn()');
$node->wait_for_catchup($standby);
ok($standby->poll_query_until('postgres',
		qq{SELECT restart_lsn >= '$replayed' FROM pg_replication_slots
		   WHERE slot_name = 'eloqkv_engine'}),
	'the standby slot moves past replayed writes once its engine has synced them');
is($standby->safe_psql('postgres', q{SELECT state FROM agents WHERE id = 'to-standby'}), 'd',
	'the standby serves the replicated row');

# ---- a standby whose engine lost writes that no kept WAL brings back ----
# An older copy of its engine, no slot, and a restartpoint past a write: replay finds the gap.
$standby->stop('fast');
my $standby_engine = $standby->data_dir . '/eloqkv';
my $standby_slot = $standby->data_dir . '/pg_replslot/eloqkv_engine';
my $standby_saved = PostgreSQL::Test::Utils::tempdir();
PostgreSQL::Test::RecursiveCopy::copypath($standby_engine, "$standby_saved/eloqkv");
$standby->start;
sql(q{INSERT INTO agents VALUES ('missed', 'x');});
sql('CHECKPOINT');
$node->wait_for_catchup($standby);
$standby->safe_psql('postgres', 'CHECKPOINT');
$standby->stop('immediate');
rmtree($standby_engine);
rmtree($standby_slot);
PostgreSQL::Test::RecursiveCopy::copypath("$standby_saved/eloqkv", $standby_engine);
$standby->start;
sql(q{INSERT INTO agents VALUES ('after-gap', 'y');});
ok($standby->poll_query_until('postgres',
		'SELECT replay_stopped FROM eloqkv.replication_position()'),
	'replication_position() says KV replay stopped');
my $gap = qr/KV writes with sequence numbers \d+-\d+ never reached this server's engine \(the next batch, at [0-9A-F]+\/[0-9A-F]+, starts at \d+\)/;
like(psql_error($standby, 'SELECT * FROM agents'),
	qr/ERROR:  eloqkv tables on this standby are not current\nDETAIL:  $gap\nHINT:  Rebuild the standby from a new base backup; the primary has the rows\./,
	'SQL reads on the standby are refused, with the writes it is missing');
ok(wait_for_refusal($sport, 'GET'), 'so are RESP reads');
like(redis_cli($sport, 'GET', 'plain:old'), qr/^ERR $gap$/, 'with the same reason');
$standby->restart;
like(psql_error($standby, 'SELECT * FROM agents'), qr/eloqkv tables on this standby are not current/,
	'a restart does not make the standby current again');

$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'the standby was not promoted';
like(psql_error($standby, 'SELECT * FROM agents'),
	qr/ERROR:  eloqkv tables on this server are not current\nDETAIL:  Its KV replay stopped while it was a standby: $gap\nHINT:  Rebuild it from a base backup of a server that has the rows, or accept what it has with eloqkv.accept_replay_gap\(\)\./,
	'nor does a promotion');
ok(wait_for_refusal($sport, 'SET'),
	'RESP writes on the promoted server are refused too');
like($standby->safe_psql('postgres', 'SELECT eloqkv.accept_replay_gap()'), qr/^$gap$/,
	'accept_replay_gap() returns why replay had stopped');
is($standby->safe_psql('postgres', 'SELECT id FROM agents ORDER BY id'),
	"after-gap\nkept\nresp-before\nsql-after-checkpoint\nsql-before-checkpoint\nto-standby\nupdated-later",
	'then SQL reads serve what the engine has: the missed row is not there');
like(slurp_file($standby->logfile),
	qr/WARNING:  eloqkv: KV reads resume although KV replay had stopped: $gap/,
	'the acceptance is logged');
$standby->restart;
is($standby->safe_psql('postgres', q{SELECT state FROM agents WHERE id = 'after-gap'}), 'y',
	'and stays accepted after a restart');
ok(wait_for_listener($sport), 'RESP serves and takes writes again');
$standby->stop('fast');

# ---- the checkpoint interlock: a connected worker of its own ----
my $interlock_pid = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'eloqkv checkpoint interlock'};
like(sql($interlock_pid), qr/^\d+$/, 'the checkpoint interlock runs');
sql('CREATE DATABASE scratch');
sql('DROP DATABASE scratch');
pass('DROP DATABASE completes (the interlock absorbs its barrier)');
my $first_pid = sql($interlock_pid);
sql("SELECT pg_terminate_backend($first_pid)");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM ($interlock_pid) p WHERE pid <> $first_pid"),
	'a terminated interlock is started again');

# ---- the write-out helper: WAL flushes off the listener's loop ----
# Not connected to a database, so not in pg_stat_activity: found among the postmaster's children.
sub helper_pid
{
	my $postmaster = $node->{_pid};
	my $children = `ps -o pid=,args= --ppid $postmaster`;
	return $children =~ /^\s*(\d+)\s.*eloqkv wal flusher/m ? $1 : undef;
}
my $first_helper = helper_pid();
ok(defined $first_helper, 'the write-out helper runs on a primary');
kill 'TERM', $first_helper;
is(redis_cli($port, 'SET', 'plain:without-helper', 'h1'), 'OK',
	'a SET is acknowledged while the helper is gone (the listener writes out itself)');
my $helper_back;
for (1 .. 300)
{
	my $pid = helper_pid();
	if (defined $pid && $pid != $first_helper) { $helper_back = 1; last; }
	usleep(100_000);
}
ok($helper_back, 'a terminated helper is started again');
is(redis_cli($port, 'SET', 'plain:with-helper', 'h2'), 'OK', 'and SETs are acknowledged through it');
is(redis_cli($port, 'GET', 'plain:without-helper'), 'h1', 'both writes are there');

# ---- a checkpoint under a RESP write load that never pauses ----
# A pipelining client that never waits keeps the listener logging batches in every loop
# iteration, so at no moment are all of them in the engine's files. A checkpoint waits only for
# those logged before its redo point; the first version waited until the load stopped, or 10 s
# and then went on with a WARNING (found by bench/resp's redis-cli --pipe load).
my $load_offset = -s $node->logfile;
my $seq_now = 'SELECT next_sequence FROM eloqkv.replication_position()';
my $load_from = sql($seq_now);
my $load = IPC::Run::start(
	[ 'perl', '-e', '$| = 0; for (my $i = 0;; ++$i) { print "SET plain:load:", $i % 1000, " v\r\n" }' ],
	'|', [ 'redis-cli', '-p', $port, '--pipe' ],
	'>', \my $load_out, '2>', \my $load_err);
ok($node->poll_query_until('postgres', "SELECT next_sequence > $load_from + 10000 FROM eloqkv.replication_position()"),
	'a pipelined SET load runs');
sql('CHECKPOINT');
my $after_checkpoint = sql($seq_now);
ok($node->poll_query_until('postgres', "SELECT next_sequence > $after_checkpoint + 10000 FROM eloqkv.replication_position()"),
	'the load still runs after the checkpoint');
$load->kill_kill;
unlike(slurp_file($node->logfile, $load_offset), qr/still not in the engine's files/,
	'the checkpoint did not wait for the load to stop');

# ---- a base backup while a write is in WAL but not yet in the engine's files ----
# The listener holds its syncs for 3 s: a SET is logged at once and reaches the engine's files
# only then. The backup's checkpoint waits for it, so the copy of the files holds it; without
# that wait the new standby would start with the write missing and refuse KV reads.
$node->append_conf('postgresql.conf', "eloqkv.resp_debug_sync_delay = '3s'\n");
$node->reload;
my $seq_query = 'SELECT next_sequence FROM eloqkv.replication_position()';
my $seq_before = sql($seq_query);
my $slow_set = IPC::Run::start([ 'redis-cli', '-p', $port, 'SET', 'plain:in-window', 'w' ],
	'<', \undef, '>', \my $slow_set_out, '2>', \my $slow_set_err);
ok($node->poll_query_until('postgres', "SELECT next_sequence > $seq_before FROM eloqkv.replication_position()"),
	'the SET is logged');
$node->backup('in_window');
ok($slow_set->finish, 'the SET was acknowledged');
is($slow_set_out, "OK\n", 'with +OK');
my ($windowed, $wport) =
  start_resp_standby('windowed', $node, 'in_window', "eloqkv.resp_debug_sync_delay = 0\n");
$node->wait_for_catchup($windowed);
is($windowed->safe_psql('postgres', 'SELECT replay_stopped FROM eloqkv.replication_position()'),
	'f', 'the standby made from that backup misses no KV write');
is(redis_cli($wport, 'GET', 'plain:in-window'), 'w', 'and serves the SET');
$windowed->stop('fast');
$node->append_conf('postgresql.conf', "eloqkv.resp_debug_sync_delay = 0\n");
$node->reload;

# ---- the kept WAL is gone ----
# The live slot moved on, so once wal_keep_size allows, checkpoints remove the WAL the saved copy
# points to. Putting the copies back then leaves writes nothing can replay: the log says so.
$node->append_conf('postgresql.conf', "wal_keep_size = 0\nmin_wal_size = '32MB'\nmax_wal_size = '64MB'\n");
$node->reload;
sql('SELECT pg_switch_wal(); CHECKPOINT;') for 1 .. 4;
$node->stop('immediate');
rmtree($engine_dir);
rmtree($slot_dir);
PostgreSQL::Test::RecursiveCopy::copypath("$saved/eloqkv", $engine_dir);
PostgreSQL::Test::RecursiveCopy::copypath("$saved/slot", $slot_dir);
$offset = -s $node->logfile;
$node->start;
ok(wait_for_listener($port), 'the listener is up');
like(slurp_file($node->logfile, $offset),
	qr/WARNING:  eloqkv: KV replay: the WAL kept for KV writes from [0-9A-F]+\/[0-9A-F]+ could not be replayed: .*WAL segment .*pg_wal\/[0-9A-F]{24} is gone/,
	'a startup whose kept WAL is gone says which writes could not be replayed');

done_testing();
