# Loading, configuration and restart behaviour of eloqkv_fdw in real clusters: the checks that
# pg_regress cannot make because they need a server that fails to start, restarts or crashes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# initdb refuses to run as root; scripts/test.sh runs these tests as the postgres user.
plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;

# Waits until a query returns the expected output (the engine recovers in the background).
sub poll_until
{
	my ($node, $sql, $expected) = @_;
	for (1 .. 600)
	{
		my ($rc, $out) = $node->psql('postgres', $sql);
		return 1 if $rc == 0 && $out eq $expected;
		usleep(100_000);
	}
	return 0;
}

# The server log written since $offset.
sub log_since
{
	my ($node, $offset) = @_;
	return slurp_file($node->logfile, $offset);
}

# Starts $node, expecting failure, and returns what the attempt logged.
sub failed_start_log
{
	my ($node, $what) = @_;
	my $offset = -s $node->logfile // 0;
	ok(!$node->start(fail_ok => 1), "$what prevents startup");
	return log_since($node, $offset);
}

# 1. Without shared_preload_libraries, CREATE EXTENSION fails and says what to do.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
my ($rc, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION eloqkv_fdw');
isnt($rc, 0, 'CREATE EXTENSION fails without preloading');
like($err, qr/ERROR:  eloqkv_fdw must be loaded via shared_preload_libraries/,
	'the error names the cause');
like($err,
	qr/HINT:  Add eloqkv_fdw to shared_preload_libraries in postgresql.conf and restart the server./,
	'the hint names the setting');
is($plain->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname = 'eloqkv_fdw'"),
	'0', 'and nothing is created');
$plain->stop;

# 2. Invalid settings stop the server at startup with a clear message, wherever they are set.
my $bad = PostgreSQL::Test::Cluster->new('bad');
$bad->init;
$bad->append_conf('postgresql.conf', "shared_preload_libraries = 'eloqkv_fdw'");

$bad->append_conf('postgresql.conf', "eloqkv.sync = 'sometimes'");
my $log = failed_start_log($bad, 'an invalid eloqkv.sync value');
like($log, qr/invalid value for parameter "eloqkv.sync": "sometimes"/, 'the log names the bad value');
like($log, qr/Available values: always, interval, off/, 'and lists the valid ones');
like($log, qr/setting "eloqkv.sync" in file "[^"]*postgresql.conf" line \d+/, 'and where it is set');

# Postgres's precedence holds: postgresql.auto.conf overrides postgresql.conf.
$bad->append_conf('postgresql.auto.conf', "eloqkv.sync = 'off'");
ok($bad->start(fail_ok => 1), 'a bad value overridden by postgresql.auto.conf does not');
is($bad->safe_psql('postgres', 'SHOW eloqkv.sync'), 'off', 'and the overriding value is used');
$bad->stop;
$bad->adjust_conf('postgresql.auto.conf', 'eloqkv.sync', undef);
# ... and so does the command line.
is(system_log('pg_ctl', '-w', '-D', $bad->data_dir, '-l', $bad->logfile,
		'-o', '-c eloqkv.sync=interval', 'start'),
	0, 'a bad value overridden on the command line does not');
is($bad->safe_psql('postgres', 'SHOW eloqkv.sync'), 'interval', 'and the command line value is used');
system_log('pg_ctl', '-w', '-D', $bad->data_dir, '-m', 'fast', 'stop');
$bad->adjust_conf('postgresql.conf', 'eloqkv.sync', undef);

# The command line (-c) is checked too.
my $offset = -s $bad->logfile;
my $ret = system_log('pg_ctl', '-w', '-D', $bad->data_dir, '-l', $bad->logfile,
	'-o', '-c eloqkv.io_mode=uring', 'start');
isnt($ret, 0, 'an invalid value on the command line prevents startup');
$log = log_since($bad, $offset);
like($log, qr/invalid value for parameter "eloqkv.io_mode": "uring"/, 'the log names it');
like($log, qr/setting "eloqkv.io_mode" on the server command line/, 'and where it is set');

$bad->append_conf('postgresql.conf', "eloqkv.bogus = 1");
$log = failed_start_log($bad, 'an unknown eloqkv parameter');
like($log, qr/unrecognized configuration parameter "eloqkv.bogus" in file "[^"]*postgresql.conf" line \d+/,
	'the log names it and where it is');
like($log, qr/HINT:  Valid eloqkv parameters: eloqkv.data_directory, /, 'and lists the valid ones');
$bad->adjust_conf('postgresql.conf', 'eloqkv.bogus', undef);

