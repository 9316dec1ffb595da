-- Every function of the extension with NULL, empty, huge and wrong-type arguments: each gets a
-- clear error (or, for STRICT functions, NULL) and changes nothing.
CREATE SERVER hostile_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE hostile_t (id int, v text) SERVER hostile_kv OPTIONS (key 'id');
INSERT INTO hostile_t VALUES (1, 'one');
CREATE TABLE hostile_heap (id int PRIMARY KEY, v text);
INSERT INTO hostile_heap VALUES (1, 'one');
SELECT eloqkv.create_cache('hostile_cache', 'SELECT id, v FROM hostile_heap WHERE id = $1');

-- Tables and keyspaces.
SELECT eloqkv.table_keyspace(NULL);
SELECT eloqkv.table_keyspace('hostile_heap');
SELECT eloqkv.table_keyspace(0);
SELECT count(*) FROM eloqkv.keyspace_stats() WHERE name IS NULL;

-- upsert: NULL, a heap table, a row of another type, a NULL key.
SELECT eloqkv.upsert(NULL, ROW(2, 'x')::hostile_t);
SELECT eloqkv.upsert('hostile_t', NULL::hostile_t);
SELECT eloqkv.upsert('hostile_heap', ROW(2, 'x')::hostile_heap);
SELECT eloqkv.upsert('hostile_t', ROW(2, 'x')::hostile_heap);
SELECT eloqkv.upsert('hostile_t', ROW(NULL, 'x')::hostile_t);
SELECT eloqkv.upsert('hostile_t', ROW(3, repeat('h', 70000000))::hostile_t);
SELECT * FROM hostile_t ORDER BY id;

-- RESP users.
SELECT eloqkv.create_resp_user(NULL, 'pw', 'pg_monitor');
SELECT eloqkv.create_resp_user('u', NULL, 'pg_monitor');
SELECT eloqkv.create_resp_user('u', 'pw', NULL);
SELECT eloqkv.create_resp_user('', 'pw', 'pg_monitor');
SELECT eloqkv.create_resp_user('u', '', 'pg_monitor');
SELECT eloqkv.create_resp_user('default', 'pw', 'pg_monitor');
SELECT eloqkv.create_resp_user(repeat('n', 100000), 'pw', 'pg_monitor');
SELECT eloqkv.create_resp_user('has space', 'pw', 'pg_monitor');
SELECT eloqkv.create_resp_user('u', 'pw', 'no_such_role');
SELECT eloqkv.drop_resp_user(NULL);
SELECT eloqkv.drop_resp_user('');
SELECT eloqkv.drop_resp_user('nobody');
SELECT count(*) FROM eloqkv.resp_users();

-- Caches.
SELECT * FROM eloqkv.analyze_cache_source(NULL, 'SELECT 1 WHERE $1 = 1');
SELECT * FROM eloqkv.analyze_cache_source('c', NULL);
SELECT * FROM eloqkv.analyze_cache_source('c', '');
SELECT * FROM eloqkv.analyze_cache_source('c', 'SELECT 1; SELECT 2');
SELECT * FROM eloqkv.analyze_cache_source('c', 'DELETE FROM hostile_heap WHERE id = $1');
SELECT eloqkv.create_cache(NULL, 'SELECT id FROM hostile_heap WHERE id = $1');
SELECT eloqkv.create_cache('', 'SELECT id FROM hostile_heap WHERE id = $1');
SELECT eloqkv.create_cache('c2', 'SELECT id FROM hostile_heap WHERE id = $1', ttl => '-1 s');
SELECT eloqkv.create_cache('c2', 'SELECT id FROM hostile_heap WHERE id = $1', ttl => NULL);
SELECT eloqkv.create_cache('c3', 'SELECT id FROM hostile_heap WHERE id = $1',
                           lease_timeout => '0');
SELECT eloqkv.invalidate(NULL::regclass, 1);
SELECT eloqkv.invalidate('hostile_cache', NULL::int);
SELECT eloqkv.invalidate('hostile_cache', 'not a number'::text);
SELECT eloqkv.invalidate('hostile_cache', 1.5::numeric);
SELECT eloqkv.invalidate('hostile_heap', 1);
SELECT eloqkv.invalidate('hostile_t', 1);
SELECT eloqkv.invalidate_all(NULL);
SELECT eloqkv.invalidate_all('hostile_heap');
SELECT eloqkv.invalidate_tag('hostile_cache', NULL);
SELECT eloqkv.invalidate_tag('hostile_cache', 'x');
SELECT eloqkv.invalidate_on_change(NULL, 'hostile_heap', 'id');
SELECT eloqkv.invalidate_on_change('hostile_cache', 'hostile_heap', NULL);
SELECT eloqkv.invalidate_on_change('hostile_cache', 'hostile_heap', 'nope');
SELECT eloqkv.invalidate_on_change('hostile_cache', 'hostile_heap', 'v');
SELECT eloqkv.invalidate_on_change('hostile_cache', 'hostile_t', 'id');
SELECT count(*) FROM eloqkv.cache_stats WHERE cache = 'hostile_cache'::regclass;

-- Mirrors.
CALL eloqkv.create_mirror(NULL, 'id');
CALL eloqkv.create_mirror('hostile_heap', NULL);
CALL eloqkv.create_mirror('hostile_heap', 'nope');
CALL eloqkv.create_mirror('hostile_heap', 'id', chunk_rows => 0);
CALL eloqkv.create_mirror('hostile_t', 'id');
SELECT * FROM eloqkv.verify_mirror(NULL);
SELECT * FROM eloqkv.verify_mirror('hostile_heap');
SELECT eloqkv.drop_mirror(NULL);
SELECT eloqkv.drop_mirror('hostile_heap');
SELECT * FROM eloqkv.mirror_copy_chunk(NULL, NULL, 10);
SELECT * FROM eloqkv.mirror_copy_chunk('hostile_t', NULL, -1);

-- Nothing above changed the data.
SELECT * FROM hostile_t ORDER BY id;
SELECT * FROM hostile_cache WHERE id = 1;
DROP FOREIGN TABLE hostile_cache;
DROP FOREIGN TABLE c2;
DROP FOREIGN TABLE hostile_t;
DROP TABLE hostile_heap;
DROP SERVER hostile_kv;
