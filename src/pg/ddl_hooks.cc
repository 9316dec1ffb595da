#include "pg/ddl_hooks.h"

#include <cstring>

#include "pg/engine_access.h"
#include "pg/kv_session.h"
#include "pg/pg_guard.h"
#include "pg/resp_tables.h"
#include "pg/table_options.h"

extern "C" {
#include "access/genam.h"
#include "nodes/value.h"
#include "nodes/makefuncs.h"
#include "utils/syscache.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_foreign_table.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace eloqkv::pg {
namespace {

ProcessUtility_hook_type g_prev_utility = nullptr;
object_access_hook_type g_prev_object_access = nullptr;

// The keyspace name a table's options give (without checking its columns).
void KeyspaceOf(Oid relid, char* out, size_t size, bool* shared) {
  DefaultKeyspaceName(relid, out, size);
  *shared = false;
  ForeignTable* ft = GetForeignTable(relid);
  ListCell* lc;
  foreach (lc, ft->options) {
    DefElem* def = lfirst_node(DefElem, lc);
    if (std::strcmp(def->defname, "keyspace") == 0) snprintf(out, size, "%s", defGetString(def));
    if (std::strcmp(def->defname, "shared") == 0) *shared = defGetBoolean(def);
  }
}

Oid RelationOwner(Oid relid) {
  HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
  if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for relation %u", relid);
  const Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tup))->relowner;
  ReleaseSysCache(tup);
  return owner;
}

// The first eloqkv table other than `self` for which match(relid) holds, or InvalidOid.
template <typename Match>
Oid FindKvTable(Oid self, Match match) {
  Oid found = InvalidOid;
  Relation ft = table_open(ForeignTableRelationId, AccessShareLock);
  SysScanDesc scan = systable_beginscan(ft, InvalidOid, false, nullptr, 0, nullptr);
  HeapTuple tup;
  while (!OidIsValid(found) && (tup = systable_getnext(scan)) != nullptr) {
    const Oid relid = reinterpret_cast<Form_pg_foreign_table>(GETSTRUCT(tup))->ftrelid;
    if (relid != self && IsKvTable(relid) && match(relid)) found = relid;
  }
  systable_endscan(scan);
  table_close(ft, AccessShareLock);
  return found;
}

// Other eloqkv tables that use `keyspace` (the first one found), or InvalidOid.
Oid OtherUser(Oid self, const char* keyspace, bool* other_shared) {
  return FindKvTable(self, [&](Oid relid) {
    char name[kMaxKeyspaceName + 1];
    KeyspaceOf(relid, name, sizeof(name), other_shared);
    return std::strcmp(name, keyspace) == 0;
  });
}

// Records the keyspace a table was created with as its `keyspace` option when it has none: the
// default name follows the table's name, and a later RENAME or SET SCHEMA must not detach the
// table from its rows.
void PinKeyspace(Oid relid, const char* keyspace) {
  ForeignTable* ft = GetForeignTable(relid);
  ListCell* lc;
  foreach (lc, ft->options) {
    if (std::strcmp(lfirst_node(DefElem, lc)->defname, "keyspace") == 0) return;
  }
  Relation rel = table_open(ForeignTableRelationId, RowExclusiveLock);
  HeapTuple tup = SearchSysCacheCopy1(FOREIGNTABLEREL, ObjectIdGetDatum(relid));
  if (!HeapTupleIsValid(tup)) elog(ERROR, "cache lookup failed for foreign table %u", relid);
  bool isnull;
  const Datum old = SysCacheGetAttr(FOREIGNTABLEREL, tup, Anum_pg_foreign_table_ftoptions, &isnull);
  DefElem* add =
      makeDefElemExtended(nullptr, pstrdup("keyspace"),
                          reinterpret_cast<Node*>(makeString(pstrdup(keyspace))), DEFELEM_ADD, -1);
  const Datum options = transformGenericOptions(
      ForeignTableRelationId, isnull ? PointerGetDatum(nullptr) : old, list_make1(add), InvalidOid);
  Datum values[Natts_pg_foreign_table] = {};
  bool nulls[Natts_pg_foreign_table] = {};
  bool replace[Natts_pg_foreign_table] = {};
  values[Anum_pg_foreign_table_ftoptions - 1] = options;
  replace[Anum_pg_foreign_table_ftoptions - 1] = true;
  HeapTuple updated = heap_modify_tuple(tup, RelationGetDescr(rel), values, nulls, replace);
  CatalogTupleUpdate(rel, &updated->t_self, updated);
  table_close(rel, RowExclusiveLock);
  CommandCounterIncrement();
}

