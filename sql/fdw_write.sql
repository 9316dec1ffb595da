-- Writes: INSERT, UPDATE (also of the key), DELETE, RETURNING, COPY, TRUNCATE, conflicts, upsert.
CREATE SERVER write_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE agents (agent_id text, state jsonb, hits int, note text)
  SERVER write_kv OPTIONS (key 'agent_id', batch_size '3');
INSERT INTO agents VALUES ('a1', '{"s": 1}', 0, 'first') RETURNING *;
INSERT INTO agents VALUES ('a2', '{}', 0, NULL), ('a3', '{}', 0, NULL), ('a4', '{}', 0, NULL),
                          ('a5', '{}', 0, NULL);
SELECT agent_id, hits FROM agents ORDER BY agent_id;
-- Duplicates behave like a primary key, and change nothing.
INSERT INTO agents VALUES ('a1', '{}', 9, 'dup');
INSERT INTO agents VALUES ('a6', '{}', 9, NULL), ('a1', '{}', 9, 'dup');
SELECT agent_id, hits, note FROM agents WHERE agent_id IN ('a1', 'a6');
INSERT INTO agents VALUES ('a1', '{}', 9, 'dup'), ('a6', '{}', 6, NULL) ON CONFLICT DO NOTHING
  RETURNING agent_id;
SELECT agent_id, hits, note FROM agents WHERE agent_id IN ('a1', 'a6') ORDER BY 1;
INSERT INTO agents VALUES (NULL, '{}', 0, NULL);
-- UPDATE, RETURNING, and UPDATE of the key (the row moves).
UPDATE agents SET hits = hits + 1, state = state || '{"t": true}' WHERE agent_id = 'a1'
  RETURNING agent_id, state, hits;
UPDATE agents SET hits = 10 WHERE agent_id IN ('a2', 'a3');
UPDATE agents SET hits = hits + 100 WHERE hits = 0;
SELECT agent_id, hits FROM agents ORDER BY agent_id;
UPDATE agents SET agent_id = 'a1-moved' WHERE agent_id = 'a1' RETURNING agent_id, hits;
UPDATE agents SET agent_id = 'a2' WHERE agent_id = 'a3';
SELECT agent_id FROM agents ORDER BY agent_id;
-- DELETE with RETURNING shows the deleted row.
DELETE FROM agents WHERE agent_id = 'a1-moved' RETURNING *;
DELETE FROM agents WHERE hits > 100;
SELECT agent_id, hits FROM agents ORDER BY agent_id;
DELETE FROM agents WHERE agent_id = 'none';
-- eloqkv.upsert writes whether or not the key exists.
SELECT eloqkv.upsert('agents', ROW('a2', '{"up": 1}', 42, 'upserted')::agents);
SELECT eloqkv.upsert('agents', ROW('a9', '{"up": 2}', 43, 'inserted')::agents);
SELECT agent_id, state, hits, note FROM agents WHERE agent_id IN ('a2', 'a9') ORDER BY 1;
SELECT eloqkv.upsert('agents', ROW(NULL, '{}', 0, NULL)::agents);
SELECT eloqkv.upsert('agents', ROW(1, 2)::record);
SELECT eloqkv.upsert('pg_class', ROW('x')::record);
-- COPY FROM.
COPY agents (agent_id, hits) FROM STDIN;
c1	1
c2	2
\.
SELECT agent_id, hits FROM agents WHERE agent_id LIKE 'c%' ORDER BY 1;
COPY agents (agent_id, hits) FROM STDIN;
c3	3
c1	1
\.
SELECT count(*) FROM agents WHERE agent_id = 'c3';
-- Limits: an oversized key or row changes nothing.
INSERT INTO agents VALUES (repeat('k', 4097), '{}', 0, NULL);
INSERT INTO agents VALUES (repeat('k', 4096), '{}', 0, NULL);
SELECT length(agent_id) FROM agents WHERE length(agent_id) > 100;
INSERT INTO agents VALUES ('huge', '{}', 0, repeat('x', 64 * 1024 * 1024 + 1));
SELECT count(*) FROM agents WHERE agent_id = 'huge';
-- Wrong types are caught by Postgres before they reach the engine.
INSERT INTO agents VALUES ('bad', 'not json', 0, NULL);
INSERT INTO agents (agent_id, hits) VALUES ('bad', 'many');
-- TRUNCATE.
SELECT count(*) > 0 FROM agents;
TRUNCATE agents;
SELECT count(*) FROM agents;
INSERT INTO agents VALUES ('after', '{}', 0, NULL);
SELECT agent_id FROM agents;
DROP SERVER write_kv CASCADE;
