#include "pg/scan.h"

#include <cstring>

#include "cache/cache_lookup.h"
#include "pg/engine_access.h"
#include "pg/replication.h"
#include "pg/key_codec.h"
#include "pg/kv_session.h"
#include "pg/planner.h"
#include "pg/row_codec.h"
#include "pg/table_options.h"
#include "pg/table_runtime.h"

extern "C" {
#include "executor/executor.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

namespace eloqkv::pg {
namespace {

struct KeyBuf {
  char* data;
  size_t len;
};

struct ScanState {
  const KvTable* table;
  TupleDesc desc;
  eloqkv::Engine* engine;
  uint32_t ks;
  Access access;
  int neq;
  bool has_lower, lower_incl, has_upper, upper_incl, for_update;
  char* like_prefix;
  List* exprs;  // ExprStates, in the order GetPlan laid them out
  MemoryContext row_cxt;  // the node's per-tuple memory, reset before every row
  // The keys of a point or multi-get access: they must outlive the per-tuple memory that
  // IterateForeignScan runs in (a cache reads them one per call). Reset at every (re)start.
  MemoryContext keys_cxt;
  bool started;
  bool exhausted;
  // Point lookups and multi-gets: the keys to fetch.
  KeyBuf* keys;
  int nkeys;
  int next;
  kv::Cursor* cursor;
  kv::ReadCounters counters;
  MemoryContextCallback cleanup;
};

// Closes the engine cursor when the query's memory goes away, also after an error (when
// EndForeignScan is never called).
void CloseOnReset(void* arg) {
  ScanState* s = static_cast<ScanState*>(arg);
  if (s->cursor != nullptr) {
    kv::CloseCursor(s->cursor);
    s->cursor = nullptr;
  }
}

int CompareKeys(const void* a, const void* b) {
  const KeyBuf* x = static_cast<const KeyBuf*>(a);
  const KeyBuf* y = static_cast<const KeyBuf*>(b);
  const int c = std::memcmp(x->data, y->data, Min(x->len, y->len));
  if (c != 0) return c;
  return x->len < y->len ? -1 : (x->len > y->len ? 1 : 0);
}

// Evaluates the key expressions and prepares the access. Returns false if no row can match
// (a NULL compared with the key).
bool Start(ForeignScanState* node, ScanState* s) {
  ExprContext* econtext = node->ss.ps.ps_ExprContext;
  ListCell* lc = list_head(s->exprs);
  auto eval = [&](bool* isnull) {
    ExprState* st = static_cast<ExprState*>(lfirst(lc));
    lc = lnext(s->exprs, lc);
    return ExecEvalExpr(st, econtext, isnull);
  };
  StringInfoData eq;
  initStringInfo(&eq);
  for (int i = 0; i < s->neq; ++i) {
    bool isnull;
    const Datum d = eval(&isnull);
    if (isnull) return false;
    EncodeKeyPart(s->table, i, d, &eq);
  }
  s->nkeys = 0;
  s->next = 0;
  switch (s->access) {
    case Access::kPoint:
      s->keys = static_cast<KeyBuf*>(palloc(sizeof(KeyBuf)));
      s->keys[0] = KeyBuf{eq.data, static_cast<size_t>(eq.len)};
      s->nkeys = 1;
      return true;
    case Access::kMultiGet: {
      bool isnull;
      const Datum d = eval(&isnull);
      if (isnull) return false;
      ArrayType* arr = DatumGetArrayTypeP(d);
      int16 typlen;
      bool byval;
      char align;
      get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &byval, &align);
      Datum* elems;
      bool* nulls;
      int n;
      deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, byval, align, &elems, &nulls, &n);
      s->keys = static_cast<KeyBuf*>(palloc(sizeof(KeyBuf) * Max(n, 1)));
      for (int i = 0; i < n; ++i) {
        if (nulls[i]) continue;
        StringInfoData k;
        initStringInfo(&k);
        EncodeKeyPart(s->table, 0, elems[i], &k);
        s->keys[s->nkeys++] = KeyBuf{k.data, static_cast<size_t>(k.len)};
      }
      // = ANY returns each matching row once, whatever the array repeats.
      qsort(s->keys, s->nkeys, sizeof(KeyBuf), CompareKeys);
      int unique = 0;
      for (int i = 0; i < s->nkeys; ++i)
        if (unique == 0 || CompareKeys(&s->keys[unique - 1], &s->keys[i]) != 0)
          s->keys[unique++] = s->keys[i];
      s->nkeys = unique;
      if (s->nkeys == 0) return false;
      if (s->table->cache) return true;  // read key by key, through the cache's leases
      const char** ptrs = static_cast<const char**>(palloc(sizeof(char*) * s->nkeys));
      size_t* lens = static_cast<size_t*>(palloc(sizeof(size_t) * s->nkeys));
      for (int i = 0; i < s->nkeys; ++i) {
        ptrs[i] = s->keys[i].data;
        lens[i] = s->keys[i].len;
      }
      PgError err;
      if (!kv::MultiGet(s->engine, s->ks, s->nkeys, ptrs, lens, &s->counters, &err))
        RaiseError(err);
      return true;
    }
    default:
      break;
  }
  kv::CursorSpec spec;
  StringInfoData lower, upper;
  initStringInfo(&lower);
  initStringInfo(&upper);
  if (s->access == Access::kRange) {
    if (s->has_lower) {
      bool isnull;
      const Datum d = eval(&isnull);
      if (isnull) return false;
      EncodeKeyPart(s->table, 0, d, &lower);
      spec.lower = lower.data;
      spec.lower_len = lower.len;
      spec.has_lower = true;
      spec.lower_inclusive = s->lower_incl;
    }
    if (s->has_upper) {
      bool isnull;
      const Datum d = eval(&isnull);
      if (isnull) return false;
      EncodeKeyPart(s->table, 0, d, &upper);
      spec.upper = upper.data;
      spec.upper_len = upper.len;
      spec.has_upper = true;
      spec.upper_inclusive = s->upper_incl;
    }
  } else if (s->access == Access::kPrefix) {
    if (s->like_prefix[0] != '\0') {
      spec.prefix = s->like_prefix;
      spec.prefix_len = std::strlen(s->like_prefix);
    } else {
      spec.prefix = eq.data;
      spec.prefix_len = eq.len;
    }
  }
  PgError err;
  if (!kv::OpenCursor(s->engine, s->ks, spec, &s->cursor, &err)) RaiseError(err);
  return true;
}

// Reads key i of a cache: the row, or false when its source has none.
bool CacheRow(ScanState* s, int i, kv::Row* row) {
  const KeyBuf& k = s->keys[i];
  char* value;
  size_t len;
  if (!cache::Lookup(s->table, s->desc, s->engine, s->ks, k.data, k.len, &value, &len))
    return false;
  *row = kv::Row{k.data, k.len, value, len, 0};
  return true;
}

// Fills the slot from a row; false when the row is not one of this table's (a shared keyspace)
// or a cache's negative entry.
bool FillSlot(ScanState* s, TupleTableSlot* slot, const kv::Row& row) {
  ExecClearTuple(slot);
  if (s->table->cache && cache::IsNegativeEntry(row.value, row.value_len)) return false;
  MemoryContext old = MemoryContextSwitchTo(s->row_cxt);
  Datum* values = slot->tts_values;
  bool* isnull = slot->tts_isnull;
  for (int i = 0; i < s->desc->natts; ++i) isnull[i] = true;
  const bool ours = DecodeKey(s->table, row.key, row.key_len, values, isnull);
  if (ours) DecodeRow(s->table, s->desc, row.value, row.value_len, values, isnull);
  MemoryContextSwitchTo(old);
  if (!ours) return false;
  if (s->for_update && row.seq != 0) kv::NoteRead(s->ks, row.key, row.key_len, row.seq);
  ExecStoreVirtualTuple(slot);
  return true;
}

}  // namespace

