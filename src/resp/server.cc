#include "resp/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>

namespace eloqkv::resp {

namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxReadsPerEvent = 16;          // then let other clients run
constexpr size_t kOutputPauseBytes = 64u << 20;   // stop reading a client that does not read
constexpr size_t kCompactThreshold = 256 * 1024;  // move unparsed input to the front past this
constexpr size_t kKeptBufferBytes = 64 * 1024;    // an empty buffer keeps at most this much
constexpr int kMaxPeekedCommands = 1024;          // per client and round, for prefetching
constexpr int kMaxPrefetchBackoff = 64;           // rounds skipped after a prefetch not worth it
constexpr size_t kPrefetchWorthwhile = 64;        // a prefetch is, when 1 in this many keys missed
// While any client tracks keys, the loop wakes at least this often to hand out invalidations
// of changes made elsewhere (another worker, an SQL backend) to idle clients.
constexpr int kTrackingPollMs = 5;
// How often a write-out left to the remote helper is checked on without an event from it.
constexpr int kRemoteRecheckMs = 10;
constexpr std::string_view kInvalidateChannel = "__redis__:invalidate";
constexpr char kMaxClientsReply[] = "-ERR max number of clients reached\r\n";

// Empties a connection buffer. One that a big pipeline or reply grew gives its memory back, so
// that thousands of idle connections cost what idle connections should (as Redis shrinks its
// query buffers); small ones keep theirs for the next request.
void ReleaseBuffer(std::string* buffer) {
  if (buffer->capacity() > kKeptBufferBytes) {
    std::string().swap(*buffer);
  } else {
    buffer->clear();
  }
}

std::string AddressText(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  return "?";
}

std::vector<std::string> SplitAddresses(const std::string& list) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : list + ",") {
    if (ch == ',' || ch == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(ch);
    }
  }
  return out;
}

}  // namespace

struct Server::Connection {
  Connection(uint64_t id, int fd, std::string peer, std::string local, const ParserLimits& limits)
      : fd(fd), session(id, std::move(peer), std::move(local), fd), parser(limits) {}
  int fd;
  Session session;
  RequestParser parser;
  std::string in;
  size_t in_start = 0;
  std::string out;
  size_t out_sent = 0;
  size_t out_ready = 0;  // replies before this offset are acknowledged (synced): sendable
  // Replies written but held until the log is durable up to `lsn`, oldest first; `out_end`
  // is where each one ends in `out`.
  struct Held {
    uint64_t lsn;
    size_t out_end;
  };
  std::deque<Held> held;
  bool want_write = false;
  bool reading_paused = false;
  bool closing = false;
  bool input_closed = false;        // the client shut its side: answer what it sent, then close
  bool in_round = false;            // on round_
  uint64_t round_lsn = 0;           // what this round's replies wait for, until they are held
  bool parked = false;              // on parked_
  bool delayed = false;             // on delayed_
  int64_t soft_limit_since_ms = 0;  // unsent output above the soft limit since then
  // Process stopped with commands left because too much output was unsent: it runs them once
  // the client has read enough, whether or not reading was paused meanwhile.
  bool output_backlogged = false;

  uint64_t unsent() const { return out.size() - out_sent; }
};

Server::Server(Engine* engine, const ListenerConfig& config, ListenerStats* stats, RowCodec* codec,
               PasswordVerifier* verifier, SharedClientTable* shared_clients,
               RedirectMailbox* mailbox, CacheFiller* filler)
    : config_(config),
      stats_(stats),
      clients_(shared_clients),
      dispatcher_(engine, config, stats, &clients_, codec, verifier, filler),
      engine_(engine),
      sync_(engine),
      events_(256),
      peek_parser_(config.limits),
      mailbox_(mailbox),
      cpu_slot_(config.worker_index >= 0 && config.worker_index < ListenerStats::kMaxWorkers
                    ? config.worker_index
                    : -1) {
  stats_->started_at_ms.store(NowMillis());
  // A restarted worker's process starts its CPU time over: what the one before it published
  // moves to the retired sums.
  if (cpu_slot_ >= 0) {
    stats_->retired_cpu_user_us.fetch_add(stats_->worker_cpu_user_us[cpu_slot_].exchange(0));
    stats_->retired_cpu_sys_us.fetch_add(stats_->worker_cpu_sys_us[cpu_slot_].exchange(0));
  }
  if (mailbox_ != nullptr) mailbox_position_ = mailbox_->Position();
}

