-- Privileges on foreign KV tables behave as on any table.
CREATE SERVER priv_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE priv_t (k text, v int) SERVER priv_kv OPTIONS (key 'k');
INSERT INTO priv_t VALUES ('a', 1);
CREATE ROLE regress_kv_reader;
CREATE ROLE regress_kv_writer;
GRANT SELECT ON priv_t TO regress_kv_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON priv_t TO regress_kv_writer;
SET ROLE regress_kv_reader;
SELECT * FROM priv_t;
INSERT INTO priv_t VALUES ('b', 2);
UPDATE priv_t SET v = 2;
DELETE FROM priv_t;
TRUNCATE priv_t;
SELECT eloqkv.upsert('priv_t', ROW('c', 3)::priv_t);
RESET ROLE;
SET ROLE regress_kv_writer;
INSERT INTO priv_t VALUES ('b', 2);
UPDATE priv_t SET v = v + 10 WHERE k = 'b';
SELECT eloqkv.upsert('priv_t', ROW('c', 3)::priv_t);
SELECT * FROM priv_t ORDER BY k;
TRUNCATE priv_t;
RESET ROLE;
REVOKE SELECT ON priv_t FROM regress_kv_reader;
SET ROLE regress_kv_reader;
SELECT * FROM priv_t;
RESET ROLE;
-- Column privileges.
GRANT SELECT (k) ON priv_t TO regress_kv_reader;
SET ROLE regress_kv_reader;
SELECT k FROM priv_t ORDER BY k;
SELECT v FROM priv_t;
RESET ROLE;
-- Only a superuser may name a data directory on a server, and only the engine's own.
GRANT USAGE ON FOREIGN DATA WRAPPER eloqkv_fdw TO regress_kv_writer;
SET ROLE regress_kv_writer;
CREATE SERVER priv_dir FOREIGN DATA WRAPPER eloqkv_fdw OPTIONS (data_directory '/tmp');
CREATE SERVER priv_plain FOREIGN DATA WRAPPER eloqkv_fdw;
DROP SERVER priv_plain;
RESET ROLE;
CREATE SERVER priv_dir FOREIGN DATA WRAPPER eloqkv_fdw OPTIONS (data_directory '/tmp');
DO $$
BEGIN
  EXECUTE format('CREATE SERVER priv_dir FOREIGN DATA WRAPPER eloqkv_fdw OPTIONS (data_directory %L)',
                 current_setting('data_directory') || '/eloqkv');
END $$;
DROP SERVER priv_dir;
-- A shared keyspace gives a new table every row of the other: only the owner's roles may.
CREATE ROLE regress_kv_owner;
GRANT USAGE ON FOREIGN SERVER priv_kv TO regress_kv_owner, regress_kv_writer;
GRANT CREATE ON SCHEMA public TO regress_kv_owner, regress_kv_writer;
SET ROLE regress_kv_owner;
CREATE FOREIGN TABLE priv_shared (k int, v text) SERVER priv_kv OPTIONS (key 'k', shared 'true');
INSERT INTO priv_shared VALUES (1, 'owner''s row');
SET ROLE regress_kv_writer;
CREATE FOREIGN TABLE priv_steal (k int, v text) SERVER priv_kv
  OPTIONS (key 'k', keyspace 'priv_shared', shared 'true');
CREATE FOREIGN TABLE priv_steal (k int, v text) SERVER priv_kv
  OPTIONS (key 'k', keyspace 'priv_shared');
RESET ROLE;
GRANT regress_kv_owner TO regress_kv_writer;
SET ROLE regress_kv_writer;
CREATE FOREIGN TABLE priv_shared_too (k int, v text) SERVER priv_kv
  OPTIONS (key 'k', keyspace 'priv_shared', shared 'true');
SELECT * FROM priv_shared_too;
RESET ROLE;
DROP FOREIGN TABLE priv_shared_too, priv_shared;
REVOKE CREATE ON SCHEMA public FROM regress_kv_owner, regress_kv_writer;
REVOKE USAGE ON FOREIGN SERVER priv_kv FROM regress_kv_owner, regress_kv_writer;
DROP ROLE regress_kv_owner;
-- Keyspaces belong to a database: a table in another database that names this one's keyspace
-- gets a keyspace of its own, and keyspace_stats() shows only this database's keyspaces.
CREATE FOREIGN TABLE priv_secret (k int, v text) SERVER priv_kv OPTIONS (key 'k');
INSERT INTO priv_secret VALUES (1, 'secret');
SELECT current_database() AS home \gset
CREATE DATABASE regress_kv_other;
\c regress_kv_other
CREATE EXTENSION eloqkv_fdw;
CREATE SERVER other_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE stolen (k int, v text) SERVER other_kv OPTIONS (key 'k', keyspace 'priv_secret');
SELECT * FROM stolen;
INSERT INTO stolen VALUES (2, 'mine');
SELECT eloqkv.table_keyspace('stolen');
SELECT name, keys FROM eloqkv.keyspace_stats() WHERE name LIKE 'priv%';
DROP FOREIGN TABLE stolen;
\c :home
SELECT * FROM priv_secret;
SELECT name, keys FROM eloqkv.keyspace_stats() WHERE name LIKE 'priv_s%';
DROP DATABASE regress_kv_other;
DROP FOREIGN TABLE priv_secret;
REVOKE USAGE ON FOREIGN DATA WRAPPER eloqkv_fdw FROM regress_kv_writer;
DROP SERVER priv_kv CASCADE;
DROP ROLE regress_kv_reader;
DROP ROLE regress_kv_writer;
