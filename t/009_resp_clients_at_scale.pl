# Clients at scale and clients that misbehave: 10,000 idle connections, a client that never reads
# its replies (paused, then, with a limit set, disconnected), a pipeline of a million commands,
# and malformed headers. The listener stays up, other clients are served, and the workers'
# private memory stays bounded (RssAnon in /proc: the heap, not the shared memory).
use strict;
use warnings;
use IO::Select;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my $idle_clients = $ENV{ELOQKV_IDLE_CLIENTS} // 10_000;
my ($node, $port) = start_resp_node('clients_at_scale',
	'eloqkv.resp_maxclients = ' . ($idle_clients + 100) . "\n");
ok(wait_for_listener($port), 'the listener is up');

sub info_field
{
	my ($field) = @_;
	my ($v) = redis_cli($port, 'INFO') =~ /^\Q$field\E:(\S+)/m;
	return $v;
}

# The workers' process ids, from INFO on enough connections to have met each of them.
sub worker_pids
{
	my %pids;
	for (1 .. 40)
	{
		my ($pid) = redis_cli($port, 'INFO', 'server') =~ /^process_id:(\d+)/m;
		$pids{$pid} = 1 if $pid;
		last if keys %pids == 2;
	}
	return sort keys %pids;
}
my @workers = worker_pids();
is(scalar(@workers), 2, 'both workers found');

