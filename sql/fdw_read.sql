-- Reads: the access the planner picks for each kind of condition, and what comes back.
CREATE SERVER read_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE read_t (id text COLLATE "C", n int, doc jsonb) SERVER read_kv OPTIONS (key 'id');
INSERT INTO read_t SELECT 'k' || lpad(i::text, 4, '0'), i, jsonb_build_object('i', i)
  FROM generate_series(1, 1000) i;
-- Point lookup.
EXPLAIN (COSTS OFF) SELECT * FROM read_t WHERE id = 'k0042';
SELECT * FROM read_t WHERE id = 'k0042';
SELECT * FROM read_t WHERE id = 'missing';
SELECT * FROM read_t WHERE id = NULL;
-- Multi-get: one batch, each row once.
EXPLAIN (COSTS OFF) SELECT * FROM read_t WHERE id = ANY (ARRAY['k0001', 'k0002']);
SELECT id, n FROM read_t WHERE id IN ('k0003', 'k0001', 'nope', 'k0003', NULL) ORDER BY id;
-- Ordered range scans (text ranges: the column's collation is "C").
EXPLAIN (COSTS OFF) SELECT * FROM read_t WHERE id BETWEEN 'k0100' AND 'k0105';
SELECT id FROM read_t WHERE id BETWEEN 'k0100' AND 'k0105';
SELECT id FROM read_t WHERE id > 'k0997';
SELECT id FROM read_t WHERE id < 'k0003';
SELECT count(*) FROM read_t WHERE id >= 'k0500' AND id < 'k0600';
-- Under another collation bytes do not order like the text: no range pushdown, filter instead.
EXPLAIN (COSTS OFF) SELECT * FROM read_t WHERE id COLLATE "en-x-icu" > 'k0997';
-- LIKE 'prefix%' and ^@: a prefix scan, the LIKE rechecked.
EXPLAIN (COSTS OFF) SELECT * FROM read_t WHERE id LIKE 'k099%';
SELECT id FROM read_t WHERE id LIKE 'k099%';
SELECT id FROM read_t WHERE id LIKE 'k09_0' ORDER BY id;
SELECT id FROM read_t WHERE id ^@ 'k100';
-- Anything else: a full scan with a local filter.
EXPLAIN (COSTS OFF) SELECT * FROM read_t WHERE n % 250 = 0;
SELECT id FROM read_t WHERE n % 250 = 0;
-- Prepared statements keep the pushdown in generic plans.
PREPARE p_point(text) AS SELECT n FROM read_t WHERE id = $1;
PREPARE p_any(text[]) AS SELECT count(*) FROM read_t WHERE id = ANY ($1);
PREPARE p_range(text, text) AS SELECT count(*) FROM read_t WHERE id >= $1 AND id < $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE p_point('k0007');
EXECUTE p_point('k0007');
EXPLAIN (COSTS OFF) EXECUTE p_any(ARRAY['k0007', 'k0008']);
EXECUTE p_any(ARRAY['k0007', 'k0008']);
EXPLAIN (COSTS OFF) EXECUTE p_range('k0010', 'k0020');
EXECUTE p_range('k0010', 'k0020');
RESET plan_cache_mode;
-- Join lookups: a nested loop doing one point lookup per outer row.
CREATE TABLE read_heap (ref text, w int);
INSERT INTO read_heap SELECT 'k' || lpad((i * 7)::text, 4, '0'), i FROM generate_series(1, 100) i;
ANALYZE read_heap;
EXPLAIN (COSTS OFF) SELECT h.w, r.n FROM read_heap h JOIN read_t r ON r.id = h.ref;
SELECT count(*), sum(r.n) FROM read_heap h JOIN read_t r ON r.id = h.ref;
EXPLAIN (COSTS OFF) SELECT h.w, r.n FROM read_heap h LEFT JOIN read_t r ON r.id = h.ref || 'x';
SELECT count(*) FILTER (WHERE r.id IS NULL) FROM read_heap h LEFT JOIN read_t r ON r.id = h.ref || 'x';
-- Rescans: correlated subqueries and LATERAL.
SELECT h.w, (SELECT n FROM read_t WHERE id = h.ref) FROM read_heap h ORDER BY h.w LIMIT 3;
SELECT h.w, x.cnt FROM read_heap h,
  LATERAL (SELECT count(*) AS cnt FROM read_t WHERE id LIKE substr(h.ref, 1, 4) || '%') x
  ORDER BY h.w LIMIT 3;
-- Composite keys: equality on a leading column is a prefix scan; on all columns a point lookup.
CREATE FOREIGN TABLE read_c (tenant text, seq int, v text) SERVER read_kv OPTIONS (key 'tenant, seq');
INSERT INTO read_c SELECT 't' || (i % 3), i, 'v' || i FROM generate_series(-5, 20) i;
EXPLAIN (COSTS OFF) SELECT * FROM read_c WHERE tenant = 't1';
SELECT seq FROM read_c WHERE tenant = 't1';
EXPLAIN (COSTS OFF) SELECT * FROM read_c WHERE tenant = 't2' AND seq = 5;
SELECT * FROM read_c WHERE tenant = 't2' AND seq = 5;
SELECT tenant, min(seq), max(seq), count(*) FROM read_c GROUP BY tenant ORDER BY tenant;
-- Integer keys compared with a narrower integer (an int literal against a bigint key) keep the
-- pushdown, constants and parameters alike; a wider value than the key is a local filter.
CREATE FOREIGN TABLE read_big (id bigint, v text) SERVER read_kv OPTIONS (key 'id');
INSERT INTO read_big SELECT i, 'v' || i FROM generate_series(1, 5) i;
EXPLAIN (COSTS OFF) SELECT * FROM read_big WHERE id = 3;
SELECT * FROM read_big WHERE id = 3;
EXPLAIN (COSTS OFF) SELECT * FROM read_big WHERE id > 3::smallint;
SELECT * FROM read_big WHERE id > 3::smallint;
PREPARE big_by_int(int) AS SELECT v FROM read_big WHERE id = $1;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE big_by_int(2);
EXECUTE big_by_int(2);
RESET plan_cache_mode;
CREATE FOREIGN TABLE read_int (id int, v text) SERVER read_kv OPTIONS (key 'id');
INSERT INTO read_int VALUES (1, 'one');
EXPLAIN (COSTS OFF) SELECT * FROM read_int WHERE id = 5000000000;
SELECT * FROM read_int WHERE id = 5000000000;
DROP TABLE read_heap;
DROP SERVER read_kv CASCADE;
