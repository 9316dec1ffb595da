#!/usr/bin/env bash
# Installs the Debian 12 packages eloqkv_fdw needs to build, run and test. Idempotent and
# non-interactive: when everything is present it does nothing and never touches apt. Uses sudo
# when not root. Prints one line saying what it did (apt's output only when apt fails).
#
# The postgresql-15 package creates a system cluster (15/main, port 5432); without systemd it is
# usually not running. We never start, stop or use it: our clusters pick a free port from 5433.
set -euo pipefail

packages=(
  # build
  build-essential g++ make cmake pkg-config git ca-certificates
  # PostgreSQL 15 (postgresql-contrib pulls contrib for the supported version; in Debian 12
  # postgresql-contrib-15 is only a name provided by postgresql-15)
  postgresql-15 postgresql-server-dev-15 postgresql-contrib
  # engine and tests
  liburing-dev libpqxx-dev googletest libgtest-dev libgmock-dev libbenchmark-dev
  libipc-run-perl fio
  # real Redis clients and a peer to compare with
  redis-tools redis-server libhiredis-dev python3 python3-redis
  # libFuzzer and sanitizers; formatting. The sanitizer pass builds Postgres from Debian's
  # source with ASan (scripts/build-postgres-asan.sh), with the libraries Debian's build uses.
  clang-14 libclang-rt-14-dev clang-format libicu-dev libxml2-dev zlib1g-dev
  # process and port tools the scripts use (ps, ss, runuser, fuser)
  procps iproute2 util-linux psmisc
)

# One dpkg-query for all of them; names dpkg has never heard of are simply absent from its output.
declare -A installed=()
while IFS=$'\t' read -r name status; do
  [[ "$status" == "install ok installed" ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${packages[@]}" 2> /dev/null || true)

missing=()
for p in "${packages[@]}"; do
  [[ -n "${installed[$p]:-}" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed; nothing to do"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo > /dev/null; then
    echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  # Without a terminal, fail instead of waiting for a password nobody can type.
  if [[ -t 0 ]]; then sudo=(sudo); else sudo=(sudo -n); fi
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/eloqkv-install-deps.XXXXXX.log)
apt_opts=(-q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
          -o Dpkg::Options::=--force-confold)
if ! { "${sudo[@]}" apt-get "${apt_opts[@]}" update &&
       "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y \
         --no-install-recommends "${missing[@]}"; } < /dev/null > "$log" 2>&1; then
  echo "install-deps: apt-get failed installing: ${missing[*]}; last lines of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
rm -f "$log"
echo "install-deps: installed ${#missing[@]} missing packages: ${missing[*]}"
