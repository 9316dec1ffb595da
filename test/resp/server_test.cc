// The event loop over real sockets and a real engine: replies wait for the sync that covers
// them, a client's half-close still gets its pipeline answered and applied, a round's cold
// reads are prefetched in one batch, and tracking clients get their invalidations in order.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "../engine/test_util.h"
#include "resp/server.h"
#include "resp/store.h"

namespace eloqkv::resp {
namespace {

using test::Instance;
using test::TempDir;
using test::TestOptions;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Polls `done` until it holds or 5 s passed; `spin`: without sleeping between polls.
template <typename Done>
void WaitUntil(Done done, bool spin = false) {
  for (const auto until = Clock::now() + 5s; !done() && Clock::now() < until;) {
    if (spin)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(1ms);
  }
}

class ServerTest : public ::testing::Test {
 protected:
  explicit ServerTest(size_t cache_memory = size_t{8} << 20, test::CountingHostLog* host = nullptr)
      : db_(Options(dir_.path(), cache_memory, host)) {}

  static eloqkv::Options Options(const std::string& dir, size_t cache_memory,
                                 test::CountingHostLog* host) {
    eloqkv::Options o = TestOptions(dir);
    o.cache_memory = cache_memory;
    return host != nullptr ? host->With(o) : o;
  }

  void SetUp() override {
    ListenerConfig config;
    config.port = 0;
    Configure(&config);
    server_ = std::make_unique<Server>(&db_.engine(), config, &stats_);
    ASSERT_TRUE(server_->Listen().ok());
    Prepare(server_.get());
    loop_ = std::thread([this] {
      while (!stop_.load()) ASSERT_TRUE(server_->Poll(20).ok());
    });
  }

  virtual void Configure(ListenerConfig*) {}
  // Before the loop's thread starts.
  virtual void Prepare(Server*) {}

  void TearDown() override {
    stop_.store(true);
    if (loop_.joinable()) loop_.join();
    server_.reset();
  }

  // receive_buffer > 0: a small kernel receive buffer, so that unread replies stay in the server.
  int Connect(int receive_buffer = 0) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0)
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->bound_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
  }

  static void Send(int fd, const std::string& bytes) {
    for (size_t sent = 0; sent < bytes.size();) {
      const ssize_t n = ::write(fd, bytes.data() + sent, bytes.size() - sent);
      if (n < 0 && errno == EINTR) continue;
      ASSERT_GT(n, 0);
      sent += static_cast<size_t>(n);
    }
  }

