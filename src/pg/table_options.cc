#include "pg/table_options.h"

#include <cerrno>
#include <cstring>

#include "pg/key_codec.h"
#include "pg/settings.h"

extern "C" {
#include "access/reloptions.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
}

namespace eloqkv::pg {
namespace {

struct OptionSpec {
  const char* name;
  Oid catalog;
};

// Every option eloqkv_fdw accepts, and where.
const OptionSpec kOptions[] = {
    {"key", ForeignTableRelationId},           {"keyspace", ForeignTableRelationId},
    {"ttl", ForeignTableRelationId},           {"batch_size", ForeignTableRelationId},
    {"expire_column", ForeignTableRelationId}, {"shared", ForeignTableRelationId},
    {"resp_prefix", ForeignTableRelationId},   {"data_directory", ForeignServerRelationId},
    {"cache_source", ForeignTableRelationId},  {"stale_ttl", ForeignTableRelationId},
    {"negative_ttl", ForeignTableRelationId},  {"lease_timeout", ForeignTableRelationId},
    {"mirror_of", ForeignTableRelationId},     {"tag_column", ForeignTableRelationId},
    {"source_search_path", ForeignTableRelationId},
};

const char* ContextName(Oid catalog) {
  if (catalog == ForeignTableRelationId) return "foreign table";
  if (catalog == ForeignServerRelationId) return "server";
  if (catalog == ForeignDataWrapperRelationId) return "foreign-data wrapper";
  if (catalog == UserMappingRelationId) return "user mapping";
  return "object";
}

void ValidOptionsHint(Oid catalog, StringInfo out) {
  for (const OptionSpec& o : kOptions) {
    if (o.catalog != catalog) continue;
    if (out->len > 0) appendStringInfoString(out, ", ");
    appendStringInfoString(out, o.name);
  }
}

// Error context: which option was being read when a type input function complained.
struct OptionContext {
  const char* option;
  const char* value;
};
void OptionErrorContext(void* arg) {
  const auto* c = static_cast<const OptionContext*>(arg);
  errcontext("eloqkv_fdw option \"%s\" = '%s'", c->option, c->value);
}

// Milliseconds of an interval option such as ttl '1 hour'; zero only where allow_zero.
int64 ParseDuration(const char* option, const char* value, bool allow_zero) {
  OptionContext oc{option, value};
  ErrorContextCallback cb{error_context_stack, OptionErrorContext, &oc};
  error_context_stack = &cb;
  Datum iv = DirectFunctionCall3(interval_in, CStringGetDatum(value), ObjectIdGetDatum(InvalidOid),
                                 Int32GetDatum(-1));
  const Interval* i = DatumGetIntervalP(iv);
  error_context_stack = cb.previous;
  // Months count as 30 days, as in EXTRACT(EPOCH FROM interval).
  const double ms = static_cast<double>(i->time) / 1000.0 +
                    (static_cast<double>(i->day) + 30.0 * i->month) * 86400.0 * 1000.0;
  const bool zero = allow_zero && ms == 0.0;
  if (!zero && (!(ms >= 1.0) || ms > 100.0 * 365 * 86400 * 1000)) {
    ereport(ERROR,
            (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
             errmsg("invalid value for option \"%s\": \"%s\"", option, value),
             errhint("%s must be a %s interval of at most 100 years, e.g. '1 hour'.", option,
                     allow_zero ? "non-negative" : "positive")));
  }
  return static_cast<int64>(ms);
}

int64 ParseTtl(const char* value) {
  return ParseDuration("ttl", value, false);
}

int ParseBatchSize(const char* value) {
  int n = 0;
  if (!parse_int(value, &n, 0, nullptr) || n < 1 || n > 10000) {
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                    errmsg("invalid value for option \"batch_size\": \"%s\"", value),
                    errhint("batch_size must be an integer between 1 and 10000.")));
  }
  return n;
}

bool ParseOid(const char* value, Oid* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long v = strtoul(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v == 0 || v > UINT32_MAX) return false;
  *out = static_cast<Oid>(v);
  return true;
}

bool ParseBool(const char* option, const char* value) {
  bool b = false;
  if (!parse_bool(value, &b)) {
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                    errmsg("invalid value for option \"%s\": \"%s\"", option, value),
                    errhint("Use true or false.")));
  }
  return b;
}

