#!/usr/bin/env bash
# Builds PostgreSQL 15 with AddressSanitizer from Debian's own source package, installed under
# DIR/install (default build-pg-asan/install), for scripts/test.sh's sanitizer pass.
#
# Why: ASan's runtime must be the first thing a process initialises. Preloaded into Debian's
# uninstrumented postgres it starts too late (libgpg-error's constructor runs first and glibc's
# locale lock deadlocks; docs/reliability.md), so ASan over the Postgres suites needs a postgres
# linked with it. The source comes from Debian's signed source index through a private apt
# configuration (nothing under /etc/apt changes); nothing is committed to this repository.
#
#   scripts/build-postgres-asan.sh [DIR]
# Prints the install directory's pg_config on its last line. Does nothing when DIR holds a build
# of the same source version by the same script (flags, configure options).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath -m "${1:-build-pg-asan}")
prefix="$dir/install"
# -O1: a third less compile time than -O2 and still ASan's usual speed.
cflags="-O1 -g -fsanitize=address -fno-omit-frame-pointer"
ldflags="-fsanitize=address"
# The build runs some of what it builds (zic, pg_config): Postgres's programs free by exiting.
export ASAN_OPTIONS=detect_leaks=0

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
apt_dir="$dir/apt"
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dir/src"
cat > "$apt_dir/parts/debian-src.sources" << 'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_opts=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/parts"
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
log="$dir/build.log"
: > "$log"
fail() {
  echo "build-postgres-asan: $1; last lines of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
}

# What a build is made of: the source version and this script (flags, configure options).
script_hash=$(sha256sum "$0" | cut -c1-16)
built() { [[ -f $prefix/.built && $(cat "$prefix/.built") == "$1" && -x $prefix/bin/pg_config ]]; }
if ! "${sudo[@]}" apt-get "${apt_opts[@]}" update >> "$log" 2>&1; then
  # Offline, a build made by this script from the last version known is still good to test with.
  if [[ -f $prefix/.built ]] && built "$(cut -d' ' -f1 "$prefix/.built") $script_hash"; then
    echo "build-postgres-asan: the source index is unreachable; using the build already made" >&2
    echo "$prefix/bin/pg_config"
    exit 0
  fi
  fail "apt-get update of the source index failed"
fi
version=$(apt-cache "${apt_opts[@]}" showsrc postgresql-15 2>> "$log" |
          sed -n 's/^Version: //p' | sort -V | tail -n 1)
[[ -n $version ]] || fail "Debian's source index has no postgresql-15"
stamp="$version $script_hash"
if built "$stamp"; then
  echo "build-postgres-asan: postgresql-15 $version with ASan already built" >&2
  echo "$prefix/bin/pg_config"
  exit 0
fi

upstream=${version%%-*}
(cd "$dir/src" && rm -rf ./* &&
 "${sudo[@]}" apt-get "${apt_opts[@]}" source --download-only "postgresql-15=$version") \
  >> "$log" 2>&1 || fail "downloading the source of postgresql-15 $version failed"
tar -xjf "$dir/src/postgresql-15_$upstream.orig.tar.bz2" -C "$dir/src" >> "$log" 2>&1 ||
  fail "unpacking the source failed"
src="$dir/src/postgresql-$upstream"

echo "build-postgres-asan: building postgresql-15 $version with ASan (several minutes)" >&2
rm -rf "$prefix"
(cd "$src" &&
 ./configure --prefix="$prefix" --enable-tap-tests --enable-debug --without-readline \
   --with-icu --with-libxml CFLAGS="$cflags" LDFLAGS="$ldflags" &&
 make -j2 -s &&
 make -s install &&
 make -s -C src/test/isolation install &&
 make -s -C contrib/pg_walinspect install &&
 make -s -C src/test/perl install) >> "$log" 2>&1 || fail "building Postgres failed"
echo "$stamp" > "$prefix/.built"
echo "$prefix/bin/pg_config"
