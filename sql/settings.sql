-- The eloqkv.* settings: units, ranges, defaults, and when each can change.
SELECT name, context, vartype, unit, boot_val, min_val, max_val, enumvals
  FROM pg_settings WHERE name LIKE 'eloqkv.%' ORDER BY name;
-- Settings the test clusters leave at their defaults.
SHOW eloqkv.sync;
SHOW eloqkv.sync_interval;
SHOW eloqkv.io_mode;
SHOW eloqkv.direct_io;
SHOW eloqkv.log_buffer;
SHOW eloqkv.max_disk_size;
SHOW eloqkv.max_keyspaces;
SHOW eloqkv.checkpoint_interval;
SHOW eloqkv.checkpoint_log_size;
SHOW eloqkv.data_directory;
-- Sizes are shown with their unit, whatever the test cluster chose.
SELECT current_setting('eloqkv.index_memory') ~ '^\d+[MGT]B$' AS index_memory_ok,
       current_setting('eloqkv.cache_memory') ~ '^\d+[MGT]B$' AS cache_memory_ok,
       current_setting('eloqkv.segment_size') ~ '^\d+[MG]B$' AS segment_size_ok;
-- They cannot be changed in a session.
SET eloqkv.sync = off;
SET eloqkv.index_memory = '1GB';
-- Invalid values are refused with the allowed values or range (ALTER SYSTEM checks them; a
-- session SET is refused before the value is looked at).
SET eloqkv.sync = 'sometimes';
ALTER SYSTEM SET eloqkv.sync = 'sometimes';
ALTER SYSTEM SET eloqkv.io_mode = 'uring';
ALTER SYSTEM SET eloqkv.segment_size = '4GB';
ALTER SYSTEM SET eloqkv.index_memory = 0;
ALTER SYSTEM SET eloqkv.direct_io = 'maybe';
-- eloqkv is a reserved prefix: unknown names are refused.
SET eloqkv.no_such_setting = 1;
ALTER SYSTEM SET eloqkv.no_such_setting = 1;
-- Like data_directory, eloqkv.data_directory is visible only to those who may read all settings.
CREATE ROLE regress_eloqkv_settings;
SET ROLE regress_eloqkv_settings;
SHOW eloqkv.data_directory;
SHOW eloqkv.sync;
RESET ROLE;
DROP ROLE regress_eloqkv_settings;
