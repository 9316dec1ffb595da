# Foreign-table rows served over RESP (table option resp_prefix): the same rows from SQL and
# from redis-cli, conversion through the column types, DDL that changes what is served, and
# what is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my ($node, $port) = start_resp_node('resp_tables', "timezone = 'UTC'\n");
sub cli { return redis_cli($port, @_); }
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub sql_error { return psql_error($node, $_[0]); }

ok(wait_for_listener($port), 'the listener is up');

sql(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE agent_state (agent_id text, state jsonb, hits int, updated_at timestamptz)
  SERVER kv OPTIONS (key 'agent_id', resp_prefix 'agent:');
CREATE FOREIGN TABLE sessions (id bigint, token text) SERVER kv OPTIONS (key 'id', resp_prefix 'sess:');
CREATE FOREIGN TABLE scores (tenant text, player int, score numeric(10,2))
  SERVER kv OPTIONS (key 'tenant,player', resp_prefix 'score:');
INSERT INTO agent_state VALUES ('a1', '{"step": 1}', 5, '2026-01-01 00:00:00+00');
INSERT INTO sessions VALUES (42, 'tok42');
INSERT INTO scores VALUES ('acme', 7, 12.5);
});

# SQL -> RESP: committed rows are served at once, in Postgres text form.
is(cli('HGETALL', 'agent:a1'),
	"agent_id\na1\nhits\n5\nstate\n{\"step\": 1}\nupdated_at\n2026-01-01 00:00:00+00",
	'HGETALL returns every column of a row SQL wrote, as text');
is(cli('HGET', 'agent:a1', 'hits'), '5', 'HGET reads one column');
is(cli('HMGET', 'agent:a1', 'hits', 'nosuch', 'state'), "5\n\n{\"step\": 1}", 'HMGET');
is(cli('HLEN', 'agent:a1'), '4', 'HLEN counts the non-NULL columns');
is(cli('TYPE', 'agent:a1'), 'hash', 'a row is a hash');
is(cli('GET', 'sess:42'), 'tok42', 'GET reads the only value column of a one-value table');
is(cli('HGET', 'score:acme:7', 'score'), '12.50', 'composite keys are joined with ":"');
is(cli('GET', 'agent:a1'), 'WRONGTYPE Operation against a key holding the wrong kind of value',
	'GET of a row with several value columns is WRONGTYPE');
is(cli('EXISTS', 'agent:a1', 'agent:nobody', 'sess:42'), '2', 'EXISTS sees rows');
is(cli('GET', 'sess:43'), '', 'a missing row is nil');

# RESP -> SQL, converting through the column types.
is(cli('HSET', 'agent:a2', 'state', '{"step": 2}', 'hits', '1', 'updated_at',
		'2026-12-01 10:00:00+00'), '3', 'HSET creates a row');
is(sql("SELECT state->>'step', hits, updated_at FROM agent_state WHERE agent_id = 'a2'"),
	'2|1|2026-12-01 10:00:00+00', 'SQL sees the row RESP wrote');
is(cli('HINCRBY', 'agent:a1', 'hits', '10'), '15', 'HINCRBY on an integer column');
is(sql("SELECT hits FROM agent_state WHERE agent_id = 'a1'"), '15', 'SQL sees the increment');
is(cli('SET', 'sess:43', 'tok43'), 'OK', 'SET writes a one-value table');
is(sql('SELECT id, token FROM sessions ORDER BY id'), "42|tok42\n43|tok43", 'SQL sees SET');
is(cli('HSET', 'score:acme:8', 'score', '3.14159'), '1', 'HSET into a numeric(10,2) column');
is(sql("SELECT score FROM scores WHERE player = 8"), '3.14', 'the column typmod applies');
is(cli('HDEL', 'agent:a2', 'state'), '1', 'HDEL sets a column to NULL');
is(sql("SELECT state IS NULL FROM agent_state WHERE agent_id = 'a2'"), 't', 'SQL sees NULL');
is(cli('DEL', 'sess:43'), '1', 'DEL deletes a row');
is(sql('SELECT count(*) FROM sessions'), '1', 'SQL no longer sees it');

# Bad input: a clear error and nothing written.
is(cli('HSET', 'agent:a1', 'hits', 'abc'), 'ERR invalid input syntax for type integer: "abc"',
	'HSET of a non-integer into an int column fails');
is(cli('HSET', 'agent:a1', 'hits', '99', 'state', '{bad'), 'ERR invalid input syntax for type json',
	'one bad field fails the whole HSET');
is(sql("SELECT hits, state->>'step' FROM agent_state WHERE agent_id = 'a1'"), '15|1',
	'nothing was written by the failed HSETs');
is(cli('HSET', 'agent:a1', 'nosuch', '1'),
	'ERR column "nosuch" of table public.agent_state does not exist', 'unknown column');
is(cli('HSET', 'agent:a1', 'agent_id', 'other'),
	'ERR cannot change key column "agent_id" of table public.agent_state', 'key columns are fixed');
is(cli('GET', 'sess:notanumber'), 'ERR invalid input syntax for type bigint: "notanumber"',
	'a key that does not convert');
is(cli('HGET', 'score:acme', 'score'), 'ERR a key of table public.scores has 2 parts separated by \':\'',
	'a composite key with a missing part');
is(cli('HSET', 'agent:a3', 'state', "\xff\xfe"), 'ERR invalid byte sequence for encoding "UTF8": 0xff',
	'text must be valid in the database encoding');
is(sql("SELECT count(*) FROM agent_state"), '2', 'no row was created by failed writes');

