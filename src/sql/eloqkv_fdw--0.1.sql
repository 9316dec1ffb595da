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

CREATE FUNCTION eloqkv.replication_position(
    OUT role text, OUT kv_logged_lsn pg_lsn, OUT kv_applied_lsn pg_lsn, OUT next_sequence bigint,
    OUT waiting_batches integer, OUT replay_stopped boolean, OUT replay_stopped_reason text)
  RETURNS record
  AS 'MODULE_PATHNAME', 'eloqkv_replication_position' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION eloqkv.replication_position() IS
  'this server''s KV replication position: the WAL end of the last KV batch it logged (primary) or applied (standby), since it started';

CREATE FUNCTION eloqkv.accept_replay_gap() RETURNS text
  AS 'MODULE_PATHNAME', 'eloqkv_accept_replay_gap' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.accept_replay_gap() IS
  'serve KV reads again on a server whose KV replay stopped as a standby, with the rows it has; returns why it had stopped';
REVOKE EXECUTE ON FUNCTION eloqkv.accept_replay_gap() FROM PUBLIC;

-- Each standby streaming from this server, with how far its KV replay is behind the last KV
-- batch this server logged (a primary) or applied (a standby with cascaded standbys).
CREATE VIEW eloqkv.replication AS
  SELECT r.application_name, r.client_addr, r.state, r.sync_state,
         CASE WHEN p.role = 'primary' THEN p.kv_logged_lsn ELSE p.kv_applied_lsn END AS kv_lsn,
         r.replay_lsn,
         greatest(coalesce(pg_wal_lsn_diff(
                    CASE WHEN p.role = 'primary' THEN p.kv_logged_lsn ELSE p.kv_applied_lsn END,
                    r.replay_lsn), 0), 0)::bigint AS kv_lag_bytes,
         r.replay_lag
    FROM pg_stat_replication r, eloqkv.replication_position() p;
COMMENT ON VIEW eloqkv.replication IS
  'standbys of this server and their KV replay lag (kv_lag_bytes 0: every KV batch replayed)';

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
                                    resp_prefix text DEFAULT NULL,
                                    tag text DEFAULT NULL) RETURNS regclass
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
  -- The source resolves its names as here and now, whoever reads the cache later: a reader's
  -- search_path (or temporary table) must not decide what every reader gets.
  opts := opts || format(', source_search_path %L',
                         CASE WHEN current_setting('search_path') ~ 'pg_temp'
                              THEN current_setting('search_path')
                              ELSE current_setting('search_path') || ', pg_temp' END);
  IF ttl IS NOT NULL THEN opts := opts || format(', ttl %L', ttl::text); END IF;
  IF coalesce(stale_ttl, interval '0') <> interval '0' THEN
    opts := opts || format(', stale_ttl %L', stale_ttl::text);
  END IF;
  IF negative_ttl IS NOT NULL THEN opts := opts || format(', negative_ttl %L', negative_ttl::text); END IF;
  IF lease_timeout IS NOT NULL THEN opts := opts || format(', lease_timeout %L', lease_timeout::text); END IF;
  IF resp_prefix IS NOT NULL THEN opts := opts || format(', resp_prefix %L', resp_prefix); END IF;
  IF tag IS NOT NULL THEN
    IF array_position(a.columns, tag) IS NULL THEN
      RAISE EXCEPTION 'tag column "%" is not a column of the source of cache "%"', tag, name
        USING ERRCODE = 'undefined_column',
              HINT = 'The source returns: ' || array_to_string(a.columns, ', ') || '.';
    END IF;
    opts := opts || format(', tag_column %L', tag);
  END IF;
  EXECUTE format('CREATE FOREIGN TABLE %s (%s) SERVER eloqkv_cache OPTIONS (%s)', qualified, cols, opts);
  RETURN qualified::regclass;
