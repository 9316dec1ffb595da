-- Column types: any type is stored; key types are order-preserving.
CREATE SERVER types_kv FOREIGN DATA WRAPPER eloqkv_fdw;
CREATE FOREIGN TABLE all_types (
  id bigint, n numeric, i2 smallint, f4 real, f8 double precision, b bool, t text, vc varchar(5),
  ch char(3), by bytea, j json, jb jsonb, u uuid, d date, ts timestamp, tz timestamptz,
  iv interval, arr int[], tarr text[], r int4range, p point, inet_ inet, m money, bits bit(4),
  x xml, en regclass)
  SERVER types_kv OPTIONS (key 'id');
INSERT INTO all_types VALUES (
  1, 12345.678901234567890, -32768, 1.5, 2.25e100, true, 'tëxt', 'abc', 'ab', '\x00ff',
  '{"a": [1, 2]}', '{"b": {"c": null}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-02-28',
  '2026-02-28 12:34:56.789', '2026-02-28 12:34:56.789+02', '1 year 2 days 03:04:05',
  '{1,NULL,3}', '{"x y", z}', '[1,5)', '(1.5,-2)', '10.0.0.1/8', 12.34, B'1010', '<a>b</a>',
  'pg_class');
INSERT INTO all_types (id) VALUES (2);
INSERT INTO all_types (id, t, by, arr) VALUES (3, '', '\x', '{}');
SELECT * FROM all_types ORDER BY id;
-- Large values (stored detoasted, read back whole).
INSERT INTO all_types (id, t, jb) VALUES (4, repeat('long ', 200000), (SELECT jsonb_agg(g) FROM generate_series(1, 10000) g));
SELECT id, length(t), jsonb_array_length(jb) FROM all_types WHERE id = 4;
-- A changed column type is converted through text when rows are read; new columns are NULL.
ALTER FOREIGN TABLE all_types ALTER COLUMN n TYPE text;
ALTER FOREIGN TABLE all_types ADD COLUMN added int;
ALTER FOREIGN TABLE all_types DROP COLUMN f4;
SELECT id, n, pg_typeof(n), added FROM all_types WHERE id IN (1, 2) ORDER BY id;
ALTER FOREIGN TABLE all_types ALTER COLUMN vc TYPE int;
SELECT id, vc FROM all_types WHERE id = 1;
-- Key types, their order, and NULLs.
CREATE FOREIGN TABLE k_int (k int, v text) SERVER types_kv OPTIONS (key 'k');
INSERT INTO k_int VALUES (-2147483648, 'min'), (-1, 'minus one'), (0, 'zero'), (1, 'one'), (2147483647, 'max');
SELECT * FROM k_int;
SELECT * FROM k_int WHERE k > -5 AND k <= 1;
SELECT * FROM k_int WHERE k = -1;
CREATE FOREIGN TABLE k_ts (k timestamptz, v int) SERVER types_kv OPTIONS (key 'k');
INSERT INTO k_ts VALUES ('2026-01-01 00:00+00', 1), ('1999-12-31 23:59+00', 0), ('2026-01-01 00:00:00.000001+00', 2);
SELECT v FROM k_ts WHERE k >= '2000-01-01';
CREATE FOREIGN TABLE k_multi (a bool, b date, c uuid, d bytea, e smallint, v int)
  SERVER types_kv OPTIONS (key 'a, b, c, d, e');
INSERT INTO k_multi VALUES (true, '2026-01-01', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00', -1, 1),
                           (true, '2026-01-01', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x0000', -1, 2),
                           (false, '1970-01-01', '00000000-0000-0000-0000-000000000000', '\x', 5, 3);
SELECT * FROM k_multi;
SELECT v FROM k_multi WHERE a AND b = '2026-01-01' AND c = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'
  AND d = '\x0000' AND e = -1;
INSERT INTO k_multi VALUES (true, NULL, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x', 1, 9);
CREATE FOREIGN TABLE k_char (k char(4), v int) SERVER types_kv OPTIONS (key 'k');
INSERT INTO k_char VALUES ('ab', 1);
INSERT INTO k_char VALUES ('ab  ', 2);
SELECT k, length(k), octet_length(k), v FROM k_char;
DROP SERVER types_kv CASCADE;
