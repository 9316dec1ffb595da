#!/usr/bin/env bash
# The builds scripts/test.sh's sanitizer passes need, one after the other: Postgres with ASan
# (scripts/build-postgres-asan.sh, into build-pg-asan/) and the googletest suites with ASan and
# UBSan (build-asan/). Each writes its output and then its exit code to OUT_DIR (pg-asan.out and
# pg-asan.rc; asan-build.log and asan-build.rc), so the test run can start a pass as soon as its
# build is done while the other still compiles.
#
#   scripts/sanitizer-builds.sh OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${1:?usage: scripts/sanitizer-builds.sh OUT_DIR}

bash scripts/build-postgres-asan.sh build-pg-asan > "$out/pg-asan.out" 2>&1
echo $? > "$out/pg-asan.rc"

{ grep -qs '^ELOQKV_SANITIZE:STRING=address,undefined$' build-asan/CMakeCache.txt ||
    cmake -S . -B build-asan -DELOQKV_SANITIZE=address,undefined -DELOQKV_BENCH=OFF \
      -DELOQKV_WERROR=OFF; } > "$out/asan-build.log" 2>&1 &&
  cmake --build build-asan -j2 >> "$out/asan-build.log" 2>&1
echo $? > "$out/asan-build.rc"
