// Keys: existence, deletion, expiry, iteration and renaming, for every value type.
#include <algorithm>
#include <cctype>
#include <iterator>
#include <limits>

#include "resp/command_util.h"
#include "resp/hash_value.h"
#include "resp/text.h"

namespace eloqkv::resp {

namespace {


void Del(Call& c) {
  int64_t removed = 0;
  for (size_t i = 1; i < c.args.size(); ++i) {
    Txn::Entry* e;
    if (!ReadEntry(c, c.args[i], ValueType::kNone, &e)) return;
    if (!e->exists) continue;
    c.txn.Remove(e);
    ++removed;
  }
  c.reply.Integer(removed);
}

void Exists(Call& c) {
  int64_t n = 0;
  for (size_t i = 1; i < c.args.size(); ++i) {
    Txn::Entry* e;
    if (!ReadEntry(c, c.args[i], ValueType::kNone, &e)) return;
    if (e->exists) ++n;
  }
  c.reply.Integer(n);
}

void Type(Call& c) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kNone, &e)) return;
  c.reply.SimpleString(e->exists ? ValueTypeName(e->type) : "none");
}

// EXPIRE key t [NX|XX|GT|LT] and its millisecond/absolute variants.
void ExpireGeneric(Call& c, int64_t unit_ms, bool absolute, std::string_view name) {
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t i = 3; i < c.args.size(); ++i) {
    const std::string_view a = c.args[i];
    if (EqualsIgnoreCase(a, "nx")) {
      nx = true;
    } else if (EqualsIgnoreCase(a, "xx")) {
      xx = true;
    } else if (EqualsIgnoreCase(a, "gt")) {
      gt = true;
    } else if (EqualsIgnoreCase(a, "lt")) {
      lt = true;
    } else {
      c.reply.Error("ERR Unsupported option " + std::string(a));
      return;
    }
  }
  if (nx && (xx || gt || lt)) {
    c.reply.Error("ERR NX and XX, GT or LT options at the same time are not compatible");
    return;
  }
  if (gt && lt) {
    c.reply.Error("ERR GT and LT options at the same time are not compatible");
    return;
  }
  int64_t t;  // after the options, as Redis: a bad option is reported before a bad time
  if (!ParseIntArg(c, c.args[2], &t)) return;
  const int64_t now = NowMillis();
  const int64_t max = std::numeric_limits<int64_t>::max();
  // As Redis: only an overflow is refused; a time in the past deletes the key.
  const int64_t min = std::numeric_limits<int64_t>::min();
  if (t > max / unit_ms || t < min / unit_ms || (!absolute && t * unit_ms > max - now)) {
    c.reply.Error("ERR invalid expire time in '" + std::string(name) + "' command");
    return;
  }
  const int64_t when = absolute ? t * unit_ms : now + t * unit_ms;
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kNone, &e)) return;
  if (!e->exists) {
    c.reply.Integer(0);
    return;
  }
  const bool persistent = e->expire_at_ms == 0;
  if ((nx && !persistent) || (xx && persistent) ||
      (gt && (persistent || when <= e->expire_at_ms)) ||
      (lt && !persistent && when >= e->expire_at_ms)) {
    c.reply.Integer(0);
    return;
  }
  if (when <= now) {
    c.txn.Remove(e);
  } else {
    c.txn.Put(e, e->type, e->payload, when);
  }
  c.reply.Integer(1);
}
void Expire(Call& c) {
  ExpireGeneric(c, 1000, false, "expire");
}
void PExpire(Call& c) {
  ExpireGeneric(c, 1, false, "pexpire");
}
void ExpireAt(Call& c) {
  ExpireGeneric(c, 1000, true, "expireat");
}
void PExpireAt(Call& c) {
  ExpireGeneric(c, 1, true, "pexpireat");
}

