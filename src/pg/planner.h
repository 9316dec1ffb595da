// Planning: which key conditions the engine answers (point lookup, multi-get, range or prefix
// scan, or a parameterized lookup per outer row), their costs, and what EXPLAIN shows.
#pragma once

#include "pg/pg_headers.h"

extern "C" {
#include "foreign/fdwapi.h"
}

namespace eloqkv::pg {

enum class Access : int { kFullScan = 0, kPoint = 1, kMultiGet = 2, kRange = 3, kPrefix = 4 };

// Indexes into ForeignScan.fdw_private.
enum PlanPrivate : int {
  kPrivAccess = 0,      // Integer: Access
  kPrivExplain,         // String: what EXPLAIN shows
  kPrivEqualities,      // Integer: leading key columns with an equality expr in fdw_exprs
  kPrivHasLower,        // Integer 0/1: fdw_exprs holds a lower bound after the equalities
  kPrivLowerInclusive,  // Integer 0/1
  kPrivHasUpper,        // Integer 0/1: ... then an upper bound
  kPrivUpperInclusive,  // Integer 0/1
  kPrivLikePrefix,      // String: constant byte prefix from LIKE 'abc%' ("" for none)
  kPrivForUpdate,       // Integer 0/1: the scan feeds an UPDATE or DELETE of this table
  kPrivCount
};

void GetRelSize(PlannerInfo* root, RelOptInfo* baserel, Oid relid);
void GetPaths(PlannerInfo* root, RelOptInfo* baserel, Oid relid);
ForeignScan* GetPlan(PlannerInfo* root, RelOptInfo* baserel, Oid relid, ForeignPath* best_path,
                     List* tlist, List* scan_clauses, Plan* outer_plan);
bool IsScanParallelSafe(PlannerInfo* root, RelOptInfo* rel, RangeTblEntry* rte);

}  // namespace eloqkv::pg
