# RESP users tied to Postgres roles: AUTH against hashed passwords, table privileges from GRANT
# and REVOKE (live, for connected sessions too), NOPERM for everything else, and management
# functions that only superusers may call.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run qw(start pump finish timeout);
use Time::HiRes ();
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my ($node, $port) = start_resp_node('resp_users', "eloqkv.resp_password = 'default-secret'\n");
# Runs commands (one per line) on one connection; returns the replies.
sub session { return redis_session($port, $_[0]); }
sub sql { return $node->safe_psql('postgres', $_[0]); }
sub sql_error { return psql_error($node, $_[0]); }

my $noperm = 'NOPERM this user has no permissions to access one of the keys used as arguments';

ok(wait_for_listener($port, 'default-secret'), 'the listener is up');

sql(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE profiles (id int, name text) SERVER kv OPTIONS (key 'id', resp_prefix 'prof:');
CREATE FOREIGN TABLE secrets (id int, v text) SERVER kv OPTIONS (key 'id', resp_prefix 'secret:');
INSERT INTO profiles VALUES (1, 'ann');
INSERT INTO secrets VALUES (1, 'hidden');
CREATE ROLE reader;
GRANT SELECT ON profiles TO reader;
SET log_statement = none;
SELECT eloqkv.create_resp_user('svc', 'pw-Secret-9431', 'reader');
});
is(sql('SELECT name, role, plain_keys, tables FROM eloqkv.resp_users()'), 'svc|reader|f|1',
	'resp_users() lists the user and its grants, never the password');

is(session("AUTH svc wrong\nPING\n"),
	"WRONGPASS invalid username-password pair or user is disabled.\n\nNOAUTH Authentication required.\n\n",
	'a wrong password is refused and the session stays unauthenticated');
is(session("AUTH svc pw-Secret-9431\nHGET prof:1 name\n"), "OK\nann\n",
	'AUTH user password, then a read the role may do');
is(session("HELLO 3 AUTH svc pw-Secret-9431\nHGET prof:1 name\n") =~ /ann\n$/ ? 1 : 0, 1,
	'HELLO AUTH authenticates a mapped user');
is(session("AUTH svc pw-Secret-9431\nHSET prof:1 name bob\n"), "OK\n$noperm\n\n",
	'a write without UPDATE is NOPERM');
is(session("AUTH svc pw-Secret-9431\nGET secret:1\nHGETALL secret:1\nWATCH secret:1\n"),
	"OK\n$noperm\n\n$noperm\n\n$noperm\n\n", 'a table without SELECT is NOPERM for every command');
is(session("AUTH svc pw-Secret-9431\nSET plain 1\nGET plain\nSCAN 0\nKEYS *\nDBSIZE\nFLUSHDB\n"),
	"OK\n" . ("$noperm\n\n" x 6), 'plain keys are NOPERM without plain_keys');
is(session("AUTH svc pw-Secret-9431\nMULTI\nHGET prof:1 name\nHSET prof:1 name eve\nEXEC\n"),
	"OK\nOK\nQUEUED\nQUEUED\n$noperm\n\n", 'a NOPERM command fails its whole EXEC');
is(sql('SELECT name FROM profiles WHERE id = 1'), 'ann', 'nothing was written');
like(session("AUTH default-secret\nINFO commandstats\n"),
	qr/cmdstat_hset:calls=0,usec=0,usec_per_call=0\.00,rejected_calls=1,failed_calls=0\r?\n/,
	'a NOPERM command counts as rejected, as Redis counts an ACL refusal');
is(session("AUTH default-secret\nGET probe\n"), "OK\n1\n", 'the default user is unrestricted');

# GRANT and REVOKE reach a connected session at its next command.
my ($in, $out) = ('', '');
my $h = start([ 'redis-cli', '-p', $port ], '<', \$in, '>', \$out, timeout(30));
sub ask
{
	my ($cmd) = @_;
	$out = '';
	$in .= "$cmd\n";
	pump $h until $out =~ /\n\z/ && ($out !~ /^(NOPERM|WRONGPASS)/ || $out =~ /\n\n\z/);
	my $r = $out;
	$r =~ s/\n+\z//;
	return $r;
}
is(ask('AUTH svc pw-Secret-9431'), 'OK', 'a long-lived session authenticates');
is(ask('HSET prof:1 name bob'), $noperm, 'it may not update yet');
sql('GRANT UPDATE ON profiles TO reader');
is(ask('HSET prof:1 name bob'), '0', 'after GRANT UPDATE the same session may');
is(sql('SELECT name FROM profiles WHERE id = 1'), 'bob', 'SQL sees the write');
is(ask('HSET prof:2 name new'), $noperm, 'creating a row needs INSERT');
is(ask('DEL prof:1'), $noperm, 'removing one needs DELETE');
sql('GRANT INSERT, DELETE ON profiles TO reader');
is(ask('HSET prof:2 name new'), '1', 'after GRANT INSERT rows can be created');
is(ask('DEL prof:2'), '1', 'after GRANT DELETE removed');
sql('REVOKE ALL ON profiles FROM reader');
is(ask('HGET prof:1 name'), $noperm, 'REVOKE takes effect at once');

# Privileges through role membership.
sql('CREATE ROLE app; GRANT SELECT ON secrets TO app; GRANT app TO reader;');
is(ask('GET secret:1'), 'hidden', 'a privilege of a role the user\'s role is a member of counts');

