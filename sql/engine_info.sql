-- eloqkv.engine_info() proves the engine is linked, recovered and open.
SELECT version = '0.1.0' AS version_ok,
       state,
       io_mode IN ('io_uring', 'pread') AS io_mode_ok,
       direct_io,
       sync,
       checksum IN ('sse4.2', 'table') AS checksum_ok,
       index_memory_limit > 0 AND index_memory_used BETWEEN 1 AND index_memory_limit AS index_ok,
       cache_memory_limit > 0 AND cache_memory_used BETWEEN 0 AND cache_memory_limit AS cache_ok,
       data_directory LIKE '/%/eloqkv' AS data_directory_ok,
       segments >= 1 AND disk_bytes > 0 AS disk_ok,
       recovery_ms >= 0 AS recovery_ok
  FROM eloqkv.engine_info();
SELECT count(*) FROM eloqkv.engine;
SELECT count(*) >= 0 AS keyspace_stats_ok FROM eloqkv.keyspace_stats();
-- Like the data_directory setting, the path is only shown to those who may read all settings.
CREATE ROLE regress_eloqkv_plain;
SET ROLE regress_eloqkv_plain;
SELECT data_directory IS NULL AS path_hidden, state FROM eloqkv.engine_info();
RESET ROLE;
GRANT pg_read_all_settings TO regress_eloqkv_plain;
SET ROLE regress_eloqkv_plain;
SELECT data_directory IS NOT NULL AS path_shown FROM eloqkv.engine_info();
RESET ROLE;
DROP ROLE regress_eloqkv_plain;
-- Replication position: a primary logs every KV batch to WAL; with no standby the view is empty.
CREATE SERVER replication_probe FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE replication_probe_t (k text, v text) SERVER replication_probe OPTIONS (key 'k');
INSERT INTO replication_probe_t VALUES ('a', 'b');
SELECT role, kv_logged_lsn IS NOT NULL AND kv_logged_lsn <= pg_current_wal_insert_lsn() AS logged,
       kv_applied_lsn IS NULL AS nothing_applied, next_sequence > 0 AS numbered,
       waiting_batches, replay_stopped, replay_stopped_reason
  FROM eloqkv.replication_position();
SELECT count(*) AS standbys FROM eloqkv.replication;
-- How those records read in pg_walinspect: a transaction's batches (with the before-images
-- that undo them), then its commit. Only this session's two transactions are shown, by xid.
CREATE EXTENSION pg_walinspect;
SELECT pg_current_wal_insert_lsn() AS before_batches \gset
BEGIN;
INSERT INTO replication_probe_t VALUES ('c', 'd'), ('e', 'f');
SELECT txid_current() % 4294967296 AS first_xid \gset
COMMIT;
BEGIN;
UPDATE replication_probe_t SET v = 'g' WHERE k = 'c';
SELECT txid_current() % 4294967296 AS second_xid \gset
COMMIT;
-- (Up to the last batch: the commit record after it need not be flushed yet.)
WITH r AS (
  SELECT start_lsn, record_type, description
    FROM pg_get_wal_records_info(:'before_batches', pg_current_wal_flush_lsn())
   WHERE resource_manager = 'eloqkv'
     AND description ~ ('xid (' || :first_xid || '|' || :second_xid || ')( |$)'))
SELECT record_type, regexp_replace(description, '\d+', 'N', 'g') AS description
  FROM r WHERE start_lsn <= (SELECT max(start_lsn) FROM r WHERE record_type = 'BATCH')
 ORDER BY start_lsn;
DROP EXTENSION pg_walinspect;
DROP SERVER replication_probe CASCADE;
