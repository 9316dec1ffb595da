// ANALYZE of foreign KV tables: samples keys without reading every value.
#pragma once

#include "pg/pg_headers.h"

extern "C" {
#include "foreign/fdwapi.h"
}

namespace eloqkv::pg {

bool AnalyzeTable(Relation rel, AcquireSampleRowsFunc* func, BlockNumber* totalpages);

}  // namespace eloqkv::pg
