-- eloqkv_fdw 0.1
\echo Use "CREATE EXTENSION eloqkv_fdw" to load this file. \quit

CREATE SCHEMA eloqkv;
COMMENT ON SCHEMA eloqkv IS 'eloqkv_fdw: functions and views of the embedded key-value engine';
GRANT USAGE ON SCHEMA eloqkv TO PUBLIC;

CREATE FUNCTION eloqkv.eloqkv_fdw_handler() RETURNS fdw_handler
  AS 'MODULE_PATHNAME' LANGUAGE C STRICT;
CREATE FUNCTION eloqkv.eloqkv_fdw_validator(text[], oid) RETURNS void
  AS 'MODULE_PATHNAME' LANGUAGE C STRICT;
COMMENT ON FUNCTION eloqkv.eloqkv_fdw_handler() IS 'foreign data wrapper handler for eloqkv_fdw';
COMMENT ON FUNCTION eloqkv.eloqkv_fdw_validator(text[], oid) IS
  'checks the options of eloqkv_fdw servers, user mappings and foreign tables';

CREATE FOREIGN DATA WRAPPER eloqkv_fdw
  HANDLER eloqkv.eloqkv_fdw_handler
  VALIDATOR eloqkv.eloqkv_fdw_validator;
COMMENT ON FOREIGN DATA WRAPPER eloqkv_fdw IS 'key-value tables stored in the embedded eloqkv engine';

CREATE FUNCTION eloqkv.engine_info(
    OUT version text, OUT state text, OUT data_directory text, OUT io_mode text,
    OUT direct_io boolean, OUT sync text, OUT checksum text,
    OUT index_memory_used bigint, OUT index_memory_limit bigint,
    OUT cache_memory_used bigint, OUT cache_memory_limit bigint,
    OUT keys bigint, OUT live_bytes bigint, OUT disk_bytes bigint, OUT segments bigint,
    OUT fsyncs bigint, OUT bytes_written bigint, OUT fsync_p99_ms double precision,
    OUT checkpoints bigint, OUT last_checkpoint_ms double precision,
    OUT recovery_ms double precision, OUT recovered_records bigint,
    OUT compactions bigint, OUT compaction_bytes_reclaimed bigint, OUT expired_swept bigint)
  RETURNS record
  AS 'MODULE_PATHNAME', 'eloqkv_engine_info' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION eloqkv.engine_info() IS
  'state, I/O mode, memory and disk use of the eloqkv engine (data_directory needs pg_read_all_settings)';

CREATE VIEW eloqkv.engine AS SELECT * FROM eloqkv.engine_info();
COMMENT ON VIEW eloqkv.engine IS 'the eloqkv engine: eloqkv.engine_info() as a view';

CREATE FUNCTION eloqkv.keyspace_stats(
    OUT id bigint, OUT name text, OUT keys bigint, OUT bytes bigint,
    OUT reads bigint, OUT writes bigint, OUT deletes bigint,
    OUT cache_hits bigint, OUT cache_misses bigint, OUT device_reads bigint,
    OUT read_p50_ms double precision, OUT read_p99_ms double precision,
    OUT write_p50_ms double precision, OUT write_p99_ms double precision)
  RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'eloqkv_keyspace_stats' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION eloqkv.keyspace_stats() IS 'per-keyspace counters and latency percentiles';

CREATE FUNCTION eloqkv.table_keyspace(regclass) RETURNS text
  AS 'MODULE_PATHNAME', 'eloqkv_table_keyspace' LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION eloqkv.table_keyspace(regclass) IS
  'the engine keyspace of an eloqkv foreign table (NULL for other tables)';

CREATE FUNCTION eloqkv.upsert(target regclass, new_row anyelement) RETURNS void
  AS 'MODULE_PATHNAME', 'eloqkv_upsert' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION eloqkv.upsert(regclass, anyelement) IS
  'writes a row of an eloqkv foreign table whether or not its key exists (needs INSERT and UPDATE)';

-- Foreign KV tables and their keyspaces.
CREATE VIEW eloqkv.keyspaces AS
  SELECT c.oid::regclass AS table_name,
         eloqkv.table_keyspace(c.oid) AS keyspace,
         s.keys, s.bytes
    FROM pg_class c
    JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
    JOIN pg_foreign_server srv ON srv.oid = ft.ftserver
    JOIN pg_foreign_data_wrapper w ON w.oid = srv.srvfdw AND w.fdwname = 'eloqkv_fdw'
    LEFT JOIN eloqkv.keyspace_stats() s ON s.name = eloqkv.table_keyspace(c.oid);

-- Per-table counters and latencies (since the engine started).
CREATE VIEW eloqkv.stats AS
  SELECT c.oid::regclass AS table_name,
         s.keys, s.bytes, s.reads, s.writes, s.deletes,
         s.cache_hits, s.cache_misses, s.device_reads,
         s.read_p50_ms, s.read_p99_ms, s.write_p50_ms, s.write_p99_ms
    FROM pg_class c
    JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
    JOIN pg_foreign_server srv ON srv.oid = ft.ftserver
    JOIN pg_foreign_data_wrapper w ON w.oid = srv.srvfdw AND w.fdwname = 'eloqkv_fdw'
    JOIN eloqkv.keyspace_stats() s ON s.name = eloqkv.table_keyspace(c.oid);

CREATE FUNCTION eloqkv.checkpoint() RETURNS void
  AS 'MODULE_PATHNAME', 'eloqkv_checkpoint' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION eloqkv.checkpoint() IS 'writes an eloqkv index checkpoint now';
REVOKE ALL ON FUNCTION eloqkv.checkpoint() FROM PUBLIC;

CREATE FUNCTION eloqkv.compact() RETURNS bigint
  AS 'MODULE_PATHNAME', 'eloqkv_compact' LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION eloqkv.compact() IS
  'reclaims dead space in the eloqkv log now; returns the number of segments rewritten';
REVOKE ALL ON FUNCTION eloqkv.compact() FROM PUBLIC;

-- RESP users tied to Postgres roles (docs/resp.md): superusers only.
CREATE FUNCTION eloqkv.create_resp_user(name text, password text, role regrole,
                                        plain_keys boolean DEFAULT false) RETURNS void
  AS 'MODULE_PATHNAME', 'eloqkv_create_resp_user' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.create_resp_user(text, text, regrole, boolean) IS
  'creates or replaces a RESP user that acts with the privileges of a role';
REVOKE ALL ON FUNCTION eloqkv.create_resp_user(text, text, regrole, boolean) FROM PUBLIC;

CREATE FUNCTION eloqkv.drop_resp_user(name text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'eloqkv_drop_resp_user' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.drop_resp_user(text) IS 'drops a RESP user; false if there was none';
REVOKE ALL ON FUNCTION eloqkv.drop_resp_user(text) FROM PUBLIC;

CREATE FUNCTION eloqkv.refresh_resp_users() RETURNS void
  AS 'MODULE_PATHNAME', 'eloqkv_refresh_resp_users' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.refresh_resp_users() IS
  'recomputes the grants of this database''s RESP users from their roles';
REVOKE ALL ON FUNCTION eloqkv.refresh_resp_users() FROM PUBLIC;

CREATE FUNCTION eloqkv.resp_users(OUT name text, OUT role text, OUT plain_keys boolean,
                                  OUT tables integer) RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'eloqkv_resp_users' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.resp_users() IS
  'this database''s RESP users: role, plain-key access, number of tables granted';
REVOKE ALL ON FUNCTION eloqkv.resp_users() FROM PUBLIC;