std::vector<std::pair<LogLevel, std::string>> Server::TakeLog() {
  std::vector<std::pair<LogLevel, std::string>> out;
  out.swap(log_);
  return out;
}

Server::~Server() {
  for (auto& [fd, c] : connections_) {
    dispatcher_.Forget(c->session);
    clients_.Remove(&c->session);
    ::close(fd);
    stats_->connected_clients.fetch_sub(1, std::memory_order_relaxed);
    if (c->parked) stats_->blocked_clients.fetch_sub(1, std::memory_order_relaxed);
  }
  for (int fd : listen_fds_) ::close(fd);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

void Server::SetRemoteWriteOut(RemoteWriteOut* remote) {
  remote_ = remote;
  sync_.set_remote(remote);
  if (remote_ != nullptr && epoll_fd_ >= 0) WatchRemote();
}

void Server::WatchRemote() {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = remote_->event_fd();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, remote_->event_fd(), &ev);
}

void Server::UpdateConfig(const ListenerConfig& config) {
  config_ = config;
  dispatcher_.set_config(config);
}

Status Server::Listen() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Status::FromErrno(errno, "epoll_create1", "");
  Status s = sync_.Start(config_.sync_on_loop_thread);
  if (!s.ok()) return s;
  epoll_event sync_ev{};
  sync_ev.events = EPOLLIN;
  sync_ev.data.fd = sync_.event_fd();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, sync_.event_fd(), &sync_ev);
  if (remote_ != nullptr) WatchRemote();
  std::vector<std::string> hosts = SplitAddresses(config_.bind);
  if (hosts.empty()) return Status::InvalidArgument("no listen address is configured");
  int port = config_.port;
  for (const std::string& host : hosts) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    const int rc =
        ::getaddrinfo(host == "*" ? nullptr : host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0)
      return Status::InvalidArgument("cannot resolve listen address \"" + host +
                                     "\": " + ::gai_strerror(rc));
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
      if (ai->ai_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 511) != 0) {
        const int err = errno;
        ::close(fd);
        ::freeaddrinfo(res);
        return Status::FromErrno(err, "listen on", host + ":" + std::to_string(port));
      }
      if (port == 0) {  // let every later address share the port the kernel picked
        sockaddr_storage ss{};
        socklen_t len = sizeof(ss);
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
        port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                        : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
      listen_fds_.push_back(fd);
    }
    ::freeaddrinfo(res);
  }
  if (listen_fds_.empty()) return Status::InvalidArgument("no listen address could be bound");
  bound_port_ = port;
  RaiseDescriptorLimit();
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return Status::OK();
}

// Each client needs a descriptor; Redis raises the soft limit the same way at startup.
void Server::RaiseDescriptorLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t want = static_cast<rlim_t>(config_.maxclients) + kReservedDescriptors;
  if (rl.rlim_cur < want) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur < want) {
    log_.emplace_back(
        LogLevel::kWarning,
        "the open file limit (" + std::to_string(rl.rlim_cur) +
            ") allows each listener worker about " +
            std::to_string(rl.rlim_cur > kReservedDescriptors ? rl.rlim_cur - kReservedDescriptors
                                                              : 0) +
            " clients, fewer than eloqkv.resp_maxclients (" + std::to_string(config_.maxclients) +
            "); clients over it are refused. Raise the limit (ulimit -n) of the "
            "server to serve more.");
  }
}

// Out of descriptors: the pending connection would stay in the backlog and keep the listening
// socket readable, so epoll would wake the loop at once, again and again. The spare descriptor
// makes room to accept it, refuse it as Redis refuses a client over maxclients, and close it.
bool Server::RefuseForLackOfDescriptors(int listen_fd, int err) {
  const int64_t now = NowMillis();
  if (now - last_emfile_log_ms_ >= 10000) {
    last_emfile_log_ms_ = now;
    log_.emplace_back(LogLevel::kWarning,
                      std::string("out of file descriptors (") + std::strerror(err) +
                          "): refusing new clients; raise the open file limit (ulimit -n)");
  }
  if (spare_fd_ >= 0) {
    ::close(spare_fd_);
    spare_fd_ = -1;
  }
  // (accept fails with EMFILE before it looks at the queue: this one also tells whether any
  // connection is waiting at all.)
  const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) {
    (void)!::write(fd, kMaxClientsReply, sizeof(kMaxClientsReply) - 1);
    ::close(fd);
    stats_->rejected_connections.fetch_add(1, std::memory_order_relaxed);
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0 && spare_fd_ >= 0;
}

