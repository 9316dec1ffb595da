# A transaction's KV batch is applied at pre-commit, before Postgres writes the commit record.
# When the transaction aborts after that, its writes must not stay on the primary (standbys
# drop them): a later commit step failing takes them back at once, and a crash before the commit
# record has crash recovery take them back, from the before-images in the batch's WAL record.
# A key written by someone else meanwhile keeps that later write.
#
# The window is held open with NOTIFY: a transaction that notifies takes a lock in its commit
# after eloqkv's pre-commit step, and a session waiting for a synchronous standby that does not
# exist holds that lock.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my ($primary, $pport) = start_resp_node('primary',
	"synchronous_standby_names = 'nobody'\nsynchronous_commit = local\nrestart_after_crash = on\n", allows_streaming => 1);
ok(wait_for_listener($pport), 'the primary listener is up');
sub psql_p { return $primary->safe_psql('postgres', $_[0]); }
psql_p(q{
CREATE TABLE holder_log (i int);
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE notes (id int, body text) SERVER kv OPTIONS (key 'id', resp_prefix 'note:');
INSERT INTO notes SELECT g, 'v' || g FROM generate_series(1, 10) g;
});

$primary->backup('b');
my ($standby, $sport) = start_resp_standby('standby', $primary, 'b');
catch_up();

# The eloqkv COMMIT record of the last transaction may not be written yet: wait for what was
# inserted.
sub catch_up { $primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert')); }

# Every row of a server, through SQL and through RESP.
sub rows
{
	my ($node, $port) = @_;
	my $sql = $node->safe_psql('postgres', q{SELECT string_agg(id || '=' || body, ',' ORDER BY id) FROM notes});
	my $resp = join(',', map { redis_cli($port, 'GET', "note:$_") } 1 .. 12);
	return "$sql|$resp";
}
my $original = rows($primary, $pport);
is($original, join(',', map { "$_=v$_" } 1 .. 10) . '|' . join(',', map { "v$_" } 1 .. 10) . ',,',
	'ten rows to start with');

sub waiting_on
{
	my ($what) = @_;
	for (1 .. 600)
	{
		my $n = psql_p(qq{SELECT count(*) FROM pg_stat_activity WHERE $what});
		return 1 if $n > 0;
		usleep(50_000);
	}
	return 0;
}

# The holder commits a NOTIFY and waits for a synchronous standby named 'nobody', keeping the
# notification queue's lock until it is cancelled.
my $holder = $primary->background_psql('postgres');
$holder->query_until(qr/holding/, q{
SET synchronous_commit = on;
SET application_name = 'holder';
BEGIN;
INSERT INTO holder_log VALUES (1);  -- WAL, so that its commit waits for the standby
NOTIFY eloqkv_test;
\echo holding
COMMIT;
});
ok(waiting_on(q{application_name = 'holder' AND wait_event = 'SyncRep'}),
	'the holder waits for its synchronous standby, holding the notification lock');

# ---- a commit step after eloqkv's failing: the writes are taken back at once ----
my $log_offset = -s $primary->logfile;
my ($out, $err);
$primary->psql('postgres', q{
SET lock_timeout = '500ms';
BEGIN;
INSERT INTO notes VALUES (11, 'inserted');
UPDATE notes SET body = 'updated' WHERE id = 2;
DELETE FROM notes WHERE id = 3;
NOTIFY eloqkv_test;
COMMIT;
}, stdout => \$out, stderr => \$err);
like($err, qr/canceling statement due to lock timeout/, 'the commit failed after eloqkv applied its batch');
is(rows($primary, $pport), $original, 'the aborted transaction left no row, no change, no delete (SQL and RESP)');
catch_up();
is(rows($standby, $sport), $original, 'and the standby agrees');
unlike(slurp_file($primary->logfile, $log_offset), qr/could not take back/, 'no warning was logged');

# Then a committed delete of the row the aborted transaction had deleted: taking that
# transaction back again (its WAL record is read again by the crash recovery below) would
# bring the row back.
psql_p('DELETE FROM notes WHERE id = 3');

# ---- a crash before the commit record: crash recovery takes the writes back ----
my $victim = $primary->background_psql('postgres', on_error_stop => 0);
$victim->query_until(qr/committing/, q{
SET application_name = 'victim';
BEGIN;
INSERT INTO notes VALUES (12, 'crash inserted');
UPDATE notes SET body = 'crash updated' WHERE id IN (4, 5);
DELETE FROM notes WHERE id = 6;
NOTIFY eloqkv_test;
\echo committing
COMMIT;
});
ok(waiting_on(q{application_name = 'victim' AND wait_event_type = 'Lock'}),
	'the victim waits for the notification lock inside its commit');
is(psql_p('SELECT body FROM notes WHERE id = 12'), 'crash inserted',
	'its batch is applied (and visible) before its commit record');
is(redis_cli($pport, 'SET', 'note:5', 'later over RESP'), 'OK', 'another writer overwrites one of its keys');

my $victim_pid = psql_p(q{SELECT pid FROM pg_stat_activity WHERE application_name = 'victim'});
$log_offset = -s $primary->logfile;
kill 'KILL', $victim_pid;
eval { $victim->quit; };
eval { $holder->quit; };
$primary->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$primary->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
ok(wait_for_listener($pport), 'the primary is back after crash recovery');
$primary->wait_for_log(
	qr/eloqkv: took back 3 KV writes of 1 transactions that never committed \(1 batches checked\)/,
	$log_offset);
ok(1, 'the log says three keys were restored (the one written since was kept); the batch its '
	  . 'backend took back was not taken back again');

my $expected = join(',', map { $_ == 5 ? '5=later over RESP' : "$_=v$_" } grep { $_ != 3 } 1 .. 10) . '|'
  . join(',', map { $_ == 5 ? 'later over RESP' : $_ == 3 ? '' : "v$_" } 1 .. 10) . ',,';
is(rows($primary, $pport), $expected, 'the primary has the rows as before the transaction, and the later write');
catch_up();
is(rows($standby, $sport), $expected, 'the standby has the same rows');
is(join(',', glob($primary->data_dir . '/eloqkv/kv_uncommitted_batches.*')), '', 'nothing is left to take back');

# Taking back is done once: a clean restart changes nothing, and a write after it stays.
$log_offset = -s $primary->logfile;
$primary->restart;
ok(wait_for_listener($pport), 'the primary is back after a clean restart');
is(rows($primary, $pport), $expected, 'the rows are unchanged after a clean restart');
unlike(slurp_file($primary->logfile, $log_offset), qr/took back/, 'nothing was taken back again');
psql_p(q{UPDATE notes SET body = 'after' WHERE id = 4});
catch_up();
is(rows($standby, $sport), rows($primary, $pport), 'primary and standby agree after a new write');

$standby->stop;
$primary->stop;
done_testing();
