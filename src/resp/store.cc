#include "resp/store.h"

#include <algorithm>

#include "engine/coding.h"

namespace eloqkv::resp {

const char* ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kString:
      return "string";
    case ValueType::kHash:
      return "hash";
    case ValueType::kNone:
      break;
  }
  return "none";
}

void EncodeValueTo(ValueType type, std::string_view payload, std::string* out) {
  out->assign(1, static_cast<char>(type));
  out->append(payload);
}

std::string EncodeValue(ValueType type, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 1);
  EncodeValueTo(type, payload, &out);
  return out;
}

bool DecodeValue(std::string_view stored, ValueType* type, std::string_view* payload) {
  if (stored.empty()) return false;
  const auto t = static_cast<ValueType>(stored[0]);
  if (t != ValueType::kString && t != ValueType::kHash) return false;
  *type = t;
  *payload = stored.substr(1);
  return true;
}

std::string EncodeHash(const HashFields& fields) {
  std::string out;
  PutVarint64(&out, fields.size());
  for (const auto& [f, v] : fields) {
    PutVarint64(&out, f.size());
    out.append(f);
    PutVarint64(&out, v.size());
    out.append(v);
  }
  return out;
}

bool DecodeHash(std::string_view payload, HashFields* out) {
  out->clear();
  uint64_t n = 0;
  if (!GetVarint64(&payload, &n)) return false;
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view parts[2];
    for (auto& part : parts) {
      uint64_t len = 0;
      if (!GetVarint64(&payload, &len) || len > payload.size()) return false;
      part = payload.substr(0, len);
      payload.remove_prefix(len);
    }
    out->emplace(std::string(parts[0]), std::string(parts[1]));
  }
  return payload.empty();
}

Status ReadValue(Engine* engine, uint32_t keyspace, std::string_view key, ValueType* type,
                 std::string* stored, ReadInfo* info) {
  Status s = engine->Get(keyspace, key, stored, info);
  if (!s.ok()) return s;
  std::string_view payload;
  if (!DecodeValue(*stored, type, &payload))
    return Status::Corruption("the value stored under this key was not written by RESP");
  return s;
}

namespace {

bool Allowed(const RespUser* user, const TableDesc* table, uint32_t privilege) {
  if (user == nullptr) return true;
  if (table == nullptr) return user->plain_keys;
  if (table->database_oid != user->database_oid) return false;
  auto it = user->grants.find(table->relid);
  return it != user->grants.end() && (it->second & privilege) == privilege;
}

}  // namespace

Status CheckRead(const RespUser* user, const KeyTarget& target) {
  if (Allowed(user, target.table.get(), kSelect)) return Status::OK();
  return Status::PermissionDenied(kNoPermissionKeys);
}

Status FieldSpace::Resolve(Engine* engine, bool create, uint32_t* out) {
  // Keyspace ids are never reused: one that still exists still names this keyspace.
  if (id != 0 && engine->KeyspaceExists(id)) {
    *out = id;
    return Status::OK();
  }
  id = 0;
  Status s = engine->FindKeyspace(name, &id);
  if (s.IsNotFound() && create) {
    s = engine->CreateKeyspace(name, &id);
    if (s.code() == Status::Code::kKeyExists) s = engine->FindKeyspace(name, &id);
  }
  if (!s.ok()) {
    id = 0;
    return s;
  }
  *out = id;
  return s;
}

bool Txn::Observed(std::string_view key, uint32_t* keyspace, std::string_view* engine_key,
                   int64_t* expire_at_ms) const {
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second.loaded) return false;
  const Entry& e = it->second;
  *keyspace = KeyspaceOf(e);
  *engine_key = e.table ? std::string_view(e.engine_key) : std::string_view(it->first);
  *expire_at_ms = e.read_seq != 0 ? e.expire_at_ms : 0;
  return true;
}

