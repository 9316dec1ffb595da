# The RESP listener against real clients: redis-cli, redis-benchmark and raw sockets (for exact
# replies and malformed input), in a cluster with the listener on a free port.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Select;
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my ($node, $port) = start_resp_node('resp', "restart_after_crash = on\n");
sub cli { return redis_cli($port, @_); }

sub closed_by_server
{
	my ($s) = @_;
	my $sel = IO::Select->new($s);
	return 0 unless $sel->can_read(60);
	my $buf;
	return sysread($s, $buf, 1) == 0;
}

ok(wait_for_listener($port), 'the listener answers PING and writes once the engine is ready');
like(slurp_file($node->logfile), qr/eloqkv resp: listening on 127\.0\.0\.1 port $port with 2 workers/,
	'the listener logs its address');

# Strings.
is(cli('SET', 'greeting', 'hello'), 'OK', 'SET');
is(cli('GET', 'greeting'), 'hello', 'GET returns what SET stored');
is(cli('APPEND', 'greeting', ' world'), '11', 'APPEND returns the new length');
is(cli('GETRANGE', 'greeting', '-5', '-1'), 'world', 'GETRANGE with negative indexes');
is(cli('SETRANGE', 'greeting', '0', 'J'), '11', 'SETRANGE');
is(cli('GET', 'greeting'), 'Jello world', 'SETRANGE changed the value in place');
is(cli('STRLEN', 'greeting'), '11', 'STRLEN');
is(cli('INCR', 'counter'), '1', 'INCR creates a counter');
is(cli('INCRBY', 'counter', '41'), '42', 'INCRBY');
is(cli('DECRBY', 'counter', '2'), '40', 'DECRBY');
is(cli('INCRBYFLOAT', 'counter', '0.5'), '40.5', 'INCRBYFLOAT prints like Redis');
is(cli('INCR', 'greeting'), 'ERR value is not an integer or out of range',
	'INCR of a non-integer is refused');
is(cli('SET', 'big', '9223372036854775807'), 'OK', 'SET of the largest integer');
is(cli('INCR', 'big'), 'ERR increment or decrement would overflow', 'INCR overflow is refused');
is(cli('GET', 'big'), '9223372036854775807', 'and changes nothing');
is(cli('MSET', 'a', '1', 'b', '2'), 'OK', 'MSET');
is(cli('MGET', 'a', 'missing', 'b'), "1\n\n2", 'MGET returns nil for a missing key');
is(cli('MSETNX', 'b', 'x', 'c', 'y'), '0', 'MSETNX refuses when one key exists');
is(cli('EXISTS', 'c'), '0', 'and sets none of them');
is(cli('SETNX', 'a', 'z'), '0', 'SETNX of an existing key');
is(cli('GETSET', 'a', 'new'), '1', 'GETSET returns the old value');
is(cli('GETDEL', 'a'), 'new', 'GETDEL returns the value');
is(cli('EXISTS', 'a', 'b', 'b'), '2', 'EXISTS counts repeated keys');
is(cli('SET', 'b', 'v', 'NX'), '', 'SET NX of an existing key replies nil');
is(cli('SET', 'b', 'v2', 'XX', 'GET'), '2', 'SET XX GET returns the old value');
is(cli('SET', 'k', 'v', 'EX', '0'), "ERR invalid expire time in 'set' command",
	'SET EX 0 is refused with Redis\'s message');
is(cli('SET', 'k', 'v', 'NX', 'XX'), 'ERR syntax error', 'SET NX XX is a syntax error');

# Expiry.
is(cli('SET', 'session', 'abc', 'EX', '100'), 'OK', 'SET EX');
my $ttl = cli('TTL', 'session');
ok($ttl >= 99 && $ttl <= 100, "TTL counts down from 100 ($ttl)");
is(cli('PERSIST', 'session'), '1', 'PERSIST removes the expiry');
is(cli('TTL', 'session'), '-1', 'TTL of a key without expiry');
is(cli('TTL', 'nokey'), '-2', 'TTL of a missing key');
is(cli('PEXPIRE', 'session', '150'), '1', 'PEXPIRE');
is(cli('EXPIRE', 'session', '100', 'NX'), '0', 'EXPIRE NX of a key with an expiry does nothing');
usleep(400_000);
is(cli('GET', 'session'), '', 'an expired key is gone');
is(cli('SET', 'gone', 'x'), 'OK', 'SET');
is(cli('EXPIRE', 'gone', '-1'), '1', 'EXPIRE in the past');
is(cli('EXISTS', 'gone'), '0', 'deletes the key');
is(cli('EXPIRE', 'b', '10', 'NX', 'XX'),
	'ERR NX and XX, GT or LT options at the same time are not compatible', 'EXPIRE NX XX');