void Server::Accept(int listen_fd) {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno == EMFILE || errno == ENFILE) {
        // Refuse the waiting clients one by one; none left (or no descriptor to do it): done.
        if (!RefuseForLackOfDescriptors(listen_fd, errno)) return;
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
        log_.emplace_back(LogLevel::kWarning,
                          std::string("accept failed: ") + std::strerror(errno));
      return;
    }
    stats_->connections_received.fetch_add(1, std::memory_order_relaxed);
    if (stats_->connected_clients.load(std::memory_order_relaxed) >= config_.maxclients) {
      (void)!::write(fd, kMaxClientsReply, sizeof(kMaxClientsReply) - 1);
      ::close(fd);
      stats_->rejected_connections.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_storage local{};
    socklen_t llen = sizeof(local);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen);
    const uint64_t id = stats_->next_client_id.fetch_add(1, std::memory_order_relaxed);
    auto conn =
        std::make_unique<Connection>(id, fd, AddressText(peer), AddressText(local), config_.limits);
    conn->session.created_ms = conn->session.last_active_ms = NowMillis();
    conn->session.authenticated = config_.password.empty();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      continue;
    }
    stats_->connected_clients.fetch_add(1, std::memory_order_relaxed);
    clients_.Add(&conn->session);
    connections_[fd] = std::move(conn);
  }
}

void Server::ReadInput(Connection* c) {
  // Into a scratch buffer, then appended: growing c->in by a whole chunk first would zero-fill
  // it on every read (a 64 KiB memset per small request).
  if (!read_buffer_) read_buffer_.reset(new char[kReadChunk]);
  for (size_t reads = 0; reads < kMaxReadsPerEvent && !c->reading_paused && !c->input_closed;
       ++reads) {
    const ssize_t n = ::read(c->fd, read_buffer_.get(), kReadChunk);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      c->input_closed = true;  // EOF or a reset
      break;
    }
    c->in.append(read_buffer_.get(), static_cast<size_t>(n));
    stats_->net_input_bytes.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    c->session.last_active_ms = CoarseNowMillis();
    if (static_cast<size_t>(n) < kReadChunk) break;
  }
  ScheduleRound(c);
}

// Runs what the clients of this round sent. Their commands are looked over first, and the keys
// they name looked up together: one command after another, each lookup would wait for its own
// cache misses (index bucket, entry, cached value); together they overlap. The values they will
// read that are not cached come from the device in one batch. That costs a lookup per key, worth
// it only when misses are not rare (a miss read alone stalls the loop for a device read, ~100
// lookups' time): after a round where fewer than 1 in kPrefetchWorthwhile keys read missed, the
// next rounds skip the device reads, twice as many each time up to kMaxPrefetchBackoff.
void Server::RunRound() {
  const bool device_reads = prefetch_skip_ == 0;
  if (!device_reads) --prefetch_skip_;
  for (Connection* c : round_) {
    if (!c->closing) PeekCommands(c);
  }
  size_t looked_up = 0;
  const size_t read = dispatcher_.RunPrefetch(device_reads, &looked_up);
  // A round where nothing read a key says nothing either way: a read burst after writes is
  // still prefetched.
  if (device_reads && looked_up > 0 && read > 0 && read * kPrefetchWorthwhile >= looked_up) {
    prefetch_backoff_ = 0;
  } else if (device_reads && looked_up > 0) {
    prefetch_backoff_ = std::min(std::max(1, prefetch_backoff_ * 2), kMaxPrefetchBackoff);
    prefetch_skip_ = prefetch_backoff_;
  }
  std::vector<Connection*> round;
  round.swap(round_);
  for (Connection* c : round) {
    c->in_round = false;
    if (c->closing) continue;
    Process(c);
    c->round_lsn = dispatcher_.TakePendingLsn();
  }
  // The round's plain SETs were gathered into one batch; applied, their clients' replies wait
  // for it too.
  dispatcher_.FlushWrites();
  ReleaseBuffer(&dropped_replies_);
  for (Connection* c : round) {
    const uint64_t lsn = std::max(c->round_lsn, std::exchange(c->session.coalesced_lsn, 0));
    c->round_lsn = 0;
    if (c->closing) continue;
    HoldReplies(c, lsn);
    if (c->input_closed && !c->closing) {
      if (c->held.empty() && c->out_sent == c->out.size()) {
        c->closing = true;
        closing_.push_back(c);
      } else {
        c->session.close_after_reply = true;  // Flush closes once the replies are out
      }
    }
  }
}

