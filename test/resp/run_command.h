// Runs one RESP command through a dispatcher as the server runs a round of one: the reply, its
// gathered writes applied and synced to the log position it depends on before it is returned;
// and the fixture of the dispatcher tests.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "../engine/test_util.h"
#include "resp/commands.h"

namespace eloqkv::test {

inline std::string RunCommand(Engine& engine, resp::Dispatcher& dispatcher, resp::Session& session,
                              const std::vector<std::string>& argv) {
  std::vector<std::string_view> args(argv.begin(), argv.end());
  std::string out;
  resp::ReplyWriter w(&out, session.protocol);
  dispatcher.Execute(session, args, w);
  // A round of one command: what it gathered is applied before its reply is held.
  const uint64_t ran = dispatcher.TakePendingLsn();
  dispatcher.FlushWrites();
  if (const uint64_t lsn = std::max(ran, std::exchange(session.coalesced_lsn, 0)); lsn != 0)
    EXPECT_TRUE(engine.SyncTo(lsn).ok());
  return out;
}

// A dispatcher (one listener worker) over a fresh engine, with an authenticated session.
class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest()
      : db_(TestOptions(dir_.path())), dispatcher_(&db_.engine(), {}, &stats_, &clients_) {
    session_.authenticated = true;
  }

  // Runs one command on this worker (or on `d`, as session `s`).
  std::string Run(const std::vector<std::string>& argv, resp::Session* s = nullptr,
                  resp::Dispatcher* d = nullptr) {
    return RunCommand(db_.engine(), d ? *d : dispatcher_, s ? *s : session_, argv);
  }

  TempDir dir_;
  Instance db_;
  resp::ListenerStats stats_;
  resp::ClientRegistry clients_;
  resp::Dispatcher dispatcher_;
  resp::Session session_{1, "127.0.0.1:5000", "127.0.0.1:6380", -1};
};

// A second worker on the same engine, through its own engine handle: another listener process,
// in effect, with its own authenticated session.
struct SecondWorker {
  explicit SecondWorker(const Instance& db)
      : engine(db.AttachAnother()), dispatcher(engine.get(), {}, &stats, &clients) {
    session.authenticated = true;
  }

  std::unique_ptr<Engine> engine;
  resp::ListenerStats stats;
  resp::ClientRegistry clients;
  resp::Dispatcher dispatcher;
  resp::Session session{3, "127.0.0.1:5001", "127.0.0.1:6380", -1};
};

// Two sessions on one dispatcher over a fresh engine whose WAL records are counted, for the
// coalescers' tests: a command is either gathered (its round not ended yet) or run as a round.
class GatheringTest : public ::testing::Test {
 protected:
  explicit GatheringTest(size_t index_memory = 0)
      : db_(Opts(dir_.path(), index_memory)), dispatcher_(&db_.engine(), {}, &stats_, &clients_) {
    a_.authenticated = true;
    b_.authenticated = true;
    // The first command resolves the default keyspace; only then are commands gathered.
    EXPECT_EQ(Run(a_, {"SET", "warm", "1"}), "+OK\r\n");
  }
  Options Opts(const std::string& dir, size_t index_memory) {
    Options o = host_.With(TestOptions(dir));
    if (index_memory != 0) o.index_memory = index_memory;
    return o;
  }
  // Runs a command the way a round does before its end: its reply may still be replaced, and
  // what it wrote may be gathered, not applied.
  void Gather(resp::Session& s, std::string* out, std::vector<std::string> argv) {
    std::vector<std::string_view> args(argv.begin(), argv.end());
    resp::ReplyWriter reply(out, s.protocol);
    dispatcher_.Execute(s, args, reply);
    ran_lsn_ = std::max(ran_lsn_, dispatcher_.TakePendingLsn());
  }
  // A whole round of one command.
  std::string Run(resp::Session& s, const std::vector<std::string>& argv) {
    return RunCommand(db_.engine(), dispatcher_, s, argv);
  }
  // The value stored under a plain key, without its type byte, or why there is none.
  std::string Stored(std::string_view key) {
    std::string v;
    const Status s = db_->Get(dispatcher_.default_keyspace(), key, &v);
    return s.ok() ? v.substr(1) : s.ToString();
  }

  TempDir dir_;
  CountingHostLog host_;
  Instance db_;
  resp::ListenerStats stats_;
  resp::ClientRegistry clients_;
  resp::Dispatcher dispatcher_;
  resp::Session a_{1, "127.0.0.1:5000", "127.0.0.1:6380", -1};
  resp::Session b_{2, "127.0.0.1:5001", "127.0.0.1:6380", -1};
  uint64_t ran_lsn_ = 0;  // what the gathered commands that ran alone wait for
};

}  // namespace eloqkv::test