  // Reads until `want` bytes arrived, the peer closed, or the timeout passed.
  static std::string Receive(int fd, size_t want) {
    std::string got;
    char buf[4096];
    while (got.size() < want) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

  // Sends a pipeline and expects exactly `expected` back: no more after a pause.
  static void ExpectExactly(int fd, const std::string& pipeline, const std::string& expected) {
    Send(fd, pipeline);
    std::string got = Receive(fd, expected.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    char buf[4096];
    const ssize_t more = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (more > 0) got.append(buf, static_cast<size_t>(more));
    EXPECT_EQ(got, expected);
  }

  static std::string Command(std::initializer_list<std::string> args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return out;
  }

  // `clients` connections each send a pipeline of `per_client` SETs of keys "<prefix><c>:<i>";
  // every reply must be +OK, in order.
  void SetFromClients(const std::string& prefix, int clients, int per_client) {
    std::vector<int> fds;
    for (int c = 0; c < clients; ++c) fds.push_back(Connect());
    for (int c = 0; c < clients; ++c) {
      std::string pipeline;
      for (int i = 0; i < per_client; ++i)
        pipeline += Command({"SET", prefix + std::to_string(c) + ":" + std::to_string(i), "v"});
      Send(fds[c], pipeline);
    }
    std::string ok;
    for (int i = 0; i < per_client; ++i) ok += "+OK\r\n";
    for (int c = 0; c < clients; ++c) EXPECT_EQ(Receive(fds[c], ok.size()), ok) << "client " << c;
    for (int fd : fds) ::close(fd);
  }

  TempDir dir_;
  Instance db_;
  ListenerStats stats_;
  std::unique_ptr<Server> server_;
  std::thread loop_;
  std::atomic<bool> stop_{false};
};

TEST_F(ServerTest, PipelinedWritesAreAnsweredInOrderAndDurable) {
  const int fd = Connect();
  std::string pipeline;
  std::string expect;
  for (int i = 0; i < 200; ++i) {
    pipeline += Command({"SET", "k" + std::to_string(i), "v" + std::to_string(i)});
    pipeline += Command({"GET", "k" + std::to_string(i)});
    const std::string v = "v" + std::to_string(i);
    expect += "+OK\r\n$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
  }
  Send(fd, pipeline);
  EXPECT_EQ(Receive(fd, expect.size()), expect);
  ::close(fd);
  // Every acknowledged write is durable: it is in the log up to the durable position.
  std::string v;
  ASSERT_TRUE(db_->Flush().ok());
  uint32_t ks = 0;
  ASSERT_TRUE(db_->FindKeyspace("@resp", &ks).ok());
  ASSERT_TRUE(db_->Get(ks, "k199", &v).ok());
  EXPECT_EQ(v, EncodeValue(ValueType::kString, "v199"));
}

// Syncing on the loop's thread (a host whose log must be flushed first, from that thread): many
// clients' pipelines are answered in order, each reply only once its write is durable.
class InlineSyncTest : public ServerTest {
 protected:
  void Configure(ListenerConfig* config) override { config->sync_on_loop_thread = true; }
};

TEST_F(InlineSyncTest, ClientsPipelinesAreAnsweredOnceDurable) {
  SetFromClients("c", 8, 300);
  const uint64_t durable = db_->SyncedLsn();
  EXPECT_GT(durable, 0u);
  // Everything acknowledged is durable without a further sync.
  uint32_t ks = 0;
  ASSERT_TRUE(db_->FindKeyspace("@resp", &ks).ok());
  std::string v;
  ReadInfo info;
  ASSERT_TRUE(db_->Get(ks, "c7:299", &v, &info).ok());
  EXPECT_EQ(db_->SyncedLsn(), durable);
}

// The host log outlives the engine that calls it: a base constructed before ServerTest.
struct WithHostLog {
  test::CountingHostLog host_;
};

// Write-out (the host keeps its log for the engine): a reply waits for the host's flush only,
// and the engine's files are synced behind, off the loop's thread.
class WriteOutTest : protected WithHostLog, public ServerTest {
 protected:
  WriteOutTest() : ServerTest(size_t{8} << 20, &host_) {}
  void Configure(ListenerConfig* config) override { config->sync_on_loop_thread = true; }
  void Prepare(Server* server) override { server->SetWriteOut(true); }
};

TEST_F(WriteOutTest, RepliesWaitForTheHostsFlushAndTheFilesAreSyncedBehind) {
  constexpr int kClients = 4;
  constexpr int kPerClient = 200;
  SetFromClients("w", kClients, kPerClient);
  // Every acknowledged write is in the host's flushed log, a round's SETs in one batch.
  EXPECT_GE(host_.appended.load(), 1u);
  EXPECT_LT(host_.appended.load(), uint64_t{kClients * kPerClient});
  EXPECT_EQ(host_.flushed.load(), host_.appended.load());
  // The engine catches up on its own: nothing stays pending.
  bool pending = true;
  for (int i = 0; i < 1000 && pending; ++i) {
    pending = db_->Retention().pending;
    if (pending) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_FALSE(pending) << "the engine's files are synced behind the write-outs";
  EXPECT_EQ(db_->Retention().durable_host, host_.appended.load());
}

// A pipeline's plain SETs are one batch until another command needs to see them: the GETs
// read what the SETs before them wrote, and each run of SETs is one logged batch.
TEST_F(WriteOutTest, APipelinesSetsAreOneBatchAndLaterCommandsSeeThem) {
  const int fd = Connect();
  Send(fd, Command({"SET", "warm", "up"}));  // creates the default keyspace
  ASSERT_EQ(Receive(fd, 5), "+OK\r\n");
  const uint64_t before = host_.appended.load();
  Send(fd, Command({"SET", "p1", "a"}) + Command({"SET", "p2", "b"}) +
               Command({"MSET", "p3", "c", "p1", "d"}) + Command({"GET", "p1"}) +
               Command({"SET", "p1", "e"}) + Command({"GET", "p1"}) + Command({"GET", "p2"}));
  const std::string expect = "+OK\r\n+OK\r\n+OK\r\n$1\r\nd\r\n+OK\r\n$1\r\ne\r\n$1\r\nb\r\n";
  EXPECT_EQ(Receive(fd, expect.size()), expect);
  EXPECT_EQ(host_.appended.load() - before, 2u) << "SET SET MSET | GET | SET | GET GET";
  ::close(fd);
}

// A stand-in for the host's write-out helper process: a thread that writes the log out when
// asked and signals its eventfd. `available` false: it refuses requests (not running); `paused`:
// it takes requests and does not act on them (it went away after accepting); `hold_signal`: it
// writes out, then waits before signalling (a slow helper).
class ThreadedWriteOut : public RemoteWriteOut {
 public:
  explicit ThreadedWriteOut(Engine* engine) : engine_(engine) {
    fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    thread_ = std::thread([this] { Run(); });
  }
  ~ThreadedWriteOut() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
    ::close(fd_);
  }
  bool Request(uint64_t wake_at, uint64_t lsn) override {
    if (!available.load()) return false;
    EXPECT_LE(wake_at, lsn);
    EXPECT_GE(wake_at, last_wake_at.load()) << "the position to wake at went down";
    {
      std::lock_guard<std::mutex> lock(mu_);
      asked_ = std::max(asked_, lsn);
      last_wake_at = wake_at;
      last_asked = lsn;
      ++requests;
    }
    wake_.notify_one();
    return true;
  }
  int event_fd() const override { return fd_; }

  std::atomic<bool> available{true};
  std::atomic<bool> paused{false};
  std::atomic<bool> hold_signal{false};
  std::atomic<uint64_t> last_wake_at{0};
  std::atomic<uint64_t> last_asked{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> write_outs{0};

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    uint64_t done = 0;
    for (;;) {
      wake_.wait_for(lock, std::chrono::milliseconds(5),
                     [&] { return stop_ || (asked_ > done && !paused.load()); });
      if (stop_) return;
      if (asked_ <= done || paused.load()) continue;
      const uint64_t target = asked_;
      lock.unlock();
      ASSERT_TRUE(engine_->WriteOut(target).ok());
      ++write_outs;
      while (hold_signal.load() && !stop_requested())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const uint64_t one = 1;
      ASSERT_EQ(::write(fd_, &one, sizeof one), static_cast<ssize_t>(sizeof one));
      lock.lock();
      done = target;
    }
  }

  bool stop_requested() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

  Engine* engine_;
  int fd_ = -1;
  std::mutex mu_;
  std::condition_variable wake_;
  uint64_t asked_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

// Write-out left to a helper: the loop asks, serves on, and answers once the helper wrote out.
class RemoteWriteOutTest : public WriteOutTest {
 protected:
  void Prepare(Server* server) override {
    WriteOutTest::Prepare(server);
    remote_ = std::make_unique<ThreadedWriteOut>(&db_.engine());
    server->SetRemoteWriteOut(remote_.get());
  }
  void TearDown() override {
    ServerTest::TearDown();
    remote_.reset();
  }
  std::unique_ptr<ThreadedWriteOut> remote_;
};

TEST_F(RemoteWriteOutTest, TheHelperWritesOutAndRepliesFollow) {
  SetFromClients("r", 4, 200);
  EXPECT_GT(remote_->requests.load(), 0u);
  EXPECT_GT(remote_->write_outs.load(), 0u);
  EXPECT_EQ(host_.flushed.load(), host_.appended.load());
}

TEST_F(RemoteWriteOutTest, WithoutTheHelperTheLoopWritesOutItself) {
  remote_->available.store(false);
  SetFromClients("n", 4, 200);
  EXPECT_EQ(remote_->requests.load(), 0u);
  EXPECT_EQ(remote_->write_outs.load(), 0u);
  EXPECT_EQ(host_.flushed.load(), host_.appended.load());
}

// The helper wrote a first SET out and is slow to say so; a second SET is asked for meanwhile.
// The first reply goes as soon as the loop finds it written out, not once the second is too:
// held together, the clients of a -P 1 benchmark moved as one convoy.
TEST_F(RemoteWriteOutTest, RepliesGoOnceWrittenOutThoughMoreWasAskedSince) {
  remote_->hold_signal.store(true);
  const int first = Connect();
  Send(first, Command({"SET", "first", "1"}));
  // Spinning, so the second SET follows at once (the loop's 10 ms recheck in between would let
  // the first reply go without the second having been asked for).
  WaitUntil([&] { return remote_->write_outs.load() != 0; }, /*spin=*/true);
  ASSERT_EQ(remote_->write_outs.load(), 1u);
  const int second = Connect();
  Send(second, Command({"SET", "second", "2"}));
  EXPECT_EQ(Receive(first, 5), "+OK\r\n") << "the first reply waited for the second write-out";
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  char byte;
  EXPECT_EQ(::recv(second, &byte, 1, MSG_DONTWAIT), -1) << "no reply before its write-out";
  remote_->hold_signal.store(false);
  EXPECT_EQ(Receive(second, 5), "+OK\r\n");
  EXPECT_EQ(host_.flushed.load(), host_.appended.load());
  ::close(first);
  ::close(second);
}

// As above, while another client keeps the loop busy with reads: its waits never time out, and
// the helper's absence is still noticed by the clock.
TEST_F(RemoteWriteOutTest, AHelperThatWentAwayIsNoticedWhileReadsKeepTheLoopBusy) {
  remote_->paused.store(true);
  const int writer = Connect();
  Send(writer, Command({"SET", "gone", "1"}));
  WaitUntil([&] { return remote_->requests.load() != 0; });
  ASSERT_GT(remote_->requests.load(), 0u);
  remote_->available.store(false);
  const int reader = Connect();
  std::string reply;
  int pings = 0;
  for (const auto until = Clock::now() + 3s; reply.empty() && Clock::now() < until; ++pings) {
    Send(reader, Command({"PING"}));
    ASSERT_EQ(Receive(reader, 7), "+PONG\r\n");
    char buf[16];
    const ssize_t n = ::recv(writer, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) reply.assign(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(reply, "+OK\r\n") << "still held after " << pings << " pings";
  EXPECT_EQ(remote_->write_outs.load(), 0u);
  ::close(writer);
  ::close(reader);
}

// The loop asks the helper to wake it for its oldest held reply, not for the last write asked.
TEST_F(RemoteWriteOutTest, TheHelperWakesTheLoopForItsOldestHeldReply) {
  remote_->paused.store(true);  // takes the requests, writes nothing out yet
  const int first = Connect();
  Send(first, Command({"SET", "first", "1"}));
  WaitUntil([&] { return remote_->requests.load() != 0; });
  const uint64_t first_lsn = remote_->last_asked.load();
  ASSERT_GT(first_lsn, 0u);
  EXPECT_EQ(remote_->last_wake_at.load(), first_lsn);
  const int second = Connect();
  Send(second, Command({"SET", "second", "2"}));
  WaitUntil([&] { return remote_->last_asked.load() != first_lsn; });
  EXPECT_GT(remote_->last_asked.load(), first_lsn);
  EXPECT_EQ(remote_->last_wake_at.load(), first_lsn) << "asked to wake at the second write";
  remote_->paused.store(false);
  EXPECT_EQ(Receive(first, 5), "+OK\r\n");
  EXPECT_EQ(Receive(second, 5), "+OK\r\n");
  ::close(first);
  ::close(second);
}

// A write whose reply CLIENT REPLY dropped is still waited for: a later reply of the client
// (the +OK of CLIENT REPLY ON, a loader's barrier) does not go before it is durable.
TEST_F(RemoteWriteOutTest, RepliesAfterDroppedOnesWaitForTheirWrites) {
  remote_->paused.store(true);  // takes the requests, writes nothing out yet
  const int fd = Connect();
  Send(fd, Command({"CLIENT", "REPLY", "OFF"}) + Command({"SET", "k", "v"}));
  WaitUntil([&] { return remote_->requests.load() != 0; });
  ASSERT_GT(remote_->requests.load(), 0u) << "the dropped SET's write-out was never asked for";
  Send(fd, Command({"CLIENT", "REPLY", "ON"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  char byte;
  EXPECT_EQ(::recv(fd, &byte, 1, MSG_DONTWAIT), -1) << "+OK went before the SET was durable";
  remote_->paused.store(false);
  EXPECT_EQ(Receive(fd, 5), "+OK\r\n");
  EXPECT_EQ(host_.flushed.load(), host_.appended.load());
  ::close(fd);
}

TEST_F(RemoteWriteOutTest, AHelperThatWentAwayAfterAcceptingIsWorkedAround) {
  remote_->paused.store(true);  // accepts, never acts
  const int fd = Connect();
  Send(fd, Command({"SET", "gone", "1"}));
  // Held: the helper has it and does nothing.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GT(remote_->requests.load(), 0u);
  char byte;
  EXPECT_EQ(::recv(fd, &byte, 1, MSG_DONTWAIT), -1) << "no reply before the write-out";
  // It goes away; the loop's recheck writes out itself.
  remote_->available.store(false);
  EXPECT_EQ(Receive(fd, 5), "+OK\r\n");
  EXPECT_EQ(remote_->write_outs.load(), 0u);
  EXPECT_EQ(host_.flushed.load(), host_.appended.load());
  ::close(fd);
}

// One bulk string reply (INFO's, in RESP2), without its framing.
std::string ReceiveBulk(int fd) {
  std::string got;
  char byte;
  while (got.size() < 2 || got.compare(got.size() - 2, 2, "\r\n") != 0) {
    if (::read(fd, &byte, 1) != 1) return got;
    got.push_back(byte);
  }
  EXPECT_EQ(got[0], '$') << got;
  const size_t length = std::stoul(got.substr(1));
  std::string body;
  body.resize(length + 2);
  for (size_t at = 0; at < body.size();) {
    const ssize_t n = ::read(fd, body.data() + at, body.size() - at);
    if (n <= 0) return body;
    at += static_cast<size_t>(n);
  }
  body.resize(length);
  return body;
}

// The value of `name:` in an INFO text ("" when absent).
std::string InfoField(const std::string& info, const std::string& name) {
  const size_t at = info.find("\r\n" + name + ":");
  if (at == std::string::npos) return "";
  const size_t start = at + name.size() + 3;
  return info.substr(start, info.find("\r\n", start) - start);
}

TEST_F(ServerTest, InfoCountsTheBytesOfEveryClientAndTheWorkersCpu) {
  const int fd = Connect();
  const std::string ping = Command({"PING"});
  Send(fd, ping);
  ASSERT_EQ(Receive(fd, 7), "+PONG\r\n");
  const std::string info_request = Command({"INFO", "stats", "server", "cpu"});
  Send(fd, info_request);
  const std::string info = ReceiveBulk(fd);
  // Counted before the reply to the INFO itself was written.
  EXPECT_EQ(InfoField(info, "total_net_input_bytes"),
            std::to_string(ping.size() + info_request.size()));
  EXPECT_EQ(InfoField(info, "total_net_output_bytes"), "7");
  EXPECT_EQ(InfoField(info, "run_id"), std::string(stats_.run_id));
  EXPECT_EQ(InfoField(info, "multiplexing_api"), "epoll");
  EXPECT_EQ(InfoField(info, "evicted_keys"), "0");
  EXPECT_FALSE(InfoField(info, "instantaneous_ops_per_sec").empty()) << info;
  EXPECT_FALSE(InfoField(info, "instantaneous_input_kbps").empty()) << info;
  const std::string user = InfoField(info, "used_cpu_user");
  ASSERT_FALSE(user.empty()) << info;
  EXPECT_EQ(user.size() - user.find('.'), 7u) << "six decimals, as Redis prints them: " << user;
  // The loop publishes this process's CPU time: 300 ms more of it shows within its 100 ms.
  auto process_cpu = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  auto info_cpu = [&] {
    Send(fd, Command({"INFO", "cpu"}));
    const std::string text = ReceiveBulk(fd);
    return std::stod(InfoField(text, "used_cpu_user")) + std::stod(InfoField(text, "used_cpu_sys"));
  };
  const double before = process_cpu();
  for (const double until = before + 0.3; process_cpu() < until;) {
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  const double published = info_cpu();
  EXPECT_GE(published, before + 0.2) << "not this process's CPU time, or not published";
  EXPECT_LE(published, process_cpu());
  // A worker started again in the same slot retires what the last one published: the sum does
  // not go down (here the same process goes on, so it counts twice).
  { Server restarted(&db_.engine(), ListenerConfig{}, &stats_); }
  EXPECT_GE(info_cpu(), published);
  // CONFIG RESETSTAT starts the byte counts over: its own +OK went out after it.
  Send(fd, Command({"CONFIG", "RESETSTAT"}));
  ASSERT_EQ(Receive(fd, 5), "+OK\r\n");
  Send(fd, info_request);
  const std::string after = ReceiveBulk(fd);
  EXPECT_EQ(InfoField(after, "total_net_output_bytes"), "5");
  EXPECT_EQ(InfoField(after, "total_net_input_bytes"), std::to_string(info_request.size()));
  ::close(fd);
}

TEST_F(ServerTest, ClientReplyOffAndSkipDropRepliesTheCommandsStillRun) {
  const int fd = Connect();
  // OFF: nothing until ON, errors included; ON is answered.
  ExpectExactly(fd,
                Command({"CLIENT", "REPLY", "OFF"}) + Command({"SET", "a", "1"}) +
                    Command({"GET", "a"}) + Command({"NOSUCH"}) +
                    Command({"CLIENT", "REPLY", "ON"}) + Command({"GET", "a"}),
                "+OK\r\n$1\r\n1\r\n");
  // SKIP: itself and the next command unanswered, then replies again.
  ExpectExactly(
      fd, Command({"CLIENT", "REPLY", "SKIP"}) + Command({"SET", "b", "2"}) + Command({"GET", "b"}),
      "$1\r\n2\r\n");
  // Among gathered writes (the skipped INCR is gathered too, its reply into a scratch buffer).
  ExpectExactly(fd,
                Command({"INCR", "n"}) + Command({"CLIENT", "REPLY", "SKIP"}) +
                    Command({"INCR", "n"}) + Command({"INCR", "n"}) + Command({"INCR", "n"}),
                ":1\r\n:3\r\n:4\r\n");
  // An empty command (*0, a blank inline line) is the command a SKIP drops, as in Redis.
  ExpectExactly(fd, Command({"CLIENT", "REPLY", "SKIP"}) + "*0\r\n" + Command({"PING"}),
                "+PONG\r\n");
  ExpectExactly(fd, Command({"CLIENT", "REPLY", "SKIP"}) + "\r\n" + Command({"PING"}), "+PONG\r\n");
  // SKIP while OFF changes nothing; RESET turns replies back on and is answered.
  ExpectExactly(fd,
                Command({"CLIENT", "REPLY", "OFF"}) + Command({"CLIENT", "REPLY", "SKIP"}) +
                    Command({"PING"}) + Command({"RESET"}) + Command({"PING"}),
                "+RESET\r\n+PONG\r\n");
  ExpectExactly(fd, Command({"CLIENT", "REPLY", "MAYBE"}), "-ERR syntax error\r\n");
  // Under OFF, QUIT closes the connection though its +OK is dropped.
  const int quitter = Connect();
  Send(quitter, Command({"CLIENT", "REPLY", "OFF"}) + Command({"QUIT"}));
  char byte;
  EXPECT_EQ(::read(quitter, &byte, 1), 0) << "still open";
  ::close(quitter);
  // A protocol error is not sent either (Redis drops it too), but it closes the connection and
  // counts in errorstats.
  const uint64_t errors = CommandStats::ErrorReplies(stats_.commands);
  const int garbled = Connect();
  Send(garbled, Command({"CLIENT", "REPLY", "OFF"}) + "*1\r\n$x\r\n");
  EXPECT_EQ(::read(garbled, &byte, 1), 0) << "still open, or a reply was sent";
  ::close(garbled);
  EXPECT_EQ(CommandStats::ErrorReplies(stats_.commands), errors + 1);
  // Inside EXEC it is refused: the array's length is already out.
  ExpectExactly(fd,
                Command({"MULTI"}) + Command({"CLIENT", "REPLY", "OFF"}) + Command({"GET", "a"}) +
                    Command({"EXEC"}) + Command({"PING"}),
                "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR CLIENT REPLY is not allowed inside a "
                "transaction\r\n$1\r\n1\r\n+PONG\r\n");
  ::close(fd);
}

// WAIT with no replica to acknowledge: the client waits out its timeout (with none, until it
// leaves), then hears 0, and the commands it pipelined behind WAIT run after it; other clients
// are served meanwhile.
TEST_F(ServerTest, WaitParksItsClientOnlyUntilItsTimeout) {
  const int forever = Connect();
  Send(forever, Command({"SET", "w", "1"}) + Command({"WAIT", "1", "0"}) + Command({"GET", "w"}));
  EXPECT_EQ(Receive(forever, 5), "+OK\r\n");
  const int other = Connect();
  Send(other, Command({"PING"}));
  EXPECT_EQ(Receive(other, 7), "+PONG\r\n");
  char byte;
  EXPECT_EQ(::recv(forever, &byte, 1, MSG_DONTWAIT), -1) << "WAIT 1 0 replied";
  ::close(forever);  // the server forgets it
  const auto sent = std::chrono::steady_clock::now();
  Send(other, Command({"WAIT", "1", "300"}) + Command({"GET", "w"}));
  EXPECT_EQ(Receive(other, 11), ":0\r\n$1\r\n1\r\n");
  EXPECT_GE(std::chrono::steady_clock::now() - sent, std::chrono::milliseconds(300))
      << "WAIT replied before its timeout";
  ExpectExactly(other, Command({"PING"}), "+PONG\r\n");
  ::close(other);
}

// CLIENT PAUSE WRITE holds a client at its first write, with what it pipelined behind it, until
// CLIENT UNPAUSE; INFO counts it as blocked, and a client that leaves while held is forgotten.
TEST_F(ServerTest, ClientPauseHoldsAPipelineFromItsFirstWriteUntilUnpaused) {
  const int admin = Connect();
  const int writer = Connect();
  ExpectExactly(admin, Command({"CLIENT", "PAUSE", "60000", "WRITE"}), "+OK\r\n");
  Send(writer, Command({"GET", "p"}) + Command({"SET", "p", "1"}) + Command({"GET", "p"}));
  EXPECT_EQ(Receive(writer, 5), "$-1\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  char byte;
  EXPECT_EQ(::recv(writer, &byte, 1, MSG_DONTWAIT), -1) << "the SET ran while paused";
  EXPECT_EQ(stats_.blocked_clients.load(), 1);
  ExpectExactly(admin, Command({"GET", "p"}), "$-1\r\n");
  ExpectExactly(admin, Command({"CLIENT", "UNPAUSE"}), "+OK\r\n");
  EXPECT_EQ(Receive(writer, 12), "+OK\r\n$1\r\n1\r\n");
  EXPECT_EQ(stats_.blocked_clients.load(), 0);
  ExpectExactly(admin, Command({"CLIENT", "PAUSE", "60000", "WRITE"}), "+OK\r\n");
  Send(writer, Command({"SET", "p", "2"}));
  for (int i = 0; i < 500 && stats_.blocked_clients.load() != 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(stats_.blocked_clients.load(), 1) << "the SET was not held";
  ::close(writer);
  for (int i = 0; i < 500 && stats_.blocked_clients.load() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(stats_.blocked_clients.load(), 0) << "a client that left is still counted";
  ExpectExactly(admin, Command({"CLIENT", "UNPAUSE"}), "+OK\r\n");
  ExpectExactly(admin, Command({"GET", "p"}), "$1\r\n1\r\n");
  ::close(admin);
}

class IdleTimeoutServerTest : public ServerTest {
 protected:
  void Configure(ListenerConfig* config) override { config->timeout_s = 3; }
};

// As Redis: the idle timeout closes idle clients, not one waiting for its command's reply.
TEST_F(IdleTimeoutServerTest, ClosesIdleClientsButNotAWaitingOne) {
  const int idle = Connect();
  const int waiting = Connect();
  ExpectExactly(idle, Command({"PING"}), "+PONG\r\n");
  Send(waiting, Command({"WAIT", "1", "5000"}));
  EXPECT_EQ(Receive(waiting, 4), ":0\r\n");
  char byte;
  EXPECT_EQ(::read(idle, &byte, 1), 0) << "the idle client was not closed";
  // Its idle time starts from its reply, not from the WAIT it sent 5 s before: a sweep (every
  // second) within the next 1.5 s would have closed it.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ExpectExactly(waiting, Command({"PING"}), "+PONG\r\n");
  ::close(idle);
  ::close(waiting);
}

// Replicas that acknowledge what the test says, from the test's thread.
class CountedReplicas : public ReplicaAcks {
 public:
  uint64_t Position() override { return 7; }
  int Acknowledged(uint64_t position) override {
    asked_at.store(position);
    return acked.load();
  }
  std::atomic<int> acked{0};
  std::atomic<uint64_t> asked_at{0};
};

class WaitServerTest : public ServerTest {
 protected:
  void Prepare(Server* server) override { server->SetReplicaAcks(&replicas_); }
  CountedReplicas replicas_;
};

// The loop counts a parked WAIT's replicas itself and replies once enough acknowledged.
TEST_F(WaitServerTest, AParkedWaitRepliesOnceTheReplicasAcknowledge) {
  const int fd = Connect();
  Send(fd, Command({"WAIT", "2", "0"}) + Command({"PING"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  char byte;
  EXPECT_EQ(::recv(fd, &byte, 1, MSG_DONTWAIT), -1) << "replied before the replicas did";
  replicas_.acked = 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(::recv(fd, &byte, 1, MSG_DONTWAIT), -1) << "replied with one of two";
  replicas_.acked = 2;
  EXPECT_EQ(Receive(fd, 11), ":2\r\n+PONG\r\n");
  EXPECT_EQ(replicas_.asked_at.load(), 7u);
  ::close(fd);
}

TEST_F(ServerTest, AHalfClosedClientGetsItsPipelineAppliedAndAnswered) {
  const int fd = Connect();
  Send(fd, Command({"SET", "a", "1"}) + Command({"INCR", "a"}) + Command({"GET", "a"}));
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  const std::string expect = "+OK\r\n:2\r\n$1\r\n2\r\n";
  EXPECT_EQ(Receive(fd, expect.size() + 1), expect);  // then EOF: the server closed
  ::close(fd);
  const int other = Connect();
  Send(other, Command({"GET", "a"}));
  EXPECT_EQ(Receive(other, 7), "$1\r\n2\r\n");
  ::close(other);
}

// A client that kills itself gets the replies of what it sent before the kill, and nothing
// after it runs, as in Redis (the SET after the kill used to be applied, and the replies before
// it lost). Read until the server closes.
TEST_F(ServerTest, AClientThatKillsItselfIsAnsweredUpToTheKillAndRunsNothingAfter) {
  const int fd = Connect();
  Send(fd, Command({"CLIENT", "ID"}));
  const std::string id_reply = Receive(fd, 4);
  ASSERT_EQ(id_reply.substr(0, 1), ":");
  const std::string id = id_reply.substr(1, id_reply.find('\r') - 1);
  Send(fd, Command({"SET", "before", "1"}) + Command({"CLIENT", "KILL", "ID", id, "SKIPME", "no"}) +
               Command({"SET", "after", "1"}));
  EXPECT_EQ(Receive(fd, SIZE_MAX), "+OK\r\n:1\r\n");
  ::close(fd);
  const int other = Connect();
  Send(other, Command({"EXISTS", "before"}) + Command({"EXISTS", "after"}));
  EXPECT_EQ(Receive(other, 8), ":1\r\n:0\r\n");
  ::close(other);
}

class PasswordServerTest : public ServerTest {
  void Configure(ListenerConfig* config) override { config->password = "secret"; }
};

// Before AUTH a client may not make the server wait for or buffer large requests: Redis's
// unauthenticated limits (more than 10 arguments, or a bulk over 16 KB) close the connection.
TEST_F(PasswordServerTest, AnUnauthenticatedClientMaySendOnlySmallRequests) {
  int fd = Connect();
  Send(fd, "*11\r\n");
  EXPECT_EQ(Receive(fd, SIZE_MAX), "-ERR Protocol error: unauthenticated multibulk length\r\n");
  ::close(fd);
  fd = Connect();
  Send(fd, "*1\r\n$16385\r\n");
  EXPECT_EQ(Receive(fd, SIZE_MAX), "-ERR Protocol error: unauthenticated bulk length\r\n");
  ::close(fd);
  // Within them it is told to authenticate (after the arity check, as in Redis); once it has,
  // the limits are the usual ones.
  fd = Connect();
  Send(fd, Command({"GET"}));
  EXPECT_EQ(Receive(fd, 49), "-ERR wrong number of arguments for 'get' command\r\n");
  const std::string big(20000, 'x');
  Send(fd, Command({"GET", "k"}) + Command({"AUTH", "secret"}) + Command({"SET", "k", big}) +
               Command({"STRLEN", "k"}));
  EXPECT_EQ(Receive(fd, 50), "-NOAUTH Authentication required.\r\n+OK\r\n+OK\r\n:20000\r\n");
  ::close(fd);
}

class ServerPrefetchTest : public ServerTest {
 protected:
  ServerPrefetchTest() : ServerTest(size_t{1} << 20) {}
};

TEST_F(ServerPrefetchTest, ARoundOfColdReadsIsFetchedInOneBatch) {
  const int fd = Connect();
  // 4 MiB of values through a 1 MiB cache: the first ones are cold afterwards.
  const std::string value(4000, 'x');
  std::string load;
  for (int i = 0; i < 1000; ++i) load += Command({"SET", "k" + std::to_string(i), value});
  Send(fd, load);
  std::string ok;
  for (int i = 0; i < 1000; ++i) ok += "+OK\r\n";
  const std::string got = Receive(fd, ok.size());
  ASSERT_EQ(got.size(), ok.size());
  ASSERT_EQ(got, ok);
  uint32_t ks = 0;
  ASSERT_TRUE(db_->FindKeyspace("@resp", &ks).ok());
  KeyspaceStats before;
  ASSERT_TRUE(db_->GetKeyspaceStats(ks, &before).ok());

  std::string reads;
  std::string expect;
  for (int i = 0; i < 32; ++i) {
    reads += Command({"GET", "k" + std::to_string(i)});
    expect += "$4000\r\n" + value + "\r\n";
  }
  Send(fd, reads);
  EXPECT_EQ(Receive(fd, expect.size()), expect);
  KeyspaceStats after;
  ASSERT_TRUE(db_->GetKeyspaceStats(ks, &after).ok());
  // Each cold value was read from the device once, by the prefetch: the GETs themselves hit.
  EXPECT_EQ(after.device_reads - before.device_reads, 32u);
  EXPECT_EQ(after.cache_misses - before.cache_misses, 0u);
  EXPECT_EQ(after.cache_hits - before.cache_hits, 32u);
  ::close(fd);
}

// Out of descriptors, the loop refuses the clients it cannot hold, as over maxclients, instead
// of leaving them in the backlog and waking on the listening socket again and again.
TEST_F(ServerTest, ClientsBeyondTheDescriptorLimitAreRefusedAndTheRestServed) {
  std::vector<int> clients;
  for (int i = 0; i < 16; ++i) clients.push_back(::socket(AF_INET, SOCK_STREAM, 0));
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int lowest_free = ::dup(0);
  ::close(lowest_free);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(lowest_free + 4);  // room for four accepted clients
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->bound_port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int fd : clients) {
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  int served = 0, refused = 0;
  for (int fd : clients) {
    Send(fd, Command({"PING"}));
    const std::string got = Receive(fd, 7);
    if (got == "+PONG\r\n") ++served;
    if (got.rfind("-ERR max number of clients reached\r\n", 0) == 0) ++refused;
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_GT(served, 0);
  EXPECT_GT(refused, 0);
  EXPECT_EQ(served + refused, 16) << "every client got an answer";
  // Each refused client counted once: the loop did not spin on the listening socket.
  EXPECT_EQ(stats_.rejected_connections.load(), static_cast<uint64_t>(refused));
  for (int fd : clients) ::close(fd);
  // Descriptors are back: a new client is served.
  const int again = Connect();
  Send(again, Command({"PING"}));
  EXPECT_EQ(Receive(again, 7), "+PONG\r\n");
  ::close(again);
}

std::string Invalidate(const std::string& key) {
  return ">2\r\n$10\r\ninvalidate\r\n*1\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
}

TEST_F(ServerTest, ATrackingClientHearsOfAChangeBeforeItsNextReply) {
  const int tracking = Connect();
  const int writer = Connect();
  Send(tracking, Command({"HELLO", "3"}));
  ASSERT_FALSE(Receive(tracking, 1).empty());
  Send(tracking, Command({"CLIENT", "TRACKING", "on"}) + Command({"GET", "k"}));
  EXPECT_EQ(Receive(tracking, 8), "+OK\r\n_\r\n");
  // A write by another process (an SQL backend, say) was acknowledged: whatever the tracking
  // client sends next is answered after the invalidation, never before it.
  uint32_t ks = 0;
  ASSERT_TRUE(db_->FindKeyspace("@resp", &ks).ok());
  WriteBatch put;  // in the log, not yet durable: the GET below follows within microseconds
  ASSERT_TRUE(put.Put(ks, "k", EncodeValue(ValueType::kString, "v")).ok());
  WriteResult written;
  ASSERT_TRUE(db_->WriteDeferred(put, &written).ok());
  Send(tracking, Command({"GET", "k"}));
  const std::string expect = Invalidate("k") + "$1\r\nv\r\n";
  EXPECT_EQ(Receive(tracking, expect.size()), expect);
  // An idle client is told too, without sending anything.
  Send(writer, Command({"DEL", "k"}));
  EXPECT_EQ(Receive(writer, 4), ":1\r\n");
  EXPECT_EQ(Receive(tracking, Invalidate("k").size()), Invalidate("k"));
  ::close(tracking);
  ::close(writer);
  for (int i = 0; i < 200 && stats_.tracking_clients.load() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(stats_.tracking_clients.load(), 0u) << "a closed connection stops tracking";
}

TEST_F(ServerTest, NoLoopLeavesOutTheClientsOwnWrites) {
  const int fd = Connect();
  Send(fd, Command({"HELLO", "3"}));
  ASSERT_FALSE(Receive(fd, 1).empty());
  Send(fd, Command({"CLIENT", "TRACKING", "on", "NOLOOP"}) + Command({"GET", "a"}) +
               Command({"GET", "b"}));
  EXPECT_EQ(Receive(fd, 11), "+OK\r\n_\r\n_\r\n");
  Send(fd, Command({"SET", "a", "1"}));
  EXPECT_EQ(Receive(fd, 5), "+OK\r\n");
  const int other = Connect();
  Send(other, Command({"SET", "b", "1"}));
  EXPECT_EQ(Receive(other, 5), "+OK\r\n");
  // Only b: a was this client's own write.
  Send(fd, Command({"PING"}));
  const std::string expect = Invalidate("b") + "+PONG\r\n";
  EXPECT_EQ(Receive(fd, expect.size()), expect);
  ::close(fd);
  ::close(other);
}

TEST_F(ServerTest, ARedirectedRESP2ClientGetsInvalidationsOnTheChannel) {
  const int target = Connect();
  Send(target, Command({"CLIENT", "ID"}));
  const std::string id_reply = Receive(target, 4);
  ASSERT_EQ(id_reply.substr(0, 1), ":");
  const std::string id = id_reply.substr(1, id_reply.size() - 3);
  Send(target, Command({"SUBSCRIBE", "__redis__:invalidate"}));
  const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n";
  EXPECT_EQ(Receive(target, subscribed.size()), subscribed);
  const int tracking = Connect();
  Send(tracking, Command({"CLIENT", "TRACKING", "on", "REDIRECT", id}) + Command({"GET", "x"}));
  EXPECT_EQ(Receive(tracking, 10), "+OK\r\n$-1\r\n");
  Send(tracking, Command({"SET", "x", "1"}));
  EXPECT_EQ(Receive(tracking, 5), "+OK\r\n");
  const std::string message =
      "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nx\r\n";
  EXPECT_EQ(Receive(target, message.size()), message);
  // The target goes away: a RESP2 tracking client cannot be told, but TRACKINGINFO shows it.
  Send(tracking, Command({"CLIENT", "KILL", "ID", id}));
  EXPECT_EQ(Receive(tracking, 4), ":1\r\n");
  Send(tracking, Command({"GET", "x"}));
  EXPECT_EQ(Receive(tracking, 7), "$1\r\n1\r\n");
  Send(tracking, Command({"SET", "x", "2"}));
  EXPECT_EQ(Receive(tracking, 5), "+OK\r\n");
  Send(tracking, Command({"CLIENT", "TRACKINGINFO"}));
  const std::string info =
      "*6\r\n$5\r\nflags\r\n*2\r\n$2\r\non\r\n$15\r\nbroken_redirect\r\n"
      "$8\r\nredirect\r\n:" +
      id + "\r\n$8\r\nprefixes\r\n*0\r\n";
  EXPECT_EQ(Receive(tracking, info.size()), info);
  ::close(target);
  ::close(tracking);
}

// A client that pipelines big replies and never reads them: unsent output piles up in the worker.
class ServerOutputLimitTest : public ServerTest {
 protected:
  void Configure(ListenerConfig* config) override {
    std::string error;
    ASSERT_TRUE(ParseOutputBufferLimits(limits_, &config->output_limits, &error)) << error;
  }

  int ConnectNotReading() { return Connect(4096); }

  // 200 PINGs with a 64 KB argument: 12.5 MiB of replies.
  static std::string BigPings() {
    std::string pings;
    const std::string arg(64 * 1024, 'p');
    for (int i = 0; i < 200; ++i) pings += Command({"PING", arg});
    return pings;
  }

  // Sends what it can: the server may close the connection before it has read everything.
  static void SendUntilClosed(int fd, const std::string& bytes) {
    for (size_t sent = 0; sent < bytes.size();) {
      const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  bool WaitForDisconnections(uint64_t n) {
    for (int i = 0; i < 1000 && stats_.output_limit_disconnections.load() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return stats_.output_limit_disconnections.load() >= n;
  }

  // Reads whatever the server sent, until it closed the connection (true) or went quiet.
  static bool ClosedByServer(int fd) {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) continue;
      return n == 0 || errno == ECONNRESET;
    }
  }

  void ExpectOthersServed() {
    const int other = Connect();
    Send(other, Command({"PING"}));
    EXPECT_EQ(Receive(other, 7), "+PONG\r\n");
    ::close(other);
  }

  std::string limits_;
};

class NormalHardLimitTest : public ServerOutputLimitTest {
 protected:
  NormalHardLimitTest() { limits_ = "normal 1mb 0 0"; }
};

TEST_F(NormalHardLimitTest, AClientOverTheHardLimitIsDisconnectedAndOthersServed) {
  const int fd = ConnectNotReading();
  SendUntilClosed(fd, BigPings());
  ASSERT_TRUE(WaitForDisconnections(1));
  EXPECT_TRUE(ClosedByServer(fd));
  ::close(fd);
  EXPECT_EQ(stats_.output_limit_disconnections.load(), 1u);
  ExpectOthersServed();
}

class NormalSoftLimitTest : public ServerOutputLimitTest {
 protected:
  NormalSoftLimitTest() { limits_ = "normal 0 1mb 1"; }
};

TEST_F(NormalSoftLimitTest, AClientStayingOverTheSoftLimitIsDisconnectedAfterItsSeconds) {
  const int fd = ConnectNotReading();
  const auto start = std::chrono::steady_clock::now();
  SendUntilClosed(fd, BigPings());
  ASSERT_TRUE(WaitForDisconnections(1));
  // Never before its second has passed (a lower bound: it cannot be early on a slow machine).
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_TRUE(ClosedByServer(fd));
  ::close(fd);
  ExpectOthersServed();
}

TEST_F(ServerTest, AClientPausedForNotReadingGetsEveryReplyOnceItReads) {
  const int fd = Connect();
  const std::string value(1000 * 1000, 'b');
  Send(fd, Command({"SET", "big", value}));
  ASSERT_EQ(Receive(fd, 5), "+OK\r\n");
  std::string gets;
  for (int i = 0; i < 150; ++i) gets += Command({"GET", "big"});
  Send(fd, gets);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // paused past 64 MiB meanwhile
  const std::string reply = "$1000000\r\n" + value + "\r\n";
  size_t whole = 0;
  std::string got;
  char buf[1 << 16];
  while (whole < 150) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    ASSERT_GT(n, 0) << "after " << whole << " replies";
    got.append(buf, static_cast<size_t>(n));
    while (got.size() >= reply.size()) {
      ASSERT_EQ(got.compare(0, reply.size(), reply), 0);
      got.erase(0, reply.size());
      ++whole;
    }
  }
  EXPECT_TRUE(got.empty());
  ::close(fd);
}

class LongSoftLimitTest : public ServerOutputLimitTest {
 protected:
  LongSoftLimitTest() { limits_ = "normal 0 1mb 30"; }
};

TEST_F(LongSoftLimitTest, AClientThatCatchesUpInTimeStays) {
  const int fd = ConnectNotReading();
  const std::string pings = BigPings();
  Send(fd, pings);
  // Reads everything back: under the soft limit again long before its 30 seconds are up.
  std::string expect;
  const std::string arg(64 * 1024, 'p');
  for (int i = 0; i < 200; ++i) expect += "$65536\r\n" + arg + "\r\n";
  EXPECT_EQ(Receive(fd, expect.size()), expect);
  Send(fd, Command({"PING"}));
  EXPECT_EQ(Receive(fd, 7), "+PONG\r\n");
  ::close(fd);
  EXPECT_EQ(stats_.output_limit_disconnections.load(), 0u);
}

class PubsubLimitTest : public ServerOutputLimitTest {
 protected:
  PubsubLimitTest() { limits_ = "normal 0 0 0 pubsub 1mb 0 0"; }
};

TEST_F(PubsubLimitTest, TheSubscriberLimitAppliesToSubscribersOnly) {
  // A normal client sending the same is only paused, never disconnected.
  const int normal = ConnectNotReading();
  Send(normal, BigPings());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(stats_.output_limit_disconnections.load(), 0u);

  const int subscriber = ConnectNotReading();
  const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n";
  Send(subscriber, Command({"SUBSCRIBE", "__redis__:invalidate"}));
  ASSERT_EQ(Receive(subscriber, subscribed.size()), subscribed);
  SendUntilClosed(subscriber, BigPings());
  ASSERT_TRUE(WaitForDisconnections(1));
  EXPECT_TRUE(ClosedByServer(subscriber));
  ::close(subscriber);
  EXPECT_EQ(stats_.output_limit_disconnections.load(), 1u);

  // The paused normal client still gets every reply once it reads.
  const std::string arg(64 * 1024, 'p');
  std::string expect;
  for (int i = 0; i < 200; ++i) expect += "$65536\r\n" + arg + "\r\n";
  EXPECT_EQ(Receive(normal, expect.size()), expect);
  ::close(normal);
}

}  // namespace
}  // namespace eloqkv::resp
