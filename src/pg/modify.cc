#include "pg/modify.h"

#include <cstring>

#include "engine/eloqkv.h"
#include "pg/engine_access.h"
#include "pg/key_codec.h"
#include "pg/kv_session.h"
#include "pg/row_codec.h"
#include "pg/table_options.h"
#include "pg/table_runtime.h"

extern "C" {
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/appendinfo.h"
#include "parser/parsetree.h"
#include "nodes/pathnodes.h"
#include "optimizer/optimizer.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/typcache.h"
}

namespace eloqkv::pg {
namespace {

struct ModifyState {
  const KvTable* table;
  TupleDesc desc;
  eloqkv::Engine* engine;
  uint32_t ks;
  bool skip_conflicts;  // INSERT ... ON CONFLICT DO NOTHING
  AttrNumber junk[kMaxKeyColumns];
  MemoryContext row_cxt;
};

const char* JunkName(int k) {
  return psprintf("eloqkv_key_%d", k + 1);
}

ModifyState* NewState(EState* estate, Relation rel) {
  ModifyState* s = static_cast<ModifyState*>(palloc0(sizeof(ModifyState)));
  s->table = CachedKvTable(rel);
  s->desc = RelationGetDescr(rel);
  s->engine = ReadyEngine();
  s->ks = TableKeyspace(s->engine, s->table, /*create=*/true);
  s->row_cxt = AllocSetContextCreate(estate->es_query_cxt, "eloqkv modify", ALLOCSET_DEFAULT_SIZES);
  return s;
}

[[noreturn]] void Duplicate(const ModifyState* s, const StringInfo key) {
  ereport(ERROR,
          (errcode(ERRCODE_UNIQUE_VIOLATION),
           errmsg("duplicate key value violates unique constraint \"%s_key\"", s->table->relname),
           errdetail("Key %s already exists.", DescribeKey(s->table, key->data, key->len)),
           errhint("Use INSERT ... ON CONFLICT DO NOTHING to skip it, UPDATE to change it, "
                   "or eloqkv.upsert() to write it either way.")));
  pg_unreachable();
}

void CheckValueSize(const ModifyState* s, const StringInfo value) {
  if (static_cast<size_t>(value->len) > eloqkv::kMaxValueSize) {
    ereport(ERROR,
            (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
             errmsg("row of relation \"%s\" is %d bytes; eloqkv rows are limited to %zu bytes",
                    s->table->relname, value->len, eloqkv::kMaxValueSize)));
  }
}

// Encodes the key and value of the row in `slot`.
void EncodeSlot(const ModifyState* s, TupleTableSlot* slot, StringInfo key, StringInfo value,
                int64* expire) {
  slot_getallattrs(slot);
  EncodeKey(s->table, slot->tts_values, slot->tts_isnull, key);
  CheckKeyLength(s->table, key);
  EncodeRow(s->table, s->desc, slot->tts_values, slot->tts_isnull, value);
  CheckValueSize(s, value);
  *expire = RowExpiry(s->table, slot->tts_values, slot->tts_isnull);
}

// The key of the row an UPDATE or DELETE targets, from the junk columns of the plan's row.
void OldKey(const ModifyState* s, TupleTableSlot* plan_slot, StringInfo key) {
  Datum* values = static_cast<Datum*>(palloc0(sizeof(Datum) * s->desc->natts));
  bool* isnull = static_cast<bool*>(palloc(sizeof(bool) * s->desc->natts));
  for (int i = 0; i < s->desc->natts; ++i) isnull[i] = true;
  for (int k = 0; k < s->table->nkeys; ++k) {
    bool null;
    const Datum d = ExecGetJunkAttribute(plan_slot, s->junk[k], &null);
    if (null) elog(ERROR, "eloqkv: the key of the row to modify is missing");
    values[s->table->key_attnums[k] - 1] = d;
    isnull[s->table->key_attnums[k] - 1] = false;
  }
  EncodeKey(s->table, values, isnull, key);
}

void Put(const ModifyState* s, const StringInfo key, const StringInfo value, int64 expire,
         kv::Intent intent, uint64_t read_seq) {
  PgError err;
  if (!kv::BufferPut(s->ks, s->table->keyspace, s->table->relid, key->data, key->len, value->data,
                     value->len, expire, intent, read_seq, GetCurrentTransactionNestLevel(), &err))
    RaiseError(err);
}

bool Exists(const ModifyState* s, const StringInfo key) {
  bool exists;
  PgError err;
  if (!kv::Exists(s->engine, s->ks, key->data, key->len, &exists, &err)) RaiseError(err);
  return exists;
}

TupleTableSlot* InsertRow(ModifyState* s, TupleTableSlot* slot) {
  MemoryContextReset(s->row_cxt);
  MemoryContext old = MemoryContextSwitchTo(s->row_cxt);
  StringInfoData key, value;
  initStringInfo(&key);
  initStringInfo(&value);
  int64 expire;
  EncodeSlot(s, slot, &key, &value, &expire);
  // Checked now, like a primary key, and again atomically at commit (another session may
  // insert the key meanwhile: then the commit fails with the same error).
  if (Exists(s, &key)) {
    MemoryContextSwitchTo(old);
    if (s->skip_conflicts) return nullptr;
    Duplicate(s, &key);
  }
  Put(s, &key, &value, expire, s->skip_conflicts ? kv::Intent::kInsertOrSkip : kv::Intent::kInsert,
      0);
  MemoryContextSwitchTo(old);
  return slot;
}

}  // namespace

// Caches are filled by their source query only: a write would be silently undone by the next
// invalidation, or cache a row the source does not have. Mirrors follow their source table.
void RefuseCacheWrite(const KvTable* t) {
  if (OidIsValid(t->mirror_of)) {
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("cannot write to \"%s\": it is an eloqkv mirror of table \"%s\"",
                           t->relname, get_rel_name(t->mirror_of)),
                    errhint("Write to \"%s\"; its triggers keep the mirror in step.",
                            get_rel_name(t->mirror_of))));
  }
  if (!t->cache) return;
  ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                  errmsg("cannot write to \"%s\": it is an eloqkv cache, filled by its source query",
                         t->relname),
                  errhint("Change the source table, then call eloqkv.invalidate('%s', key) or "
                          "eloqkv.invalidate_all('%s'); eloqkv.invalidate_on_change() does it "
                          "for every change.",
                          t->relname, t->relname)));
}

