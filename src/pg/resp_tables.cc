// Publishing served tables into the RESP table catalog (see resp_tables.h).
#include "pg/resp_tables.h"

#include <cstring>
#include <string>

#include "pg/engine_access.h"
#include "pg/kv_session.h"
#include "pg/pg_guard.h"
#include "pg/resp_worker.h"
#include "pg/table_options.h"

extern "C" {
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace eloqkv::pg {
namespace {

bool g_changed_in_xact = false;

// The types RespTypeServable() accepts (resp_row_codec.cc keeps the list), for the hint.
constexpr const char* kServableTypeNames =
    "boolean, smallint, integer, bigint, real, double precision, numeric, text, varchar, "
    "char(n), name, \"char\", bytea, json, jsonb, date, time, timetz, timestamp, timestamptz, "
    "interval, uuid, inet, cidr, macaddr, oid, bit, varbit, money";

// A column as published, in plain C (collected before any C++ runs).
struct ColumnInfo {
  char name[NAMEDATALEN];
  int16 attnum;
  Oid type;
  int32 typmod;
  int16 typlen;
  bool typbyval;
  char typalign;
  Oid typinput;
  Oid typoutput;
  Oid typioparam;
  bool dropped;
  int key_index;
};

struct TableInfo {
  const KvTable* t;
  char relname[2 * NAMEDATALEN + 1];
  int natts;
  ColumnInfo* cols;
};

// What the C++ half reports back, in plain C.
struct EncodeResult {
  char* buf;  // preallocated
  size_t cap;
  size_t len;
  bool overlap;
  char other_prefix[256];
  char other_relname[2 * NAMEDATALEN + 1];
};

void CollectTable(Oid relid, TableInfo* info) {
  info->t = LoadKvTableById(relid);
  Relation rel = relation_open(relid, AccessShareLock);
  TupleDesc desc = RelationGetDescr(rel);
  snprintf(info->relname, sizeof(info->relname), "%s.%s",
           get_namespace_name(RelationGetNamespace(rel)), RelationGetRelationName(rel));
  info->natts = desc->natts;
  info->cols = static_cast<ColumnInfo*>(palloc0(sizeof(ColumnInfo) * Max(desc->natts, 1)));
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute a = TupleDescAttr(desc, i);
    ColumnInfo* c = &info->cols[i];
    snprintf(c->name, sizeof(c->name), "%s", NameStr(a->attname));
    c->attnum = a->attnum;
    c->dropped = a->attisdropped;
    c->key_index = -1;
    for (int k = 0; k < info->t->nkeys; ++k)
      if (info->t->key_attnums[k] == a->attnum) c->key_index = k;
    if (c->dropped) continue;
    if (!RespTypeServable(a->atttypid)) {
      ereport(ERROR,
              (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
               errmsg("column \"%s\" of foreign table \"%s\" has type %s, which cannot be served "
                      "over RESP",
                      c->name, RelationGetRelationName(rel), format_type_be(a->atttypid)),
               errhint("Columns of a table with option resp_prefix may have these types: %s.",
                       kServableTypeNames)));
    }
    c->type = a->atttypid;
    c->typmod = a->atttypmod;
    c->typlen = a->attlen;
    c->typbyval = a->attbyval;
    c->typalign = a->attalign;
    bool varlena;
    getTypeInputInfo(a->atttypid, &c->typinput, &c->typioparam);
    getTypeOutputInfo(a->atttypid, &c->typoutput, &varlena);
  }
  relation_close(rel, AccessShareLock);
}

resp::TableDesc MakeDesc(const TableInfo& info) {
  resp::TableDesc d;
  d.prefix = info.t->resp_prefix;
  d.relname = info.relname;
  d.keyspace = info.t->keyspace;
  d.database_oid = MyDatabaseId;
  d.relid = info.t->relid;
  d.encoding = GetDatabaseEncoding();
  d.ttl_ms = info.t->ttl_ms;
  d.expire_attnum = info.t->expire_attnum;
  d.nkeys = info.t->nkeys;
  d.cache = info.t->cache;
  d.stale_ttl_ms = info.t->stale_ttl_ms;
  d.lease_timeout_ms = info.t->lease_timeout_ms;
  d.mirror = OidIsValid(info.t->mirror_of);
  for (int i = 0; i < info.natts; ++i) {
    const ColumnInfo& c = info.cols[i];
    resp::TableColumn col;
    col.name = c.name;
    col.attnum = c.attnum;
    col.type_oid = c.type;
    col.typmod = c.typmod;
    col.typlen = c.typlen;
    col.typbyval = c.typbyval;
    col.typalign = c.typalign;
    col.typinput = c.typinput;
    col.typoutput = c.typoutput;
    col.typioparam = c.typioparam;
    col.dropped = c.dropped;
    col.key_index = c.key_index;
    d.columns.push_back(std::move(col));
  }
  return d;
}

bool Overlaps(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  return a.substr(0, n) == b.substr(0, n);
}

uint32_t CatalogKeyspace(eloqkv::Engine* e) {
  uint32_t id;
  bool found;
  PgError err;
  if (!kv::ResolveKeyspace(e, std::string(resp::kTableCatalogKeyspace).c_str(), true, &id, &found,
                           nullptr, &err)) {
    RaiseError(err, "could not open the RESP table catalog");
  }
  return id;
}

}  // namespace

eloqkv::Status ScanCatalog(eloqkv::Engine* e, uint32_t keyspace,
                           const std::function<void(std::string_view)>& each) {
  kv::CursorSpec spec;
  kv::Cursor* cursor = nullptr;
  PgError err;
  if (!kv::OpenCursor(e, keyspace, spec, &cursor, &err))
    return eloqkv::Status::IOError(err.message);
  for (;;) {
    kv::Row row;
    bool done = false;
    if (!kv::CursorNext(cursor, &row, &done, nullptr, &err)) {
      kv::CloseCursor(cursor);
      return eloqkv::Status::IOError(err.message);
    }
    if (done) break;
    each(std::string_view(row.value, row.value_len));
  }
  kv::CloseCursor(cursor);
  return eloqkv::Status::OK();
}

void PublishRespTable(Oid relid, const char* previous_prefix) {
  const KvTable* current = LoadKvTableById(relid);
  if (previous_prefix[0] == '\0' && current->resp_prefix[0] == '\0') return;
  eloqkv::Engine* e = ReadyEngine();
  const uint32_t catalog = CatalogKeyspace(e);
  const char* catalog_name = resp::kTableCatalogKeyspace.data();
  const int nest = GetCurrentTransactionNestLevel();
  PgError err;
  if (previous_prefix[0] != '\0' && std::strcmp(previous_prefix, current->resp_prefix) != 0) {
    if (!kv::BufferDelete(catalog, catalog_name, 0, previous_prefix, std::strlen(previous_prefix),
                          0, nest, &err)) {
      RaiseError(err);
    }
    g_changed_in_xact = true;
  }
  if (current->resp_prefix[0] == '\0') return;

  TableInfo info;
  CollectTable(relid, &info);
  EncodeResult r;
  std::memset(&r, 0, sizeof(r));
  r.cap = 4096 + static_cast<size_t>(info.natts) * (NAMEDATALEN + 128);
  r.buf = static_cast<char*>(palloc(r.cap));
  const bool ok = Guarded(&err, [&]() -> eloqkv::Status {
    const std::string_view prefix = info.t->resp_prefix;
    eloqkv::Status s = ScanCatalog(e, catalog, [&](std::string_view value) {
      resp::TableDesc other;
      if (r.overlap || !resp::DecodeTableDesc(value, &other)) return;
      if (other.database_oid == MyDatabaseId && other.relid == relid) return;
      if (Overlaps(other.prefix, prefix)) {
        r.overlap = true;
        snprintf(r.other_prefix, sizeof(r.other_prefix), "%s", other.prefix.c_str());
        snprintf(r.other_relname, sizeof(r.other_relname), "%s", other.relname.c_str());
      }
    });
    if (!s.ok()) return s;
    const std::string encoded = resp::EncodeTableDesc(MakeDesc(info));
    if (encoded.size() > r.cap) return eloqkv::Status::TooLarge("table description too large");
    std::memcpy(r.buf, encoded.data(), encoded.size());
    r.len = encoded.size();
    return eloqkv::Status::OK();
  });
  if (!ok) RaiseError(err, "could not publish the table to RESP");
  if (r.overlap) {
    ereport(ERROR,
            (errcode(ERRCODE_DUPLICATE_OBJECT),
             errmsg("resp_prefix \"%s\" of foreign table \"%s\" overlaps prefix \"%s\" of \"%s\"",
                    info.t->resp_prefix, info.t->relname, r.other_prefix, r.other_relname),
             errdetail("A RESP key must address at most one table."),
             errhint("Choose a prefix that neither starts with nor is the start of another "
                     "table's, e.g. end it with ':'.")));
  }
  if (!kv::BufferPut(catalog, catalog_name, 0, info.t->resp_prefix,
                     std::strlen(info.t->resp_prefix), r.buf, r.len, 0, kv::Intent::kUpsert, 0,
                     nest, &err)) {
    RaiseError(err);
  }
  g_changed_in_xact = true;
  RefreshRespUsersOfDatabase();
}

void UnpublishRespTable(Oid relid) {
  // From the options alone: a table DROP removes must not need to be a valid one.
  const char* prefix = nullptr;
  ListCell* lc;
  foreach (lc, GetForeignTable(relid)->options) {
    DefElem* def = lfirst_node(DefElem, lc);
    if (std::strcmp(def->defname, "resp_prefix") == 0) prefix = defGetString(def);
  }
  if (prefix == nullptr || prefix[0] == '\0') return;
  eloqkv::Engine* e = ReadyEngine();
  const uint32_t catalog = CatalogKeyspace(e);
  PgError err;
  if (!kv::BufferDelete(catalog, resp::kTableCatalogKeyspace.data(), 0, prefix, std::strlen(prefix),
                        0, GetCurrentTransactionNestLevel(), &err)) {
    RaiseError(err);
  }
  g_changed_in_xact = true;
  RefreshRespUsersOfDatabase();
}

void RespTablesAtCommit() {
  if (!g_changed_in_xact) return;
  g_changed_in_xact = false;
  BumpRespTableGeneration();
}

void RespTablesAtAbort() {
  g_changed_in_xact = false;
}

void MarkRespCatalogChanged() {
  g_changed_in_xact = true;
}

}  // namespace eloqkv::pg
