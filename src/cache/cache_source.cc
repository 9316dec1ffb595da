#include "cache/cache_source.h"

#include <cstring>

extern "C" {
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "nodes/nodeFuncs.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/syscache.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
}

namespace eloqkv::cache {
namespace {

struct Prepared {
  Oid relid;   // hash key
  bool stale;  // the table changed: prepare again (freed then, never from a callback)
  SPIPlanPtr plan;
  char* search_path;  // the source's names resolve in these schemas, whoever reads
  int ncols;
  AttrNumber* attnums;  // result column i -> table attnum
};

HTAB* g_prepared = nullptr;

struct SourceContext {
  const char* cache;
};
void SourceErrorContext(void* arg) {
  errcontext("source query of cache \"%s\"", static_cast<SourceContext*>(arg)->cache);
}

const char* TableOption(Oid relid, const char* name) {
  ForeignTable* ft = GetForeignTable(relid);
  ListCell* cell;
  foreach (cell, ft->options) {
    DefElem* def = lfirst_node(DefElem, cell);
    if (std::strcmp(def->defname, name) == 0) return defGetString(def);
  }
  return nullptr;
}

// The search_path a cache's source runs with: the one create_cache recorded (temporary schemas
// last), so that a reader's own search_path or temporary tables cannot change what is cached
// for everyone.
constexpr const char* kDefaultSourceSearchPath = "\"$user\", public, pg_temp";

// Runs with search_path set to `path`; restored by the caller with AtEOXact_GUC (and by
// transaction abort if an error comes first).
int PinSearchPath(const char* path) {
  const int nest = NewGUCNestLevel();
  (void)set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                          false);
  return nest;
}

// Checks the source against the table and prepares it, once per backend.
Prepared* Prepare(const pg::KvTable* t, TupleDesc desc) {
  if (g_prepared == nullptr) {
    HASHCTL ctl;
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(Prepared);
    ctl.hcxt = CacheMemoryContext;
    g_prepared =
        hash_create("eloqkv cache sources", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
  }
  Prepared* p = static_cast<Prepared*>(hash_search(g_prepared, &t->relid, HASH_FIND, nullptr));
  if (p != nullptr && !p->stale) return p;
  if (p != nullptr) {
    SPI_freeplan(p->plan);
    pfree(p->attnums);
    pfree(p->search_path);
    (void)hash_search(g_prepared, &t->relid, HASH_REMOVE, nullptr);
  }

  const char* source = TableOption(t->relid, "cache_source");
  const char* search_path = TableOption(t->relid, "source_search_path");
  if (search_path == nullptr) search_path = kDefaultSourceSearchPath;
  const int guc_nest = PinSearchPath(search_path);
  if (source == nullptr) elog(ERROR, "cache \"%s\" has no cache_source option", t->relname);
  Oid param_type = InvalidOid;
  List* columns = AnalyzeSource(source, t->relname, &param_type);
  const Oid key_type = t->key_types[0];
  Form_pg_attribute key_att = TupleDescAttr(desc, t->key_attnums[0] - 1);
  if (param_type != key_type) {
    ereport(ERROR,
            (errcode(ERRCODE_DATATYPE_MISMATCH),
             errmsg("the key of cache \"%s\" is column \"%s\" of type %s, but its source "
                    "query's $1 has type %s",
                    t->relname, NameStr(key_att->attname), format_type_be(key_type),
                    format_type_be(param_type)),
             errhint("Cast the parameter in the source, e.g. $1::%s.", format_type_be(key_type))));
  }
  const int ncols = list_length(columns);
  AttrNumber* attnums = static_cast<AttrNumber*>(
      MemoryContextAllocZero(CacheMemoryContext, sizeof(AttrNumber) * Max(ncols, 1)));
  int live = 0;
  for (int i = 0; i < desc->natts; ++i) live += TupleDescAttr(desc, i)->attisdropped ? 0 : 1;
  int i = 0;
  ListCell* cell;
  foreach (cell, columns) {
    const SourceColumn* c = static_cast<const SourceColumn*>(lfirst(cell));
    Form_pg_attribute match = nullptr;
    for (int a = 0; a < desc->natts; ++a) {
      Form_pg_attribute att = TupleDescAttr(desc, a);
      if (!att->attisdropped && std::strcmp(NameStr(att->attname), c->name) == 0) match = att;
    }
    if (match == nullptr || match->atttypid != c->type) {
      ereport(
          ERROR,
          (errcode(ERRCODE_DATATYPE_MISMATCH),
           errmsg("cache \"%s\" does not match its source query", t->relname),
           match == nullptr
               ? errdetail("The source returns column \"%s\", which the cache has not.", c->name)
               : errdetail("The source returns column \"%s\" as %s; the cache has it as %s.",
                           c->name, format_type_be(c->type), format_type_be(match->atttypid)),
           errhint("Recreate the cache with eloqkv.create_cache, which takes its columns "
                   "from the source.")));
    }
    attnums[i++] = match->attnum;
  }
  if (ncols != live) {
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("cache \"%s\" does not match its source query", t->relname),
                    errdetail("The cache has %d columns; its source returns %d.", live, ncols),
                    errhint("Recreate the cache with eloqkv.create_cache, which takes its columns "
                            "from the source.")));
  }

