#!/usr/bin/env bash
# Stops the cluster scripts/run.sh started and removes its directory (ELOQKV_RUN_DIR, default
# /tmp/eloqkv-run). Fine to run when nothing is running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/cluster.sh
dir=${ELOQKV_RUN_DIR:-/tmp/eloqkv-run}
if [[ -d "$dir" ]]; then
  cluster_remove "$dir"
  echo "eloqkv: stopped and removed $dir"
else
  echo "eloqkv: nothing running in $dir"
fi
