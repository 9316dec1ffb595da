#include <algorithm>
#include <cctype>
#include <chrono>
#include <utility>

#include "resp/text.h"
#include "resp/commands.h"
#include "resp/hash_value.h"

namespace eloqkv::resp {

namespace {
uint64_t NanosSince(std::chrono::steady_clock::time_point started) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now() - started)
                                   .count());
}

constexpr int kMaxCommitAttempts = 1000;

// What Redis's "%.*s" prints of an argument: up to `room` bytes, and nothing from a NUL on.
std::string_view Printed(std::string_view arg, size_t room) {
  return arg.substr(0, std::min(room, arg.find('\0')));
}

void ReplyUnknownCommand(ReplyWriter& reply, std::span<const std::string_view> args) {
  // Redis 7's wording: each argument quoted, cut to what is left of 128 characters before its
  // opening quote.
  std::string msg = "ERR unknown command '";
  msg.append(Printed(args[0], 128));
  msg.append("', with args beginning with: ");
  std::string quoted;
  for (size_t i = 1; i < args.size() && quoted.size() < 128; ++i) {
    const size_t room = 128 - quoted.size();
    quoted.push_back('\'');
    quoted.append(Printed(args[i], room));
    quoted.append("' ");
  }
  msg.append(quoted);
  reply.Error(msg);
}

}  // namespace

void ClientRegistry::Add(Session* s) {
  sessions_[s->id()] = s;
  if (shared_ != nullptr) {
    s->shared_slot = shared_->Claim(s->id());
    Publish(*s);
  }
}
void ClientRegistry::Remove(Session* s) {
  sessions_.erase(s->id());
  if (shared_ != nullptr && s->shared_slot >= 0) shared_->Release(s->shared_slot);
  s->shared_slot = -1;
}
void ClientRegistry::Publish(const Session& s) {
  if (shared_ != nullptr && s.shared_slot >= 0) shared_->Publish(s.shared_slot, SnapshotOf(s));
}
bool ClientRegistry::KillRequested(const Session& s) const {
  return shared_ != nullptr && s.shared_slot >= 0 && shared_->kill_requested(s.shared_slot);
}
std::vector<ClientRegistry::Client> ClientRegistry::All() const {
  std::vector<Client> all;
  // This worker's own from their sessions (fresher than what they last published).
  for (const auto& [id, s] : sessions_) all.push_back(Client{SnapshotOf(*s), s, s->shared_slot});
  if (shared_ != nullptr) {
    shared_->ForEach([&](int slot, const ClientSnapshot& snap) {
      if (sessions_.count(snap.id) == 0) all.push_back(Client{snap, nullptr, slot});
    });
  }
  std::sort(all.begin(), all.end(),
            [](const Client& a, const Client& b) { return a.snapshot.id < b.snapshot.id; });
  return all;
}
bool ClientRegistry::Unblock(const Client& client, int how) {
  if (client.local != nullptr) {
    Session::Park& park = client.local->park;
    // Unblocked already (the loop has not run it yet): as in Redis, a second UNBLOCK finds it
    // no longer blocked.
    if (!park.parked || park.postponed || park.unblocked != 0) return false;
    park.unblocked = how;  // the loop's next pass runs it again
    return true;
  }
  if (client.snapshot.blocked != ClientSnapshot::kBlocked || shared_ == nullptr || client.slot < 0)
    return false;
  return shared_->RequestUnblock(client.slot, client.snapshot.id, client.snapshot.park, how);
}

int ClientRegistry::TakeUnblock(const Session& s) {
  return shared_ != nullptr && s.shared_slot >= 0 ? shared_->TakeUnblock(s.shared_slot, s.parks)
                                                  : 0;
}

void ClientRegistry::Kill(const Client& client) {
  if (client.local != nullptr)
    client.local->killed = true;
  else if (shared_ != nullptr && client.slot >= 0)
    shared_->RequestKill(client.slot, client.snapshot.id);
}

ClientSnapshot SnapshotOf(const Session& s) {
  ClientSnapshot c;
  c.id = s.id();
  c.created_ms = s.created_ms;
  c.last_active_ms = s.last_active_ms;
  c.fd = s.fd();
  c.multi = s.in_multi ? static_cast<int32_t>(s.queued.size()) : -1;
  c.watch = static_cast<uint32_t>(s.watched.size());
  c.protocol = s.protocol;
  c.subscriptions = s.subscribed_invalidate ? 1 : 0;
  c.redirect = s.tracking.on ? static_cast<int64_t>(s.tracking.redirect) : -1;
  c.broken_redirect = s.tracking.broken_redirect ? 1 : 0;
  c.blocked = !s.park.parked     ? ClientSnapshot::kNotBlocked
              : s.park.postponed ? ClientSnapshot::kPostponed
                                 : ClientSnapshot::kBlocked;
  c.park = s.parks;
  c.input_bytes = s.input_bytes;
  c.output_bytes = s.output_bytes;
  ClientSnapshot::Set(c.addr, sizeof(c.addr), s.peer());
  ClientSnapshot::Set(c.laddr, sizeof(c.laddr), s.local());
  ClientSnapshot::Set(c.name, sizeof(c.name), s.name);
  ClientSnapshot::Set(c.cmd, sizeof(c.cmd), s.last_command);
  ClientSnapshot::Set(c.user, sizeof(c.user), s.user ? s.user->name : std::string("default"));
  return c;
}
bool ClientRegistry::Exists(uint64_t id) const {
  return Find(id) != nullptr || (shared_ != nullptr && shared_->Contains(id));
}

