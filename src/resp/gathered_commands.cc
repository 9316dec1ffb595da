#include "resp/gathered_commands.h"

#include <algorithm>

namespace eloqkv::resp {

void GatheredCommands::Add(Session& session, uint64_t* lsn, std::span<const std::string_view> args,
                           const ReplyWriter& reply, size_t mark) {
  const size_t first = arg_ends_.size();
  for (std::string_view a : args) {
    arg_bytes_.append(a);
    arg_ends_.push_back(arg_bytes_.size());
  }
  commands_.push_back(Gathered{&session, lsn, first, arg_ends_.size(), reply.buffer(), mark,
                               reply.size() - mark, reply.protocol()});
}

void GatheredCommands::Applied(uint64_t lsn) {
  for (const Gathered& g : commands_) *g.lsn = std::max(*g.lsn, lsn);
}

void GatheredCommands::RunEachAlone() {
  std::vector<std::string> replies(commands_.size());
  std::vector<std::string_view> args;
  for (size_t i = 0; i < commands_.size(); ++i) {
    const Gathered& g = commands_[i];
    args.clear();
    for (size_t a = g.first_arg; a < g.end_arg; ++a) {
      const size_t begin = a == 0 ? 0 : arg_ends_[a - 1];
      args.emplace_back(arg_bytes_.data() + begin, arg_ends_[a] - begin);
    }
    const bool in_place = g.mark + g.reply_len <= g.out->size();
    ReplyWriter reply(&replies[i], g.protocol);
    run_alone_(*g.session, args,
               in_place ? std::string_view(*g.out).substr(g.mark, g.reply_len) : std::string_view(),
               reply, g.lsn);
  }
  for (size_t i = commands_.size(); i-- > 0;) {
    const Gathered& g = commands_[i];
    if (g.mark + g.reply_len <= g.out->size() &&
        std::string_view(*g.out).substr(g.mark, g.reply_len) != replies[i])
      g.out->replace(g.mark, g.reply_len, replies[i]);
  }
}

void GatheredCommands::Clear() {
  commands_.clear();
  arg_bytes_.clear();
  arg_ends_.clear();
}

}  // namespace eloqkv::resp
