// RESP users tied to Postgres roles (resp/users.h): eloqkv.create_resp_user(), drop_resp_user(),
// refresh_resp_users() and resp_users(), and the re-computation of every user's grants when
// privileges or served tables change.
//
// Records are written through the transaction's KV buffer, so they commit or roll back with it;
// the RESP workers reload them when the transaction that changed them has committed.
#include <cstdlib>
#include <cstring>
#include <string>

#include "pg/engine_access.h"
#include "pg/kv_session.h"
#include "pg/pg_guard.h"
#include "pg/resp_tables.h"
#include "resp/users.h"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(eloqkv_create_resp_user);
PG_FUNCTION_INFO_V1(eloqkv_drop_resp_user);
PG_FUNCTION_INFO_V1(eloqkv_refresh_resp_users);
PG_FUNCTION_INFO_V1(eloqkv_resp_users);
}

namespace eloqkv::pg {
namespace {

constexpr size_t kMaxUserName = 63;

// Plain copies of the catalogs, made inside Guarded() (calloc'd; freed by the caller).
struct UserCopy {
  char name[kMaxUserName + 1];
  char secret[512];
  char role[NAMEDATALEN];
  uint32 database;
  bool plain_keys;
  int grants;
};
struct TableCopy {
  uint32 database;
  uint32 relid;
};
struct Catalogs {
  UserCopy* users;
  size_t nusers;
  TableCopy* tables;
  size_t ntables;
};

void Copy(char* out, size_t size, const std::string& s) {
  const size_t n = std::min(size - 1, s.size());
  std::memcpy(out, s.data(), n);
  out[n] = '\0';
}

// The catalog keyspace's id; 0 when it does not exist and `create` is false.
uint32_t Keyspace(eloqkv::Engine* e, std::string_view name, bool create = true) {
  uint32_t id = 0;
  bool found = false;
  PgError err;
  if (!kv::ResolveKeyspace(e, name.data(), create, &id, &found, nullptr, &err))
    RaiseError(err, "could not open an eloqkv catalog");
  return found || create ? id : 0;
}

// Reads both catalogs as this transaction sees them (its own writes included).
void ReadCatalogs(eloqkv::Engine* e, Catalogs* out) {
  const uint32_t users_ks = Keyspace(e, resp::kUserCatalogKeyspace);
  const uint32_t tables_ks = Keyspace(e, resp::kTableCatalogKeyspace);
  std::memset(out, 0, sizeof(*out));
  PgError err;
  const bool ok = Guarded(&err, [&]() -> eloqkv::Status {
    std::vector<resp::RespUser> users;
    std::vector<resp::TableDesc> tables;
    eloqkv::Status s = ScanCatalog(e, users_ks, [&](std::string_view v) {
      resp::RespUser u;
      if (resp::DecodeRespUser(v, &u)) users.push_back(std::move(u));
    });
    if (s.ok()) {
      s = ScanCatalog(e, tables_ks, [&](std::string_view v) {
        resp::TableDesc d;
        if (resp::DecodeTableDesc(v, &d)) tables.push_back(std::move(d));
      });
    }
    if (!s.ok()) return s;
    out->users = static_cast<UserCopy*>(std::calloc(users.size() + 1, sizeof(UserCopy)));
    out->tables = static_cast<TableCopy*>(std::calloc(tables.size() + 1, sizeof(TableCopy)));
    if (out->users == nullptr || out->tables == nullptr) throw std::bad_alloc();
    for (const resp::RespUser& u : users) {
      UserCopy& c = out->users[out->nusers++];
      Copy(c.name, sizeof(c.name), u.name);
      Copy(c.secret, sizeof(c.secret), u.secret);
      Copy(c.role, sizeof(c.role), u.role);
      c.database = u.database_oid;
      c.plain_keys = u.plain_keys;
      c.grants = static_cast<int>(u.grants.size());
    }
    for (const resp::TableDesc& d : tables) out->tables[out->ntables++] = {d.database_oid, d.relid};
    return eloqkv::Status::OK();
  });
  if (!ok) {
    std::free(out->users);
    std::free(out->tables);
    RaiseError(err, "could not read the RESP catalogs");
  }
}

void FreeCatalogs(Catalogs* c) {
  std::free(c->users);
  std::free(c->tables);
  std::memset(c, 0, sizeof(*c));
}

// Writes the user's record with its role's current privileges on this database's served tables.
void WriteUser(eloqkv::Engine* e, const UserCopy& u, const Catalogs& cat) {
  const Oid role = get_role_oid(u.role, true);
  const int n = static_cast<int>(cat.ntables);
  uint32* relids = static_cast<uint32*>(palloc0(sizeof(uint32) * (n + 1)));
  uint32* bits = static_cast<uint32*>(palloc0(sizeof(uint32) * (n + 1)));
  int granted = 0;
  for (int i = 0; i < n && OidIsValid(role); ++i) {
    const TableCopy& t = cat.tables[i];
    if (t.database != MyDatabaseId || get_rel_relkind(t.relid) == '\0') continue;
    uint32 b = 0;
    if (pg_class_aclcheck(t.relid, role, ACL_SELECT) == ACLCHECK_OK) b |= resp::kSelect;
    if (pg_class_aclcheck(t.relid, role, ACL_INSERT) == ACLCHECK_OK) b |= resp::kInsert;
    if (pg_class_aclcheck(t.relid, role, ACL_UPDATE) == ACLCHECK_OK) b |= resp::kUpdate;
    if (pg_class_aclcheck(t.relid, role, ACL_DELETE) == ACLCHECK_OK) b |= resp::kDelete;
    if (b == 0) continue;
    relids[granted] = t.relid;
    bits[granted] = b;
    ++granted;
  }
  const size_t cap = 1024 + 24 * static_cast<size_t>(granted);
  char* buf = static_cast<char*>(palloc(cap));
  size_t len = 0;
  PgError err;
  if (!Guarded(&err, [&]() -> eloqkv::Status {
        resp::RespUser r;
        r.name = u.name;
        r.secret = u.secret;
        r.role = u.role;
        r.database_oid = u.database;
        r.plain_keys = u.plain_keys;
        for (int i = 0; i < granted; ++i) r.grants[relids[i]] = bits[i];
        const std::string encoded = resp::EncodeRespUser(r);
        if (encoded.size() > cap) return eloqkv::Status::TooLarge("user record too large");
        std::memcpy(buf, encoded.data(), encoded.size());
        len = encoded.size();
        return eloqkv::Status::OK();
      })) {
    RaiseError(err);
  }
  const uint32_t ks = Keyspace(e, resp::kUserCatalogKeyspace);
  if (!kv::BufferPut(ks, resp::kUserCatalogKeyspace.data(), 0, u.name, std::strlen(u.name), buf,
                     len, 0, kv::Intent::kUpsert, 0, GetCurrentTransactionNestLevel(), &err)) {
    RaiseError(err);
  }
  MarkRespCatalogChanged();
}

void RequireSuperuser(const char* function) {
  if (!superuser()) {
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                    errmsg("permission denied for function %s", function),
                    errhint("Only superusers manage RESP users.")));
  }
}