END
$$;
COMMENT ON FUNCTION eloqkv.create_cache(text, text, interval, interval, interval, interval, text, text, text) IS
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
CREATE FUNCTION eloqkv.invalidate_tag(cache regclass, tag text) RETURNS void
  AS 'MODULE_PATHNAME', 'eloqkv_invalidate_tag' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION eloqkv.invalidate_tag(regclass, text) IS
  'drops every row of a cache whose tag column has this value, when the calling transaction commits';

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
  IF (SELECT relkind FROM pg_class WHERE oid = source) NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'the source of invalidate_on_change must be a table: "%" is not', source
      USING ERRCODE = 'wrong_object_type',
      HINT = 'Foreign tables, views and caches have no row triggers to invalidate from.';
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
  EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', source, trig);
  EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', source, trig || '_truncate');
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

-- Full-cache mirrors of heap tables (docs/cache.md).
CREATE TABLE eloqkv.mirrors (
  mirror regclass PRIMARY KEY,
  source regclass NOT NULL,
  key_column name NOT NULL,
  state text NOT NULL CHECK (state IN ('backfilling', 'ready')),
  rows_copied bigint NOT NULL DEFAULT 0,
  rows_total bigint NOT NULL,
  last_key text,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
COMMENT ON TABLE eloqkv.mirrors IS 'full-cache mirrors of this database and their backfill';
GRANT SELECT ON eloqkv.mirrors TO PUBLIC;
CREATE VIEW eloqkv.mirror_progress AS
  SELECT mirror, source, state, rows_copied, rows_total,
         round(100.0 * rows_copied / greatest(rows_total, 1), 1) AS percent,
         started_at, finished_at
    FROM eloqkv.mirrors;
GRANT SELECT ON eloqkv.mirror_progress TO PUBLIC;

CREATE FUNCTION eloqkv.mirror_trigger() RETURNS trigger
  AS 'MODULE_PATHNAME', 'eloqkv_mirror_trigger' LANGUAGE C;
CREATE FUNCTION eloqkv.mirror_copy_chunk(mirror regclass, after text, chunk_rows integer,
                                         OUT last_key text, OUT copied integer)
  AS 'MODULE_PATHNAME', 'eloqkv_mirror_copy_chunk' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION eloqkv.mirror_copy_chunk(regclass, text, integer) FROM PUBLIC;

CREATE PROCEDURE eloqkv.create_mirror(source regclass, key name, name text DEFAULT NULL,
                                      chunk_rows integer DEFAULT 10000,
                                      resp_prefix text DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
  src_schema text;
  src_name text;
  mirror_name text;
  m regclass;
  key_ok boolean;
  cols text;
  opts text;
  total bigint;
  done bigint;
  last text;
  chunk record;
  reported int := 0;
  -- A chunk share-locks its rows until it commits. One that waits on a row a writer holds while
  -- the writer waits on a row of the chunk is a deadlock: the chunk gives its locks back (and
  -- starts again) before the deadlock detector could pick the writer as the victim.
  lock_wait text := greatest(1, least(200, floor(extract(epoch FROM
                      current_setting('deadlock_timeout')::interval) * 200)))::int || 'ms';
  lock_timeout_before text := current_setting('lock_timeout');
  retries int := 0;
BEGIN
  IF source IS NULL OR key IS NULL OR chunk_rows IS NULL OR chunk_rows < 1 THEN
    RAISE EXCEPTION 'create_mirror needs a source table, its key column and a positive chunk size'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT n.nspname, c.relname INTO src_schema, src_name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.oid = source AND c.relkind = 'r';
  IF src_name IS NULL THEN
    RAISE EXCEPTION '"%" is not a table', source USING ERRCODE = 'wrong_object_type',
      HINT = 'A mirror copies an ordinary (heap) table.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = source AND attname = key
                    AND attnum > 0 AND NOT attisdropped) THEN
    RAISE EXCEPTION 'column "%" does not exist in table "%"', key, source
      USING ERRCODE = 'undefined_column';
  END IF;
  IF NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = source AND attname = key) THEN
    RAISE EXCEPTION 'column "%" of table "%" may be NULL', key, source
      USING ERRCODE = 'invalid_column_reference',
            HINT = 'A mirror''s key must be NOT NULL (a primary key is).';
  END IF;
  SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a
                   ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                  WHERE i.indrelid = source AND i.indisunique AND i.indnatts = 1
                    AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = key)
    INTO key_ok;
  IF NOT key_ok THEN
    RAISE EXCEPTION 'column "%" of table "%" is not unique', key, source
      USING ERRCODE = 'invalid_column_reference',
            HINT = 'A mirror is keyed by a column with a primary key or unique index of its own.';
  END IF;
  mirror_name := quote_ident(src_schema) || '.' || quote_ident(coalesce(name, src_name || '_mirror'));

  DELETE FROM eloqkv.mirrors  -- mirrors dropped with DROP FOREIGN TABLE
   WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = eloqkv.mirrors.mirror);
  IF EXISTS (SELECT 1 FROM eloqkv.mirrors WHERE eloqkv.mirrors.source = create_mirror.source
                AND state = 'ready') THEN
    RAISE EXCEPTION 'table "%" already has a mirror', source USING ERRCODE = 'duplicate_object',
      HINT = 'Drop it first with eloqkv.drop_mirror().';
  END IF;
  SELECT mirror, rows_copied, last_key INTO m, done, last
    FROM eloqkv.mirrors WHERE eloqkv.mirrors.source = create_mirror.source AND state = 'backfilling';
  IF m IS NULL THEN
    SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum)
      INTO cols FROM pg_attribute WHERE attrelid = source AND attnum > 0 AND NOT attisdropped;
    IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'eloqkv_cache') THEN
      CREATE SERVER eloqkv_cache FOREIGN DATA WRAPPER eloqkv_fdw;
    END IF;
    opts := format('key %L, mirror_of %L, keyspace %L', key, source::oid::text,
                   current_database() || ':' || mirror_name);
    IF resp_prefix IS NOT NULL THEN opts := opts || format(', resp_prefix %L', resp_prefix); END IF;
    EXECUTE format('CREATE FOREIGN TABLE %s (%s) SERVER eloqkv_cache OPTIONS (%s)', mirror_name, cols, opts);
    m := mirror_name::regclass;
    -- The triggers wait for writers already in flight (their table lock conflicts), so every
    -- change that commits from now on reaches the mirror.
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION eloqkv.mirror_trigger(%L)', 'eloqkv_mirror_' || m::oid, source, m::oid);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION eloqkv.mirror_trigger(%L)', 'eloqkv_mirror_' || m::oid || '_truncate',
                   source, m::oid);
    -- Also under session_replication_role = replica: rows a logical replication applies count.
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', source, 'eloqkv_mirror_' || m::oid);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', source,
                   'eloqkv_mirror_' || m::oid || '_truncate');
    EXECUTE format('SELECT count(*) FROM %s', source) INTO total;
    INSERT INTO eloqkv.mirrors (mirror, source, key_column, state, rows_total)
      VALUES (m, source, key, 'backfilling', total);
    done := 0;
    COMMIT;
  ELSE
    SELECT rows_total INTO total FROM eloqkv.mirrors WHERE mirror = m;
    RAISE NOTICE 'mirror %: resuming the backfill after % rows', m, done;
  END IF;

  LOOP
    LOOP
      BEGIN
        PERFORM set_config('lock_timeout', lock_wait, true);
        chunk := eloqkv.mirror_copy_chunk(m, last, chunk_rows);
        PERFORM set_config('lock_timeout', lock_timeout_before, true);
        EXIT;
      EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
        -- Rolled back to the block's start: the chunk's locks and copies are gone, and so is
        -- the lock_timeout set above. The writer goes first.
        retries := retries + 1;
        IF retries = 1 OR retries % 100 = 0 THEN
          RAISE NOTICE 'mirror %: a chunk waited on rows that writers hold; trying it again (% times so far)',
            m, retries;
        END IF;
        PERFORM pg_sleep(0.01);
      END;
    END LOOP;
    EXIT WHEN chunk.last_key IS NULL;  -- no key after the last chunk
    done := done + chunk.copied;
    last := chunk.last_key;
    UPDATE eloqkv.mirrors SET rows_copied = done, last_key = last WHERE mirror = m;
    COMMIT;
    IF total > 0 AND least(done * 10 / total, 10) > reported THEN
      reported := least(done * 10 / total, 10);
      RAISE NOTICE 'mirror %: % of % rows copied (% %%)', m, done, total, reported * 10;
    END IF;
  END LOOP;
  UPDATE eloqkv.mirrors SET state = 'ready', finished_at = now(), rows_copied = done WHERE mirror = m;
  COMMIT;
  RAISE NOTICE 'mirror % of % is ready: % rows', m, source, done;
