# The value cache after a restart: with eloqkv.warm_cache on (the default) the maintenance worker
# reads the values back in the background, so reads find them in memory; off, they come from the
# device; a data set larger than the cache fills it to nine-tenths and no more. And the shared
# memory made resident in the background after a start (eloqkv.prefault_memory).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;

my $node = PostgreSQL::Test::Cluster->new('warm');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'eloqkv_fdw'
eloqkv.resp_port = 0
eloqkv.cache_memory = '16MB'
# Section 4 reads RssShmem, which leaves huge pages out.
huge_pages = off
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Polls the log written since $offset for $re; returns the first match's text, or ''.
sub wait_for_log
{
	my ($offset, $re) = @_;
	for (1 .. 600)
	{
		my $log = slurp_file($node->logfile, $offset);
		return $1 if $log =~ $re;
		usleep(100_000);
	}
	return '';
}

sub restart
{
	my ($settings) = @_;
	$node->append_conf('postgresql.conf', $settings) if defined $settings;
	my $offset = -s $node->logfile;
	$node->restart;
	return $offset;
}

# Reads every row by its key, one point lookup each (a scan reads the segments in order, past
# the cache).
sub read_each
{
	my ($n) = @_;
	return sql(qq{
DO \$\$ DECLARE hits int := 0; BEGIN
  FOR i IN 1..$n LOOP
    PERFORM 1 FROM kv WHERE k = i AND length(v) = 1024;
    IF FOUND THEN hits := hits + 1; END IF;
  END LOOP;
  IF hits <> $n THEN RAISE EXCEPTION 'found % of $n rows', hits; END IF;
END \$\$;
SELECT 'done'});
}

sub device_reads
{
	return sql(q{SELECT device_reads FROM eloqkv.stats WHERE table_name = 'kv'::regclass});
}

sql(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv_server FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE kv (k int, v text) SERVER kv_server OPTIONS (key 'k');
INSERT INTO kv SELECT g, repeat(md5(g::text), 32) FROM generate_series(1, 5000) g;
});

# 1. Warmed after a restart: every value is back in the cache before anything reads it.
my $offset = restart();
my $warmed = wait_for_log($offset, qr/(value cache warmed in [^\n]*)/);
like($warmed, qr/: 5000 values read, 5000 keys visited; \d+ of 16 MB of cache in use/,
	'the maintenance worker warms the cache after a start and says so');
cmp_ok(sql(q{SELECT cache_memory_used FROM eloqkv.engine_info()}), '>=', 5000 * 1024,
	'the values are in the cache');
my $before = device_reads();
cmp_ok($before, '>=', 5000, 'the warming read each value from the device (keyspace_stats counts it)');
is(read_each(5000), 'done', 'every row read by its key');
is(device_reads() - $before, 0, 'reading all of them after the warming needs no device read');
is(sql(q{SELECT count(*), sum(length(v)) FROM kv}), '5000|5120000', 'every row is there');

# 2. Off: nothing is warmed, and the same reads come from the device.
$offset = restart("eloqkv.warm_cache = off\n");
is(sql(q{SELECT count(*) FROM kv WHERE k = 1}), '1', 'the server is up');
sleep 1;
unlike(slurp_file($node->logfile, $offset), qr/value cache warmed/, 'with warm_cache off, no warming');
cmp_ok(sql(q{SELECT cache_memory_used FROM eloqkv.engine_info()}), '<', 1024 * 1024,
	'the cache holds only what was read');
$before = device_reads();
is(read_each(5000), 'done', 'every row read by its key');
cmp_ok(device_reads() - $before, '>=', 4999, 'each value not read before is read from the device');

# 3. A data set larger than the cache: warmed to nine-tenths, the rest left to reads.
sql(q{INSERT INTO kv SELECT g, repeat(md5(g::text), 32) FROM generate_series(5001, 30000) g});
$offset = restart("eloqkv.warm_cache = on\n");
$warmed = wait_for_log($offset, qr/(value cache warmed in [^\n]*)/);
like($warmed, qr/values read, \d+ keys visited; 1[45] of 16 MB of cache in use/,
	'a cache smaller than the data is warmed to nine-tenths');
my ($visited) = $warmed =~ /(\d+) keys visited/;
cmp_ok($visited, '<', 30000, 'and the warming stopped there');
is(sql(q{SELECT count(*) FROM kv}), '30000', 'every row is still there');

# 4. Shared memory made resident after a start (eloqkv.prefault_memory, on by default), by the
#    maintenance worker, whose own resident shared memory then holds all of the region.
# /proc files report a size of 0; read them to their end.
sub read_proc
{
	open(my $fh, '<', $_[0]) or return '';
	local $/;
	return <$fh> // '';
}
sub maintenance_shmem_kb
{
	# It has no database connection, so pg_stat_activity does not list it: found by its title.
	for my $dir (glob('/proc/[0-9]*'))
	{
		my ($cmdline, $status) = (read_proc("$dir/cmdline"), read_proc("$dir/status"));
		next unless $cmdline =~ /^postgres: (?:\S+: )?eloqkv maintenance/;  # (cluster_name: )
		my ($parent) = $status =~ /^PPid:\s+(\d+)/m;
		next unless defined $parent && $parent == $node->{_pid};
		my ($kb) = $status =~ /^RssShmem:\s+(\d+) kB/m;
		return $kb;
	}
	die 'no maintenance worker found';
}
my $prefaulted =
  wait_for_log($offset, qr/(\d+ MB of shared memory made resident in [\d.]+ s|left to be made resident at first use[^\n]*)/);
SKIP:
{
skip "this host cannot prefault: $prefaulted", 5 if $prefaulted =~ /^left/;
my ($region_mb) = $prefaulted =~ /^(\d+) MB/;
cmp_ok($region_mb, '>=', 64 + 16, 'the whole region (index and cache memory) is made resident')
  or diag($prefaulted);
cmp_ok(maintenance_shmem_kb(), '>=', $region_mb * 1024, 'and is resident');
$offset = restart("eloqkv.prefault_memory = off\neloqkv.warm_cache = off\n");
is(sql(q{SELECT count(*) FROM kv WHERE k = 1}), '1', 'the server is up');
sleep 1;
unlike(slurp_file($node->logfile, $offset), qr/made resident/, 'with prefault_memory off, nothing is');
cmp_ok(maintenance_shmem_kb(), '<', $region_mb * 1024 / 2, 'and most of the region is not resident');
}

$node->stop;
done_testing();
