#!/usr/bin/env bash
# Installs what is missing, builds, installs, and runs every test suite:
#   ctest        the CMake suites (googletest: the engine with io_uring and with pread, the RESP
#                server, the row framing)
#   fuzz         libFuzzer (ASan+UBSan), 30 s on the RESP request parser and 30 s on the decoders
#                of stored bytes, from build-fuzz/
#   regress      pg_regress and isolation tests (make installcheck) against a throwaway cluster
#   demo         scripts/demo.sql loads (what scripts/run.sh runs)
#   clients      redis-py against the RESP listener (test/clients/), in a throwaway cluster
#   tap          t/*.pl with prove (make tapcheck), as the postgres user when we are root
#   san-*        regress, isolation, clients and TAP again under ASan and UBSan: Postgres built
#                with ASan from Debian's source (build-pg-asan/), the extension with ASan+UBSan
#                (in a copy of the tree), and a search of every server log for reports
#   asan-ctest   the googletest suites built with ASan+UBSan, from build-asan/
# Each runner's own summary stays visible; the last line is "N passed, N failed", counting
# individual tests. Exits non-zero on any failure. Needs no terminal and no stdin (CI).
#
#   scripts/test.sh [--quick]     (--quick is accepted and currently runs everything)
set -uo pipefail
# No terminal (CI): nothing may wait for input, and sudo must fail rather than ask.
[[ -t 0 ]] || exec < /dev/null
cd "$(dirname "$0")/.." || exit 1
source scripts/lib/cluster.sh

for arg in "$@"; do
  case $arg in
    --quick) ;;
    -h | --help) sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument $arg (usage: scripts/test.sh [--quick])" >&2; exit 2 ;;
  esac
done

passed=0
failed=0
suites_failed=()
work=$(mktemp -d /tmp/eloqkv-test.XXXXXX)
chmod 755 "$work"
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  # An interrupted run stops the background sanitizer builds: their process group (make,
  # compilers).
  [[ -n ${san_builds_pid:-} ]] && kill -0 "$san_builds_pid" 2> /dev/null &&
    kill -TERM -- "-$san_builds_pid" 2> /dev/null
  cluster_remove "$work/cluster" 2> /dev/null
  cluster_remove "$work/clients" 2> /dev/null
  [[ -n ${san_bin:-} ]] && ASAN_OPTIONS=detect_leaks=0 PG_BIN=$san_bin \
    cluster_remove "$work/san-cluster" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

