-- Demo data for scripts/run.sh (the database eloqkv_demo, extension already created).
SELECT version, state, io_mode, sync FROM eloqkv.engine_info();
