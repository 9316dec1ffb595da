// SQL-callable functions of the cache layer (src/sql declares them; docs/cache.md documents them).
#include "cache/cache_invalidate.h"
#include "cache/cache_shared.h"
#include "cache/cache_source.h"
#include "cache/trigger_target.h"
#include "pg/key_codec.h"
#include "pg/table_options.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "parser/parse_coerce.h"
#include "tcop/utility.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(eloqkv_analyze_cache_source);
PG_FUNCTION_INFO_V1(eloqkv_invalidate);
PG_FUNCTION_INFO_V1(eloqkv_invalidate_all);
PG_FUNCTION_INFO_V1(eloqkv_invalidate_tag);
PG_FUNCTION_INFO_V1(eloqkv_invalidate_trigger);
PG_FUNCTION_INFO_V1(eloqkv_cache_stats);
}

namespace eloqkv::cache {
namespace {

const pg::KvTable* CacheTable(Oid relid) {
  const char* name = get_rel_name(relid);
  if (name == nullptr || !pg::IsKvTable(relid) || !pg::CachedKvTableById(relid)->cache) {
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("\"%s\" is not an eloqkv cache",
                           name != nullptr ? name : psprintf("relation %u", relid)),
                    errhint("Caches are made by eloqkv.create_cache().")));
  }
  return pg::CachedKvTableById(relid);
}

// Queues the invalidation of `key`, of type `type` (text: converted to the key's type).
void InvalidateKey(const pg::KvTable* t, Datum key, Oid type) {
  const Oid key_type = t->key_types[0];
  if (type != key_type && !IsBinaryCoercible(type, key_type)) {
    if (type != TEXTOID) {
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("cache \"%s\" has a key of type %s, not %s", t->relname,
                             format_type_be(key_type), format_type_be(type)),
                      errhint("Cast the key, e.g. 42::%s.", format_type_be(key_type))));
    }
    Oid input;
    Oid ioparam;
    getTypeInputInfo(key_type, &input, &ioparam);
    key = OidInputFunctionCall(input, text_to_cstring(DatumGetTextPP(key)), ioparam,
                               t->key_typmods[0]);
  }
  StringInfoData k;
  initStringInfo(&k);
  pg::EncodeKeyPart(t, 0, key, &k);
  QueueInvalidation(t, k.data, static_cast<size_t>(k.len));
}

struct StatsRows {
  ReturnSetInfo* rsinfo;
};

void AddStatsRow(Oid relid, CacheCounters* c, void* arg) {
  if (get_rel_name(relid) == nullptr) return;  // dropped
  auto* rows = static_cast<StatsRows*>(arg);
  Datum v[14];
  bool nulls[14] = {false};
  v[0] = ObjectIdGetDatum(relid);
  pg_atomic_uint64* counters[] = {&c->hits,          &c->misses,          &c->fills,
                                  &c->lease_waits,   &c->lease_timeouts,  &c->stale_serves,
                                  &c->negative_hits, &c->early_refreshes, &c->invalidations,
                                  &c->refused_fills};
  for (int i = 0; i < 10; ++i)
    v[i + 1] = Int64GetDatum(static_cast<int64>(pg_atomic_read_u64(counters[i])));
  const bool any = pg_atomic_read_u64(&c->fills) > 0;
  v[11] = Float8GetDatum(FillLatencyQuantile(c, 0.5));
  v[12] = Float8GetDatum(FillLatencyQuantile(c, 0.99));
  nulls[11] = nulls[12] = !any;
  v[13] = Float8GetDatum(any ? static_cast<double>(pg_atomic_read_u64(&c->fill_us_total)) /
                                   static_cast<double>(pg_atomic_read_u64(&c->fills)) / 1000.0
                             : 0.0);
  nulls[13] = !any;
  tuplestore_putvalues(rows->rsinfo->setResult, rows->rsinfo->setDesc, v, nulls);
}

}  // namespace
}  // namespace eloqkv::cache

using eloqkv::cache::CacheTable;

// analyze_cache_source(name, source) -> (columns text[], types text[], param_type text)
extern "C" Datum eloqkv_analyze_cache_source(PG_FUNCTION_ARGS) {
  if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("a cache needs a name and a source query")));
  }
  const char* name = text_to_cstring(PG_GETARG_TEXT_PP(0));
  const char* source = text_to_cstring(PG_GETARG_TEXT_PP(1));
  Oid param_type = InvalidOid;
  List* columns = eloqkv::cache::AnalyzeSource(source, name, &param_type);
  const int n = list_length(columns);
  Datum* names = static_cast<Datum*>(palloc(sizeof(Datum) * Max(n, 1)));
  Datum* types = static_cast<Datum*>(palloc(sizeof(Datum) * Max(n, 1)));
  int i = 0;
  ListCell* cell;
  foreach (cell, columns) {
    const auto* c = static_cast<const eloqkv::cache::SourceColumn*>(lfirst(cell));
    names[i] = CStringGetTextDatum(c->name);
    types[i] = CStringGetTextDatum(format_type_with_typemod(c->type, c->typmod));
    ++i;
  }
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "analyze_cache_source must return a record");
  desc = BlessTupleDesc(desc);
  Datum v[3];
  bool nulls[3] = {false, false, false};
  v[0] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
  v[1] = PointerGetDatum(construct_array(types, n, TEXTOID, -1, false, TYPALIGN_INT));
  v[2] = CStringGetTextDatum(format_type_be(param_type));
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, v, nulls)));
}

