# Throwaway PostgreSQL 15 clusters for running and testing eloqkv_fdw. Source this file.
#
#   cluster_start DIR [extra postgresql.conf lines...]   initdb + start, port in DIR/port
#   cluster_stop DIR                                     fast shutdown (ok if not running)
#   cluster_psql DIR [psql args...]                      psql as the superuser
#   cluster_env DIR                                      exports PGHOST PGPORT PGUSER
#
# Clusters run as the `postgres` user when we are root (Postgres refuses to run as root), else as
# the current user. ELOQKV_PRELOAD overrides shared_preload_libraries (default eloqkv_fdw).

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

_cluster_owner() {
  if [[ $(id -u) -eq 0 ]]; then echo postgres; else id -un; fi
}

_cluster_as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_cluster_free_port() {
  local port=${1:-5433}
  while (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null || [[ -e "/tmp/.s.PGSQL.$port" ]]; do
    port=$((port + 1))
  done
  echo "$port"
}

cluster_env() {
  local dir=$1
  export PGHOST=$dir PGPORT=$(cat "$dir/port") PGUSER=$(_cluster_owner) PGDATABASE=postgres
}

cluster_start() {
  local dir=$1
  shift
  mkdir -p "$dir"
  chown "$(_cluster_owner)" "$dir"
  chmod 700 "$dir"
  local port
  port=$(_cluster_free_port "${ELOQKV_BASE_PORT:-5433}")
  echo "$port" > "$dir/port"
  _cluster_as_owner "$PG_BIN/initdb" -D "$dir/data" --auth=trust -E UTF8 --locale=C.UTF-8 \
    -U "$(_cluster_owner)" > "$dir/initdb.log" 2>&1 || {
    echo "initdb failed:" >&2; cat "$dir/initdb.log" >&2; return 1; }
  {
    echo "port = $port"
    echo "listen_addresses = 'localhost'"
    echo "unix_socket_directories = '$dir'"
    echo "shared_preload_libraries = '${ELOQKV_PRELOAD-eloqkv_fdw}'"
    echo "max_connections = 100"
    echo "max_prepared_transactions = 10"
    echo "fsync = on"
    echo "logging_collector = off"
    echo "log_line_prefix = '%m [%p] %b '"
    # eloqkv: small memory by default; the engine's own defaults suit a production server.
    echo "eloqkv.index_memory = '64MB'"
    echo "eloqkv.cache_memory = '64MB'"
    echo "eloqkv.segment_size = '16MB'"
    for line in "$@"; do echo "$line"; done
    if [[ -n "${ELOQKV_EXTRA_CONF:-}" ]]; then printf '%s\n' "$ELOQKV_EXTRA_CONF"; fi
  } >> "$dir/data/postgresql.conf"
  if ! _cluster_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 120 start \
      > "$dir/pg_ctl.log" 2>&1; then
    echo "postgres failed to start; last log lines:" >&2
    tail -n 40 "$dir/postgres.log" >&2
    return 1
  fi
}

cluster_stop() {
  local dir=$1
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  _cluster_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 120 stop > /dev/null 2>&1 || true
}

cluster_psql() {
  local dir=$1
  shift
  PGHOST=$dir PGPORT=$(cat "$dir/port") psql -X -v ON_ERROR_STOP=1 -U "$(_cluster_owner)" "$@"
}
