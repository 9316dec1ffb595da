# A device error on the engine's log after a batch reached WAL. The batch (and a RESP SET that
# WAL alone may already have acknowledged) is then only in WAL: the server must not go on to a
# clean restart, which replays no WAL, lose it and hand its sequence numbers out again (a
# standby, which replayed it, would then skip the new writes). It PANICs, as Postgres does when
# a data file sync fails; crash recovery writes the batch to the engine again, and primary and
# standby agree on every row afterwards, across a clean restart too. The error is injected by
# test/fault/fail_segment_write.c (LD_PRELOAD): one failed write of a segment file.
use strict;
use warnings;
use Config;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my $tmp = PostgreSQL::Test::Utils::tempdir();
my $shim = "$tmp/fail_segment_write.so";
my $cc = $ENV{CC} // 'cc';
system($cc, '-shared', '-fPIC', '-O1', '-o', $shim, 'test/fault/fail_segment_write.c', '-ldl') == 0
  or BAIL_OUT('could not build the fault shim');
my $trigger = "$tmp/fail-next-write";

# Only the primary's processes see the shim. A sanitizer build of Postgres links its runtime
# dynamically and wants it first; the shim only wraps three libc calls.
my ($primary, $pport);
{
	local $ENV{LD_PRELOAD} = $shim;
	local $ENV{ELOQKV_FAIL_WRITE_TRIGGER} = $trigger;
	local $ENV{ASAN_OPTIONS} = join(':', grep { defined } $ENV{ASAN_OPTIONS}, 'verify_asan_link_order=0');
	($primary, $pport) = start_resp_node('primary',
		"eloqkv.io_mode = pread\nrestart_after_crash = on\n", allows_streaming => 1);
}
ok(wait_for_listener($pport), 'the primary listener is up');
sub psql_p { return $primary->safe_psql('postgres', $_[0]); }
psql_p(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE notes (id int, body text) SERVER kv OPTIONS (key 'id', resp_prefix 'note:');
INSERT INTO notes SELECT g, 'before ' || g FROM generate_series(1, 100) g;
});
is(redis_cli($pport, 'SET', 'plain:before', 'b'), 'OK', 'a RESP write before the failure');

$primary->backup('b');
my ($standby, $sport) = start_resp_standby('standby', $primary, 'b');
$primary->wait_for_catchup($standby);

# Every key and value of both servers, through SQL and RESP.
sub rows
{
	my ($node, $port) = @_;
	my $sql = $node->safe_psql('postgres', q{SELECT string_agg(id || '=' || body, ',' ORDER BY id) FROM notes});
	my @keys = sort split /\n/, redis_cli($port, 'KEYS', 'plain:*');
	my $resp = join(',', map { "$_=" . redis_cli($port, 'GET', $_) } @keys);
	return "$sql|$resp";
}

sub crash_restarted
{
	my ($pattern) = @_;
	for (1 .. 600)
	{
		my $log = slurp_file($primary->logfile);
		return 1 if $log =~ $pattern && $log =~ /database system is ready to accept connections.*\z/s
		  && $log =~ /$pattern.*database system is ready to accept connections/s;
		usleep(100_000);
	}
	return 0;
}

