-- The eloqkv.* settings are fixed at server start and validated.
SHOW eloqkv.sync;
SHOW eloqkv.io_mode;
SHOW eloqkv.direct_io;
SHOW eloqkv.sync_interval;
SHOW eloqkv.max_keyspaces;
SELECT name, context, unit FROM pg_settings WHERE name LIKE 'eloqkv.%' ORDER BY name;
SET eloqkv.sync = off;
SET eloqkv.sync = 'sometimes';
SET eloqkv.index_memory = '1GB';
SET eloqkv.no_such_setting = 1;
