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
REVOKE USAGE ON FOREIGN DATA WRAPPER eloqkv_fdw FROM regress_kv_writer;
DROP SERVER priv_kv CASCADE;
DROP ROLE regress_kv_reader;
DROP ROLE regress_kv_writer;
