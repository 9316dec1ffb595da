#include "resp/tables.h"

#include "engine/coding.h"

namespace eloqkv::resp {
namespace {

// A backstop for a generation bump lost to a backend that died between its commit and the bump.
constexpr int64_t kReloadEveryMs = 5000;

void PutSigned(std::string* out, int64_t v) {
  PutVarint64(out, static_cast<uint64_t>(v));
}

bool GetSigned(std::string_view* in, int64_t* v) {
  uint64_t u = 0;
  if (!GetVarint64(in, &u)) return false;
  *v = static_cast<int64_t>(u);
  return true;
}

template <typename T>
bool GetNumber(std::string_view* in, T* v) {
  int64_t x = 0;
  if (!GetSigned(in, &x)) return false;
  *v = static_cast<T>(x);
  return true;
}

}  // namespace

std::string EncodeTableDesc(const TableDesc& d) {
  std::string out;
  PutVarint64(&out, kTableDescVersion);
  PutLengthPrefixed(&out, d.prefix);
  PutLengthPrefixed(&out, d.relname);
  PutLengthPrefixed(&out, d.keyspace);
  PutSigned(&out, d.database_oid);
  PutSigned(&out, d.relid);
  PutSigned(&out, d.encoding);
  PutSigned(&out, d.ttl_ms);
  PutSigned(&out, d.expire_attnum);
  PutSigned(&out, d.nkeys);
  PutVarint64(&out, d.columns.size());
  for (const TableColumn& c : d.columns) {
    PutLengthPrefixed(&out, c.name);
    PutSigned(&out, c.attnum);
    PutSigned(&out, c.type_oid);
    PutSigned(&out, c.typmod);
    PutSigned(&out, c.typlen);
    PutSigned(&out, c.typbyval ? 1 : 0);
    PutSigned(&out, c.typalign);
    PutSigned(&out, c.typinput);
    PutSigned(&out, c.typoutput);
    PutSigned(&out, c.typioparam);
    PutSigned(&out, c.dropped ? 1 : 0);
    PutSigned(&out, c.key_index);
  }
  PutSigned(&out, d.cache ? 1 : d.mirror ? 2 : 0);  // what fills the table: SQL, a source, a table
  PutSigned(&out, d.stale_ttl_ms);
  PutSigned(&out, d.lease_timeout_ms);
  return out;
}

bool DecodeTableDesc(std::string_view in, TableDesc* d) {
  *d = TableDesc();
  uint64_t version = 0, ncols = 0;
  // Version 1 (before caches) lacks the cache flag; it is read as "not a cache".
  if (!GetVarint64(&in, &version) || version < 1 || version > kTableDescVersion) return false;
  if (!GetLengthPrefixed(&in, &d->prefix) || !GetLengthPrefixed(&in, &d->relname) ||
      !GetLengthPrefixed(&in, &d->keyspace) || !GetNumber(&in, &d->database_oid) ||
      !GetNumber(&in, &d->relid) || !GetNumber(&in, &d->encoding) || !GetNumber(&in, &d->ttl_ms) ||
      !GetNumber(&in, &d->expire_attnum) || !GetNumber(&in, &d->nkeys) ||
      !GetVarint64(&in, &ncols) || ncols > 1600) {
    return false;
  }
  int keys = 0, values = 0;
  for (uint64_t i = 0; i < ncols; ++i) {
    TableColumn c;
    int64_t byval = 0, align = 0, dropped = 0;
    if (!GetLengthPrefixed(&in, &c.name) || !GetNumber(&in, &c.attnum) || !GetNumber(&in, &c.type_oid) ||
        !GetNumber(&in, &c.typmod) || !GetNumber(&in, &c.typlen) || !GetSigned(&in, &byval) ||
        !GetSigned(&in, &align) || !GetNumber(&in, &c.typinput) || !GetNumber(&in, &c.typoutput) ||
        !GetNumber(&in, &c.typioparam) || !GetSigned(&in, &dropped) ||
        !GetNumber(&in, &c.key_index)) {
      return false;
    }
    c.typbyval = byval != 0;
    c.typalign = static_cast<char>(align);
    c.dropped = dropped != 0;
    if (c.attnum != static_cast<int16_t>(i + 1)) return false;
    if (!c.dropped && c.key_index >= 0) ++keys;
    if (!c.dropped && c.key_index < 0) {
      ++values;
      d->value_column = static_cast<int>(i);
    }
    d->columns.push_back(std::move(c));
  }
  if (values != 1) d->value_column = -1;
  int64_t filled_by = 0;
  if (version >= 2 && (!GetSigned(&in, &filled_by) || filled_by < 0 || filled_by > 2)) return false;
  d->cache = filled_by == 1;
  d->mirror = filled_by == 2;
  if (version >= 3 && (!GetNumber(&in, &d->stale_ttl_ms) || !GetNumber(&in, &d->lease_timeout_ms)))
    return false;
  return in.empty() && keys == d->nkeys && d->nkeys > 0 && !d->prefix.empty();
}

void TableRouter::Refresh() {
  if (generation_ == nullptr) return;
  const uint64_t g = generation_->load(std::memory_order_acquire);
  if (g == loaded_generation_ && CoarseNowMillis() - loaded_at_ms_ < kReloadEveryMs) return;
  if (engine_->state() != EngineState::kReady) return;
  if (Load().ok()) loaded_generation_ = g;
  loaded_at_ms_ = CoarseNowMillis();
}

Status TableRouter::Load() {
  uint32_t catalog = 0;
  Status s = engine_->FindKeyspace(kTableCatalogKeyspace, &catalog);
  std::map<std::string, std::shared_ptr<const TableDesc>, std::less<>> tables;
  if (s.ok()) {
    ScanOptions opts;
    auto it = engine_->NewIterator(catalog, opts);
    std::string value;
    for (; it->Valid(); it->Next()) {
      if (!it->value(&value).ok()) continue;  // deleted meanwhile
      auto d = std::make_shared<TableDesc>();
      // An entry this version cannot read (written by a newer one) is not served.
      if (!DecodeTableDesc(value, d.get())) continue;
      if (!engine_->FindKeyspace(d->keyspace, &d->keyspace_id).ok()) continue;
      tables.emplace(d->prefix, std::move(d));
    }
    s = it->status();
  } else if (s.IsNotFound()) {
    s = Status::OK();  // no table has been served yet
  }
  if (!s.ok()) return s;
  by_prefix_ = std::move(tables);
  if (codec_ != nullptr) codec_->Forget();
  return Status::OK();
}

Status TableRouter::Resolve(std::string_view key, KeyTarget* out) {
  out->table.reset();
  Refresh();
  if (by_prefix_.empty() || codec_ == nullptr) return Status::OK();
  // Prefixes do not overlap, so the only candidate is the greatest prefix <= key.
  auto it = by_prefix_.upper_bound(key);
  if (it == by_prefix_.begin()) return Status::OK();
  --it;
  if (key.substr(0, it->first.size()) != it->first) return Status::OK();
  Status s = codec_->KeyFromText(*it->second, key.substr(it->first.size()), &out->engine_key);
  if (!s.ok()) return s;
  out->table = it->second;
  return Status::OK();
}

}  // namespace eloqkv::resp
