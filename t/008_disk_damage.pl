# Damage on disk, done to a stopped cluster's engine files: a torn, zeroed or bit-flipped newest
# segment (recovery keeps every write before the damage, logs what it dropped, serves nothing
# corrupt, and the cut survives later restarts); a damaged checkpoint (recovery falls back to an
# older one, or to the whole log, and loses nothing); damage to an older, sealed segment
# (refused loudly, naming the file, at recovery when the log runs through it, and at read time
# when a checkpoint covers it), never skipped silently.
use strict;
use warnings;
use Fcntl qw(SEEK_SET);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

# No checkpoint unless a test asks for one, so the log alone holds the writes.
my $quiet_checkpoints = "eloqkv.checkpoint_interval = '1d'\neloqkv.checkpoint_log_size = '64GB'\n";

sub value_of { my ($i, $size) = @_; return "val-$i:" . ('x' x $size) . ":end-$i"; }

# SETs key:$from..$to, pipelined $per_round at a time (50 unless given); every one must be
# acknowledged. The SETs of one round are one engine batch (the listener coalesces them), so
# with $per_round = 1 each write is a batch of its own.
sub write_keys
{
	my ($port, $from, $to, $size, $per_round) = @_;
	$per_round //= 50;
	my $s = raw_connect($port);
	my $buf = '';
	for (my $i = $from; $i <= $to; $i += $per_round)
	{
		my $last = $i + $per_round - 1 > $to ? $to : $i + $per_round - 1;
		print $s resp_command('SET', "key:$_", value_of($_, $size)) for $i .. $last;
		for ($i .. $last)
		{
			my $r = read_reply($s, \$buf);
			die "SET key:$_ answered $r" unless $r eq '+OK';
		}
	}
	close $s;
}

# GETs key:$from..$to. Returns (present, absent, wrong): a key is present when its value is
# exactly what was written; anything else but a null reply is wrong.
sub read_keys
{
	my ($port, $from, $to, $size) = @_;
	my $s = raw_connect($port);
	my $buf = '';
	my (@present, @absent, @wrong);
	print $s resp_command('GET', "key:$_") for $from .. $to;
	for my $i ($from .. $to)
	{
		my $r = read_reply($s, \$buf);
		if (!defined $r) { push @absent, $i; }
		elsif ($r eq value_of($i, $size)) { push @present, $i; }
		else { push @wrong, "$i: " . substr($r, 0, 80); }
	}
	close $s;
	return (\@present, \@absent, \@wrong);
}

sub engine_dir { return $_[0]->data_dir . '/eloqkv'; }

# A foreign table `notes` (id int, body text), filled by $insert.
sub create_notes
{
	my ($node, $insert) = @_;
	$node->safe_psql('postgres', q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE notes (id int, body text) SERVER kv OPTIONS (key 'id');
} . $insert);
}

sub segment_files
{
	my ($node) = @_;
	opendir(my $d, engine_dir($node)) or die $!;
	my @files = sort grep { /^\d{10}\.seg$/ } readdir($d);
	closedir($d);
	return map { engine_dir($node) . "/$_" } @files;
}

sub checkpoint_files
{
	my ($node) = @_;
	opendir(my $d, engine_dir($node)) or die $!;
	my @files = sort grep { /^ckpt-[0-9a-f]{16}\.ckpt$/ } readdir($d);
	closedir($d);
	return map { engine_dir($node) . "/$_" } @files;
}

# (file, offset) of the first occurrence of $needle in the engine's segment files.
sub locate
{
	my ($node, $needle) = @_;
	for my $f (segment_files($node))
	{
		my $data = slurp_file($f);
		my $at = index($data, $needle);
		return ($f, $at) if $at >= 0;
	}
	die "'$needle' is in no segment file";
}

sub rewrite_bytes
{
	my ($file, $offset, $bytes) = @_;
	open(my $fh, '+<:raw', $file) or die "$file: $!";
	sysseek($fh, $offset, SEEK_SET) or die $!;
	syswrite($fh, $bytes) == length($bytes) or die $!;
	close($fh);
}