void Server::PeekCommands(Connection* c) {
  size_t pos = c->in_start;
  for (int n = 0; n < kMaxPeekedCommands && pos < c->in.size(); ++n) {
    size_t used = 0;
    if (peek_parser_.Parse(c->in.data() + pos, c->in.size() - pos, &used) != ParseStatus::kCommand)
      break;
    if (!peek_parser_.args().empty()) dispatcher_.NotePrefetch(c->session, peek_parser_.args());
    pos += used;
  }
  peek_parser_.Reset();
}

// The replies Process just wrote may acknowledge writes (or reads of writes) that are not durable
// yet: they wait for the sync thread, behind any earlier held replies of the same client, while
// the loop serves everyone else. Replies that depend on nothing go out at once.
void Server::HoldReplies(Connection* c, uint64_t lsn) {
  const size_t end = c->out.size();
  const size_t held_end = c->held.empty() ? c->out_ready : c->held.back().out_end;
  // Another worker's sync (or a policy that does not sync) may already cover it.
  if (lsn > synced_) synced_ = std::max(synced_, engine_->SyncedLsn());
  if (end == held_end && lsn <= synced_) {
    // Nothing new to send. A reply dropped by CLIENT REPLY may have asked to close.
    if (c->session.close_after_reply) Flush(c);
    return;
  }
  // With nothing new (its replies dropped by CLIENT REPLY), the round's writes are still held
  // for, as an empty reply: no later reply of this client goes before they are durable.
  if (c->held.empty() && lsn <= synced_) {
    c->out_ready = end;
    Flush(c);
    return;
  }
  if (!c->held.empty()) lsn = std::max(lsn, c->held.back().lsn);
  if (c->held.empty()) waiting_.push_back(c);
  c->held.push_back({lsn, end});
  sync_.Request(lsn);
}

// The sync thread moved: release what it covered. After a failed sync nothing held is ever
// acknowledged; those clients are disconnected, as their writes may not be durable.
void Server::ReleaseHeld(bool delay) {
  if (delay && config_.debug_sync_delay_ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(config_.debug_sync_delay_ms));
  sync_.Drain();
  synced_ = std::max(synced_, sync_.synced());
  std::string failure;
  const bool failed = sync_.failed(&failure);
  std::vector<Connection*> still;
  for (Connection* c : waiting_) {
    if (c->closing) continue;
    while (!c->held.empty() && c->held.front().lsn <= synced_) {
      c->out_ready = c->held.front().out_end;
      c->held.pop_front();
    }
    if (failed && !c->held.empty()) {
      c->out.resize(c->out_ready);
      c->held.clear();
      c->closing = true;
      closing_.push_back(c);
      continue;
    }
    Flush(c);
    if (!c->held.empty() && !c->closing) still.push_back(c);
  }
  waiting_.swap(still);
  if (failed && !sync_failure_logged_) {
    sync_failure_logged_ = true;
    log_.emplace_back(LogLevel::kWarning,
                      "sync failed; clients waiting for it were disconnected: " + failure);
  }
}

