// The FDW entry points: eloqkv_fdw_handler() and eloqkv_fdw_validator().
#include "pg/pg_headers.h"

extern "C" {
#include "access/reloptions.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/fdwapi.h"
#include "nodes/pg_list.h"

PG_FUNCTION_INFO_V1(eloqkv_fdw_handler);
PG_FUNCTION_INFO_V1(eloqkv_fdw_validator);
}

namespace {

[[noreturn]] void NotYet() {
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("eloqkv_fdw foreign tables are not implemented yet")));
  pg_unreachable();
}

void RelSize(PlannerInfo*, RelOptInfo*, Oid) {
  NotYet();
}
void Paths(PlannerInfo*, RelOptInfo*, Oid) {
  NotYet();
}
ForeignScan* MakePlan(PlannerInfo*, RelOptInfo*, Oid, ForeignPath*, List*, List*, ::Plan*) {
  NotYet();
}
void Begin(ForeignScanState*, int) {
  NotYet();
}
TupleTableSlot* Iterate(ForeignScanState*) {
  NotYet();
}
void Rescan(ForeignScanState*) {
  NotYet();
}
void End(ForeignScanState*) {}

}  // namespace

extern "C" Datum eloqkv_fdw_handler(PG_FUNCTION_ARGS) {
  FdwRoutine* r = makeNode(FdwRoutine);
  r->GetForeignRelSize = RelSize;
  r->GetForeignPaths = Paths;
  r->GetForeignPlan = MakePlan;
  r->BeginForeignScan = Begin;
  r->IterateForeignScan = Iterate;
  r->ReScanForeignScan = Rescan;
  r->EndForeignScan = End;
  PG_RETURN_POINTER(r);
}

extern "C" Datum eloqkv_fdw_validator(PG_FUNCTION_ARGS) {
  List* options = untransformRelOptions(PG_GETARG_DATUM(0));
  ListCell* cell;
  foreach (cell, options) {
    DefElem* def = lfirst_node(DefElem, cell);
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                    errmsg("invalid option \"%s\"", def->defname),
                    errhint("There are no valid options in this context.")));
  }
  PG_RETURN_VOID();
}
