// Runs one RESP command through a dispatcher as the server would: the reply, synced to the log
// position it depends on before it is returned.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "resp/commands.h"

namespace eloqkv::test {

inline std::string RunCommand(Engine& engine, resp::Dispatcher& dispatcher, resp::Session& session,
                              const std::vector<std::string>& argv) {
  std::vector<std::string_view> args(argv.begin(), argv.end());
  std::string out;
  resp::ReplyWriter w(&out, session.protocol);
  dispatcher.Execute(session, args, w);
  if (const uint64_t lsn = dispatcher.TakePendingLsn(); lsn != 0)
    EXPECT_TRUE(engine.SyncTo(lsn).ok());
  return out;
}

}  // namespace eloqkv::test
