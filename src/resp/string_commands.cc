// Strings: GET/SET and their variants, counters, ranges.
#include <cmath>
#include <limits>

#include "resp/command_util.h"
#include "resp/text.h"

namespace eloqkv::resp {

namespace {

constexpr int64_t kMaxStringSize = int64_t{512} << 20;  // Redis's proto-max-bulk-len

void Get(Call& c) {
  // The hot path: no bookkeeping (a tracking client's read needs its key's expiry noted).
  if (!c.in_exec && !c.session.tracking.on && !c.dispatcher.IsTableKey(c.args[1])) {
    if (!PlainKeysAllowed(c)) return;
    thread_local std::string stored;
    ValueType type;
    uint32_t ks = 0;
    if (!c.dispatcher.Keyspace(c.reply, &ks)) return;
    ReadInfo info;
    info.unsynced_ok = true;  // the server holds the reply until the round's sync covers it
    const Status s = ReadValue(c.dispatcher.engine(), ks, c.args[1], &type, &stored, &info);
    c.dispatcher.DependOn(info.depends_on_lsn);
    if (s.IsNotFound()) {
      c.dispatcher.stats()->keyspace_misses.fetch_add(1, std::memory_order_relaxed);
      c.reply.Null();
    } else if (!s.ok()) {
      ReplyEngineError(c.reply, s);
    } else if (type != ValueType::kString) {
      ReplyWrongType(c.reply);
    } else {
      c.dispatcher.stats()->keyspace_hits.fetch_add(1, std::memory_order_relaxed);
      c.reply.Bulk(std::string_view(stored).substr(1));
    }
    return;
  }
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  ReplyBulkOrNull(c.reply, e->exists ? &e->payload : nullptr);
}

bool IsExpiryForm(std::string_view a) {
  return EqualsIgnoreCase(a, "ex") || EqualsIgnoreCase(a, "px") || EqualsIgnoreCase(a, "exat") ||
         EqualsIgnoreCase(a, "pxat");
}

// EX s | PX ms | EXAT unix-s | PXAT unix-ms -> an absolute expiry in ms.
bool ParseExpiryForm(Call& c, std::string_view form, std::string_view value, const char* command,
                     int64_t* expire_at_ms) {
  const bool seconds = form[0] == 'e' || form[0] == 'E';
  return ParseExpireAt(c, value, seconds ? 1000 : 1, form.size() == 4, command, expire_at_ms);
}

// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
void Set(Call& c) {
  bool nx = false, xx = false, get = false, keepttl = false;
  // As Redis: one expiry form, which may be repeated (the last wins); its value is checked
  // only once every option parsed, so a syntax error is reported first.
  std::string_view expire_form;
  size_t expire_arg = 0;
  for (size_t i = 3; i < c.args.size(); ++i) {
    const std::string_view a = c.args[i];
    const bool next = i + 1 < c.args.size();
    if (EqualsIgnoreCase(a, "nx") && !xx) {
      nx = true;
    } else if (EqualsIgnoreCase(a, "xx") && !nx) {
      xx = true;
    } else if (EqualsIgnoreCase(a, "get")) {
      get = true;
    } else if (EqualsIgnoreCase(a, "keepttl") && expire_form.empty()) {
      keepttl = true;
    } else if (next && !keepttl && IsExpiryForm(a) &&
               (expire_form.empty() || EqualsIgnoreCase(a, expire_form))) {
      expire_form = a;
      expire_arg = ++i;
    } else {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  int64_t expire = 0;
  const bool has_expire = !expire_form.empty();
  if (has_expire && !ParseExpiryForm(c, expire_form, c.args[expire_arg], "set", &expire)) return;
  Txn::Entry* e;
  if (nx || xx || get || keepttl) {
    if (!ReadEntry(c, c.args[1], get ? ValueType::kString : ValueType::kNone, &e)) return;
  } else {
    if (!BlindEntry(c, c.args[1], &e)) return;
  }
  const bool existed = e->exists;
  std::string old = get && existed ? e->payload : std::string();
  if ((nx && existed) || (xx && !existed)) {
    if (get)
      ReplyBulkOrNull(c.reply, existed ? &old : nullptr);
    else
      c.reply.Null();
    return;
  }
  const int64_t ttl = keepttl && existed ? e->expire_at_ms : expire;
  c.txn.Put(e, ValueType::kString, std::string(c.args[2]), ttl);
  if (get)
    ReplyBulkOrNull(c.reply, existed ? &old : nullptr);
  else
    c.reply.SimpleString("OK");
}

void SetWithExpire(Call& c, int64_t unit_ms, std::string_view name) {
  int64_t at = 0;
  if (!ParseExpireAt(c, c.args[2], unit_ms, false, name, &at)) return;
  Txn::Entry* e;
  if (!BlindEntry(c, c.args[1], &e)) return;
  c.txn.Put(e, ValueType::kString, std::string(c.args[3]), at);
  c.reply.SimpleString("OK");
}
void SetEx(Call& c) {
  SetWithExpire(c, 1000, "setex");
}
void PSetEx(Call& c) {
  SetWithExpire(c, 1, "psetex");
}

void SetNx(Call& c) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kNone, &e)) return;
  if (e->exists) {
    c.reply.Integer(0);
    return;
  }
  c.txn.Put(e, ValueType::kString, std::string(c.args[2]), 0);
  c.reply.Integer(1);
}

void GetSet(Call& c) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  std::string old = e->payload;
  const bool existed = e->exists;
  c.txn.Put(e, ValueType::kString, std::string(c.args[2]), 0);
  ReplyBulkOrNull(c.reply, existed ? &old : nullptr);
}

