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