note() { printf '\n=== %s ===\n' "$*"; }
record() {  # suite passed failed
  passed=$((passed + $2))
  failed=$((failed + $3))
  echo "--- $1: $2 passed, $3 failed"
  if (($3 > 0)); then suites_failed+=("$1"); fi
}
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif [[ -t 0 ]]; then sudo "$@"; else sudo -n "$@"; fi
}
finish() {
  echo
  ((${#suites_failed[@]} > 0)) && echo "failed suites: ${suites_failed[*]}"
  echo "$passed passed, $failed failed"
  if ((failed == 0)); then exit 0; else exit 1; fi
}

# The googletest suites of CMake build $2 (ctest), recorded as suite $1.
# GTEST_OUTPUT makes each googletest binary write an XML report (a new file per run), from which
# the individual test counts come; a ctest test without a report counts as one test.
run_ctest() {
  local suite=$1 dir=$2 x head tests failures errors disabled skipped f
  mkdir -p "$work/$suite-gtest"
  GTEST_BRIEF=1 GTEST_OUTPUT="xml:$work/$suite-gtest/" \
    ctest --test-dir "$dir" --output-on-failure 2>&1 | tee "$work/$suite.log"
  rc=${PIPESTATUS[0]}
  c_total=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\2/p' "$work/$suite.log" | tail -n 1)
  c_fail=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\1/p' "$work/$suite.log" | tail -n 1)
  c_total=${c_total:-0}
  c_fail=${c_fail:-0}
  x_files=0 x_fail_files=0 x_pass=0 x_fail=0
  for x in "$work/$suite-gtest"/*.xml; do
    [[ -f $x ]] || continue
    head=$(grep -m 1 -o '<testsuites [^>]*>' "$x")
    tests=$(xml_attr tests "$head") failures=$(xml_attr failures "$head")
    errors=$(xml_attr errors "$head") disabled=$(xml_attr disabled "$head")
    skipped=$(xml_attr skipped "$head")
    f=$((${failures:-0} + ${errors:-0}))
    x_files=$((x_files + 1))
    x_fail=$((x_fail + f))
    x_pass=$((x_pass + ${tests:-0} - f - ${disabled:-0} - ${skipped:-0}))
    ((f > 0)) && x_fail_files=$((x_fail_files + 1))
  done
  u_fail=$((x_fail + (c_fail > x_fail_files ? c_fail - x_fail_files : 0)))
  c_pass_runs=$((c_total - c_fail))
  x_pass_files=$((x_files - x_fail_files))
  u_pass=$((x_pass + (c_pass_runs > x_pass_files ? c_pass_runs - x_pass_files : 0)))
  ((rc != 0 && u_fail == 0)) && u_fail=1
  ((c_total == 0 && u_fail == 0)) && { echo "ctest found no tests in $dir"; u_fail=1; }
  record "$suite" "$u_pass" "$u_fail"
}
xml_attr() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<< "$2"; }

# pg_regress and isolation tests (make installcheck) in tree $2 against the running cluster in
# $3 (PG* exported by cluster_start), recorded as suite $1; further arguments go to make.
run_regress() {
  local suite=$1 tree=$2 cdir=$3
  shift 3
  make -C "$tree" installcheck TAP_TESTS= "$@" 2>&1 | tee "$work/$suite.log"
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
  done < <(grep -E 'tests (passed|failed)' "$work/$suite.log")
  if ((rc != 0)); then
    ((r_fail == 0)) && r_fail=1
    for d in "$tree/regression.diffs" "$tree/output_iso/regression.diffs"; do
      [[ -f $d ]] && { echo "--- $d (first 300 lines) ---"; head -n 300 "$d"; }
    done
    # The tests provoke many ERRORs on purpose: show what is worse first, then the tail.
    echo "--- server log: PANIC/FATAL/crashes ---"
    grep -E 'PANIC|FATAL|TRAP|terminated by signal|was terminated|exited with exit code|runtime error' \
      "$cdir/postgres.log" | tail -n 30
    echo "--- server log (last 30 lines) ---"
    tail -n 30 "$cdir/postgres.log"
  fi
  record "$suite" "$r_pass" "$r_fail"
}

# A copy of the source tree without build products, at $1.
copy_tree() {
  mkdir -p "$1"
  tar -cf - --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=./results \
      --exclude=./output_iso --exclude=./tmp_check --exclude=./log --exclude='*.o' \
      --exclude='*.so' --exclude='*.bc' . | tar -xf - -C "$1"
}

# The TAP tests (make tapcheck) in tree $2, recorded as suite $1; further arguments go to make.
# PostgreSQL::Test::Cluster runs initdb, which refuses root: as root, they run as postgres, who
# must be able to write the tree (tmp_check/).
run_tap() {
  local suite=$1 tree=$2
  shift 2
  if [[ $(id -u) -eq 0 ]]; then
    chown -R postgres "$tree"
    runuser -u postgres -- make -C "$tree" tapcheck PROVE_FLAGS=--timer "$@" 2>&1 | tee "$work/$suite.log"
  else
    make -C "$tree" tapcheck PROVE_FLAGS=--timer "$@" 2>&1 | tee "$work/$suite.log"
  fi
  rc=${PIPESTATUS[0]}
  # prove's summary: "Files=1, Tests=23, ..." and, per failing file, "(Wstat: .. Tests: 19 Failed: 2)".
  t_total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$work/$suite.log" | tail -n 1)
  t_fail=$(grep -oE 'Tests: [0-9]+ Failed: [0-9]+' "$work/$suite.log" | awk '{s+=$4} END {print s+0}')
  t_total=${t_total:-0}
  t_pass=$((t_total - t_fail))
  if ((rc != 0)); then
    ((t_fail == 0)) && t_fail=1
    # Logs of the failing test files (t/NAME.pl: regress_log_NAME and its nodes' NAME_*.log).
    mapfile -t bad < <(sed -n 's|^t/\([^ ]*\)\.pl  *(Wstat.*|\1|p' "$work/$suite.log")
    for name in "${bad[@]}"; do
      for f in "$tree/tmp_check/log/regress_log_$name" "$tree/tmp_check/log/${name}"_*.log; do
        [[ -f $f ]] && { echo "--- ${f#"$tree"/} (last 60 lines) ---"; tail -n 60 "$f"; }
      done
    done
  fi
  record "$suite" "$t_pass" "$t_fail"
}

# redis-py against the listener of the running cluster in $2 (PG* exported by cluster_start),
# whose binaries are in $3, recorded as suite $1. The last test crash-restarts the cluster
# (pg_ctl -m immediate) and reads the acknowledged writes back. unittest's counts: skipped tests
# (e.g. RESP3 with a redis-py older than 5) neither pass nor fail.
run_clients() {
  local suite=$1 cdir=$2 bin=$3 as_owner=""
  [[ $(id -u) -eq 0 ]] && as_owner="runuser -u postgres -- "
  local c_psql="$bin/psql -X -A -t -q -v ON_ERROR_STOP=1 -h $cdir -p $PGPORT -U $PGUSER -d postgres"
  local c_restart="$as_owner$bin/pg_ctl -D $cdir/data -l $cdir/postgres.log -m immediate -w -t 120"
  ELOQKV_RESP_HOST=127.0.0.1 ELOQKV_RESP_PORT=$(cat "$cdir/resp_port") ELOQKV_PSQL=$c_psql \
    ELOQKV_RESTART_CMD="$c_restart restart" \
    timeout 300 "$clients_py" test/clients/resp_clients_test.py -v 2>&1 | tee "$work/$suite.log"
  rc=${PIPESTATUS[0]}
  # "Ran 47 tests in 9.8s", then "OK (skipped=1)" or "FAILED (failures=1, errors=2, skipped=1)".
  ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$work/$suite.log" | tail -n 1)
  summary=$(grep -E '^(OK|FAILED)( \(.*\))?$' "$work/$suite.log" | tail -n 1)
  ut_count() { sed -n "s/.*[(,] \{0,1\}$1=\([0-9]*\).*/\1/p" <<< "$summary"; }
  fails=$(ut_count failures) errors=$(ut_count errors) skips=$(ut_count skipped)
  xfails=$(ut_count 'expected failures') xpasses=$(ut_count 'unexpected successes')
  k_fail=$((${fails:-0} + ${errors:-0} + ${xpasses:-0}))
  k_pass=$((${ran:-0} - k_fail - ${skips:-0} - ${xfails:-0}))
  if [[ -z $ran ]] || ((rc != 0 && k_fail == 0)); then k_fail=$((k_fail + 1)); fi
  if ((k_fail > 0)); then
    echo "--- $suite: server log (last 30 lines) ---"
    tail -n 30 "$cdir/postgres.log"
  fi
  record "$suite" "$k_pass" "$k_fail"
}

note "dependencies"
if ! bash scripts/install-deps.sh; then
  record deps 0 1
  finish
fi

note "build"
if ! make -j2 > "$work/build.log" 2>&1; then
  tail -n 80 "$work/build.log"
  record build 0 1
  finish
fi
grep -E '(warning|error):' "$work/build.log" | head -n 20
echo "build ok"
if ! as_root make install > "$work/install.log" 2>&1; then
  tail -n 40 "$work/install.log"
  record install 0 1
  finish
fi
echo "installed into $(pg_config --pkglibdir)"

# The sanitizer passes need Postgres built with ASan and the googletest suites built with ASan
# (scripts/sanitizer-builds.sh; minutes of compiling on a fresh machine, little when
# build-pg-asan/ and build-asan/ are up to date). They build in the background at the lowest
# priority while the suites below run; each pass waits for its own build. setsid: a process
# group of its own, which cleanup can stop as a whole.
setsid nice -n 19 bash scripts/sanitizer-builds.sh "$work" > "$work/sanitizer-builds.log" 2>&1 &
san_builds_pid=$!
# Waits for the background build whose exit code goes to $1; returns that code.
await_build() {
  while [[ ! -f $1 ]] && kill -0 "$san_builds_pid" 2> /dev/null; do sleep 1; done
  [[ -f $1 ]] || { cat "$work/sanitizer-builds.log"; return 1; }
  return "$(cat "$1")"
}

note "ctest (unit tests)"
run_ctest ctest build

note "fuzz (libFuzzer with ASan+UBSan, 30 s each: the RESP request parser, the stored-bytes decoders)"
# Bounded runs from the checked-in seed corpora, copied so that the inputs libFuzzer adds stay out
# of the repository. Their own configure (clang, sanitizers), kept in build-fuzz/ between runs;
# the long campaign is in bench/README.md. Each target counts as one test.
fuzz_targets=(resp_parser decoders)
fuzz_cxx=$(command -v clang++-14 || command -v clang++ || true)
if [[ -z $fuzz_cxx ]]; then
  echo "fuzz: clang++-14 not found; scripts/install-deps.sh installs clang-14 and libclang-rt-14-dev"
  record fuzz 0 ${#fuzz_targets[@]}
elif ! { grep -qs '^ELOQKV_FUZZ:BOOL=ON$' build-fuzz/CMakeCache.txt ||
           cmake -S . -B build-fuzz -DELOQKV_FUZZ=ON -DCMAKE_CXX_COMPILER="$fuzz_cxx"; } \
         > "$work/fuzz-build.log" 2>&1 ||
     ! cmake --build build-fuzz -j2 --target "${fuzz_targets[@]/%/_fuzz}" >> "$work/fuzz-build.log" 2>&1; then
  tail -n 40 "$work/fuzz-build.log"
  echo "fuzz: configuring or building build-fuzz failed"
  record fuzz 0 ${#fuzz_targets[@]}
else
  for target in "${fuzz_targets[@]}"; do
    dir="$work/fuzz/$target"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp test/fuzz/corpus/"$target"/* "$dir/corpus/"
    dict=()
    [[ -f test/fuzz/$target.dict ]] && dict=(-dict="test/fuzz/$target.dict")
    build-fuzz/"$target"_fuzz -max_total_time=30 -runs=50000000 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "${dict[@]}" -artifact_prefix="$dir/artifacts/" "$dir/corpus" \
      > "$dir/fuzz.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$dir/fuzz.log" | tail -n 1)
    if ((rc == 0)); then
      echo "fuzz $target: ${execs:-?} executions, no findings"
      record fuzz 1 0
    else
      tail -n 60 "$dir/fuzz.log"
      kept=$(mktemp -d /tmp/eloqkv-fuzz-findings.XXXXXX)
      cp "$dir"/artifacts/* "$kept/" 2> /dev/null
      echo "fuzz $target: exit code $rc after ${execs:-?} executions; inputs kept in $kept (bench/README.md)"
      record fuzz 0 1
    fi
  done
fi

note "pg_regress and isolation tests (make installcheck) against a throwaway cluster"
if cluster_start "$work/cluster"; then
  echo "cluster: port $PGPORT, socket directory $PGHOST, user $PGUSER"
  run_regress regress . "$work/cluster"

  note "demo data (scripts/demo.sql, as scripts/run.sh loads it)"
  if cluster_psql "$work/cluster" -q -c "CREATE DATABASE eloqkv_demo_check" &&
     cluster_psql "$work/cluster" -q -d eloqkv_demo_check -c "CREATE EXTENSION eloqkv_fdw" &&
     cluster_psql "$work/cluster" -q -d eloqkv_demo_check -f scripts/demo.sql > /dev/null; then
    echo "demo.sql loads"
    record demo 1 0
  else
    record demo 0 1
  fi
  cluster_stop "$work/cluster"
else
  record regress 0 1
fi

note "clients (redis-py against the RESP listener: test/clients/resp_clients_test.py)"
# A cluster of its own with the listener on (the tests empty its RESP keyspace).
clients_py=""
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import redis' > /dev/null 2>&1; then clients_py=$py; break; fi
done
if [[ -z $clients_py ]]; then
  echo "clients: no python3 with the redis module (scripts/install-deps.sh installs python3-redis)"
  record clients 0 1
elif cluster_start "$work/clients" "eloqkv.resp_workers = 2"; then
  cdir="$work/clients"
  run_clients clients "$cdir" "$PG_BIN"
  cluster_stop "$cdir"
else
  record clients 0 1
fi

if compgen -G "t/*.pl" > /dev/null; then
  note "TAP tests (make tapcheck)"
  copy_tree "$work/tap"
  run_tap tap "$work/tap"
fi

note "sanitizers: pg_regress, isolation and TAP under ASan and UBSan"
# Postgres built with ASan from Debian's source package (scripts/build-postgres-asan.sh, kept in
# build-pg-asan/ between runs: ASan's runtime must be linked into postgres itself), and the
# extension built with ASan+UBSan (make SANITIZE=address,undefined) in a copy of the tree,
# installed into that Postgres; the system's installation keeps the normal build. A finding aborts
# the process, which fails the suites; the server logs are searched for reports as well.
san_tree="$work/san"
# Postgres frees by exiting: leak reports would be noise. abort_on_error: a finding in a backend
# is a crash the postmaster reports, not an exit it takes for a FATAL.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1
copy_tree "$san_tree"
await_build "$work/pg-asan.rc"
pg_asan_rc=$?
cat "$work/pg-asan.out"
built_pg_config=$(tail -n 1 "$work/pg-asan.out")
# Used from a copy in $work: the clusters run as postgres, who may not reach into the checkout
# (under /root, say). Postgres finds its directories relative to its binaries.
san_pg="$work/pg-asan"
san_pg_config="$san_pg/bin/pg_config"
if ((pg_asan_rc != 0)) || [[ ! -x $built_pg_config ]] ||
   ! cp -a "$(dirname "$(dirname "$built_pg_config")")" "$san_pg"; then
  record san-postgres 0 1
elif ! make -C "$san_tree" -j2 SANITIZE=address,undefined PG_CONFIG="$san_pg_config" \
       > "$work/san-build.log" 2>&1 ||
     ! make -C "$san_tree" install SANITIZE=address,undefined PG_CONFIG="$san_pg_config" \
       >> "$work/san-build.log" 2>&1; then
  tail -n 40 "$work/san-build.log"
  record san-build 0 1
else
  san_bin=$("$san_pg_config" --bindir)
  echo "built with ASan and UBSan, installed into $("$san_pg_config" --pkglibdir)"
  if PG_BIN=$san_bin cluster_start "$work/san-cluster"; then
    run_regress san-regress "$san_tree" "$work/san-cluster" SANITIZE=address,undefined \
      PG_CONFIG="$san_pg_config"
    if [[ -n $clients_py ]]; then
      run_clients san-clients "$work/san-cluster" "$san_bin"
    else
      record san-clients 0 1
    fi
    PG_BIN=$san_bin cluster_stop "$work/san-cluster"
  else
    record san-regress 0 1
  fi
  run_tap san-tap "$san_tree" SANITIZE=address,undefined PG_CONFIG="$san_pg_config"
  san_report='runtime error:|ERROR: AddressSanitizer'  # how UBSan and ASan reports begin
  mapfile -t reports < <(grep -rlE "$san_report" \
                           "$work/san-cluster/postgres.log" "$san_tree/tmp_check/log" 2> /dev/null)
  if ((${#reports[@]} > 0)); then
    echo "sanitizer reports in:"
    printf '%s\n' "${reports[@]}"
    grep -h -E -A 30 "$san_report" "${reports[@]}" | head -n 120
    record san-reports 0 1
  else
    echo "no ASan or UBSan report in any server log"
    record san-reports 1 0
  fi
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

note "sanitizers: the googletest suites built with ASan and UBSan (build-asan)"
if await_build "$work/asan-build.rc"; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 run_ctest asan-ctest build-asan
else
  tail -n 40 "$work/asan-build.log"
  record asan-ctest 0 1
fi

finish