void Server::Process(Connection* c) {
  ReplyWriter reply(&c->out, c->session.protocol);
  // A client killed meanwhile (by itself or by another client of this worker) runs nothing more.
  while (!c->closing && !c->session.killed && !c->session.close_after_reply &&
         !c->session.park.parked && !Delayed(c) && c->in_start < c->in.size()) {
    size_t consumed = 0;
    c->parser.set_authenticated(c->session.authenticated);
    const ParseStatus st =
        c->parser.Parse(c->in.data() + c->in_start, c->in.size() - c->in_start, &consumed);
    if (st == ParseStatus::kNeedMore) break;
    if (st == ParseStatus::kError) {
      // Counted, and under CLIENT REPLY OFF or SKIP not sent, as in Redis; it closes the
      // connection either way.
      ReplyWriter dropped(&dropped_replies_, c->session.protocol);
      ReplyWriter& to = c->session.replies.off || c->session.replies.skip_this ? dropped : reply;
      const size_t mark = to.size();
      to.Error(c->parser.error());
      dispatcher_.command_stats().CountError(to.From(mark));
      c->session.close_after_reply = true;
      break;
    }
    const auto args = c->parser.args();
    if (!args.empty()) {
      // CLIENT REPLY OFF/SKIP: the reply goes to a scratch buffer, emptied once the round's
      // gathered writes are applied (a gathered reply may be rewritten in place until then).
      ReplyWriter dropped(&dropped_replies_, c->session.protocol);
      const bool drop = c->session.DropsReplyTo(args);
      dispatcher_.Execute(c->session, args, drop ? dropped : reply);
      reply.set_protocol(c->session.protocol);
      if (c->session.park.parked) {
        // The command runs again once its fill lands: its bytes stay unconsumed.
        bool read_again = false;
        for (const auto& [keyspace, key] : c->session.park.keys)
          read_again |= dispatcher_.tracker().AddWaiter(c->session.id(), keyspace, key);
        if (!c->parked) {
          c->parked = true;
          ++c->session.parks;
          parked_.push_back(c);
          stats_->blocked_clients.fetch_add(1, std::memory_order_relaxed);
        }
        if (read_again) RunAgain(c);  // the fill may have landed before the feed was read
        break;
      }
      if (c->parked) {  // it waited, and has its reply now
        c->parked = false;
        parked_.erase(std::find(parked_.begin(), parked_.end(), c));
        stats_->blocked_clients.fetch_sub(1, std::memory_order_relaxed);
        c->session.last_active_ms = CoarseNowMillis();  // its wait was not idleness
        dispatcher_.tracker().RemoveWaiter(c->session.id());
      }
    }
    // Every command ends a SKIP, an empty one (*0, or a blank inline line) too, as in Redis.
    c->session.EndReplySkip();
    c->in_start += consumed;
    if (EnforceOutputLimit(c)) break;
    if (c->unsent() > kOutputPauseBytes) {  // let the client read first
      c->output_backlogged = true;
      break;
    }
  }
  c->session.input_bytes = c->in.size() - c->in_start;
  c->session.output_bytes = c->unsent();
  clients_.Publish(c->session);
  if (c->in_start == c->in.size()) {
    ReleaseBuffer(&c->in);
    c->in_start = 0;
  } else if (c->in_start > kCompactThreshold) {
    c->in.erase(0, c->in_start);
    c->in_start = 0;
  }
}

void Server::Flush(Connection* c) {
  if (c->closing) return;  // what it did not send is dropped with it
  if (Delayed(c)) return;  // a failed AUTH: nothing goes out before its time (Poll resumes it)
  while (c->out_sent < c->out_ready) {
    const ssize_t n = ::write(c->fd, c->out.data() + c->out_sent, c->out_ready - c->out_sent);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (!c->closing) {
        c->closing = true;
        closing_.push_back(c);
      }
      return;
    }
    c->out_sent += static_cast<size_t>(n);
    stats_->net_output_bytes.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    c->session.last_active_ms = CoarseNowMillis();  // as Redis: a reply is an interaction
  }
  CompactOutput(c);
  if (c->out_sent == c->out.size()) {
    ReleaseBuffer(&c->out);
    c->out_sent = 0;
    c->out_ready = 0;
    if (c->session.close_after_reply && !c->closing) {
      c->closing = true;
      closing_.push_back(c);
      return;
    }
  }
  UpdateInterest(c);
}

// Drops sent bytes from the front of the output once they are at least half of it, so a client
// that keeps reading while replies keep coming costs its unsent bytes, not everything sent to it
// (each byte moves at most once on average).
void Server::CompactOutput(Connection* c) {
  const size_t sent = c->out_sent;
  if (sent < kCompactThreshold || sent == c->out.size() || sent * 2 < c->out.size()) return;
  c->out.erase(0, sent);
  c->out_sent = 0;
  c->out_ready -= sent;
  for (Connection::Held& h : c->held) h.out_end -= sent;
}

void Server::UpdateInterest(Connection* c) {
  const bool pending = c->out_sent < c->out_ready;
  const bool pause = pending && c->unsent() > kOutputPauseBytes;
  // The commands left behind run in the next round (not from here: Flush may be running on
  // behalf of the round itself).
  if (!pause && c->output_backlogged) {
    c->output_backlogged = false;
    ScheduleRound(c);
  }
  // A client to be closed once answered (QUIT, a protocol error, a self-kill) is not read from:
  // whatever it still sends would only pile up unread while it does not take its replies.
  const bool stop_reading = pause || c->session.close_after_reply;
  if (pending == c->want_write && stop_reading == c->reading_paused) return;
  c->want_write = pending;
  c->reading_paused = stop_reading;
  epoll_event ev{};
  ev.events = (stop_reading ? 0u : EPOLLIN) | (pending ? EPOLLOUT : 0u);
  ev.data.fd = c->fd;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
}

