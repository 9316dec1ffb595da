# A backend terminated (pg_terminate_backend) while it holds a cache key's lease, running the
# source: the reader queued behind it takes the lease over and fills the key; the same for the
# cache filler worker that runs the source for a Redis reader; a backend terminated in the
# middle of a foreign-table transaction leaves nothing of it; every other session carries on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my ($node, $port) = start_resp_node('terminated');
ok(wait_for_listener($port), 'the listener is up');
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE items (id int, v text) SERVER kv OPTIONS (key 'id');
CREATE TABLE users (id int PRIMARY KEY, name text);
INSERT INTO users VALUES (1, 'ada');
CREATE SEQUENCE runs;
CREATE FUNCTION slow_user(k int) RETURNS TABLE (id int, name text) LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM nextval('runs');
    PERFORM pg_sleep(CASE WHEN current_setting('application_name') = 'holder' THEN 60 ELSE 0 END);
    RETURN QUERY SELECT u.id, u.name FROM users u WHERE u.id = k;
  END $$;
SELECT eloqkv.create_cache('user_cache', 'SELECT id, name FROM slow_user($1)',
                           lease_timeout => '1 minute');
CREATE TABLE gate (slow bool);
INSERT INTO gate VALUES (true);
CREATE FUNCTION gated_user(k int) RETURNS TABLE (id int, name text) LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM nextval('runs');
    IF (SELECT slow FROM gate) THEN PERFORM pg_sleep(60); END IF;
    RETURN QUERY SELECT u.id, u.name FROM users u WHERE u.id = k;
  END $$;
SELECT eloqkv.create_cache('user_rcache', 'SELECT id, name FROM gated_user($1)',
                           lease_timeout => '1 minute', resp_prefix => 'u:');
});

# A psql session in the background; returns (harness, \$stdout, \$stderr).
sub background
{
	my ($name, $query) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-At', '-d', $node->connstr('postgres') . " application_name=$name",
		  '-c', $query ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(120));
	return ($h, \$out, \$err);
}

sub wait_until
{
	my ($query, $want) = @_;
	for (1 .. 600)
	{
		return 1 if sql($query) eq $want;
		usleep(50_000);
	}
	return 0;
}

# The holder misses, takes the lease and sleeps in the source; the waiter queues for the lease.
my ($holder, $holder_out, $holder_err) = background('holder', 'SELECT name FROM user_cache WHERE id = 1');
ok(wait_until("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'holder' "
		  . "AND wait_event = 'PgSleep'", '1'), 'the holder runs the source');
my ($waiter, $waiter_out, $waiter_err) = background('waiter', 'SELECT name FROM user_cache WHERE id = 1');
ok(wait_until("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'waiter' "
		  . "AND wait_event_type = 'Lock'", '1'), 'the waiter queues for the lease');
is(sql('SELECT last_value FROM runs'), '1', 'one source run so far');

is(sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder'"),
	't', 'the holder is terminated');
$holder->finish;
like($$holder_err, qr/terminating connection due to administrator command/,
	'the holder saw its termination');
$waiter->finish;
is($$waiter_out, "ada\n", 'the waiter took the lease over and got the row');
is(sql('SELECT last_value FROM runs'), '2', 'by running the source itself, once');
is(sql('SELECT name FROM user_cache WHERE id = 1'), 'ada', 'the key is filled for everyone');
is(sql('SELECT last_value FROM runs'), '2', 'and read from the cache now');
is(redis_cli($port, 'PING'), 'PONG', 'the listener was not disturbed');

# A Redis reader's miss is filled by a cache filler worker. Terminated while it runs the source,
# the filler fills nothing; the reader asks again (it does every second while it waits), a new
# filler takes the request, and the reader gets the row.
my ($rin, $rout, $rerr) = ('', '', '');
my $reader = IPC::Run::start([ 'redis-cli', '-p', $port, 'HGET', 'u:1', 'name' ],
	'<', \$rin, '>', \$rout, '2>', \$rerr, IPC::Run::timeout(120));
ok(wait_until("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'eloqkv cache filler' "
		  . "AND wait_event = 'PgSleep'", '1'), 'a filler runs the source for the Redis reader');
is(sql('SELECT last_value FROM runs'), '3', 'one more source run');
sql('UPDATE gate SET slow = false');
is(sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	  . "WHERE backend_type = 'eloqkv cache filler' AND wait_event = 'PgSleep'"),
	't', 'the filler is terminated');
$reader->finish;
# (Without asking again it would wait out lease_timeout and get an error.)
is($rout, "ada\n", 'the Redis reader still gets the row');
is(sql('SELECT last_value FROM runs'), '4', 'from one more source run');
is(redis_cli($port, 'HGET', 'u:1', 'name'), 'ada', 'and the key is filled');
is(sql('SELECT last_value FROM runs'), '4', 'read from the cache now');

# A transaction on a foreign table terminated before it commits leaves nothing.
my ($writer, $writer_out, $writer_err) = background('writer',
	"BEGIN; INSERT INTO items SELECT g, 'x' FROM generate_series(1, 1000) g; SELECT pg_sleep(60); COMMIT;");
ok(wait_until("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'writer' "
		  . "AND wait_event = 'PgSleep'", '1'), 'the writer is inside its transaction');
sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'writer'");
$writer->finish;
is(sql('SELECT count(*) FROM items'), '0', 'nothing of the terminated transaction is there');
sql("INSERT INTO items VALUES (1, 'after')");
is(sql('SELECT v FROM items'), 'after', 'other sessions write and read as before');
$node->stop;
done_testing();
