#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 with eloqkv_fdw preloaded, CREATE EXTENSION done and demo data
# loaded, and leaves it running until scripts/stop.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
dir=${ELOQKV_RUN_DIR:-/tmp/eloqkv-run}

if [[ -f "$dir/data/postmaster.pid" ]] && cluster_psql "$dir" -c 'SELECT 1' > /dev/null 2>&1; then
  echo "eloqkv: a cluster is already running in $dir"
else
  bash scripts/install-deps.sh
  make -j2 > /tmp/eloqkv-build.log 2>&1 || { tail -n 50 /tmp/eloqkv-build.log; exit 1; }
  if [[ $(id -u) -eq 0 ]]; then make install > /dev/null; else sudo make install > /dev/null; fi
  rm -rf "$dir"
  cluster_start "$dir"
  cluster_psql "$dir" -q -c "CREATE DATABASE eloqkv_demo"
  cluster_psql "$dir" -q -d eloqkv_demo -c "CREATE EXTENSION IF NOT EXISTS eloqkv_fdw"
  cluster_psql "$dir" -q -d eloqkv_demo -f scripts/demo.sql
fi
port=$(cat "$dir/port")
cat <<INFO
eloqkv: PostgreSQL 15 with eloqkv_fdw is running (data in $dir/data, log in $dir/postgres.log)
  connect:  psql -h $dir -p $port -U $(_cluster_owner) eloqkv_demo
       or:  psql "host=localhost port=$port user=$(_cluster_owner) dbname=eloqkv_demo"
  try:      SELECT * FROM eloqkv.engine_info();
  stop:     scripts/stop.sh
INFO