void TtlGeneric(Call& c, bool millis, bool absolute) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kNone, &e)) return;
  if (!e->exists) {
    c.reply.Integer(-2);
    return;
  }
  if (e->expire_at_ms == 0) {
    c.reply.Integer(-1);
    return;
  }
  if (absolute) {  // EXPIRETIME rounds to the nearest second, as TTL does
    c.reply.Integer(millis ? e->expire_at_ms : (e->expire_at_ms + 500) / 1000);
    return;
  }
  const int64_t left = std::max<int64_t>(0, e->expire_at_ms - NowMillis());
  c.reply.Integer(millis ? left : (left + 500) / 1000);
}
void Ttl(Call& c) {
  TtlGeneric(c, false, false);
}
void PTtl(Call& c) {
  TtlGeneric(c, true, false);
}
void ExpireTime(Call& c) {
  TtlGeneric(c, false, true);
}
void PExpireTime(Call& c) {
  TtlGeneric(c, true, true);
}

void Persist(Call& c) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kNone, &e)) return;
  if (!e->exists || e->expire_at_ms == 0) {
    c.reply.Integer(0);
    return;
  }
  c.txn.Put(e, e->type, e->payload, 0);
  c.reply.Integer(1);
}

// The literal part of a glob pattern before its first special character: a scan bound.
std::string LiteralPrefix(std::string_view pattern) {
  std::string out;
  for (char ch : pattern) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == '\\') break;
    out.push_back(ch);
  }
  return out;
}

bool TypeMatches(Engine* engine, uint32_t ks, std::string_view key, ValueType want) {
  std::string stored;
  ValueType type;
  return ReadValue(engine, ks, key, &type, &stored, nullptr).ok() && type == want;
}

bool ParseTypeName(std::string_view s, ValueType* out) {
  if (EqualsIgnoreCase(s, "string")) {
    *out = ValueType::kString;
  } else if (EqualsIgnoreCase(s, "hash")) {
    *out = ValueType::kHash;
  } else {
    *out = ValueType::kNone;  // a type we never store (list, set, ...): nothing matches
  }
  return true;
}

// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]. Cursors are per connection: each names
// the key to resume after, so a scan never repeats or skips a key that exists throughout.
void Scan(Call& c) {
  if (!PlainKeysAllowed(c)) return;
  uint64_t cursor = 0;
  if (!ParseScanCursor(c.args[1], &cursor)) {
    c.reply.Error("ERR invalid cursor");
    return;
  }
  std::string pattern;
  bool has_pattern = false, has_type = false;
  int64_t count = 10;
  ValueType type = ValueType::kNone;
  for (size_t i = 2; i < c.args.size(); ++i) {
    const std::string_view a = c.args[i];
    if (i + 1 >= c.args.size()) {
      c.reply.Error(kSyntaxError);
      return;
    }
    if (EqualsIgnoreCase(a, "match")) {
      pattern.assign(c.args[++i]);
      has_pattern = pattern != "*";
    } else if (EqualsIgnoreCase(a, "count")) {
      if (!ParseIntArg(c, c.args[++i], &count)) return;
      if (count < 1) {
        c.reply.Error(kSyntaxError);
        return;
      }
    } else if (EqualsIgnoreCase(a, "type")) {
      has_type = ParseTypeName(c.args[++i], &type);
    } else {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  ScanOptions opts;
  opts.keys_only = true;
  if (cursor != 0) {
    Session& session = c.session;
    auto it = session.cursors.find(cursor);
    if (it != session.cursors.end()) {
      // Used: kept a while for a retry, out of the way of other scans' cursors.
      opts.lower = it->second;
      session.used_cursors.insert(session.cursors.extract(it));
      if (session.used_cursors.size() > Session::kMaxUsedCursors) {
        // The oldest other than this one (a scan paused long has an old cursor too).
        auto oldest = session.used_cursors.begin();
        if (oldest->first == cursor) ++oldest;
        session.used_cursors.erase(oldest);
      }
    } else if (auto used = session.used_cursors.find(cursor); used != session.used_cursors.end()) {
      opts.lower = used->second;  // asked again: the same page
    } else {
      c.reply.Error("ERR invalid cursor");
      return;
    }
    opts.lower_inclusive = false;
  }
  if (has_pattern) opts.prefix = LiteralPrefix(pattern);
  uint32_t ks = 0;
  if (!c.dispatcher.Keyspace(c.reply, &ks)) return;
  auto iter = c.dispatcher.engine()->NewIterator(ks, opts);
  std::vector<std::string> keys;
  std::string last;
  int64_t examined = 0;
  for (; iter->Valid() && examined < count; iter->Next(), ++examined) {
    const std::string_view key = iter->key();
    last.assign(key);
    if (has_pattern && !GlobMatch(pattern, key)) continue;
    if (has_type && !TypeMatches(c.dispatcher.engine(), ks, key, type)) continue;
    keys.emplace_back(key);
  }
  if (!iter->status().ok()) {
    ReplyEngineError(c.reply, iter->status());
    return;
  }
  uint64_t next = 0;
  if (iter->Valid()) {
    if (c.session.cursors.size() >= Session::kMaxCursorsPerClient)
      c.session.cursors.erase(c.session.cursors.begin());
    next = c.session.next_cursor++;
    c.session.cursors[next] = last;
  }
  c.reply.ArrayHeader(2);
  c.reply.Bulk(FormatInt64(static_cast<int64_t>(next)));
  c.reply.ArrayHeader(keys.size());
  for (const auto& k : keys) c.reply.Bulk(k);
}

void Keys(Call& c) {
  if (!PlainKeysAllowed(c)) return;
  const std::string_view pattern = c.args[1];
  ScanOptions opts;
  opts.keys_only = true;
  opts.prefix = LiteralPrefix(pattern);
  uint32_t ks = 0;
  if (!c.dispatcher.Keyspace(c.reply, &ks)) return;
  std::vector<std::string> keys;
  auto iter = c.dispatcher.engine()->NewIterator(ks, opts);
  for (; iter->Valid(); iter->Next())
    if (GlobMatch(pattern, iter->key())) keys.emplace_back(iter->key());
  if (!iter->status().ok()) {
    ReplyEngineError(c.reply, iter->status());
    return;
  }
  c.reply.ArrayHeader(keys.size());
  for (const auto& k : keys) c.reply.Bulk(k);
}

// Writes src's value (key src_key) to dst (key dst_key). A large hash's field records are keyed
// by its key (hash_value.h): dst gets a hash of its own holding copies of them.
bool CopyValue(Call& c, std::string_view src_key, Txn::Entry* src, std::string_view dst_key,
               Txn::Entry* dst) {
  if (src->type != ValueType::kHash) {
    c.txn.Put(dst, src->type, src->payload, src->expire_at_ms);
    return true;
  }
  HashValue hash(&c.txn, src_key, src);
  FieldList fields;
  Status s = hash.Load();
  if (s.ok()) s = hash.ListAll(&fields);
  if (!s.ok()) {
    ReplyEngineError(c.reply, s);
    return false;
  }
  HashValue::Replace(&c.txn, dst_key, dst, fields, src->expire_at_ms);
  return true;
}

void RenameGeneric(Call& c, bool nx) {
  Txn::Entry* src;
  if (!ReadEntry(c, c.args[1], ValueType::kNone, &src)) return;
  if (!src->exists) {
    c.reply.Error("ERR no such key");
    return;
  }
  if (c.args[1] == c.args[2]) {
    if (nx)
      c.reply.Integer(0);
    else
      c.reply.SimpleString("OK");
    return;
  }
  Txn::Entry* dst;
  if (!ReadEntry(c, c.args[2], ValueType::kNone, &dst)) return;
  if (nx && dst->exists) {
    c.reply.Integer(0);
    return;
  }
  if (!CopyValue(c, c.args[1], src, c.args[2], dst)) return;
  c.txn.Remove(src);
  if (nx)
    c.reply.Integer(1);
  else
    c.reply.SimpleString("OK");
}
void Rename(Call& c) {
  RenameGeneric(c, false);
}
void RenameNx(Call& c) {
  RenameGeneric(c, true);
}

// COPY source destination [DB destination-db] [REPLACE]. Only database 0 exists.
void Copy(Call& c) {
  bool replace = false;
  for (size_t i = 3; i < c.args.size(); ++i) {
    if (EqualsIgnoreCase(c.args[i], "replace")) {
      replace = true;
    } else if (EqualsIgnoreCase(c.args[i], "db") && i + 1 < c.args.size()) {
      int64_t db;
      if (!ParseIntArg(c, c.args[++i], &db)) return;
      if (db != 0) {
        c.reply.Error("ERR DB index is out of range");
        return;
      }
    } else {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  if (c.args[1] == c.args[2]) {
    c.reply.Error("ERR source and destination objects are the same");
    return;
  }
  Txn::Entry* src;
  if (!ReadEntry(c, c.args[1], ValueType::kNone, &src)) return;
  // Redis looks the source up as a read: it counts in keyspace_hits / keyspace_misses.
  ListenerStats& stats = *c.dispatcher.stats();
  (src->exists ? stats.keyspace_hits : stats.keyspace_misses).fetch_add(1, std::memory_order_relaxed);
  if (!src->exists) {
    c.reply.Integer(0);
    return;
  }
  Txn::Entry* dst;
  if (!ReadEntry(c, c.args[2], ValueType::kNone, &dst)) return;
  if (dst->exists && !replace) {
    c.reply.Integer(0);
    return;
  }
  if (!CopyValue(c, c.args[1], src, c.args[2], dst)) return;
  c.reply.Integer(1);
}

// Redis's names for how it would hold the value (we store every value the same way).
const char* EncodingName(const Txn::Entry& e) {
  if (e.type == ValueType::kHash) {
    if (IsHashHeader(e.payload)) return "hashtable";
    HashFields fields;
    if (!DecodeHash(e.payload, &fields) || fields.size() > 128) return "hashtable";
    for (const auto& [f, v] : fields)
      if (f.size() > 64 || v.size() > 64) return "hashtable";
    return "listpack";
  }
  int64_t n;
  if (e.payload.size() <= 20 && ParseInt64(e.payload, &n)) return "int";
  return e.payload.size() <= 44 ? "embstr" : "raw";
}

// OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ|HELP. Access times are not tracked: IDLETIME is 0.
void Object(Call& c) {
  const std::string_view sub = c.args[1];
  if (EqualsIgnoreCase(sub, "help") && c.args.size() == 2) {
    ReplyHelp(c,
              {
                  "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                  "ENCODING <key>",
                  "    Return the kind of internal representation used in order to store the value",
                  "    associated with a <key>.",
                  "FREQ <key>",
                  "    Return the access frequency index of the <key>. The returned integer is",
                  "    proportional to the logarithm of the recent access frequency of the key.",
                  "IDLETIME <key>",
                  "    Return the idle time of the <key>, that is the approximated number of",
                  "    seconds elapsed since the last access to the key.",
                  "REFCOUNT <key>",
                  "    Return the number of references of the value associated with the specified",
                  "    <key>.",
                  "HELP",
                  "    Print this help.",
              });
    return;
  }
  const bool known = EqualsIgnoreCase(sub, "encoding") || EqualsIgnoreCase(sub, "refcount") ||
                     EqualsIgnoreCase(sub, "idletime") || EqualsIgnoreCase(sub, "freq");
  if (!known) {
    c.reply.Error("ERR unknown subcommand '" + std::string(sub) + "'. Try OBJECT HELP.");
    return;
  }
  if (c.args.size() != 3) {
    std::string lower(sub);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    ReplyWrongArity(c.reply, "object|" + lower);
    return;
  }
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[2], ValueType::kNone, &e)) return;
  if (!e->exists) {
    c.reply.Null();
    return;
  }
  if (EqualsIgnoreCase(sub, "encoding")) {
    c.reply.Bulk(EncodingName(*e));
  } else if (EqualsIgnoreCase(sub, "refcount")) {
    int64_t n;  // Redis shares the integers 0..9999 between keys
    const bool shared = e->type == ValueType::kString && ParseInt64(e->payload, &n) && n >= 0 &&
                        n < 10000;
    c.reply.Integer(shared ? std::numeric_limits<int32_t>::max() : 1);
  } else if (EqualsIgnoreCase(sub, "idletime")) {
    c.reply.Integer(0);
  } else {
    c.reply.Error(
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
        "that when switching between policies at runtime LRU and LFU data will take some time to "
        "adjust.");
  }
}

// MEMORY USAGE: what the key's records take in the engine (Engine::KeyFootprint): its own, and
// a large hash's field records, `samples` of them (0: all) averaged over its count, as Redis
// samples nested values.
bool KeyUsage(Call& c, std::string_view key, int64_t samples, int64_t* bytes) {
  Txn::Entry* e;
  if (!ReadEntry(c, key, ValueType::kNone, &e)) return false;
  if (!e->exists) {
    *bytes = -1;
    return true;
  }
  uint32_t keyspace = 0;
  std::string_view engine_key = key;
  int64_t expire_at_ms = 0;
  std::string stored;
  // The stored record as it is (a table row's encoding differs from the value it shows).
  if (c.txn.Observed(key, &keyspace, &engine_key, &expire_at_ms)) {
    const Status s = c.dispatcher.engine()->Get(keyspace, engine_key, &stored);
    if (!s.ok() && !s.IsNotFound()) {
      ReplyEngineError(c.reply, s);
      return false;
    }
  }
  if (stored.empty()) stored = EncodeValue(e->type, e->payload);
  *bytes = static_cast<int64_t>(Engine::KeyFootprint(engine_key.size(), stored.size()));
  HashHeader header;
  if (e->type != ValueType::kHash || !IsHashHeader(e->payload) ||
      !DecodeHashHeader(e->payload, &header) || header.count == 0)
    return true;
  const std::string prefix = FieldPrefix(key, header.generation);
  const size_t limit = samples == 0 || static_cast<uint64_t>(samples) > header.count
                           ? static_cast<size_t>(header.count)
                           : static_cast<size_t>(samples);
  FieldList fields;
  bool more = false;
  const Status s = c.txn.ScanFields(prefix, nullptr, limit, &fields, &more);
  if (!s.ok()) {
    ReplyEngineError(c.reply, s);
    return false;
  }
  if (fields.empty()) return true;
  size_t sampled = 0;
  for (const auto& [field, value] : fields)
    sampled += Engine::KeyFootprint(prefix.size() + field.size(), value.size());
  *bytes += static_cast<int64_t>(static_cast<double>(sampled) / fields.size() * header.count);
  return true;
}

// MEMORY USAGE|DOCTOR|MALLOC-STATS|PURGE|HELP. The engine's memory is Postgres shared memory
// of fixed size (the index and the value cache): there is no allocator to report on or purge.
void Memory(Call& c) {
  const std::string sub = ToLower(c.args[1]);
  if (sub == "help") {
    ReplyHelp(c, {
                     "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                     "DOCTOR",
                     "    Return memory problems reports.",
                     "MALLOC-STATS",
                     "    Return internal statistics report from the memory allocator.",
                     "PURGE",
                     "    Attempt to purge dirty pages for reclamation by the allocator.",
                     "USAGE <key> [SAMPLES <count>]",
                     "    Return memory in bytes used by <key> and its value. Nested values are",
                     "    sampled up to <count> times (default: 5, 0 means sample all).",
                     "HELP",
                     "    Print this help.",
                 });
    return;
  }
  if (sub == "malloc-stats") {
    c.reply.Bulk("Stats not supported for the current allocator");
    return;
  }
  if (sub == "purge") {
    c.reply.SimpleString("OK");
    return;
  }
  if (sub == "doctor") {
    const EngineInfo info = c.dispatcher.engine()->Info();
    std::string report;
    if (info.index_memory_limit > 0 && info.index_memory_used * 10 > info.index_memory_limit * 9) {
      report = "Sam, the index (every key's entry) is " +
               std::to_string(info.index_memory_used * 100 / info.index_memory_limit) +
               "% full: once it is full, writes of new keys are refused. Raise "
               "eloqkv.index_memory (a restart) or delete keys.\n";
    } else {
      report =
          "Hi Sam, I can't find any memory issue in your instance. I can only account for "
          "what occurs on this base.\n";
    }
    c.reply.Verbatim("txt", report);
    return;
  }
  // USAGE key [SAMPLES count]
  int64_t samples = 5;
  for (size_t i = 3; i < c.args.size(); i += 2) {  // option, value
    if (!EqualsIgnoreCase(c.args[i], "samples") || i + 1 >= c.args.size()) {
      c.reply.Error(kSyntaxError);
      return;
    }
    if (!ParseInt64(c.args[i + 1], &samples)) {
      c.reply.Error("ERR value is not an integer or out of range");
      return;
    }
    if (samples < 0) {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  int64_t bytes = 0;
  if (!KeyUsage(c, c.args[2], samples, &bytes)) return;
  if (bytes < 0)
    c.reply.Null();
  else
    c.reply.Integer(bytes);
}

constexpr Dispatcher::Subcommand kMemorySubcommands[] = {
    {"doctor", 2}, {"malloc-stats", 2}, {"purge", 2}, {"usage", -3}, {"help", 2}};

void FlushDb(Call& c) {
  if (!PlainKeysAllowed(c)) return;
  if (c.args.size() > 2 || (c.args.size() == 2 && !EqualsIgnoreCase(c.args[1], "async") &&
                            !EqualsIgnoreCase(c.args[1], "sync"))) {
    c.reply.Error(kSyntaxError);
    return;
  }
  c.txn.Truncate(c.dispatcher.config().keyspace_name);
  c.reply.SimpleString("OK");
}

void DbSize(Call& c) {
  if (!PlainKeysAllowed(c)) return;
  uint32_t ks = 0;
  if (!c.dispatcher.Keyspace(c.reply, &ks)) return;
  KeyspaceStats st;
  const Status s = c.dispatcher.engine()->GetKeyspaceStats(ks, &st);
  if (!s.ok()) {
    ReplyEngineError(c.reply, s);
    return;
  }
  c.reply.Integer(static_cast<int64_t>(st.keys));
}

void Touch(Call& c) {
  Exists(c);
}

}  // namespace

void RegisterKeyCommands(std::vector<Dispatcher::Command>* out) {
  using D = Dispatcher;
  const std::vector<D::Command> cmds = {
      {"del", -2, Del, D::kWrite | D::kGather, {1, -1, 1}},
      {"unlink", -2, Del, D::kWrite | D::kGather, {1, -1, 1}},
      {"exists", -2, Exists, 0, {1, -1, 1}},
      {"touch", -2, Touch, 0, {1, -1, 1}},
      {"type", 2, Type, 0, {1, 1, 1}},
      {"expire", -3, Expire, D::kWrite | D::kGather, {1, 1, 1}},
      {"pexpire", -3, PExpire, D::kWrite | D::kGather, {1, 1, 1}},
      {"expireat", -3, ExpireAt, D::kWrite | D::kGather, {1, 1, 1}},
      {"pexpireat", -3, PExpireAt, D::kWrite | D::kGather, {1, 1, 1}},
      {"ttl", 2, Ttl, 0, {1, 1, 1}},
      {"pttl", 2, PTtl, 0, {1, 1, 1}},
      {"expiretime", 2, ExpireTime, 0, {1, 1, 1}},
      {"pexpiretime", 2, PExpireTime, 0, {1, 1, 1}},
      {"persist", 2, Persist, D::kWrite | D::kGather, {1, 1, 1}},
      {"scan", -2, Scan, 0},
      {"keys", 2, Keys, 0},
      {"rename", 3, Rename, D::kWrite, {1, 2, 1}},
      {"renamenx", 3, RenameNx, D::kWrite, {1, 2, 1}},
      {"copy", -3, Copy, D::kWrite, {1, 2, 1}},
      {"object", -2, Object, 0, {2, 2, 1}},
      {"memory", -2, Memory, 0, {2, 2, 1}, kMemorySubcommands},
      {"flushdb", -1, FlushDb, D::kWrite},
      {"flushall", -1, FlushDb, D::kWrite},
      {"dbsize", 1, DbSize, 0},
  };
  out->insert(out->end(), cmds.begin(), cmds.end());
}

}  // namespace eloqkv::resp
