// The event loop over real sockets and a real engine: replies wait for the sync that covers
// them, a client's half-close still gets its pipeline answered and applied, and a round's cold
// reads are prefetched in one batch.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
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

class ServerTest : public ::testing::Test {
 protected:
  explicit ServerTest(size_t cache_memory = size_t{8} << 20)
      : db_(Options(dir_.path(), cache_memory)) {}

  static eloqkv::Options Options(const std::string& dir, size_t cache_memory) {
    eloqkv::Options o = TestOptions(dir);
    o.cache_memory = cache_memory;
    return o;
  }

  void SetUp() override {
    ListenerConfig config;
    config.port = 0;
    server_ = std::make_unique<Server>(&db_.engine(), config, &stats_);
    ASSERT_TRUE(server_->Listen().ok());
    loop_ = std::thread([this] {
      while (!stop_.load()) ASSERT_TRUE(server_->Poll(20).ok());
    });
  }

  void TearDown() override {
    stop_.store(true);
    if (loop_.joinable()) loop_.join();
    server_.reset();
  }

  int Connect() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
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

  static std::string Command(std::initializer_list<std::string> args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return out;
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

}  // namespace
}  // namespace eloqkv::resp
