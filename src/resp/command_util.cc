#include "resp/command_util.h"

#include <limits>

#include "resp/text.h"

namespace eloqkv::resp {

bool ReadEntry(Call& c, std::string_view key, ValueType want, Txn::Entry** out) {
  const Status s = c.txn.Read(key, out);
  if (!s.ok()) {
    ReplyEngineError(c.reply, s);
    return false;
  }
  CountLookup(c, (*out)->exists);
  if (!c.txn.ShowAs(*out, want)) {
    ReplyWrongType(c.reply);
    return false;
  }
  return true;
}

void CountLookup(Call& c, bool hit) {
  if (!c.read_only) return;
  auto& counter = hit ? c.dispatcher.stats()->keyspace_hits : c.dispatcher.stats()->keyspace_misses;
  counter.fetch_add(1, std::memory_order_relaxed);
}

bool PlainKeysAllowed(Call& c) {
  if (c.session.user == nullptr || c.session.user->plain_keys) return true;
  c.reply.Error(std::string("NOPERM ") + kNoPermissionKeys);
  return false;
}

bool BlindEntry(Call& c, std::string_view key, Txn::Entry** out) {
  const Status s = c.txn.Blind(key, out);
  if (s.ok()) return true;
  ReplyEngineError(c.reply, s);
  return false;
}

bool ParseIntArg(Call& c, std::string_view arg, int64_t* out) {
  if (ParseInt64(arg, out)) return true;
  c.reply.Error(kNotIntegerError);
  return false;
}

bool ParseExpireAt(Call& c, std::string_view arg, int64_t unit_ms, bool absolute,
                   std::string_view command, int64_t* at_ms) {
  int64_t v = 0;
  if (!ParseIntArg(c, arg, &v)) return false;
  const int64_t now = NowMillis();
  const int64_t limit = std::numeric_limits<int64_t>::max() / unit_ms;
  if (v <= 0 || v > limit ||
      (!absolute && v * unit_ms > std::numeric_limits<int64_t>::max() - now)) {
    c.reply.Error("ERR invalid expire time in '" + std::string(command) + "' command");
    return false;
  }
  *at_ms = absolute ? v * unit_ms : now + v * unit_ms;
  return true;
}

void ReplyBulkOrNull(ReplyWriter& reply, const std::string* value) {
  if (value == nullptr)
    reply.Null();
  else
    reply.Bulk(*value);
}

void ReplyHelp(Call& c, std::initializer_list<std::string_view> lines) {
  c.reply.ArrayHeader(lines.size());
  for (std::string_view line : lines) c.reply.SimpleString(line);
}

void ReplySubcommandSyntaxError(Call& c) {
  c.reply.Error("ERR unknown subcommand or wrong number of arguments for '" +
                std::string(c.args[1].substr(0, 128)) + "'. Try " + ToUpper(c.args[0]) + " HELP.");
}

}  // namespace eloqkv::resp
