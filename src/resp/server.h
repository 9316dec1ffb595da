// Server: one listener worker's event loop — accept, read, parse, run, reply — on epoll.
//
// Invariants:
//  * Nothing blocks the loop but epoll_wait: sockets are non-blocking, engine calls are the
//    only synchronous work, and a client that does not read its replies has its input paused
//    (not the loop) until its output drains.
//  * Replies go out in request order; a pipeline's commands run in order, one at a time.
//  * A protocol error is answered with the Redis error and the connection is closed after the
//    reply, as Redis does; no other client is affected.
//  * Several workers may listen on the same address and port (SO_REUSEPORT): the kernel spreads
//    connections over them.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/status.h"
#include "resp/commands.h"

namespace eloqkv::resp {

class Server {
 public:
  // codec: converts rows of tables served over RESP (null: none are).
  Server(Engine* engine, const ListenerConfig& config, ListenerStats* stats,
         RowCodec* codec = nullptr, PasswordVerifier* verifier = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every address of config.bind (comma- or space-separated; "*" for all) on config.port.
  Status Listen();
  // Waits up to timeout_ms for events (a signal ends the wait early) and serves them. The host
  // calls it in a loop, and handles its own signals and settings in between: the server never
  // calls back into its host.
  Status Poll(int timeout_ms);
  // Messages for the host's log, gathered since the last call.
  std::vector<std::pair<LogLevel, std::string>> TakeLog();
  void UpdateConfig(const ListenerConfig& config);
  // The port actually bound (config.port, or the kernel's choice when it was 0).
  int bound_port() const { return bound_port_; }

 private:
  struct Connection;

  void Accept(int listen_fd);
  void OnReadable(Connection* c);
  void Process(Connection* c);
  void Flush(Connection* c);
  void MarkReplied(Connection* c);
  void ReleaseReplies();
  void UpdateInterest(Connection* c);
  void CloseConnection(Connection* c);
  void Sweep();

  ListenerConfig config_;
  ListenerStats* stats_;
  std::vector<std::pair<LogLevel, std::string>> log_;
  ClientRegistry clients_;
  Dispatcher dispatcher_;
  int epoll_fd_ = -1;
  int bound_port_ = 0;
  std::vector<int> listen_fds_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> closing_;
  std::vector<Connection*> replied_;  // have replies waiting for this round's sync
  Engine* engine_;
  int64_t last_sweep_ms_ = 0;
  std::vector<struct epoll_event> events_;
};

}  // namespace eloqkv::resp