const char* ArgText(FunctionCallInfo fcinfo, int i, const char* what) {
  if (PG_ARGISNULL(i)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", what)));
  }
  return text_to_cstring(PG_GETARG_TEXT_PP(i));
}

void CheckUserName(const char* name) {
  const size_t n = std::strlen(name);
  bool printable = n > 0 && n <= kMaxUserName;
  for (size_t i = 0; i < n && printable; ++i) printable = name[i] > ' ' && name[i] <= '~';
  if (!printable) {
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    // At most the first 64 bytes: a huge name must not flood the log.
                    errmsg("invalid RESP user name \"%.64s%s\"", name, n > 64 ? "..." : ""),
                    errhint("A RESP user name has 1 to %zu printable ASCII characters and no "
                            "spaces.",
                            kMaxUserName)));
  }
  if (pg_strcasecmp(name, "default") == 0) {
    ereport(ERROR,
            (errcode(ERRCODE_RESERVED_NAME), errmsg("RESP user name \"default\" is reserved"),
             errhint("The default user is the one eloqkv.resp_password protects.")));
  }
}

}  // namespace

void RefreshRespUsersOfDatabase() {
  eloqkv::Engine* e = AttachedEngine();
  if (e->state() != eloqkv::EngineState::kReady) {
    // Once per transaction: CREATE EXTENSION runs a dozen GRANTs, each of which lands here.
    // (Outside one, lxid is invalid: every call warns.)
    static LocalTransactionId warned_in = InvalidLocalTransactionId;
    const LocalTransactionId now = MyProc->lxid;
    if (now != InvalidLocalTransactionId && now == warned_in) return;
    warned_in = now;
    ereport(WARNING, (errmsg("the grants of RESP users were not refreshed: the eloqkv engine is "
                             "not ready"),
                      errhint("Run SELECT eloqkv.refresh_resp_users() when it is.")));
    return;
  }
  if (Keyspace(e, resp::kUserCatalogKeyspace, false) == 0) return;  // no RESP user ever
  Catalogs cat;
  ReadCatalogs(e, &cat);
  // Copy out of malloc'd memory before anything can raise.
  const size_t nusers = cat.nusers;
  UserCopy* users = static_cast<UserCopy*>(palloc(sizeof(UserCopy) * (nusers + 1)));
  std::memcpy(users, cat.users, sizeof(UserCopy) * nusers);
  TableCopy* tables = static_cast<TableCopy*>(palloc(sizeof(TableCopy) * (cat.ntables + 1)));
  std::memcpy(tables, cat.tables, sizeof(TableCopy) * cat.ntables);
  Catalogs copy{users, nusers, tables, cat.ntables};
  FreeCatalogs(&cat);
  for (size_t i = 0; i < nusers; ++i)
    if (users[i].database == MyDatabaseId) WriteUser(e, users[i], copy);
}

}  // namespace eloqkv::pg

