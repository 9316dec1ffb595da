#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test suite: the engine's googletest suite
# (twice: io_uring and pread), pg_regress and isolation tests against a throwaway cluster, and
# the TAP tests. Ends with "N passed, N failed" (counting individual tests) and exits non-zero
# on any failure. Works without a terminal (CI).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source scripts/lib/cluster.sh

passed=0
failed=0
suites_failed=()
work=$(mktemp -d /tmp/eloqkv-test.XXXXXX)
chmod 755 "$work"
cleanup() {
  [[ -d "$work/cluster" ]] && cluster_stop "$work/cluster"
  rm -rf "$work"
}
trap cleanup EXIT

note() { printf '\n=== %s ===\n' "$*"; }
record() {  # suite passed failed
  passed=$((passed + $2))
  failed=$((failed + $3))
  if (($3 > 0)); then suites_failed+=("$1"); fi
}

note "dependencies"
bash scripts/install-deps.sh || { echo "dependency installation failed"; exit 1; }

note "build"
if ! make -j2 > "$work/build.log" 2>&1; then
  tail -n 80 "$work/build.log"
  echo "0 passed, 1 failed (build)"
  exit 1
fi
echo "built $(ls -1 src/pg/*.cc | wc -l) glue files and the engine"
if [[ $(id -u) -eq 0 ]]; then make install > "$work/install.log" 2>&1; else sudo make install > "$work/install.log" 2>&1; fi || {
  cat "$work/install.log"; echo "0 passed, 1 failed (install)"; exit 1; }

note "engine unit tests (googletest, with io_uring and with pread)"
for mode in auto posix; do
  echo "--- ELOQKV_TEST_IO_MODE=$mode ---"
  ELOQKV_TEST_IO_MODE=$mode timeout 1800 build/engine_tests --gtest_brief=1 2>&1 | tee "$work/gtest-$mode.log"
  rc=${PIPESTATUS[0]}
  g_pass=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$work/gtest-$mode.log" | tail -n 1)
  g_fail=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*, listed below:.*/\1/p' "$work/gtest-$mode.log" | tail -n 1)
  g_pass=${g_pass:-0}
  g_fail=${g_fail:-0}
  if ((rc != 0 && g_fail == 0)); then g_fail=1; fi
  record "engine-$mode" "$g_pass" "$g_fail"
done

note "SQL tests (pg_regress and isolation) against a throwaway cluster"
if cluster_start "$work/cluster"; then
  cluster_env "$work/cluster"
  make installcheck 2>&1 | tee "$work/regress.log"
  rc=${PIPESTATUS[0]}
  r_pass=0
  r_fail=0
  while read -r line; do
    if [[ $line =~ All\ ([0-9]+)\ tests\ passed ]]; then
      r_pass=$((r_pass + BASH_REMATCH[1]))
    elif [[ $line =~ ([0-9]+)\ of\ ([0-9]+)\ tests\ failed ]]; then
      r_fail=$((r_fail + BASH_REMATCH[1]))
      r_pass=$((r_pass + BASH_REMATCH[2] - BASH_REMATCH[1]))
    fi
  done < <(grep -E 'tests (passed|failed)' "$work/regress.log")
  if ((rc != 0)); then
    ((r_fail == 0)) && r_fail=1
    for d in regression.diffs output_iso/regression.diffs; do
      [[ -f $d ]] && { echo "--- $d ---"; head -n 300 "$d"; }
    done
    echo "--- server log (tail) ---"
    tail -n 60 "$work/cluster/postgres.log"
  fi
  record "sql" "$r_pass" "$r_fail"
  cluster_stop "$work/cluster"
else
  record "sql" 0 1
fi

if compgen -G "t/*.pl" > /dev/null; then
  note "TAP tests"
  # PostgreSQL::Test::Cluster runs initdb, which refuses root: run them as postgres on a copy.
  tap="$work/tap"
  mkdir -p "$tap"
  cp -r Makefile t "$tap/"
  if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres "$tap"
    runuser -u postgres -- make -C "$tap" tapcheck PROVE_FLAGS=--timer 2>&1 | tee "$work/tap.log"
  else
    make -C "$tap" tapcheck PROVE_FLAGS=--timer 2>&1 | tee "$work/tap.log"
  fi
  rc=${PIPESTATUS[0]}
  # prove's summary: "Files=1, Tests=23, ..." and, on failure, "Tests: 19 Failed: 2" per file.
  t_total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$work/tap.log" | tail -n 1)
  t_fail=$(grep -oE 'Tests: [0-9]+ Failed: [0-9]+' "$work/tap.log" | awk '{s+=$4} END {print s+0}')
  t_total=${t_total:-0}
  t_pass=$((t_total - t_fail))
  if ((rc != 0)); then
    ((t_fail == 0)) && t_fail=1
    for f in "$tap"/tmp_check/log/*.log; do
      [[ -f $f ]] && { echo "--- $f (tail) ---"; tail -n 40 "$f"; }
    done
  fi
  record "tap" "$t_pass" "$t_fail"
fi

echo
if ((${#suites_failed[@]} > 0)); then
  echo "failed suites: ${suites_failed[*]}"
fi
echo "$passed passed, $failed failed"
((failed == 0))
