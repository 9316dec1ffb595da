// Commands: the Redis command set over the engine, one call at a time per session.
//
// Invariants:
//  * Every command either replies exactly once (an array for EXEC) or, inside MULTI, replies
//    +QUEUED / an error; nothing is written to the engine by a command that replies an error.
//  * Writes of one command, and of one EXEC, reach the engine as one atomic batch, committed
//    optimistically: a conflicting concurrent write makes the command run again on the new
//    state, so each command behaves as if it ran alone (Redis's single-threaded semantics)
//    although several workers and SQL backends write the same keyspace at once.
//  * A session that has not authenticated (when a password is set) can run only AUTH, HELLO,
//    QUIT and RESET.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/eloqkv.h"
#include "resp/client_table.h"
#include "resp/client_pause.h"
#include "resp/command_stats.h"
#include "resp/instant_rates.h"
#include "resp/output_limits.h"
#include "resp/protocol.h"
#include "resp/replica_acks.h"
#include "resp/slow_log.h"
#include "resp/store.h"
#include "resp/tracking.h"
#include "resp/txn_coalescer.h"
#include "resp/users.h"
#include "resp/write_coalescer.h"

namespace eloqkv::resp {

// Counters shared by every listener worker (the host places them in shared memory).
struct ListenerStats {
  std::atomic<uint64_t> next_client_id{1};
  std::atomic<uint64_t> connected_clients{0};
  std::atomic<uint64_t> connections_received{0};
  std::atomic<uint64_t> rejected_connections{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> commands_processed{0};
  std::atomic<uint64_t> keyspace_hits{0};
  std::atomic<uint64_t> keyspace_misses{0};
  std::atomic<uint64_t> expired_on_write{0};
  std::atomic<int64_t> started_at_ms{0};
  // Bumped by backends after a transaction that changed the served tables commits.
  std::atomic<uint64_t> table_generation{0};
  std::atomic<uint64_t> tracking_clients{0};             // CLIENT TRACKING on, every worker
  std::atomic<int64_t> tracking_keys{0};                 // keys remembered for them, every worker
  std::atomic<uint64_t> output_limit_disconnections{0};  // clients over their output limit
  std::atomic<uint64_t> net_input_bytes{0};              // read from clients, every worker
  std::atomic<uint64_t> net_output_bytes{0};             // written to clients, every worker
  // CPU microseconds of each worker's process (ListenerConfig::worker_index), published by its
  // loop every InstantRates::kIntervalMs: INFO cpu sums them.
  static constexpr int kMaxWorkers = kMaxListenerWorkers;
  std::atomic<uint64_t> worker_cpu_user_us[kMaxWorkers] = {};
  std::atomic<uint64_t> worker_cpu_sys_us[kMaxWorkers] = {};
  // What workers that were restarted had published: the sums never go down.
  std::atomic<uint64_t> retired_cpu_user_us{0};
  std::atomic<uint64_t> retired_cpu_sys_us{0};
  // The engine's expiry count at the last CONFIG RESETSTAT (INFO's expired_keys counts from it).
  std::atomic<uint64_t> expired_keys_base{0};
  // INFO's run_id: 40 random hex digits, new whenever the counters are (every server start).
  char run_id[41];
  // INFO commandstats and errorstats (command_stats.h).
  CommandStatsShared commands;
  // Clients waiting (WAIT, a cache fill, CLIENT PAUSE), every worker: INFO's blocked_clients.
  std::atomic<int64_t> blocked_clients{0};
  // On a standby, when a worker last saw its link to the primary up (µs since the Unix epoch,
  // 0: not since the server started): INFO's master_link_down_since_seconds.
  std::atomic<int64_t> primary_link_up_us{0};
  // Read by every command while a pause is set: a line of its own.
  alignas(64) ClientPause client_pause;

  ListenerStats();
};

struct ListenerConfig {
  std::string keyspace_name = "@resp";  // the default keyspace for plain Redis keys
  std::string password;                 // empty: no AUTH needed
  size_t maxclients = 10000;
  int timeout_s = 0;  // idle clients are closed after this many seconds (0: never)
  int port = 6380;
  std::string bind = "127.0.0.1";
  int workers = 1;
  int worker_index = 0;  // this worker's, 0 .. workers - 1
  ParserLimits limits;
  OutputBufferLimits output_limits;
  std::string server_version = "7.0.0";
  // Sync on the event loop's thread instead of a thread of its own: a host whose log must be
  // flushed before the engine syncs (Postgres WAL, for standbys) cannot be called from another
  // thread. Fixed when the server starts.
  bool sync_on_loop_thread = false;
  // Tests only: how long the loop waits before it writes out or syncs what it was asked to,
  // which widens the moment a write is in the host's log but not yet in the engine's files.
  int debug_sync_delay_ms = 0;
  // SLOWLOG: a command that runs this many microseconds or longer is logged (0: every command,
  // negative: none), as Redis's slowlog-log-slower-than.
  int64_t slowlog_log_slower_than_us = 10000;
};

class Session;

// A worker's clients (CLIENT LIST/KILL/INFO), published to the table every worker shares when
// there is one (the host's shared memory), so that each sees all of them.
class ClientRegistry {
 public:
  explicit ClientRegistry(SharedClientTable* shared = nullptr) : shared_(shared) {
    if (shared_ != nullptr) shared_->ReleaseOrphans();
  }
  void Add(Session* s);
  void Remove(Session* s);
  // Makes the session's current state (name, last command, MULTI...) visible to other workers.
  void Publish(const Session& s);
  // Another worker's CLIENT KILL chose this session.
  bool KillRequested(const Session& s) const;
  Session* Find(uint64_t id) const;
  // Whether client `id` is connected, to this worker or another.
  bool Exists(uint64_t id) const;
  template <typename F>
  void ForEach(F&& f) const {
    for (const auto& [id, s] : sessions_) f(*s);
  }
  size_t size() const { return sessions_.size(); }