// Splits "a, b, \"C\"" into column names, as Postgres splits identifier lists.
List* SplitColumns(const char* option, const char* value) {
  char* copy = pstrdup(value);
  List* names = NIL;
  if (!SplitIdentifierString(copy, ',', &names) || names == NIL) {
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                    errmsg("invalid value for option \"%s\": \"%s\"", option, value),
                    errhint("List column names separated by commas, e.g. '%s'.",
                            std::strcmp(option, "key") == 0 ? "tenant, agent_id" : "expires_at")));
  }
  if (list_length(names) > kMaxKeyColumns) {
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                    errmsg("option \"%s\" lists %d columns; at most %d are allowed", option,
                           list_length(names), kMaxKeyColumns)));
  }
  ListCell* a;
  foreach (a, names) {
    for (ListCell* b = lnext(names, a); b != nullptr; b = lnext(names, b)) {
      if (std::strcmp(static_cast<char*>(lfirst(a)), static_cast<char*>(lfirst(b))) == 0) {
        ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                        errmsg("column \"%s\" appears twice in option \"%s\"",
                               static_cast<char*>(lfirst(a)), option)));
      }
    }
  }
  return names;
}

void CheckValue(const DefElem* def) {
  const char* value = defGetString(const_cast<DefElem*>(def));
  const char* name = def->defname;
  if (std::strcmp(name, "key") == 0) {
    (void)SplitColumns(name, value);
  } else if (std::strcmp(name, "expire_column") == 0) {
    if (list_length(SplitColumns(name, value)) != 1) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("option \"expire_column\" names one column")));
    }
  } else if (std::strcmp(name, "keyspace") == 0) {
    const size_t n = std::strlen(value);
    if (n == 0 || n > static_cast<size_t>(kMaxKeyspaceName)) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("invalid value for option \"keyspace\": \"%s\"", value),
                      errhint("A keyspace name has 1 to %d bytes.", kMaxKeyspaceName)));
    }
    if (value[0] == '@') {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("invalid value for option \"keyspace\": \"%s\"", value),
                      errhint("Keyspace names starting with '@' are reserved for eloqkv's own "
                              "keyspaces (the RESP default keyspace and catalog).")));
    }
  } else if (std::strcmp(name, "ttl") == 0) {
    (void)ParseTtl(value);
  } else if (std::strcmp(name, "stale_ttl") == 0) {
    (void)ParseDuration(name, value, true);
  } else if (std::strcmp(name, "negative_ttl") == 0 || std::strcmp(name, "lease_timeout") == 0) {
    (void)ParseDuration(name, value, false);
  } else if (std::strcmp(name, "tag_column") == 0) {
    if (list_length(SplitColumns(name, value)) != 1) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("option \"tag_column\" names one column")));
    }
  } else if (std::strcmp(name, "mirror_of") == 0) {
    Oid relid = InvalidOid;
    if (!ParseOid(value, &relid) || get_rel_relkind(relid) != RELKIND_RELATION) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("invalid value for option \"mirror_of\": \"%s\"", value),
                      errhint("Mirrors are made by eloqkv.create_mirror().")));
    }
  } else if (std::strcmp(name, "source_search_path") == 0) {
    char* copy = pstrdup(value);
    List* schemas = NIL;
    if (!SplitIdentifierString(copy, ',', &schemas)) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("invalid value for option \"source_search_path\": \"%s\"", value),
                      errhint("List schema names separated by commas, as search_path does.")));
    }
  } else if (std::strcmp(name, "cache_source") == 0) {
    if (value[0] == '\0') {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("option \"cache_source\" must not be empty"),
                      errhint("Give the query that reads one row by key, e.g. "
                              "'SELECT id, name FROM users WHERE id = $1'.")));
    }
  } else if (std::strcmp(name, "batch_size") == 0) {
    (void)ParseBatchSize(value);
  } else if (std::strcmp(name, "shared") == 0) {
    (void)ParseBool(name, value);
  } else if (std::strcmp(name, "resp_prefix") == 0) {
    const size_t n = std::strlen(value);
    if (n == 0 || n >= sizeof(KvTable::resp_prefix)) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("invalid value for option \"resp_prefix\": \"%s\"", value),
                      errhint("A RESP prefix has 1 to %zu bytes, e.g. 'agent_state:'.",
                              sizeof(KvTable::resp_prefix) - 1)));
    }
  } else if (std::strcmp(name, "data_directory") == 0) {
    // The engine has one data directory per cluster, set by eloqkv.data_directory. A server may
    // name it (documentation, tooling), but only a superuser may point at a directory at all.
    if (!superuser()) {
      ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                      errmsg("permission denied to set option \"data_directory\""),
                      errhint("Only superusers may set the data directory of an eloqkv server.")));
    }
    char configured[MAXPGPATH];
    ConfiguredDataDirectory(configured, sizeof(configured));
    if (std::strcmp(configured, value) != 0) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("data_directory must name the engine's data directory"),
                      errdetail("All eloqkv servers of a cluster share one engine, whose directory "
                                "is set by eloqkv.data_directory."),
                      errhint("Set eloqkv.data_directory in postgresql.conf to move it.")));
    }
  }
}

}  // namespace

