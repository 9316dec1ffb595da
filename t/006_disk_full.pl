# A full disk (eloqkv.max_disk_size): writes fail with a clear error in SQL and on RESP and change
# nothing, everything acknowledged before stays readable (across a restart too), deletes still
# work, and writes resume once compaction has given the space back.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my ($node, $port) =
  start_resp_node('disk_full', "eloqkv.segment_size = '1MB'\neloqkv.max_disk_size = '10MB'\n");
ok(wait_for_listener($port), 'the listener is up');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub sql_error { return psql_error($node, $_[0]); }

sql(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE notes (id int, body text) SERVER kv OPTIONS (key 'id');
INSERT INTO notes VALUES (1, 'before the disk filled');
});

# Fill it over RESP with 50 KB values until a write is refused.
my $value = 'v' x 50_000;
my $s = raw_connect($port);
my $buf = '';
my ($acked, $refusal) = (0, undef);
for my $i (1 .. 1000)
{
	print $s resp_command('SET', "fill:$i", "$i:$value");
	my $r = read_reply_line($s, \$buf);
	if ($r eq '+OK') { $acked = $i; next; }
	$refusal = $r;
	last;
}
ok($acked > 50, "writes were acknowledged until the limit ($acked of 50 KB)");
is($refusal,
	"-OOM command not allowed: the engine's disk limit (10 MiB) is reached; delete data or raise "
	  . 'the limit',
	'the write over the limit gets a clear -OOM error');
is(raw_exchange($s, resp_command('GET', 'fill:1')) =~ /^\$50002\r\n1:v/ ? 1 : 0, 1,
	'reads keep working on the same connection');
my $refused_sql = sql_error("INSERT INTO notes SELECT g, repeat('x', 50000) FROM generate_series(2, 200) g");
like($refused_sql,
	qr/ERROR:  could not commit eloqkv writes: the engine's disk limit \(10 MiB\) is reached; delete data or raise the limit/,
	'an SQL write over the limit fails with the same message');
like($refused_sql, qr/HINT:  Free disk space, delete keys, or raise eloqkv.max_disk_size/,
	'and a hint');
is(sql('SELECT count(*) FROM notes'), '1', 'the failed statement changed nothing');

sub all_acked_present
{
	my $sock = raw_connect($port);
	my $b = '';
	for my $i (1 .. $acked)
	{
		print $sock resp_command('STRLEN', "fill:$i");
		my $r = read_reply_line($sock, \$b);
		return "fill:$i: $r" unless $r eq ':' . (length("$i:") + 50_000);
	}
	return 'all';
}
is(all_acked_present(), 'all', 'every acknowledged write is readable');

$node->restart;
ok(wait_for_listener_or_full($port), 'the listener is back after a restart');
is(all_acked_present(), 'all', 'every acknowledged write survived the restart');
is(sql('SELECT body FROM notes WHERE id = 1'), 'before the disk filled', 'and the SQL row');
# Recovery starts a fresh segment for new writes; the limit is checked on every write that adds
# data, so none goes into it while the disk is full.
my $more = 0;
$more++ while $more < 100 && redis_cli($port, 'SET', "after:$more", $value) eq 'OK';
is($more, 0, 'the disk is still full after the restart: the next write is refused');
is(redis_cli($port, 'SET', 'again', $value),
	"OOM command not allowed: the engine's disk limit (10 MiB) is reached; delete data or raise "
	  . 'the limit', 'with the same error');

# Deletes need no new space; compaction then gives the space back and writes resume.
is(redis_cli($port, 'DEL', map { "fill:$_" } 1 .. int($acked * 3 / 4)), int($acked * 3 / 4),
	'deleting keys works while the disk is full');
sql('SELECT eloqkv.compact()');
is(redis_cli($port, 'SET', 'again', 'space'), 'OK', 'after compaction writes are accepted again');
sql("INSERT INTO notes VALUES (2, 'after')");
is(sql('SELECT count(*) FROM notes'), '2', 'and SQL writes too');
is(redis_cli($port, 'STRLEN', "fill:$acked"), length("$acked:") + 50_000,
	'the keys not deleted are intact');
$node->stop;
done_testing();

# The listener answers PING once the engine is ready; writes may be refused (disk full).
sub wait_for_listener_or_full
{
	my ($p) = @_;
	for (1 .. 300)
	{
		return 1 if redis_cli($p, 'GET', 'fill:1') =~ /^1:v/;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}
