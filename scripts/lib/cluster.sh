# shellcheck shell=bash
# Throwaway PostgreSQL 15 clusters for running and testing eloqkv_fdw. Source this file (bash).
#
#   cluster_start DIR [extra postgresql.conf lines...]   initdb DIR/data + start; port in DIR/port,
#                                                        RESP port in DIR/resp_port,
#                                                        log in DIR/postgres.log; exports PG* env
#   cluster_stop DIR                                     fast shutdown (ok if not running)
#   cluster_remove DIR                                   cluster_stop + rm -rf (only a cluster dir)
#   cluster_running DIR                                  true when the server in DIR answers
#   cluster_psql DIR [psql args...]                      psql as the superuser (db postgres)
#   cluster_env DIR                                      exports PGHOST PGPORT PGUSER PGDATABASE
#
# Clusters run as the `postgres` user when we are root (Postgres refuses to run as root), else as
# the current user; DIR and its parents must be reachable by that user (mktemp -d under /tmp is).
# Never touches a system cluster: the port is the first free one from ELOQKV_BASE_PORT (5433).
#
# Environment:
#   PG_BIN              Postgres binaries (default /usr/lib/postgresql/15/bin)
#   ELOQKV_PRELOAD      shared_preload_libraries (default eloqkv_fdw; "" for a plain cluster)
#   ELOQKV_BASE_PORT    first port to try (default 5433)
#   ELOQKV_RESP_PORT    first RESP port to try (default 6380)
#   ELOQKV_EXTRA_CONF   extra postgresql.conf lines (newline-separated), after the arguments'

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

# True when something listens on TCP port $1 (IPv4 or IPv6) or a socket file for it sits in /tmp.
_cluster_port_busy() {
  local port=$1
  [[ -e "/tmp/.s.PGSQL.$port" ]] && return 0
  if command -v ss > /dev/null; then
    ss -Hltn "( sport = :$port )" 2> /dev/null | grep -q . && return 0
  fi
  (echo > "/dev/tcp/127.0.0.1/$port") 2> /dev/null && return 0
  return 1
}

_cluster_free_port() {
  local port=${1:-5433}
  while _cluster_port_busy "$port"; do
    port=$((port + 1))
  done
  echo "$port"
}

_cluster_locale() {
  if locale -a 2> /dev/null | grep -qiE '^c\.utf-?8$'; then echo C.UTF-8; else echo C; fi
}

cluster_env() {
  local dir=$1
  export PGHOST=$dir
  PGPORT=$(cat "$dir/port")
  export PGPORT
  PGUSER=$(_cluster_owner)
  export PGUSER
  export PGDATABASE=postgres
}

cluster_running() {
  local dir=$1
  [[ -f "$dir/data/postmaster.pid" && -f "$dir/port" ]] || return 1
  "$PG_BIN/pg_isready" -q -h "$dir" -p "$(cat "$dir/port")" -t 5 > /dev/null 2>&1
}

