// Options of eloqkv foreign tables and servers: validation, and the per-table description the
// planner, executor and DDL hooks work from.
#pragma once

#include "engine/eloqkv.h"
#include "pg/pg_headers.h"

extern "C" {
#include "nodes/pg_list.h"
#include "utils/relcache.h"
}

namespace eloqkv::pg {

inline constexpr int kMaxKeyColumns = 16;
inline constexpr int kMaxKeyspaceName = 127;
// A table's rows live in the engine keyspace "<database oid>/<keyspace option>": engine keyspaces
// are cluster-wide, and no table may reach another database's rows by naming their keyspace.
inline constexpr int kMaxEngineKeyspaceName = kMaxKeyspaceName + 11;
// A tagged cache keeps its tag index in the keyspace named this prefix + its own keyspace.
inline constexpr const char* kTagKeyspacePrefix = "@tags:";
static_assert(kMaxEngineKeyspaceName + 6 <= static_cast<int>(eloqkv::kMaxKeyspaceNameSize));

// What an eloqkv foreign table is: palloc'd, built from the catalog.
struct KvTable {
  Oid relid;
  char relname[NAMEDATALEN];
  char keyspace[kMaxEngineKeyspaceName + 1];  // the engine's name (EngineKeyspaceName)
  char keyspace_option[kMaxKeyspaceName + 1];  // as the table names it (shown to users)
  int nkeys;
  AttrNumber key_attnums[kMaxKeyColumns];  // in key order
  Oid key_types[kMaxKeyColumns];
  int32 key_typmods[kMaxKeyColumns];
  Oid key_collations[kMaxKeyColumns];
  int64 ttl_ms;              // default row lifetime, 0: none
  int batch_size;            // rows per ExecForeignBatchInsert call
  AttrNumber expire_attnum;  // timestamptz column holding a row's own expiry, 0: none
  bool shared;               // the keyspace may be shared with other tables
  char resp_prefix[256];     // RESP key prefix, "" when the table is not served over RESP
  bool catalog_free;         // built without catalog access (RESP workers): no type conversion
  // A cache (src/cache): rows are filled by its cache_source query, never written otherwise.
  bool cache;
  Oid mirror_of;           // a full-cache mirror of this heap table (src/cache/mirror.h)
  int64 stale_ttl_ms;      // how long past ttl a row may be served while one reader refills it
  int64 negative_ttl_ms;   // lifetime of a "the source has no such row" entry
  int64 lease_timeout_ms;  // how long a reader waits for another reader's fill
  AttrNumber tag_attnum;   // cache: the column whose value tags a row (invalidate_tag), 0: none
};

// The FDW validator: checks option names and values for one catalog (wrapper, server, user
// mapping, foreign table). Column-dependent checks happen when the table is created.
void ValidateOptionList(List* options, Oid catalog);

// Whether the relation is a foreign table of an eloqkv_fdw server.
bool IsKvTable(Oid relid);
// Reads and checks the table's options against its columns (ERROR with a hint when wrong).
KvTable* LoadKvTable(Relation rel);
KvTable* LoadKvTableById(Oid relid);
// The same, from a per-backend cache kept exact by relcache and pg_foreign_table
// invalidations (planning and every scan start need it; reading the catalog each time costs).
// Returns a copy in the current memory context, valid for as long as that context.
const KvTable* CachedKvTable(Relation rel);
const KvTable* CachedKvTableById(Oid relid);
void RegisterKvTableInvalidation();

// The default keyspace name of a table: its name, schema-qualified outside "public".
void DefaultKeyspaceName(Oid relid, char* out, size_t size);
// The engine keyspace of this database's tables whose keyspace option is `name`.
void EngineKeyspaceName(const char* name, char* out, size_t size);
// The inverse for names of this database ("<oid>/x" and "@tags:<oid>/x" become "x" and
// "@tags:x"); false for another database's keyspace. Other names (eloqkv's own) are kept.
bool LocalKeyspaceName(const char* engine_name, char* out, size_t size);

}  // namespace eloqkv::pg
