#include <algorithm>
#include <string>

#include "engine/coding.h"
#include "engine/eloqkv.h"
#include "engine/engine_impl.h"

namespace eloqkv {
namespace {

// A batch is one reservation in one segment file, so it has to stay well below 4 GiB.
constexpr size_t kMaxBatchBytes = size_t{1} << 30;

Status CheckKey(uint32_t keyspace, std::string_view key) {
  if (keyspace == 0) return Status::InvalidArgument("keyspace id 0 is reserved");
  if (key.size() > kMaxKeySize)
    return Status::TooLarge("key is " + std::to_string(key.size()) + " bytes; the limit is " +
                            std::to_string(kMaxKeySize));
  return Status::OK();
}

}  // namespace

WriteBatch::WriteBatch() : rep_(std::make_unique<Rep>()) {}
WriteBatch::~WriteBatch() = default;
WriteBatch::WriteBatch(WriteBatch&&) noexcept = default;
WriteBatch& WriteBatch::operator=(WriteBatch&&) noexcept = default;

Status WriteBatch::Put(uint32_t keyspace, std::string_view key, std::string_view value,
                       int64_t expire_at_ms, WriteCondition cond, uint64_t expected_seq,
                       OnConditionFailure on_fail) {
  Status s = CheckKey(keyspace, key);
  if (!s.ok()) return s;
  if (value.size() > kMaxValueSize)
    return Status::TooLarge("value is " + std::to_string(value.size()) +
                            " bytes; the limit is " + std::to_string(kMaxValueSize));
  if (expire_at_ms < 0) return Status::InvalidArgument("expiry time must not be negative");
  const size_t size = kRecordHeaderSize + key.size() + value.size();
  if (rep_->data.size() + size > kMaxBatchBytes)
    return Status::TooLarge("write batch exceeds " + std::to_string(kMaxBatchBytes >> 20) + " MiB");
  Rep::Op op;
  op.offset = rep_->data.size();
  op.size = size;
  op.type = RecordType::kPut;
  op.keyspace = keyspace;
  op.key_len = static_cast<uint16_t>(key.size());
  op.value_len = static_cast<uint32_t>(value.size());
  op.expire_at_ms = expire_at_ms;
  op.cond = cond;
  op.on_fail = on_fail;
  op.expected_seq = expected_seq;
  RecordHeader h;
  h.type = RecordType::kPut;
  h.key_len = op.key_len;
  h.value_len = op.value_len;
  h.keyspace = keyspace;
  h.expire_at_ms = expire_at_ms;
  AppendRecord(h, key, value, &rep_->data);
  rep_->ops.push_back(op);
  rep_->max_key = std::max(rep_->max_key, key.size());
  return Status::OK();
}

Status WriteBatch::Delete(uint32_t keyspace, std::string_view key, WriteCondition cond,
                          uint64_t expected_seq, OnConditionFailure on_fail) {
  Status s = CheckKey(keyspace, key);
  if (!s.ok()) return s;
  Rep::Op op;
  op.offset = rep_->data.size();
  op.size = kRecordHeaderSize + key.size();
  op.type = RecordType::kDelete;
  op.keyspace = keyspace;
  op.key_len = static_cast<uint16_t>(key.size());
  op.cond = cond;
  op.on_fail = on_fail;
  op.expected_seq = expected_seq;
  RecordHeader h;
  h.type = RecordType::kDelete;
  h.key_len = op.key_len;
  h.keyspace = keyspace;
  AppendRecord(h, key, {}, &rep_->data);
  rep_->ops.push_back(op);
  return Status::OK();
}

namespace {

Status AddCheck(WriteBatch::Rep* rep, uint32_t keyspace, std::string_view key, WriteCondition cond,
                uint64_t expected_seq) {
  Status s = CheckKey(keyspace, key);
  if (!s.ok()) return s;
  WriteBatch::Rep::Op op;
  op.offset = rep->data.size();
  op.size = kRecordHeaderSize + key.size();
  op.type = RecordType::kVoid;
  op.keyspace = keyspace;
  op.key_len = static_cast<uint16_t>(key.size());
  op.cond = cond;
  op.on_fail = OnConditionFailure::kFailBatch;
  op.expected_seq = expected_seq;
  RecordHeader h;
  h.type = RecordType::kVoid;
  h.key_len = op.key_len;
  h.keyspace = keyspace;
  AppendRecord(h, key, {}, &rep->data);
  rep->ops.push_back(op);
  return Status::OK();
}

}  // namespace

Status WriteBatch::Check(uint32_t keyspace, std::string_view key, uint64_t expected_seq) {
  return AddCheck(rep_.get(), keyspace, key, WriteCondition::kIfSeq, expected_seq);
}

Status WriteBatch::CheckAbsentSince(uint32_t keyspace, std::string_view key, uint64_t since_seq) {
  return AddCheck(rep_.get(), keyspace, key, WriteCondition::kIfUntouchedSince, since_seq);
}

Status WriteBatch::TruncateKeyspace(uint32_t keyspace, std::string_view name) {
  if (keyspace == 0) return Status::InvalidArgument("keyspace id 0 is reserved");
  if (name.empty() || name.size() > kMaxKeyspaceNameSize)
    return Status::InvalidArgument("bad keyspace name");
  KeyspaceRecord r;
  r.id = keyspace;
  r.min_seq = UINT64_MAX;  // becomes the record's own sequence number
  WriteBatchInternal::AddKeyspaceRecord(*this, name, r);
  rep_->ops.back().cond = WriteCondition::kIfPresent;
  return Status::OK();
}

void WriteBatch::Clear() {
  rep_->data.clear();
  rep_->ops.clear();
  rep_->max_key = 0;
  rep_->origin = 0;
}

void WriteBatch::set_origin(uint64_t origin) { rep_->origin = origin; }

void WriteBatch::set_origin_from(size_t first_op, uint64_t origin) {
  for (size_t i = first_op; i < rep_->ops.size(); ++i) {
    rep_->ops[i].own_origin = true;
    rep_->ops[i].origin = origin;
  }
}

void WriteBatch::AppendOps(const WriteBatch& from, size_t first_op, size_t end_op) {
  const Rep& src = *from.rep_;
  end_op = std::min(end_op, src.ops.size());
  if (first_op >= end_op) return;
  // A batch's records lie back to back in op order.
  const size_t begin = src.ops[first_op].offset;
  const size_t end = src.ops[end_op - 1].offset + src.ops[end_op - 1].size;
  const size_t base = rep_->data.size();
  rep_->data.append(src.data, begin, end - begin);
  for (size_t i = first_op; i < end_op; ++i) {
    Rep::Op op = src.ops[i];
    op.offset = op.offset - begin + base;
    rep_->max_key = std::max<size_t>(rep_->max_key, op.key_len);
    rep_->ops.push_back(op);
  }
}

void WriteBatch::TruncateOps(size_t count) {
  if (count >= rep_->ops.size()) return;
  rep_->data.resize(rep_->ops[count].offset);
  rep_->ops.resize(count);
  rep_->max_key = 0;
  for (const Rep::Op& op : rep_->ops) rep_->max_key = std::max<size_t>(rep_->max_key, op.key_len);
}

size_t WriteBatch::Count() const { return rep_->ops.size(); }
size_t WriteBatch::ByteSize() const { return rep_->data.size(); }

void WriteBatchInternal::AddKeyspaceRecord(WriteBatch& b, std::string_view name,
                                           const KeyspaceRecord& r) {
  WriteBatch::Rep* rep = b.rep_.get();
  const std::string value = EncodeKeyspaceRecord(r);
  WriteBatch::Rep::Op op;
  op.offset = rep->data.size();
  op.size = kRecordHeaderSize + name.size() + value.size();
  op.type = RecordType::kKeyspace;
  op.keyspace = r.id;
  op.key_len = static_cast<uint16_t>(name.size());
  op.value_len = static_cast<uint32_t>(value.size());
  op.keyspace_record = r;
  RecordHeader h;
  h.type = RecordType::kKeyspace;
  h.key_len = op.key_len;
  h.value_len = op.value_len;
  h.keyspace = r.id;
  AppendRecord(h, name, value, &rep->data);
  rep->ops.push_back(op);
}

void WriteBatchInternal::AddRelocation(WriteBatch& b, const RecordView& rec, uint32_t segment,
                                       uint32_t offset) {
  WriteBatch::Rep* rep = b.rep_.get();
  WriteBatch::Rep::Op op;
  op.offset = rep->data.size();
  op.size = rec.header.total_size();
  op.type = RecordType::kPut;
  op.keyspace = rec.header.keyspace;
  op.key_len = rec.header.key_len;
  op.value_len = rec.header.value_len;
  op.expire_at_ms = rec.header.expire_at_ms;
  op.expected_seq = rec.header.seq;
  op.on_fail = OnConditionFailure::kSkip;
  op.relocation = true;
  op.old_segment = segment;
  op.old_offset = offset;
  RecordHeader h = rec.header;
  h.flags = kRecordRelocated;
  AppendRecord(h, rec.key, rec.value, &rep->data);
  rep->ops.push_back(op);
  rep->max_key = std::max<size_t>(rep->max_key, rec.header.key_len);
}

void WriteBatchInternal::AddCarry(WriteBatch& b, const RecordView& rec) {
  WriteBatch::Rep* rep = b.rep_.get();
  WriteBatch::Rep::Op op;
  op.offset = rep->data.size();
  op.size = rec.header.total_size();
  op.type = rec.header.type;
  op.keyspace = rec.header.keyspace;
  op.key_len = rec.header.key_len;
  op.value_len = rec.header.value_len;
  op.expected_seq = rec.header.seq;
  op.relocation = true;
  RecordHeader h = rec.header;
  h.flags = kRecordRelocated;
  AppendRecord(h, rec.key, rec.value, &rep->data);
  rep->ops.push_back(op);
}

void WriteBatchInternal::AddRetire(WriteBatch& b, uint32_t segment, int64_t retired_at_ms) {
  WriteBatch::Rep* rep = b.rep_.get();
  std::string value;
  PutFixed32(&value, segment);
  PutFixed64(&value, static_cast<uint64_t>(retired_at_ms));
  WriteBatch::Rep::Op op;
  op.offset = rep->data.size();
  op.size = kRecordHeaderSize + value.size();
  op.type = RecordType::kRetire;
  op.value_len = static_cast<uint32_t>(value.size());
  RecordHeader h;
  h.type = RecordType::kRetire;
  h.value_len = op.value_len;
  AppendRecord(h, {}, value, &rep->data);
  rep->ops.push_back(op);
}

}  // namespace eloqkv