# Dropping the user or changing its password ends the session.
sql(q{SET log_statement = none; SELECT eloqkv.create_resp_user('svc', 'new-password', 'reader')});
is(ask('GET secret:1'),
	'NOPERM this user has been removed or its password changed; authenticate again',
	'a password change disconnects existing sessions');
finish $h;
is(session("AUTH svc pw-Secret-9431\n"), "WRONGPASS invalid username-password pair or user is disabled.\n\n",
	'the old password no longer works');
is(session("AUTH svc new-password\nGET secret:1\n"), "OK\nhidden\n", 'the new one does');
is(sql(q{SELECT eloqkv.drop_resp_user('svc')}), 't', 'drop_resp_user');
is(sql(q{SELECT eloqkv.drop_resp_user('svc')}), 'f', 'dropping twice says false');
is(session("AUTH svc new-password\n"), "WRONGPASS invalid username-password pair or user is disabled.\n\n",
	'a dropped user cannot authenticate');

# plain_keys, a rolled-back creation, and bad input.
sql(q{SELECT eloqkv.create_resp_user('cache', 'c-pw', 'app', plain_keys => true)});
is(session("AUTH cache c-pw\nSET k v\nGET k\n"), "OK\nOK\nv\n", 'plain_keys allows the default keyspace');
sql(q{BEGIN; SELECT eloqkv.create_resp_user('ghost', 'g-pw', 'app'); ROLLBACK;});
is(session("AUTH ghost g-pw\n"), "WRONGPASS invalid username-password pair or user is disabled.\n\n",
	'a user created in a rolled-back transaction does not exist');
like(sql_error(q{SELECT eloqkv.create_resp_user('default', 'x', 'app')}),
	qr/RESP user name "default" is reserved/, 'the default user cannot be mapped');
like(sql_error(q{SELECT eloqkv.create_resp_user('a b', 'x', 'app')}),
	qr/invalid RESP user name "a b"/, 'names are checked');
like(sql_error(q{SELECT eloqkv.create_resp_user('x', '', 'app')}),
	qr/a RESP user needs a password/, 'an empty password is refused');
like(sql_error(q{SELECT eloqkv.create_resp_user('x', NULL, 'app')}),
	qr/the password must not be NULL/, 'a NULL password is refused');
like(sql_error(q{SELECT eloqkv.create_resp_user('x', 'y', 'nosuchrole')}),
	qr/role "nosuchrole" does not exist/, 'an unknown role is refused');
sql('CREATE ROLE plain LOGIN');
my ($o, $e);
$node->psql('postgres', q{SELECT eloqkv.create_resp_user('x', 'y', 'app')},
	extra_params => [ '-U', 'plain' ], stdout => \$o, stderr => \$e);
like($e, qr/permission denied for function eloqkv.create_resp_user|permission denied for function create_resp_user/,
	'non-superusers cannot manage users');

# Passwords are stored hashed: the clear text is nowhere in the engine's files or the log.
my $datadir = $node->data_dir . '/eloqkv';
my $found = 0;
find_files($datadir, sub { $found++ if slurp_file($_[0]) =~ /pw-Secret-9431|new-password|c-pw/; });
is($found, 0, 'no clear-text password in the engine files');
# (log_statement = all, which the test cluster sets, would log the call itself, as it logs
# CREATE ROLE ... PASSWORD; the calls above turn it off.)
is(join("\n", grep { /pw-Secret-9431|new-password/ } split /\n/, slurp_file($node->logfile)), '',
	'nor in the server log');

# Brute force is slowed: every failed AUTH from one address is answered later than the one
# before (50 ms, doubling), without holding up anyone else; a right password answers at once.
sub failures
{
	my ($c) = @_;
	my $info = raw_exchange($c, resp_command('INFO', 'stats'));
	return $info =~ /acl_access_denied_auth:(\d+)/ ? $1 : -1;
}
my $attacker = raw_connect($port);
my $bystander = raw_connect($port);
raw_is($bystander, resp_command('AUTH', 'default-secret'), "+OK\r\n", 'a client authenticates');
my $before = failures($bystander);
my $started = Time::HiRes::time();
for my $i (1 .. 4)
{
	raw_is($attacker, resp_command('AUTH', "guess$i"),
		"-WRONGPASS invalid username-password pair or user is disabled.\r\n", "wrong guess $i");
}
my $took = Time::HiRes::time() - $started;
ok($took >= 0.74, sprintf('four wrong guesses took at least 50+100+200+400 ms (%.2f s)', $took));
is(failures($bystander), $before + 4, 'INFO counts them in acl_access_denied_auth');
# While the fifth guess waits (800 ms), another client is served.
print $attacker resp_command('AUTH', 'guess5') . resp_command('PING');
raw_is($bystander, resp_command('PING'), "+PONG\r\n", 'others are served meanwhile');
raw_is($attacker, undef,
	"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
	  . "-NOAUTH Authentication required.\r\n",
	'the guess is answered later, and the command behind it after it');

sub find_files
{
	my ($dir, $cb) = @_;
	opendir(my $d, $dir) or return;
	for my $f (readdir $d)
	{
		next if $f eq '.' || $f eq '..';
		my $p = "$dir/$f";
		if (-d $p) { find_files($p, $cb); }
		elsif (-f $p) { $cb->($p); }
	}
	closedir $d;
}

done_testing();