// invalidate(cache regclass, key anyelement) and invalidate(cache regclass, key text)
extern "C" Datum eloqkv_invalidate(PG_FUNCTION_ARGS) {
  PreventCommandIfReadOnly("eloqkv.invalidate()");
  if (PG_ARGISNULL(0)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("the cache must not be NULL")));
  }
  const eloqkv::pg::KvTable* t = CacheTable(PG_GETARG_OID(0));
  if (PG_ARGISNULL(1)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("the key to invalidate in cache \"%s\" must not be NULL", t->relname)));
  }
  eloqkv::cache::InvalidateKey(t, PG_GETARG_DATUM(1), get_fn_expr_argtype(fcinfo->flinfo, 1));
  PG_RETURN_VOID();
}

extern "C" Datum eloqkv_invalidate_all(PG_FUNCTION_ARGS) {
  PreventCommandIfReadOnly("eloqkv.invalidate_all()");
  if (PG_ARGISNULL(0)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("the cache must not be NULL")));
  }
  eloqkv::cache::QueueInvalidation(CacheTable(PG_GETARG_OID(0)), nullptr, 0);
  PG_RETURN_VOID();
}

// invalidate_tag(cache regclass, tag text)
extern "C" Datum eloqkv_invalidate_tag(PG_FUNCTION_ARGS) {
  PreventCommandIfReadOnly("eloqkv.invalidate_tag()");
  if (PG_ARGISNULL(0)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("the cache must not be NULL")));
  }
  const eloqkv::pg::KvTable* t = CacheTable(PG_GETARG_OID(0));
  if (t->tag_attnum == 0) {
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("cache \"%s\" has no tag column", t->relname),
                    errhint("Create it with eloqkv.create_cache(..., tag => 'column').")));
  }
  if (PG_ARGISNULL(1)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("the tag to invalidate in cache \"%s\" must not be NULL", t->relname)));
  }
  text* tag = PG_GETARG_TEXT_PP(1);
  eloqkv::cache::QueueTagInvalidation(t, VARDATA_ANY(tag), VARSIZE_ANY_EXHDR(tag));
  PG_RETURN_VOID();
}

// The trigger eloqkv.invalidate_on_change installs: arguments (cache oid, key column). Row
// triggers invalidate the old and the new key; a TRUNCATE trigger the whole cache.
extern "C" Datum eloqkv_invalidate_trigger(PG_FUNCTION_ARGS) {
  const Oid cache = eloqkv::cache::TriggerTarget(fcinfo, "eloqkv_invalidate_trigger", 2);
  if (!OidIsValid(cache)) return PointerGetDatum(nullptr);
  TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  const eloqkv::pg::KvTable* t = CacheTable(cache);
  if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
    eloqkv::cache::QueueInvalidation(t, nullptr, 0);
    return PointerGetDatum(nullptr);
  }
  TupleDesc desc = RelationGetDescr(td->tg_relation);
  const int attnum = SPI_fnumber(desc, td->tg_trigger->tgargs[1]);
  if (attnum <= 0) {
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                    errmsg("column \"%s\" of \"%s\" no longer exists; it keyed cache \"%s\"",
                           td->tg_trigger->tgargs[1], RelationGetRelationName(td->tg_relation),
                           t->relname)));
  }
  const Oid type = TupleDescAttr(desc, attnum - 1)->atttypid;
  HeapTuple rows[2] = {nullptr, nullptr};
  if (TRIGGER_FIRED_BY_INSERT(td->tg_event)) rows[0] = td->tg_trigtuple;
  if (TRIGGER_FIRED_BY_DELETE(td->tg_event)) rows[0] = td->tg_trigtuple;
  if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
    rows[0] = td->tg_trigtuple;
    rows[1] = td->tg_newtuple;
  }
  Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
  Datum keys[2];
  bool nulls[2] = {true, true};
  for (int i = 0; i < 2; ++i) {
    if (rows[i] == nullptr) continue;
    keys[i] = heap_getattr(rows[i], attnum, desc, &nulls[i]);
    // An UPDATE that keeps the key invalidates it once.
    if (i == 1 && !nulls[0] && !nulls[1] &&
        datumIsEqual(keys[0], keys[1], att->attbyval, att->attlen))
      continue;
    if (!nulls[i]) eloqkv::cache::InvalidateKey(t, keys[i], type);
  }
  return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple
                                                               : td->tg_trigtuple);
}

extern "C" Datum eloqkv_cache_stats(PG_FUNCTION_ARGS) {
  InitMaterializedSRF(fcinfo, 0);
  eloqkv::cache::StatsRows rows{reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo)};
  eloqkv::cache::ForEachCounters(eloqkv::cache::AddStatsRow, &rows);
  return static_cast<Datum>(0);
}