using eloqkv::pg::ArgText;

// eloqkv.create_resp_user(name, password, role, plain_keys): creates or replaces a RESP user.
extern "C" Datum eloqkv_create_resp_user(PG_FUNCTION_ARGS) {
  using namespace eloqkv::pg;
  RequireSuperuser("create_resp_user");
  PreventCommandIfReadOnly("eloqkv.create_resp_user()");
  const char* name = ArgText(fcinfo, 0, "the user name");
  const char* password = ArgText(fcinfo, 1, "the password");
  if (PG_ARGISNULL(2)) {
    ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("the role must not be NULL")));
  }
  const Oid role = PG_GETARG_OID(2);
  const bool plain_keys = !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);
  CheckUserName(name);
  if (password[0] == '\0') {
    ereport(ERROR, (errcode(ERRCODE_INVALID_PASSWORD), errmsg("a RESP user needs a password")));
  }
  const char* role_name = GetUserNameFromId(role, false);
  UserCopy u;
  std::memset(&u, 0, sizeof(u));
  snprintf(u.name, sizeof(u.name), "%s", name);
  // Stored as a SCRAM-SHA-256 secret (salted, iterated), never in clear.
  const char* secret = pg_be_scram_build_secret(password);
  if (std::strlen(secret) >= sizeof(u.secret)) ereport(ERROR, (errmsg("password secret too long")));
  snprintf(u.secret, sizeof(u.secret), "%s", secret);
  snprintf(u.role, sizeof(u.role), "%s", role_name);
  u.database = MyDatabaseId;
  u.plain_keys = plain_keys;
  eloqkv::Engine* e = ReadyEngine();
  Catalogs cat;
  ReadCatalogs(e, &cat);
  TableCopy* tables = static_cast<TableCopy*>(palloc(sizeof(TableCopy) * (cat.ntables + 1)));
  std::memcpy(tables, cat.tables, sizeof(TableCopy) * cat.ntables);
  uint32 other_db = 0;
  for (size_t i = 0; i < cat.nusers; ++i)
    if (std::strcmp(cat.users[i].name, name) == 0 && cat.users[i].database != MyDatabaseId)
      other_db = cat.users[i].database;
  Catalogs copy{nullptr, 0, tables, cat.ntables};
  FreeCatalogs(&cat);
  if (other_db != 0) {
    ereport(ERROR, (errcode(ERRCODE_DUPLICATE_OBJECT),
                    errmsg("RESP user \"%s\" belongs to another database", name),
                    errhint("Drop it there first; RESP user names are unique in the cluster.")));
  }
  WriteUser(e, u, copy);
  PG_RETURN_VOID();
}

