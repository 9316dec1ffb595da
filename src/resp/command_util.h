// Helpers shared by the command families: typed reads that reply the Redis error themselves.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "resp/commands.h"

namespace eloqkv::resp {

// Reads key through the call's transaction. Replies and returns false on an engine error, or
// on a value of another type when `want` is not kNone.
bool ReadEntry(Call& c, std::string_view key, ValueType want, Txn::Entry** out);
// Whether the session may use the default keyspace as a whole (SCAN, KEYS, DBSIZE, FLUSHDB, the
// GET fast path); replies NOPERM when not.
bool PlainKeysAllowed(Call& c);
// Txn::Blind, replying the error itself (a table row's key that does not convert).
bool BlindEntry(Call& c, std::string_view key, Txn::Entry** out);

// Parses a TTL argument of a command into an absolute expiry time in milliseconds. unit_ms is
// 1000 for seconds and 1 for milliseconds. Replies and returns false when invalid.
// A read command's key lookup, for INFO's keyspace_hits / keyspace_misses (as Redis counts).
void CountLookup(Call& c, bool hit);
bool ParseExpireAt(Call& c, std::string_view arg, int64_t unit_ms, bool absolute,
                   std::string_view command, int64_t* at_ms);

bool ParseIntArg(Call& c, std::string_view arg, int64_t* out);

// Redis's addReplySubcommandSyntaxError: a subcommand called with arguments its arity let through
// but it does not take.
void ReplySubcommandSyntaxError(Call& c);
// HELP of a container command: one status line each, as Redis replies it.
void ReplyHelp(Call& c, std::initializer_list<std::string_view> lines);

// Replies a stored hash field or string value, or nil.
void ReplyBulkOrNull(ReplyWriter& reply, const std::string* value);

}  // namespace eloqkv::resp
