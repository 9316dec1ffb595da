-- Read-through caches over heap tables: create_cache, hits, misses, negative entries,
-- invalidation (explicit and by trigger, at commit only), expiry, and every error users meet.
CREATE TABLE cache_users (id int PRIMARY KEY, name text NOT NULL, plan text);
INSERT INTO cache_users SELECT g, 'user' || g, CASE WHEN g % 2 = 0 THEN 'pro' END
  FROM generate_series(1, 20) g;
CREATE SEQUENCE cache_source_runs;
CREATE FUNCTION cache_user(k int) RETURNS TABLE (id int, name text, plan text)
  LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM nextval('cache_source_runs');
    RETURN QUERY SELECT u.id, u.name, u.plan FROM cache_users u WHERE u.id = k;
  END $$;
CREATE FUNCTION source_runs() RETURNS bigint LANGUAGE sql AS
  $$ SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM cache_source_runs $$;

SELECT eloqkv.create_cache('user_cache', 'SELECT id, name, plan FROM cache_user($1)');
\d user_cache

-- A miss runs the source once; the hit after it does not.
SELECT * FROM user_cache WHERE id = 3;
SELECT * FROM user_cache WHERE id = 3;
SELECT source_runs();
-- A missing row is cached too (negative entry): the second lookup runs nothing.
SELECT * FROM user_cache WHERE id = 999;
SELECT * FROM user_cache WHERE id = 999;
SELECT source_runs();
-- = ANY reads each key through the cache; a scan shows what is cached, never negative entries.
SELECT * FROM user_cache WHERE id = ANY (ARRAY[1, 3, 999, 4]) ORDER BY id;
SELECT source_runs();
SELECT * FROM user_cache ORDER BY id;
ANALYZE user_cache;  -- samples filled rows, skips negative entries
SELECT hits, misses, fills, negative_hits, lease_waits, invalidations
  FROM eloqkv.cache_stats WHERE cache = 'user_cache'::regclass;
-- Parameterized lookups (a join) go through the cache too.
SELECT u.id, c.name FROM cache_users u JOIN user_cache c ON c.id = u.id WHERE u.id IN (3, 5)
 ORDER BY u.id;
SELECT source_runs();

-- Invalidation: applied when the transaction commits, dropped when it rolls back.
UPDATE cache_users SET name = 'renamed' WHERE id = 3;
SELECT name FROM user_cache WHERE id = 3;
BEGIN;
SELECT eloqkv.invalidate('user_cache', 3);
SELECT name FROM user_cache WHERE id = 3;
ROLLBACK;
SELECT name FROM user_cache WHERE id = 3;
BEGIN;
SELECT eloqkv.invalidate('user_cache', 3);
SAVEPOINT s;
SELECT eloqkv.invalidate('user_cache', 4);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT name FROM user_cache WHERE id = 3;
SELECT source_runs();
-- Key given as text is converted to the key's type; 999's negative entry goes too.
SELECT eloqkv.invalidate('user_cache', '999');
INSERT INTO cache_users VALUES (999, 'late', NULL);
SELECT * FROM user_cache WHERE id = 999;
SELECT eloqkv.invalidate_all('user_cache');
SELECT count(*) FROM user_cache;

-- Triggers: every change of a source row invalidates its key(s), at commit.
SELECT eloqkv.invalidate_on_change('user_cache', 'cache_users', 'id');
SELECT * FROM user_cache WHERE id IN (5, 6) ORDER BY id;
UPDATE cache_users SET plan = 'gold' WHERE id = 5;
UPDATE cache_users SET id = 60 WHERE id = 6;
SELECT * FROM user_cache WHERE id IN (5, 6, 60) ORDER BY id;
DELETE FROM cache_users WHERE id = 5;
SELECT * FROM user_cache WHERE id = 5;
BEGIN;
INSERT INTO cache_users VALUES (5, 'back', NULL);
SELECT * FROM user_cache WHERE id = 5;  -- not yet: the insert has not committed
COMMIT;
SELECT * FROM user_cache WHERE id = 5;
TRUNCATE cache_users;
SELECT count(*) FROM user_cache;
SELECT * FROM user_cache WHERE id = 60;

-- Expiry: rows after ttl, negative entries after negative_ttl.
INSERT INTO cache_users VALUES (1, 'one', NULL);
SELECT eloqkv.create_cache('short_cache', 'SELECT id, name FROM cache_users WHERE id = $1',
                           ttl => '200 milliseconds', negative_ttl => '100 milliseconds');