// As Redis: a client over its class's output buffer limit is disconnected and its unsent
// replies dropped. Logged at most every 10 s, with the count of the others.
bool Server::EnforceOutputLimit(Connection* c) {
  const ClientClass cls =
      c->session.subscribed_invalidate ? ClientClass::kPubsub : ClientClass::kNormal;
  const OutputLimit& limit = config_.output_limits.For(cls);
  if (limit.hard_bytes == 0 && limit.soft_bytes == 0) return false;
  const int64_t now = NowMillis();
  if (!OverOutputLimit(limit, c->unsent(), now, &c->soft_limit_since_ms)) return false;
  stats_->output_limit_disconnections.fetch_add(1, std::memory_order_relaxed);
  ++output_limit_unlogged_;
  if (now - last_output_limit_log_ms_ >= 10000) {
    last_output_limit_log_ms_ = now;
    std::string more;
    if (output_limit_unlogged_ > 1)
      more = " (and " + std::to_string(output_limit_unlogged_ - 1) + " more since the last report)";
    log_.emplace_back(
        LogLevel::kWarning,
        "client id=" + std::to_string(c->session.id()) + " addr=" + c->session.peer() +
            " closed for overcoming of output buffer limits: " + std::to_string(c->unsent()) +
            " bytes unsent; limits for " + (cls == ClientClass::kPubsub ? "pubsub" : "normal") +
            " clients: hard " + std::to_string(limit.hard_bytes) + ", soft " +
            std::to_string(limit.soft_bytes) + " for " + std::to_string(limit.soft_seconds) +
            " s (eloqkv.resp_client_output_buffer_limit)" + more);
    output_limit_unlogged_ = 0;
  }
  c->closing = true;
  closing_.push_back(c);
  return true;
}

void Server::CloseConnection(Connection* c) {
  const int fd = c->fd;
  // ReleaseHeld drops closing clients from waiting_ while they still hold replies: a client
  // with held replies may or may not be on it.
  auto forget = [c](std::vector<Connection*>* list) {
    auto it = std::find(list->begin(), list->end(), c);
    if (it != list->end()) list->erase(it);
  };
  if (!c->held.empty()) forget(&waiting_);
  if (c->in_round) forget(&round_);
  if (c->parked) {
    forget(&parked_);
    stats_->blocked_clients.fetch_sub(1, std::memory_order_relaxed);
  }
  if (c->delayed) forget(&delayed_);
  dispatcher_.Forget(c->session);
  clients_.Remove(&c->session);
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  stats_->connected_clients.fetch_sub(1, std::memory_order_relaxed);
  connections_.erase(fd);
}

// Killed and idle clients go; runs after every batch of events.
void Server::Sweep() {
  const int64_t now = NowMillis();
  const bool check_idle = config_.timeout_s > 0 && now - last_sweep_ms_ >= 1000;
  if (check_idle) last_sweep_ms_ = now;
  for (auto& [fd, conn] : connections_) {
    Connection* c = conn.get();
    if (c->closing) continue;
    // As Redis: a client waiting on a command (WAIT, a pause) is not idle.
    const bool idle = check_idle && now - c->session.last_active_ms > config_.timeout_s * 1000LL &&
                      !c->session.in_multi && !c->parked;
    if (c->session.killed || clients_.KillRequested(c->session) || idle) {
      c->closing = true;
      closing_.push_back(c);
      continue;
    }
    if (c->soft_limit_since_ms != 0) (void)EnforceOutputLimit(c);  // the soft limit's clock
  }
  for (Connection* c : closing_) CloseConnection(c);
  closing_.clear();
}