Status Txn::Read(std::string_view key, Entry** out) {
  auto it = entries_.find(key);
  if (it != entries_.end() &&
      (it->second.loaded || it->second.dirty || (truncated_ && !it->second.table))) {
    Entry& e = it->second;
    // Its time ran out since it was read or written here: gone for the commands after, as in
    // Redis, whose next lookup expires it. Plain keys only: a table row's time can come from a
    // column, which e.expire_at_ms does not follow while the row is written.
    if (!e.table && e.exists && e.expire_at_ms != 0 && e.expire_at_ms <= NowMillis()) {
      if (e.dirty) {
        Remove(&e);
      } else {
        // The engine holds this same version, expired: sequence number 0 to it, so Commit
        // requires that (the read's own number would fail it once for nothing).
        e.exists = false;
        e.type = ValueType::kNone;
        e.payload.clear();
        e.expire_at_ms = 0;
        e.read_seq = 0;
      }
    }
    *out = &e;
    return Status::OK();
  }
  KeyTarget target;
  if (router_ != nullptr) {
    Status s = router_->Resolve(key, &target);
    if (!s.ok()) return s;
  }
  if (Status s = CheckRead(user_, target); !s.ok()) return s;
  if (it == entries_.end()) it = entries_.emplace(std::string(key), Entry{}).first;
  Entry& e = it->second;
  *out = &e;
  if (target.table) {
    e.table = std::move(target.table);
    e.engine_key = std::move(target.engine_key);
    Status s = LoadRow(&e);
    if (!s.ok()) entries_.erase(it);
    return s;
  }
  if (truncated_) return Status::OK();  // FLUSHDB earlier in this transaction
  std::string stored;
  ReadInfo info = ReadOptions();
  Status s = engine_->Get(keyspace_, key, &stored, &info);
  DependOn(info);
  std::string_view payload;
  if (s.ok() && !DecodeValue(stored, &e.type, &payload))
    s = Status::Corruption("the value stored under this key was not written by RESP");
  if (!s.ok() && !s.IsNotFound()) {
    // A read that failed saw nothing: a later command of the same transaction reads again.
    entries_.erase(it);
    return s;
  }
  e.loaded = true;
  if (s.IsNotFound()) return Status::OK();
  e.exists = true;
  e.payload.assign(payload);
  held_bytes_ += payload.size();
  e.expire_at_ms = info.expire_at_ms;
  e.read_seq = info.seq;
  return Status::OK();
}

Status Txn::LoadRow(Entry* e) {
  std::string stored;
  ReadInfo info = ReadOptions();
  Status s = engine_->Get(e->table->keyspace_id, e->engine_key, &stored, &info);
  DependOn(info);
  e->loaded = true;
  const bool negative =
      s.ok() && e->table->cache && stored.size() == 1 && stored[0] == kCacheNegativeEntry;
  if (e->table->cache) {
    if (s.IsNotFound()) {
      cache_misses_.push_back({e->table, e->engine_key});
    } else if (s.ok() && !negative && info.expire_at_ms != 0) {
      const int64_t fresh_until = info.expire_at_ms - e->table->stale_ttl_ms;
      if (NowMillis() >= fresh_until)
        cache_refreshes_.push_back({e->table, e->engine_key});  // past its ttl: served stale
      else
        cache_fresh_.push_back({e->table, e->engine_key, fresh_until});
    }
  }
  if (negative) {
    s = Status::NotFound();  // the cache knows its source has no such row
    info.seq = 0;
  }
  if (s.IsNotFound()) {
    e->row_exists = false;
    e->fields.clear();
    ShowAs(e, ValueType::kNone);
    return Status::OK();
  }
  if (!s.ok()) return s;
  s = router_->codec()->RowToFields(*e->table, e->engine_key, stored, &e->fields);
  if (!s.ok()) return s;
  e->row_exists = true;
  e->read_seq = info.seq;
  e->expire_at_ms = info.expire_at_ms;
  ShowAs(e, ValueType::kNone);
  return Status::OK();
}

bool Txn::ShowAs(Entry* e, ValueType want) {
  if (!e->table) return want == ValueType::kNone || !e->exists || e->type == want;
  if (want == ValueType::kString) {
    if (e->table->value_column < 0) return !e->row_exists;
    auto f = e->fields.find(e->table->columns[e->table->value_column].name);
    e->type = ValueType::kString;
    e->exists = e->row_exists && f != e->fields.end();  // a NULL value reads as no value
    e->payload = e->exists ? f->second : std::string();
    return true;
  }
  e->type = ValueType::kHash;
  e->exists = e->row_exists;
  e->payload = e->row_exists ? EncodeHash(e->fields) : std::string();
  return true;
}

Status Txn::Blind(std::string_view key, Entry** out) {
  if (router_ != nullptr) {
    KeyTarget target;
    Status s = router_->Resolve(key, &target);
    if (!s.ok()) return s;
    if (target.table) return Read(key, out);
  }
  if (!Allowed(user_, nullptr, 0)) return Status::PermissionDenied(kNoPermissionKeys);
  auto it = entries_.find(key);
  if (it == entries_.end()) it = entries_.emplace(std::string(key), Entry{}).first;
  *out = &it->second;
  return Status::OK();
}