# TTL both ways, and MULTI/EXEC across a table and the default keyspace.
is(cli('EXPIRE', 'sess:42', '100'), '1', 'EXPIRE on a row');
my $ttl = cli('TTL', 'sess:42');
ok($ttl > 90 && $ttl <= 100, "TTL of a row ($ttl)");
sql(q{CREATE FOREIGN TABLE cache (k text, v text) SERVER kv OPTIONS (key 'k', ttl '1 hour', resp_prefix 'cache:');
      INSERT INTO cache VALUES ('x', 'y');});
$ttl = cli('TTL', 'cache:x');
ok($ttl > 3500 && $ttl <= 3600, "a row SQL wrote has the table's ttl over RESP ($ttl)");
is(cli('PEXPIRE', 'cache:x', '1'), '1', 'PEXPIRE a row to 1 ms');
usleep(20_000);
is(sql("SELECT count(*) FROM cache"), '0', 'SQL no longer sees the expired row');

my ($out, $err);
IPC::Run::run([ 'redis-cli', '-p', $port ], '<',
	\"MULTI\nHINCRBY agent:a1 hits 1\nSET plain:counter 1\nHSET agent:a2 hits nope\nEXEC\nHGET agent:a1 hits\nGET plain:counter\n",
	'>', \$out, '2>', \$err);
like($out, qr/QUEUED\n16\nOK\nERR invalid input syntax for type integer: "nope"\n\n?16\n1\n$/,
	'inside EXEC a bad value fails its own command; the others apply');
is(sql("SELECT hits FROM agent_state WHERE agent_id = 'a2'"), '1', 'the failed HSET wrote nothing');
is(cli('GET', 'plain:counter'), '1', 'the default-keyspace write of that EXEC applied');

# DDL changes what is served; a rolled-back CREATE serves nothing.
sql(q{BEGIN; CREATE FOREIGN TABLE gone (k text, v text) SERVER kv OPTIONS (key 'k', resp_prefix 'gone:');
      INSERT INTO gone VALUES ('a', 'b'); ROLLBACK;});
is(cli('SET', 'gone:a', 'plain'), 'OK', 'a rolled-back table takes no keys');
is(cli('GET', 'gone:a'), 'plain', '... they stay in the default keyspace');
sql(q{CREATE FOREIGN TABLE moved (k text, v text) SERVER kv OPTIONS (key 'k', resp_prefix 'm1:');
      INSERT INTO moved VALUES ('a', 'b');
      ALTER FOREIGN TABLE moved OPTIONS (SET resp_prefix 'm2:');});
is(cli('GET', 'm2:a'), 'b', 'a changed prefix is served at once');
is(cli('GET', 'm1:a'), '', 'the old prefix is no longer a table');
sql(q{ALTER FOREIGN TABLE moved ADD COLUMN n int;});
is(cli('HSET', 'm2:a', 'n', '5'), '1', 'an added column is writable');
is(sql("SELECT n FROM moved"), '5', '... and SQL sees it');
sql(q{ALTER FOREIGN TABLE moved RENAME COLUMN n TO m;});
is(cli('HGET', 'm2:a', 'm'), '5', 'a renamed column is served by its new name');
sql(q{DROP FOREIGN TABLE moved;});
is(cli('GET', 'm2:a'), '', 'a dropped table is no longer served');

# What cannot be served is refused when the table is created or altered.
like(sql_error(q{CREATE FOREIGN TABLE arr (k text, v text[]) SERVER kv OPTIONS (key 'k', resp_prefix 'arr:')}),
	qr/column "v" of foreign table "arr" has type text\[\], which cannot be served over RESP/,
	'a column type without catalog-free I/O is refused');
like(sql_error(q{ALTER FOREIGN TABLE sessions ADD COLUMN tags text[]}),
	qr/column "tags" of foreign table "sessions" has type text\[\]/, '... also by ALTER');
like(sql_error(q{CREATE FOREIGN TABLE sub (k text, v text) SERVER kv OPTIONS (key 'k', resp_prefix 'agent:sub:')}),
	qr/resp_prefix "agent:sub:" of foreign table "sub" overlaps prefix "agent:" of "public.agent_state"/,
	'an overlapping prefix is refused');
like(sql_error(q{CREATE FOREIGN TABLE own (k text, v text) SERVER kv OPTIONS (key 'k', keyspace '@resp_tables')}),
	qr/Keyspace names starting with '\@' are reserved/, 'eloqkv keyspaces are reserved');

# Concurrency: SQL and RESP increment the same column; no increment is lost.
my @pids;
for my $w (1 .. 2)
{
	my $pid = fork();
	if ($pid == 0)
	{
		my $lost = 0;
		for (1 .. 100) { $lost++ if cli('HINCRBY', 'agent:a2', 'hits', '1') !~ /^\d+$/; }
		POSIX::_exit($lost);    # not exit: the cluster's END block must not run in the child
	}
	push @pids, $pid;
}
for (1 .. 50)
{
	$node->psql('postgres', "UPDATE agent_state SET hits = hits + 1 WHERE agent_id = 'a2'",
		on_error_stop => 0);
}
my $resp_failed = 0;
for (@pids) { waitpid($_, 0); $resp_failed += $? >> 8; }
my $hits = sql("SELECT hits FROM agent_state WHERE agent_id = 'a2'");
my $failed = () = slurp_file($node->logfile) =~ /could not serialize access due to concurrent update of "agent_state"/g;
is($hits, 1 + 200 + 50 - $failed - $resp_failed,
	"every acknowledged increment is there ($failed SQL and $resp_failed RESP conflicts reported)");

# A restart keeps the catalog: the workers load it at start.
$node->restart;
my $up = 0;
for (1 .. 300)
{
	if (cli('HGET', 'agent:a1', 'hits') eq '16') { $up = 1; last; }
	usleep(100_000);
}
ok($up, 'rows are served after a restart');

done_testing();