SELECT * FROM short_cache WHERE id IN (1, 2) ORDER BY id;
UPDATE cache_users SET name = 'uno' WHERE id = 1;
INSERT INTO cache_users VALUES (2, 'two', NULL);
SELECT * FROM short_cache WHERE id IN (1, 2) ORDER BY id;
SELECT pg_sleep(0.3);
SELECT * FROM short_cache WHERE id IN (1, 2) ORDER BY id;

-- Tags: invalidate_tag drops every row with one tag (here: a plan), at commit.
INSERT INTO cache_users VALUES (10, 'ten', 'pro'), (11, 'eleven', 'pro'), (12, 'twelve', 'free');
SELECT eloqkv.create_cache('plan_cache', 'SELECT id, name, plan FROM cache_users WHERE id = $1',
                           tag => 'plan');
SELECT * FROM plan_cache WHERE id IN (10, 11, 12) ORDER BY id;
UPDATE cache_users SET name = upper(name) WHERE id IN (10, 11, 12);
BEGIN;
SELECT eloqkv.invalidate_tag('plan_cache', 'pro');
SELECT * FROM plan_cache WHERE id IN (10, 11, 12) ORDER BY id;
COMMIT;
SELECT * FROM plan_cache WHERE id IN (10, 11, 12) ORDER BY id;
SELECT eloqkv.invalidate_tag('plan_cache', 'free');
SELECT eloqkv.invalidate_tag('plan_cache', 'nobody has this tag');
SELECT * FROM plan_cache WHERE id IN (10, 11, 12) ORDER BY id;
SELECT eloqkv.invalidate_tag('user_cache', 'pro');
SELECT eloqkv.invalidate_tag('plan_cache', NULL);
SELECT eloqkv.create_cache('bad_tag', 'SELECT id, name FROM cache_users WHERE id = $1', tag => 'nope');
SELECT eloqkv.create_cache('bad_tag', 'SELECT id, name FROM cache_users WHERE id = $1', tag => 'id');
DROP FOREIGN TABLE plan_cache;
SELECT count(*) FROM eloqkv.keyspace_stats() WHERE name LIKE '@tags:%plan_cache';

-- A cache is filled by its source only.
INSERT INTO user_cache VALUES (1, 'x', NULL);
UPDATE user_cache SET name = 'x';
DELETE FROM user_cache;
TRUNCATE user_cache;
SELECT eloqkv.upsert('user_cache', ROW(1, 'x', NULL)::user_cache);

-- Bad input.
SELECT eloqkv.create_cache(NULL, 'SELECT 1');
SELECT eloqkv.create_cache('c1', 'SELECT id FROM cache_users');
SELECT eloqkv.create_cache('c2', 'SELECT id FROM cache_users WHERE id = $1 AND name = $2');
SELECT eloqkv.create_cache('c3', 'SELECT id, name FROM cache_users WHERE name = $1', key => 'id');
SELECT eloqkv.create_cache('c4', 'DELETE FROM cache_users WHERE id = $1');
SELECT eloqkv.create_cache('c5', 'SELECT id FROM cache_users WHERE id = $1; SELECT 1');
SELECT eloqkv.create_cache('c6', 'SELECT id, name FROM cache_users WHERE id = $1', key => 'nope');
SELECT eloqkv.create_cache('c7', 'SELECT id, id FROM cache_users WHERE id = $1');
SELECT eloqkv.create_cache('c8', 'SELECT id FROM cache_users WHERE id = $1', ttl => '-1 s');
SELECT eloqkv.create_cache('c9', 'SELECT id FROM no_such_table WHERE id = $1');
SELECT eloqkv.create_cache('c10', 'SELECT id FROM cache_users WHERE id = $1 FOR UPDATE');
SELECT eloqkv.invalidate('user_cache', 'abc');
SELECT eloqkv.invalidate('user_cache', 3::bigint);
SELECT eloqkv.invalidate('user_cache', NULL::int);
SELECT eloqkv.invalidate('cache_users', 3);
SELECT eloqkv.invalidate_all(NULL);
SELECT eloqkv.invalidate_on_change('user_cache', 'cache_users', 'nope');
SELECT eloqkv.invalidate_on_change('user_cache', 'cache_users', 'name');
SELECT eloqkv.invalidate_on_change('cache_users', 'cache_users', 'id');
-- A table made by hand must agree with its source.
CREATE FOREIGN TABLE hand_cache (id int, name text) SERVER eloqkv_cache
  OPTIONS (key 'id', cache_source 'SELECT id, name, plan FROM cache_users WHERE id = $1');