  // Every client of every worker, in id order: its snapshot, and its session when it is one of
  // this worker's (null otherwise).
  struct Client {
    ClientSnapshot snapshot;
    Session* local = nullptr;
    int slot = -1;
  };
  std::vector<Client> All() const;
  // Closes `client` at its worker's next sweep.
  void Kill(const Client& client);
  // CLIENT UNBLOCK: wakes `client` from a blocking command (not a pause), as by its timeout
  // (how 1) or with an error (how 2); false when it is not blocked. Another worker's client is
  // woken at that worker's next loop pass.
  bool Unblock(const Client& client, int how);
  // A request of another worker's CLIENT UNBLOCK for this session (0: none).
  int TakeUnblock(const Session& s);

 private:
  SharedClientTable* shared_;
  std::map<uint64_t, Session*> sessions_;
};

ClientSnapshot SnapshotOf(const Session& s);

class Session {
 public:
  Session(uint64_t id, std::string peer, std::string local, int fd)
      : id_(id), peer_(std::move(peer)), local_(std::move(local)), fd_(fd) {}

  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }
  const std::string& local() const { return local_; }
  int fd() const { return fd_; }

  int protocol = 2;
  bool authenticated = false;
  // A failed AUTH delays this connection's replies and commands until then (brute force).
  int64_t reply_not_before_ms = 0;
  // A RESP user tied to a Postgres role (null: the default user, unrestricted).
  std::shared_ptr<const RespUser> user;
  uint64_t user_generation = 0;
  int shared_slot = -1;  // in the SharedClientTable (-1: not there)
  bool close_after_reply = false;
  bool killed = false;
  // CLIENT REPLY: OFF drops every reply until ON; SKIP drops the reply of the command after it
  // (skip_next becomes skip_this as each command ends). Neither OFF nor SKIP is answered.
  struct ReplyMode {
    bool off = false;
    bool skip_this = false;
    bool skip_next = false;
  };
  ReplyMode replies;
  // Whether the reply of the command `args` is dropped. As in Redis, CLIENT REPLY ON is answered,
  // and so is RESET while replies are off (both turn them on before replying), but not a
  // command skipped by SKIP, nor one queued in MULTI.
  bool DropsReplyTo(std::span<const std::string_view> args) const;
  // Once a command ran: a SKIP moves on to the next command.
  void EndReplySkip() { replies.skip_this = std::exchange(replies.skip_next, false); }
  std::string name;
  std::string last_command;
  int64_t created_ms = 0;
  int64_t last_active_ms = 0;
  // The connection's buffers when the session was last published (CLIENT LIST qbuf/omem).
  uint64_t input_bytes = 0;
  uint64_t output_bytes = 0;