# Keys.
is(cli('TYPE', 'b'), 'string', 'TYPE of a string');
is(cli('TYPE', 'nokey'), 'none', 'TYPE of a missing key');
is(cli('RENAME', 'b', 'b2'), 'OK', 'RENAME');
is(cli('GET', 'b2'), 'v2', 'the value moved');
is(cli('RENAME', 'nokey', 'x'), 'ERR no such key', 'RENAME of a missing key');
is(cli('DEL', 'b2', 'b2', 'nokey'), '1', 'DEL counts what it removed');
cli('MSET', map { ("scan:$_", $_) } 1 .. 25);
is(join(',', sort split /\n/, cli('KEYS', 'scan:1*')), 'scan:1,scan:10,scan:11,scan:12,scan:13,scan:14,scan:15,scan:16,scan:17,scan:18,scan:19',
	'KEYS with a pattern');
my @scanned = split /\n/, cli('--scan', '--pattern', 'scan:*');
is(scalar(@scanned), 25, 'SCAN through redis-cli --scan visits every key once');

# Hashes.
is(cli('HSET', 'user:1', 'name', 'ada', 'plan', 'pro'), '2', 'HSET counts new fields');
is(cli('HGET', 'user:1', 'name'), 'ada', 'HGET');
is(cli('HGETALL', 'user:1'), "name\nada\nplan\npro", 'HGETALL');
is(cli('HINCRBY', 'user:1', 'logins', '3'), '3', 'HINCRBY');
is(cli('HINCRBY', 'user:1', 'name', '1'), 'ERR hash value is not an integer', 'HINCRBY of text');
is(cli('HLEN', 'user:1'), '3', 'HLEN');
is(cli('HDEL', 'user:1', 'plan', 'nothing'), '1', 'HDEL');
is(cli('HEXISTS', 'user:1', 'plan'), '0', 'HEXISTS');
is(cli('GET', 'user:1'), 'WRONGTYPE Operation against a key holding the wrong kind of value',
	'GET of a hash is WRONGTYPE');
is(cli('HGET', 'counter', 'x'), 'WRONGTYPE Operation against a key holding the wrong kind of value',
	'HGET of a string is WRONGTYPE');

# Errors keep the connection; exact Redis wording.
my $s = raw_connect($port);
raw_is($s, "*2\r\n\$3\r\nFOO\r\n\$3\r\nbar\r\n*1\r\n\$4\r\nPING\r\n",
	"-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n+PONG\r\n",
	'an unknown command is answered and the connection goes on');
raw_is($s, "*1\r\n\$3\r\nGET\r\n", "-ERR wrong number of arguments for 'get' command\r\n",
	'wrong arity');
raw_is($s, "PING\r\nECHO \"a b\"\r\n", "+PONG\r\n\$3\r\na b\r\n", 'inline commands');
# Pipelining: many commands in one write, replies in order.
my $pipeline = join('', map { "*3\r\n\$3\r\nSET\r\n\$4\r\npipe\r\n\$" . length($_) . "\r\n$_\r\n" } 1 .. 50)
  . "*2\r\n\$3\r\nGET\r\n\$4\r\npipe\r\n";
raw_is($s, $pipeline, ("+OK\r\n" x 50) . "\$2\r\n50\r\n", 'a pipeline of 51 commands');

# RESP3.
like(raw_exchange($s, "HELLO 3\r\n"), qr/^%7\r\n\$6\r\nserver\r\n/, 'HELLO 3 replies a map');
raw_is($s, "HGETALL user:1\r\n", "%2\r\n\$6\r\nlogins\r\n\$1\r\n3\r\n\$4\r\nname\r\n\$3\r\nada\r\n",
	'HGETALL is a map in RESP3');
raw_is($s, "GET nokey\r\n", "_\r\n", 'nil is _ in RESP3');
raw_is($s, "HELLO 4\r\n", "-NOPROTO unsupported protocol version\r\n", 'HELLO 4');
close $s;

# Malformed input: the error, then the server closes that connection; others are unaffected.
my $other = raw_connect($port);
my $bad = raw_connect($port);
raw_is($bad, "*1\r\n\$abc\r\n", "-ERR Protocol error: invalid bulk length\r\n",
	'a bad bulk length gets the Redis protocol error');
ok(closed_by_server($bad), 'and the connection is closed');
$bad = raw_connect($port);
print $bad "*2\r\n\$3\r\nGET\r\n\$10000000000\r\n";
like(raw_exchange($bad, undef), qr/^-ERR Protocol error: invalid bulk length\r\n/,
	'a bulk over the limit is refused before it arrives');
raw_is($other, "PING\r\n", "+PONG\r\n", 'another client is unaffected');

# MULTI/EXEC: queued, then applied as one batch.
raw_is($other, "MULTI\r\nSET tx 1\r\nINCR tx\r\nINCRBY tx 10\r\nEXEC\r\n",
	"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n:2\r\n:12\r\n", 'MULTI/EXEC');