void OnCreate(Oid relid) {
  const KvTable* t = LoadKvTableById(relid);  // checks key columns, types, expire column
  bool other_shared = false;
  const Oid other = OtherUser(relid, t->keyspace_option, &other_shared);
  if (OidIsValid(other) && !(t->shared && other_shared)) {
    ereport(ERROR, (errcode(ERRCODE_DUPLICATE_OBJECT),
                    errmsg("keyspace \"%s\" is already used by foreign table \"%s\"",
                           t->keyspace_option, get_rel_name(other)),
                    errhint("Choose another keyspace with OPTIONS (keyspace '...'), or set "
                            "OPTIONS (shared 'true') on both tables to share it.")));
  }
  // Sharing gives the new table every row of the other: only its owner's roles may.
  if (OidIsValid(other)) {
    const Oid owner = RelationOwner(other);
    if (!has_privs_of_role(GetUserId(), owner)) {
      ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                      errmsg("permission denied to share keyspace \"%s\" of foreign table \"%s\"",
                             t->keyspace_option, get_rel_name(other)),
                      errhint("Only members of role \"%s\", which owns it, may create tables on "
                              "its keyspace.",
                              GetUserNameFromId(owner, false))));
    }
  }
  // The keyspace outlives a rolled-back CREATE; an empty, unused keyspace is harmless and the
  // next table with that name adopts it (as it adopts existing data after a restore).
  eloqkv::Engine* e = ReadyEngine();
  uint32_t id;
  bool found;
  PgError err;
  if (!kv::ResolveKeyspace(e, t->keyspace, true, &id, &found, nullptr, &err))
    RaiseError(err, "could not create the table's keyspace");
  PinKeyspace(relid, t->keyspace_option);
  PublishRespTable(relid, "");
}

// The eloqkv mirror of heap table `source` (its mirror_of option names it), or InvalidOid.
Oid MirrorOf(Oid source) {
  return FindKvTable(InvalidOid, [&](Oid relid) {
    ListCell* lc;
    foreach (lc, GetForeignTable(relid)->options) {
      DefElem* def = lfirst_node(DefElem, lc);
      if (std::strcmp(def->defname, "mirror_of") == 0 &&
          strtoul(defGetString(def), nullptr, 10) == source)
        return true;
    }
    return false;
  });
}

// A mirror copies its table's columns by name and type and does not follow changes to them:
// refused up front, as Postgres refuses to change a column a view uses, rather than leaving the
// mirror silently incomplete or every later write to the table failing.
void CheckMirroredColumns(const RangeVar* relation, bool changes_columns) {
  if (!changes_columns) return;
  const Oid relid = RangeVarGetRelid(relation, NoLock, true);
  if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_RELATION) return;
  const Oid mirror = MirrorOf(relid);
  if (!OidIsValid(mirror)) return;
  const char* name = get_rel_name(relid);
  ereport(ERROR,
          (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
           errmsg("cannot change the columns of table \"%s\": eloqkv mirror \"%s\" copies them",
                  name, get_rel_name(mirror)),
           errdetail("A mirror does not follow changes to its table's columns."),
           errhint("Drop the mirror with eloqkv.drop_mirror('%s'), change the table, then "
                   "create the mirror again with eloqkv.create_mirror.",
                   name)));
}

bool ChangesColumns(const AlterTableStmt* stmt) {
  ListCell* lc;
  foreach (lc, stmt->cmds) {
    const AlterTableType t = lfirst_node(AlterTableCmd, lc)->subtype;
    if (t == AT_AddColumn || t == AT_DropColumn || t == AT_AlterColumnType) return true;
  }
  return false;
}

// ALTER FOREIGN TABLE must not change what the stored rows mean. Returns the table (to publish
// again afterwards), or InvalidOid; *prefix gets its RESP prefix before the change.
Oid CheckAlter(AlterTableStmt* stmt, char* prefix, size_t size) {
  const Oid relid = RangeVarGetRelid(stmt->relation, NoLock, true);
  if (!OidIsValid(relid) || !IsKvTable(relid)) return InvalidOid;
  const KvTable* t = LoadKvTableById(relid);
  snprintf(prefix, size, "%s", t->resp_prefix);
  ListCell* lc;
  foreach (lc, stmt->cmds) {
    AlterTableCmd* cmd = lfirst_node(AlterTableCmd, lc);
    if (cmd->subtype == AT_GenericOptions) {
      ListCell* oc;
      foreach (oc, castNode(List, cmd->def)) {
        DefElem* def = lfirst_node(DefElem, oc);
        if (std::strcmp(def->defname, "key") == 0 || std::strcmp(def->defname, "keyspace") == 0) {
          ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                          errmsg("cannot change option \"%s\" of eloqkv foreign table \"%s\"",
                                 def->defname, t->relname),
                          errhint("The stored rows are keyed by it. Create a new table and copy "
                                  "the rows with INSERT ... SELECT.")));
        }
      }
    } else if (cmd->subtype == AT_AlterColumnType || cmd->subtype == AT_DropColumn) {
      const AttrNumber att = get_attnum(relid, cmd->name);
      for (int k = 0; k < t->nkeys; ++k) {
        if (t->key_attnums[k] == att) {
          ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                          errmsg("cannot %s key column \"%s\" of eloqkv foreign table \"%s\"",
                                 cmd->subtype == AT_DropColumn ? "drop" : "change the type of",
                                 cmd->name, t->relname)));
        }
      }
    }
  }
  return relid;
}

