# Kill -9 in the middle of mixed load, again and again: after every restart each write that was
# acknowledged to a client (+OK on RESP, COMMIT on SQL) is there, every batch is whole, nothing
# from a rolled-back transaction is, and the cluster is ready again. Odd rounds kill every
# process at once (the postmaster too), even rounds one backend, after which Postgres restarts
# every process itself. Writers run in child processes and log every acknowledgement as they
# get it; the log is the truth compared with.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use POSIX ();
use Time::HiRes qw(usleep time);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

my $rounds = $ENV{ELOQKV_CRASH_ROUNDS} // 20;
# Small segments and an eager compaction: segments roll and get rewritten during the load.
my ($node, $port) = start_resp_node('crash',
	"eloqkv.segment_size = '1MB'\neloqkv.checkpoint_log_size = '8MB'\n"
	  . "restart_after_crash = on\n");
ok(wait_for_listener($port), 'the listener is up');
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE rows (id bigint, round int, batch int) SERVER kv
  OPTIONS (key 'id', resp_prefix 'row:');
CREATE TABLE src (id bigint PRIMARY KEY, v int);
CALL eloqkv.create_mirror('src', 'id');
});

my $logdir = PostgreSQL::Test::Utils::tempdir();

# RESP writer: unique keys, two-key MULTI/EXEC batches, and overwrites of 50 hot keys (which
# leave dead records for compaction). Logs each acknowledged write.
sub resp_writer
{
	my ($round, $log) = @_;
	open(my $fh, '>', $log) or POSIX::_exit(1);
	$fh->autoflush(1);
	my $s = raw_connect($port) or POSIX::_exit(0);
	my $buf = '';
	my $pad = 'x' x 3000;    # a few MB per round: segments roll, overwrites leave dead space
	for (my $i = 1;; ++$i)
	{
		print $s resp_command('SET', "u:$round:$i", "$i:$pad");
		my $r = read_reply_line($s, \$buf);
		last unless defined $r && $r eq '+OK';
		print $fh "u $i\n";
		if ($i % 10 == 0)
		{
			print $s resp_command('MULTI') . resp_command('SET', "b:$round:$i:a", $i)
			  . resp_command('SET', "b:$round:$i:b", $i) . resp_command('EXEC');
			my @r = map { read_reply_line($s, \$buf) } 1 .. 6;
			last unless defined $r[5] && "@r" eq '+OK +QUEUED +QUEUED *2 +OK +OK';
			print $fh "b $i\n";
		}
		my $hot = $i % 50;
		print $s resp_command('SET', "hot:$hot", "$round:$i:$pad");
		$r = read_reply_line($s, \$buf);
		last unless defined $r && $r eq '+OK';
		print $fh "h $hot $i\n";
	}
	POSIX::_exit(0);
}

