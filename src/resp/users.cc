#include "resp/users.h"

#include "engine/coding.h"

namespace eloqkv::resp {
namespace {

constexpr int64_t kReloadEveryMs = 5000;

}  // namespace

std::string EncodeRespUser(const RespUser& u) {
  std::string out;
  PutVarint64(&out, kRespUserVersion);
  PutLengthPrefixed(&out, u.name);
  PutLengthPrefixed(&out, u.secret);
  PutLengthPrefixed(&out, u.role);
  PutVarint64(&out, u.database_oid);
  PutVarint64(&out, u.plain_keys ? 1 : 0);
  PutVarint64(&out, u.grants.size());
  for (const auto& [relid, bits] : u.grants) {
    PutVarint64(&out, relid);
    PutVarint64(&out, bits);
  }
  return out;
}

bool DecodeRespUser(std::string_view in, RespUser* u) {
  *u = RespUser();
  uint64_t version = 0, db = 0, plain = 0, n = 0;
  if (!GetVarint64(&in, &version) || version != kRespUserVersion || !GetLengthPrefixed(&in, &u->name) ||
      !GetLengthPrefixed(&in, &u->secret) || !GetLengthPrefixed(&in, &u->role) || !GetVarint64(&in, &db) ||
      !GetVarint64(&in, &plain) || !GetVarint64(&in, &n) || n > in.size()) {
    return false;
  }
  u->database_oid = static_cast<uint32_t>(db);
  u->plain_keys = plain != 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t relid = 0, bits = 0;
    if (!GetVarint64(&in, &relid) || !GetVarint64(&in, &bits)) return false;
    u->grants[static_cast<uint32_t>(relid)] = static_cast<uint32_t>(bits);
  }
  return in.empty() && !u->name.empty() && !u->secret.empty();
}

void UserDirectory::Refresh() {
  if (generation_ == nullptr) return;
  const uint64_t g = generation_->load(std::memory_order_acquire);
  if (g == loaded_generation_ && CoarseNowMillis() - loaded_at_ms_ < kReloadEveryMs) return;
  if (engine_->state() != EngineState::kReady) return;
  uint32_t ks = 0;
  Status s = engine_->FindKeyspace(kUserCatalogKeyspace, &ks);
  std::map<std::string, std::shared_ptr<const RespUser>, std::less<>> users;
  if (s.ok()) {
    auto it = engine_->NewIterator(ks, ScanOptions());
    std::string value;
    for (; it->Valid(); it->Next()) {
      if (!it->value(&value).ok()) continue;
      auto u = std::make_shared<RespUser>();
      if (DecodeRespUser(value, u.get())) users.emplace(u->name, std::move(u));
    }
    s = it->status();
  } else if (s.IsNotFound()) {
    s = Status::OK();
  }
  loaded_at_ms_ = CoarseNowMillis();
  if (!s.ok()) return;
  users_ = std::move(users);
  loaded_generation_ = g;
}

std::shared_ptr<const RespUser> UserDirectory::Find(std::string_view name) {
  Refresh();
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : it->second;
}

}  // namespace eloqkv::resp