void BeginScan(ForeignScanState* node, int eflags) {
  ForeignScan* plan = reinterpret_cast<ForeignScan*>(node->ss.ps.plan);
  ScanState* s = static_cast<ScanState*>(palloc0(sizeof(ScanState)));
  node->fdw_state = s;
  Relation rel = node->ss.ss_currentRelation;
  s->table = CachedKvTable(rel);
  s->desc = RelationGetDescr(rel);
  List* priv = plan->fdw_private;
  s->access = static_cast<Access>(intVal(list_nth(priv, kPrivAccess)));
  s->neq = intVal(list_nth(priv, kPrivEqualities));
  s->has_lower = intVal(list_nth(priv, kPrivHasLower)) != 0;
  s->lower_incl = intVal(list_nth(priv, kPrivLowerInclusive)) != 0;
  s->has_upper = intVal(list_nth(priv, kPrivHasUpper)) != 0;
  s->upper_incl = intVal(list_nth(priv, kPrivUpperInclusive)) != 0;
  s->like_prefix = strVal(list_nth(priv, kPrivLikePrefix));
  s->for_update = intVal(list_nth(priv, kPrivForUpdate)) != 0;
  if (eflags & EXEC_FLAG_EXPLAIN_ONLY) return;
  RefuseStaleKvReads();
  s->exprs = ExecInitExprList(plan->fdw_exprs, &node->ss.ps);
  s->row_cxt =
      AllocSetContextCreate(node->ss.ps.state->es_query_cxt, "eloqkv row", ALLOCSET_SMALL_SIZES);
  s->keys_cxt =
      AllocSetContextCreate(node->ss.ps.state->es_query_cxt, "eloqkv keys", ALLOCSET_SMALL_SIZES);
  s->engine = ReadyEngine();
  s->ks = TableKeyspace(s->engine, s->table, /*create=*/false);
  s->cleanup.func = CloseOnReset;
  s->cleanup.arg = s;
  MemoryContextRegisterResetCallback(node->ss.ps.state->es_query_cxt, &s->cleanup);
}

