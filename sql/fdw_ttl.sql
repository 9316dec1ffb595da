-- Row lifetimes: the table's ttl, and a row's own expiry from its expire column.
CREATE SERVER ttl_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE ttl_short (k int, v text) SERVER ttl_kv OPTIONS (key 'k', ttl '1 second');
INSERT INTO ttl_short VALUES (1, 'soon gone');
SELECT * FROM ttl_short;
SELECT pg_sleep(1.2);
SELECT * FROM ttl_short;
SELECT * FROM ttl_short WHERE k = 1;
-- Once expired, the key can be inserted again.
INSERT INTO ttl_short VALUES (1, 'again');
SELECT * FROM ttl_short;
CREATE FOREIGN TABLE sessions (sid uuid, data text, expires_at timestamptz)
  SERVER ttl_kv OPTIONS (key 'sid', expire_column 'expires_at', ttl '1 hour');
INSERT INTO sessions VALUES
  ('00000000-0000-0000-0000-000000000001', 'expired', now() - interval '1 minute'),
  ('00000000-0000-0000-0000-000000000002', 'expires later', now() + interval '1 day'),
  ('00000000-0000-0000-0000-000000000003', 'table ttl', NULL);
SELECT sid, data FROM sessions ORDER BY sid;
-- Changing the expire column changes the row's lifetime.
UPDATE sessions SET expires_at = now() - interval '1 second'
  WHERE sid = '00000000-0000-0000-0000-000000000002';
SELECT sid, data FROM sessions ORDER BY sid;
-- An expired row is invisible inside the writing transaction too.
BEGIN;
INSERT INTO sessions VALUES ('00000000-0000-0000-0000-000000000004', 'born dead', '-infinity');
SELECT count(*) FROM sessions WHERE sid = '00000000-0000-0000-0000-000000000004';
COMMIT;
DROP SERVER ttl_kv CASCADE;
