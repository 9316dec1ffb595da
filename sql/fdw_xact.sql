-- Writes follow the transaction: visible to it at once, applied at commit, discarded on abort.
CREATE SERVER xact_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE xt (k text COLLATE "C", v int) SERVER xact_kv OPTIONS (key 'k');
INSERT INTO xt VALUES ('base', 0);
BEGIN;
INSERT INTO xt VALUES ('t1', 1), ('t2', 2);
UPDATE xt SET v = 10 WHERE k = 'base';
DELETE FROM xt WHERE k = 't2';
-- Own writes are visible to point lookups, multi-gets and scans.
SELECT * FROM xt WHERE k = 't1';
SELECT * FROM xt WHERE k = 't2';
SELECT * FROM xt WHERE k IN ('base', 't1', 't2') ORDER BY k;
SELECT * FROM xt ORDER BY k;
SELECT * FROM xt WHERE k > 'a' AND k < 'u' ORDER BY k;
ROLLBACK;
SELECT * FROM xt ORDER BY k;
BEGIN;
INSERT INTO xt VALUES ('t1', 1);
UPDATE xt SET v = v + 1 WHERE k = 't1';
COMMIT;
SELECT * FROM xt ORDER BY k;
-- Deleting and re-inserting a key in one transaction; inserting it twice fails like a primary key.
BEGIN;
DELETE FROM xt WHERE k = 't1';
INSERT INTO xt VALUES ('t1', 100);
COMMIT;
SELECT * FROM xt ORDER BY k;
BEGIN;
INSERT INTO xt VALUES ('t3', 3);
INSERT INTO xt VALUES ('t3', 4);
COMMIT;
SELECT * FROM xt ORDER BY k;
-- Savepoints: rolling back to one undoes exactly the KV writes made after it.
BEGIN;
UPDATE xt SET v = 1 WHERE k = 't1';
SAVEPOINT s1;
UPDATE xt SET v = 2 WHERE k = 't1';
INSERT INTO xt VALUES ('s1-only', 1);
TRUNCATE xt;
SELECT count(*) FROM xt;
ROLLBACK TO SAVEPOINT s1;
SELECT * FROM xt ORDER BY k;
SAVEPOINT s2;
INSERT INTO xt VALUES ('kept', 1);
RELEASE SAVEPOINT s2;
COMMIT;
SELECT * FROM xt ORDER BY k;
-- An error inside a PL/pgSQL exception block rolls its writes back, the rest commits.
DO $$
BEGIN
  INSERT INTO xt VALUES ('do-1', 1);
  BEGIN
    INSERT INTO xt VALUES ('do-2', 2);
    INSERT INTO xt VALUES ('do-1', 3);  -- duplicate
  EXCEPTION WHEN unique_violation THEN
    RAISE NOTICE 'caught %', SQLERRM;
  END;
END $$;
SELECT * FROM xt WHERE k LIKE 'do-%' ORDER BY k;
-- A statement does not see the rows it writes itself (no Halloween problem).
UPDATE xt SET k = k || '+' WHERE k LIKE 'do-%';
SELECT * FROM xt WHERE k LIKE 'do-%' ORDER BY k;
-- PREPARE TRANSACTION cannot be honoured once KV rows were written.
BEGIN;
INSERT INTO xt VALUES ('prep', 1);
PREPARE TRANSACTION 'eloqkv_prep';
SELECT count(*) FROM xt WHERE k = 'prep';
SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'eloqkv_prep';
-- Reads alone do not prevent it.
BEGIN;
SELECT count(*) FROM xt;
PREPARE TRANSACTION 'eloqkv_read_only';
COMMIT PREPARED 'eloqkv_read_only';
DROP SERVER xact_kv CASCADE;