  // CLIENT TRACKING (tracking.h): invalidations of the keys this client read go to it (RESP3)
  // or to client `redirect`.
  struct Tracking {
    bool on = false;
    uint64_t redirect = 0;
    bool optin = false, optout = false, noloop = false;
    bool caching = false;  // CLIENT CACHING given for the next command (or transaction)
    bool broken_redirect = false;
  };
  Tracking tracking;
  bool subscribed_invalidate = false;  // SUBSCRIBE __redis__:invalidate

  // A command that waits before it replies, without blocking other clients: the server keeps
  // its input unconsumed and runs it again when woken, at ask_again_ms, and once more with
  // `expired` set when the deadline passed.
  //  * a read of a cache key that missed waits for the fill it asked for (woken when one of
  //    `keys` changes; expired, it replies an error);
  //  * WAIT waits for the replicas to acknowledge replicas_position (expired, it replies how
  //    many did).
  struct Park {
    // A parked read asks for its fill again this often: the filler it asked may have died or
    // failed, which no change of the key announces (asking again is a no-op while the key is
    // being filled).
    static constexpr int64_t kAskAgainMs = 1000;
    // WAIT counts the replicas' acknowledgements again this often.
    static constexpr int64_t kRecountMs = 5;
    bool parked = false;
    bool expired = false;
    // Run again after parking: the command was already counted as processed.
    bool resumed = false;
    int64_t deadline_ms = 0;
    int64_t ask_again_ms = 0;
    std::vector<std::pair<uint32_t, std::string>> keys;  // (keyspace, engine key)
    uint64_t replicas_position = 0;
    int64_t replicas_wanted = 0;  // WAIT's numreplicas (0: not a WAIT)
    // Held by CLIENT PAUSE (a write: WRITE holds it too, not only ALL); it runs, from the
    // start, once the pause no longer holds it.
    bool postponed = false;
    bool postponed_writes = false;
    // CLIENT UNBLOCK: 1 runs it again as if its time was up, 2 replies an error instead.
    int unblocked = 0;
    bool TimedOut() const { return expired || unblocked == 1; }
  };
  Park park;
  // How many times the client started waiting (the server counts): names the wait a CLIENT
  // UNBLOCK from another worker is for.
  uint32_t parks = 0;

  // The log position this client's coalesced writes wait for (write_coalescer.h); the server
  // holds the round's replies behind it, then clears it.
  uint64_t coalesced_lsn = 0;

  // MULTI state.
  bool in_multi = false;
  bool multi_failed = false;  // a queued command was refused: EXEC aborts
  std::vector<std::vector<std::string>> queued;
  // WATCHed keys, as WATCH found them: a sequence number, or absent since a sequence number
  // (a key created and deleted again is then a change, as in Redis).
  struct WatchedKey {
    uint64_t seq = 0;           // 0: absent
    uint64_t absent_since = 0;  // with seq 0: Engine::NextSequence() before the lookup
  };
  std::map<std::string, WatchedKey, std::less<>> watched;

