#include "cache/cache_tags.h"

#include "pg/table_options.h"

namespace eloqkv::cache {

std::string TagKeyspaceName(const char* keyspace) {
  return std::string(pg::kTagKeyspacePrefix) + keyspace;
}

std::string TagRecordPrefix(const char* tag, size_t len) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(len >> shift));
  out.append(tag, len);
  return out;
}

eloqkv::Status TagKeyspace(eloqkv::Engine* e, const char* keyspace, bool create, uint32_t* id,
                           bool* exists) {
  const std::string name = TagKeyspaceName(keyspace);
  eloqkv::Status s = e->FindKeyspace(name, id);
  if (s.IsNotFound() && create) {
    s = e->CreateKeyspace(name, id);
    if (s.code() == eloqkv::Status::Code::kKeyExists) s = e->FindKeyspace(name, id);
  }
  *exists = s.ok();
  return s.IsNotFound() ? eloqkv::Status::OK() : s;
}

}  // namespace eloqkv::cache
