#include "resp/write_coalescer.h"

#include <algorithm>

#include "resp/commands.h"
#include "resp/store.h"

namespace eloqkv::resp {

bool WriteCoalescer::Add(uint32_t keyspace, std::span<const std::string_view> pairs,
                         uint64_t origin, uint64_t* lsn, ReplyWriter& reply) {
  if (batch_.Count() + pairs.size() / 2 > kMaxOps || batch_.ByteSize() >= kMaxBytes) Flush();
  const size_t first = batch_.Count();
  for (size_t i = 0; i + 1 < pairs.size(); i += 2) {
    EncodeValueTo(ValueType::kString, pairs[i + 1], &value_);
    if (!batch_.Put(keyspace, pairs[i], value_).ok()) {
      batch_.TruncateOps(first);
      return false;
    }
  }
  batch_.set_origin_from(first, origin);
  const size_t mark = reply.size();
  reply.SimpleString("OK");
  pending_.push_back(Pending{first, batch_.Count(), origin, lsn, reply.buffer(), mark,
                             reply.size() - mark, reply.protocol()});
  return true;
}

void WriteCoalescer::Flush() {
  if (pending_.empty()) return;
  WriteResult result;
  if (engine_->WriteDeferred(batch_, &result).ok()) {
    for (const Pending& p : pending_) *p.lsn = std::max(*p.lsn, result.end_lsn);
  } else {
    ApplyOneByOne();
  }
  batch_.Clear();
  pending_.clear();
}

void WriteCoalescer::ApplyOneByOne() {
  std::vector<std::string> errors(pending_.size());
  for (size_t i = 0; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    WriteBatch one;
    one.AppendOps(batch_, p.first_op, p.end_op);
    one.set_origin(p.origin);
    WriteResult result;
    const Status s = engine_->WriteDeferred(one, &result);
    if (s.ok()) {
      *p.lsn = std::max(*p.lsn, result.end_lsn);
    } else {
      ReplyWriter error(&errors[i], p.protocol);
      ReplyEngineError(error, s);
    }
  }
  // Last first: replacing a reply moves only what follows it in its buffer.
  for (size_t i = pending_.size(); i-- > 0;) {
    const Pending& p = pending_[i];
    if (!errors[i].empty() && p.mark + p.reply_len <= p.out->size())
      p.out->replace(p.mark, p.reply_len, errors[i]);
  }
}

}  // namespace eloqkv::resp
