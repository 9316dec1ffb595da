-- Full-cache mirrors: backfill with progress, write-through at commit, verification, errors.
CREATE TABLE mirror_accounts (id int PRIMARY KEY, owner text NOT NULL, balance numeric,
                              opened date, note text);
INSERT INTO mirror_accounts
  SELECT g, 'owner' || g, g * 1.5, date '2026-01-01' + g, NULL FROM generate_series(1, 1000) g;
CALL eloqkv.create_mirror('mirror_accounts', 'id', chunk_rows => 150);
SELECT mirror, source, state, rows_copied, rows_total, percent FROM eloqkv.mirror_progress;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'mirror_accounts_mirror'::regclass AND attnum > 0 ORDER BY attnum;
SELECT option_name, CASE WHEN option_name = 'mirror_of'
                         THEN (option_value::oid = 'mirror_accounts'::regclass)::text
                         ELSE option_value END
  FROM pg_foreign_table, pg_options_to_table(ftoptions)
 WHERE ftrelid = 'mirror_accounts_mirror'::regclass;
SELECT count(*), sum(balance) FROM mirror_accounts_mirror;
SELECT * FROM mirror_accounts_mirror WHERE id = 7;
SELECT * FROM eloqkv.verify_mirror('mirror_accounts');

-- Changes reach the mirror when their transaction commits, never when it rolls back.
BEGIN;
UPDATE mirror_accounts SET balance = 0 WHERE id = 7;
SELECT balance FROM mirror_accounts_mirror WHERE id = 7;
COMMIT;
SELECT balance FROM mirror_accounts_mirror WHERE id = 7;
BEGIN;
DELETE FROM mirror_accounts WHERE id = 7;
ROLLBACK;
SELECT id FROM mirror_accounts_mirror WHERE id = 7;
BEGIN;
INSERT INTO mirror_accounts VALUES (2000, 'new', 1, NULL, 'x');
SAVEPOINT s;
INSERT INTO mirror_accounts VALUES (2001, 'gone', 1, NULL, NULL);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT id, owner FROM mirror_accounts_mirror WHERE id IN (2000, 2001);
UPDATE mirror_accounts SET id = 3000 WHERE id = 8;  -- a key change moves the row
SELECT id, owner FROM mirror_accounts_mirror WHERE id IN (8, 3000) ORDER BY id;
DELETE FROM mirror_accounts WHERE id BETWEEN 10 AND 19;
SELECT count(*) FROM mirror_accounts_mirror WHERE id BETWEEN 10 AND 19;
SELECT * FROM eloqkv.verify_mirror('mirror_accounts');

-- verify_mirror reports what differs (the triggers are disabled to make it differ).
ALTER TABLE mirror_accounts DISABLE TRIGGER USER;
UPDATE mirror_accounts SET note = 'changed' WHERE id = 20;
DELETE FROM mirror_accounts WHERE id = 21;
INSERT INTO mirror_accounts VALUES (4000, 'unseen', NULL, NULL, NULL);
ALTER TABLE mirror_accounts ENABLE TRIGGER USER;
SELECT * FROM eloqkv.verify_mirror('mirror_accounts');

-- A mirror is written by its table only.
INSERT INTO mirror_accounts_mirror VALUES (1, 'x', 1, NULL, NULL);
UPDATE mirror_accounts_mirror SET note = 'x';
TRUNCATE mirror_accounts_mirror;
-- TRUNCATE of the table empties the mirror.
TRUNCATE mirror_accounts;
SELECT count(*) FROM mirror_accounts_mirror;

-- Bad input.
CALL eloqkv.create_mirror('mirror_accounts', 'id');
CALL eloqkv.create_mirror('mirror_accounts', 'owner');
CALL eloqkv.create_mirror('mirror_accounts', 'nope');
CALL eloqkv.create_mirror('mirror_accounts_mirror', 'id');
CALL eloqkv.create_mirror(NULL, 'id');
CALL eloqkv.create_mirror('mirror_accounts', 'id', chunk_rows => 0);
CREATE TABLE mirror_nokey (a int);
CALL eloqkv.create_mirror('mirror_nokey', 'a');
CREATE TABLE mirror_nullable (a int UNIQUE);
CALL eloqkv.create_mirror('mirror_nullable', 'a');
DROP TABLE mirror_nullable;
SELECT * FROM eloqkv.verify_mirror('mirror_nokey');
SELECT eloqkv.drop_mirror('mirror_nokey');
BEGIN;
CALL eloqkv.create_mirror('mirror_nokey', 'a');
ROLLBACK;
CREATE FOREIGN TABLE fake_mirror (a int) SERVER eloqkv_cache OPTIONS (key 'a', mirror_of '0');
CREATE ROLE mirror_user;
SET ROLE mirror_user;
CALL eloqkv.create_mirror('mirror_accounts', 'id');
SELECT eloqkv.drop_mirror('mirror_accounts');
RESET ROLE;
DROP ROLE mirror_user;

-- A mirror does not follow changes to its table's columns: they are refused up front. Other
-- changes go through.
ALTER TABLE mirror_accounts ADD COLUMN added int;
ALTER TABLE mirror_accounts DROP COLUMN note;
ALTER TABLE mirror_accounts ALTER COLUMN balance TYPE float8;
ALTER TABLE mirror_accounts RENAME COLUMN note TO memo;
ALTER TABLE mirror_accounts ADD CONSTRAINT positive CHECK (balance >= 0), SET (fillfactor = 90);
ALTER TABLE mirror_accounts DROP CONSTRAINT positive;
SELECT count(*) FROM information_schema.columns WHERE table_name = 'mirror_accounts';

-- Dropping: eloqkv.drop_mirror removes the triggers; a mirror dropped directly leaves them
-- inert, and writes to the table go on.
SELECT eloqkv.drop_mirror('mirror_accounts');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'mirror_accounts'::regclass;
CALL eloqkv.create_mirror('mirror_accounts', 'id', name => 'acct_copy');
INSERT INTO mirror_accounts VALUES (1, 'one', NULL, NULL, NULL);
SELECT id, owner FROM acct_copy;
DROP FOREIGN TABLE acct_copy;
ALTER TABLE mirror_accounts ADD COLUMN added int;  -- no mirror any more
ALTER TABLE mirror_accounts DROP COLUMN added;
INSERT INTO mirror_accounts VALUES (2, 'two', NULL, NULL, NULL);
SELECT count(*) FROM mirror_accounts;

DROP TABLE mirror_accounts, mirror_nokey;
DELETE FROM eloqkv.mirrors;
DROP SERVER eloqkv_cache;