Status Server::Poll(int timeout_ms) {
  if (stats_->tracking_clients.load(std::memory_order_relaxed) > 0 || !parked_.empty())
    timeout_ms = std::min(timeout_ms, kTrackingPollMs);
  if (!round_.empty()) timeout_ms = 0;  // resumed commands are waiting to run
  if (!delayed_.empty()) timeout_ms = std::min(timeout_ms, kTrackingPollMs);
  // A write-out asked of the remote helper is checked on now and then too: if the helper went
  // away, the next check writes out here instead. By the clock, not only when the wait times
  // out: clients that only read keep the loop from ever timing out.
  const bool remote_pending = sync_.remote_pending();
  if (remote_pending) timeout_ms = std::min(timeout_ms, kRemoteRecheckMs);
  const int n =
      ::epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
  if (n < 0 && errno != EINTR) return Status::FromErrno(errno, "epoll_wait", "");
  if (remote_pending) {
    const int64_t now = CoarseNowMillis();
    if (n == 0 || now - remote_checked_ms_ >= kRemoteRecheckMs) {
      remote_checked_ms_ = now;
      ReleaseHeld(false);
    }
  }
  for (int i = 0; i < n; ++i) {
    const int fd = events_[i].data.fd;
    if (fd == sync_.event_fd()) {
      // Read here whatever Drain's flag says: a Signal's count can land after a Drain read
      // nothing and cleared the flag, and left unread it would wake every wait from then on.
      ConsumeEvent(fd);
      ReleaseHeld();
      continue;
    }
    if (remote_ != nullptr && fd == remote_->event_fd()) {
      ConsumeEvent(fd);
      ReleaseHeld(false);
      continue;
    }
    if (std::find(listen_fds_.begin(), listen_fds_.end(), fd) != listen_fds_.end()) {
      Accept(fd);
      continue;
    }
    auto it = connections_.find(fd);
    if (it == connections_.end()) continue;
    Connection* c = it->second.get();
    if (c->closing) continue;
    const uint32_t ev = events_[i].events;
    if ((ev & (EPOLLERR | EPOLLHUP)) != 0 && (ev & EPOLLIN) == 0) {
      c->closing = true;
      closing_.push_back(c);
      continue;
    }
    if (ev & EPOLLOUT) Flush(c);
    if (!c->closing && (ev & EPOLLIN)) ReadInput(c);
  }
  // After the input was read, before it runs: a command sent after a write was acknowledged
  // finds that write's invalidation ahead of its reply.
  DeliverInvalidations();
  ResumeDelayed();
  RunRound();
  // The round's held replies: their write-out is asked for (or they go) before the next wait.
  if (sync_.drain_due()) ReleaseHeld();
  Sweep();
  // By a monotonic clock: a wall clock stepped back would stop the samples for as long.
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  if (dispatcher_.rates().MaybeSample(*stats_, now_ms)) PublishCpuTime();
  return Status::OK();
}

void Server::PublishCpuTime() {
  rusage usage{};
  if (cpu_slot_ < 0 || ::getrusage(RUSAGE_SELF, &usage) != 0) return;
  auto micros = [](const timeval& t) {
    return static_cast<uint64_t>(t.tv_sec) * 1'000'000 + static_cast<uint64_t>(t.tv_usec);
  };
  stats_->worker_cpu_user_us[cpu_slot_].store(micros(usage.ru_utime), std::memory_order_relaxed);
  stats_->worker_cpu_sys_us[cpu_slot_].store(micros(usage.ru_stime), std::memory_order_relaxed);
}

void Server::DeliverInvalidations() {
  Tracker& tracker = dispatcher_.tracker();
  if (tracker.active()) {
    collected_.invalidations.clear();
    collected_.woken.clear();
    tracker.Collect(NowMillis(), dispatcher_.default_keyspace(), &collected_);
    if (collected_.flush_all) {
      clients_.ForEach([&](Session& s) {
        if (s.tracking.on) SendInvalidation(s, nullptr);
      });
    }
    for (const Tracker::Invalidation& i : collected_.invalidations) {
      Session* s = clients_.Find(i.client);
      if (s == nullptr || !s->tracking.on) continue;  // gone, or stopped tracking since
      if (s->tracking.noloop && i.origin == s->id()) continue;
      SendInvalidation(*s, &i.key);
    }
    if (collected_.flush_all || !collected_.invalidations.empty())
      dispatcher_.PublishTrackingStats();
    for (uint64_t id : collected_.woken) {
      if (Session* s = clients_.Find(id); s != nullptr) {
        auto it = connections_.find(s->fd());
        if (it != connections_.end()) RunAgain(it->second.get());
      }
    }
  }
  // Cache reads whose fill did not come in time run once more, to report it; the others ask
  // for their fill again now and then (Park::kAskAgainMs).
  const int64_t now = parked_.empty() ? 0 : NowMillis();
  ReplicaAcks* replicas = dispatcher_.replica_acks();
  for (Connection* c : parked_) {
    Session::Park& wait = c->session.park;
    // Another worker's CLIENT UNBLOCK: as this worker's own, it is due now.
    if (wait.parked && !wait.postponed && wait.unblocked == 0)
      wait.unblocked = clients_.TakeUnblock(c->session);
    const bool due = wait.unblocked != 0 || now >= wait.deadline_ms;
    if (!wait.parked || (!due && now < wait.ask_again_ms)) continue;
    // A postponed command runs again only once the pause lets it (or to be held again, when
    // another pause took over from the one that held it).
    if (wait.postponed) {
      int64_t end_ms = 0;
      if (stats_->client_pause.Holds([&] { return wait.postponed_writes; }, &end_ms)) {
        wait.deadline_ms = end_ms;
        wait.ask_again_ms = now + Session::Park::kRecountMs;
        continue;
      }
      RunAgain(c);
      continue;
    }
    // A WAIT runs again only to reply: its count is checked here, cheaply, until it suffices.
    if (wait.replicas_wanted > 0 && !due &&
        (replicas == nullptr ||
         replicas->Acknowledged(wait.replicas_position) < wait.replicas_wanted)) {
      wait.ask_again_ms = now + Session::Park::kRecountMs;
      continue;
    }
    dispatcher_.tracker().RemoveWaiter(c->session.id());
    RunAgain(c);
    if (now >= wait.deadline_ms) wait.expired = true;
  }
  if (mailbox_ == nullptr) return;
  messages_.clear();
  if (!mailbox_->Read(&mailbox_position_, &messages_)) {
    // Messages were lost: whoever may have been sent one drops everything.
    clients_.ForEach([&](Session& s) {
      if (s.subscribed_invalidate || s.protocol == 3) WriteInvalidation(s, nullptr, true);
    });
    return;
  }
  for (const RedirectMailbox::Message& m : messages_) {
    if (Session* target = clients_.Find(m.target); target != nullptr)
      WriteInvalidation(*target, m.everything ? nullptr : &m.key, true);
  }
}

