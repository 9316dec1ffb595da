// Server: one listener worker's event loop — accept, read, parse, run, reply — on epoll.
//
// Invariants:
//  * Nothing blocks the loop but epoll_wait: sockets are non-blocking, engine calls are the
//    only synchronous work (fsyncs run on BackgroundSync's thread), and a client that does not
//    read its replies has its input paused (not the loop) until its output drains.
//  * Replies go out in request order; a pipeline's commands run in order, one at a time.
//  * No reply goes out before the log is durable up to every write it acknowledges or read
//    value it shows; meanwhile the client's later commands may run and other clients are served.
//  * A protocol error is answered with the Redis error and the connection is closed after the
//    reply, as Redis does; no other client is affected.
//  * Several workers may listen on the same address and port (SO_REUSEPORT): the kernel spreads
//    connections over them.
//  * CLIENT TRACKING invalidations (tracking.h) are written to a connection after every reply
//    already written to it, and before the reply to any command it sends after the change was
//    acknowledged to its writer: the change feed is read after input and before commands run.
//  * A read of a cache key that missed waits without blocking the loop: its connection runs
//    nothing more until the fill lands (the change feed says so) or lease_timeout passes.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/status.h"
#include "resp/background_sync.h"
#include "resp/commands.h"
#include "resp/redirect_mailbox.h"

namespace eloqkv::resp {

class Server {
 public:
  // codec: converts rows of tables served over RESP (null: none are).
  // shared_clients: the table every worker publishes its clients to (null: this worker's
  // clients are all CLIENT LIST/KILL see). mailbox: where workers pass each other the
  // invalidations of clients that redirect them to another worker's client (null: one worker).
  // filler: runs caches' sources for reads that miss (null: a miss reads as no row).
  Server(Engine* engine, const ListenerConfig& config, ListenerStats* stats,
         RowCodec* codec = nullptr, PasswordVerifier* verifier = nullptr,
         SharedClientTable* shared_clients = nullptr, RedirectMailbox* mailbox = nullptr,
         CacheFiller* filler = nullptr);
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
  // What Postgres is doing (see ServerRole); the host says so before every Poll, so that a
  // promotion or the end of crash recovery takes effect within one poll.
  void SetRole(ServerRole role, std::string_view read_refusal = {}) {
    dispatcher_.set_role(role, read_refusal);
  }
  // Whether a write may be acknowledged once the host's log holds it durably (the engine's files
  // are synced right behind): only while the host keeps that log until the engine has synced
  // (Engine::Retention). The host says so before every Poll; it has effect with
  // config.sync_on_loop_thread only.
  void SetWriteOut(bool on) { sync_.set_write_out(on); }
  // In write-out mode, leave the write-outs to `remote` (see RemoteWriteOut), so that the loop
  // serves other clients while the host's log is flushed. Once, before the first Poll.
  void SetRemoteWriteOut(RemoteWriteOut* remote);
  // The SLOWLOG every worker shares; before Listen.
  void SetSlowLog(SlowLog* log) { dispatcher_.set_slow_log(log); }
  // WAIT's replicas; before Listen.
  void SetReplicaAcks(ReplicaAcks* acks) { dispatcher_.set_replica_acks(acks); }
  // The port actually bound (config.port, or the kernel's choice when it was 0).
  int bound_port() const { return bound_port_; }

 private:
  struct Connection;

  void Accept(int listen_fd);
  void WatchRemote();
  void RaiseDescriptorLimit();
  // Refuses one waiting client; false when none was waiting (or no descriptor came back).
  bool RefuseForLackOfDescriptors(int listen_fd, int err);
  void ReadInput(Connection* c);
  void RunRound();
  void PeekCommands(Connection* c);
  void Process(Connection* c);
  void Flush(Connection* c);
  // lsn: the log position the replies Process just wrote depend on.
  void HoldReplies(Connection* c, uint64_t lsn);
  // delay: the test-only eloqkv.resp_debug_sync_delay applies (once per write-out asked).
  void ReleaseHeld(bool delay = true);
  void UpdateInterest(Connection* c);
  void CompactOutput(Connection* c);
  void CloseConnection(Connection* c);
  // Closes a client over its output buffer limit; true if it did.
  bool EnforceOutputLimit(Connection* c);
  void Sweep();
  // This worker's CPU time, for INFO cpu (ListenerStats::worker_cpu_*).
  void PublishCpuTime();
  // CLIENT TRACKING: hands out the invalidations due (changed or expired keys, and messages
  // from other workers).
  void DeliverInvalidations();
  void SendInvalidation(Session& tracking, const std::string* key);
  // Writes an invalidation of `key` (null: of every key) to `target`, if it can receive one.
  void WriteInvalidation(Session& target, const std::string* key, bool redirected);
  void WritePush(Session& target, const std::string& bytes);
  // A parked command (a cache read waiting for its fill) runs again in the next round; it stays
  // on parked_ until it replies.
  void RunAgain(Connection* c);
  // Puts the connection on round_ (once), to run its input in the next round.
  void ScheduleRound(Connection* c);
  // Whether the connection waits after a failed AUTH (puts it on delayed_); ResumeDelayed sends
  // its replies and runs its input once the time has come.
  bool Delayed(Connection* c);
  void ResumeDelayed();

  ListenerConfig config_;
  ListenerStats* stats_;
  std::vector<std::pair<LogLevel, std::string>> log_;
  ClientRegistry clients_;
  Dispatcher dispatcher_;
  int epoll_fd_ = -1;
  int bound_port_ = 0;
  // Descriptors kept free beyond maxclients (listeners, epoll, the engine's files, Postgres's).
  static constexpr size_t kReservedDescriptors = 256;
  int spare_fd_ = -1;  // closed to make room to refuse a client when descriptors run out
  int64_t last_emfile_log_ms_ = 0;
  int64_t last_output_limit_log_ms_ = 0;
  uint64_t output_limit_unlogged_ = 0;
  std::vector<int> listen_fds_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> closing_;
  std::vector<Connection*> round_;    // sent something since the last round ran
  std::vector<Connection*> waiting_;  // have held replies
  Engine* engine_;
  BackgroundSync sync_;
  RemoteWriteOut* remote_ = nullptr;
  uint64_t synced_ = 0;  // the log is durable up to here (as sync_ last reported)
  bool sync_failure_logged_ = false;
  int64_t last_sweep_ms_ = 0;
  int64_t remote_checked_ms_ = 0;  // when a write-out asked of the helper was last looked at
  std::vector<struct epoll_event> events_;
  std::unique_ptr<char[]> read_buffer_;
  std::string dropped_replies_;  // replies CLIENT REPLY drops, until the round's writes apply
  RequestParser peek_parser_;
  RedirectMailbox* mailbox_;
  const int cpu_slot_;  // this worker's ListenerStats::worker_cpu_* slot; -1: none
  uint64_t mailbox_position_ = 0;
  Tracker::Collected collected_;
  std::vector<Connection*> parked_;   // parked commands: cache reads waiting for fills, WAITs
  std::vector<Connection*> delayed_;  // waiting after a failed AUTH
  std::vector<RedirectMailbox::Message> messages_;
  int prefetch_backoff_ = 0;
  int prefetch_skip_ = 0;
};

}  // namespace eloqkv::resp