int IsRelUpdatable(Relation) {
  return (1 << CMD_INSERT) | (1 << CMD_UPDATE) | (1 << CMD_DELETE);
}

void AddUpdateTargets(PlannerInfo* root, Index rtindex, RangeTblEntry*, Relation target) {
  const KvTable* t = LoadKvTable(target);
  for (int k = 0; k < t->nkeys; ++k) {
    Var* var = makeVar(static_cast<int>(rtindex), t->key_attnums[k], t->key_types[k],
                       t->key_typmods[k], t->key_collations[k], 0);
    add_row_identity_var(root, var, rtindex, JunkName(k));
  }
}

List* PlanModify(PlannerInfo* root, ModifyTable* plan, Index rti, int) {
  RefuseCacheWrite(CachedKvTableById(planner_rt_fetch(rti, root)->relid));
  return list_make1(makeInteger(plan->onConflictAction == ONCONFLICT_NOTHING));
}

void BeginModify(ModifyTableState* mtstate, ResultRelInfo* rinfo, List* fdw_private, int,
                 int eflags) {
  if (eflags & EXEC_FLAG_EXPLAIN_ONLY) return;
  ModifyState* s = NewState(mtstate->ps.state, rinfo->ri_RelationDesc);
  s->skip_conflicts = fdw_private != NIL && intVal(linitial(fdw_private)) != 0;
  if (mtstate->operation == CMD_UPDATE || mtstate->operation == CMD_DELETE) {
    Plan* subplan = outerPlanState(mtstate)->plan;
    for (int k = 0; k < s->table->nkeys; ++k) {
      s->junk[k] = ExecFindJunkAttributeInTlist(subplan->targetlist, JunkName(k));
      if (!AttributeNumberIsValid(s->junk[k])) elog(ERROR, "eloqkv: key junk column missing");
    }
  }
  rinfo->ri_FdwState = s;
}

