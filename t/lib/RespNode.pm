# What the RESP TAP tests share: a cluster with the extension preloaded and the listener on a
# free port, redis-cli runners, and raw sockets for exact replies and malformed input.
#
# Replies are awaited, never timed: a write is answered only after its log record is durable,
# and on a slow CI disk that can take longer than any fixed pause. raw_is reads until the whole
# expected reply has arrived (or a deadline passes), so a slow fsync delays a test, never fails it.
package RespNode;

use strict;
use warnings;
use Exporter 'import';
use IO::Select;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(start_resp_node start_resp_standby wait_for_listener redis_cli redis_session psql_error raw_connect
  raw_exchange raw_is resp_command read_reply_line read_reply);

# How long to wait for a reply that must come. Generous: it bounds a hang, not a speed.
my $reply_deadline_s = 60;

# Returns ($node, $port): a started cluster whose listener has 2 workers on a free port.
# $extra_conf is appended to postgresql.conf; %init goes to PostgreSQL::Test::Cluster::init.
sub start_resp_node
{
	my ($name, $extra_conf, %init) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$node->init(%init);
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'eloqkv_fdw'\n"
		  . "eloqkv.index_memory = '32MB'\neloqkv.cache_memory = '16MB'\n"
		  . "eloqkv.segment_size = '8MB'\n"
		  . "eloqkv.resp_port = $port\neloqkv.resp_workers = 2\n"
		  . ($extra_conf // ''));
	$node->start;
	return ($node, $port);
}

# Returns ($node, $port): a started streaming standby of $upstream made from its backup $backup,
# with its own listener on a free port. $extra_conf is appended to its postgresql.conf.
sub start_resp_standby
{
	my ($name, $upstream, $backup, $extra_conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init_from_backup($upstream, $backup, has_streaming => 1);
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	$node->append_conf('postgresql.conf', "eloqkv.resp_port = $port\n" . ($extra_conf // ''));
	$node->start;
	return ($node, $port);
}

# The listener comes up with the postmaster; the engine may still be recovering (-LOADING).
# True once a write is acknowledged. $auth: the AUTH arguments, if the server wants a password.
sub wait_for_listener
{
	my ($port, $auth) = @_;
	my $commands = (defined $auth ? "AUTH $auth\n" : '') . "PING\nSET probe 1\n";
	my $expected = (defined $auth ? "OK\n" : '') . "PONG\nOK\n";
	for (1 .. 300)
	{
		return 1 if redis_session($port, $commands) eq $expected;
		usleep(100_000);
	}
	return 0;
}

# redis-cli with arguments; returns its stdout without the trailing newlines (redis-cli ends an
# error reply with an empty line).
sub redis_cli
{
	my ($port, @args) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'redis-cli', '-p', $port, @args ], '<', \undef, '>', \$stdout, '2>', \$stderr);
	$stdout =~ s/\n+\z//;
	return $stdout;
}

# Runs commands (one per line) on one redis-cli connection; returns the replies as printed.
sub redis_session
{
	my ($port, $commands) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'redis-cli', '-p', $port ], '<', \$commands, '>', \$stdout, '2>', \$stderr);
	return $stdout // '';
}

# What psql printed on stderr for a statement that must fail.
sub psql_error
{
	my ($node, $query) = @_;
	my ($stdout, $stderr);
	$node->psql('postgres', $query, stdout => \$stdout, stderr => \$stderr);
	return $stderr;
}

sub raw_connect
{
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
	  or return undef;
	$s->autoflush(1);
	return $s;
}

# Sends bytes, waits for the first reply byte, then collects until the server has been quiet
# for $quiet_ms. For replies whose exact text the test does not know; prefer raw_is.
sub raw_exchange
{
	my ($s, $bytes, $quiet_ms) = @_;
	$quiet_ms //= 300;
	print $s $bytes if defined $bytes && length $bytes;
	my $sel = IO::Select->new($s);
	my $got = '';
	my $wait = $reply_deadline_s;
	while ($sel->can_read($wait))
	{
		my $buf;
		my $n = sysread($s, $buf, 65536);
		last if !$n;
		$got .= $buf;
		$wait = $quiet_ms / 1000;
	}
	return $got;
}

# Sends bytes and checks that exactly $expected comes back: reads until that many bytes have
# arrived or the deadline passes, then briefly more so that a surplus reply fails the test.
sub raw_is
{
	my ($s, $bytes, $expected, $name) = @_;
	print $s $bytes if defined $bytes && length $bytes;
	my $sel = IO::Select->new($s);
	my $got = '';
	my $deadline = time() + $reply_deadline_s;
	while (length($got) < length($expected))
	{
		my $left = $deadline - time();
		last if $left <= 0 || !$sel->can_read($left);
		my $buf;
		my $n = sysread($s, $buf, 65536);
		last if !$n;
		$got .= $buf;
	}
	while ($sel->can_read(0.1))
	{
		my $buf;
		my $n = sysread($s, $buf, 65536);
		last if !$n;
		$got .= $buf;
	}
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	return is($got, $expected, $name);
}

# A command as a RESP multibulk.
sub resp_command
{
	my $out = '*' . scalar(@_) . "\r\n";
	$out .= '$' . length($_) . "\r\n$_\r\n" for @_;
	return $out;
}

# The next reply line (without CRLF) from a raw socket, buffering in $$buf; undef when the
# connection closed.
sub read_reply_line
{
	my ($s, $buf) = @_;
	while ($$buf !~ /\r\n/)
	{
		my $chunk;
		my $n = sysread($s, $chunk, 65536);
		return undef if !$n;
		$$buf .= $chunk;
	}
	$$buf =~ s/^([^\r]*)\r\n//;
	return $1;
}

# The next whole reply: a bulk string's contents, undef for a null, an array reference for an
# array, and otherwise the line itself (so errors keep their leading '-'). Dies if the
# connection closes in the middle.
sub read_reply
{
	my ($s, $buf) = @_;
	my $line = read_reply_line($s, $buf);
	die 'the connection closed before a reply' if !defined $line;
	if ($line =~ /^[\$=](-?\d+)$/)
	{
		my $len = $1;
		return undef if $len < 0;
		while (length($$buf) < $len + 2)
		{
			my $chunk;
			my $n = sysread($s, $chunk, 65536);
			die 'the connection closed inside a bulk reply' if !$n;
			$$buf .= $chunk;
		}
		my $value = substr($$buf, 0, $len);
		substr($$buf, 0, $len + 2) = '';
		return $value;
	}
	return undef if $line eq '*-1' || $line eq '_';
	if ($line =~ /^[*~>](\d+)$/)
	{
		return [ map { read_reply($s, $buf) } 1 .. $1 ];
	}
	return $line;
}

1;