Session* ClientRegistry::Find(uint64_t id) const {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second;
}

bool Session::DropsReplyTo(std::span<const std::string_view> args) const {
  if (!replies.off && !replies.skip_this) return false;
  if (in_multi) return true;
  if (args.size() == 3 && EqualsIgnoreCase(args[0], "client") &&
      EqualsIgnoreCase(args[1], "reply") && EqualsIgnoreCase(args[2], "on"))
    return false;
  return !(args.size() == 1 && EqualsIgnoreCase(args[0], "reset") && !replies.skip_this);
}

void Session::ResetState() {
  protocol = 2;
  name.clear();
  in_multi = false;
  multi_failed = false;
  queued.clear();
  watched.clear();
  cursors.clear();
  used_cursors.clear();
  hash_cursors.clear();
  // As Redis's RESET: replies back on (a SKIP already running still drops RESET's own reply).
  replies.off = false;
  replies.skip_next = false;
}

void ReplyWrongArity(ReplyWriter& reply, std::string_view command) {
  std::string msg = "ERR wrong number of arguments for '";
  msg.append(command);
  msg.append("' command");
  reply.Error(msg);
}

void ReplyWrongType(ReplyWriter& reply) {
  reply.Error(kWrongTypeError);
}

void ReplyEngineError(ReplyWriter& reply, const Status& s) {
  switch (s.code()) {
    case Status::Code::kTooLarge:
    case Status::Code::kInvalidArgument:
      reply.Error("ERR " + std::string(s.message()));
      return;
    case Status::Code::kNoSpace:
      reply.Error("OOM command not allowed: " + std::string(s.message()));
      return;
    case Status::Code::kCorruption:
      reply.Error("ERR " + std::string(s.message()));
      return;
    case Status::Code::kPermissionDenied:
      reply.Error("NOPERM " + std::string(s.message()));
      return;
    case Status::Code::kUnavailable:  // a condition the client can retry after (a busy filler)
      reply.Error("ERR " + std::string(s.message()));
      return;
    default:
      reply.Error("ERR eloqkv engine: " + s.ToString());
      return;
  }
}

Dispatcher::Dispatcher(Engine* engine, const ListenerConfig& config, ListenerStats* stats,
                       ClientRegistry* clients, RowCodec* codec, PasswordVerifier* verifier,
                       CacheFiller* filler)
    : engine_(engine),
      config_(config),
      stats_(stats),
      clients_(clients),
      field_space_{HashFieldsKeyspaceName(config.keyspace_name)},
      router_(engine, codec, codec != nullptr ? &stats->table_generation : nullptr),
      users_(engine, verifier != nullptr ? &stats->table_generation : nullptr),
      verifier_(verifier),
      filler_(filler),
      txn_(engine, 0, &pending_lsn_, &router_, &field_space_),
      coalescer_(engine, RunAloneFunction()),
      txn_coalescer_(engine, &router_, &field_space_, RunAloneFunction()),
      tracker_(engine),
      command_stats_(stats != nullptr ? &stats->commands : nullptr, config.worker_index) {
  std::vector<Command> all;
  RegisterStringCommands(&all);
  RegisterKeyCommands(&all);
  RegisterHashCommands(&all);
  RegisterServerCommands(&all);
  RegisterTrackingCommands(&all);
  for (const Command& c : all) Register(c);
  // Past the shared rows a command would count nothing: a new command must raise the limit.
  if (stats_names_.size() > CommandStatsShared::kMaxCommands) std::abort();
}

void Dispatcher::Register(const Command& c) {
  Command& added = table_.emplace(c.name, c).first->second;
  added.stats_index = static_cast<uint32_t>(stats_names_.size());
  stats_names_.emplace_back(c.name);
  for (const Subcommand& sub : c.subcommands)
    stats_names_.push_back(std::string(c.name) + "|" + sub.name);
}

const Dispatcher::Command* Dispatcher::Find(std::string_view name) const {
  char lower[32];
  if (name.size() >= sizeof(lower)) return nullptr;
  for (size_t i = 0; i < name.size(); ++i)
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
  auto it = table_.find(std::string(lower, name.size()));
  return it == table_.end() ? nullptr : &it->second;
}

