#include "pg/analyze.h"

#include "cache/cache_lookup.h"

#include "pg/engine_access.h"
#include "pg/key_codec.h"
#include "pg/kv_session.h"
#include "pg/row_codec.h"
#include "pg/table_options.h"
#include "pg/table_runtime.h"

extern "C" {
#include "access/htup_details.h"
#include "commands/vacuum.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "common/pg_prng.h"
#include "utils/sampling.h"
}

namespace eloqkv::pg {
namespace {

constexpr int kFetchBatch = 512;

// Walks every key (no values), keeps a uniform reservoir sample of targrows keys, then reads
// only the sampled rows, in multi-get batches.
int SampleRows(Relation rel, int elevel, HeapTuple* rows, int targrows, double* totalrows,
               double* totaldeadrows) {
  const KvTable* t = LoadKvTable(rel);
  TupleDesc desc = RelationGetDescr(rel);
  eloqkv::Engine* e = ReadyEngine();
  const uint32_t ks = TableKeyspace(e, t, false);
  kv::CursorSpec spec;
  spec.keys_only = true;
  kv::Cursor* cursor = nullptr;
  PgError err;
  if (!kv::OpenCursor(e, ks, spec, &cursor, &err)) RaiseError(err);
  StringInfoData* sample =
      static_cast<StringInfoData*>(palloc0(sizeof(StringInfoData) * Max(targrows, 1)));
  pg_prng_state rand;
  sampler_random_init_state(pg_prng_uint32(&pg_global_prng_state), &rand);
  double seen = 0;
  int kept = 0;
  for (;;) {
    kv::Row row;
    bool done;
    if (!kv::CursorNext(cursor, &row, &done, nullptr, &err)) {
      kv::CloseCursor(cursor);
      RaiseError(err);
    }
    if (done) break;
    vacuum_delay_point();
    // Algorithm R: key number i replaces a random sampled key with probability targrows/(i+1).
    int slot = -1;
    if (kept < targrows) {
      slot = kept++;
      initStringInfo(&sample[slot]);
    } else {
      const double r = sampler_random_fract(&rand) * (seen + 1);
      if (r < targrows) slot = static_cast<int>(r);
    }
    seen += 1;
    if (slot >= 0) {
      resetStringInfo(&sample[slot]);
      appendBinaryStringInfo(&sample[slot], row.key, static_cast<int>(row.key_len));
    }
  }
  kv::CloseCursor(cursor);
  int out = 0;
  Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * desc->natts));
  bool* isnull = static_cast<bool*>(palloc(sizeof(bool) * desc->natts));
  for (int base = 0; base < kept; base += kFetchBatch) {
    const int n = Min(kFetchBatch, kept - base);
    const char* ptrs[kFetchBatch];
    size_t lens[kFetchBatch];
    for (int i = 0; i < n; ++i) {
      ptrs[i] = sample[base + i].data;
      lens[i] = sample[base + i].len;
    }
    if (!kv::MultiGet(e, ks, n, ptrs, lens, nullptr, &err)) RaiseError(err);
    for (int i = 0; i < n; ++i) {
      kv::Row row;
      if (!kv::MultiGetRow(i, &row)) continue;  // deleted since the key walk
      if (t->cache && cache::IsNegativeEntry(row.value, row.value_len)) continue;
      for (int a = 0; a < desc->natts; ++a) isnull[a] = true;
      if (!DecodeKey(t, row.key, row.key_len, values, isnull)) continue;
      DecodeRow(t, desc, row.value, row.value_len, values, isnull);
      rows[out++] = heap_form_tuple(desc, values, isnull);
    }
  }
  *totalrows = seen;
  *totaldeadrows = 0;
  ereport(elevel,
          (errmsg("\"%s\": sampled %d of %.0f rows", RelationGetRelationName(rel), out, seen)));
  return out;
}

}  // namespace

bool AnalyzeTable(Relation, AcquireSampleRowsFunc* func, BlockNumber* totalpages) {
  *func = SampleRows;
  *totalpages = 1;
  return true;
}

}  // namespace eloqkv::pg