# SQL writer: three foreign-table rows and one heap row (mirrored) per transaction, and now and
# then a transaction that rolls back. Logs each COMMIT that returned.
sub sql_writer
{
	my ($round, $log) = @_;
	open(my $fh, '>', $log) or POSIX::_exit(1);
	$fh->autoflush(1);
	my ($in, $out, $err) = ('', '', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	for (my $i = 1;; ++$i)
	{
		my $id = $round * 10_000_000 + $i * 3;
		$in .= "BEGIN; INSERT INTO rows VALUES ($id, $round, $i), ("
		  . ($id + 1) . ", $round, $i), (" . ($id + 2) . ", $round, $i); "
		  . "INSERT INTO src VALUES ($round * 10000000 + $i, $i); COMMIT; SELECT 'ack $i';\n";
		$in .= "BEGIN; INSERT INTO rows VALUES (-$id, $round, -1); ROLLBACK;\n" if $i % 7 == 0;
		my $acked = eval {
			$h->pump while $out !~ /^ack $i$/m && $h->pumpable;
			1;
		};
		last unless $acked && $out =~ /^ack $i$/m;
		print $fh "s $i\n";
	}
	eval { $h->kill_kill; };
	POSIX::_exit(0);
}

# Compaction, as often as it finds work, while the others write. Logs segments rewritten.
sub compactor
{
	my ($log) = @_;
	open(my $fh, '>', $log) or POSIX::_exit(1);
	$fh->autoflush(1);
	my ($in, $out, $err) = ("SELECT 'n=' || eloqkv.compact(); SELECT pg_sleep(0.02);\n" x 10000, '', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-At', '-d', $node->connstr('postgres') ],
		'<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout(60));
	eval {
		while ($h->pumpable)
		{
			$h->pump;
			while ($out =~ s/^n=(\d+)\n//m) { print $fh "$1\n"; }
		}
	};
	eval { $h->kill_kill; };
	POSIX::_exit(0);
}

sub spawn
{
	my ($fn, @args) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0) { $fn->(@args); POSIX::_exit(0); }
	return $pid;
}

sub read_log
{
	my ($path) = @_;
	open(my $fh, '<', $path) or return ();
	my @lines = <$fh>;
	chomp @lines;
	return @lines;
}

# MGET through one connection, 500 keys at a time; returns the values (undef for nil).
sub mget
{
	my @keys = @_;
	my $s = raw_connect($port);
	my $buf = '';
	my @values;
	while (my @chunk = splice(@keys, 0, 500))
	{
		print $s resp_command('MGET', @chunk);
		my $head = read_reply_line($s, \$buf);
		die "MGET: $head" unless $head =~ /^\*(\d+)$/;
		for (1 .. $1)
		{
			my $len = read_reply_line($s, \$buf);
			if ($len eq '$-1') { push @values, undef; next; }
			$len =~ /^\$(\d+)$/ or die "MGET item: $len";
			my $n = $1;
			while (length($buf) < $n + 2)
			{
				my $chunk;
				sysread($s, $chunk, 65536) or die 'MGET: connection closed';
				$buf .= $chunk;
			}
			push @values, substr($buf, 0, $n);
			$buf = substr($buf, $n + 2);
		}
	}
	close $s;
	return @values;
}

my (@recovery_ms, @engine_recovery_ms, $checked, $lost, $compacted);
$checked = $lost = $compacted = 0;
my %hot_acked;    # hot key -> "round:i" of its last acknowledged write
for my $round (1 .. $rounds)
{
	my $resp_log = "$logdir/resp.$round";
	my $sql_log = "$logdir/sql.$round";
	my @writers = (
		spawn(\&resp_writer, $round, $resp_log),
		spawn(\&sql_writer, $round, $sql_log),
		spawn(\&compactor, "$logdir/compact.$round"));
	# Both writers under way (however slow the machine), then a random moment to strike.
	for (1 .. 600)
	{
		last if -s $resp_log && -s $sql_log;
		usleep(50_000);
	}
	usleep(int(400_000 + rand(1_100_000)));

	my ($postmaster) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
	my $started;
	if ($round % 2)
	{
		# Everything at once, as a power cut would stop it (the page cache survives a kill -9).
		my @children = split /\n/, `pgrep -P $postmaster`;
		kill 'KILL', $postmaster, @children;
		$node->{_pid} = undef;
		waitpid($_, 0) for @writers;
		# Children of the postmaster that were not yet gone must be before the restart.
		for (1 .. 100)
		{
			last unless grep { kill 0, $_ } @children;
			usleep(50_000);
		}
		$started = time();
		$node->start;
	}
	else
	{
		# One backend in the middle of its work: the postmaster restarts every process.
		my @backends = split /\n/, sql("SELECT pid FROM pg_stat_activity WHERE backend_type = "
			  . "'client backend' AND pid <> pg_backend_pid() ORDER BY random()");
		# (None connected yet: a RESP worker, which is a postmaster child just the same.)
		@backends = split /\n/, `pgrep -P $postmaster -f 'eloqkv resp worker'` unless @backends;
		$started = time();
		kill 'KILL', $backends[0];
		waitpid($_, 0) for @writers;
	}
	my $up = wait_for_listener($port);
	push @recovery_ms, int((time() - $started) * 1000);
	ok($up, "round $round: the cluster is back after kill -9");
	push @engine_recovery_ms, sql('SELECT round(recovery_ms) FROM eloqkv.engine_info()');
	$compacted += $_ for read_log("$logdir/compact.$round");

	my (@u, @b, %hot);
	for (read_log($resp_log))
	{
		push @u, $1 if /^u (\d+)$/;
		push @b, $1 if /^b (\d+)$/;
		$hot{$1} = "$round:$2" if /^h (\d+) (\d+)$/;
	}
	%hot_acked = (%hot_acked, %hot);
	my @s = map { /^s (\d+)$/ ? $1 : () } read_log($sql_log);
	ok(@u > 0 && @s > 0, "round $round: both writers had writes acknowledged (" . scalar(@u)
		  . " RESP, " . scalar(@s) . ' SQL)');

	# RESP: every acknowledged SET, and both halves of every acknowledged EXEC.
	my @got = mget(map { "u:$round:$_" } @u);
	my @missing = grep { !defined $got[$_] || $got[$_] !~ /^$u[$_]:/ } 0 .. $#u;
	my $max_b = @b ? $b[-1] + 10 : 10;
	my @pairs = mget(map { ("b:$round:$_:a", "b:$round:$_:b") } grep { $_ % 10 == 0 } 10 .. $max_b);
	my %acked_b = map { $_ => 1 } @b;
	my @torn;
	my $k = 0;
	for my $i (grep { $_ % 10 == 0 } 10 .. $max_b)
	{
		my ($a, $bb) = @pairs[ $k, $k + 1 ];
		$k += 2;
		push @torn, $i if defined($a) != defined($bb);
		push @missing, "b$i" if $acked_b{$i} && !defined $a;
	}
	# Hot keys hold their last acknowledged value or a later one.
	my @hot_keys = sort { $a <=> $b } keys %hot_acked;
	my @hot_got = mget(map { "hot:$_" } @hot_keys);
	for my $j (0 .. $#hot_keys)
	{
		my ($want_round, $want_i) = split /:/, $hot_acked{ $hot_keys[$j] };
		my ($got_round, $got_i) = split /:/, ($hot_got[$j] // '0:0');
		push @missing, "hot:$hot_keys[$j]"
		  if $got_round < $want_round || ($got_round == $want_round && $got_i < $want_i);
	}
	is(scalar(@missing), 0, "round $round: every acknowledged RESP write is there")
	  or diag("missing: @missing[0 .. ($#missing < 9 ? $#missing : 9)]");
	is(scalar(@torn), 0, "round $round: every MULTI/EXEC batch is whole")
	  or diag("torn: @torn");

	# SQL: whole transactions, every acknowledged one, no rolled-back row; the mirror too.
	my $acked = join(',', @s) || '0';
	is( sql("SELECT count(*) FROM rows WHERE round = $round AND batch IN ($acked)"),
		3 * @s, "round $round: every row of every acknowledged transaction is there");
	is(sql("SELECT count(*) FROM (SELECT batch FROM rows WHERE round = $round "
			  . "GROUP BY batch HAVING count(*) <> 3) t"),
		0, "round $round: no transaction is there in part");
	is(sql("SELECT count(*) FROM rows WHERE batch = -1"), 0,
		"round $round: nothing of a rolled-back transaction");
	is( sql("SELECT count(*) FROM src_mirror WHERE id IN (SELECT $round * 10000000 + g "
			  . "FROM unnest('{$acked}'::int[]) g)"),
		scalar(@s), "round $round: the mirror has every acknowledged source row");
	$checked += @u + @b + scalar(keys %hot) + @s;
	$lost += @missing;
}

# A full read of every value: each record's checksum is verified on the way.
my $rows = sql('SELECT count(*), count(DISTINCT batch) FROM rows');
like($rows, qr/^\d+\|\d+$/, "a full scan reads every row ($rows)");
ok($compacted > 0, "compaction rewrote segments during the load ($compacted)");
my @sorted = sort { $a <=> $b } @recovery_ms;
my @engine = sort { $a <=> $b } @engine_recovery_ms;
diag(sprintf("%d rounds, %d acknowledged writes checked, %d lost; restart to serving ms min %d "
		  . "median %d max %d; engine recovery ms median %d max %d; %d segments compacted",
		$rounds, $checked, $lost, $sorted[0], $sorted[ int(@sorted / 2) ], $sorted[-1],
		$engine[ int(@engine / 2) ], $engine[-1], $compacted));
# (A torn tail cut at recovery is what kill -9 leaves behind; the log names it "torn or corrupt
# tail". Damage to acknowledged data is reported in these words instead.)
my @damage = grep {
	/failed its checksum|is not the one indexed|is damaged|could not be recovered|shorter than the index says|has a bad header|is missing/
} split /\n/, slurp_file($node->logfile);
is(join("\n", @damage[ 0 .. ($#damage < 9 ? $#damage : 9) ]), '', 'no corruption was reported');
$node->stop;
done_testing();
