#include "resp/txn_coalescer.h"

#include <algorithm>

namespace eloqkv::resp {

void TxnCoalescer::Prepare(uint32_t keyspace, std::span<const std::string_view> args) {
  size_t bytes = 0;
  for (std::string_view a : args) bytes += a.size();
  if (!pending_.empty() && (keyspace != keyspace_ || pending_.size() >= kMaxCommands ||
                            arg_bytes_.size() + bytes > kMaxBytes))
    Flush();
  if (keyspace != keyspace_) {
    txn_ = Txn(engine_, keyspace, &lsn_, router_, field_space_);
    keyspace_ = keyspace;
  }
  // A key a command only read may be read again from the transaction by a later one: it is
  // checked at the commit like the keys written.
  if (pending_.empty()) txn_.set_validate_reads(true);
}

void TxnCoalescer::Record(Session& session, uint64_t* lsn, std::span<const std::string_view> args,
                          ReplyWriter& reply, size_t mark) {
  const size_t first = arg_ends_.size();
  for (std::string_view a : args) {
    arg_bytes_.append(a);
    arg_ends_.push_back(arg_bytes_.size());
  }
  pending_.push_back(Pending{&session, lsn, first, arg_ends_.size(), reply.buffer(), mark,
                             reply.size() - mark, reply.protocol()});
}

void TxnCoalescer::Flush() {
  if (pending_.empty()) return;
  const bool committed = !partial_write_ && txn_.Commit().ok();
  txn_.Clear();
  partial_write_ = false;
  if (committed) {
    for (const Pending& p : pending_) *p.lsn = std::max(*p.lsn, lsn_);
  } else {
    RunEachAlone();
  }
  pending_.clear();
  arg_bytes_.clear();
  arg_ends_.clear();
  lsn_ = 0;
}

void TxnCoalescer::RunEachAlone() {
  std::vector<std::string> replies(pending_.size());
  std::vector<std::string_view> views;
  for (size_t i = 0; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    views.clear();
    for (size_t a = p.first_arg; a < p.end_arg; ++a) {
      const size_t begin = a == 0 ? 0 : arg_ends_[a - 1];
      views.emplace_back(arg_bytes_.data() + begin, arg_ends_[a] - begin);
    }
    ReplyWriter reply(&replies[i], p.protocol);
    run_alone_(*p.session, views, reply, p.lsn);
  }
  // Last first: replacing a reply moves only what follows it in its buffer.
  for (size_t i = pending_.size(); i-- > 0;) {
    const Pending& p = pending_[i];
    if (p.mark + p.reply_len <= p.out->size() &&
        std::string_view(*p.out).substr(p.mark, p.reply_len) != replies[i])
      p.out->replace(p.mark, p.reply_len, replies[i]);
  }
}

}  // namespace eloqkv::resp
