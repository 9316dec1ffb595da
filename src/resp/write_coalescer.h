// WriteCoalescer: a round's plain SETs and MSETs, from any of its clients, as one engine batch.
//
// Each write command costs one engine batch: a pass under the engine's write mutex, one WAL
// record, one group-commit slot. Blind writes (no condition, no read) need not be alone in one:
// gathered, a round of -P 16 SETs from 50 clients is one batch, not 800.
//
// Invariants:
//  * A gathered command's reply (+OK) is already in its client's output buffer, where Flush can
//    still replace it (gathered_commands.h).
//  * The dispatcher flushes before it runs any other command, and the server before it holds the
//    round's replies: every command observes the writes gathered before it, as if each had run
//    alone, and no reply leaves before the writes it acknowledges are applied.
//  * The batch applies its commands' ops in the order they arrived, each op reported in the
//    change feed as its own client's (CLIENT TRACKING NOLOOP).
//  * If the batch fails as a whole, each command runs again alone, in order, through the full
//    path (which resolves the keyspace again: the one gathered into may have been dropped), and
//    gets the reply it would have had without coalescing.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/eloqkv.h"
#include "resp/gathered_commands.h"
#include "resp/protocol.h"

namespace eloqkv::resp {

class WriteCoalescer {
 public:
  WriteCoalescer(Engine* engine, GatheredCommands::RunAlone run_alone)
      : engine_(engine), commands_(std::move(run_alone)) {}

  // Gathers the string writes of a SET key value or MSET key value... of `session` into
  // `keyspace` and replies +OK. origin: the client (change feed); *lsn: where Flush records the
  // log position the reply must wait for. False, with nothing gathered or replied, when the
  // pairs cannot go into a batch (a key or value over the engine's limits): the caller runs the
  // command alone. *reply_mark (when given): where its reply starts in `reply`.
  bool Add(uint32_t keyspace, Session& session, uint64_t origin, uint64_t* lsn,
           std::span<const std::string_view> args, ReplyWriter& reply,
           size_t* reply_mark = nullptr);
  // Applies what was gathered.
  void Flush();
  bool empty() const { return commands_.empty(); }

  // Gathering stops at these, and the batch is applied.
  static constexpr size_t kMaxOps = 4096;
  static constexpr size_t kMaxBytes = size_t{4} << 20;

 private:
  Engine* engine_;
  WriteBatch batch_;
  GatheredCommands commands_;
  std::string value_;  // the encoded value being added
};

}  // namespace eloqkv::resp
