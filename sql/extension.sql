-- The extension creates the eloqkv schema and the eloqkv_fdw wrapper (pg_regress created it).
SELECT extversion FROM pg_extension WHERE extname = 'eloqkv_fdw';
SELECT nspname FROM pg_namespace WHERE nspname = 'eloqkv';
SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc
  FROM pg_foreign_data_wrapper WHERE fdwname = 'eloqkv_fdw';
-- Options are validated; the wrapper itself takes none.
ALTER FOREIGN DATA WRAPPER eloqkv_fdw OPTIONS (bogus 'x');
-- Dropping and re-creating the extension works (the engine keeps running).
DROP EXTENSION eloqkv_fdw;
SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'eloqkv_fdw';
CREATE EXTENSION eloqkv_fdw;
SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'eloqkv_fdw';
