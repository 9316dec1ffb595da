#include "resp/store.h"

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

std::string EncodeValue(ValueType type, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 1);
  out.push_back(static_cast<char>(type));
  out.append(payload);
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

Status Txn::Read(std::string_view key, Entry** out) {
  auto it = entries_.find(key);
  if (it != entries_.end() && (it->second.loaded || it->second.dirty || truncated_)) {
    *out = &it->second;
    return Status::OK();
  }
  if (it == entries_.end()) it = entries_.emplace(std::string(key), Entry{}).first;
  Entry& e = it->second;
  *out = &e;
  if (truncated_) return Status::OK();  // FLUSHDB earlier in this transaction
  std::string stored;
  ReadInfo info;
  Status s = engine_->Get(keyspace_, key, &stored, &info);
  e.loaded = true;
  if (s.IsNotFound()) return Status::OK();
  if (!s.ok()) return s;
  std::string_view payload;
  if (!DecodeValue(stored, &e.type, &payload))
    return Status::Corruption("the value stored under this key was not written by RESP");
  e.exists = true;
  e.payload.assign(payload);
  e.expire_at_ms = info.expire_at_ms;
  e.read_seq = info.seq;
  return Status::OK();
}

Txn::Entry* Txn::Blind(std::string_view key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) it = entries_.emplace(std::string(key), Entry{}).first;
  return &it->second;
}

void Txn::Put(Entry* e, ValueType type, std::string payload, int64_t expire_at_ms) {
  e->exists = true;
  e->type = type;
  e->payload = std::move(payload);
  e->expire_at_ms = expire_at_ms;
  e->dirty = true;
}

void Txn::Remove(Entry* e) {
  e->exists = false;
  e->type = ValueType::kNone;
  e->payload.clear();
  e->expire_at_ms = 0;
  e->dirty = true;
}

void Txn::Require(std::string_view key, uint64_t seq) {
  required_[std::string(key)] = seq;
}

void Txn::Truncate(std::string_view keyspace_name) {
  truncated_ = true;
  truncate_name_.assign(keyspace_name);
  for (auto& [key, e] : entries_) {
    e = Entry{};
    e.loaded = true;
  }
}

Status Txn::Commit(bool* watch_failed) {
  if (watch_failed != nullptr) *watch_failed = false;
  bool dirty = truncated_;
  for (const auto& [key, e] : entries_) dirty = dirty || e.dirty;
  if (!dirty) return Validate(watch_failed);
  WriteBatch batch;
  Status s;
  // Checks first: the engine evaluates each op in batch order, before later writes to its key.
  for (const auto& [key, seq] : required_) {
    s = batch.Check(keyspace_, key, seq);
    if (!s.ok()) return s;
  }
  const size_t watch_checks = required_.size();
  size_t ops = watch_checks;
  if (truncated_) {
    // Reads before the FLUSHDB are not validated: everything they saw is gone either way.
    s = batch.TruncateKeyspace(keyspace_, truncate_name_);
    if (!s.ok()) return s;
    ++ops;
  } else if (validate_reads_) {
    for (const auto& [key, e] : entries_) {
      if (!e.loaded) continue;
      s = batch.Check(keyspace_, key, e.read_seq);
      if (!s.ok()) return s;
      ++ops;
    }
  }
  for (const auto& [key, e] : entries_) {
    if (!e.dirty) continue;
    // Without read validation, a key read before being written must not have changed since.
    const bool cas = e.loaded && !truncated_ && !validate_reads_;
    const WriteCondition cond = cas ? WriteCondition::kIfSeq : WriteCondition::kNone;
    if (e.exists) {
      s = batch.Put(keyspace_, key, EncodeValue(e.type, e.payload), e.expire_at_ms, cond,
                    e.read_seq);
    } else if (e.loaded && (truncated_ || e.read_seq == 0)) {
      continue;  // removing what was not there
    } else {
      s = batch.Delete(keyspace_, key, cond, e.read_seq);
    }
    if (!s.ok()) return s;
    ++ops;
  }
  if (ops == 0) return Status::OK();
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

// A transaction that wrote nothing commits by re-reading what it depended on; no log record.
Status Txn::Validate(bool* watch_failed) {
  auto unchanged = [&](std::string_view key, uint64_t seq) {
    ReadInfo info;
    const Status s = engine_->Probe(keyspace_, key, &info);
    return s.ok() ? info.seq == seq : (s.IsNotFound() && seq == 0);
  };
  for (const auto& [key, seq] : required_) {
    if (!unchanged(key, seq)) {
      if (watch_failed != nullptr) *watch_failed = true;
      return Status::ConditionFailed("a watched key changed");
    }
  }
  if (!validate_reads_) return Status::OK();
  for (const auto& [key, e] : entries_) {
    if (e.loaded && !unchanged(key, e.read_seq))
      return Status::ConditionFailed("a key read by the transaction changed");
  }
  return Status::OK();
}

void Txn::Clear() {
  entries_.clear();
  required_.clear();
  truncated_ = false;
  truncate_name_.clear();
  validate_reads_ = false;
}

}  // namespace eloqkv::resp
