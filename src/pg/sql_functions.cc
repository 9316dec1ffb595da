// SQL-callable functions for KV tables: eloqkv.upsert() and eloqkv.table_keyspace().
#include "pg/modify.h"
#include "pg/pg_guard.h"
#include "pg/table_options.h"

extern "C" {
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

PG_FUNCTION_INFO_V1(eloqkv_upsert);
PG_FUNCTION_INFO_V1(eloqkv_table_keyspace);
}

extern "C" Datum eloqkv_upsert(PG_FUNCTION_ARGS) {
  PreventCommandIfReadOnly("eloqkv.upsert()");
  eloqkv::pg::UpsertRow(PG_GETARG_OID(0), PG_GETARG_DATUM(1));
  PG_RETURN_VOID();
}

extern "C" Datum eloqkv_table_keyspace(PG_FUNCTION_ARGS) {
  const Oid relid = PG_GETARG_OID(0);
  if (!eloqkv::pg::IsKvTable(relid)) PG_RETURN_NULL();
  const eloqkv::pg::KvTable* t = eloqkv::pg::LoadKvTableById(relid);
  PG_RETURN_TEXT_P(cstring_to_text(t->keyspace_option));
}
