#include "cache/mirror.h"

#include <cstring>

#include "cache/trigger_target.h"
#include "pg/engine_access.h"
#include "pg/key_codec.h"
#include "pg/kv_session.h"
#include "pg/pg_guard.h"
#include "pg/row_codec.h"
#include "pg/table_options.h"
#include "pg/table_runtime.h"

extern "C" {
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(eloqkv_mirror_trigger);
PG_FUNCTION_INFO_V1(eloqkv_mirror_copy_chunk);
}

namespace eloqkv::cache {
namespace {

using pg::KvTable;
using pg::PgError;
using pg::RaiseError;

// A mirror open for writing, and where each of its columns is in the source's rows.
struct MirrorWriter {
  Relation mirror;
  const KvTable* t;
  TupleDesc desc;
  uint32_t ks;
  AttrNumber* source_att;  // mirror attnum - 1 -> source attnum (0: none)
  Datum* values;
  bool* isnull;
};

MirrorWriter OpenMirror(Oid mirror_relid, TupleDesc source_desc, const char* source_name) {
  MirrorWriter w;
  w.mirror = relation_open(mirror_relid, RowExclusiveLock);
  w.t = pg::CachedKvTable(w.mirror);
  if (!OidIsValid(w.t->mirror_of)) {
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("\"%s\" is not an eloqkv mirror", RelationGetRelationName(w.mirror))));
  }
  w.desc = RelationGetDescr(w.mirror);
  w.ks = pg::TableKeyspace(pg::ReadyEngine(), w.t, /*create=*/false);
  w.source_att = static_cast<AttrNumber*>(palloc0(sizeof(AttrNumber) * w.desc->natts));
  w.values = static_cast<Datum*>(palloc0(sizeof(Datum) * w.desc->natts));
  w.isnull = static_cast<bool*>(palloc(sizeof(bool) * w.desc->natts));
  for (int i = 0; i < w.desc->natts; ++i) {
    Form_pg_attribute m = TupleDescAttr(w.desc, i);
    if (m->attisdropped) continue;
    for (int j = 0; j < source_desc->natts; ++j) {
      Form_pg_attribute s = TupleDescAttr(source_desc, j);
      if (s->attisdropped || std::strcmp(NameStr(s->attname), NameStr(m->attname)) != 0) continue;
      if (s->atttypid != m->atttypid) {
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("mirror \"%s\" no longer matches table \"%s\"",
                               RelationGetRelationName(w.mirror), source_name),
                        errdetail("Column \"%s\" is %s in the table and %s in the mirror.",
                                  NameStr(m->attname), format_type_be(s->atttypid),
                                  format_type_be(m->atttypid)),
                        errhint("Drop the mirror and create it again with eloqkv.create_mirror.")));
      }
      w.source_att[i] = s->attnum;
    }
  }
  return w;
}

void CloseMirror(MirrorWriter* w) {
  relation_close(w->mirror, NoLock);
}

// Encodes the mirror row of a source tuple into key and value.
void EncodeMirrorRow(MirrorWriter* w, HeapTuple tuple, TupleDesc source_desc, StringInfo key,
                     StringInfo value) {
  for (int i = 0; i < w->desc->natts; ++i) {
    w->isnull[i] = true;
    if (w->source_att[i] != 0)
      w->values[i] = heap_getattr(tuple, w->source_att[i], source_desc, &w->isnull[i]);
  }
  resetStringInfo(key);
  resetStringInfo(value);
  pg::EncodeKey(w->t, w->values, w->isnull, key);
  pg::CheckKeyLength(w->t, key);
  pg::EncodeRow(w->t, w->desc, w->values, w->isnull, value);
}

void BufferPut(MirrorWriter* w, const StringInfo key, const StringInfo value,
               pg::kv::Intent intent) {
  PgError err;
  if (!pg::kv::BufferPut(w->ks, w->t->keyspace, w->t->relid, key->data, key->len, value->data,
                         value->len, 0, intent, 0, GetCurrentTransactionNestLevel(), &err))
    RaiseError(err, "could not write to the mirror");
}

void BufferDelete(MirrorWriter* w, const StringInfo key) {
  PgError err;
  if (!pg::kv::BufferDelete(w->ks, w->t->keyspace, w->t->relid, key->data, key->len, 0,
                            GetCurrentTransactionNestLevel(), &err))
    RaiseError(err, "could not write to the mirror");
}

// mirror_copy_chunk's record: (last_key, copied); last_key NULL when no key followed.
Datum ChunkResult(FunctionCallInfo fcinfo, const char* last, int32 copied) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "mirror_copy_chunk must return a record");
  Datum v[2] = {last != nullptr ? CStringGetTextDatum(last) : 0, Int32GetDatum(copied)};
  bool nulls[2] = {last == nullptr, false};
  return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), v, nulls));
}

}  // namespace
}  // namespace eloqkv::cache

using namespace eloqkv::cache;  // NOLINT: the SQL entry points below