sub read_bytes
{
	my ($file, $offset, $len) = @_;
	open(my $fh, '<:raw', $file) or die "$file: $!";
	sysseek($fh, $offset, SEEK_SET) or die $!;
	sysread($fh, my $bytes, $len);
	close($fh);
	return $bytes;
}

sub flip_bit
{
	my ($file, $offset) = @_;
	rewrite_bytes($file, $offset, chr(ord(read_bytes($file, $offset, 1)) ^ 0x10));
}

# After a start, the listener answers (with the engine ready or not).
sub wait_for_answer
{
	my ($port) = @_;
	for (1 .. 300)
	{
		my $r = redis_cli($port, 'PING');
		return 1 if $r eq 'PONG';
		usleep(100_000);
	}
	return 0;
}

# ---------------------------------------------------------------------------------------------
# The newest segment: torn (truncated inside a record), zeroed, or one bit flipped. The damage
# falls inside the record of key:150 of 300, each written as a batch of its own, so exactly keys
# 1..149 must survive (recovery cuts at the last whole batch).
for my $damage ('truncate', 'zero', 'flip')
{
	my ($node, $port) = start_resp_node("newest_$damage", $quiet_checkpoints);
	ok(wait_for_listener($port), "$damage: the listener is up");
	write_keys($port, 1, 300, 1000, 1);
	$node->stop('immediate');

	my ($file, $at) = locate($node, value_of(150, 1000));
	my $size_before = -s $file;
	if ($damage eq 'truncate') { truncate($file, $at + 500) or die $!; }
	elsif ($damage eq 'zero') { rewrite_bytes($file, $at + 200, "\0" x 64); }
	else { flip_bit($file, $at + 700); }

	my $log_offset = -s $node->logfile;
	$node->start;
	ok(wait_for_listener($port), "$damage: the engine recovers");
	my ($present, $absent, $wrong) = read_keys($port, 1, 300, 1000);
	is(join(',', @$wrong), '', "$damage: no value served is corrupt or wrong");
	is(scalar(@$present) . ' present, first absent ' . ($absent->[0] // 'none'),
		'149 present, first absent 150', "$damage: every write before the damage is there");
	is(scalar(@$absent), 151, "$damage: the damaged record and everything after it are gone");
	ok( $node->log_contains(
			qr/eloqkv: segment \Q$file\E: torn or corrupt tail cut at offset \d+: dropped \d+ bytes/,
			$log_offset),
		"$damage: the server log names the file and what was dropped");

	# The cut is permanent: new writes land after it and nothing dropped comes back.
	write_keys($port, 1001, 1010, 100);
	$node->restart;
	ok(wait_for_listener($port), "$damage: a second restart");
	($present, $absent, $wrong) = read_keys($port, 1, 300, 1000);
	is(scalar(@$present) . '/' . scalar(@$absent) . '/' . scalar(@$wrong),
		'149/151/0', "$damage: the same keys after a second restart");
	($present) = read_keys($port, 1001, 1010, 100);
	is(scalar(@$present), 10, "$damage: writes made after the cut survived");
	ok(-s $file < $size_before || $damage ne 'truncate', "$damage: the file was cut at the damage");
	$node->stop;
}

# ---------------------------------------------------------------------------------------------
# A damaged checkpoint: recovery falls back to the older checkpoint (and a longer replay), then,
# with both damaged, to the whole log. Nothing is lost either way.
{
	my ($node, $port) = start_resp_node('checkpoint', $quiet_checkpoints);
	ok(wait_for_listener($port), 'checkpoint: the listener is up');
	write_keys($port, 1, 200, 500);
	$node->safe_psql('postgres', 'CREATE EXTENSION eloqkv_fdw; SELECT eloqkv.checkpoint();');
	write_keys($port, 201, 400, 500);
	$node->stop;    # a clean shutdown writes the newest checkpoint
	my @checkpoints = checkpoint_files($node);
	is(scalar(@checkpoints), 2, 'checkpoint: two checkpoints on disk');
	my $newest = $checkpoints[-1];
	flip_bit($newest, int((-s $newest) / 2));

	my $log_offset = -s $node->logfile;
	$node->start;
	ok(wait_for_listener($port), 'checkpoint: the engine recovers from the older checkpoint');
	ok( $node->log_contains(
			qr/eloqkv: checkpoint \Q$newest\E is unusable \(corruption: checkpoint \Q$newest\E: .* near offset \d+\); trying an older one/,
			$log_offset),
		'checkpoint: the server log names the damaged checkpoint');
	my ($present, $absent, $wrong) = read_keys($port, 1, 400, 500);
	is(scalar(@$present) . '/' . scalar(@$absent) . '/' . scalar(@$wrong),
		'400/0/0', 'checkpoint: every key is there');

	$node->stop('immediate');
	@checkpoints = checkpoint_files($node);
	ok(scalar(@checkpoints) >= 1, 'checkpoint: checkpoints to damage');
	for my $i (0 .. $#checkpoints)
	{
		if ($i % 2) { truncate($checkpoints[$i], int((-s $checkpoints[$i]) / 3)) or die $!; }
		else { rewrite_bytes($checkpoints[$i], 0, "\0" x 64); }
	}
	$log_offset = -s $node->logfile;
	$node->start;
	ok(wait_for_listener($port), 'checkpoint: with every checkpoint damaged, the engine recovers');
	ok($node->log_contains(qr/eloqkv: recovered .* \(checkpoint: none\)/, $log_offset),
		'checkpoint: by replaying the whole log');
	($present, $absent, $wrong) = read_keys($port, 1, 400, 500);
	is(scalar(@$present) . '/' . scalar(@$absent) . '/' . scalar(@$wrong),
		'400/0/0', 'checkpoint: every key is still there');
	$node->stop;
}

# ---------------------------------------------------------------------------------------------
# An older, sealed segment damaged where the log replay runs through it: later segments hold
# acknowledged writes, so recovery refuses (naming the file and offset) instead of dropping them.
# SQL and RESP say why the engine is unavailable. Repairing the byte brings everything back.
{
	my ($node, $port) = start_resp_node('sealed_replayed',
		$quiet_checkpoints . "eloqkv.segment_size = '1MB'\n");
	ok(wait_for_listener($port), 'sealed: the listener is up');
	create_notes($node, q{INSERT INTO notes VALUES (1, 'a row')});
	write_keys($port, 1, 400, 10_000);
	$node->stop('immediate');
	my @segments = segment_files($node);
	ok(scalar(@segments) >= 4, 'sealed: the writes span several segments (' . scalar(@segments) . ')');
	my ($file, $at) = locate($node, value_of(20, 10_000));
	is($file, $segments[0], 'sealed: the damage goes into the first, sealed segment');
	my $original = read_bytes($file, $at + 5000, 1);
	flip_bit($file, $at + 5000);

	my $log_offset = -s $node->logfile;
	$node->start;
	ok(wait_for_answer($port), 'sealed: the listener answers');
	my $reason = qr/segment file \Q$file\E is damaged at offset \d+ after it was complete and synced; refusing to drop acknowledged data/;
	ok($node->log_contains(qr/eloqkv: the engine could not be recovered: $reason/, $log_offset),
		'sealed: the server log says why, naming the file');
	like(redis_cli($port, 'GET', 'key:1'), qr/^ERR the eloqkv engine is not available: corruption: $reason$/,
		'sealed: RESP commands get the reason');
	my $err = psql_error($node, 'SELECT body FROM notes WHERE id = 1');
	like($err, qr/ERROR:  the eloqkv engine is not available\nDETAIL:  corruption: $reason/,
		'sealed: SQL gets the reason');
	like($err, qr/HINT:  The server log has the details; fix the cause and restart the server./,
		'sealed: and what to do');
	like(psql_error($node, "INSERT INTO notes VALUES (2, 'x')"), qr/the eloqkv engine is not available/,
		'sealed: writes are refused too');

	$node->stop;
	rewrite_bytes($file, $at + 5000, $original);
	$node->start;
	ok(wait_for_listener($port), 'sealed: with the byte repaired, the engine recovers');
	my ($present, $absent, $wrong) = read_keys($port, 1, 400, 10_000);
	is(scalar(@$present) . '/' . scalar(@$absent) . '/' . scalar(@$wrong),
		'400/0/0', 'sealed: nothing was dropped');
	is($node->safe_psql('postgres', 'SELECT body FROM notes WHERE id = 1'), 'a row',
		'sealed: the SQL row too');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM notes'), '1', 'sealed: and nothing else');
	$node->stop;
}

# ---------------------------------------------------------------------------------------------
# An older, sealed segment damaged below the checkpoint, where recovery does not read: the
# damaged record is refused at read time with an error naming the file, on RESP and in SQL;
# every other key is served; compaction leaves the damaged segment alone and says so.
{
	my ($node, $port) = start_resp_node('sealed_checkpointed',
		$quiet_checkpoints . "eloqkv.segment_size = '1MB'\n");
	ok(wait_for_listener($port), 'checkpointed: the listener is up');
	create_notes($node,
		q{INSERT INTO notes SELECT g, 'note-' || g || ':' || repeat('n', 2000) FROM generate_series(1, 50) g});
	write_keys($port, 1, 300, 10_000);
	$node->safe_psql('postgres', 'SELECT eloqkv.checkpoint()');
	$node->stop('immediate');
	my @segments = segment_files($node);
	my ($kv_file, $kv_at) = locate($node, value_of(20, 10_000));
	my ($row_file, $row_at) = locate($node, 'note-7:');
	is($kv_file, $segments[0], 'checkpointed: key:20 is in the first segment');
	is($row_file, $segments[0], 'checkpointed: row 7 too');
	flip_bit($kv_file, $kv_at + 3000);
	flip_bit($row_file, $row_at + 1000);

	$node->start;
	ok(wait_for_listener($port), 'checkpointed: the engine recovers (the damage is not replayed)');
	like(redis_cli($port, 'GET', 'key:20'),
		qr/^ERR record in segment file \Q$kv_file\E at offset \d+ failed its checksum$/,
		'checkpointed: GET of the damaged key names the file');
	my ($present, $absent, $wrong) = read_keys($port, 1, 300, 10_000);
	is(scalar(@$present) . '/' . scalar(@$absent), '299/0', 'checkpointed: every other key is served');
	is(scalar(@$wrong), 1, 'checkpointed: only the damaged key is not');
	my $err = psql_error($node, 'SELECT body FROM notes WHERE id = 7');
	like($err, qr/ERROR:  record in segment file \Q$row_file\E at offset \d+ failed its checksum/,
		'checkpointed: SQL reading the damaged row names the file');
	is($node->safe_psql('postgres', q{SELECT left(body, 7) FROM notes WHERE id = 8}), 'note-8:',
		'checkpointed: other rows are read');

	# Make the damaged segment compaction's choice: delete everything else in it.
	my $s = raw_connect($port);
	my $buf = '';
	print $s resp_command('DEL', map { "key:$_" } grep { $_ != 20 } 1 .. 300);
	like(read_reply($s, \$buf), qr/^:\d+$/, 'checkpointed: keys deleted');
	close $s;
	my $log_offset = -s $node->logfile;
	like(psql_error($node, 'SELECT eloqkv.compact()'),
		qr/ERROR:  compaction failed: sealed segment file \Q$kv_file\E is damaged at offset \d+/,
		'checkpointed: compaction refuses to copy past the damage, naming the file');
	ok( $node->log_contains(
			qr/WARNING:  eloqkv: sealed segment file \Q$kv_file\E is damaged at offset \d+; it will not be compacted/,
			$log_offset),
		'checkpointed: and the server log says the segment is left alone');
	like(redis_cli($port, 'GET', 'key:20'), qr/failed its checksum/,
		'checkpointed: the damaged record is still refused, never served');
	$node->stop;
}

done_testing();