void Txn::Put(Entry* e, ValueType type, std::string payload, int64_t expire_at_ms) {
  // A time already past deletes the key (Redis's SET ... PXAT <past>, GETEX ... PXAT <past>):
  // the commands after it in this transaction find it gone, not alive with a dead TTL. Plain
  // keys only, as in Read.
  if (!e->table && expire_at_ms != 0 && expire_at_ms <= NowMillis()) {
    Remove(e);
    return;
  }
  Preserve(e);
  e->exists = true;
  e->type = type;
  e->payload = std::move(payload);
  e->expire_at_ms = expire_at_ms;
  NoteWrite(e, e->payload.size());
  if (!e->table) return;
  e->row_exists = true;
  e->put_error.clear();
  if (type == ValueType::kHash) {
    if (!DecodeHash(e->payload, &e->fields)) e->put_error = "the hash to store is malformed";
  } else if (e->table->value_column < 0) {
    e->put_error = "table " + e->table->relname +
                   " has several value columns: write its row with HSET, not as a string";
  } else {
    // The row is its key and this one value.
    e->fields.clear();
    e->fields.emplace(e->table->columns[e->table->value_column].name, e->payload);
  }
}

void Txn::NoteWrite(Entry* e, size_t bytes) {
  // Written by two clients (a shared transaction): reported as nobody's, so that a NOLOOP
  // tracker among them still hears of the other's write.
  e->writer = e->dirty && e->writer != origin_ ? 0 : origin_;
  e->dirty = true;
  ++writes_;
  held_bytes_ += bytes;
}

void Txn::Remove(Entry* e) {
  Preserve(e);
  e->exists = false;
  e->type = ValueType::kNone;
  e->payload.clear();
  e->expire_at_ms = 0;
  NoteWrite(e, 0);
  e->row_exists = false;
  e->fields.clear();
  e->put_error.clear();
}

Status Txn::ReadField(std::string_view record_key, std::string* value, bool* found) {
  ++field_reads_;
  auto it = fields_.find(record_key);
  if (it == fields_.end()) {
    FieldEntry f;
    uint32_t ks = 0;
    Status s = truncated_ || field_space_ == nullptr
                   ? Status::NotFound()
                   : field_space_->Resolve(engine_, false, &ks);
    if (s.ok()) {
      ReadInfo info = ReadOptions();
      s = engine_->Get(ks, record_key, &f.value, &info);
      DependOn(info);
      f.exists = s.ok();
    }
    if (!s.ok() && !s.IsNotFound()) return s;
    held_bytes_ += f.value.size();
    it = fields_.emplace(std::string(record_key), std::move(f)).first;
  }
  *found = it->second.exists;
  if (*found) value->assign(it->second.value);
  return Status::OK();
}

void Txn::WriteField(std::string_view record_key, std::string_view value) {
  PreserveField(record_key);
  FieldEntry& f = fields_[std::string(record_key)];
  f.exists = true;
  f.dirty = true;
  f.value.assign(value);
  ++writes_;
  held_bytes_ += value.size();
}

void Txn::DeleteField(std::string_view record_key) {
  PreserveField(record_key);
  FieldEntry& f = fields_[std::string(record_key)];
  f.exists = false;
  f.dirty = true;
  f.value.clear();
  ++writes_;
}

