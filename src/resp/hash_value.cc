#include "resp/hash_value.h"

#include "engine/coding.h"

namespace eloqkv::resp {

namespace {

size_t InlineBytes(const HashFields& fields) {
  size_t n = 0;
  for (const auto& [f, v] : fields) n += f.size() + v.size() + 2;
  return n;
}

bool FitsInline(const HashFields& fields) {
  return fields.size() <= kMaxInlineFields && InlineBytes(fields) <= kMaxInlineBytes;
}

void PutFixed64BigEndian(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

}  // namespace

std::string HashFieldsKeyspaceName(std::string_view keyspace_name) {
  return "@hash_fields:" + std::string(keyspace_name);
}

std::string EncodeHashHeader(const HashHeader& h) {
  std::string out(1, '\0');
  PutVarint64(&out, h.count);
  PutFixed64BigEndian(&out, h.generation);
  return out;
}

bool DecodeHashHeader(std::string_view payload, HashHeader* out) {
  if (!IsHashHeader(payload)) return false;
  payload.remove_prefix(1);
  if (!GetVarint64(&payload, &out->count) || payload.size() != 8) return false;
  out->generation = 0;
  for (char ch : payload) out->generation = (out->generation << 8) | static_cast<uint8_t>(ch);
  return out->count != 0;
}

std::string FieldPrefix(std::string_view key, uint64_t generation) {
  std::string out;
  out.reserve(key.size() + 13);
  PutVarint64(&out, key.size());
  out.append(key);
  // Big-endian, so one key's generations sort in the order they were made.
  PutFixed64BigEndian(&out, generation);
  return out;
}

bool ParseFieldRecordKey(std::string_view record_key, std::string_view* key, uint64_t* generation,
                         std::string_view* field) {
  uint64_t len = 0;
  // Compared without adding to len: a corrupt length near 2^64 must not wrap around.
  if (!GetVarint64(&record_key, &len) || len > record_key.size() || record_key.size() - len < 8)
    return false;
  *key = record_key.substr(0, len);
  record_key.remove_prefix(len);
  *generation = 0;
  for (int i = 0; i < 8; ++i)
    *generation = (*generation << 8) | static_cast<uint8_t>(record_key[i]);
  *field = record_key.substr(8);
  return true;
}

Status HashValue::Load() {
  inline_.clear();
  large_ = false;
  header_ = HashHeader{};
  if (!entry_->exists) return Status::OK();
  if (!entry_->table && IsHashHeader(entry_->payload)) {
    large_ = true;
    if (DecodeHashHeader(entry_->payload, &header_)) return Status::OK();
  } else if (DecodeHash(entry_->payload, &inline_)) {
    return Status::OK();
  }
  return Status::Corruption("the hash stored under this key is corrupt");
}

std::string HashValue::RecordKey(std::string_view field) const {
  std::string k = FieldPrefix(key_, header_.generation);
  k.append(field);
  return k;
}

Status HashValue::Get(std::string_view field, std::string* value, bool* found) {
  if (large_) return txn_->ReadField(RecordKey(field), value, found);
  auto it = inline_.find(field);
  *found = it != inline_.end();
  if (*found) value->assign(it->second);
  return Status::OK();
}

Status HashValue::Set(std::string_view field, std::string_view value, bool* added) {
  changed_ = true;
  if (!large_) {
    auto [it, inserted] = inline_.insert_or_assign(std::string(field), std::string(value));
    *added = inserted;
    return Status::OK();
  }
  const std::string record = RecordKey(field);
  std::string old;
  bool found = false;
  Status s = txn_->ReadField(record, &old, &found);
  if (!s.ok()) return s;
  txn_->WriteField(record, value);
  *added = !found;
  if (*added) ++header_.count;
  return Status::OK();
}

Status HashValue::Delete(std::string_view field, bool* removed) {
  if (!large_) {
    auto it = inline_.find(field);
    *removed = it != inline_.end();
    if (*removed) {
      inline_.erase(it);
      changed_ = true;
    }
    return Status::OK();
  }
  const std::string record = RecordKey(field);
  std::string old;
  Status s = txn_->ReadField(record, &old, removed);
  if (!s.ok() || !*removed) return s;
  txn_->DeleteField(record);
  --header_.count;
  changed_ = true;
  return Status::OK();
}

Status HashValue::List(const std::string* after, size_t limit, FieldList* out, bool* more) {
  if (large_)
    return txn_->ScanFields(FieldPrefix(key_, header_.generation), after, limit, out, more);
  out->clear();
  auto it = after == nullptr ? inline_.begin() : inline_.upper_bound(*after);
  for (; it != inline_.end() && out->size() < limit; ++it) out->emplace_back(it->first, it->second);
  *more = it != inline_.end();
  return Status::OK();
}

void HashValue::WriteHeader() {
  txn_->Put(entry_, ValueType::kHash, EncodeHashHeader(header_),
            entry_->exists ? entry_->expire_at_ms : 0);
}

void HashValue::Store() {
  if (!changed_) return;
  changed_ = false;
  if (size() == 0) {
    txn_->Remove(entry_);  // Redis deletes a hash whose last field goes
    return;
  }
  if (large_) {
    WriteHeader();
    return;
  }
  if (entry_->table || FitsInline(inline_)) {
    txn_->Put(entry_, ValueType::kHash, EncodeHash(inline_),
              entry_->exists ? entry_->expire_at_ms : 0);
    return;
  }
  // Outgrown: every field becomes a record of a new generation.
  large_ = true;
  header_.generation = txn_->NewGeneration();
  header_.count = inline_.size();
  for (const auto& [f, v] : inline_) txn_->WriteField(RecordKey(f), v);
  inline_.clear();
  WriteHeader();
}

void HashValue::Replace(Txn* txn, std::string_view key, Txn::Entry* e, const FieldList& fields,
                        int64_t expire_at_ms) {
  HashValue h(txn, key, e);
  for (const auto& [f, v] : fields) h.inline_.insert_or_assign(f, v);
  txn->Remove(e);  // a new life: the fields it had before do not carry over
  h.changed_ = true;
  h.Store();
  if (e->exists) e->expire_at_ms = expire_at_ms;
}

}  // namespace eloqkv::resp