# ---- a RESP SET whose log write fails ----
my $log_offset = -s $primary->logfile;
open(my $t, '>', $trigger) or die;
close($t);
my $reply = redis_cli($pport, 'SET', 'plain:stranded', 'in WAL only');
ok(-e "$trigger.fired", 'the injected device error hit a segment write');
unlink "$trigger.fired";
note("the SET was answered: $reply");
ok(crash_restarted(qr/PANIC:  eloqkv: KV writes in WAL could not be written to the engine's files: .*Input\/output error/),
	'the primary PANICs, naming the device error, and crash recovery brings it back');
my $log = substr(slurp_file($primary->logfile), $log_offset);
like($log, qr/DETAIL:  Only WAL holds them now; crash recovery writes them to the engine again\./,
	'the PANIC says why');
ok(wait_for_listener($pport), 'the listener is back');
is(redis_cli($pport, 'GET', 'plain:stranded'), 'in WAL only',
	'the write that reached WAL is in the engine after recovery');

is(redis_cli($pport, 'SET', 'plain:after', 'a1'), 'OK', 'writes are taken again');
psql_p(q{INSERT INTO notes VALUES (101, 'after the restart')});
$primary->wait_for_catchup($standby);
is(rows($standby, $sport), rows($primary, $pport),
	'the standby holds exactly the primary\'s rows: no sequence number was used twice');
is(redis_cli($sport, 'GET', 'plain:after'), 'a1', 'including the writes after the restart');

# ---- an SQL commit whose log write fails: the transaction aborts, and stays aborted ----
open($t, '>', $trigger) or die;
close($t);
$log_offset = -s $primary->logfile;
my $err = psql_error($primary, q{INSERT INTO notes VALUES (102, 'failed commit')});
like($err, qr/ERROR:  .*Input\/output error/, 'the failing commit reports the device error');
unlink "$trigger.fired";
ok(crash_restarted(qr/PANIC:  eloqkv: KV writes in WAL could not be written/),
	'the primary PANICs again and comes back');
ok(wait_for_listener($pport), 'the listener is back');
is(psql_p('SELECT count(*) FROM notes WHERE id = 102'), '0',
	'the aborted transaction\'s row is not there after recovery');
is(redis_cli($pport, 'SET', 'plain:after2', 'a2'), 'OK', 'a write after the second recovery');
$primary->wait_for_catchup($standby);
is(rows($standby, $sport), rows($primary, $pport), 'primary and standby agree again');

# ---- and after a clean restart ----
$primary->restart;
ok(wait_for_listener($pport), 'the listener is back after a clean restart');
is(redis_cli($pport, 'SET', 'plain:after3', 'a3'), 'OK', 'a write after the clean restart');
$primary->wait_for_catchup($standby);
my $final = rows($primary, $pport);
like($final, qr/plain:stranded=in WAL only/, 'the stranded write survived the clean restart');
is(rows($standby, $sport), $final, 'and the standby still agrees');
unlike(slurp_file($standby->logfile), qr/KV replay:/, 'the standby\'s replay never stopped');

# ---- a device that keeps failing: one PANIC, no restart loop, nothing acknowledged lost ----
{
	# The clean restart above left the shim behind.
	local $ENV{LD_PRELOAD} = $shim;
	local $ENV{ELOQKV_FAIL_WRITE_TRIGGER} = $trigger;
	local $ENV{ASAN_OPTIONS} = join(':', grep { defined } $ENV{ASAN_OPTIONS}, 'verify_asan_link_order=0');
	$primary->restart;
}
ok(wait_for_listener($pport), 'the listener is back, with the shim');
# The maintenance worker's first ticks after a start sync and write on their own: let them pass,
# so that the failure hits the SET's logged write, not one of the worker's (which is refused
# without a PANIC, as nothing logged is stranded).
sleep 2;
$log_offset = -s $primary->logfile;
open($t, '>', $trigger) or die;
print $t 'sticky';
close($t);
$reply = redis_cli($pport, 'SET', 'plain:sticky', 'kept by WAL');
note("the SET was answered: $reply");
$primary->wait_for_log(
	qr/PANIC:  eloqkv: KV writes in WAL could not be written.*database system is ready to accept connections/s,
	$log_offset);
ok(1, 'the primary PANICs on a device that keeps failing and restarts');
sleep 3;    # thirty maintenance ticks
$log = substr(slurp_file($primary->logfile), $log_offset);
my $panics = () = $log =~ /PANIC:/g;
is($panics, 1, 'it does not PANIC again while the device keeps failing: no restart loop');
is(psql_p('SELECT 1'), '1', 'Postgres serves meanwhile');
my $kv_error = psql_error($primary, 'SELECT count(*) FROM notes');
note("a KV read meanwhile: $kv_error");
my $set_error = redis_cli($pport, 'SET', 'plain:refused', 'x');
like($set_error, qr/^(ERR|LOADING|READONLY)/, 'RESP refuses writes meanwhile');
note("a RESP write meanwhile: $set_error");

# The device is back. A clean restart runs no redo, so no resource manager hook: the
# maintenance worker replays the WAL kept for the engine before the engine takes a write.
unlink $trigger, "$trigger.fired";
$log_offset = -s $primary->logfile;
$primary->restart;
ok(wait_for_listener($pport), 'with the device back, a clean restart brings KV tables back');
like(slurp_file($primary->logfile, $log_offset), qr/eloqkv: replayed [1-9]\d* KV records from the WAL kept/,
	'it replayed the writes that WAL kept for the engine');
is(redis_cli($pport, 'GET', 'plain:sticky'), 'kept by WAL',
	'the write WAL kept while the device failed is in the engine');
is(redis_cli($pport, 'GET', 'plain:refused'), '', 'the refused write is not');
psql_p(q{INSERT INTO notes VALUES (103, 'after the device came back')});
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
is(rows($standby, $sport), rows($primary, $pport), 'primary and standby agree');

$standby->stop;
$primary->stop;
done_testing();
