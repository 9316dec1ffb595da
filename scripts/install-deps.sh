#!/usr/bin/env bash
# Installs the Debian 12 packages eloqkv_fdw needs to build, run and test. Idempotent: when
# everything is present it does nothing (and never touches apt).
set -euo pipefail

packages=(
  build-essential g++ make cmake pkg-config git ca-certificates
  postgresql-15 postgresql-server-dev-15 postgresql-contrib
  liburing-dev libpqxx-dev googletest libgtest-dev libgmock-dev libbenchmark-dev
  redis-tools redis-server libhiredis-dev python3 python3-redis
  libipc-run-perl fio
  clang-14 libclang-rt-14-dev clang-format
  procps iproute2 util-linux psmisc
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
# The postgresql package may create and start a system cluster; our clusters never use it.
echo "install-deps: done"
