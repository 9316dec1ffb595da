#include "resp/write_coalescer.h"

#include "resp/commands.h"
#include "resp/store.h"

namespace eloqkv::resp {

bool WriteCoalescer::Add(uint32_t keyspace, Session& session, uint64_t origin, uint64_t* lsn,
                         std::span<const std::string_view> args, ReplyWriter& reply,
                         size_t* reply_mark) {
  const std::span<const std::string_view> pairs = args.subspan(1);
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
  if (reply_mark != nullptr) *reply_mark = mark;
  reply.SimpleString("OK");
  commands_.Add(session, lsn, args, reply, mark);
  return true;
}

void WriteCoalescer::Flush() {
  if (commands_.empty()) return;
  WriteResult result;
  const bool applied = engine_->WriteDeferred(batch_, &result).ok();
  batch_.Clear();
  if (applied) {
    commands_.Applied(result.end_lsn);
  } else {
    commands_.RunEachAlone();
  }
  commands_.Clear();
}

}  // namespace eloqkv::resp