cluster_start() {
  local dir=$1
  shift
  local owner locale
  owner=$(_cluster_owner)
  locale=$(_cluster_locale)
  if [[ ! -x "$PG_BIN/initdb" ]]; then
    echo "cluster: $PG_BIN/initdb not found (run scripts/install-deps.sh)" >&2
    return 1
  fi
  mkdir -p "$dir"
  chown "$owner" "$dir"
  chmod 700 "$dir"
  if ! _cluster_as_owner test -w "$dir" -a -x "$dir"; then
    echo "cluster: $dir is not reachable by user $owner (use a directory under /tmp)" >&2
    return 1
  fi
  if [[ -e "$dir/data" ]]; then
    echo "cluster: $dir/data already exists; stop and remove it first" >&2
    return 1
  fi
  _cluster_as_owner "$PG_BIN/initdb" -D "$dir/data" --auth=trust -E UTF8 --locale="$locale" \
    -U "$owner" > "$dir/initdb.log" 2>&1 || {
    echo "cluster: initdb failed:" >&2
    cat "$dir/initdb.log" >&2
    return 1
  }
  cp "$dir/data/postgresql.conf" "$dir/postgresql.conf.initdb"

  # Another run may take the port between the probe and the bind: then try the next one.
  local port=${ELOQKV_BASE_PORT:-5433} _
  local resp_port=${ELOQKV_RESP_PORT:-6380}
  for _ in 1 2 3 4 5; do
    port=$(_cluster_free_port "$port")
    echo "$port" > "$dir/port"
    resp_port=$(_cluster_free_port "$resp_port")
    echo "$resp_port" > "$dir/resp_port"
    {
      cat "$dir/postgresql.conf.initdb"
      echo
      echo "# --- eloqkv throwaway cluster (scripts/lib/cluster.sh) ---"
      echo "port = $port"
      echo "listen_addresses = 'localhost'"
      echo "unix_socket_directories = '$dir'"
      echo "shared_preload_libraries = '${ELOQKV_PRELOAD-eloqkv_fdw}'"
      echo "max_connections = 100"
      echo "max_prepared_transactions = 10"
      echo "fsync = on"
      echo "logging_collector = off"
      echo "log_line_prefix = '%m [%p] %b '"
      # eloqkv.data_directory stays default ($PGDATA/eloqkv). Small memory for a throwaway
      # cluster; the engine's own defaults suit a production server.
      echo "eloqkv.index_memory = '64MB'"
      echo "eloqkv.cache_memory = '64MB'"
      echo "eloqkv.segment_size = '16MB'"
      # The RESP listener on the first free port from 6380 (recorded in DIR/resp_port).
      echo "eloqkv.resp_port = $resp_port"
      for line in "$@"; do echo "$line"; done
      if [[ -n "${ELOQKV_EXTRA_CONF:-}" ]]; then printf '%s\n' "$ELOQKV_EXTRA_CONF"; fi
    } > "$dir/data/postgresql.conf"
    chown "$owner" "$dir/data/postgresql.conf"
    rm -f "$dir/postgres.log"
    if _cluster_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 120 start \
        > "$dir/pg_ctl.log" 2>&1; then
      cluster_env "$dir"
      return 0
    fi
    if grep -qE 'could not (bind|create any TCP/IP sockets)|Address already in use' \
        "$dir/postgres.log" 2> /dev/null; then
      echo "cluster: port $port was taken meanwhile; trying another" >&2
      port=$((port + 1))
      continue
    fi
    break
  done
  echo "cluster: postgres failed to start in $dir; last log lines:" >&2
  tail -n 40 "$dir/postgres.log" >&2 2> /dev/null || cat "$dir/pg_ctl.log" >&2
  cluster_stop "$dir"
  return 1
}

cluster_stop() {
  local dir=$1
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  local pid
  pid=$(head -n 1 "$dir/data/postmaster.pid" 2> /dev/null)
  _cluster_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop > /dev/null 2>&1 && return 0
  # Not running (stale pid file), or stuck: an immediate stop, then the postmaster itself.
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  _cluster_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop > /dev/null 2>&1 && return 0
  if [[ $pid =~ ^[0-9]+$ ]] &&
     [[ "$(readlink "/proc/$pid/cwd" 2> /dev/null)" == "$(realpath "$dir/data")" ]]; then
    echo "cluster: postmaster $pid in $dir did not stop; killing it" >&2
    kill -KILL "$pid" 2> /dev/null || true
  fi
  return 0
}

cluster_remove() {
  local dir=$1
  [[ -e "$dir" ]] || return 0
  # Only what cluster_start made (or an empty directory): never an arbitrary path.
  if [[ -f "$dir/port" || -f "$dir/data/PG_VERSION" || -f "$dir/initdb.log" ]] ||
     [[ -d "$dir" && -z "$(ls -A "$dir")" ]]; then
    cluster_stop "$dir"
    rm -rf "$dir"
  else
    echo "cluster: $dir does not look like a cluster directory; not removing it" >&2
    return 1
  fi
}

cluster_psql() {
  local dir=$1
  shift
  PGHOST=$dir PGPORT=$(cat "$dir/port") PGUSER=$(_cluster_owner) PGDATABASE=postgres \
    "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 "$@"
}
