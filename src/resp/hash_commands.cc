// Hash commands, over HashValue (hash_value.h): small hashes inline, large ones per field.
#include <cmath>
#include <limits>

#include "resp/command_util.h"
#include "resp/hash_value.h"
#include "resp/text.h"

namespace eloqkv::resp {

namespace {

// Opens key args[1] as a hash. Replies and returns false on error.
bool OpenHash(Call& c, HashValue* h, Txn::Entry** e = nullptr) {
  Txn::Entry* entry;
  if (!ReadEntry(c, c.args[1], ValueType::kHash, &entry)) return false;
  *h = HashValue(&c.txn, c.args[1], entry);
  if (e != nullptr) *e = entry;
  const Status s = h->Load();
  if (s.ok()) return true;
  ReplyEngineError(c.reply, s);
  return false;
}

bool Replied(Call& c, const Status& s) {
  if (s.ok()) return false;
  ReplyEngineError(c.reply, s);
  return true;
}

bool GetField(Call& c, HashValue& h, std::string_view field, std::string* value, bool* found) {
  return !Replied(c, h.Get(field, value, found));
}

void HSetGeneric(Call& c, bool count_new) {
  if ((c.args.size() - 2) % 2 != 0) {
    ReplyWrongArity(c.reply, count_new ? "hset" : "hmset");
    return;
  }
  HashValue h;
  if (!OpenHash(c, &h)) return;
  int64_t added = 0;
  for (size_t i = 2; i + 1 < c.args.size(); i += 2) {
    bool inserted = false;
    if (Replied(c, h.Set(c.args[i], c.args[i + 1], &inserted))) return;
    if (inserted) ++added;
  }
  h.Store();
  if (count_new)
    c.reply.Integer(added);
  else
    c.reply.SimpleString("OK");
}
void HSet(Call& c) {
  HSetGeneric(c, true);
}
void HMSet(Call& c) {
  HSetGeneric(c, false);
}

void HSetNx(Call& c) {
  HashValue h;
  if (!OpenHash(c, &h)) return;
  std::string old;
  bool found = false;
  if (!GetField(c, h, c.args[2], &old, &found)) return;
  if (found) {
    c.reply.Integer(0);
    return;
  }
  bool added = false;
  if (Replied(c, h.Set(c.args[2], c.args[3], &added))) return;
  h.Store();
  c.reply.Integer(1);
}

void HGet(Call& c) {
  HashValue h;
  if (!OpenHash(c, &h)) return;
  std::string value;
  bool found = false;
  if (!GetField(c, h, c.args[2], &value, &found)) return;
  ReplyBulkOrNull(c.reply, found ? &value : nullptr);
}

void HMGet(Call& c) {
  HashValue h;
  if (!OpenHash(c, &h)) return;
  std::vector<std::string> values(c.args.size() - 2);
  std::vector<bool> found(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    bool f = false;
    if (!GetField(c, h, c.args[i + 2], &values[i], &f)) return;
    found[i] = f;
  }
  c.reply.ArrayHeader(values.size());
  for (size_t i = 0; i < values.size(); ++i) ReplyBulkOrNull(c.reply, found[i] ? &values[i] : nullptr);
}

void HGetAll(Call& c) {
  HashValue h;
  FieldList fields;
  if (!OpenHash(c, &h) || Replied(c, h.ListAll(&fields))) return;
  c.reply.MapHeader(fields.size());
  for (const auto& [f, v] : fields) {
    c.reply.Bulk(f);
    c.reply.Bulk(v);
  }
}

void HKeysOrVals(Call& c, bool keys) {
  HashValue h;
  FieldList fields;
  if (!OpenHash(c, &h) || Replied(c, h.ListAll(&fields))) return;
  c.reply.ArrayHeader(fields.size());
  for (const auto& [f, v] : fields) c.reply.Bulk(keys ? f : v);
}
void HKeys(Call& c) {
  HKeysOrVals(c, true);
}
void HVals(Call& c) {
  HKeysOrVals(c, false);
}

void HDel(Call& c) {
  HashValue h;
  if (!OpenHash(c, &h)) return;
  int64_t removed = 0;
  for (size_t i = 2; i < c.args.size(); ++i) {
    bool gone = false;
    if (Replied(c, h.Delete(c.args[i], &gone))) return;
    if (gone) ++removed;
  }
  h.Store();
  c.reply.Integer(removed);
}

void HExists(Call& c) {
  HashValue h;
  if (!OpenHash(c, &h)) return;
  std::string value;
  bool found = false;
  if (!GetField(c, h, c.args[2], &value, &found)) return;
  c.reply.Integer(found ? 1 : 0);
}

void HLen(Call& c) {
  HashValue h;
  if (!OpenHash(c, &h)) return;
  c.reply.Integer(static_cast<int64_t>(h.size()));
}

void HStrLen(Call& c) {
  HashValue h;
  if (!OpenHash(c, &h)) return;
  std::string value;
  bool found = false;
  if (!GetField(c, h, c.args[2], &value, &found)) return;
  c.reply.Integer(found ? static_cast<int64_t>(value.size()) : 0);
}

void HIncrBy(Call& c) {
  int64_t delta;
  if (!ParseIntArg(c, c.args[3], &delta)) return;
  HashValue h;
  if (!OpenHash(c, &h)) return;
  std::string value;
  bool found = false;
  if (!GetField(c, h, c.args[2], &value, &found)) return;
  int64_t cur = 0;
  if (found && !ParseInt64(value, &cur)) {
    c.reply.Error("ERR hash value is not an integer");
    return;
  }
  if ((delta > 0 && cur > std::numeric_limits<int64_t>::max() - delta) ||
      (delta < 0 && cur < std::numeric_limits<int64_t>::min() - delta)) {
    c.reply.Error("ERR increment or decrement would overflow");
    return;
  }
  cur += delta;
  bool added = false;
  if (Replied(c, h.Set(c.args[2], FormatInt64(cur), &added))) return;
  h.Store();
  c.reply.Integer(cur);
}

void HIncrByFloat(Call& c) {
  long double delta;
  if (!ParseLongDouble(c.args[3], &delta)) {
    c.reply.Error("ERR value is not a valid float");
    return;
  }
  if (std::isnan(delta) || std::isinf(delta)) {  // Redis refuses these before the key
    c.reply.Error("ERR value is NaN or Infinity");
    return;
  }
  HashValue h;
  if (!OpenHash(c, &h)) return;
  std::string value;
  bool found = false;
  if (!GetField(c, h, c.args[2], &value, &found)) return;
  long double cur = 0;
  if (found && !ParseLongDouble(value, &cur)) {
    c.reply.Error("ERR hash value is not a float");
    return;
  }
  cur += delta;
  if (std::isnan(cur) || std::isinf(cur)) {
    c.reply.Error("ERR increment would produce NaN or Infinity");
    return;
  }
  std::string text = FormatLongDouble(cur);
  bool added = false;
  if (Replied(c, h.Set(c.args[2], text, &added))) return;
  h.Store();
  c.reply.Bulk(text);
}

// HSCAN key cursor [MATCH pattern] [COUNT n]. A small hash comes whole in one call (as Redis's
// listpacks do, whatever the cursor); a large one COUNT fields at a time, the cursor naming the
// field to resume after on this connection, so fields present throughout the scan come exactly
// once. As in Redis, the cursor is checked first, then the key, then the options: a missing key
// is an empty scan and a string WRONGTYPE, whatever options follow.
void HScan(Call& c) {
  uint64_t cursor;
  if (!ParseScanCursor(c.args[2], &cursor)) {
    c.reply.Error("ERR invalid cursor");
    return;
  }
  HashValue h;
  if (!OpenHash(c, &h)) return;
  if (!h.exists()) {
    c.reply.ArrayHeader(2);
    c.reply.Bulk("0");
    c.reply.ArrayHeader(0);
    return;
  }
  std::string pattern;
  bool has_pattern = false;
  int64_t count = 10;
  for (size_t i = 3; i < c.args.size(); i += 2) {
    if (i + 1 >= c.args.size()) {
      c.reply.Error(kSyntaxError);
      return;
    }
    if (EqualsIgnoreCase(c.args[i], "match")) {
      pattern.assign(c.args[i + 1]);
      has_pattern = pattern != "*";
    } else if (EqualsIgnoreCase(c.args[i], "count")) {
      if (!ParseIntArg(c, c.args[i + 1], &count)) return;
      if (count < 1) {
        c.reply.Error(kSyntaxError);
        return;
      }
    } else {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  std::string after;
  if (cursor != 0) {
    auto it = c.session.hash_cursors.find(cursor);
    if (it != c.session.hash_cursors.end() && it->second.first == c.args[1]) {
      after = it->second.second;
    } else if (!h.large()) {
      cursor = 0;  // a cursor this connection did not get: a small hash comes whole anyway
    } else {
      c.reply.Error("ERR invalid cursor");
      return;
    }
  }
  FieldList fields;
  bool more = false;
  const size_t limit = h.large() ? static_cast<size_t>(count) : SIZE_MAX;
  if (Replied(c, h.List(cursor != 0 ? &after : nullptr, limit, &fields, &more))) return;
  uint64_t next = 0;
  if (more && !fields.empty()) {
    auto& cursors = c.session.hash_cursors;
    if (cursors.size() >= Session::kMaxCursorsPerClient) cursors.erase(cursors.begin());
    next = c.session.next_cursor++;
    cursors[next] = {std::string(c.args[1]), fields.back().first};
  }
  size_t hits = 0;
  for (const auto& [f, v] : fields) hits += !has_pattern || GlobMatch(pattern, f) ? 1 : 0;
  c.reply.ArrayHeader(2);
  c.reply.Bulk(FormatInt64(static_cast<int64_t>(next)));
  c.reply.ArrayHeader(hits * 2);
  for (const auto& [f, v] : fields) {
    if (has_pattern && !GlobMatch(pattern, f)) continue;
    c.reply.Bulk(f);
    c.reply.Bulk(v);
  }
}

}  // namespace

void RegisterHashCommands(std::vector<Dispatcher::Command>* out) {
  using D = Dispatcher;
  const std::vector<D::Command> cmds = {
      {"hset", -4, HSet, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"hmset", -4, HMSet, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"hsetnx", 4, HSetNx, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"hget", 3, HGet, D::kReadsKey, {1, 1, 1}},
      {"hmget", -3, HMGet, D::kReadsKey, {1, 1, 1}},
      {"hgetall", 2, HGetAll, D::kReadsKey, {1, 1, 1}},
      {"hkeys", 2, HKeys, D::kReadsKey, {1, 1, 1}},
      {"hvals", 2, HVals, D::kReadsKey, {1, 1, 1}},
      {"hdel", -3, HDel, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"hexists", 3, HExists, D::kReadsKey, {1, 1, 1}},
      {"hlen", 2, HLen, D::kReadsKey, {1, 1, 1}},
      {"hstrlen", 3, HStrLen, D::kReadsKey, {1, 1, 1}},
      {"hincrby", 4, HIncrBy, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"hincrbyfloat", 4, HIncrByFloat, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"hscan", -3, HScan, D::kReadsKey, {1, 1, 1}},
  };
  out->insert(out->end(), cmds.begin(), cmds.end());
}

}  // namespace eloqkv::resp
