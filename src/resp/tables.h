// Tables: RESP keys that address rows of foreign tables (the table option resp_prefix).
//
// Invariants:
//  * The catalog is the engine keyspace kTableCatalogKeyspace: one entry per served table, key =
//    its prefix, value = EncodeTableDesc(). Backends write it in the same atomic batch as the DDL
//    transaction's other KV writes, so it never names a table whose CREATE rolled back, and bump
//    the shared generation after that batch commits.
//  * No two prefixes of the catalog overlap (the DDL side refuses it), so a key matches at most
//    one table, and a key no prefix matches lives in the default keyspace.
//  * A TableRouter reloads the catalog whenever the generation moved (and at least every few
//    seconds), so a dropped table stops being served as soon as its DROP is visible.
//  * This layer never interprets row bytes: the RowCodec the host provides (Postgres type I/O)
//    converts between stored rows and the text form of their columns.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/eloqkv.h"
#include "resp/store_types.h"

namespace eloqkv::resp {

inline constexpr std::string_view kTableCatalogKeyspace = "@resp_tables";
inline constexpr uint32_t kTableDescVersion = 3;  // 2: the cache flag; 3: cache timings

struct TableColumn {
  std::string name;
  int16_t attnum = 0;
  uint32_t type_oid = 0;
  int32_t typmod = -1;
  int16_t typlen = 0;
  bool typbyval = false;
  char typalign = 'i';
  uint32_t typinput = 0;   // the type's input function (a built-in)
  uint32_t typoutput = 0;  // the type's output function (a built-in)
  uint32_t typioparam = 0;
  bool dropped = false;
  int key_index = -1;  // position in the key, -1 for a value column
};

// The stored value of a cache's negative entry ("the source has no such row"): one byte no row
// value starts with (row values start with their format version, 1).
inline constexpr char kCacheNegativeEntry = static_cast<char>(0xFE);

struct TableDesc {
  std::string prefix;
  std::string relname;  // schema-qualified, for messages
  std::string keyspace;
  uint32_t database_oid = 0;
  uint32_t relid = 0;
  int32_t encoding = 0;  // the database's encoding (Postgres enum value)
  int64_t ttl_ms = 0;
  int16_t expire_attnum = 0;
  std::vector<TableColumn> columns;  // by attnum (dropped ones included, flagged)
  int nkeys = 0;
  // A cache (src/cache): RESP reads its rows, never writes them; a negative entry (a value the
  // codec reports as NotFound) reads as no row.
  bool cache = false;
  int64_t stale_ttl_ms = 0;      // a cache's rows are stored this long past their ttl
  int64_t lease_timeout_ms = 0;  // how long a cache reader waits for another's fill
  // A full-cache mirror of a heap table: RESP reads its rows, never writes them.
  bool mirror = false;
  // Filled when loaded, not stored:
  uint32_t keyspace_id = 0;
  int value_column = -1;  // index into columns of the only value column, -1 if not exactly one
};

std::string EncodeTableDesc(const TableDesc& d);
bool DecodeTableDesc(std::string_view in, TableDesc* d);

// Converts rows to and from the text form of their columns. Implemented by the host; every
// failure is a Status whose message is fit for a client (kInvalidArgument for bad input).
class RowCodec {
 public:
  virtual ~RowCodec() = default;
  // The engine key of the row whose key columns are `text` (components separated by ':').
  virtual Status KeyFromText(const TableDesc& t, std::string_view text, std::string* key) = 0;
  // Every non-NULL column of the row (key columns from `key`) as name -> text.
  virtual Status RowToFields(const TableDesc& t, std::string_view key, std::string_view row,
                             HashFields* fields) = 0;
  // The stored row for `fields` (absent columns are NULL; key columns, if present, must equal
  // the key's), and the expiry its expire column or the table's ttl gives (0: none).
  virtual Status FieldsToRow(const TableDesc& t, std::string_view key, const HashFields& fields,
                             std::string* row, int64_t* expire_at_ms) = 0;
  // The catalog changed: cached per-table state may be dropped.
  virtual void Forget() {}
};

// Fills keys of caches for RESP readers: the host runs the cache's source query under the same
// per-key lease as SQL readers, away from the listener's loop. Asynchronous: the fill reaches
// the engine (and its change feed) when done. Errors are Status values fit for a client.
class CacheFiller {
 public:
  virtual ~CacheFiller() = default;
  // refresh_if_fresh_until != 0: an early refresh of a row that the reader saw fresh until then
  // (XFetch); the host skips it if the row was refreshed since.
  virtual Status RequestFill(const TableDesc& t, std::string_view engine_key,
                             int64_t refresh_if_fresh_until = 0) = 0;
  // XFetch: whether a reader that found a row fresh for remaining_ms more should have it
  // refreshed now (probability rising as expiry nears, scaled by the cache's fill time).
  virtual bool WantsEarlyRefresh(const TableDesc& /*t*/, int64_t /*remaining_ms*/) { return false; }
};

// Where a RESP key lives.
struct KeyTarget {
  std::shared_ptr<const TableDesc> table;  // null: the default keyspace
  std::string engine_key;                  // for table rows: the encoded key
};

class TableRouter {
 public:
  // generation may be null (no tables are ever served).
  TableRouter(Engine* engine, RowCodec* codec, const std::atomic<uint64_t>* generation)
      : engine_(engine), codec_(codec), generation_(generation) {}

  // The table `key` addresses, if any. Fails when the key names a table row but its key part
  // does not convert to the table's key columns.
  Status Resolve(std::string_view key, KeyTarget* out);
  RowCodec* codec() const { return codec_; }
  // Reloads now if the catalog changed; cheap when it did not.
  void Refresh();
  size_t table_count() const { return by_prefix_.size(); }

 private:
  Status Load();

  Engine* engine_;
  RowCodec* codec_;
  const std::atomic<uint64_t>* generation_;
  uint64_t loaded_generation_ = UINT64_MAX;
  int64_t loaded_at_ms_ = 0;
  std::map<std::string, std::shared_ptr<const TableDesc>, std::less<>> by_prefix_;
};

}  // namespace eloqkv::resp
