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

-- Caches over heap tables (docs/cache.md).
CREATE FUNCTION eloqkv.analyze_cache_source(name text, source text, OUT columns text[],
                                            OUT types text[], OUT param_type text)
  AS 'MODULE_PATHNAME', 'eloqkv_analyze_cache_source' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.analyze_cache_source(text, text) IS
  'the result columns and parameter type of a cache source query (create_cache uses it)';

CREATE FUNCTION eloqkv.create_cache(name text, source text,
                                    ttl interval DEFAULT '5 minutes',
                                    stale_ttl interval DEFAULT '0',
                                    negative_ttl interval DEFAULT NULL,
                                    lease_timeout interval DEFAULT '1 second',
                                    key text DEFAULT NULL,
                                    resp_prefix text DEFAULT NULL) RETURNS regclass
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  a record;
  keycol text;
  pos int;
  cols text := '';
  opts text;
  qualified text;
BEGIN
  IF name IS NULL OR source IS NULL THEN
    RAISE EXCEPTION 'a cache needs a name and a source query' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT string_agg(quote_ident(part), '.') INTO qualified FROM unnest(parse_ident(name)) AS part;
  a := eloqkv.analyze_cache_source(name, source);
  keycol := coalesce(key, a.columns[1]);
  pos := array_position(a.columns, keycol);
  IF pos IS NULL THEN
    RAISE EXCEPTION 'key column "%" is not a column of the source of cache "%"', keycol, name
      USING ERRCODE = 'undefined_column',
            HINT = 'The source returns: ' || array_to_string(a.columns, ', ') || '.';
  END IF;
  IF a.types[pos] IS DISTINCT FROM a.param_type THEN
    RAISE EXCEPTION 'key column "%" of cache "%" has type %, but the source''s $1 has type %',
      keycol, name, a.types[pos], a.param_type
      USING ERRCODE = 'datatype_mismatch', HINT = 'Cast $1 in the source, e.g. $1::' || a.types[pos] || '.';
  END IF;
  IF ttl IS NOT NULL AND ttl <= interval '0' THEN
    RAISE EXCEPTION 'the ttl of cache "%" must be positive (NULL: rows never expire)', name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR i IN 1 .. array_length(a.columns, 1) LOOP
    cols := cols || CASE WHEN i > 1 THEN ', ' ELSE '' END || format('%I %s', a.columns[i], a.types[i]);
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'eloqkv_cache') THEN
    CREATE SERVER eloqkv_cache FOREIGN DATA WRAPPER eloqkv_fdw;
  END IF;
  -- Named by database too: caches of the same name in two databases must not share rows.
  opts := format('key %L, cache_source %L, keyspace %L', keycol, source,
                 current_database() || ':' || qualified);
  IF ttl IS NOT NULL THEN opts := opts || format(', ttl %L', ttl::text); END IF;
  IF coalesce(stale_ttl, interval '0') <> interval '0' THEN
    opts := opts || format(', stale_ttl %L', stale_ttl::text);
  END IF;
  IF negative_ttl IS NOT NULL THEN opts := opts || format(', negative_ttl %L', negative_ttl::text); END IF;
  IF lease_timeout IS NOT NULL THEN opts := opts || format(', lease_timeout %L', lease_timeout::text); END IF;
  IF resp_prefix IS NOT NULL THEN opts := opts || format(', resp_prefix %L', resp_prefix); END IF;
  EXECUTE format('CREATE FOREIGN TABLE %s (%s) SERVER eloqkv_cache OPTIONS (%s)', qualified, cols, opts);
  RETURN qualified::regclass;
END
$$;
COMMENT ON FUNCTION eloqkv.create_cache(text, text, interval, interval, interval, interval, text, text) IS
  'creates a read-through cache table over a source query keyed by its one parameter';

CREATE FUNCTION eloqkv.invalidate(cache regclass, key anyelement) RETURNS void
  AS 'MODULE_PATHNAME', 'eloqkv_invalidate' LANGUAGE C VOLATILE;
