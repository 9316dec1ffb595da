// Hashes in the default keyspace: a whole hash is one stored value (see store.h).
#include <cmath>
#include <limits>

#include "resp/command_util.h"
#include "resp/text.h"

namespace eloqkv::resp {

namespace {

// Reads key as a hash into *fields (empty when absent). Replies and returns false on error.
bool ReadHash(Call& c, Txn::Entry** e, HashFields* fields) {
  if (!ReadEntry(c, c.args[1], ValueType::kHash, e)) return false;
  fields->clear();
  if ((*e)->exists && !DecodeHash((*e)->payload, fields)) {
    c.reply.Error("ERR the hash stored under this key is corrupt");
    return false;
  }
  return true;
}

void StoreHash(Call& c, Txn::Entry* e, const HashFields& fields) {
  if (fields.empty()) {
    c.txn.Remove(e);  // Redis deletes a hash whose last field goes
  } else {
    c.txn.Put(e, ValueType::kHash, EncodeHash(fields), e->exists ? e->expire_at_ms : 0);
  }
}

void HSetGeneric(Call& c, bool count_new) {
  if ((c.args.size() - 2) % 2 != 0) {
    ReplyWrongArity(c.reply, count_new ? "hset" : "hmset");
    return;
  }
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  int64_t added = 0;
  for (size_t i = 2; i + 1 < c.args.size(); i += 2) {
    auto [it, inserted] =
        fields.insert_or_assign(std::string(c.args[i]), std::string(c.args[i + 1]));
    if (inserted) ++added;
  }
  StoreHash(c, e, fields);
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
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  if (fields.count(c.args[2]) != 0) {
    c.reply.Integer(0);
    return;
  }
  fields.emplace(std::string(c.args[2]), std::string(c.args[3]));
  StoreHash(c, e, fields);
  c.reply.Integer(1);
}

void HGet(Call& c) {
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  auto it = fields.find(c.args[2]);
  ReplyBulkOrNull(c.reply, it == fields.end() ? nullptr : &it->second);
}

void HMGet(Call& c) {
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  c.reply.ArrayHeader(c.args.size() - 2);
  for (size_t i = 2; i < c.args.size(); ++i) {
    auto it = fields.find(c.args[i]);
    ReplyBulkOrNull(c.reply, it == fields.end() ? nullptr : &it->second);
  }
}

void HGetAll(Call& c) {
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  c.reply.MapHeader(fields.size());
  for (const auto& [f, v] : fields) {
    c.reply.Bulk(f);
    c.reply.Bulk(v);
  }
}

void HKeysOrVals(Call& c, bool keys) {
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
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
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  int64_t removed = 0;
  for (size_t i = 2; i < c.args.size(); ++i) {
    auto it = fields.find(c.args[i]);
    if (it == fields.end()) continue;
    fields.erase(it);
    ++removed;
  }
  if (removed > 0) StoreHash(c, e, fields);
  c.reply.Integer(removed);
}

void HExists(Call& c) {
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  c.reply.Integer(fields.count(c.args[2]) != 0 ? 1 : 0);
}

void HLen(Call& c) {
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  c.reply.Integer(static_cast<int64_t>(fields.size()));
}

void HStrLen(Call& c) {
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  auto it = fields.find(c.args[2]);
  c.reply.Integer(it == fields.end() ? 0 : static_cast<int64_t>(it->second.size()));
}

void HIncrBy(Call& c) {
  int64_t delta;
  if (!ParseIntArg(c, c.args[3], &delta)) return;
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  int64_t cur = 0;
  auto it = fields.find(c.args[2]);
  if (it != fields.end() && !ParseInt64(it->second, &cur)) {
    c.reply.Error("ERR hash value is not an integer");
    return;
  }
  if ((delta > 0 && cur > std::numeric_limits<int64_t>::max() - delta) ||
      (delta < 0 && cur < std::numeric_limits<int64_t>::min() - delta)) {
    c.reply.Error("ERR increment or decrement would overflow");
    return;
  }
  cur += delta;
  fields[std::string(c.args[2])] = FormatInt64(cur);
  StoreHash(c, e, fields);
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
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  long double cur = 0;
  auto it = fields.find(c.args[2]);
  if (it != fields.end() && !ParseLongDouble(it->second, &cur)) {
    c.reply.Error("ERR hash value is not a float");
    return;
  }
  cur += delta;
  if (std::isnan(cur) || std::isinf(cur)) {
    c.reply.Error("ERR increment would produce NaN or Infinity");
    return;
  }
  std::string text = FormatLongDouble(cur);
  fields[std::string(c.args[2])] = text;
  StoreHash(c, e, fields);
  c.reply.Bulk(text);
}

// HSCAN key cursor [MATCH pattern] [COUNT n]: a hash is one value, so one call returns it all.
void HScan(Call& c) {
  int64_t cursor;
  if (!ParseInt64(c.args[2], &cursor) || cursor < 0) {
    c.reply.Error("ERR invalid cursor");
    return;
  }
  std::string pattern;
  bool has_pattern = false;
  for (size_t i = 3; i < c.args.size(); i += 2) {
    if (i + 1 >= c.args.size()) {
      c.reply.Error(kSyntaxError);
      return;
    }
    if (EqualsIgnoreCase(c.args[i], "match")) {
      pattern.assign(c.args[i + 1]);
      has_pattern = true;
    } else if (EqualsIgnoreCase(c.args[i], "count")) {
      int64_t n;
      if (!ParseIntArg(c, c.args[i + 1], &n)) return;
      if (n < 1) {
        c.reply.Error(kSyntaxError);
        return;
      }
    } else {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  Txn::Entry* e;
  HashFields fields;
  if (!ReadHash(c, &e, &fields)) return;
  std::vector<const std::pair<const std::string, std::string>*> hits;
  for (const auto& kv : fields)
    if (!has_pattern || GlobMatch(pattern, kv.first)) hits.push_back(&kv);
  c.reply.ArrayHeader(2);
  c.reply.Bulk("0");
  c.reply.ArrayHeader(hits.size() * 2);
  for (const auto* kv : hits) {
    c.reply.Bulk(kv->first);
    c.reply.Bulk(kv->second);
  }
}

}  // namespace

void RegisterHashCommands(std::vector<Dispatcher::Command>* out) {
  using D = Dispatcher;
  const std::vector<D::Command> cmds = {
      {"hset", -4, HSet, D::kWrite | D::kReadsKey},
      {"hmset", -4, HMSet, D::kWrite | D::kReadsKey},
      {"hsetnx", 4, HSetNx, D::kWrite | D::kReadsKey},
      {"hget", 3, HGet, D::kReadsKey},
      {"hmget", -3, HMGet, D::kReadsKey},
      {"hgetall", 2, HGetAll, D::kReadsKey},
      {"hkeys", 2, HKeys, D::kReadsKey},
      {"hvals", 2, HVals, D::kReadsKey},
      {"hdel", -3, HDel, D::kWrite | D::kReadsKey},
      {"hexists", 3, HExists, D::kReadsKey},
      {"hlen", 2, HLen, D::kReadsKey},
      {"hstrlen", 3, HStrLen, D::kReadsKey},
      {"hincrby", 4, HIncrBy, D::kWrite | D::kReadsKey},
      {"hincrbyfloat", 4, HIncrByFloat, D::kWrite | D::kReadsKey},
      {"hscan", -3, HScan, D::kReadsKey},
  };
  out->insert(out->end(), cmds.begin(), cmds.end());
}

}  // namespace eloqkv::resp
