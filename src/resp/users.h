// Users: RESP users tied to Postgres roles.
//
// Invariants:
//  * The directory is the engine keyspace kUserCatalogKeyspace: key = user name, value =
//    EncodeRespUser(). Only backends write it (eloqkv.create_resp_user and the DDL that changes
//    privileges), in the same batch as the transaction's other KV writes, and then bump the
//    shared generation that TableRouter also follows.
//  * A record holds the password only as a SCRAM-SHA-256 secret, which the host verifies.
//  * A record's grants are the role's privileges on the served tables of its database, computed
//    by Postgres (role membership included) when the record was last written; a GRANT or REVOKE
//    rewrites every record of that database.
//  * A session of a mapped user sees only what its record allows: a table row needs SELECT to be
//    read at all, INSERT to be created, UPDATE to be changed, DELETE to be removed; plain keys
//    need plain_keys. Anything else is NOPERM and changes nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "engine/eloqkv.h"

namespace eloqkv::resp {

inline constexpr std::string_view kUserCatalogKeyspace = "@resp_users";
inline constexpr uint32_t kRespUserVersion = 1;

enum Privilege : uint32_t {
  kSelect = 1,
  kInsert = 2,
  kUpdate = 4,
  kDelete = 8,
};

struct RespUser {
  std::string name;
  std::string secret;  // SCRAM-SHA-256$...
  std::string role;
  uint32_t database_oid = 0;
  bool plain_keys = false;
  std::map<uint32_t, uint32_t> grants;  // table relid -> Privilege bits
};

std::string EncodeRespUser(const RespUser& u);
bool DecodeRespUser(std::string_view in, RespUser* u);

// Checks a password against a stored secret (the host's SCRAM implementation).
class PasswordVerifier {
 public:
  virtual ~PasswordVerifier() = default;
  virtual bool Verify(const std::string& user, std::string_view password,
                      const std::string& secret) = 0;
};

class UserDirectory {
 public:
  UserDirectory(Engine* engine, const std::atomic<uint64_t>* generation)
      : engine_(engine), generation_(generation) {}
  // The user's current record, or null; reloads first if the directory changed.
  std::shared_ptr<const RespUser> Find(std::string_view name);
  // Generation of the loaded directory (sessions re-fetch their user when it moves).
  uint64_t loaded_generation() const { return loaded_generation_; }
  void Refresh();

 private:
  Engine* engine_;
  const std::atomic<uint64_t>* generation_;
  uint64_t loaded_generation_ = UINT64_MAX;
  int64_t loaded_at_ms_ = 0;
  std::map<std::string, std::shared_ptr<const RespUser>, std::less<>> users_;
};

}  // namespace eloqkv::resp