void ValidateOptionList(List* options, Oid catalog) {
  ListCell* cell;
  foreach (cell, options) {
    DefElem* def = lfirst_node(DefElem, cell);
    bool known = false;
    for (const OptionSpec& o : kOptions)
      known = known || (o.catalog == catalog && std::strcmp(o.name, def->defname) == 0);
    if (!known) {
      StringInfoData valid;
      initStringInfo(&valid);
      ValidOptionsHint(catalog, &valid);
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("invalid option \"%s\"", def->defname),
                      valid.len > 0 ? errhint("Valid options for an eloqkv_fdw %s are: %s.",
                                              ContextName(catalog), valid.data)
                                    : errhint("There are no valid options in this context.")));
    }
    CheckValue(def);
  }
}

bool IsKvTable(Oid relid) {
  if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE) return false;
  ForeignTable* ft = GetForeignTable(relid);
  ForeignServer* server = GetForeignServer(ft->serverid);
  ForeignDataWrapper* fdw = GetForeignDataWrapper(server->fdwid);
  return std::strcmp(fdw->fdwname, "eloqkv_fdw") == 0;
}

void DefaultKeyspaceName(Oid relid, char* out, size_t size) {
  const char* rel = get_rel_name(relid);
  const Oid nsp = get_rel_namespace(relid);
  if (nsp == PG_PUBLIC_NAMESPACE) {
    snprintf(out, size, "%s", rel);
  } else {
    snprintf(out, size, "%s.%s", get_namespace_name(nsp), rel);
  }
}

void EngineKeyspaceName(const char* name, char* out, size_t size) {
  snprintf(out, size, "%u/%s", MyDatabaseId, name);
}

bool LocalKeyspaceName(const char* engine_name, char* out, size_t size) {
  const char* at = engine_name;
  std::string prefix;
  if (std::strncmp(at, kTagKeyspacePrefix, std::strlen(kTagKeyspacePrefix)) == 0) {
    prefix = kTagKeyspacePrefix;
    at += prefix.size();
  }
  const char* digits = at;
  while (*at >= '0' && *at <= '9') ++at;
  if (at == digits || *at != '/') {  // not a table's keyspace: eloqkv's own
    snprintf(out, size, "%s", engine_name);
    return true;
  }
  if (std::strtoul(digits, nullptr, 10) != MyDatabaseId || at - digits > 10) return false;
  snprintf(out, size, "%s%s", prefix.c_str(), at + 1);
  return true;
}