void Dispatcher::NotePrefetch(const Session& session, std::span<const std::string_view> args) {
  // Queued commands run at EXEC; an unauthenticated client gets no I/O done on its behalf.
  if (args.size() < 2 || session.in_multi) return;
  if (!config_.password.empty() && !session.authenticated) return;
  const Command* cmd = Find(args[0]);
  if (cmd == nullptr) return;
  auto note = [&](NotedKeys* noted, size_t i) {
    uint32_t keyspace = 0;
    std::string engine_key;
    // A key that does not convert is skipped: the command itself reports it.
    if (Where(args[i], &keyspace, &engine_key))
      noted->emplace_back(keyspace, std::move(engine_key));
  };
  if ((cmd->flags & (kReadsKey | kReadsKeys)) != 0) {
    const size_t end = (cmd->flags & kReadsKeys) != 0 ? args.size() : 2;
    for (size_t i = 1; i < end; ++i) note(&prefetch_, i);
  } else if ((cmd->flags & kWrite) != 0) {
    // Its keys' index entries: the write looks them up.
    cmd->keys.ForEachIndex(args.size(), [&](size_t i) { note(&warm_, i); });
  }
}

bool Dispatcher::Where(std::string_view key, uint32_t* keyspace, std::string* engine_key) {
  KeyTarget target;
  if (!router_.Resolve(key, &target).ok()) return false;
  if (target.table) {
    *keyspace = target.table->keyspace_id;
    *engine_key = std::move(target.engine_key);
    return true;
  }
  if (keyspace_ == 0) return false;
  *keyspace = keyspace_;
  engine_key->assign(key);
  return true;
}

size_t Dispatcher::RunPrefetch(bool device_reads, size_t* looked_up) {
  *looked_up = prefetch_.size();
  PrefetchNoted(&warm_, Engine::PrefetchDepth::kIndex);
  return PrefetchNoted(
      &prefetch_, device_reads ? Engine::PrefetchDepth::kDevice : Engine::PrefetchDepth::kMemory);
}

size_t Dispatcher::PrefetchNoted(NotedKeys* noted, Engine::PrefetchDepth depth) {
  if (noted->empty()) return 0;
  std::sort(noted->begin(), noted->end());
  size_t read = 0;
  std::vector<std::string_view> keys;
  for (size_t i = 0; i < noted->size();) {
    const uint32_t ks = (*noted)[i].first;
    keys.clear();
    for (; i < noted->size() && (*noted)[i].first == ks; ++i) {
      if (keys.empty() || keys.back() != (*noted)[i].second) keys.push_back((*noted)[i].second);
    }
    read += engine_->Prefetch(ks, keys, depth);
  }
  noted->clear();
  return read;
}

bool Dispatcher::Keyspace(ReplyWriter& reply, uint32_t* id) {
  if (keyspace_ != 0 && engine_->KeyspaceExists(keyspace_)) {
    *id = keyspace_;
    return true;
  }
  Status s = engine_->FindKeyspace(config_.keyspace_name, &keyspace_);
  if (s.IsNotFound()) {
    s = engine_->CreateKeyspace(config_.keyspace_name, &keyspace_);
    if (s.code() == Status::Code::kKeyExists)  // another worker created it first
      s = engine_->FindKeyspace(config_.keyspace_name, &keyspace_);
  }
  if (!s.ok()) {
    keyspace_ = 0;
    ReplyEngineError(reply, s);
    return false;
  }
  *id = keyspace_;
  return true;
}

// A mapped user's privileges are re-read whenever the directory changed (GRANT, REVOKE, a
// password change); a user that was dropped is disconnected.
bool Dispatcher::RefreshUser(Session& session, ReplyWriter& reply) {
  users_.Refresh();
  if (users_.loaded_generation() == session.user_generation) return true;
  std::shared_ptr<const RespUser> u = users_.Find(session.user->name);
  if (u == nullptr || u->secret != session.user->secret) {
    reply.Error("NOPERM this user has been removed or its password changed; authenticate again");
    session.user.reset();
    session.authenticated = false;
    session.close_after_reply = true;
    return false;
  }
  session.user = std::move(u);
  session.user_generation = users_.loaded_generation();
  return true;
}

bool Dispatcher::IsTableKey(std::string_view key) {
  router_.Refresh();
  if (router_.table_count() == 0) return false;
  KeyTarget target;
  return !router_.Resolve(key, &target).ok() || target.table != nullptr;
}

bool Dispatcher::Locate(ReplyWriter& reply, const RespUser* user, std::string_view key,
                        uint32_t* keyspace, std::string* engine_key) {
  KeyTarget target;
  Status s = router_.Resolve(key, &target);
  if (s.ok()) s = CheckRead(user, target);
  if (!s.ok()) {
    ReplyEngineError(reply, s);
    return false;
  }
  if (target.table) {
    *keyspace = target.table->keyspace_id;
    *engine_key = std::move(target.engine_key);
    return true;
  }
  engine_key->assign(key);
  return Keyspace(reply, keyspace);
}

