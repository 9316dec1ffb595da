# Loading, configuration and restart behaviour of eloqkv_fdw in a real cluster.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# Waits until a query returns the expected output (the engine recovers in the background).
sub poll_until {
	my ($node, $sql, $expected) = @_;
	for (1 .. 600) {
		my ($rc, $out) = $node->psql('postgres', $sql);
		return 1 if $rc == 0 && $out eq $expected;
		usleep(100_000);
	}
	return 0;
}

# 1. Without shared_preload_libraries, CREATE EXTENSION fails and says what to do.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
my ($rc, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION eloqkv_fdw');
isnt($rc, 0, 'CREATE EXTENSION fails without preloading');
like($err, qr/eloqkv_fdw must be loaded via shared_preload_libraries/, 'the error names the cause');
like($err, qr/HINT:  Add eloqkv_fdw to shared_preload_libraries in postgresql.conf/, 'the hint names the setting');
$plain->stop;

# 2. Invalid settings stop the server at startup with a clear message.
my $bad = PostgreSQL::Test::Cluster->new('bad');
$bad->init;
$bad->append_conf('postgresql.conf', "shared_preload_libraries = 'eloqkv_fdw'\neloqkv.sync = 'sometimes'");
ok(!$bad->start(fail_ok => 1), 'an invalid eloqkv.sync value prevents startup');
like(slurp_file($bad->logfile), qr/invalid value for parameter "eloqkv.sync": "sometimes"/, 'the log names the bad value');
like(slurp_file($bad->logfile), qr/Available values: always, interval, off/, 'and lists the valid ones');
$bad->adjust_conf('postgresql.conf', 'eloqkv.sync', 'always');
$bad->append_conf('postgresql.conf', "eloqkv.bogus = 1");
ok(!$bad->start(fail_ok => 1), 'an unknown eloqkv parameter prevents startup');
like(slurp_file($bad->logfile), qr/unrecognized configuration parameter "eloqkv.bogus"/, 'the log names it');
$bad->adjust_conf('postgresql.conf', 'eloqkv.bogus', undef);
$bad->append_conf('postgresql.conf', "eloqkv.index_memory = '1kB'");
ok(!$bad->start(fail_ok => 1), 'an out-of-range size prevents startup');
like(slurp_file($bad->logfile), qr/eloqkv.index_memory/, 'the log names the parameter');

# 3. Preloaded: the engine recovers and answers.
my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'eloqkv_fdw'\neloqkv.index_memory = '32MB'\neloqkv.cache_memory = '16MB'\neloqkv.segment_size = '8MB'\nrestart_after_crash = on");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION eloqkv_fdw');
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'), 'engine_info() reports ready');
ok(-d $node->data_dir . '/eloqkv', 'the engine directory is created under PGDATA');
like($node->safe_psql('postgres', 'SELECT io_mode FROM eloqkv.engine_info()'), qr/^(io_uring|pread)$/, 'an I/O mode is chosen');
my $log = slurp_file($node->logfile);
like($log, qr/eloqkv: I\/O through (io_uring|pread)/, 'the I/O mode is logged');
like($log, qr/eloqkv: engine ready in/, 'recovery is logged');

# 4. A clean restart keeps working and logs the recovery again.
$node->restart;
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'), 'ready after a clean restart');

# 5. kill -9 of the maintenance worker (or of any backend) makes Postgres restart everything;
#    the engine is recovered from disk and answers again.
my ($postmaster) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
my $pid = `pgrep -P $postmaster -f 'eloqkv maintenance'`;
chomp $pid;
like($pid, qr/^\d+$/, 'the maintenance worker runs as a child of the postmaster');
my $offset = -s $node->logfile;
kill 'KILL', $pid;
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'), 'ready again after the worker was killed');
like(slurp_file($node->logfile, $offset), qr/all server processes terminated; reinitializing/,
	'the postmaster reinitialized shared memory');

# 6. A data directory the engine cannot use: the server runs, KV access reports why.
$node->stop;
$node->append_conf('postgresql.conf', "eloqkv.data_directory = '/proc/eloqkv-cannot-exist'");
$node->start;
ok(poll_until($node, "SELECT state LIKE 'failed:%' FROM eloqkv.engine_info()", 't'), 'engine_info() shows the failure');
($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM eloqkv.keyspace_stats()');
isnt($rc, 0, 'KV access fails');
like($err, qr/the eloqkv engine is not available/, 'with a clear message');
like($err, qr/DETAIL:  .*eloqkv-cannot-exist/, 'and the reason');
$node->stop;

done_testing();
