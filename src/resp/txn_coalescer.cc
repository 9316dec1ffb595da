#include "resp/txn_coalescer.h"

#include <algorithm>

namespace eloqkv::resp {

void TxnCoalescer::Prepare(uint32_t keyspace, std::span<const std::string_view> args) {
  size_t bytes = 0;
  for (std::string_view a : args) bytes += a.size();
  if (!commands_.empty() && (keyspace != keyspace_ || commands_.size() >= kMaxCommands ||
                             commands_.arg_bytes() + bytes > kMaxBytes))
    Flush();
  if (keyspace != keyspace_) {
    txn_ = Txn(engine_, keyspace, &lsn_, router_, field_space_);
    keyspace_ = keyspace;
  }
  // A key a command only read may be read again from the transaction by a later one: it is
  // checked at the commit like the keys written.
  if (commands_.empty()) txn_.set_validate_reads(true);
}

void TxnCoalescer::Flush() {
  if (commands_.empty()) return;
  const bool committed = !partial_write_ && txn_.Commit().ok();
  txn_.Clear();
  partial_write_ = false;
  if (committed) {
    commands_.Applied(lsn_);
  } else {
    commands_.RunEachAlone();
  }
  commands_.Clear();
  lsn_ = 0;
}

}  // namespace eloqkv::resp
