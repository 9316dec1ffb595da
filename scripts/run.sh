#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 with eloqkv_fdw preloaded, the database eloqkv_demo with the
# extension and scripts/demo.sql loaded, and returns; the server keeps running until
# scripts/stop.sh. If one is already running it only prints how to connect.
#
#   ELOQKV_RUN_DIR     where the cluster lives (default /tmp/eloqkv-run)
#   ELOQKV_EXTRA_CONF  extra postgresql.conf lines (see scripts/lib/cluster.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
dir=${ELOQKV_RUN_DIR:-/tmp/eloqkv-run}
db=eloqkv_demo

if cluster_running "$dir"; then
  echo "eloqkv: a cluster is already running in $dir (to rebuild: scripts/stop.sh && scripts/run.sh)"
else
  bash scripts/install-deps.sh
  build_log=$(mktemp /tmp/eloqkv-build.XXXXXX.log)
  echo "eloqkv: building (log: $build_log)"
  make -j2 > "$build_log" 2>&1 || { tail -n 60 "$build_log"; echo "eloqkv: build failed" >&2; exit 1; }
  # The log is ours, written by this shell; only make itself runs as root.
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if [[ -t 0 ]]; then sudo=(sudo); else sudo=(sudo -n); fi
  fi
  "${sudo[@]}" make install >> "$build_log" 2>&1 || { tail -n 30 "$build_log"; echo "eloqkv: make install failed" >&2; exit 1; }
  rm -f "$build_log"

  # Whatever is left from an earlier run (crashed, or stopped without stop.sh) goes.
  cluster_remove "$dir"
  cluster_start "$dir" || exit 1
  if ! { cluster_psql "$dir" -q -c "CREATE DATABASE $db" &&
         cluster_psql "$dir" -q -d "$db" -c "CREATE EXTENSION IF NOT EXISTS eloqkv_fdw" &&
         cluster_psql "$dir" -q -d "$db" -f scripts/demo.sql > /dev/null; }; then
    echo "eloqkv: setting up $db failed; server log: $dir/postgres.log" >&2
    tail -n 20 "$dir/postgres.log" >&2
    cluster_stop "$dir"
    exit 1
  fi
fi

port=$(cat "$dir/port")
resp_port=$(cat "$dir/resp_port")
user=$(_cluster_owner)
cat << INFO
eloqkv: PostgreSQL 15 with eloqkv_fdw is running (data in $dir/data, log in $dir/postgres.log)
  connect:  $PG_BIN/psql -h $dir -p $port -U $user $db
       or:  psql "host=localhost port=$port user=$user dbname=$db"
  redis:    redis-cli -p $resp_port      (the RESP listener; try: HGETALL agent:a-1, SET greeting hello)
  try:      SELECT * FROM demo.agent_state;  SELECT * FROM eloqkv.engine_info();
            SELECT * FROM demo.user_cache WHERE id = 42;  SELECT * FROM eloqkv.cache_stats;
            (a cache over the heap table demo.users; demo.users_mirror mirrors it whole)
  stop:     scripts/stop.sh
INFO