  SourceContext sc{t->relname};
  ErrorContextCallback cb{error_context_stack, SourceErrorContext, &sc};
  error_context_stack = &cb;
  Oid argtypes[1] = {key_type};
  SPIPlanPtr plan = SPI_prepare(source, 1, argtypes);
  if (plan == nullptr)
    elog(ERROR, "could not prepare the source of cache \"%s\": %s", t->relname,
         SPI_result_code_string(SPI_result));
  if (SPI_keepplan(plan) != 0) elog(ERROR, "could not keep the plan of a cache source");
  error_context_stack = cb.previous;
  AtEOXact_GUC(true, guc_nest);

  p = static_cast<Prepared*>(hash_search(g_prepared, &t->relid, HASH_ENTER, nullptr));
  p->stale = false;
  p->plan = plan;
  p->search_path = MemoryContextStrdup(CacheMemoryContext, search_path);
  p->ncols = ncols;
  p->attnums = attnums;
  return p;
}

}  // namespace

List* AnalyzeSource(const char* source, const char* cache_name, Oid* param_type) {
  SourceContext sc{cache_name};
  ErrorContextCallback cb{error_context_stack, SourceErrorContext, &sc};
  error_context_stack = &cb;
  List* raw = raw_parser(source, RAW_PARSE_DEFAULT);
  if (list_length(raw) != 1 || !IsA(linitial_node(RawStmt, raw)->stmt, SelectStmt)) {
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("the source of cache \"%s\" must be one SELECT statement", cache_name),
                    errhint("e.g. 'SELECT id, name FROM users WHERE id = $1'.")));
  }
  Oid* types = nullptr;
  int nparams = 0;
  Query* q =
      parse_analyze_varparams(linitial_node(RawStmt, raw), source, &types, &nparams, nullptr);
  if (nparams != 1 || types[0] == InvalidOid || types[0] == UNKNOWNOID) {
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("the source of cache \"%s\" must use exactly one parameter, $1, for the key",
                    cache_name),
             nparams == 0  ? errdetail("It uses no parameter.")
             : nparams > 1 ? errdetail("It uses $%d.", nparams)
                           : errdetail("The type of $1 cannot be inferred."),
             errhint("e.g. 'SELECT id, name FROM users WHERE id = $1'; cast $1 if its type is "
                     "ambiguous.")));
  }
  if (q->commandType != CMD_SELECT || q->utilityStmt != nullptr || q->hasModifyingCTE ||
      q->rowMarks != NIL) {
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("the source of cache \"%s\" must be a read-only SELECT", cache_name)));
  }
  List* columns = NIL;
  ListCell* cell;
  foreach (cell, q->targetList) {
    TargetEntry* te = lfirst_node(TargetEntry, cell);
    if (te->resjunk) continue;
    SourceColumn* c = static_cast<SourceColumn*>(palloc(sizeof(SourceColumn)));
    c->name = pstrdup(te->resname != nullptr ? te->resname : "?column?");
    c->type = exprType(reinterpret_cast<Node*>(te->expr));
    c->typmod = exprTypmod(reinterpret_cast<Node*>(te->expr));
    for (ListCell* prev = list_head(columns); prev != nullptr; prev = lnext(columns, prev)) {
      if (std::strcmp(static_cast<SourceColumn*>(lfirst(prev))->name, c->name) == 0) {
        ereport(ERROR, (errcode(ERRCODE_DUPLICATE_COLUMN),
                        errmsg("the source of cache \"%s\" returns column \"%s\" twice", cache_name,
                               c->name),
                        errhint("Give the columns distinct names with AS.")));
      }
    }
    columns = lappend(columns, c);
  }
  *param_type = types[0];
  error_context_stack = cb.previous;
  return columns;
}

