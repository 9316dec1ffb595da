// TxnCoalescer: a round's read-modify-write commands on plain keys (INCR, HSET, SET NX, ...),
// from any of its clients, run in one shared transaction and committed as one engine batch.
//
// Alone, each such command is an optimistic transaction: a read, then a conditional batch, one
// WAL record, one pass under the engine's write mutex. Run one after another in one transaction,
// a round's commands see each other's writes exactly as if each had committed alone, and the
// keys they read are checked once, at the one commit: a round of -P 16 INCRs from 50 clients is
// one batch, not 800.
//
// Invariants:
//  * A gathered command's reply is already in its client's output buffer, where Flush can still
//    replace it (gathered_commands.h).
//  * The dispatcher flushes before it runs any command it does not gather here (and before it
//    gathers a blind SET into the WriteCoalescer): each command observes every write gathered
//    before it, nothing observes one gathered after it, and no reply leaves before the writes it
//    acknowledges are applied.
//  * Every key the commands read, written or not, goes into the batch as a check of the sequence
//    number read, so the batch applies only if none changed since; it is then the commands run
//    alone, in arrival order, at the commit instant. A key's write is reported in the change
//    feed as its writer's, or as nobody's when several clients wrote it (CLIENT TRACKING
//    NOLOOP: each still hears of the others' writes).
//  * If the batch fails (a conflicting write, an error in one command's write), or a command
//    replied an error after it had written something (a failed read halfway through a large
//    hash), nothing of the batch is applied: each command runs again alone, in order, and its
//    reply is replaced by the new one.
//  * A round is committed early once it holds kMaxCommands commands, or kMaxBytes of arguments
//    or of values read and written.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/eloqkv.h"
#include "resp/gathered_commands.h"
#include "resp/protocol.h"
#include "resp/store.h"

namespace eloqkv::resp {

class Session;

class TxnCoalescer {
 public:
  TxnCoalescer(Engine* engine, TableRouter* router, FieldSpace* field_space,
               GatheredCommands::RunAlone run_alone)
      : engine_(engine),
        router_(router),
        field_space_(field_space),
        txn_(engine, 0, &lsn_, router, field_space),
        commands_(std::move(run_alone)) {}
  TxnCoalescer(const TxnCoalescer&) = delete;  // txn_ points at lsn_
  TxnCoalescer& operator=(const TxnCoalescer&) = delete;

  // Runs one command of `session` on keys of `keyspace`: run(txn) runs its handler in the
  // shared transaction, replying to `reply` from *reply_mark on. *lsn: where Flush records the
  // log position the reply must wait for. The caller then calls FlushIfFull.
  template <typename Run>
  void Add(uint32_t keyspace, Session& session, uint64_t origin, uint64_t* lsn,
           std::span<const std::string_view> args, ReplyWriter& reply, size_t* reply_mark,
           Run&& run) {
    Prepare(keyspace, args);
    txn_.set_origin(origin);
    const size_t mark = reply.size();
    *reply_mark = mark;
    const uint64_t writes = txn_.writes();
    run(txn_);
    if (reply.IsErrorAt(mark) && txn_.writes() != writes) partial_write_ = true;
    commands_.Add(session, lsn, args, reply, mark);
  }
  // Commits early once the values held pass kMaxBytes.
  void FlushIfFull() {
    if (txn_.held_bytes() >= kMaxBytes) Flush();
  }
  // Commits what was gathered (or runs each command alone).
  void Flush();
  bool empty() const { return commands_.empty(); }

  // Gathering stops at these, and the batch is committed.
  static constexpr size_t kMaxCommands = 1024;
  static constexpr size_t kMaxBytes = size_t{4} << 20;

 private:
  void Prepare(uint32_t keyspace, std::span<const std::string_view> args);

  Engine* engine_;
  TableRouter* router_;
  FieldSpace* field_space_;
  uint64_t lsn_ = 0;  // what the shared transaction's reads and commit depend on
  uint32_t keyspace_ = 0;
  Txn txn_;
  bool partial_write_ = false;  // a command replied an error after writing: commit nothing
  GatheredCommands commands_;
};

}  // namespace eloqkv::resp
