-- DDL of eloqkv foreign tables: options, their errors, keyspaces.
CREATE SERVER ddl_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE ddl_agents (agent_id text, state jsonb, hits int, updated_at timestamptz)
  SERVER ddl_kv OPTIONS (key 'agent_id');
SELECT eloqkv.table_keyspace('ddl_agents');
SELECT name, keys FROM eloqkv.keyspace_stats() WHERE name = 'ddl_agents';
-- Every option, with a good and a bad value.
CREATE FOREIGN TABLE ddl_opts (a int, b text, exp timestamptz)
  SERVER ddl_kv OPTIONS (key 'a', keyspace 'ddl custom', ttl '90 minutes', batch_size '500',
                         expire_column 'exp', resp_prefix 'opts:');
SELECT eloqkv.table_keyspace('ddl_opts');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv;
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key 'b');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key '');
CREATE FOREIGN TABLE ddl_bad (a int, b int) SERVER ddl_kv OPTIONS (key 'a, a');
CREATE FOREIGN TABLE ddl_bad (a numeric) SERVER ddl_kv OPTIONS (key 'a');
CREATE FOREIGN TABLE ddl_bad (a text COLLATE "C") SERVER ddl_kv OPTIONS (key 'a', color 'red');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key 'a', ttl 'soon');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key 'a', ttl '-1 hour');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key 'a', batch_size '0');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key 'a', batch_size 'many');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key 'a', shared 'perhaps');
CREATE FOREIGN TABLE ddl_bad (a int, e timestamp) SERVER ddl_kv OPTIONS (key 'a', expire_column 'e');
CREATE FOREIGN TABLE ddl_bad (a int, e timestamptz) SERVER ddl_kv OPTIONS (key 'a', expire_column 'x');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key 'a', keyspace '');
CREATE FOREIGN TABLE ddl_bad (a int) SERVER ddl_kv OPTIONS (key 'a', resp_prefix '');
SELECT count(*) FROM pg_class WHERE relname = 'ddl_bad';
-- Options on the wrapper and servers.
CREATE SERVER ddl_bad_server FOREIGN DATA WRAPPER eloqkv_fdw OPTIONS (key 'a');
CREATE USER MAPPING FOR CURRENT_USER SERVER ddl_kv OPTIONS (user 'x');
-- One keyspace per table, unless both tables ask to share it.
CREATE FOREIGN TABLE ddl_clash (agent_id text) SERVER ddl_kv
  OPTIONS (key 'agent_id', keyspace 'ddl_agents');
CREATE FOREIGN TABLE ddl_share1 (k text, v text) SERVER ddl_kv OPTIONS (key 'k', keyspace 'ddl_shared', shared 'true');
CREATE FOREIGN TABLE ddl_share2 (k text, v text) SERVER ddl_kv OPTIONS (key 'k', keyspace 'ddl_shared', shared 'true');
INSERT INTO ddl_share1 VALUES ('x', 'from share1');
SELECT * FROM ddl_share2;
-- Changes that would orphan stored rows are refused.
ALTER FOREIGN TABLE ddl_agents OPTIONS (SET key 'hits');
ALTER FOREIGN TABLE ddl_agents OPTIONS (ADD keyspace 'elsewhere');
ALTER FOREIGN TABLE ddl_agents ALTER COLUMN agent_id TYPE varchar;
ALTER FOREIGN TABLE ddl_agents DROP COLUMN agent_id;
ALTER FOREIGN TABLE ddl_agents OPTIONS (ADD ttl '1 day');
ALTER FOREIGN TABLE ddl_agents OPTIONS (DROP ttl);
ALTER FOREIGN TABLE ddl_agents ADD COLUMN note text;
-- DROP frees the keyspace (when no other table uses it), at commit.
INSERT INTO ddl_agents VALUES ('a', '{}', 1, now());
BEGIN;
DROP FOREIGN TABLE ddl_agents;
ROLLBACK;
SELECT count(*) FROM ddl_agents;
DROP FOREIGN TABLE ddl_agents;
SELECT count(*) FROM eloqkv.keyspace_stats() WHERE name = 'ddl_agents';
DROP FOREIGN TABLE ddl_share1;
SELECT count(*) FROM eloqkv.keyspace_stats() WHERE name = 'ddl_shared';
DROP FOREIGN TABLE ddl_share2;
SELECT count(*) FROM eloqkv.keyspace_stats() WHERE name = 'ddl_shared';
-- Re-creating a table gives it a fresh, empty keyspace.
CREATE FOREIGN TABLE ddl_agents (agent_id text, state jsonb) SERVER ddl_kv OPTIONS (key 'agent_id');
SELECT count(*) FROM ddl_agents;
-- The keyspace a table was created with is recorded as its option, so renaming the table or
-- moving it to another schema keeps its rows, and the old name stays taken by it.
CREATE FOREIGN TABLE ddl_renamed (k text, v text) SERVER ddl_kv OPTIONS (key 'k');
INSERT INTO ddl_renamed VALUES ('a', 'kept');
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'ddl_renamed'::regclass;
ALTER FOREIGN TABLE ddl_renamed RENAME TO ddl_renamed2;
CREATE SCHEMA ddl_other;
ALTER FOREIGN TABLE ddl_renamed2 SET SCHEMA ddl_other;
SELECT * FROM ddl_other.ddl_renamed2;
CREATE FOREIGN TABLE ddl_renamed (k text, v text) SERVER ddl_kv OPTIONS (key 'k');
ALTER FOREIGN TABLE ddl_other.ddl_renamed2 OPTIONS (DROP keyspace);
DROP SCHEMA ddl_other CASCADE;
DROP SERVER ddl_kv CASCADE;
SELECT count(*) FROM eloqkv.keyspace_stats() WHERE name IN ('ddl_agents', 'ddl custom', 'ddl_renamed');
