# A backup taken the way pgBackRest, Barman and WAL-G take one: pg_backup_start(), a file copy
# of the data directory, pg_backup_stop(). While the session is in its backup the engine deletes
# no file (compaction and engine checkpoints wait), from the moment pg_backup_start returns; the
# copy, restored with the backup label, holds every row; the hold ends with pg_backup_stop, or
# with the session if it never stops.
use strict;
use warnings;
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::RecursiveCopy;
use PostgreSQL::Test::Utils;
use Test::More;
use RespNode;

plan skip_all => 'TAP tests start clusters with initdb, which cannot run as root'
  if $> == 0;
plan skip_all => 'redis-cli is not installed' if system('which redis-cli >/dev/null 2>&1') != 0;

# Small segments, so that overwrites leave whole segments for compaction to delete.
my ($node, $port) =
  start_resp_node('primary', "eloqkv.segment_size = '1MB'\n", allows_streaming => 1);
ok(wait_for_listener($port), 'the listener is up');
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql(q{
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE docs (id int, body text) SERVER kv OPTIONS (key 'id');
INSERT INTO docs SELECT g, repeat('a', 2000) FROM generate_series(1, 1000) g;
});
sub overwrite { sql("UPDATE docs SET body = repeat('$_[0]', 2000)"); }
sub compactions { return sql('SELECT compactions FROM eloqkv.engine_info()'); }
sub rows { return $_[0]->safe_psql('postgres', q{SELECT string_agg(id || ':' || md5(body), ',' ORDER BY id) FROM docs}); }

# ---- the backup session ----
my $log_offset = -s $node->logfile;
my $backup = $node->background_psql('postgres');
$backup->query_safe(q{SELECT pg_backup_start('eloqkv test', true)});
like(psql_error($node, 'SELECT eloqkv.compact()'),
	qr/a copy of the data directory is in progress \(a base backup\); compaction and checkpoints wait until it ends/,
	'as soon as pg_backup_start returns, compaction waits');
like(psql_error($node, 'SELECT eloqkv.checkpoint()'),
	qr/a copy of the data directory is in progress/, 'and so do engine checkpoints');
$node->wait_for_log(
	qr/eloqkv: a base backup started \(pg_backup_start\); compaction and checkpoints wait until it ends/,
	$log_offset);
ok(1, 'the server log says so');

# Garbage for compaction while the copy runs: every row rewritten twice, some over RESP too.
my $before = compactions();
overwrite('b');
my $copy = PostgreSQL::Test::Utils::tempdir();
PostgreSQL::Test::RecursiveCopy::copypath($node->data_dir, "$copy/data",
	filterfn => sub { $_[0] !~ m{^(postmaster\.pid|pg_wal/.+)$} });
overwrite('c');
is(redis_cli($port, 'SET', 'plain:during', 'the backup'), 'OK', 'writes go on during the backup');
sleep 1;    # ten maintenance ticks
is(compactions(), $before, 'no segment was compacted (deleted) during the backup');

my $label = $backup->query_safe(q{SELECT labelfile FROM pg_backup_stop(false)});
$node->wait_for_log(qr/eloqkv: the base backup of this session ended; compaction and checkpoints resume unless another backup runs/,
	$log_offset);
ok(1, 'pg_backup_stop ends the hold');
like(sql('SELECT eloqkv.compact()'), qr/^\d+$/, 'compaction runs again');
cmp_ok(compactions(), '>', $before, 'and deletes the segments the overwrites emptied');

# ---- the copy, restored: crash recovery from the label's checkpoint to the end of WAL ----
open(my $fh, '>', "$copy/data/backup_label") or die;
print $fh $label;
close($fh);
mkdir "$copy/data/pg_wal" unless -d "$copy/data/pg_wal";
opendir(my $wal, $node->data_dir . '/pg_wal') or die;
for my $f (grep { /^[0-9A-F]{24}$/ } readdir($wal))
{
	copy($node->data_dir . "/pg_wal/$f", "$copy/data/pg_wal/$f") or die;
}
closedir($wal);
my $expected = rows($node);
my $restored = PostgreSQL::Test::Cluster->new('restored');
PostgreSQL::Test::RecursiveCopy::copypath("$copy/data", $node->backup_dir . '/manual');
$restored->init_from_backup($node, 'manual');
$restored->append_conf('postgresql.conf', "eloqkv.resp_port = 0\n");
$restored->start;
is(rows($restored), $expected, 'the restored copy holds every row, byte for byte');
$restored->stop;

# ---- a session that starts a backup and goes away ----
$log_offset = -s $node->logfile;
my $abandoned = $node->background_psql('postgres');
$abandoned->query_safe(q{SELECT pg_backup_start('abandoned', true)});
like(psql_error($node, 'SELECT eloqkv.compact()'), qr/a copy of the data directory is in progress/,
	'a second backup holds the files');
$abandoned->quit;
$node->wait_for_log(qr/eloqkv: the base backup of this session ended/, $log_offset);
like(sql('SELECT eloqkv.compact()'), qr/^\d+$/, 'the hold ends with the session that never stopped its backup');

$node->stop;
done_testing();