void Server::SendInvalidation(Session& tracking, const std::string* key) {
  const uint64_t redirect = tracking.tracking.redirect;
  if (redirect == 0) {
    WriteInvalidation(tracking, key, false);
    return;
  }
  if (Session* target = clients_.Find(redirect); target != nullptr) {
    WriteInvalidation(*target, key, true);
    return;
  }
  if (mailbox_ != nullptr && clients_.Exists(redirect)) {  // served by another worker
    mailbox_->Post(redirect, key);
    return;
  }
  // The client it redirects to is gone: tell the tracking client, if it can hear it.
  tracking.tracking.broken_redirect = true;
  if (tracking.protocol == 3) {
    std::string push;
    ReplyWriter w(&push, 3);
    w.PushHeader(2);
    w.Bulk("tracking-redir-broken");
    w.Integer(static_cast<int64_t>(redirect));
    WritePush(tracking, push);
  }
}

void Server::WriteInvalidation(Session& target, const std::string* key, bool redirected) {
  std::string push;
  ReplyWriter w(&push, target.protocol);
  if (target.protocol == 3) {
    w.PushHeader(2);
    w.Bulk("invalidate");
  } else if (redirected && target.subscribed_invalidate) {
    w.ArrayHeader(3);
    w.Bulk("message");
    w.Bulk(kInvalidateChannel);
  } else {
    return;  // RESP2 without a subscribed redirect has no way to receive it (as in Redis)
  }
  if (key != nullptr) {
    w.ArrayHeader(1);
    w.Bulk(*key);
  } else {
    w.Null();
  }
  WritePush(target, push);
}

bool Server::Delayed(Connection* c) {
  if (c->session.reply_not_before_ms == 0) return false;
  if (NowMillis() >= c->session.reply_not_before_ms) {
    c->session.reply_not_before_ms = 0;
    return false;
  }
  if (!c->delayed) {
    c->delayed = true;
    delayed_.push_back(c);
  }
  return true;
}

void Server::ResumeDelayed() {
  if (delayed_.empty()) return;
  std::vector<Connection*> still;
  for (Connection* c : delayed_) {
    if (c->closing) continue;
    if (Delayed(c)) {
      still.push_back(c);
      continue;
    }
    c->delayed = false;
    Flush(c);     // the failed AUTH's reply, and what was held behind it
    RunAgain(c);  // then the commands it sent meanwhile
  }
  delayed_.swap(still);
}

void Server::RunAgain(Connection* c) {
  if (c->session.park.parked) c->session.park.resumed = true;
  c->session.park.parked = false;
  ScheduleRound(c);
}

void Server::ScheduleRound(Connection* c) {
  if (!c->in_round && !c->closing) {
    c->in_round = true;
    round_.push_back(c);
  }
}

// After everything already written to the connection: behind held replies it waits with them.
void Server::WritePush(Session& target, const std::string& bytes) {
  auto it = connections_.find(target.fd());
  if (it == connections_.end() || it->second->closing) return;
  Connection* c = it->second.get();
  c->out.append(bytes);
  if (EnforceOutputLimit(c)) return;
  if (c->held.empty()) {
    c->out_ready = c->out.size();
    Flush(c);
  } else {
    c->held.back().out_end = c->out.size();
  }
}

}  // namespace eloqkv::resp
