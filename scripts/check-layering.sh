#!/usr/bin/env bash
# Fails when a file under src/engine or src/resp, src/pg/row_format.* (the row framing, kept
# Postgres-free to be fuzzed) or src/pg/kv_undo.* (before-images, tested with the engine) includes a Postgres header, directly or through other headers:
# the preprocessor's dependency list must not name any file from the Postgres include trees.
# Run by the CMake build before the engine library compiles.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cxx=${CXX:-c++}
status=0
shopt -s nullglob
for f in "$root"/src/engine/*.cc "$root"/src/engine/*.h "$root"/src/resp/*.cc "$root"/src/resp/*.h \
         "$root"/src/pg/row_format.cc "$root"/src/pg/row_format.h \
         "$root"/src/pg/kv_undo.cc "$root"/src/pg/kv_undo.h; do
  # Postgres headers are reachable only through pg_config's include dirs; add them so an include
  # of one resolves (and is caught) rather than failing with a less telling "file not found".
  deps=$("$cxx" -std=c++20 -x c++ -MM -MG -I"$root/src" \
         -I/usr/include/postgresql/15/server -I/usr/include/postgresql "$f" 2>&1) || {
    echo "check-layering: cannot preprocess $f:" >&2; echo "$deps" >&2; status=1; continue; }
  bad=$(printf '%s\n' "$deps" | tr ' \\' '\n\n' | grep -E '(/postgresql/|^(postgres|postgres_fe|fmgr|funcapi|miscadmin|pg_config)\.h$|^(utils|access|executor|nodes|catalog|commands|optimizer|foreign|storage|postmaster|tcop|lib|libpq|parser)/)' || true)
  if [[ -n "$bad" ]]; then
    echo "check-layering: ${f#$root/} includes Postgres headers, which it must not:" >&2
    printf '  %s\n' $bad >&2
    status=1
  fi
done
exit $status