void GetDel(Call& c) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  if (!e->exists) {
    c.reply.Null();
    return;
  }
  std::string old = e->payload;
  c.txn.Remove(e);
  c.reply.Bulk(old);
}

// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
void GetEx(Call& c) {
  bool persist = false;
  std::string_view expire_form;
  size_t expire_arg = 0;
  for (size_t i = 2; i < c.args.size(); ++i) {
    const std::string_view a = c.args[i];
    if (EqualsIgnoreCase(a, "persist") && expire_form.empty()) {
      persist = true;
    } else if (i + 1 < c.args.size() && !persist && IsExpiryForm(a) &&
               (expire_form.empty() || EqualsIgnoreCase(a, expire_form))) {
      expire_form = a;
      expire_arg = ++i;
    } else {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  // As Redis: the options' syntax, then the key and its type, then the time.
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  if (!e->exists) {
    c.reply.Null();
    return;
  }
  int64_t expire = 0;
  const bool change = persist || !expire_form.empty();
  if (!expire_form.empty() &&
      !ParseExpiryForm(c, expire_form, c.args[expire_arg], "getex", &expire))
    return;
  std::string value = e->payload;
  if (change && e->expire_at_ms != expire) c.txn.Put(e, ValueType::kString, value, expire);
  c.reply.Bulk(value);
}

void MGet(Call& c) {
  c.reply.ArrayHeader(c.args.size() - 1);
  for (size_t i = 1; i < c.args.size(); ++i) {
    Txn::Entry* e;
    const Status s = c.txn.Read(c.args[i], &e);
    if (s.ok()) CountLookup(c, e->exists);
    if (s.ok() && e->exists && e->type == ValueType::kString)
      c.reply.Bulk(e->payload);
    else
      c.reply.Null();
  }
}

bool PairsOk(Call& c, std::string_view name) {
  if ((c.args.size() - 1) % 2 == 0) return true;
  ReplyWrongArity(c.reply, name);
  return false;
}

void MSet(Call& c) {
  if (!PairsOk(c, "mset")) return;
  for (size_t i = 1; i + 1 < c.args.size(); i += 2) {
    Txn::Entry* e;
    if (!BlindEntry(c, c.args[i], &e)) return;
    c.txn.Put(e, ValueType::kString, std::string(c.args[i + 1]), 0);
  }
  c.reply.SimpleString("OK");
}

void MSetNx(Call& c) {
  if (!PairsOk(c, "msetnx")) return;
  std::vector<Txn::Entry*> entries;
  for (size_t i = 1; i + 1 < c.args.size(); i += 2) {
    Txn::Entry* e;
    if (!ReadEntry(c, c.args[i], ValueType::kNone, &e)) return;
    if (e->exists) {
      c.reply.Integer(0);
      return;
    }
    entries.push_back(e);
  }
  for (size_t i = 1; i + 1 < c.args.size(); i += 2)
    c.txn.Put(entries[(i - 1) / 2], ValueType::kString, std::string(c.args[i + 1]), 0);
  c.reply.Integer(1);
}

void IncrBy(Call& c, int64_t delta) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  int64_t cur = 0;
  if (e->exists && !ParseInt64(e->payload, &cur)) {
    c.reply.Error(kNotIntegerError);
    return;
  }
  if ((delta > 0 && cur > std::numeric_limits<int64_t>::max() - delta) ||
      (delta < 0 && cur < std::numeric_limits<int64_t>::min() - delta)) {
    c.reply.Error("ERR increment or decrement would overflow");
    return;
  }
  cur += delta;
  c.txn.Put(e, ValueType::kString, FormatInt64(cur), e->exists ? e->expire_at_ms : 0);
  c.reply.Integer(cur);
}
void Incr(Call& c) {
  IncrBy(c, 1);
}
void Decr(Call& c) {
  IncrBy(c, -1);
}
void IncrByArg(Call& c) {
  int64_t d;
  if (ParseIntArg(c, c.args[2], &d)) IncrBy(c, d);
}
void DecrByArg(Call& c) {
  int64_t d;
  if (!ParseIntArg(c, c.args[2], &d)) return;
  if (d == std::numeric_limits<int64_t>::min()) {
    c.reply.Error("ERR decrement would overflow");
    return;
  }
  IncrBy(c, -d);
}

// As Redis: the key's type, then its value, then the increment.
void IncrByFloat(Call& c) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  long double cur = 0;
  long double delta;
  if ((e->exists && !ParseLongDouble(e->payload, &cur)) || !ParseLongDouble(c.args[2], &delta)) {
    c.reply.Error("ERR value is not a valid float");
    return;
  }
  cur += delta;
  if (std::isnan(cur) || std::isinf(cur)) {
    c.reply.Error("ERR increment would produce NaN or Infinity");
    return;
  }
  std::string text = FormatLongDouble(cur);
  c.txn.Put(e, ValueType::kString, text, e->exists ? e->expire_at_ms : 0);
  c.reply.Bulk(text);
}