bool RunSource(const pg::KvTable* t, TupleDesc desc, Datum key, Datum* values, bool* isnull) {
  MemoryContext caller = CurrentMemoryContext;
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  Prepared* p = Prepare(t, desc);
  SourceContext sc{t->relname};
  ErrorContextCallback cb{error_context_stack, SourceErrorContext, &sc};
  error_context_stack = &cb;
  // A snapshot taken now, not the transaction's: the fill must reflect every commit that came
  // before it started (an invalidation after that refuses it).
  const int guc_nest = PinSearchPath(p->search_path);
  PushActiveSnapshot(GetLatestSnapshot());
  const int rc = SPI_execute_plan(p->plan, &key, nullptr, /*read_only=*/true, 2);
  PopActiveSnapshot();
  AtEOXact_GUC(true, guc_nest);
  error_context_stack = cb.previous;
  if (rc != SPI_OK_SELECT)
    elog(ERROR, "the source of cache \"%s\" failed: %s", t->relname, SPI_result_code_string(rc));
  if (SPI_processed > 1) {
    ereport(ERROR, (errcode(ERRCODE_CARDINALITY_VIOLATION),
                    errmsg("the source of cache \"%s\" returned more than one row for one key",
                           t->relname),
                    errhint("A source must read at most one row per key, e.g. by the table's "
                            "primary key.")));
  }
  // The plan is replanned when the source's tables change; its result must still fit the cache
  // (a column whose type changed would be copied as the wrong type).
  TupleDesc rdesc_check = SPI_tuptable->tupdesc;
  bool fits = rdesc_check->natts == p->ncols;
  for (int i = 0; fits && i < p->ncols; ++i) {
    fits =
        TupleDescAttr(rdesc_check, i)->atttypid == TupleDescAttr(desc, p->attnums[i] - 1)->atttypid;
  }
  if (!fits) {
    p->stale = true;  // checked again, with the detail, at the next read
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("cache \"%s\" does not match its source query", t->relname),
                    errdetail("The tables the source reads changed: it returns other columns now."),
                    errhint("Recreate the cache with eloqkv.create_cache, which takes its columns "
                            "from the source.")));
  }
  const bool found = SPI_processed == 1;
  if (found) {
    for (int i = 0; i < desc->natts; ++i) isnull[i] = true;
    HeapTuple tuple = SPI_tuptable->vals[0];
    TupleDesc rdesc = SPI_tuptable->tupdesc;
    for (int i = 0; i < p->ncols; ++i) {
      bool null = false;
      Datum d = SPI_getbinval(tuple, rdesc, i + 1, &null);
      Form_pg_attribute att = TupleDescAttr(desc, p->attnums[i] - 1);
      const int a = p->attnums[i] - 1;
      isnull[a] = null;
      if (!null) {
        MemoryContext old = MemoryContextSwitchTo(caller);
        values[a] = datumCopy(d, att->attbyval, att->attlen);
        MemoryContextSwitchTo(old);
      }
    }
  }
  SPI_finish();
  return found;
}

namespace {
void ForgetPreparedSources(Datum, Oid relid) {
  if (g_prepared == nullptr) return;
  HASH_SEQ_STATUS it;
  hash_seq_init(&it, g_prepared);
  while (Prepared* p = static_cast<Prepared*>(hash_seq_search(&it))) {
    if (relid == InvalidOid || p->relid == relid) p->stale = true;
  }
}
void ForgetAllPreparedSources(Datum, int, uint32) {
  ForgetPreparedSources(0, InvalidOid);
}
}  // namespace

void RegisterSourceInvalidation() {
  CacheRegisterRelcacheCallback(ForgetPreparedSources, 0);
  CacheRegisterSyscacheCallback(FOREIGNTABLEREL, ForgetAllPreparedSources, 0);
}

}  // namespace eloqkv::cache
