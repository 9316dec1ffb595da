// Scanning foreign KV tables: point lookups, multi-gets, range, prefix and full scans, each
// seeing the latest committed rows plus the transaction's own writes.
#pragma once

#include "pg/pg_headers.h"

extern "C" {
#include "commands/explain.h"
#include "foreign/fdwapi.h"
}

namespace eloqkv::pg {

void BeginScan(ForeignScanState* node, int eflags);
TupleTableSlot* IterateScan(ForeignScanState* node);
void RescanScan(ForeignScanState* node);
void EndScan(ForeignScanState* node);
void ExplainScan(ForeignScanState* node, ExplainState* es);

}  // namespace eloqkv::pg