void ProcessUtility(PlannedStmt* pstmt, const char* query, bool read_only_tree,
                    ProcessUtilityContext context, ParamListInfo params, QueryEnvironment* env,
                    DestReceiver* dest, QueryCompletion* qc) {
  Node* tree = pstmt->utilityStmt;
  char prefix[sizeof(KvTable::resp_prefix)] = "";
  Oid altered = InvalidOid;
  if (IsA(tree, AlterTableStmt)) {
    AlterTableStmt* alter = castNode(AlterTableStmt, tree);
    if (alter->objtype == OBJECT_TABLE)
      CheckMirroredColumns(alter->relation, ChangesColumns(alter));
    altered = CheckAlter(alter, prefix, sizeof(prefix));
  } else if (IsA(tree, RenameStmt)) {
    RenameStmt* rename = castNode(RenameStmt, tree);
    if (rename->relation != nullptr && rename->renameType == OBJECT_COLUMN &&
        rename->relationType == OBJECT_TABLE)
      CheckMirroredColumns(rename->relation, true);
    if (rename->relation != nullptr &&
        (rename->renameType == OBJECT_FOREIGN_TABLE || rename->renameType == OBJECT_COLUMN)) {
      const Oid relid = RangeVarGetRelid(rename->relation, NoLock, true);
      if (OidIsValid(relid) && IsKvTable(relid)) {
        altered = relid;
        snprintf(prefix, sizeof(prefix), "%s", LoadKvTableById(relid)->resp_prefix);
      }
    }
  }
  if (g_prev_utility != nullptr) {
    g_prev_utility(pstmt, query, read_only_tree, context, params, env, dest, qc);
  } else {
    standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
  }
  if (OidIsValid(altered)) {
    CommandCounterIncrement();  // see the change
    PublishRespTable(altered, prefix);
  }
  // Privileges changed: RESP users tied to roles get their grants recomputed.
  if (IsA(tree, GrantStmt) || IsA(tree, GrantRoleStmt) || IsA(tree, AlterRoleStmt) ||
      IsA(tree, DropRoleStmt) || IsA(tree, AlterOwnerStmt) ||
      (IsA(tree, RenameStmt) && castNode(RenameStmt, tree)->renameType == OBJECT_ROLE)) {
    CommandCounterIncrement();
    RefreshRespUsersOfDatabase();
  }
  if (IsA(tree, CreateForeignTableStmt)) {
    CreateForeignTableStmt* stmt = castNode(CreateForeignTableStmt, tree);
    const Oid relid = RangeVarGetRelid(stmt->base.relation, NoLock, true);
    if (OidIsValid(relid) && IsKvTable(relid)) OnCreate(relid);
  }
}

void ObjectAccess(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id, void* arg) {
  if (g_prev_object_access != nullptr)
    g_prev_object_access(access, class_id, object_id, sub_id, arg);
  if (access != OAT_DROP || class_id != RelationRelationId || sub_id != 0) return;
  if (get_rel_relkind(object_id) != RELKIND_FOREIGN_TABLE || !IsKvTable(object_id)) return;
  UnpublishRespTable(object_id);
  char keyspace[kMaxKeyspaceName + 1];
  bool shared;
  KeyspaceOf(object_id, keyspace, sizeof(keyspace), &shared);
  bool other_shared;
  if (OidIsValid(OtherUser(object_id, keyspace, &other_shared))) return;  // still in use
  char engine_name[kMaxEngineKeyspaceName + 1];
  EngineKeyspaceName(keyspace, engine_name, sizeof(engine_name));
  PgError err;
  if (!kv::DropAtCommit(engine_name, GetCurrentTransactionNestLevel(), &err)) RaiseError(err);
  // A tagged cache's tag index (src/cache/cache_tags.h) goes with it.
  char tags[kMaxEngineKeyspaceName + 8];
  snprintf(tags, sizeof(tags), "%s%s", kTagKeyspacePrefix, engine_name);
  uint32_t id;
  bool found = false;
  if (kv::ResolveKeyspace(ReadyEngine(), tags, false, &id, &found, nullptr, &err) && found &&
      !kv::DropAtCommit(tags, GetCurrentTransactionNestLevel(), &err))
    RaiseError(err);
}

}  // namespace

void InstallDdlHooks() {
  g_prev_utility = ProcessUtility_hook;
  ProcessUtility_hook = ProcessUtility;
  g_prev_object_access = object_access_hook;
  object_access_hook = ObjectAccess;
}

}  // namespace eloqkv::pg
