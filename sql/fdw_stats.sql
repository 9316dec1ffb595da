-- Statistics: the views, row estimates from the engine, ANALYZE, EXPLAIN ANALYZE counters.
CREATE SERVER stats_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE st (k int, v text) SERVER stats_kv OPTIONS (key 'k');
INSERT INTO st SELECT i, 'value ' || i FROM generate_series(1, 5000) i;
-- Row estimates come from the engine's key count, before any ANALYZE.
EXPLAIN SELECT * FROM st;
SELECT table_name, keyspace, keys, bytes > 5000 * 20 AS bytes_ok FROM eloqkv.keyspaces
  WHERE table_name = 'st'::regclass;
SELECT k FROM st WHERE k = 7;
SELECT count(*) FROM st WHERE k = ANY (ARRAY[1, 2, 3]);
SELECT table_name, keys, writes, reads >= 4, cache_hits + cache_misses >= 4 AS lookups_counted,
       read_p99_ms >= read_p50_ms AS percentiles_ok, write_p99_ms >= write_p50_ms AS write_ok
  FROM eloqkv.stats WHERE table_name = 'st'::regclass;
-- ANALYZE samples keys without reading every value.
ANALYZE st;
SELECT reltuples FROM pg_class WHERE oid = 'st'::regclass;
SELECT count(*) > 0 AS has_stats FROM pg_stats WHERE tablename = 'st' AND attname = 'v';
EXPLAIN SELECT * FROM st WHERE k < 100;
-- EXPLAIN ANALYZE counts rows read, value cache hits and device reads.
CREATE FUNCTION explain_counts(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
    RETURN NEXT regexp_replace(line, '(Cache Hits|Device Reads): \d+', '\1: N');
  END LOOP;
END $$;
SELECT * FROM explain_counts('SELECT * FROM st WHERE k = 10');
SELECT * FROM explain_counts('SELECT * FROM st WHERE k IN (1, 2, 3, 99999)');
SELECT * FROM explain_counts('SELECT * FROM st WHERE k BETWEEN 10 AND 19');
-- Each value comes from the cache or from exactly one device read.
CREATE FUNCTION explain_reads(q text) RETURNS TABLE (rows_read int, hits int, device int)
LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  rows_read := 0; hits := 0; device := 0;
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
    rows_read := rows_read + coalesce((regexp_match(line, 'Rows Read: (\d+)'))[1]::int, 0);
    hits := hits + coalesce((regexp_match(line, 'Cache Hits: (\d+)'))[1]::int, 0);
    device := device + coalesce((regexp_match(line, 'Device Reads: (\d+)'))[1]::int, 0);
  END LOOP;
  RETURN NEXT;
END $$;
SELECT rows_read, hits + device = rows_read AS one_read_per_row
  FROM explain_reads('SELECT * FROM st WHERE k BETWEEN 100 AND 199');
DROP SERVER stats_kv CASCADE;
