-- Demo data for scripts/run.sh, loaded into the database eloqkv_demo after
-- CREATE EXTENSION eloqkv_fdw. scripts/test.sh loads it too (into a scratch database), so it
-- must stay valid. Everything lives in the schema "demo".
CREATE SCHEMA demo;
CREATE SERVER demo_kv FOREIGN DATA WRAPPER eloqkv_fdw;

-- Agent state: one point lookup per read, no heap, no MVCC copies on update.
CREATE FOREIGN TABLE demo.agent_state (agent_id text, state jsonb, updated_at timestamptz)
  SERVER demo_kv OPTIONS (key 'agent_id', resp_prefix 'agent:');  -- rows also served over RESP
INSERT INTO demo.agent_state
  SELECT 'a-' || i, jsonb_build_object('step', i % 7, 'goal', 'demo'), now()
  FROM generate_series(1, 100) i;

-- Sessions that expire by themselves: a table ttl, and a per-row expire column.
CREATE FOREIGN TABLE demo.sessions (sid uuid, user_id int, expires_at timestamptz)
  SERVER demo_kv OPTIONS (key 'sid', expire_column 'expires_at', ttl '1 day');
INSERT INTO demo.sessions
  SELECT md5('session' || i)::uuid, i, now() + interval '1 hour'
  FROM generate_series(1, 10) i;

-- A heap table the application keeps, with a read-through cache in front of it (a miss storm
-- on one key runs one query) and a full mirror (never a miss). docs/cache.md.
CREATE TABLE demo.users (id int PRIMARY KEY, name text NOT NULL, plan text NOT NULL);
INSERT INTO demo.users
  SELECT i, 'user ' || i, (ARRAY['free', 'pro', 'team'])[1 + i % 3] FROM generate_series(1, 1000) i;
SELECT eloqkv.create_cache('demo.user_cache', 'SELECT id, name, plan FROM demo.users WHERE id = $1',
                           ttl => '5 minutes', tag => 'plan', resp_prefix => 'user:');
SELECT eloqkv.invalidate_on_change('demo.user_cache', 'demo.users', 'id');
CALL eloqkv.create_mirror('demo.users', 'id');

-- Try:
--   SELECT * FROM demo.user_cache WHERE id = 42;     -- a miss, then hits
--   UPDATE demo.users SET plan = 'team' WHERE id = 42;  -- invalidates key 42 at commit
--   SELECT * FROM eloqkv.cache_stats;
--   SELECT * FROM demo.users_mirror WHERE plan = 'pro' LIMIT 5;
--   SELECT state FROM demo.agent_state WHERE agent_id = 'a-42';
--   EXPLAIN ANALYZE SELECT * FROM demo.agent_state WHERE agent_id = 'a-42';
--   UPDATE demo.agent_state SET state = state || '{"step": 8}', updated_at = now()
--     WHERE agent_id = 'a-42';
--   SELECT * FROM eloqkv.stats;
--   SELECT * FROM eloqkv.engine;   -- the engine: state, I/O mode, memory and disk use
