// INSERT, UPDATE, DELETE, COPY FROM and TRUNCATE on foreign KV tables. Writes are buffered in the
// transaction (kv_session.h) and applied at commit as one atomic batch.
#pragma once

#include "pg/pg_headers.h"

extern "C" {
#include "foreign/fdwapi.h"
}

namespace eloqkv::pg {

int IsRelUpdatable(Relation rel);
void AddUpdateTargets(PlannerInfo* root, Index rtindex, RangeTblEntry* target_rte,
                      Relation target_relation);
List* PlanModify(PlannerInfo* root, ModifyTable* plan, Index result_relation, int subplan_index);
void BeginModify(ModifyTableState* mtstate, ResultRelInfo* rinfo, List* fdw_private,
                 int subplan_index, int eflags);
TupleTableSlot* ExecInsert(EState* estate, ResultRelInfo* rinfo, TupleTableSlot* slot,
                           TupleTableSlot* plan_slot);
TupleTableSlot** ExecBatchInsert(EState* estate, ResultRelInfo* rinfo, TupleTableSlot** slots,
                                 TupleTableSlot** plan_slots, int* num_slots);
int GetBatchSize(ResultRelInfo* rinfo);
TupleTableSlot* ExecUpdate(EState* estate, ResultRelInfo* rinfo, TupleTableSlot* slot,
                           TupleTableSlot* plan_slot);
TupleTableSlot* ExecDelete(EState* estate, ResultRelInfo* rinfo, TupleTableSlot* slot,
                           TupleTableSlot* plan_slot);
void EndModify(EState* estate, ResultRelInfo* rinfo);
void BeginInsert(ModifyTableState* mtstate, ResultRelInfo* rinfo);
void EndInsert(EState* estate, ResultRelInfo* rinfo);
void ExecTruncate(List* rels, DropBehavior behavior, bool restart_seqs);

// eloqkv.upsert(regclass, row): writes a row whether or not its key exists.
void UpsertRow(Oid relid, Datum row_datum);

}  // namespace eloqkv::pg
