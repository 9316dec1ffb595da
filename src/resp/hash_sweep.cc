#include "resp/hash_sweep.h"

#include <memory>

#include "resp/hash_value.h"
#include "resp/store.h"

namespace eloqkv::resp {

namespace {

constexpr size_t kDeletesPerBatch = 256;

// The smallest key greater than every key starting with prefix (empty: none is).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<uint8_t>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<uint8_t>(prefix.back()) + 1);
  return prefix;
}

}  // namespace

HashFieldSweeper::HashFieldSweeper(Engine* engine, std::string keyspace_name)
    : engine_(engine),
      keyspace_name_(std::move(keyspace_name)),
      fields_name_(HashFieldsKeyspaceName(keyspace_name_)) {}

Status HashFieldSweeper::Flush(WriteBatch* batch, size_t* deleted) {
  if (batch->Count() == 0) return Status::OK();
  Status s = engine_->Write(*batch);
  if (s.ok()) *deleted += batch->Count();
  batch->Clear();
  return s;
}

Status HashFieldSweeper::Step(size_t budget, size_t* deleted, bool* pass_done) {
  *deleted = 0;
  *pass_done = false;
  uint32_t fields_ks = 0, keys_ks = 0;
  Status s = engine_->FindKeyspace(fields_name_, &fields_ks);
  if (s.IsNotFound()) {
    *pass_done = true;
    return Status::OK();
  }
  if (!s.ok()) return s;
  // Without the keyspace of their keys, no header names any record.
  const bool have_keys = engine_->FindKeyspace(keyspace_name_, &keys_ks).ok();

  ScanOptions opts;
  opts.keys_only = true;
  opts.lower = resume_;
  opts.lower_inclusive = resume_inclusive_;
  std::unique_ptr<Iterator> iter = engine_->NewIterator(fields_ks, opts);
  WriteBatch batch;
  std::string stored;
  for (size_t examined = 0; examined < budget && iter->Valid(); ++examined) {
    const std::string record(iter->key());
    resume_ = record;
    resume_inclusive_ = false;
    std::string_view key, field;
    uint64_t generation = 0;
    bool live = false;
    const bool parsed = ParseFieldRecordKey(record, &key, &generation, &field);
    if (parsed && have_keys) {
      ValueType type;
      std::string_view payload;
      HashHeader header;
      s = engine_->Get(keys_ks, key, &stored, nullptr);
      if (!s.ok() && !s.IsNotFound()) return s;
      live = s.ok() && DecodeValue(stored, &type, &payload) && type == ValueType::kHash &&
             DecodeHashHeader(payload, &header) && header.generation == generation;
    }
    if (live) {
      // Step over the rest of this hash's records.
      std::string end = PrefixEnd(FieldPrefix(key, generation));
      if (end.empty()) {
        iter->Next();
        continue;
      }
      resume_ = end;
      resume_inclusive_ = true;
      opts.lower = std::move(end);
      opts.lower_inclusive = true;
      iter = engine_->NewIterator(fields_ks, opts);
      continue;
    }
    s = batch.Delete(fields_ks, record);
    if (!s.ok()) return s;
    if (batch.Count() >= kDeletesPerBatch && !(s = Flush(&batch, deleted)).ok()) return s;
    iter->Next();
  }
  if (!iter->status().ok()) return iter->status();
  if (!iter->Valid()) {
    *pass_done = true;
    resume_.clear();
    resume_inclusive_ = true;
  }
  return Flush(&batch, deleted);
}

}  // namespace eloqkv::resp
