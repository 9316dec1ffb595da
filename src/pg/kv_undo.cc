#include "pg/kv_undo.h"

#include <cstring>

namespace eloqkv::pg::undo {
namespace {

// One image: keyspace, op, flags, expire_at_ms, key length, value length, key, value (host
// byte order: WAL is read by servers of the same architecture only).
constexpr size_t kFixedSize = 4 + 4 + 1 + 8 + 4 + 4;
constexpr uint8_t kExisted = 1;  // flags: the key existed before the batch
constexpr uint8_t kDeletes = 2;  // ... and the batch deleted it

template <typename T>
void Append(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
T Take(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

}  // namespace

void AddImage(std::string* images, uint32_t keyspace, uint32_t op, bool deletes,
              std::string_view key, bool existed, int64_t expire_at_ms, std::string_view value) {
  Append<uint32_t>(images, keyspace);
  Append<uint32_t>(images, op);
  Append<uint8_t>(images, (existed ? kExisted : 0) | (deletes ? kDeletes : 0));
  Append<int64_t>(images, existed ? expire_at_ms : 0);
  Append<uint32_t>(images, static_cast<uint32_t>(key.size()));
  Append<uint32_t>(images, existed ? static_cast<uint32_t>(value.size()) : 0);
  images->append(key);
  if (existed) images->append(value);
}

Status BuildCompensation(const Engine& engine, uint64_t first_seq, std::string_view images,
                         WriteBatch* out) {
  out->Clear();
  size_t pos = 0;
  while (pos < images.size()) {
    if (images.size() - pos < kFixedSize)
      return Status::Corruption("truncated before-image of a KV batch");
    const char* p = images.data() + pos;
    const auto keyspace = Take<uint32_t>(p);
    const auto op = Take<uint32_t>(p + 4);
    const auto flags = Take<uint8_t>(p + 8);
    const auto expire_at_ms = Take<int64_t>(p + 9);
    // A value that has expired since is restored as what it would be now: absent.
    const bool existed =
        (flags & kExisted) != 0 && !(expire_at_ms != 0 && expire_at_ms <= NowMillis());
    const auto key_len = Take<uint32_t>(p + 17);
    const auto value_len = Take<uint32_t>(p + 21);
    pos += kFixedSize;
    if (images.size() - pos < size_t{key_len} + value_len)
      return Status::Corruption("truncated before-image of a KV batch");
    const std::string_view key = images.substr(pos, key_len);
    const std::string_view value = images.substr(pos + key_len, value_len);
    pos += size_t{key_len} + value_len;
    if (!engine.KeyspaceExists(keyspace)) continue;
    // Only while the key still holds what the aborted batch wrote (its value, or for a delete
    // nothing); a later write stays. A delete of a key that was absent left nothing to undo.
    if ((flags & kDeletes) != 0 && !existed) continue;
    const uint64_t written_seq = (flags & kDeletes) != 0 ? 0 : first_seq + op;
    const Status s = existed ? out->Put(keyspace, key, value, expire_at_ms, WriteCondition::kIfSeq,
                                        written_seq, OnConditionFailure::kSkip)
                             : out->Delete(keyspace, key, WriteCondition::kIfSeq, written_seq,
                                           OnConditionFailure::kSkip);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status Compensate(Engine* engine, uint64_t first_seq, std::string_view images, size_t* restored) {
  *restored = 0;
  WriteBatch batch;
  Status s = BuildCompensation(*engine, first_seq, images, &batch);
  if (!s.ok() || batch.Count() == 0) return s;
  WriteResult result;
  s = engine->Write(batch, &result);
  if (!s.ok()) return s;
  for (const bool applied : result.applied) *restored += applied ? 1 : 0;
  return Status::OK();
}

}  // namespace eloqkv::pg::undo
