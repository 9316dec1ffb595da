#include "pg/table_runtime.h"

#include "pg/kv_session.h"

namespace eloqkv::pg {

uint32_t TableKeyspace(eloqkv::Engine* e, const KvTable* t, bool create) {
  uint32_t id = 0;
  bool found = false;
  PgError err;
  if (!kv::ResolveKeyspace(e, t->keyspace, create, &id, &found, nullptr, &err))
    RaiseError(err, "could not open the keyspace of an eloqkv table");
  if (!found) {
    ereport(ERROR,
            (errcode(ERRCODE_UNDEFINED_OBJECT),
             errmsg("keyspace \"%s\" of foreign table \"%s\" does not exist in the eloqkv engine",
                    t->keyspace_option, t->relname),
             errhint("The engine's data directory does not have this table's data; "
                     "recreate the table to start it empty.")));
  }
  return id;
}

}  // namespace eloqkv::pg