# Under ASan (make tapcheck SANITIZE=address,...) the allocator holds freed memory in quarantine
# and adds shadow memory: the memory bounds are checked by the normal pass only.
my $asan = ($ENV{ELOQKV_SANITIZE} // '') =~ /address/;

sub memory_below
{
	my ($got, $limit, $name) = @_;
  SKIP:
	{
		skip "$name: memory figures mean nothing under ASan", 1 if $asan;
		cmp_ok($got, '<', $limit, $name);
	}
}

sub rss_kb
{
	my $total = 0;
	for my $pid (@workers)
	{
		my ($kb) = slurp_file("/proc/$pid/status") =~ /^RssAnon:\s+(\d+) kB/m;
		$total += $kb;
	}
	return $total;
}

# Growth of the workers' private memory over $before, once a closed client has been released
# (the worker notices the close at its next poll).
sub settled_growth_mb
{
	my ($before) = @_;
	my $grown;
	for (1 .. 50)
	{
		$grown = (rss_kb() - $before) / 1024;
		last if $grown < 32;
		usleep(100_000);
	}
	return $grown;
}

sub served
{
	return redis_session($port, "SET served yes\nGET served\n") eq "OK\nyes\n";
}

# ---------------------------------------------------------------------------------------------
# 10,000 idle connections.
SKIP:
{
	my $rss_before = rss_kb();
	my ($in, $out) = ('', '');
	my $holder = IPC::Run::start([ 'python3', 't/lib/hold_connections.py', $port, $idle_clients ],
		'<', \$in, '>', \$out, '2>', \my $err, IPC::Run::timeout(300));
	$holder->pump until $out =~ /^(connected|skip) .*\n/m;
	if ($out =~ /^skip (.*)$/m)
	{
		$holder->finish;
		skip "$1: no $idle_clients idle connections", 6;
	}
	is($out, "connected $idle_clients\n", "$idle_clients connections opened, each answered");
	cmp_ok(info_field('connected_clients'), '>=', $idle_clients, 'INFO counts them');
	ok(served(), 'a new client is served while they are connected');
	my $per_client = (rss_kb() - $rss_before) * 1024 / $idle_clients;
	note(sprintf('worker memory per idle connection: %.1f KiB', $per_client / 1024));
	memory_below($per_client, 16 * 1024, 'an idle connection costs the workers less than 16 KiB');
	$in .= "go\n";
	$holder->pump until $out =~ /^still /m;
	$holder->finish;
	like($out, qr/^still $idle_clients$/m, 'every idle connection is still served');
	my $left;
	for (1 .. 100)
	{
		$left = info_field('connected_clients');
		last if $left <= 2;
		usleep(100_000);
	}
	cmp_ok($left, '<=', 2, 'and all are gone once closed');
}

# ---------------------------------------------------------------------------------------------
# A client that never reads: a pipeline of 400 GETs of a 1 MB value (400 MB of replies).
{
	my $s = raw_connect($port);
	raw_is($s, resp_command('SET', 'big', 'b' x 1_000_000), "+OK\r\n", 'a 1 MB value');
	close $s;
}
my $gets = resp_command('GET', 'big') x 400;
my $rss_before = rss_kb();
my $slow = raw_connect($port);
print $slow $gets;
usleep(500_000);
ok(served(), 'another client is served while one does not read');
my $grew_mb = (rss_kb() - $rss_before) / 1024;
note(sprintf('worker memory held for the client that does not read: %.0f MiB', $grew_mb));
memory_below($grew_mb, 160, 'its unsent replies are bounded (input paused at 64 MiB, not 400 MB)');
is(info_field('client_output_buffer_limit_disconnections'), '0',
	'without an output limit for normal clients it is not disconnected');
my ($omem) = redis_cli($port, 'CLIENT', 'LIST') =~ /\bomem=(\d+)\b.*cmd=get/m;
cmp_ok($omem // 0, '>', 32 << 20, "CLIENT LIST shows its unsent replies (omem=" . ($omem // 'none') . ')');
# When it reads at last, every reply is there.
my $expected = length("\$1000000\r\n" . ('b' x 1_000_000) . "\r\n") * 400;
my $got = 0;
my $sel = IO::Select->new($slow);
while ($got < $expected && $sel->can_read(60))
{
	my $n = sysread($slow, my $buf, 1 << 20);
	last if !$n;
	$got += $n;
}
is($got, $expected, 'once it reads, all 400 replies arrive');
close $slow;
memory_below(settled_growth_mb($rss_before), 32, 'and the workers give the memory back');

# With a hard limit for normal clients (set by a reload), the same client is disconnected.
$node->append_conf('postgresql.conf', "eloqkv.resp_client_output_buffer_limit = 'normal 16mb 0 0'\n");
$node->reload;
for (1 .. 100)
{
	my $seen = 0;
	for (1 .. 6)
	{
		$seen++ if redis_cli($port, 'CONFIG', 'GET', 'client-output-buffer-limit') eq
		  "client-output-buffer-limit\nnormal 16777216 0 0 pubsub 33554432 8388608 60";
	}
	last if $seen == 6;
	usleep(100_000);
}
is(redis_cli($port, 'CONFIG', 'GET', 'client-output-buffer-limit'),
	"client-output-buffer-limit\nnormal 16777216 0 0 pubsub 33554432 8388608 60",
	'CONFIG GET client-output-buffer-limit shows the setting as Redis prints it');
my $log_offset = -s $node->logfile;
$slow = raw_connect($port);
print $slow $gets;
my $disconnected;
for (1 .. 100)
{
	$disconnected = info_field('client_output_buffer_limit_disconnections');
	last if $disconnected;
	usleep(100_000);
}
is($disconnected, '1', 'a client over the hard limit is disconnected (INFO counts it)');
$got = 0;
$sel = IO::Select->new($slow);
while ($sel->can_read(60))
{
	my $n = sysread($slow, my $buf, 1 << 20);
	last if !$n;
	$got += $n;
}
cmp_ok($got, '<', $expected, 'it got part of its replies, then the connection closed');
close $slow;
ok( $node->log_contains(
		qr/eloqkv resp: client id=\d+ addr=127\.0\.0\.1:\d+ closed for overcoming of output buffer limits: \d+ bytes unsent; limits for normal clients: hard 16777216, soft 0 for 0 s \(eloqkv.resp_client_output_buffer_limit\)/,
		$log_offset),
	'the server log says which client and why');
ok(served(), 'others are served');

like(psql_error($node, "ALTER SYSTEM SET eloqkv.resp_client_output_buffer_limit = 'replica 1mb 1mb 60'"),
	qr/ERROR:  invalid value for parameter "eloqkv.resp_client_output_buffer_limit": "replica 1mb 1mb 60"\nDETAIL:  unknown client class "replica" \(normal or pubsub\)/,
	'a bad limit is refused with the reason');
like(psql_error($node, "ALTER SYSTEM SET eloqkv.resp_client_output_buffer_limit = 'normal 1mb'"),
	qr/DETAIL:  expected groups of four words: <class> <hard limit> <soft limit> <soft seconds>/,
	'an incomplete one too');
unlike(slurp_file($node->data_dir . '/postgresql.auto.conf'), qr/client_output_buffer_limit/,
	'and nothing was written');

# ---------------------------------------------------------------------------------------------
# A pipeline of a million commands, written while its replies are read.
{
	my $n = 1_000_000;
	my $s = raw_connect($port);
	$s->blocking(0);
	my $request = resp_command('INCR', 'million') x $n;
	my ($sent, $replies, $last, $tail) = (0, 0, '', '');
	my $sel = IO::Select->new($s);
	my $in_order = 1;
	while ($replies < $n)
	{
		my @w = $sent < length($request) ? ($s) : ();
		my ($r, $wr) = IO::Select->select($sel, @w ? IO::Select->new(@w) : undef, undef, 60);
		last if !$r && !$wr;
		if ($wr && @$wr)
		{
			my $k = syswrite($s, $request, 1 << 20, $sent);
			$sent += $k if defined $k;
		}
		if ($r && @$r)
		{
			my $k = sysread($s, my $buf, 1 << 20);
			last if defined $k && $k == 0;
			next if !defined $k;
			$tail .= $buf;
			pos($tail) = 0;
			while ($tail =~ /\G:(\d+)\r\n/gc)
			{
				$replies++;
				$in_order = 0 if $1 != $replies;
			}
			substr($tail, 0, pos($tail) // 0) = '';
		}
	}
	is($replies, $n, 'a pipeline of 1,000,000 commands is answered');
	ok($in_order, 'in order, each INCR seeing the one before');
	close $s;
	is(redis_cli($port, 'GET', 'million'), '1000000', 'and every one applied');
	memory_below(settled_growth_mb($rss_before), 32, 'the workers keep no memory from it');
}

# ---------------------------------------------------------------------------------------------
# Malformed headers: Redis's errors; the connection is closed; the listener and others go on.
my $other = raw_connect($port);
for my $case (
	[ "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n", 'a non-numeric array length' ],
	[ "*1\r\n\$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n", 'a negative bulk length' ],
	[ "*1\r\n\$x\r\n", "-ERR Protocol error: invalid bulk length\r\n", 'a non-numeric bulk length' ],
	[ "*2\r\n\$3\r\nGET\r\n\$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n",
		'a bulk of 512 MB + 1 announced, no body' ],
	[ ("*1\r\n" x 100_000), "-ERR Protocol error: expected '\$', got '*'\r\n", '100,000 nested arrays' ],
	[ "*99999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n", 'an array too long' ])
{
	my ($bytes, $reply, $what) = @$case;
	my $bad = raw_connect($port);
	raw_is($bad, $bytes, $reply, "$what: the Redis error");
	my $closed = IO::Select->new($bad)->can_read(10) && !sysread($bad, my $rest, 1);
	ok($closed, "$what: the connection is closed");
	close $bad;
}
raw_is($other, "*-5\r\n*0\r\nPING\r\n", "+PONG\r\n",
	'negative and empty arrays are skipped, as Redis does');
raw_is($other, "PING\r\n", "+PONG\r\n", 'the other client was unaffected throughout');
close $other;

$node->stop;
done_testing();