void Dispatcher::Execute(Session& session, std::span<const std::string_view> args,
                         ReplyWriter& reply) {
  // A parked command run again was counted when it first ran; any other starts with no park
  // left over (a parked read whose run again ended before it looked at its park).
  const bool resumed = std::exchange(session.park.resumed, false);
  if (!resumed) {
    stats_->commands_processed.fetch_add(1, std::memory_order_relaxed);
    session.park = Session::Park{};
  }
  const size_t mark = reply.size();
  const Command* cmd = Find(args[0]);
  if (resumed && session.park.unblocked == 2 && cmd != nullptr) {
    // CLIENT UNBLOCK ... ERROR: as Redis, the command fails with this error.
    session.park = Session::Park{};
    reply.Error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
    command_stats_.Called(StatsIndex(*cmd, args), 0, true);
    command_stats_.CountError(reply.From(mark));
    return;
  }
  if (cmd == nullptr) {
    if (session.in_multi) session.multi_failed = true;
    session.last_command.clear();
    ReplyUnknownCommand(reply, args);
    command_stats_.CountError(reply.From(mark));
    return;
  }
  // Redis's order: the subcommand, the arity, then authentication.
  const Subcommand* sub = nullptr;
  if (!cmd->subcommands.empty() && args.size() >= 2) {
    sub = FindSubcommand(*cmd, args[1]);
    if (sub == nullptr) {
      session.last_command.clear();
      Reject(session, *cmd, 0, reply,
             "ERR unknown subcommand '" + std::string(Printed(args[1], 128)) + "'. Try " +
                 ToUpper(cmd->name) + " HELP.");
      return;
    }
  }
  const uint32_t stats_index = StatsIndex(*cmd, sub);
  session.last_command = cmd->name;
  if (sub != nullptr) session.last_command.append("|").append(sub->name);
  if (!ArityOk(sub != nullptr ? sub->arity : cmd->arity, args.size())) {
    Reject(session, *cmd, stats_index, reply,
           "ERR wrong number of arguments for '" + session.last_command + "' command");
    return;
  }
  if (!config_.password.empty() && !session.authenticated && (cmd->flags & kNoAuth) == 0) {
    Reject(session, *cmd, stats_index, reply, "NOAUTH Authentication required.");
    return;
  }
  if ((role_ != ServerRole::kPrimary || !read_refusal_.empty()) && (cmd->flags & kNoEngine) == 0) {
    const char* refusal = nullptr;
    if (role_ == ServerRole::kReplaying)
      refusal = "LOADING eloqkv is replaying the write-ahead log after a restart";
    else if (role_ == ServerRole::kStandby && (cmd->flags & kWrite) != 0)
      refusal = "READONLY You can't write against a read only replica.";
    else if (!read_refusal_.empty())
      refusal = read_refusal_.c_str();  // on a primary, writes too: they may read missing rows
    if (refusal != nullptr) {
      Reject(session, *cmd, stats_index, reply, refusal);
      return;
    }
  }
  if (session.user != nullptr && !RefreshUser(session, reply)) {
    command_stats_.Rejected(stats_index);
    command_stats_.CountError(reply.From(mark));
    return;
  }
  if (session.subscribed_invalidate && session.protocol == 2 && !AllowedWhileSubscribed(*cmd)) {
    Reject(session, *cmd, stats_index, reply,
           "ERR Can't execute '" + session.last_command +
               "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
               "this context");
    return;
  }
  // A WAIT already waiting is not held: as in Redis, it replies when its replicas or its
  // timeout say so. A read run again for its cache fill runs again whole, so it is held.
  const bool waiting_already = resumed && !session.park.postponed &&
                               (session.park.replicas_wanted > 0 || session.park.unblocked != 0);
  if (!waiting_already && Postponed(session, *cmd)) return;  // counted when it runs
  if (session.in_multi && (cmd->flags & kNoMulti) == 0) {
    std::vector<std::string> copy(args.begin(), args.end());
    session.queued.push_back(std::move(copy));
    reply.SimpleString("QUEUED");
    return;
  }
  // Where this command's reply starts: flushing gathered writes may rewrite the replies
  // before it, so that is known only once they are flushed.
  size_t reply_mark = reply.size();
  auto started = std::chrono::steady_clock::now();
  if (!TryCoalesce(session, *cmd, args, reply, &reply_mark)) {
    FlushWrites();  // what runs now observes the writes gathered before it
    started = std::chrono::steady_clock::now();  // their time is not this command's
    reply_mark = reply.size();
    RunCommitted(session, *cmd, args, reply);
  }
  // A command parked (for a cache fill, WAIT) runs again: it is counted then.
  if (!session.park.parked)
    CountCall(session, *cmd, args, stats_index, NanosSince(started), reply, reply_mark);
  // After the count: a flush that fails runs this command again alone (RunAlone counts that).
  txn_coalescer_.FlushIfFull();
  // CLIENT CACHING applies to the next command, or to the next transaction as a whole.
  if (!session.in_multi && std::string_view(cmd->name) != "client")
    session.tracking.caching = false;
}