  // SCAN cursors handed out on this connection: cursor -> key to resume after; HSCAN's of large
  // hashes: cursor -> (key, field to resume after). At most kMaxCursorsPerClient of each. A SCAN
  // cursor once used moves to used_cursors, where the last kMaxUsedCursors stay for a client
  // that lost the reply and asks again, without crowding out other scans' unused cursors.
  static constexpr size_t kMaxCursorsPerClient = 1024;
  static constexpr size_t kMaxUsedCursors = 16;
  std::map<uint64_t, std::string> cursors;
  std::map<uint64_t, std::string> used_cursors;
  std::map<uint64_t, std::pair<std::string, std::string>> hash_cursors;
  uint64_t next_cursor = 1;

  void ResetState();

 private:
  uint64_t id_;
  std::string peer_;
  std::string local_;
  int fd_;
};

// kStandby: a hot standby; keys are replicated from the primary, so reads are served and writes
// get Redis's read-only replica error. kReplaying: the server replays its WAL after a crash, and
// key commands answer -LOADING until that is done. Promotion makes a standby kPrimary.
enum class ServerRole : uint8_t { kPrimary, kStandby, kReplaying };

class Dispatcher;

// Everything a command handler sees.
struct Call {
  Dispatcher& dispatcher;
  Session& session;
  std::span<const std::string_view> args;
  ReplyWriter& reply;
  Txn& txn;
  bool in_exec = false;
  bool read_only = false;  // a read command: its lookups count in keyspace_hits/misses
};

class Dispatcher {
 public:
  // codec: converts rows of served tables (null: no table is served). filler: runs caches'
  // sources for RESP reads that miss (null: a miss reads as no row).
  Dispatcher(Engine* engine, const ListenerConfig& config, ListenerStats* stats,
             ClientRegistry* clients, RowCodec* codec = nullptr,
             PasswordVerifier* verifier = nullptr, CacheFiller* filler = nullptr);

  // Runs one command and appends its reply. The caller closes the connection after flushing
  // the reply when session.close_after_reply is set.
  void Execute(Session& session, std::span<const std::string_view> args, ReplyWriter& reply);

  Engine* engine() const { return engine_; }
  const ListenerConfig& config() const { return config_; }
  ListenerStats* stats() const { return stats_; }
  // This worker's samples of the shared counters (INFO's instantaneous_* figures).
  InstantRates& rates() { return rates_; }
  ClientRegistry* clients() const { return clients_; }
  // The default keyspace's id, created on first use; false (with an error reply) if unusable.
  bool Keyspace(ReplyWriter& reply, uint32_t* id);
  uint32_t default_keyspace() const { return keyspace_; }  // 0: not resolved yet
  void set_config(const ListenerConfig& c) { config_ = c; }
  // What the host server is doing, which decides what key commands may do (see ServerRole).
  // read_refusal: on a server whose replay stopped as a standby, the error that key reads get
  // instead (and, once promoted, key writes too).
  void set_role(ServerRole role, std::string_view read_refusal = {}) {
    role_ = role;
    if (read_refusal != read_refusal_) read_refusal_.assign(read_refusal);
  }
  bool standby() const { return role_ == ServerRole::kStandby; }
  // Whether key is (or may be: its key part did not convert) a row of a served table.
  bool IsTableKey(std::string_view key);
  // The keyspace and engine key a RESP key is stored under; replies the error itself.
  bool Locate(ReplyWriter& reply, const RespUser* user, std::string_view key, uint32_t* keyspace,
              std::string* engine_key);
  TableRouter& tables() { return router_; }
  UserDirectory& users() { return users_; }
  PasswordVerifier* verifier() const { return verifier_; }
  // The log position every reply produced since the last call depends on: the server syncs to
  // it (one sync for a whole round of clients) before sending those replies. 0: nothing.
  // A reply produced now depends on a read of a value not yet durable at `lsn`.
  void DependOn(uint64_t lsn) {
    if (lsn > pending_lsn_) pending_lsn_ = lsn;
  }
  uint64_t TakePendingLsn() {
    const uint64_t lsn = pending_lsn_;
    pending_lsn_ = 0;
    return lsn;
  }

