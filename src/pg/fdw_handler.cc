// The FDW entry points: eloqkv_fdw_handler() wires the callbacks of planner.cc, scan.cc,
// modify.cc and analyze.cc; eloqkv_fdw_validator() checks options (table_options.cc).
#include "pg/analyze.h"
#include "pg/modify.h"
#include "pg/planner.h"
#include "pg/scan.h"
#include "pg/table_options.h"

extern "C" {
#include "access/reloptions.h"
#include "foreign/fdwapi.h"

PG_FUNCTION_INFO_V1(eloqkv_fdw_handler);
PG_FUNCTION_INFO_V1(eloqkv_fdw_validator);
}

extern "C" Datum eloqkv_fdw_handler(PG_FUNCTION_ARGS) {
  using namespace eloqkv::pg;
  FdwRoutine* r = makeNode(FdwRoutine);
  r->GetForeignRelSize = GetRelSize;
  r->GetForeignPaths = GetPaths;
  r->GetForeignPlan = GetPlan;
  r->BeginForeignScan = BeginScan;
  r->IterateForeignScan = IterateScan;
  r->ReScanForeignScan = RescanScan;
  r->EndForeignScan = EndScan;
  r->ExplainForeignScan = ExplainScan;
  r->IsForeignRelUpdatable = IsRelUpdatable;
  r->AddForeignUpdateTargets = AddUpdateTargets;
  r->PlanForeignModify = PlanModify;
  r->BeginForeignModify = BeginModify;
  r->ExecForeignInsert = ExecInsert;
  r->ExecForeignBatchInsert = ExecBatchInsert;
  r->GetForeignModifyBatchSize = GetBatchSize;
  r->ExecForeignUpdate = ExecUpdate;
  r->ExecForeignDelete = ExecDelete;
  r->EndForeignModify = EndModify;
  r->BeginForeignInsert = BeginInsert;
  r->EndForeignInsert = EndInsert;
  r->ExecForeignTruncate = ExecTruncate;
  r->AnalyzeForeignTable = AnalyzeTable;
  PG_RETURN_POINTER(r);
}

extern "C" Datum eloqkv_fdw_validator(PG_FUNCTION_ARGS) {
  eloqkv::pg::ValidateOptionList(untransformRelOptions(PG_GETARG_DATUM(0)), PG_GETARG_OID(1));
  PG_RETURN_VOID();
}