void Dispatcher::CountCall(const Session& session, const Command& cmd,
                           std::span<const std::string_view> args, uint32_t stats_index,
                           uint64_t nanos, const ReplyWriter& reply, size_t mark) {
  const bool failed = reply.IsErrorAt(mark);
  const std::string_view replied = reply.From(mark);
  // Refused for its user's privileges: as Redis counts an ACL refusal.
  if (failed && replied.starts_with("-NOPERM "))
    command_stats_.Rejected(stats_index);
  else
    command_stats_.Called(stats_index, nanos, failed);
  if (failed) command_stats_.CountError(replied);
  const int64_t slower_than = config_.slowlog_log_slower_than_us;
  const uint64_t micros = nanos / 1000;
  if (slow_log_ != nullptr && slower_than >= 0 && micros >= static_cast<uint64_t>(slower_than) &&
      (cmd.flags & kSkipSlowLog) == 0) {
    slow_log_->Add(args, micros, session.peer(), session.name,
                   std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count());
  }
}

const Dispatcher::Subcommand* Dispatcher::FindSubcommand(const Command& cmd,
                                                         std::string_view name) {
  for (const Subcommand& sub : cmd.subcommands)
    if (EqualsIgnoreCase(name, sub.name)) return &sub;
  return nullptr;
}

// A subcommand's row follows its command's, in the order Register named them.
uint32_t Dispatcher::StatsIndex(const Command& cmd, const Subcommand* sub) {
  if (sub == nullptr) return cmd.stats_index;
  return cmd.stats_index + 1 + static_cast<uint32_t>(sub - cmd.subcommands.data());
}

uint32_t Dispatcher::StatsIndex(const Command& cmd, std::span<const std::string_view> args) {
  if (cmd.subcommands.empty() || args.size() < 2) return cmd.stats_index;
  const Subcommand* sub = FindSubcommand(cmd, args[1]);
  return sub == nullptr ? 0 : StatsIndex(cmd, sub);
}

bool Dispatcher::Postponed(Session& session, const Command& cmd) {
  int64_t end_ms = 0;
  Session::Park& park = session.park;
  if (!stats_->client_pause.Holds([&] { return Writes(session, cmd); }, &end_ms)) {
    if (park.postponed) park = Session::Park{};  // it runs as if it had just come
    return false;
  }
  if (!park.keys.empty()) {  // a read that waited for its fill starts over after the pause
    tracker_.RemoveWaiter(session.id());
    park = Session::Park{};
  }
  park.parked = true;
  park.postponed = true;
  park.postponed_writes = Writes(session, cmd);
  park.deadline_ms = end_ms;
  park.ask_again_ms = NowMillis() + Session::Park::kRecountMs;
  return true;
}

bool Dispatcher::Writes(const Session& session, const Command& cmd) const {
  if ((cmd.flags & kWrite) != 0) return true;
  if (std::string_view(cmd.name) != "exec" || !session.in_multi) return false;
  for (const std::vector<std::string>& queued : session.queued) {
    const Command* q = Find(queued[0]);
    if (q != nullptr && (q->flags & kWrite) != 0) return true;
  }
  return false;
}

// As Redis's rejectCommand: a refused command inside MULTI makes EXEC abort, and a refused
// EXEC ends the transaction there, saying why (clients that see -EXECABORT know MULTI is over).
void Dispatcher::Reject(Session& session, const Command& cmd, uint32_t stats_index,
                        ReplyWriter& reply, std::string_view error) {
  command_stats_.Rejected(stats_index);
  const size_t mark = reply.size();
  RejectWith(session, cmd, reply, error);
  command_stats_.CountError(reply.From(mark));
}

void Dispatcher::RejectWith(Session& session, const Command& cmd, ReplyWriter& reply,
                            std::string_view error) {
  if (std::string_view(cmd.name) != "exec") {
    if (session.in_multi) session.multi_failed = true;
    reply.Error(error);
    return;
  }
  session.in_multi = false;
  session.multi_failed = false;
  session.queued.clear();
  session.watched.clear();
  // Redis formats these errors without the ERR code; coded ones (NOAUTH, READONLY) keep theirs.
  if (error.starts_with("ERR ")) error.remove_prefix(4);
  reply.Error("EXECABORT Transaction discarded because of: " + std::string(error));
}

