// The source query of a cache: the SELECT that reads one row of an ordinary table by key.
//
// Invariants:
//  * A source is one SELECT whose only parameter is $1, the key; its result columns are exactly
//    the cache table's columns (names and types), in any order. Anything else is refused with an
//    error naming the cache, before the source runs.
//  * It runs with the key bound as a parameter (never spliced into the text), read-only, on a
//    snapshot taken when it starts, so it sees every transaction committed before then
//    (cache_lookup.h relies on this for invalidations).
#pragma once

#include "pg/pg_headers.h"
#include "pg/table_options.h"

extern "C" {
#include "access/tupdesc.h"
#include "nodes/pg_list.h"
}

namespace eloqkv::cache {

struct SourceColumn {
  char* name;
  Oid type;
  int32 typmod;
};

// Parses and analyzes a source text: its result columns (a List of SourceColumn*) and the type
// of $1. Raises a clear error when it is not one SELECT with exactly one parameter.
List* AnalyzeSource(const char* source, const char* cache_name, Oid* param_type);

// Runs the cache's source for `key` (of the key column's type). Returns false when it found no
// row; otherwise fills values/isnull (indexed by attnum - 1) in the caller's memory context.
bool RunSource(const pg::KvTable* t, TupleDesc desc, Datum key, Datum* values, bool* isnull);

// Prepared sources are prepared again after their cache table changes (ALTER ... OPTIONS).
void RegisterSourceInvalidation();

}  // namespace eloqkv::cache
