-- The extension creates the eloqkv schema and the eloqkv_fdw wrapper (pg_regress created it).
SELECT e.extname, e.extversion, n.nspname AS schema, e.extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'eloqkv_fdw';
SELECT nspname FROM pg_namespace WHERE nspname = 'eloqkv';
SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc, fdwoptions
  FROM pg_foreign_data_wrapper WHERE fdwname = 'eloqkv_fdw';
-- The core objects belong to the extension (DROP EXTENSION removes them).
SELECT v.member,
       v.member IN (SELECT pg_describe_object(classid, objid, objsubid)
                      FROM pg_depend
                     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
                       AND refobjid = (SELECT oid FROM pg_extension
                                        WHERE extname = 'eloqkv_fdw')) AS in_extension
  FROM (VALUES ('schema eloqkv'),
               ('foreign-data wrapper eloqkv_fdw'),
               ('function eloqkv.eloqkv_fdw_handler()'),
               ('function eloqkv.eloqkv_fdw_validator(text[],oid)'),
               ('function eloqkv.engine_info()'),
               ('function eloqkv.keyspace_stats()'),
               ('view eloqkv.engine'),
               ('function eloqkv.replication_position()'),
               ('function eloqkv.accept_replay_gap()'),
               ('view eloqkv.replication')) AS v(member);
-- eloqkv.accept_replay_gap() is for superusers only; where KV replay never stopped it changes
-- nothing and returns NULL.
SELECT eloqkv.accept_replay_gap() IS NULL AS nothing_to_accept;
CREATE ROLE regress_kv_plain;
SET ROLE regress_kv_plain;
SELECT eloqkv.accept_replay_gap();
RESET ROLE;
DROP ROLE regress_kv_plain;
-- Options are validated: unknown ones are refused on the wrapper, servers and user mappings.
ALTER FOREIGN DATA WRAPPER eloqkv_fdw OPTIONS (bogus 'x');
CREATE SERVER regress_kv FOREIGN DATA WRAPPER eloqkv_fdw OPTIONS (bogus 'x');
CREATE SERVER regress_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_kv OPTIONS (password 'x');
-- The extension cannot be dropped from under a server without CASCADE.
DROP EXTENSION eloqkv_fdw;
DROP SERVER regress_kv;
-- Dropping and re-creating the extension works (the engine keeps running).
DROP EXTENSION eloqkv_fdw;
SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'eloqkv_fdw';
SELECT count(*) FROM pg_namespace WHERE nspname = 'eloqkv';
CREATE EXTENSION eloqkv_fdw;
SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'eloqkv_fdw';
SELECT state FROM eloqkv.engine_info();