  using Handler = void (*)(Call&);
  // Where a command's keys are, as in Redis's COMMAND INFO: arguments first..last (negative:
  // counted from the end) every step; first == 0: it takes no key.
  struct KeySpec {
    int first = 0;
    int last = 0;
    int step = 0;
    bool has_keys() const { return first > 0 && step > 0; }
    // Calls f(i) for the index of each key argument of a command of `argc` arguments.
    template <typename F>
    void ForEachIndex(size_t argc, F&& f) const {
      if (!has_keys()) return;
      const long end = last < 0 ? static_cast<long>(argc) + last : last;
      for (long i = first; i <= end && i < static_cast<long>(argc); i += step)
        f(static_cast<size_t>(i));
    }
  };
  // A container command's subcommand (CLIENT SETNAME): its arity counts the container's name.
  struct Subcommand {
    const char* name;
    int arity;
  };
  struct Command {
    const char* name;
    int arity;  // Redis convention: >0 exact, <0 at least -arity
    Handler handler;
    uint32_t flags;
    KeySpec keys{};
    // Set for containers: an unknown subcommand or a wrong count is refused before the handler
    // runs, with Redis 7's errors, so that inside MULTI it makes EXEC abort.
    std::span<const Subcommand> subcommands{};
    // Its row in INFO commandstats (set by the dispatcher); its subcommands' rows follow it.
    uint32_t stats_index = 0;
  };
  enum Flags : uint32_t {
    kWrite = 1,
    kNoAuth = 2,    // allowed before AUTH
    kNoMulti = 4,   // runs immediately even inside MULTI (EXEC, DISCARD, ...)
    kNoEngine = 8,  // does not need the engine to be ready
    kFastRead = 16,
    kReadsKey = 32,   // reads the value of its first key (args[1]): prefetched
    kReadsKeys = 64,  // reads the value of every argument after the name (MGET): prefetched
    kBlindSet = 128,  // as key value [key value ...] it writes strings only: it may be coalesced
    // Touches its keys only through its Txn: a round's such commands may share one
    // (txn_coalescer.h).
    kGather = 256,
    kSkipSlowLog = 512,  // not logged itself (EXEC: the commands it runs are)
  };
  const Command* Find(std::string_view name) const;
  size_t command_count() const { return table_.size(); }
  // INFO commandstats: the row of a command as called (its subcommand's, for a container), 0
  // for none; and every row's name ("get", "client|list").
  static uint32_t StatsIndex(const Command& cmd, std::span<const std::string_view> args);
  static uint32_t StatsIndex(const Command& cmd, const Subcommand* sub);
  // The subcommand of `cmd` called `name` (any case), or null.
  static const Subcommand* FindSubcommand(const Command& cmd, std::string_view name);
  const std::vector<std::string>& stats_names() const { return stats_names_; }
  CommandStats& command_stats() { return command_stats_; }
  // WAIT's replicas (none: WAIT counts none).
  void set_replica_acks(ReplicaAcks* acks) { replica_acks_ = acks; }
  ReplicaAcks* replica_acks() { return replica_acks_; }
  // The slow log every worker shares (none: nothing is logged, SLOWLOG shows nothing).
  void set_slow_log(SlowLog* log) { slow_log_ = log; }
  SlowLog* slow_log() { return slow_log_; }
  template <typename F>
  void ForEachCommand(F&& f) const {
    for (const auto& [n, c] : table_) f(c);
  }