bool Dispatcher::TryCoalesce(Session& session, const Command& cmd,
                             std::span<const std::string_view> args, ReplyWriter& reply,
                             size_t* reply_mark) {
  if ((cmd.flags & (kBlindSet | kGather)) == 0) return false;
  if (session.user != nullptr || keyspace_ == 0 || engine_->state() != EngineState::kReady ||
      !engine_->KeyspaceExists(keyspace_))
    return false;  // the full path checks privileges, resolves the keyspace, says why not
  // A row is converted, its other columns kept, its cache or mirror refused: the full path's.
  if (!PlainKeysOnly(cmd, args)) return false;
  // SET without options only: they read the key (NX, XX, GET, KEEPTTL) or need checking. An
  // MSET with a key left without a value is the full path's to refuse.
  const bool blind = (cmd.flags & kBlindSet) != 0 && args.size() % 2 == 1 &&
                     (args.size() == 3 || std::string_view(cmd.name) != "set");
  if (blind) {
    txn_coalescer_.Flush();
    if (coalescer_.Add(keyspace_, session, session.id(), &session.coalesced_lsn, args, reply,
                       reply_mark))
      return true;
  }
  if ((cmd.flags & kGather) == 0) return false;
  coalescer_.Flush();
  txn_coalescer_.Add(keyspace_, session, session.id(), &session.coalesced_lsn, args, reply,
                     reply_mark, [&](Txn& txn) {
                       Call call{*this, session, args, reply, txn};
                       cmd.handler(call);
                     });
  return true;
}

bool Dispatcher::PlainKeysOnly(const Command& cmd, std::span<const std::string_view> args) {
  if (!cmd.keys.has_keys()) return false;
  bool plain = true;
  cmd.keys.ForEachIndex(args.size(), [&](size_t i) { plain = plain && !IsTableKey(args[i]); });
  return plain;
}

void Dispatcher::RunAlone(Session& session, std::span<const std::string_view> args,
                          std::string_view gathered_reply, ReplyWriter& reply, uint64_t* lsn) {
  const Command* cmd = Find(args[0]);
  // The command running now (whose arrival flushed the round) keeps its own log position.
  const uint64_t running = std::exchange(pending_lsn_, 0);
  const size_t mark = reply.size();
  RunCommitted(session, *cmd, args, reply);
  // The reply the client gets is this one: the counts follow it, not the gathered one.
  const uint32_t stats_index = StatsIndex(*cmd, args);
  if (gathered_reply.starts_with('-')) command_stats_.SucceededLater(stats_index, gathered_reply);
  if (reply.IsErrorAt(mark)) {
    command_stats_.FailedLater(stats_index);
    command_stats_.CountError(reply.From(mark));
  }
  *lsn = std::max(*lsn, TakePendingLsn());
  pending_lsn_ = running;
}

bool Dispatcher::AllowedWhileSubscribed(const Command& cmd) {
  const std::string_view name = cmd.name;
  return name == "subscribe" || name == "unsubscribe" || name == "ping" || name == "quit" ||
         name == "reset";
}

bool Dispatcher::AwaitCacheFills(Session& session, ReplyWriter& reply, size_t mark, bool may_wait) {
  Session::Park& wait = session.park;
  const bool expired = wait.TimedOut();
  const bool unblocked = wait.unblocked != 0;
  const int64_t deadline_ms = wait.deadline_ms;
  wait = Session::Park{};
  const auto& misses = txn_.cache_misses();
  if (filler_ == nullptr ||
      (misses.empty() && txn_.cache_refreshes().empty() && txn_.cache_fresh().empty()))
    return false;
  for (const Txn::CacheKey& k : txn_.cache_refreshes())
    (void)filler_->RequestFill(*k.table, k.engine_key);  // served stale meanwhile: best effort
  // A hot row is refreshed before it expires, so it never misses under load (XFetch).
  const int64_t now = txn_.cache_fresh().empty() ? 0 : NowMillis();
  for (const Txn::CacheKey& k : txn_.cache_fresh()) {
    if (filler_->WantsEarlyRefresh(*k.table, k.fresh_until_ms - now))
      (void)filler_->RequestFill(*k.table, k.engine_key, k.fresh_until_ms);
  }
  if (misses.empty()) return false;
  if (expired && may_wait) {
    // Waited lease_timeout for a fill that did not come: say so, rather than "no such row".
    const Txn::CacheKey& k = misses.front();
    reply.Truncate(mark);
    if (unblocked)
      reply.Error("ERR the read of eloqkv cache " + k.table->relname +
                  " was unblocked (CLIENT UNBLOCK) before its fill came; try again");
    else
      reply.Error("ERR the source of eloqkv cache " + k.table->relname +
                  " did not fill the key within its lease_timeout (" +
                  std::to_string(k.table->lease_timeout_ms) + " ms); try again");
    return false;
  }
  int64_t timeout_ms = 0;
  for (const Txn::CacheKey& k : misses) {
    const Status s = filler_->RequestFill(*k.table, k.engine_key);
    if (!s.ok()) {
      if (!may_wait) continue;
      reply.Truncate(mark);
      ReplyEngineError(reply, s);
      return false;
    }
    timeout_ms = std::max(timeout_ms, k.table->lease_timeout_ms);
    wait.keys.emplace_back(k.table->keyspace_id, k.engine_key);
  }
  if (!may_wait) {
    wait = Session::Park{};
    return false;
  }
  reply.Truncate(mark);
  wait.parked = true;
  // Run again (woken, or to read once more) the command keeps its first deadline.
  const int64_t parked_at = NowMillis();
  wait.deadline_ms = deadline_ms != 0 ? deadline_ms : parked_at + timeout_ms;
  // Spread over a quarter of the interval, so parked clients do not all run again on one tick.
  wait.ask_again_ms = parked_at + Session::Park::kAskAgainMs +
                      static_cast<int64_t>(session.id() % (Session::Park::kAskAgainMs / 4));
  return true;
}