// eloqkv.drop_resp_user(name): true if the user existed (in this database).
extern "C" Datum eloqkv_drop_resp_user(PG_FUNCTION_ARGS) {
  using namespace eloqkv::pg;
  RequireSuperuser("drop_resp_user");
  PreventCommandIfReadOnly("eloqkv.drop_resp_user()");
  const char* name = ArgText(fcinfo, 0, "the user name");
  eloqkv::Engine* e = ReadyEngine();
  Catalogs cat;
  ReadCatalogs(e, &cat);
  bool found = false;
  for (size_t i = 0; i < cat.nusers; ++i)
    found = found ||
            (std::strcmp(cat.users[i].name, name) == 0 && cat.users[i].database == MyDatabaseId);
  FreeCatalogs(&cat);
  if (!found) PG_RETURN_BOOL(false);
  PgError err;
  const uint32_t ks = Keyspace(e, eloqkv::resp::kUserCatalogKeyspace);
  if (!kv::BufferDelete(ks, eloqkv::resp::kUserCatalogKeyspace.data(), 0, name, std::strlen(name),
                        0, GetCurrentTransactionNestLevel(), &err)) {
    RaiseError(err);
  }
  MarkRespCatalogChanged();
  PG_RETURN_BOOL(true);
}

// eloqkv.refresh_resp_users(): recomputes this database's users' grants (after changes the
// hooks do not see, e.g. role membership granted in another database).
extern "C" Datum eloqkv_refresh_resp_users(PG_FUNCTION_ARGS) {
  eloqkv::pg::RequireSuperuser("refresh_resp_users");
  PreventCommandIfReadOnly("eloqkv.refresh_resp_users()");
  eloqkv::pg::RefreshRespUsersOfDatabase();
  PG_RETURN_VOID();
}

// eloqkv.resp_users(): this database's RESP users (never their secrets).
extern "C" Datum eloqkv_resp_users(PG_FUNCTION_ARGS) {
  using namespace eloqkv::pg;
  eloqkv::Engine* e = ReadyEngine();
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  Catalogs cat;
  ReadCatalogs(e, &cat);
  UserCopy* users = static_cast<UserCopy*>(palloc(sizeof(UserCopy) * (cat.nusers + 1)));
  std::memcpy(users, cat.users, sizeof(UserCopy) * cat.nusers);
  const size_t n = cat.nusers;
  FreeCatalogs(&cat);
  for (size_t i = 0; i < n; ++i) {
    if (users[i].database != MyDatabaseId) continue;
    Datum v[4];
    bool nulls[4] = {false, false, false, false};
    v[0] = CStringGetTextDatum(users[i].name);
    v[1] = CStringGetTextDatum(users[i].role);
    v[2] = BoolGetDatum(users[i].plain_keys);
    v[3] = Int32GetDatum(users[i].grants);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
  }
  return static_cast<Datum>(0);
}