$bad->append_conf('postgresql.conf', "eloqkv.segment_size = '4GB'");
$log = failed_start_log($bad, 'an out-of-range size');
like($log, qr/4096 MB is outside the valid range for parameter "eloqkv.segment_size" \(1 .. 2048\)/,
	'the log gives the range');
$bad->adjust_conf('postgresql.conf', 'eloqkv.segment_size', undef);

# The engine's own checks of the combination.
$bad->append_conf('postgresql.conf', "eloqkv.segment_size = '64MB'\neloqkv.max_disk_size = '100MB'");
$log = failed_start_log($bad, 'a disk limit smaller than four segments');
like($log, qr/invalid eloqkv settings: the disk limit must hold at least four segments/,
	'the log gives the engine\'s reason');

# 3. Preloaded: the engine recovers and answers.
my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'eloqkv_fdw'\n"
	  . "eloqkv.index_memory = '32MB'\neloqkv.cache_memory = '16MB'\n"
	  . "eloqkv.segment_size = '8MB'\nrestart_after_crash = on\neloqkv.resp_port = 0");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION eloqkv_fdw');
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'), 'engine_info() reports ready');
ok(-d $node->data_dir . '/eloqkv', 'the engine directory is created under PGDATA');
is($node->safe_psql('postgres', 'SELECT data_directory FROM eloqkv.engine_info()'),
	$node->data_dir . '/eloqkv', 'engine_info() shows it');
is($node->safe_psql('postgres', 'SELECT index_memory_limit FROM eloqkv.engine_info()'),
	32 * 1024 * 1024, 'the settings reach the engine');
like($node->safe_psql('postgres', 'SELECT io_mode FROM eloqkv.engine_info()'),
	qr/^(io_uring|pread)$/, 'an I/O mode is chosen');
$log = slurp_file($node->logfile);
like($log, qr/eloqkv: I\/O through (io_uring|pread)/, 'the I/O mode is logged');
like($log, qr/eloqkv: engine ready in \d+ ms/, 'recovery is logged with its time');

# A configuration reload reaches the worker and changes nothing.
$node->reload;
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'), 'ready after a reload');

# 4. A fast shutdown and a start: the engine recovers again and logs it.
$offset = -s $node->logfile;
$node->stop('fast');
$node->start;
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'), 'ready after a clean restart');
$log = log_since($node, $offset);
like($log, qr/eloqkv: engine ready in \d+ ms/, 'the recovery summary is logged');
unlike($log, qr/eloqkv: shutdown checkpoint failed/, 'the shutdown checkpoint succeeded');

# 5. kill -9 of the maintenance worker makes Postgres restart every process and rebuild shared
#    memory; the engine is recovered from disk and answers again. (The worker starts with the
#    postmaster, before any database can be connected to, so it has no pg_stat_activity row; it
#    is found by its process title, "postgres: <cluster>: eloqkv maintenance".)
sub maintenance_worker_pid
{
	my ($node) = @_;
	my ($postmaster) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	my $pid = `pgrep -P $postmaster -f 'eloqkv maintenance'`;
	chomp $pid;
	return $pid;
}
my $pid = maintenance_worker_pid($node);
like($pid, qr/^\d+$/, 'the maintenance worker runs as a child of the postmaster');
$offset = -s $node->logfile;
kill 'KILL', $pid;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $offset);
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'),
	'ready again after the worker was killed');
$log = log_since($node, $offset);
like($log, qr/eloqkv maintenance.*was terminated by signal 9/, 'the postmaster saw the crash');
like($log, qr/eloqkv: engine ready in \d+ ms/, 'and the engine was recovered');
my $new_pid = maintenance_worker_pid($node);
ok($new_pid =~ /^\d+$/ && $new_pid != $pid, 'a new maintenance worker runs');

# 6. eloqkv.data_directory: a relative path is relative to PGDATA.
$node->stop;
$node->append_conf('postgresql.conf', "eloqkv.data_directory = 'kv/./data/'");
$node->start;
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'), 'ready in another directory');
is($node->safe_psql('postgres', 'SELECT data_directory FROM eloqkv.engine_info()'),
	$node->data_dir . '/kv/data', 'a relative path is resolved against PGDATA');
ok(-d $node->data_dir . '/kv/data', 'and the directory is created');

# 7. A data directory the engine cannot use: the server runs, KV access reports why.
$node->stop;
$node->adjust_conf('postgresql.conf', 'eloqkv.data_directory', "'/proc/eloqkv-cannot-exist'");
$node->start;
ok(poll_until($node, "SELECT state LIKE 'failed:%' FROM eloqkv.engine_info()", 't'),
	'engine_info() shows the failure');