raw_is($other, "MULTI\r\nSET tx 5\r\nNOSUCH\r\nEXEC\r\nGET tx\r\n",
	"+OK\r\n+QUEUED\r\n-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
	  . "-EXECABORT Transaction discarded because of previous errors.\r\n\$2\r\n12\r\n",
	'a refused command aborts EXEC and nothing is applied');
# WATCH: another client's write makes EXEC fail.
my $w = raw_connect($port);
raw_is($w, "WATCH tx\r\n", "+OK\r\n", 'WATCH');
raw_is($other, "SET tx changed\r\n", "+OK\r\n", 'another client writes the watched key');
raw_is($w, "MULTI\r\nSET tx mine\r\nEXEC\r\n", "+OK\r\n+QUEUED\r\n*-1\r\n",
	'EXEC after a watched key changed replies nil');
is(cli('GET', 'tx'), 'changed', 'and applies nothing');
raw_is($w, "WATCH tx\r\nMULTI\r\nSET tx mine\r\nEXEC\r\n", "+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n",
	'EXEC with an unchanged watched key applies');
close $w;

# Concurrent INCRs from two workers' clients never lose an update.
cli('SET', 'race', '0');
my @h;
for my $i (1 .. 4)
{
	push @h, IPC::Run::start([ 'redis-benchmark', '-p', $port, '-c', '4', '-n', '500', 'INCR', 'race' ],
		'>', \my $o, '2>', \my $e);
}
$_->finish for @h;
is(cli('GET', 'race'), '2000', '2000 concurrent INCRs over both workers add up');

# redis-benchmark's standard tests run without an error reply.
my ($bout, $berr);
IPC::Run::run([ 'redis-benchmark', '-p', $port, '-t', 'ping,set,get,incr,mset,hset', '-n', '2000',
		'-c', '10', '-q' ], '>', \$bout, '2>', \$berr);
for my $t ('PING_INLINE', 'PING_MBULK', 'SET', 'GET', 'INCR', 'MSET \(10 keys\)', 'HSET')
{
	like($bout, qr/(?:^|\s)$t: [\d.]+ requests per second/, "redis-benchmark $t runs");
}
unlike($bout . $berr, qr/ERR|WRONGTYPE|error/i, 'redis-benchmark saw no error reply');

# Limits: maxclients and AUTH, changed with a reload.
$node->append_conf('postgresql.conf', "eloqkv.resp_maxclients = 3\neloqkv.resp_password = 's3cret'\n");
$node->reload;
# Both workers apply a reload at their next poll; wait until each answers with the new setting
# (several connections, so that both workers are asked).
for (1 .. 100)
{
	my $seen = 0;
	for (1 .. 6)
	{
		$seen++ if cli('--no-auth-warning', '-a', 's3cret', 'CONFIG', 'GET', 'maxclients') =~ /^maxclients\n3$/;
	}
	last if $seen == 6;
	usleep(100_000);
}
# Each held client is registered (has been answered) before the next connects, so the fourth
# is the one over the limit whichever worker accepts it.
my @held;
for (1 .. 3)
{
	my $h = raw_connect($port);
	raw_exchange($h, "PING\r\n");
	push @held, $h;
}
my $fourth = raw_connect($port);
raw_is($fourth, undef, "-ERR max number of clients reached\r\n",
	'the client over eloqkv.resp_maxclients is refused with Redis\'s message');
close $_ for @held;
usleep(300_000);
my $a = raw_connect($port);
raw_is($a, "GET probe\r\n", "-NOAUTH Authentication required.\r\n",
	'with a password set, commands need AUTH');
raw_is($a, "AUTH wrong\r\n",
	"-WRONGPASS invalid username-password pair or user is disabled.\r\n", 'a wrong password');
raw_is($a, "AUTH s3cret\r\nGET probe\r\n", "+OK\r\n\$1\r\n1\r\n", 'the right one');
close $a;
$node->append_conf('postgresql.conf', "eloqkv.resp_maxclients = 10000\neloqkv.resp_password = ''\n");
$node->reload;
usleep(500_000);

# A killed worker: Postgres restarts every process; the port comes back with the data.
my ($postmaster) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
my $wpid = `pgrep -P $postmaster -f 'eloqkv resp worker 0'`;
chomp $wpid;
like($wpid, qr/^\d+$/, 'the RESP workers run as children of the postmaster');
kill 'KILL', $wpid;
my $up = 0;
for (1 .. 300)
{
	usleep(100_000);
	if (cli('GET', 'race') eq '2000') { $up = 1; last; }
}
ok($up, 'after kill -9 of a worker the port comes back and acknowledged writes are there');

# A fast shutdown closes the listener; a start brings it back.
$node->stop('fast');
ok(!defined(raw_connect($port)), 'the port is closed after shutdown');
$node->start;
$up = 0;
for (1 .. 300)
{
	if (cli('GET', 'tx') eq 'mine') { $up = 1; last; }
	usleep(100_000);
}
ok($up, 'after a restart the listener serves the same data');
$node->stop;

done_testing();