namespace {
// The address without its port: failures from one host count together.
std::string PeerHost(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}
}  // namespace

void Dispatcher::AuthFailed(Session& session) {
  stats_->auth_failures.fetch_add(1, std::memory_order_relaxed);
  const int64_t now = NowMillis();
  if (auth_failures_.size() > 10000) {  // bounded: forget the stale ones, or all
    std::erase_if(auth_failures_, [&](const auto& kv) { return now - kv.second.last_ms > 60000; });
    if (auth_failures_.size() > 10000) auth_failures_.clear();
  }
  AuthFailures& f = auth_failures_[PeerHost(session.peer())];
  if (now - f.last_ms > 60000) f.count = 0;
  f.count = std::min(f.count + 1, 16);
  f.last_ms = now;
  const int64_t delay = std::min(kAuthDelayBaseMs << (f.count - 1), kAuthDelayMaxMs);
  session.reply_not_before_ms = now + delay;
}

void Dispatcher::AuthSucceeded(Session& session) {
  auth_failures_.erase(PeerHost(session.peer()));
}

void Dispatcher::SetTracking(Session& session, bool on) {
  if (on == session.tracking.on) return;
  if (on) {
    tracker_.AddClient();
    stats_->tracking_clients.fetch_add(1, std::memory_order_relaxed);
  } else {
    tracker_.RemoveClient();
    stats_->tracking_clients.fetch_sub(1, std::memory_order_relaxed);
    PublishTrackingStats();
  }
  session.tracking = Session::Tracking{};
  session.tracking.on = on;
}

void Dispatcher::Forget(Session& session) {
  SetTracking(session, false);
  session.subscribed_invalidate = false;
  tracker_.RemoveWaiter(session.id());
  session.park = Session::Park{};
}

void Dispatcher::PublishTrackingStats() {
  const auto now = static_cast<int64_t>(tracker_.keys());
  stats_->tracking_keys.fetch_add(now - published_tracking_keys_, std::memory_order_relaxed);
  published_tracking_keys_ = now;
}

void Dispatcher::RememberReads(const Session& session, const Command& cmd,
                               std::span<const std::string_view> args, uint64_t since) {
  const Session::Tracking& t = session.tracking;
  if ((t.optin && !t.caching) || (t.optout && t.caching)) return;
  const KeySpec& spec = cmd.keys;
  if (spec.first <= 0 || spec.step <= 0) return;
  const int argc = static_cast<int>(args.size());
  const int last = spec.last < 0 ? argc + spec.last : spec.last;
  std::string resolved;
  for (int i = spec.first; i <= last && i < argc; i += spec.step) {
    uint32_t keyspace = 0;
    std::string_view engine_key;
    int64_t expire_at_ms = 0;
    if (!txn_.Observed(args[i], &keyspace, &engine_key, &expire_at_ms)) {
      // Not read from the engine (a key of the wrong type, say): remember where it would be.
      if (!Where(args[i], &keyspace, &resolved)) continue;
      engine_key = resolved;
    }
    tracker_.Remember(session.id(), args[i], keyspace, engine_key, expire_at_ms, since);
  }
  PublishTrackingStats();
}

void Dispatcher::RunCommitted(Session& session, const Command& cmd,
                              std::span<const std::string_view> args, ReplyWriter& reply) {
  if ((cmd.flags & kNoEngine) != 0) {
    Call call{*this, session, args, reply, txn_};
    cmd.handler(call);
    return;
  }
  const EngineState state = engine_->state();
  if (state != EngineState::kReady) {
    if (state == EngineState::kFormatted || state == EngineState::kRecovering)
      reply.Error("LOADING eloqkv is recovering the dataset from disk");
    else
      reply.Error("ERR the eloqkv engine is not available: " + engine_->FailureMessage());
    return;
  }
  uint32_t ks = 0;
  if (!Keyspace(reply, &ks)) return;
  txn_ = Txn(engine_, ks, &pending_lsn_, &router_, &field_space_);
  txn_.set_user(session.user.get());
  txn_.set_origin(session.id());
  const size_t mark = reply.size();
  const bool read = (cmd.flags & kWrite) == 0;
  // A tracking client's read remembers its keys, unless it was refused.
  const uint64_t since = session.tracking.on ? engine_->ChangePosition() : 0;
  auto remember = [&] {
    if (read && session.tracking.on && !reply.IsErrorAt(mark))
      RememberReads(session, cmd, args, since);
  };
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    txn_.Clear();
    Call call{*this, session, args, reply, txn_, false, read};
    cmd.handler(call);
    if (read && AwaitCacheFills(session, reply, mark, true)) return;
    if (!read && reply.IsErrorAt(mark)) {
      // A command that replies an error writes nothing, even what it wrote before it failed
      // (DEL k1 k2 whose read of k2 fails).
      txn_.Clear();
      return;
    }
    if (read) {
      // A read of one key saw one committed state. A read of several (MGET) must not mix two:
      // it is re-checked like an EXEC, and re-run if a key changed meanwhile.
      if (txn_.read_count() < 2) {
        remember();
        return;
      }
      txn_.set_validate_reads(true);
    }
    const Status s = txn_.Commit();
    if (s.ok()) {
      remember();
      return;
    }
    reply.Truncate(mark);
    if (s.code() != Status::Code::kConditionFailed) {
      ReplyEngineError(reply, s);
      txn_.Clear();
      return;
    }
  }
  txn_.Clear();
  reply.Error("ERR too many concurrent writes to the same keys; try again");
}