TupleTableSlot* ExecInsert(EState*, ResultRelInfo* rinfo, TupleTableSlot* slot, TupleTableSlot*) {
  return InsertRow(static_cast<ModifyState*>(rinfo->ri_FdwState), slot);
}

TupleTableSlot** ExecBatchInsert(EState*, ResultRelInfo* rinfo, TupleTableSlot** slots,
                                 TupleTableSlot**, int* num_slots) {
  ModifyState* s = static_cast<ModifyState*>(rinfo->ri_FdwState);
  int kept = 0;
  for (int i = 0; i < *num_slots; ++i) {
    if (InsertRow(s, slots[i]) != nullptr) slots[kept++] = slots[i];
  }
  *num_slots = kept;
  return slots;
}

int GetBatchSize(ResultRelInfo* rinfo) {
  // Like postgres_fdw: no batching when rows must come back one by one.
  if (rinfo->ri_projectReturning != nullptr || rinfo->ri_WithCheckOptions != NIL ||
      (rinfo->ri_TrigDesc != nullptr &&
       (rinfo->ri_TrigDesc->trig_insert_before_row || rinfo->ri_TrigDesc->trig_insert_after_row)))
    return 1;
  const ModifyState* s = static_cast<const ModifyState*>(rinfo->ri_FdwState);
  return s != nullptr ? s->table->batch_size : LoadKvTable(rinfo->ri_RelationDesc)->batch_size;
}

TupleTableSlot* ExecUpdate(EState*, ResultRelInfo* rinfo, TupleTableSlot* slot,
                           TupleTableSlot* plan_slot) {
  ModifyState* s = static_cast<ModifyState*>(rinfo->ri_FdwState);
  MemoryContextReset(s->row_cxt);
  MemoryContext old = MemoryContextSwitchTo(s->row_cxt);
  StringInfoData old_key, key, value;
  initStringInfo(&old_key);
  initStringInfo(&key);
  initStringInfo(&value);
  OldKey(s, plan_slot, &old_key);
  int64 expire;
  EncodeSlot(s, slot, &key, &value, &expire);
  const uint64_t read_seq = kv::ReadSeq(s->ks, old_key.data, old_key.len);
  if (key.len == old_key.len && std::memcmp(key.data, old_key.data, key.len) == 0) {
    Put(s, &key, &value, expire, kv::Intent::kReplace, read_seq);
  } else {
    // A new key: the row moves, so the new key must be free.
    if (Exists(s, &key)) Duplicate(s, &key);
    PgError err;
    if (!kv::BufferDelete(s->ks, s->table->keyspace, s->table->relid, old_key.data, old_key.len,
                          read_seq, GetCurrentTransactionNestLevel(), &err))
      RaiseError(err);
    Put(s, &key, &value, expire, kv::Intent::kInsert, 0);
  }
  MemoryContextSwitchTo(old);
  return slot;
}

TupleTableSlot* ExecDelete(EState*, ResultRelInfo* rinfo, TupleTableSlot* slot,
                           TupleTableSlot* plan_slot) {
  ModifyState* s = static_cast<ModifyState*>(rinfo->ri_FdwState);
  MemoryContextReset(s->row_cxt);
  MemoryContext old = MemoryContextSwitchTo(s->row_cxt);
  StringInfoData key;
  initStringInfo(&key);
  OldKey(s, plan_slot, &key);
  PgError err;
  if (rinfo->ri_projectReturning != nullptr) {
    // RETURNING shows the row as it is now.
    kv::Row row;
    bool found;
    if (!kv::Get(s->engine, s->ks, key.data, key.len, &row, &found, nullptr, &err)) RaiseError(err);
    ExecClearTuple(slot);
    if (found) {
      for (int i = 0; i < s->desc->natts; ++i) slot->tts_isnull[i] = true;
      (void)DecodeKey(s->table, row.key, row.key_len, slot->tts_values, slot->tts_isnull);
      DecodeRow(s->table, s->desc, row.value, row.value_len, slot->tts_values, slot->tts_isnull);
      ExecStoreVirtualTuple(slot);
    }
  }
  if (!kv::BufferDelete(s->ks, s->table->keyspace, s->table->relid, key.data, key.len,
                        kv::ReadSeq(s->ks, key.data, key.len), GetCurrentTransactionNestLevel(),
                        &err))
    RaiseError(err);
  MemoryContextSwitchTo(old);
  return slot;
}