  // Prefetching: the server notes the commands of a round before running them. Then the keys
  // they will read or write are looked up together, their memory misses overlapping (index,
  // cached values), and, when device_reads, the values they will read that are not cached are
  // fetched in one batch of device reads, rather than one synchronous read per command.
  // *looked_up: how many keys to read were looked at; returns how many values were read.
  void NotePrefetch(const Session& session, std::span<const std::string_view> args);
  size_t RunPrefetch(bool device_reads, size_t* looked_up);

  // AUTH with a wrong password: the connection waits before it hears so, longer for each recent
  // failure from the same address (50 ms doubling, at most 2 s; forgotten after a minute).
  void AuthFailed(Session& session);
  void AuthSucceeded(Session& session);
  static constexpr int64_t kAuthDelayBaseMs = 50;
  static constexpr int64_t kAuthDelayMaxMs = 2000;

  // CLIENT TRACKING: turns it on or off for the session (counts it in the tracker).
  void SetTracking(Session& session, bool on);
  // A connection is going away: it stops tracking.
  void Forget(Session& session);
  Tracker& tracker() { return tracker_; }
  // Publishes the tracker's key count to the shared stats (INFO).
  void PublishTrackingStats();

  // Brings a mapped session's user record up to date; false (replied) if it is gone.
  bool RefreshUser(Session& session, ReplyWriter& reply);
  // Applies the writes gathered from the round's plain SETs and MSETs (write_coalescer.h) and
  // its other gathered writes (txn_coalescer.h); the server calls it before it holds the round's
  // replies. At most one of the two holds anything (gathering into one flushes the other).
  void FlushWrites() {
    coalescer_.Flush();
    txn_coalescer_.Flush();
  }
  // Runs the handler inside a transaction, committing (and re-running on conflicts).
  void RunCommitted(Session& session, const Command& cmd, std::span<const std::string_view> args,
                    ReplyWriter& reply);
  void Exec(Session& session, ReplyWriter& reply);

 private:
  void Register(const Command& c);
  // CLIENT PAUSE: parks the command while a pause holds it (every command under ALL, those
  // that write under WRITE, an EXEC of writes included), as Redis postpones its client.
  bool Postponed(Session& session, const Command& cmd);
  bool Writes(const Session& session, const Command& cmd) const;
  // Replies a command's refusal (before it runs), as Redis does inside and around MULTI, and
  // counts it (INFO commandstats' rejected_calls for stats_index, errorstats).
  void Reject(Session& session, const Command& cmd, uint32_t stats_index, ReplyWriter& reply,
              std::string_view error);
  void RejectWith(Session& session, const Command& cmd, ReplyWriter& reply, std::string_view error);
  // INFO commandstats and SLOWLOG: a command that ran for `nanos`, its reply from `mark`.
  void CountCall(const Session& session, const Command& cmd, std::span<const std::string_view> args,
                 uint32_t stats_index, uint64_t nanos, const ReplyWriter& reply, size_t mark);
  // Where a key is stored, without replying or checking privileges; false for a table row
  // whose key does not convert, or a plain key before the default keyspace is resolved.
  bool Where(std::string_view key, uint32_t* keyspace, std::string* engine_key);
  // After a read: asks for the fills its cache misses and stale rows need. True when the
  // command must wait for them (it is parked; its reply is dropped); false to reply now.
  bool AwaitCacheFills(Session& session, ReplyWriter& reply, size_t mark, bool may_wait);
  // After a read command of a tracking client: remember the keys it read.
  // `since`: the change feed's position before the command read anything.
  void RememberReads(const Session& session, const Command& cmd,
                     std::span<const std::string_view> args, uint64_t since);
  // A write of plain keys by an unrestricted client: a plain SET or MSET gathered into the
  // round's batch, another write into the round's transaction, and replied. False when it must
  // run alone.
  // *reply_mark: where its reply starts (after the flushes gathering it may have caused).
  bool TryCoalesce(Session& session, const Command& cmd, std::span<const std::string_view> args,
                   ReplyWriter& reply, size_t* reply_mark);
  // Whether every key the command names is a plain key (of the default keyspace).
  bool PlainKeysOnly(const Command& cmd, std::span<const std::string_view> args);
  // RunCommitted for a gathered command whose round's batch failed (gathered_commands.h).
  // It was counted as called when gathered; an error now that it did not reply then is counted
  // as its failure.
  void RunAlone(Session& session, std::span<const std::string_view> args,
                std::string_view gathered_reply, ReplyWriter& reply, uint64_t* lsn);
  GatheredCommands::RunAlone RunAloneFunction() {
    return [this](Session& session, std::span<const std::string_view> args,
                  std::string_view gathered_reply, ReplyWriter& reply,
                  uint64_t* lsn) { RunAlone(session, args, gathered_reply, reply, lsn); };
  }
  // Commands a RESP2 client subscribed to __redis__:invalidate may still run.
  static bool AllowedWhileSubscribed(const Command& cmd);