Status Txn::ScanFields(std::string_view prefix, const std::string* after, size_t limit,
                       FieldList* out, bool* more) {
  field_reads_ += 2;
  out->clear();
  *more = false;
  std::string lower(prefix);
  if (after != nullptr) lower.append(*after);
  std::unique_ptr<Iterator> iter;
  uint32_t ks = 0;
  if (!truncated_ && field_space_ != nullptr) {
    Status s = field_space_->Resolve(engine_, false, &ks);
    if (!s.ok() && !s.IsNotFound()) return s;
    if (s.ok()) {
      ScanOptions opts;
      opts.prefix.assign(prefix);
      opts.lower = lower;
      opts.lower_inclusive = after == nullptr;
      iter = engine_->NewIterator(ks, opts);
    }
  }
  // This transaction's own records override the engine's; merge the two in key order.
  auto mine = after == nullptr ? fields_.lower_bound(lower) : fields_.upper_bound(lower);
  auto mine_valid = [&] {
    return mine != fields_.end() && std::string_view(mine->first).starts_with(prefix);
  };
  std::string value;
  while (true) {
    const bool have_engine = iter != nullptr && iter->Valid();
    const bool have_mine = mine_valid();
    if (!have_engine && !have_mine) break;
    int order = !have_engine ? 1 : !have_mine ? -1 : iter->key().compare(mine->first);
    std::string_view key;
    const std::string* v = nullptr;
    bool exists = true;
    if (order < 0) {
      Status s = iter->value(&value);
      if (s.IsNotFound()) {  // deleted since the iterator reached it
        iter->Next();
        continue;
      }
      if (!s.ok()) return s;
      DependOn(iter->info());
      key = iter->key();
      v = &value;
    } else {
      key = mine->first;
      v = &mine->second.value;
      exists = mine->second.exists;
    }
    if (exists) {
      if (out->size() == limit) {
        *more = true;
        break;
      }
      out->emplace_back(std::string(key.substr(prefix.size())), *v);
    }
    if (order <= 0) iter->Next();
    if (order >= 0) ++mine;
  }
  if (iter != nullptr && !iter->status().ok()) return iter->status();
  return Status::OK();
}

uint64_t Txn::NewGeneration() {
  last_generation_ = std::max(engine_->NextSequence(), last_generation_ + 1);
  return last_generation_;
}

Status Txn::Locate(std::string_view key, uint32_t* keyspace, std::string* engine_key) {
  KeyTarget target;
  if (router_ != nullptr) {
    Status s = router_->Resolve(key, &target);
    if (!s.ok()) return s;
  }
  if (target.table) {
    *keyspace = target.table->keyspace_id;
    *engine_key = std::move(target.engine_key);
  } else {
    *keyspace = keyspace_;
    engine_key->assign(key);
  }
  return Status::OK();
}

Status Txn::Require(std::string_view key, uint64_t seq, uint64_t absent_since) {
  Required r{0, {}, seq, seq == 0 ? absent_since : 0};
  Status s = Locate(key, &r.keyspace, &r.engine_key);
  if (s.ok()) required_[std::string(key)] = std::move(r);
  return s;
}

void Txn::Truncate(std::string_view keyspace_name) {
  if (saved_.active && !saved_.all_fields) saved_.all_fields = fields_;
  ++writes_;
  truncated_ = true;
  truncate_name_.assign(keyspace_name);
  for (auto& [key, e] : entries_) {
    if (e.table) continue;  // FLUSHDB empties the default keyspace only
    Preserve(&e);
    e = Entry{};
    e.loaded = true;
  }
  fields_.clear();
}

void Txn::Savepoint() {
  ReleaseSavepoint();
  saved_.active = true;
  saved_.truncated = truncated_;
  saved_.truncate_name = truncate_name_;
  saved_.writes = writes_;
}

void Txn::Preserve(const Entry* e) {
  if (saved_.active) saved_.entries.try_emplace(e, *e);
}

void Txn::PreserveField(std::string_view record_key) {
  // After a FLUSHDB since the savepoint, the copy taken then holds what the others had.
  if (!saved_.active || saved_.all_fields || saved_.fields.find(record_key) != saved_.fields.end())
    return;
  auto it = fields_.find(record_key);
  saved_.fields.emplace(std::string(record_key),
                        it == fields_.end() ? std::nullopt : std::optional<FieldEntry>(it->second));
}

void Txn::RollbackToSavepoint() {
  if (!saved_.active) return;
  for (auto& [entry, before] : saved_.entries) *const_cast<Entry*>(entry) = std::move(before);
  if (saved_.all_fields) fields_ = std::move(*saved_.all_fields);
  for (auto& [key, before] : saved_.fields) {
    if (before)
      fields_[key] = std::move(*before);
    else
      fields_.erase(key);
  }
  truncated_ = saved_.truncated;
  truncate_name_ = std::move(saved_.truncate_name);
  writes_ = saved_.writes;
  ReleaseSavepoint();
}

void Txn::ReleaseSavepoint() {
  saved_ = Saved{};
}