SELECT * FROM hand_cache WHERE id = 1;
ALTER FOREIGN TABLE hand_cache OPTIONS (SET cache_source 'SELECT id, plan AS name FROM cache_users WHERE id = $1');
SELECT * FROM hand_cache WHERE id = 1;
ALTER FOREIGN TABLE hand_cache OPTIONS (SET cache_source 'SELECT id::bigint AS id, name FROM cache_users WHERE id = $1');
SELECT * FROM hand_cache WHERE id = 2;
ALTER FOREIGN TABLE hand_cache OPTIONS (SET cache_source 'SELECT id, name FROM cache_users WHERE id = $1::bigint');
SELECT * FROM hand_cache WHERE id = 2;
ALTER FOREIGN TABLE hand_cache OPTIONS (SET cache_source 'SELECT id, name FROM cache_users WHERE id = $1');
SELECT * FROM hand_cache WHERE id = 2;
-- A source that can return two rows for one key fails the read and caches nothing.
ALTER FOREIGN TABLE hand_cache OPTIONS (SET cache_source 'SELECT id, name FROM cache_users WHERE id >= $1');
SELECT * FROM hand_cache WHERE id = 0;
SELECT * FROM hand_cache ORDER BY id;
CREATE FOREIGN TABLE two_key_cache (a int, b int) SERVER eloqkv_cache
  OPTIONS (key 'a, b', cache_source 'SELECT $1 AS a, 1 AS b');
SELECT * FROM two_key_cache WHERE a = 1 AND b = 1;
CREATE FOREIGN TABLE opt_cache (a int) SERVER eloqkv_cache
  OPTIONS (key 'a', cache_source '', stale_ttl '-1 s');
CREATE FOREIGN TABLE opt_cache (a int) SERVER eloqkv_cache
  OPTIONS (key 'a', cache_source 'SELECT $1::int AS a', lease_timeout '0');
-- The source runs with the reader's privileges.
CREATE ROLE cache_reader;
GRANT SELECT ON user_cache TO cache_reader;
GRANT USAGE ON SEQUENCE cache_source_runs TO cache_reader;
INSERT INTO cache_users VALUES (7, 'seven', NULL);
SET ROLE cache_reader;
SELECT * FROM user_cache WHERE id = 7;
RESET ROLE;
SELECT * FROM user_cache WHERE id = 7;
SET ROLE cache_reader;
SELECT * FROM user_cache WHERE id = 7;
RESET ROLE;

-- The source resolves its names with the search_path create_cache saw: a reader's temporary
-- table of the same name changes nothing.
CREATE TEMP TABLE cache_users (id int, name text, plan text);
INSERT INTO cache_users VALUES (2, 'impostor', NULL);
SELECT eloqkv.invalidate('user_cache', 2);  -- a miss: the source runs
SELECT name FROM user_cache WHERE id = 2;
SELECT misses > 0 AS source_ran FROM eloqkv.cache_stats WHERE cache = 'user_cache'::regclass;
DROP TABLE pg_temp.cache_users;

-- A reader whose transaction changed the source sees its own change, which is not cached.
BEGIN;
UPDATE cache_users SET name = 'uncommitted' WHERE id = 12;
SELECT name FROM user_cache WHERE id = 12;
ROLLBACK;
SELECT name FROM user_cache WHERE id = 12;

-- Many keys at once: each key is read (and filled) in its own call, the keys outlive them.
SELECT count(*), sum(id) FROM user_cache WHERE id = ANY (ARRAY(SELECT generate_series(1, 600)));
SELECT count(*), sum(id) FROM user_cache WHERE id = ANY (ARRAY(SELECT generate_series(1, 600)));

DROP FOREIGN TABLE user_cache, short_cache, hand_cache;
DROP TABLE cache_users;
DROP FUNCTION cache_user(int), source_runs();
REVOKE ALL ON SEQUENCE cache_source_runs FROM cache_reader;
DROP SEQUENCE cache_source_runs;
DROP ROLE cache_reader;
DROP SERVER eloqkv_cache;