CREATE FUNCTION eloqkv.invalidate(cache regclass, key text) RETURNS void
  AS 'MODULE_PATHNAME', 'eloqkv_invalidate' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.invalidate(regclass, anyelement) IS
  'drops one key from a cache when the calling transaction commits';
COMMENT ON FUNCTION eloqkv.invalidate(regclass, text) IS
  'drops one key (given as text) from a cache when the calling transaction commits';
CREATE FUNCTION eloqkv.invalidate_all(cache regclass) RETURNS void
  AS 'MODULE_PATHNAME', 'eloqkv_invalidate_all' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.invalidate_all(regclass) IS
  'empties a cache when the calling transaction commits';

CREATE FUNCTION eloqkv.invalidate_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'eloqkv_invalidate_trigger' LANGUAGE C;

CREATE FUNCTION eloqkv.invalidate_on_change(cache regclass, source regclass, key_column name)
  RETURNS void LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  col_type regtype;
  key_type regtype;
  trig text;
BEGIN
  IF cache IS NULL OR source IS NULL OR key_column IS NULL THEN
    RAISE EXCEPTION 'invalidate_on_change needs a cache, a source table and its key column'
      USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT atttypid INTO key_type FROM pg_attribute a
    JOIN pg_foreign_table f ON f.ftrelid = a.attrelid
   WHERE a.attrelid = cache AND a.attnum > 0 AND NOT a.attisdropped
     AND a.attname = (SELECT substring(o FROM 5) FROM unnest(f.ftoptions) o WHERE o LIKE 'key=%');
  IF key_type IS NULL OR NOT EXISTS (SELECT 1 FROM pg_foreign_table f, unnest(f.ftoptions) o
                                      WHERE f.ftrelid = cache AND o LIKE 'cache_source=%') THEN
    RAISE EXCEPTION '"%" is not an eloqkv cache', cache USING ERRCODE = 'wrong_object_type',
      HINT = 'Caches are made by eloqkv.create_cache().';
  END IF;
  SELECT atttypid INTO col_type FROM pg_attribute
   WHERE attrelid = source AND attname = key_column AND attnum > 0 AND NOT attisdropped;
  IF col_type IS NULL THEN
    RAISE EXCEPTION 'column "%" does not exist in "%"', key_column, source
      USING ERRCODE = 'undefined_column';
  END IF;
  IF col_type <> key_type AND NOT (col_type IN ('text'::regtype, 'varchar'::regtype)
                                   AND key_type IN ('text'::regtype, 'varchar'::regtype)) THEN
    RAISE EXCEPTION 'column "%" of "%" has type %, but the key of cache "%" has type %',
      key_column, source, col_type, cache, key_type USING ERRCODE = 'datatype_mismatch';
  END IF;
  trig := 'eloqkv_invalidate_' || cache::oid;
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
                 'EXECUTE FUNCTION eloqkv.invalidate_trigger(%L, %L)', trig, source, cache::oid, key_column);
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT '
                 'EXECUTE FUNCTION eloqkv.invalidate_trigger(%L, %L)', trig || '_truncate', source,
                 cache::oid, key_column);
END
$$;
COMMENT ON FUNCTION eloqkv.invalidate_on_change(regclass, regclass, name) IS
  'installs triggers on a source table that invalidate a cache''s keys when rows change';

CREATE FUNCTION eloqkv.cache_stats(
    OUT cache regclass, OUT hits bigint, OUT misses bigint, OUT fills bigint,
    OUT lease_waits bigint, OUT lease_timeouts bigint, OUT stale_serves bigint,
    OUT negative_hits bigint, OUT early_refreshes bigint, OUT invalidations bigint,
    OUT refused_fills bigint, OUT fill_p50_ms double precision, OUT fill_p99_ms double precision,
    OUT fill_mean_ms double precision)
  RETURNS SETOF record AS 'MODULE_PATHNAME', 'eloqkv_cache_stats' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.cache_stats() IS 'counters of this database''s caches since the server started';
CREATE VIEW eloqkv.cache_stats AS SELECT * FROM eloqkv.cache_stats();
COMMENT ON VIEW eloqkv.cache_stats IS 'counters of this database''s caches since the server started';