  Engine* engine_;
  ListenerConfig config_;
  ListenerStats* stats_;
  InstantRates rates_;
  ClientRegistry* clients_;
  uint32_t keyspace_ = 0;
  FieldSpace field_space_;  // large hashes' field records (hash_value.h)
  uint64_t pending_lsn_ = 0;
  TableRouter router_;
  UserDirectory users_;
  PasswordVerifier* verifier_;
  CacheFiller* filler_;
  Txn txn_;
  WriteCoalescer coalescer_;
  TxnCoalescer txn_coalescer_;
  Tracker tracker_;
  int64_t published_tracking_keys_ = 0;
  struct AuthFailures {
    int count = 0;
    int64_t last_ms = 0;
  };
  ServerRole role_ = ServerRole::kPrimary;
  std::string read_refusal_;
  std::unordered_map<std::string, AuthFailures> auth_failures_;  // by peer address
  std::unordered_map<std::string, Command> table_;
  std::vector<std::string> stats_names_{""};  // by Command::stats_index; 0 is none
  CommandStats command_stats_;
  SlowLog* slow_log_ = nullptr;
  ReplicaAcks* replica_acks_ = nullptr;
  using NotedKeys = std::vector<std::pair<uint32_t, std::string>>;  // (keyspace, engine key)
  NotedKeys prefetch_;                                              // to be read
  NotedKeys warm_;                                                  // to be written
  size_t PrefetchNoted(NotedKeys* noted, Engine::PrefetchDepth depth);
};

// Command families (string_commands.cc, key_commands.cc, hash_commands.cc,
// server_commands.cc, transaction_commands.cc) add themselves to the table.
void RegisterStringCommands(std::vector<Dispatcher::Command>* out);
void RegisterKeyCommands(std::vector<Dispatcher::Command>* out);
void RegisterHashCommands(std::vector<Dispatcher::Command>* out);
void RegisterServerCommands(std::vector<Dispatcher::Command>* out);
void RegisterTrackingCommands(std::vector<Dispatcher::Command>* out);
// CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO; false when `sub` is none of them.
bool ClientTrackingSubcommand(Call& c, std::string_view sub);

// Shared reply helpers.
void ReplyWrongArity(ReplyWriter& reply, std::string_view command);
// Whether argc arguments (the name included) fit an arity in Redis's convention.
inline bool ArityOk(int arity, size_t argc) {
  return arity > 0 ? argc == static_cast<size_t>(arity) : argc >= static_cast<size_t>(-arity);
}
void ReplyWrongType(ReplyWriter& reply);
void ReplyEngineError(ReplyWriter& reply, const Status& s);
inline constexpr std::string_view kWrongTypeError =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
inline constexpr std::string_view kNotIntegerError = "ERR value is not an integer or out of range";
inline constexpr std::string_view kSyntaxError = "ERR syntax error";

}  // namespace eloqkv::resp