Status Txn::CheckRowsSinceSavepoint() {
  std::string row;
  int64_t expire_at_ms = 0;
  auto check = [&](const Entry& e) {
    if (!e.table || !e.dirty) return Status::OK();
    Status s = CheckTableWritable(e);
    if (s.ok() && e.row_exists) s = RowValue(e, &row, &expire_at_ms);
    return s;
  };
  const bool all_ok = std::all_of(saved_.entries.begin(), saved_.entries.end(),
                                  [&](const auto& saved) { return check(*saved.first).ok(); });
  if (all_ok) return Status::OK();
  // The error of the first in key order, as Commit would report it: not whichever the
  // savepoint's hash happens to visit first.
  for (const auto& [key, e] : entries_) {
    if (saved_.entries.count(&e) == 0) continue;
    Status s = check(e);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status Txn::CheckTableWritable(const Entry& e) {
  if (!e.table || !(e.table->cache || e.table->mirror)) return Status::OK();
  return Status::InvalidArgument("cannot write to " + e.table->relname +
                                 (e.table->cache
                                      ? ": it is an eloqkv cache, filled by its source query"
                                      : ": it is an eloqkv mirror; write to its source table"));
}

Status Txn::RowValue(const Entry& e, std::string* row, int64_t* expire_at_ms) {
  if (!e.put_error.empty()) return Status::InvalidArgument(e.put_error);
  int64_t row_expiry = 0;
  Status s = router_->codec()->FieldsToRow(*e.table, e.engine_key, e.fields, row, &row_expiry);
  if (!s.ok()) return s;
  // An expire column always decides; the table's ttl applies when the write set no expiry.
  *expire_at_ms = e.expire_at_ms;
  if (row_expiry != 0 && (e.table->expire_attnum != 0 || e.expire_at_ms == 0))
    *expire_at_ms = row_expiry;
  if (e.table->expire_attnum != 0 && row_expiry == 0) *expire_at_ms = 0;
  return Status::OK();
}

Status Txn::Commit(bool* watch_failed) {
  if (watch_failed != nullptr) *watch_failed = false;
  bool dirty = truncated_;
  for (const auto& [key, e] : entries_) dirty = dirty || e.dirty;
  if (!dirty) return Validate(watch_failed);
  WriteBatch batch;
  Status s;
  // Checks first: the engine evaluates each op in batch order, before later writes to its key.
  for (const auto& [key, r] : required_) {
    s = r.absent_since != 0 ? batch.CheckAbsentSince(r.keyspace, r.engine_key, r.absent_since)
                            : batch.Check(r.keyspace, r.engine_key, r.seq);
    if (!s.ok()) return s;
  }
  const size_t watch_checks = required_.size();
  size_t ops = watch_checks;
  if (truncated_) {
    // Reads before the FLUSHDB are not validated: everything they saw is gone either way.
    s = batch.TruncateKeyspace(keyspace_, truncate_name_);
    if (!s.ok()) return s;
    ++ops;
    uint32_t fields_ks = 0;
    s = field_space_ != nullptr ? field_space_->Resolve(engine_, false, &fields_ks)
                                : Status::NotFound();
    if (s.ok()) s = batch.TruncateKeyspace(fields_ks, field_space_->name);
    if (!s.ok() && !s.IsNotFound()) return s;
  }
  // A key read and then written carries the sequence number read on its write: it must not
  // have changed since. One that is only read is checked by itself, when reads are validated.
  auto removes_nothing = [&](const Entry& e) {
    return !e.exists && !(e.table && e.row_exists) && e.loaded &&
           ((truncated_ && !e.table) || e.read_seq == 0);
  };
  auto conditional_write = [&](const Entry& e) {
    return e.dirty && e.loaded && !(truncated_ && !e.table) && !removes_nothing(e);
  };
  if (validate_reads_) {
    for (const auto& [key, e] : entries_) {
      if (!e.loaded || (truncated_ && !e.table) || conditional_write(e)) continue;
      s = batch.Check(KeyspaceOf(e), e.table ? std::string_view(e.engine_key) : key, e.read_seq);
      if (!s.ok()) return s;
      ++ops;
    }
  }
  std::string row;
  for (const auto& [key, e] : entries_) {
    if (!e.dirty) continue;
    const WriteCondition cond =
        conditional_write(e) ? WriteCondition::kIfSeq : WriteCondition::kNone;
    const std::string_view engine_key = e.table ? std::string_view(e.engine_key) : key;
    s = CheckTableWritable(e);
    if (!s.ok()) return s;
    if (e.table && user_ != nullptr) {
      const bool existed = e.loaded && e.read_seq != 0;
      const uint32_t need = e.row_exists ? (existed ? kUpdate : kInsert) : kDelete;
      if ((existed || e.row_exists) && !Allowed(user_, e.table.get(), need))
        return Status::PermissionDenied(kNoPermissionKeys);
    }
    if (e.exists || (e.table && e.row_exists)) {
      int64_t expire_at_ms = e.expire_at_ms;
      if (e.table) {
        s = RowValue(e, &row, &expire_at_ms);
        if (!s.ok()) return s;
      } else {
        row = EncodeValue(e.type, e.payload);
      }
      s = batch.Put(KeyspaceOf(e), engine_key, row, expire_at_ms, cond, e.read_seq);
    } else if (removes_nothing(e)) {
      continue;  // removing what was not there
    } else {
      s = batch.Delete(KeyspaceOf(e), engine_key, cond, e.read_seq);
    }
    if (!s.ok()) return s;
    if (e.writer != origin_) batch.set_origin_from(batch.Count() - 1, e.writer);
    ++ops;
  }
  s = AddFieldWrites(&batch, &ops);
  if (!s.ok()) return s;
  if (ops == 0) return Status::OK();
  batch.set_origin(origin_);
  WriteResult result;
  if (pending_lsn_ != nullptr) {
    s = engine_->WriteDeferred(batch, &result);
    if (s.ok() && result.end_lsn > *pending_lsn_) *pending_lsn_ = result.end_lsn;
  } else {
    s = engine_->Write(batch, &result);
  }
  if (s.code() == Status::Code::kConditionFailed && watch_failed != nullptr)
    *watch_failed = result.failed_op < watch_checks;
  return s;
}

Status Txn::AddFieldWrites(WriteBatch* batch, size_t* ops) {
  uint32_t ks = 0;
  for (const auto& [record_key, f] : fields_) {
    if (!f.dirty) continue;
    if (ks == 0) {
      if (field_space_ == nullptr) return Status::InvalidArgument("large hashes are not available");
      Status s = field_space_->Resolve(engine_, true, &ks);
      if (!s.ok()) return s;
    }
    Status s = f.exists ? batch->Put(ks, record_key, f.value) : batch->Delete(ks, record_key);
    if (!s.ok()) return s;
    ++*ops;
  }
  return Status::OK();
}

// A transaction that wrote nothing commits by re-reading what it depended on; no log record.
Status Txn::Validate(bool* watch_failed) {
  auto unchanged = [&](uint32_t keyspace, std::string_view key, uint64_t seq) {
    ReadInfo info = ReadOptions();
    const Status s = engine_->Probe(keyspace, key, &info);
    DependOn(info);
    return s.ok() ? info.seq == seq : (s.IsNotFound() && seq == 0);
  };
  // A key absent since a sequence number: no entry left by a write from then on, and none
  // forgotten (read after the probe: an entry forgotten before it was looked up shows here).
  auto untouched = [&](uint32_t keyspace, std::string_view key, uint64_t since) {
    ReadInfo info = ReadOptions();
    const Status s = engine_->Probe(keyspace, key, &info);
    DependOn(info);
    return s.IsNotFound() && info.seq < since && engine_->ForgottenSequence(keyspace, key) < since;
  };
  for (const auto& [key, r] : required_) {
    if (r.absent_since != 0 ? !untouched(r.keyspace, r.engine_key, r.absent_since)
                            : !unchanged(r.keyspace, r.engine_key, r.seq)) {
      if (watch_failed != nullptr) *watch_failed = true;
      return Status::ConditionFailed("a watched key changed");
    }
  }
  if (!validate_reads_) return Status::OK();
  for (const auto& [key, e] : entries_) {
    if (e.loaded &&
        !unchanged(KeyspaceOf(e), e.table ? std::string_view(e.engine_key) : key, e.read_seq))
      return Status::ConditionFailed("a key read by the transaction changed");
  }
  return Status::OK();
}

void Txn::Clear() {
  ReleaseSavepoint();
  entries_.clear();
  required_.clear();
  fields_.clear();
  field_reads_ = 0;
  last_generation_ = 0;
  truncated_ = false;
  truncate_name_.clear();
  validate_reads_ = false;
  cache_misses_.clear();
  cache_refreshes_.clear();
  cache_fresh_.clear();
  writes_ = 0;
  held_bytes_ = 0;
}

}  // namespace eloqkv::resp