($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM eloqkv.keyspace_stats()');
isnt($rc, 0, 'KV access fails');
like($err, qr/ERROR:  the eloqkv engine is not available/, 'with a clear message');
like($err, qr/DETAIL:  .*eloqkv-cannot-exist/, 'and the reason');
like(slurp_file($node->logfile), qr/eloqkv: the engine could not be recovered: .*eloqkv-cannot-exist/,
	'which the worker logged');
# Privileges still change; RESP users' grants cannot follow, which is said once per transaction
# (CREATE EXTENSION alone runs a dozen GRANTs).
($rc, $out, $err) = $node->psql('postgres',
	'BEGIN; CREATE ROLE startup_r; GRANT pg_read_all_settings TO startup_r; '
	  . 'GRANT pg_monitor TO startup_r; COMMIT; GRANT pg_signal_backend TO startup_r; DROP ROLE startup_r');
is($rc, 0, 'GRANT works while the engine is unavailable');
my @warned = $err =~ /WARNING:  the grants of RESP users were not refreshed: the eloqkv engine is not ready/g;
is(scalar(@warned), 3, 'with one warning per transaction (the BEGIN block, the GRANT, the DROP ROLE)')
  or diag($err);
like($err, qr/HINT:  Run SELECT eloqkv.refresh_resp_users\(\) when it is\./, 'and how to catch up');
$node->stop;

# 8. One engine per data directory: the postmaster holds the directory's lock for its whole life
#    (not the maintenance worker, which may come and go), and a second server pointed at the same
#    directory runs without KV access and says why.
$node->adjust_conf('postgresql.conf', 'eloqkv.data_directory', "'eloqkv'");
$node->start;
ok(poll_until($node, 'SELECT state FROM eloqkv.engine_info()', 'ready'), 'ready in its own directory');
my $lock_file = $node->data_dir . '/eloqkv/LOCK';
my $lock_inode = (stat $lock_file)[1];
my ($postmaster_pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
ok(grep({ /FLOCK\s+ADVISORY\s+WRITE\s+$postmaster_pid\s+\S+:$lock_inode\b/ }
		split /\n/, slurp_file('/proc/locks')),
	'the postmaster holds the flock on the directory\'s LOCK file');

my $other = PostgreSQL::Test::Cluster->new('other');
$other->init;
$other->append_conf('postgresql.conf',
	"shared_preload_libraries = 'eloqkv_fdw'\n"
	  . "eloqkv.index_memory = '32MB'\neloqkv.cache_memory = '16MB'\n"
	  . "eloqkv.resp_port = 0\n"
	  . "eloqkv.data_directory = '" . $node->data_dir . "/eloqkv'");
$other->start;
$other->safe_psql('postgres', 'CREATE EXTENSION eloqkv_fdw');
ok(poll_until($other, "SELECT state ~ '^failed: .*is in use by another engine' FROM eloqkv.engine_info()", 't'),
	'a second server on the same directory reports it in use');
like(slurp_file($other->logfile), qr/WARNING:  could not lock the eloqkv data directory: .*in use/,
	'and its postmaster logged why');
$other->stop;
is($node->safe_psql('postgres', 'SELECT state FROM eloqkv.engine_info()'), 'ready',
	'the first server is unaffected');
$node->stop;

# 9. A region of 1 GB or more in 4 kB pages costs page walks on every lookup: the postmaster says
#    so once, with what to do (huge_pages = off makes the pages 4 kB whatever is reserved).
unlike(slurp_file($node->logfile), qr/mapped in 4 kB pages/, 'a small region gets no huge pages hint');
my $big = PostgreSQL::Test::Cluster->new('big');
$big->init;
$big->append_conf('postgresql.conf',
	"shared_preload_libraries = 'eloqkv_fdw'\nhuge_pages = off\n"
	  . "eloqkv.index_memory = '64MB'\neloqkv.cache_memory = '1GB'\n"
	  . "eloqkv.prefault_memory = off\neloqkv.resp_port = 0");
$big->start;
$log = slurp_file($big->logfile);
like($log,
	qr/LOG:  eloqkv: its 1\d{3} MB of shared memory are mapped in 4 kB pages\n[^\n]*HINT:  Huge pages made RESP SET and GET about 10% faster in the benchmarks: reserve them \(vm.nr_hugepages\) and set huge_pages = on. See docs\/resp.md./,
	'a 1 GB region in 4 kB pages logs the huge pages hint');
is(scalar(() = $log =~ /mapped in 4 kB pages/g), 1, 'once');
$big->stop;

done_testing();