void EndModify(EState*, ResultRelInfo*) {}

void BeginInsert(ModifyTableState* mtstate, ResultRelInfo* rinfo) {
  ModifyState* s = NewState(mtstate->ps.state, rinfo->ri_RelationDesc);
  RefuseCacheWrite(s->table);
  s->skip_conflicts = false;
  rinfo->ri_FdwState = s;
}

void EndInsert(EState*, ResultRelInfo*) {}

void ExecTruncate(List* rels, DropBehavior, bool) {
  eloqkv::Engine* e = ReadyEngine();
  ListCell* lc;
  foreach (lc, rels) {
    Relation rel = static_cast<Relation>(lfirst(lc));
    const KvTable* t = LoadKvTable(rel);
    RefuseCacheWrite(t);
    const uint32_t ks = TableKeyspace(e, t, /*create=*/true);
    PgError err;
    if (!kv::BufferTruncate(ks, t->keyspace, t->relid, GetCurrentTransactionNestLevel(), &err))
      RaiseError(err);
  }
}

void UpsertRow(Oid relid, Datum row_datum) {
  if (!IsKvTable(relid)) {
    ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                    errmsg("\"%s\" is not an eloqkv foreign table", get_rel_name(relid))));
  }
  // Writing a row whether or not it exists is an INSERT and an UPDATE.
  const AclResult acl = pg_class_aclcheck(relid, GetUserId(), ACL_INSERT | ACL_UPDATE);
  if (acl != ACLCHECK_OK) aclcheck_error(acl, OBJECT_FOREIGN_TABLE, get_rel_name(relid));
  Relation rel = table_open(relid, RowExclusiveLock);
  ModifyState* s = static_cast<ModifyState*>(palloc0(sizeof(ModifyState)));
  s->table = LoadKvTable(rel);
  RefuseCacheWrite(s->table);
  s->desc = RelationGetDescr(rel);
  s->engine = ReadyEngine();
  s->ks = TableKeyspace(s->engine, s->table, /*create=*/true);
  HeapTupleHeader th = DatumGetHeapTupleHeader(row_datum);
  if (HeapTupleHeaderGetTypeId(th) != rel->rd_rel->reltype) {
    ereport(ERROR,
            (errcode(ERRCODE_DATATYPE_MISMATCH),
             errmsg("row has type %s, not the row type of \"%s\"",
                    format_type_be(HeapTupleHeaderGetTypeId(th)), RelationGetRelationName(rel)),
             errhint("Pass a row of the table, e.g. ROW(...)::%s.", RelationGetRelationName(rel))));
  }
  HeapTupleData tuple;
  tuple.t_len = HeapTupleHeaderGetDatumLength(th);
  ItemPointerSetInvalid(&tuple.t_self);
  tuple.t_tableOid = relid;
  tuple.t_data = th;
  Datum* values = static_cast<Datum*>(palloc(sizeof(Datum) * s->desc->natts));
  bool* isnull = static_cast<bool*>(palloc(sizeof(bool) * s->desc->natts));
  heap_deform_tuple(&tuple, s->desc, values, isnull);
  StringInfoData key, value;
  initStringInfo(&key);
  initStringInfo(&value);
  EncodeKey(s->table, values, isnull, &key);
  CheckKeyLength(s->table, &key);
  EncodeRow(s->table, s->desc, values, isnull, &value);
  CheckValueSize(s, &value);
  Put(s, &key, &value, RowExpiry(s->table, values, isnull), kv::Intent::kUpsert, 0);
  table_close(rel, NoLock);
}

}  // namespace eloqkv::pg