void Dispatcher::Exec(Session& session, ReplyWriter& reply) {
  if (!session.in_multi) {
    reply.Error("ERR EXEC without MULTI");
    return;
  }
  std::vector<std::vector<std::string>> queued = std::move(session.queued);
  auto watched = std::move(session.watched);
  const bool failed = session.multi_failed;
  session.in_multi = false;
  session.multi_failed = false;
  session.queued.clear();
  session.watched.clear();
  if (failed) {
    reply.Error("EXECABORT Transaction discarded because of previous errors.");
    return;
  }
  const EngineState state = engine_->state();
  uint32_t ks = 0;
  if (state != EngineState::kReady) {
    reply.Error(state == EngineState::kFailed || state == EngineState::kClosed
                    ? "ERR the eloqkv engine is not available: " + engine_->FailureMessage()
                    : std::string("LOADING eloqkv is recovering the dataset from disk"));
    return;
  }
  if (!Keyspace(reply, &ks)) return;
  txn_ = Txn(engine_, ks, &pending_lsn_, &router_, &field_space_);
  txn_.set_user(session.user.get());
  txn_.set_origin(session.id());
  std::vector<std::vector<std::string_view>> views;
  views.reserve(queued.size());
  for (const auto& q : queued) views.emplace_back(q.begin(), q.end());
  std::string body;
  struct RanInExec {
    const Command* cmd;
    std::span<const std::string_view> args;
    uint32_t stats_index;
    uint64_t nanos;
    size_t mark;  // of its reply in body
  };
  std::vector<RanInExec> ran;
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    const uint64_t since = session.tracking.on ? engine_->ChangePosition() : 0;
    txn_.Clear();
    txn_.set_validate_reads(true);
    for (const auto& [key, w] : watched)
      (void)txn_.Require(key, w.seq, w.absent_since);  // WATCH resolved it
    body.clear();
    ran.clear();
    ReplyWriter inner(&body, reply.protocol());
    for (const auto& v : views) {
      const Command* cmd = Find(v[0]);
      const bool write = (cmd->flags & kWrite) != 0;
      const size_t mark = body.size();
      const auto started = std::chrono::steady_clock::now();
      if (write) txn_.Savepoint();
      Call call{*this, session, v, inner, txn_, /*in_exec=*/true, !write};
      cmd->handler(call);
      // A row value that does not convert is the command's error, as it would be alone.
      if (write && !inner.IsErrorAt(mark)) {
        const Status rows = txn_.CheckRowsSinceSavepoint();
        if (!rows.ok()) {
          inner.Truncate(mark);
          ReplyEngineError(inner, rows);
        }
      }
      // A command that replies an error writes nothing, inside EXEC too (the others still do).
      if (write && inner.IsErrorAt(mark))
        txn_.RollbackToSavepoint();
      else if (write)
        txn_.ReleaseSavepoint();
      ran.push_back({cmd, v, StatsIndex(*cmd, v), NanosSince(started), mark});
    }
    bool watch_failed = false;
    const Status s = txn_.Commit(&watch_failed);
    if (s.ok()) {
      // As in Redis, each command EXEC ran counts as called (EXEC too, by its caller).
      for (const RanInExec& r : ran)
        CountCall(session, *r.cmd, r.args, r.stats_index, r.nanos, inner, r.mark);
      reply.ArrayHeader(views.size());
      reply.Raw(body);
      // Inside EXEC nothing waits: misses read as no row, and their fills are asked for.
      AwaitCacheFills(session, reply, reply.size(), false);
      if (session.tracking.on) {
        for (const auto& v : views) {
          const Command* cmd = Find(v[0]);
          if ((cmd->flags & kWrite) == 0) RememberReads(session, *cmd, v, since);
        }
      }
      txn_.Clear();
      return;
    }
    if (s.code() != Status::Code::kConditionFailed) {
      txn_.Clear();
      ReplyEngineError(reply, s);
      return;
    }
    if (watch_failed) {
      txn_.Clear();
      reply.NullArray();
      return;
    }
  }
  txn_.Clear();
  reply.Error("ERR too many concurrent writes to the same keys; try again");
}

}  // namespace eloqkv::resp