END
$$;
COMMENT ON PROCEDURE eloqkv.create_mirror(regclass, name, text, integer, text) IS
  'creates a foreign table holding every row of a table, backfilled in chunks and kept in step by triggers';
REVOKE ALL ON PROCEDURE eloqkv.create_mirror(regclass, name, text, integer, text) FROM PUBLIC;

CREATE FUNCTION eloqkv.verify_mirror(source regclass, OUT key text, OUT difference text)
  RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
  m regclass;
  k name;
BEGIN
  IF source IS NULL THEN
    RAISE EXCEPTION 'verify_mirror needs a source table' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT mirror, key_column INTO m, k FROM eloqkv.mirrors WHERE eloqkv.mirrors.source = verify_mirror.source;
  IF m IS NULL THEN
    RAISE EXCEPTION 'table "%" has no eloqkv mirror', source USING ERRCODE = 'undefined_object',
      HINT = 'Mirrors are made by CALL eloqkv.create_mirror().';
  END IF;
  RETURN QUERY EXECUTE format(
    'SELECT coalesce(s.%1$I, m.%1$I)::text, '
    '       CASE WHEN m.%1$I IS NULL THEN ''missing from the mirror'' '
    '            WHEN s.%1$I IS NULL THEN ''not in the table'' ELSE ''differs'' END '
    '  FROM %2$s s FULL JOIN %3$s m ON s.%1$I = m.%1$I '
    ' WHERE s.%1$I IS NULL OR m.%1$I IS NULL OR to_jsonb(s) IS DISTINCT FROM to_jsonb(m) '
    ' ORDER BY 1', k, source, m);
END
$$;
CREATE FUNCTION eloqkv.drop_mirror(source regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  m regclass;
BEGIN
  IF source IS NULL THEN
    RAISE EXCEPTION 'drop_mirror needs a source table' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  SELECT mirror INTO m FROM eloqkv.mirrors WHERE eloqkv.mirrors.source = drop_mirror.source;
  IF m IS NULL THEN
    RAISE EXCEPTION 'table "%" has no eloqkv mirror', source USING ERRCODE = 'undefined_object';
  END IF;
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'eloqkv_mirror_' || m::oid, source);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'eloqkv_mirror_' || m::oid || '_truncate', source);
  IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = m) THEN
    EXECUTE format('DROP FOREIGN TABLE %s', m);
  END IF;
  DELETE FROM eloqkv.mirrors WHERE mirror = m;
END
$$;
COMMENT ON FUNCTION eloqkv.drop_mirror(regclass) IS 'drops a table''s mirror and its triggers';
REVOKE ALL ON FUNCTION eloqkv.drop_mirror(regclass) FROM PUBLIC;

COMMENT ON FUNCTION eloqkv.verify_mirror(regclass) IS
  'the keys where a table and its mirror differ (none when they agree)';