// The trigger eloqkv.create_mirror installs on the source table: argument = the mirror's oid.
extern "C" Datum eloqkv_mirror_trigger(PG_FUNCTION_ARGS) {
  const Oid mirror = TriggerTarget(fcinfo, "eloqkv_mirror_trigger", 1);
  if (!OidIsValid(mirror)) return PointerGetDatum(nullptr);  // eloqkv.drop_mirror removes them
  TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  TupleDesc source_desc = RelationGetDescr(td->tg_relation);
  MirrorWriter w = OpenMirror(mirror, source_desc, RelationGetRelationName(td->tg_relation));
  if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
    PgError err;
    if (!eloqkv::pg::kv::BufferTruncate(w.ks, w.t->keyspace, w.t->relid,
                                        GetCurrentTransactionNestLevel(), &err))
      RaiseError(err, "could not truncate the mirror");
    CloseMirror(&w);
    return PointerGetDatum(nullptr);
  }
  StringInfoData key, value, old_key, old_value;
  initStringInfo(&key);
  initStringInfo(&value);
  initStringInfo(&old_key);
  initStringInfo(&old_value);
  if (TRIGGER_FIRED_BY_DELETE(td->tg_event)) {
    EncodeMirrorRow(&w, td->tg_trigtuple, source_desc, &key, &value);
    BufferDelete(&w, &key);
  } else {
    HeapTuple row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
    if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
      EncodeMirrorRow(&w, td->tg_trigtuple, source_desc, &old_key, &old_value);
    }
    EncodeMirrorRow(&w, row, source_desc, &key, &value);
    // A key that changed leaves its old row behind unless it is deleted.
    if (old_key.len > 0 &&
        (old_key.len != key.len || std::memcmp(old_key.data, key.data, key.len) != 0))
      BufferDelete(&w, &old_key);
    BufferPut(&w, &key, &value, eloqkv::pg::kv::Intent::kUpsert);
  }
  CloseMirror(&w);
  return PointerGetDatum(nullptr);
}

// mirror_copy_chunk(mirror, after text, rows int) -> (last_key text, copied int): copies the
// source rows with a key above `after` (NULL: from the first) up to the `rows`-th such key
// (last_key; NULL when there is none: the backfill is done), locked FOR SHARE until this
// transaction ends; keys already in the mirror at commit are kept.
extern "C" Datum eloqkv_mirror_copy_chunk(PG_FUNCTION_ARGS) {
  PreventCommandIfReadOnly("eloqkv.mirror_copy_chunk()");
  if (PG_ARGISNULL(0) || PG_ARGISNULL(2)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                    errmsg("mirror_copy_chunk needs a mirror and a chunk size")));
  }
  const Oid mirror = PG_GETARG_OID(0);
  const int rows = PG_GETARG_INT32(2);
  if (rows < 1) {
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("the chunk size must be positive")));
  }
  Relation mrel = relation_open(mirror, AccessShareLock);
  const KvTable* t = eloqkv::pg::CachedKvTable(mrel);
  const Oid source = t->mirror_of;
  relation_close(mrel, AccessShareLock);
  if (!OidIsValid(source)) {
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("\"%s\" is not an eloqkv mirror", get_rel_name(mirror))));
  }
  const char* key_name = get_attname(mirror, t->key_attnums[0], false);
  const Oid key_type = t->key_types[0];
  const char* source_name = quote_qualified_identifier(
      get_namespace_name(get_rel_namespace(source)), get_rel_name(source));
  const bool from_start = PG_ARGISNULL(1);
  const char* k = quote_identifier(key_name);
  Datum args[2] = {0, 0};
  Oid argtypes[2] = {key_type, key_type};
  if (!from_start) {
    Oid input, ioparam;
    getTypeInputInfo(key_type, &input, &ioparam);
    args[0] = OidInputFunctionCall(input, text_to_cstring(PG_GETARG_TEXT_PP(1)), ioparam, -1);
  }
  MemoryContext caller = CurrentMemoryContext;
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  // The chunk's upper bound first, read without locks: locked rows are re-read at their newest
  // version, and one whose key an UPDATE moved past the rest would make the next chunk skip
  // every row in between. Rows that move out of (after, bound] meanwhile reach the mirror
  // through the trigger.
  const char* bound_query =
      psprintf("SELECT max(%s) FROM (SELECT %s FROM %s %s ORDER BY %s LIMIT %d) s", k, k,
               source_name, from_start ? "" : psprintf("WHERE %s > $1", k), k, rows);
  int rc = SPI_execute_with_args(bound_query, from_start ? 0 : 1, argtypes, args, nullptr, true, 1);
  if (rc != SPI_OK_SELECT)
    elog(ERROR, "could not read \"%s\": %s", source_name, SPI_result_code_string(rc));
  bool no_rows = true;
  args[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &no_rows);
  if (no_rows) {
    SPI_finish();
    return ChunkResult(fcinfo, nullptr, 0);
  }
  char* last_text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
  const char* query =
      from_start
          ? psprintf("SELECT * FROM %s WHERE %s <= $1 ORDER BY %s FOR SHARE", source_name, k, k)
          : psprintf("SELECT * FROM %s WHERE %s > $1 AND %s <= $2 ORDER BY %s FOR SHARE",
                     source_name, k, k, k);
  if (from_start) args[0] = args[1];  // the bound is the only parameter
  rc = SPI_execute_with_args(query, from_start ? 1 : 2, argtypes, args, nullptr, false, 0);
  if (rc != SPI_OK_SELECT)
    elog(ERROR, "could not read \"%s\": %s", source_name, SPI_result_code_string(rc));
  TupleDesc source_desc = SPI_tuptable->tupdesc;
  MirrorWriter w = OpenMirror(mirror, source_desc, source_name);
  StringInfoData key, value;
  initStringInfo(&key);
  initStringInfo(&value);
  const uint64 n = SPI_processed;
  for (uint64 i = 0; i < n; ++i) {
    EncodeMirrorRow(&w, SPI_tuptable->vals[i], source_desc, &key, &value);
    // A key a trigger wrote first is newer than this copy: keep it.
    BufferPut(&w, &key, &value, eloqkv::pg::kv::Intent::kInsertOrSkip);
  }
  // The next chunk starts after the bound, whether or not a row still has it.
  MemoryContext old = MemoryContextSwitchTo(caller);
  char* last = pstrdup(last_text);
  MemoryContextSwitchTo(old);
  CloseMirror(&w);
  SPI_finish();
  return ChunkResult(fcinfo, last, static_cast<int32>(n));
}