TupleTableSlot* IterateScan(ForeignScanState* node) {
  ScanState* s = static_cast<ScanState*>(node->fdw_state);
  TupleTableSlot* slot = node->ss.ss_ScanTupleSlot;
  if (!s->started) {
    s->started = true;
    MemoryContextReset(s->keys_cxt);
    MemoryContext old = MemoryContextSwitchTo(s->keys_cxt);
    s->exhausted = !Start(node, s);
    MemoryContextSwitchTo(old);
  }
  if (s->exhausted) return ExecClearTuple(slot);
  PgError err;
  for (;;) {
    // The previous row is consumed once the next is asked for.
    MemoryContextReset(s->row_cxt);
    kv::Row row;
    if (s->table->cache && (s->access == Access::kPoint || s->access == Access::kMultiGet)) {
      if (s->next >= s->nkeys) return ExecClearTuple(slot);
      MemoryContext old = MemoryContextSwitchTo(s->row_cxt);
      const bool found = CacheRow(s, s->next++, &row);
      MemoryContextSwitchTo(old);
      if (!found) continue;
      if (FillSlot(s, slot, row)) return slot;
      continue;
    }
    switch (s->access) {
      case Access::kPoint: {
        if (s->next++ > 0) return ExecClearTuple(slot);
        bool found;
        if (!kv::Get(s->engine, s->ks, s->keys[0].data, s->keys[0].len, &row, &found, &s->counters,
                     &err))
          RaiseError(err);
        if (!found) return ExecClearTuple(slot);
        break;
      }
      case Access::kMultiGet:
        if (s->next >= s->nkeys) return ExecClearTuple(slot);
        if (!kv::MultiGetRow(s->next++, &row)) continue;
        break;
      default: {
        bool done;
        if (!kv::CursorNext(s->cursor, &row, &done, &s->counters, &err)) RaiseError(err);
        if (done) return ExecClearTuple(slot);
        break;
      }
    }
    if (FillSlot(s, slot, row)) return slot;
  }
}

void RescanScan(ForeignScanState* node) {
  ScanState* s = static_cast<ScanState*>(node->fdw_state);
  CloseOnReset(s);
  s->started = false;
  s->exhausted = false;
}

void EndScan(ForeignScanState* node) {
  ScanState* s = static_cast<ScanState*>(node->fdw_state);
  if (s != nullptr) CloseOnReset(s);
}

void ExplainScan(ForeignScanState* node, ExplainState* es) {
  ForeignScan* plan = reinterpret_cast<ForeignScan*>(node->ss.ps.plan);
  ExplainPropertyText("Eloqkv Access", strVal(list_nth(plan->fdw_private, kPrivExplain)), es);
  ScanState* s = static_cast<ScanState*>(node->fdw_state);
  if (es->analyze && s != nullptr) {
    ExplainPropertyInteger("Eloqkv Rows Read", nullptr, static_cast<int64>(s->counters.rows), es);
    ExplainPropertyInteger("Eloqkv Value Cache Hits", nullptr,
                           static_cast<int64>(s->counters.cache_hits), es);
    ExplainPropertyInteger("Eloqkv Device Reads", nullptr,
                           static_cast<int64>(s->counters.device_reads), es);
  }
}

}  // namespace eloqkv::pg