KvTable* LoadKvTable(Relation rel) {
  const Oid relid = RelationGetRelid(rel);
  ForeignTable* ft = GetForeignTable(relid);
  KvTable* t = static_cast<KvTable*>(palloc0(sizeof(KvTable)));
  t->relid = relid;
  snprintf(t->relname, sizeof(t->relname), "%s", RelationGetRelationName(rel));
  t->batch_size = 100;
  t->lease_timeout_ms = 1000;
  t->negative_ttl_ms = -1;  // until set: the ttl
  DefaultKeyspaceName(relid, t->keyspace_option, sizeof(t->keyspace_option));
  List* key_names = NIL;
  const char* expire_name = nullptr;
  const char* tag_name = nullptr;
  ListCell* cell;
  foreach (cell, ft->options) {
    DefElem* def = lfirst_node(DefElem, cell);
    const char* v = defGetString(def);
    if (std::strcmp(def->defname, "key") == 0) {
      key_names = SplitColumns("key", v);
    } else if (std::strcmp(def->defname, "keyspace") == 0) {
      snprintf(t->keyspace_option, sizeof(t->keyspace_option), "%s", v);
    } else if (std::strcmp(def->defname, "ttl") == 0) {
      t->ttl_ms = ParseTtl(v);
    } else if (std::strcmp(def->defname, "batch_size") == 0) {
      t->batch_size = ParseBatchSize(v);
    } else if (std::strcmp(def->defname, "expire_column") == 0) {
      expire_name = v;
    } else if (std::strcmp(def->defname, "shared") == 0) {
      t->shared = ParseBool("shared", v);
    } else if (std::strcmp(def->defname, "resp_prefix") == 0) {
      snprintf(t->resp_prefix, sizeof(t->resp_prefix), "%s", v);
    } else if (std::strcmp(def->defname, "cache_source") == 0) {
      t->cache = true;
    } else if (std::strcmp(def->defname, "tag_column") == 0) {
      tag_name = v;
    } else if (std::strcmp(def->defname, "mirror_of") == 0) {
      (void)ParseOid(v, &t->mirror_of);
    } else if (std::strcmp(def->defname, "stale_ttl") == 0) {
      t->stale_ttl_ms = ParseDuration("stale_ttl", v, true);
    } else if (std::strcmp(def->defname, "negative_ttl") == 0) {
      t->negative_ttl_ms = ParseDuration("negative_ttl", v, false);
    } else if (std::strcmp(def->defname, "lease_timeout") == 0) {
      t->lease_timeout_ms = ParseDuration("lease_timeout", v, false);
    }
  }
  if (t->negative_ttl_ms < 0) t->negative_ttl_ms = t->ttl_ms;
  if (key_names == NIL) {
    ereport(ERROR,
            (errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
             errmsg("eloqkv foreign table \"%s\" has no key option", RelationGetRelationName(rel)),
             errhint("Name the column(s) that identify a row, e.g. OPTIONS (key 'id').")));
  }
  TupleDesc desc = RelationGetDescr(rel);
  foreach (cell, key_names) {
    const char* name = static_cast<const char*>(lfirst(cell));
    AttrNumber attnum = InvalidAttrNumber;
    for (int i = 0; i < desc->natts; ++i) {
      Form_pg_attribute a = TupleDescAttr(desc, i);
      if (!a->attisdropped && std::strcmp(NameStr(a->attname), name) == 0) attnum = a->attnum;
    }
    if (attnum == InvalidAttrNumber) {
      ereport(ERROR,
              (errcode(ERRCODE_UNDEFINED_COLUMN),
               errmsg("key column \"%s\" does not exist in foreign table \"%s\"", name,
                      RelationGetRelationName(rel)),
               errhint("The key option names columns of the table, e.g. OPTIONS (key 'id').")));
    }
    Form_pg_attribute a = TupleDescAttr(desc, attnum - 1);
    if (!KeyTypeSupported(a->atttypid)) {
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("key column \"%s\" has type %s, which eloqkv keys do not support",
                             name, format_type_be(a->atttypid)),
                      errhint("Key columns may have these types: %s.", SupportedKeyTypes())));
    }
    if (OidIsValid(a->attcollation) && !get_collation_isdeterministic(a->attcollation)) {
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("key column \"%s\" uses a nondeterministic collation", name),
                      errhint("Keys compare bytes; use a deterministic collation such as \"C\".")));
    }
    const int k = t->nkeys++;
    t->key_attnums[k] = attnum;
    t->key_types[k] = a->atttypid;
    t->key_typmods[k] = a->atttypmod;
    t->key_collations[k] = a->attcollation;
  }
  EngineKeyspaceName(t->keyspace_option, t->keyspace, sizeof(t->keyspace));
  if (t->cache && (t->nkeys != 1 || expire_name != nullptr)) {
    ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                    errmsg("cache \"%s\" must have a one-column key and no expire_column",
                           RelationGetRelationName(rel)),
                    errhint("A cache row is read by the one parameter of its source query, and "
                            "expires by the ttl option.")));
  }
  if (tag_name != nullptr) {
    const AttrNumber attnum = get_attnum(relid, tag_name);
    if (!t->cache || attnum == InvalidAttrNumber || attnum == t->key_attnums[0]) {
      ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                      errmsg("invalid value for option \"tag_column\": \"%s\"", tag_name),
                      errhint("A cache's tag column is one of its columns other than the key.")));
    }
    t->tag_attnum = attnum;
  }
  if (expire_name != nullptr) {
    const AttrNumber attnum = get_attnum(relid, expire_name);
    if (attnum == InvalidAttrNumber) {
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                      errmsg("expire column \"%s\" does not exist in foreign table \"%s\"",
                             expire_name, RelationGetRelationName(rel))));
    }
    if (TupleDescAttr(desc, attnum - 1)->atttypid != TIMESTAMPTZOID) {
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                      errmsg("expire column \"%s\" must have type timestamp with time zone",
                             expire_name)));
    }
    for (int k = 0; k < t->nkeys; ++k) {
      if (t->key_attnums[k] == attnum) {
        ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
                        errmsg("the expire column cannot be a key column")));
      }
    }
    t->expire_attnum = attnum;
  }
  return t;
}