// Whether a string of `have` bytes may grow by `add` (Redis's checkStringLength, overflow
// included), refused before the value is built: the engine's limit (the value plus RESP's
// one-byte type tag) too, so that SETRANGE at a large offset allocates nothing.
bool CheckSize(Call& c, uint64_t have, uint64_t add) {
  const uint64_t total = have + add;
  if (total < have || total > static_cast<uint64_t>(kMaxStringSize)) {
    c.reply.Error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    return false;
  }
  if (total + 1 > kMaxValueSize) {
    c.reply.Error("ERR value is " + std::to_string(total + 1) + " bytes; the limit is " +
                  std::to_string(kMaxValueSize));
    return false;
  }
  return true;
}

void Append(Call& c) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  if (!CheckSize(c, e->exists ? e->payload.size() : 0, c.args[2].size())) return;
  std::string value = e->exists ? e->payload : std::string();
  value.append(c.args[2]);
  const auto len = static_cast<int64_t>(value.size());
  c.txn.Put(e, ValueType::kString, std::move(value), e->exists ? e->expire_at_ms : 0);
  c.reply.Integer(len);
}

void StrLen(Call& c) {
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  c.reply.Integer(e->exists ? static_cast<int64_t>(e->payload.size()) : 0);
}

void GetRange(Call& c) {
  int64_t start, end;
  if (!ParseIntArg(c, c.args[2], &start) || !ParseIntArg(c, c.args[3], &end)) return;
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  const auto len = static_cast<int64_t>(e->payload.size());
  if (start < 0 && end < 0 && start > end) {
    c.reply.Bulk("");
    return;
  }
  if (start < 0) start = std::max<int64_t>(0, len + start);
  if (end < 0) end = std::max<int64_t>(0, len + end);
  if (end >= len) end = len - 1;
  if (!e->exists || len == 0 || start > end) {
    c.reply.Bulk("");
    return;
  }
  c.reply.Bulk(std::string_view(e->payload).substr(start, end - start + 1));
}

void SetRange(Call& c) {
  int64_t offset;
  if (!ParseIntArg(c, c.args[2], &offset)) return;
  if (offset < 0) {
    c.reply.Error("ERR offset is out of range");
    return;
  }
  const std::string_view piece = c.args[3];
  Txn::Entry* e;
  if (!ReadEntry(c, c.args[1], ValueType::kString, &e)) return;
  if (piece.empty()) {
    c.reply.Integer(e->exists ? static_cast<int64_t>(e->payload.size()) : 0);
    return;
  }
  if (!CheckSize(c, static_cast<uint64_t>(offset), piece.size())) return;
  std::string value = e->exists ? e->payload : std::string();
  if (value.size() < offset + piece.size()) value.resize(offset + piece.size(), '\0');
  value.replace(offset, piece.size(), piece);
  const auto len = static_cast<int64_t>(value.size());
  c.txn.Put(e, ValueType::kString, std::move(value), e->exists ? e->expire_at_ms : 0);
  c.reply.Integer(len);
}

}  // namespace

void RegisterStringCommands(std::vector<Dispatcher::Command>* out) {
  using D = Dispatcher;
  const std::vector<D::Command> cmds = {
      {"get", 2, Get, D::kFastRead | D::kReadsKey, {1, 1, 1}},
      {"set", -3, Set, D::kWrite | D::kGather | D::kBlindSet, {1, 1, 1}},
      {"setex", 4, SetEx, D::kWrite | D::kGather, {1, 1, 1}},
      {"psetex", 4, PSetEx, D::kWrite | D::kGather, {1, 1, 1}},
      {"setnx", 3, SetNx, D::kWrite | D::kGather, {1, 1, 1}},
      {"getset", 3, GetSet, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"getdel", 2, GetDel, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"getex", -2, GetEx, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"mget", -2, MGet, D::kReadsKeys, {1, -1, 1}},
      {"mset", -3, MSet, D::kWrite | D::kBlindSet, {1, -1, 2}},
      {"msetnx", -3, MSetNx, D::kWrite | D::kGather, {1, -1, 2}},
      {"incr", 2, Incr, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"decr", 2, Decr, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"incrby", 3, IncrByArg, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"decrby", 3, DecrByArg, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"incrbyfloat", 3, IncrByFloat, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"append", 3, Append, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
      {"strlen", 2, StrLen, D::kReadsKey, {1, 1, 1}},
      {"getrange", 4, GetRange, D::kReadsKey, {1, 1, 1}},
      {"substr", 4, GetRange, D::kReadsKey, {1, 1, 1}},
      {"setrange", 4, SetRange, D::kWrite | D::kGather | D::kReadsKey, {1, 1, 1}},
  };
  out->insert(out->end(), cmds.begin(), cmds.end());
}

}  // namespace eloqkv::resp