namespace {

struct CacheEntry {
  Oid relid;  // hash key
  KvTable* table;
};

HTAB* g_tables = nullptr;

void ForgetTable(Datum, Oid relid) {
  if (g_tables == nullptr) return;
  HASH_SEQ_STATUS it;
  hash_seq_init(&it, g_tables);
  while (CacheEntry* e = static_cast<CacheEntry*>(hash_seq_search(&it))) {
    if (relid != InvalidOid && e->relid != relid) continue;
    pfree(e->table);
    (void)hash_search(g_tables, &e->relid, HASH_REMOVE, nullptr);
  }
}

// pg_foreign_table changes (ALTER FOREIGN TABLE ... OPTIONS) come as syscache invalidations.
void ForgetAllTables(Datum, int, uint32) { ForgetTable(0, InvalidOid); }

const KvTable* Cached(Oid relid, Relation rel) {
  if (g_tables == nullptr) {
    HASHCTL ctl;
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(CacheEntry);
    ctl.hcxt = CacheMemoryContext;
    g_tables = hash_create("eloqkv tables", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
  }
  CacheEntry* e = static_cast<CacheEntry*>(hash_search(g_tables, &relid, HASH_FIND, nullptr));
  if (e != nullptr) return e->table;
  KvTable* fresh = rel != nullptr ? LoadKvTable(rel) : LoadKvTableById(relid);
  KvTable* kept = static_cast<KvTable*>(MemoryContextAlloc(CacheMemoryContext, sizeof(KvTable)));
  *kept = *fresh;
  e = static_cast<CacheEntry*>(hash_search(g_tables, &relid, HASH_ENTER, nullptr));
  e->table = kept;
  return kept;
}

}  // namespace

// A copy in the caller's memory: a cache entry may be freed by an invalidation at any catalog
// access, e.g. while a scan runs a cache's source query.
static const KvTable* CopyOf(const KvTable* t) {
  KvTable* copy = static_cast<KvTable*>(palloc(sizeof(KvTable)));
  *copy = *t;
  return copy;
}

const KvTable* CachedKvTable(Relation rel) { return CopyOf(Cached(RelationGetRelid(rel), rel)); }
const KvTable* CachedKvTableById(Oid relid) { return CopyOf(Cached(relid, nullptr)); }

void RegisterKvTableInvalidation() {
  CacheRegisterRelcacheCallback(ForgetTable, 0);
  CacheRegisterSyscacheCallback(FOREIGNTABLEREL, ForgetAllTables, 0);
}

KvTable* LoadKvTableById(Oid relid) {
  Relation rel = table_open(relid, AccessShareLock);
  KvTable* t = LoadKvTable(rel);
  table_close(rel, AccessShareLock);
  return t;
}

}  // namespace eloqkv::pg
