// Connection, server and transaction commands: what clients send at connect and to inspect us.
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <random>

#include "resp/command_util.h"
#include "resp/text.h"

namespace eloqkv::resp {

namespace {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

constexpr const char* kWrongPass = "WRONGPASS invalid username-password pair or user is disabled.";

// A user of eloqkv.create_resp_user: its password is checked against the stored SCRAM secret
// (deliberately slow: thousands of hash iterations), and the session takes its privileges.
bool AuthenticateMapped(Call& c, std::string_view user, std::string_view password) {
  std::shared_ptr<const RespUser> u = c.dispatcher.users().Find(user);
  PasswordVerifier* verifier = c.dispatcher.verifier();
  if (u == nullptr || verifier == nullptr || !verifier->Verify(u->name, password, u->secret)) {
    c.reply.Error(kWrongPass);
    c.dispatcher.AuthFailed(c.session);
    return false;
  }
  c.dispatcher.AuthSucceeded(c.session);
  c.session.user = std::move(u);
  c.session.user_generation = c.dispatcher.users().loaded_generation();
  c.session.authenticated = true;
  return true;
}

// Checks credentials; on success the session is authenticated as that user.
bool Authenticate(Call& c, std::string_view user, std::string_view password) {
  if (!EqualsIgnoreCase(user, "default")) return AuthenticateMapped(c, user, password);
  const std::string& want = c.dispatcher.config().password;
  if (!ConstantTimeEquals(password, want)) {
    c.reply.Error(kWrongPass);
    c.dispatcher.AuthFailed(c.session);
    return false;
  }
  c.dispatcher.AuthSucceeded(c.session);
  c.session.user.reset();
  c.session.authenticated = true;
  return true;
}

void Auth(Call& c) {
  if (c.args.size() > 3) {
    c.reply.Error(kSyntaxError);
    return;
  }
  if (c.args.size() == 3 && !EqualsIgnoreCase(c.args[1], "default")) {
    if (Authenticate(c, c.args[1], c.args[2])) c.reply.SimpleString("OK");
    return;
  }
  if (c.dispatcher.config().password.empty()) {
    if (c.args.size() == 2) {
      c.reply.Error(
          "ERR AUTH <password> called without any password configured for the default user. "
          "Are you sure your configuration is correct?");
      return;
    }
    // AUTH default <anything> succeeds when no password is set, as in Redis (nopass user).
    c.session.user.reset();
    c.reply.SimpleString("OK");
    return;
  }
  const std::string_view user = c.args.size() == 3 ? c.args[1] : "default";
  if (Authenticate(c, user, c.args.back())) c.reply.SimpleString("OK");
}

bool ValidClientName(std::string_view name) {
  for (char ch : name)
    if (ch < '!' || ch > '~') return false;
  return true;
}

// HELLO [protover [AUTH username password] [SETNAME clientname]]
void Hello(Call& c) {
  int64_t proto = c.session.protocol;
  size_t i = 1;
  if (c.args.size() > 1) {
    if (!ParseInt64(c.args[1], &proto)) {
      c.reply.Error("ERR Protocol version is not an integer or out of range");
      return;
    }
    if (proto < 2 || proto > 3) {
      c.reply.Error("NOPROTO unsupported protocol version");
      return;
    }
    i = 2;
  }
  std::string_view user, password, name;
  bool has_auth = false, has_name = false;
  for (; i < c.args.size(); ++i) {
    const bool more = i + 1 < c.args.size();
    if (EqualsIgnoreCase(c.args[i], "auth") && i + 2 < c.args.size()) {
      user = c.args[i + 1];
      password = c.args[i + 2];
      has_auth = true;
      i += 2;
    } else if (EqualsIgnoreCase(c.args[i], "setname") && more) {
      name = c.args[++i];
      has_name = true;
    } else {
      c.reply.Error("ERR Syntax error in HELLO option '" + std::string(c.args[i]) + "'");
      return;
    }
  }
  const bool need_auth = !c.dispatcher.config().password.empty();
  const bool mapped = has_auth && !EqualsIgnoreCase(user, "default");
  if (has_auth && (need_auth || mapped) && !Authenticate(c, user, password)) return;
  if (need_auth && !c.session.authenticated) {
    c.reply.Error(
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
        "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
        "select the RESP protocol version at the same time");
    return;
  }
  if (has_name) {
    if (!ValidClientName(name)) {
      c.reply.Error("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    c.session.name.assign(name);
  }
  c.session.protocol = static_cast<int>(proto);
  c.reply.set_protocol(c.session.protocol);
  c.reply.MapHeader(7);
  c.reply.Bulk("server");
  c.reply.Bulk("redis");
  c.reply.Bulk("version");
  c.reply.Bulk(c.dispatcher.config().server_version);
  c.reply.Bulk("proto");
  c.reply.Integer(proto);
  c.reply.Bulk("id");
  c.reply.Integer(static_cast<int64_t>(c.session.id()));
  c.reply.Bulk("mode");
  c.reply.Bulk("standalone");
  c.reply.Bulk("role");
  c.reply.Bulk("master");
  c.reply.Bulk("modules");
  c.reply.ArrayHeader(0);
}

void Ping(Call& c) {
  if (c.args.size() > 2) {
    ReplyWrongArity(c.reply, "ping");
  } else if (c.session.subscribed_invalidate && c.session.protocol == 2) {
    // Subscribed RESP2 clients get pings as pub/sub-shaped arrays, as from Redis.
    c.reply.ArrayHeader(2);
    c.reply.Bulk("pong");
    c.reply.Bulk(c.args.size() == 2 ? c.args[1] : std::string_view());
  } else if (c.args.size() == 2) {
    c.reply.Bulk(c.args[1]);
  } else {
    c.reply.SimpleString("PONG");
  }
}

void Echo(Call& c) {
  c.reply.Bulk(c.args[1]);
}

void Select(Call& c) {
  int64_t db;
  if (!ParseIntArg(c, c.args[1], &db)) return;
  if (db != 0) {
    c.reply.Error("ERR DB index is out of range");
    return;
  }
  c.reply.SimpleString("OK");
}

void Quit(Call& c) {
  c.session.close_after_reply = true;
  c.reply.SimpleString("OK");
}

void Reset(Call& c) {
  c.dispatcher.Forget(c.session);  // tracking off, unsubscribed
  c.session.ResetState();
  c.session.user.reset();
  c.session.authenticated = c.dispatcher.config().password.empty();
  c.reply.set_protocol(2);
  c.reply.SimpleString("RESET");
}

void Time(Call& c) {
  timeval tv;
  ::gettimeofday(&tv, nullptr);
  c.reply.ArrayHeader(2);
  c.reply.Bulk(FormatInt64(tv.tv_sec));
  c.reply.Bulk(FormatInt64(tv.tv_usec));
}

// CLIENT LIST's flags: x MULTI, P subscribed, t tracking, R its redirect is gone; N none.
std::string ClientFlags(const ClientSnapshot& s) {
  std::string f;  // in Redis's order
  if (s.subscriptions > 0) f += 'P';
  if (s.multi >= 0) f += 'x';
  if (s.blocked != ClientSnapshot::kNotBlocked) f += 'b';
  if (s.redirect >= 0) f += 't';
  if (s.broken_redirect) f += 'R';
  return f.empty() ? "N" : f;
}

std::string ClientLine(const ClientSnapshot& s) {
  const int64_t now = NowMillis();
  std::string line =
      "id=" + std::to_string(s.id) + " addr=" + s.addr + " laddr=" + s.laddr +
      " fd=" + std::to_string(s.fd) + " name=" + s.name +
      " age=" + std::to_string((now - s.created_ms) / 1000) +
      " idle=" + std::to_string((now - s.last_active_ms) / 1000) + " flags=" + ClientFlags(s) +
      " db=0 sub=" + std::to_string(s.subscriptions) +
      " psub=0 ssub=0 multi=" + std::to_string(s.multi) + " watch=" + std::to_string(s.watch) +
      // Redis's buffer fields, which clients parse (redis-py's CLIENT INFO needs
      // them); qbuf and omem as of the client's last command or reply.
      " qbuf=" + std::to_string(s.input_bytes) +
      " qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=" +
      std::to_string(s.output_bytes) +
      " tot-mem=" + std::to_string(s.input_bytes + s.output_bytes) +
      " events=r cmd=" + (s.cmd[0] != '\0' ? std::string(s.cmd) : std::string("NULL")) +
      " user=" + s.user + " redir=" + std::to_string(s.redirect) +
      " resp=" + std::to_string(s.protocol);
  return line;
}

// A TYPE filter of CLIENT KILL/LIST: every client here is "normal", none a master, replica or
// pubsub client (*none). False, replied, for a type Redis does not know.
bool ClientTypeMatches(Call& c, std::string_view type, bool* none) {
  if (EqualsIgnoreCase(type, "master") || EqualsIgnoreCase(type, "replica") ||
      EqualsIgnoreCase(type, "slave") || EqualsIgnoreCase(type, "pubsub")) {
    *none = true;
    return true;
  }
  if (EqualsIgnoreCase(type, "normal")) return true;
  c.reply.Error("ERR Unknown client type '" + std::string(type) + "'");
  return false;
}

// A client that kills itself gets its replies first, as in Redis (CLIENT_CLOSE_AFTER_COMMAND):
// nothing after the kill runs, and what came before is answered before the connection closes.
void Kill(Call& c, ClientRegistry* clients, const ClientRegistry::Client& client) {
  if (client.snapshot.id == c.session.id())
    c.session.close_after_reply = true;
  else
    clients->Kill(client);
}

// CLIENT KILL ip:port | CLIENT KILL [ID id] [ADDR ip:port] [LADDR ip:port] [TYPE type]
// [USER name] [SKIPME yes/no], over the clients of every worker.
void ClientKill(Call& c) {
  ClientRegistry* clients = c.dispatcher.clients();
  if (c.args.size() == 3) {
    for (const ClientRegistry::Client& client : clients->All()) {
      if (client.snapshot.addr == c.args[2]) {
        Kill(c, clients, client);
        c.reply.SimpleString("OK");
        return;
      }
    }
    c.reply.Error("ERR No such client");
    return;
  }
  if ((c.args.size() - 2) % 2 != 0) {
    c.reply.Error(kSyntaxError);
    return;
  }
  int64_t id = -1;
  std::string addr, laddr, user;
  bool skipme = true;
  bool no_type_matches = false;
  for (size_t i = 2; i + 1 < c.args.size(); i += 2) {
    const std::string_view k = c.args[i], v = c.args[i + 1];
    if (EqualsIgnoreCase(k, "id")) {
      if (!ParseInt64(v, &id) || id <= 0) {
        c.reply.Error("ERR client-id should be greater than 0");
        return;
      }
    } else if (EqualsIgnoreCase(k, "addr")) {
      addr.assign(v);
    } else if (EqualsIgnoreCase(k, "laddr")) {
      laddr.assign(v);
    } else if (EqualsIgnoreCase(k, "skipme")) {
      if (EqualsIgnoreCase(v, "yes")) {
        skipme = true;
      } else if (EqualsIgnoreCase(v, "no")) {
        skipme = false;
      } else {
        c.reply.Error(kSyntaxError);
        return;
      }
    } else if (EqualsIgnoreCase(k, "type")) {
      if (!ClientTypeMatches(c, v, &no_type_matches)) return;
    } else if (EqualsIgnoreCase(k, "user")) {
      if (v != "default" && c.dispatcher.users().Find(v) == nullptr) {
        c.reply.Error("ERR No such user '" + std::string(v) + "'");
        return;
      }
      user.assign(v);
    } else {
      c.reply.Error(kSyntaxError);
      return;
    }
  }
  if (no_type_matches) {  // TYPE master/replica/pubsub: no client here is one
    c.reply.Integer(0);
    return;
  }
  int64_t killed = 0;
  for (const ClientRegistry::Client& client : clients->All()) {
    const ClientSnapshot& s = client.snapshot;
    if (id > 0 && s.id != static_cast<uint64_t>(id)) continue;
    if (!addr.empty() && s.addr != addr) continue;
    if (!laddr.empty() && s.laddr != laddr) continue;
    if (!user.empty() && s.user != user) continue;
    if (skipme && s.id == c.session.id()) continue;
    Kill(c, clients, client);
    ++killed;
  }
  c.reply.Integer(killed);
}

// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...], with Redis's checks: every
// client is of type normal here.
void ClientList(Call& c) {
  const size_t n = c.args.size();
  bool none = false;
  std::vector<uint64_t> ids;
  if (n == 4 && EqualsIgnoreCase(c.args[2], "type")) {
    if (!ClientTypeMatches(c, c.args[3], &none)) return;
  } else if (n > 3 && EqualsIgnoreCase(c.args[2], "id")) {
    for (size_t i = 3; i < n; ++i) {
      int64_t id;
      if (!ParseInt64(c.args[i], &id)) {
        c.reply.Error("ERR Invalid client ID");
        return;
      }
      ids.push_back(static_cast<uint64_t>(id));
    }
  } else if (n != 2) {
    c.reply.Error(kSyntaxError);
    return;
  }
  std::string all;
  if (none) {  // TYPE master/replica/pubsub: no client here is one
    c.reply.Verbatim("txt", all);
    return;
  }
  for (const ClientRegistry::Client& client : c.dispatcher.clients()->All()) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), client.snapshot.id) == ids.end())
      continue;
    all += ClientLine(client.snapshot) + "\n";
  }
  c.reply.Verbatim("txt", all);
}

// A timeout in milliseconds, checked as Redis's getTimeoutFromObjectOrReply checks it (with
// room for the millisecond a deadline adds).
bool ParseTimeoutMs(Call& c, std::string_view arg, int64_t now, int64_t* timeout_ms) {
  if (!ParseInt64(arg, timeout_ms)) {
    c.reply.Error("ERR timeout is not an integer or out of range");
    return false;
  }
  if (*timeout_ms < 0) {
    c.reply.Error("ERR timeout is negative");
    return false;
  }
  if (*timeout_ms > INT64_MAX - now - 1) {
    c.reply.Error("ERR timeout is out of range");
    return false;
  }
  return true;
}

// CLIENT PAUSE timeout [WRITE|ALL]: every worker's clients are held (as Redis holds them) until
// the timeout passes or CLIENT UNPAUSE; the pause in force is extended, not shortened.
void ClientPauseCommand(Call& c) {
  ClientPause::Mode mode = ClientPause::Mode::kAll;
  if (c.args.size() > 4) {  // the arity lets them through, as in Redis
    ReplySubcommandSyntaxError(c);
    return;
  }
  if (c.args.size() == 4) {
    if (EqualsIgnoreCase(c.args[3], "write")) {
      mode = ClientPause::Mode::kWrite;
    } else if (!EqualsIgnoreCase(c.args[3], "all")) {
      c.reply.Error("ERR CLIENT PAUSE mode must be WRITE or ALL");
      return;
    }
  }
  const int64_t now = NowMillis();
  int64_t timeout_ms = 0;
  if (!ParseTimeoutMs(c, c.args[2], now, &timeout_ms)) return;
  // The clock counts whole milliseconds: one more, so that the pause is never shorter.
  if (c.dispatcher.stats() != nullptr)
    c.dispatcher.stats()->client_pause.Pause(timeout_ms == 0 ? 0 : now + timeout_ms + 1, mode);
  c.reply.SimpleString("OK");
}

// CLIENT UNBLOCK id [TIMEOUT|ERROR]: wakes a client of any worker from a blocking command (WAIT,
// a read waiting for its cache fill), as if its time was up or with an error; 1 if it was
// blocked. A client held by CLIENT PAUSE is not in a blocking command: 0.
void ClientUnblock(Call& c) {
  if (c.args.size() > 4) {  // the arity lets them through, as in Redis
    ReplySubcommandSyntaxError(c);
    return;
  }
  int how = 1;
  if (c.args.size() == 4) {
    if (EqualsIgnoreCase(c.args[3], "error")) {
      how = 2;
    } else if (!EqualsIgnoreCase(c.args[3], "timeout")) {
      c.reply.Error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
      return;
    }
  }
  int64_t id = 0;
  if (!ParseInt64(c.args[2], &id)) {
    c.reply.Error("ERR value is not an integer or out of range");
    return;
  }
  for (const ClientRegistry::Client& client : c.dispatcher.clients()->All()) {
    if (static_cast<int64_t>(client.snapshot.id) != id) continue;
    c.reply.Integer(c.dispatcher.clients()->Unblock(client, how) ? 1 : 0);
    return;
  }
  c.reply.Integer(0);
}

// CLIENT NO-EVICT / NO-TOUCH on|off: accepted (nothing is evicted, idle times are not kept).
void ClientOnOff(Call& c) {
  if (EqualsIgnoreCase(c.args[2], "on") || EqualsIgnoreCase(c.args[2], "off"))
    c.reply.SimpleString("OK");
  else
    c.reply.Error(kSyntaxError);
}

// CLIENT REPLY ON|OFF|SKIP. The server drops the replies (Session::DropsReplyTo); OFF and SKIP
// are not answered, as in Redis.
void ClientReply(Call& c) {
  const std::string mode = ToLower(c.args[2]);
  if (mode != "on" && mode != "off" && mode != "skip") {
    c.reply.Error(kSyntaxError);
    return;
  }
  // Inside EXEC the array's length is already written: dropping the elements after it would
  // leave the client reading replies that never come (Redis does that).
  if (c.in_exec) {
    c.reply.Error("ERR CLIENT REPLY is not allowed inside a transaction");
    return;
  }
  Session::ReplyMode& r = c.session.replies;
  if (mode == "on") {
    r = Session::ReplyMode{};
    c.reply.SimpleString("OK");
  } else if (mode == "off") {
    r.off = true;
  } else if (!r.off) {
    r.skip_next = true;
  }
}

// The dispatcher checked the subcommand and its count (kClientSubcommands).
void Client(Call& c) {
  const std::string sub = ToLower(c.args[1]);
  if (sub == "setname") {
    if (!ValidClientName(c.args[2])) {
      c.reply.Error("ERR Client names cannot contain spaces, newlines or special characters.");
      return;
    }
    c.session.name.assign(c.args[2]);
    c.reply.SimpleString("OK");
  } else if (sub == "getname") {
    if (c.session.name.empty())
      c.reply.Null();
    else
      c.reply.Bulk(c.session.name);
  } else if (sub == "id") {
    c.reply.Integer(static_cast<int64_t>(c.session.id()));
  } else if (sub == "info") {
    c.reply.Verbatim("txt", ClientLine(SnapshotOf(c.session)) + "\n");
  } else if (sub == "list") {
    ClientList(c);
  } else if (sub == "kill") {
    ClientKill(c);
  } else if (sub == "reply") {
    ClientReply(c);
  } else if (sub == "setinfo") {
    c.reply.SimpleString("OK");
  } else if (sub == "no-evict" || sub == "no-touch") {
    ClientOnOff(c);
  } else if (sub == "pause") {
    ClientPauseCommand(c);
  } else if (sub == "unblock") {
    ClientUnblock(c);
  } else if (sub == "unpause") {
    if (c.dispatcher.stats() != nullptr) c.dispatcher.stats()->client_pause.Unpause();
    c.reply.SimpleString("OK");
  } else if (sub == "help") {
    ReplyHelp(c, {"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                  "CACHING (YES|NO)", "GETNAME", "GETREDIR", "ID", "INFO",
                  "KILL <ip:port> | KILL <option> [value] ... [<option> [value]]", "LIST",
                  "NO-EVICT (ON|OFF)", "NO-TOUCH (ON|OFF)", "PAUSE <timeout> [WRITE|ALL]",
                  "REPLY (ON|OFF|SKIP)", "SETINFO <option> <value>", "SETNAME <name>",
                  "TRACKING (ON|OFF) [REDIRECT <id>] [PREFIX <prefix>] ...", "TRACKINGINFO",
                  "UNBLOCK <clientid> [TIMEOUT|ERROR]", "UNPAUSE", "HELP"});
  } else if (!ClientTrackingSubcommand(c, sub)) {
    c.reply.Error(kSyntaxError);
  }
}

std::string FixedPoint(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

// As Redis prints sizes in INFO: whole bytes below 1 KiB, then two decimals and K, M, G, T, P.
std::string HumanBytes(uint64_t n) {
  if (n < 1024) return std::to_string(n) + "B";
  static constexpr char kUnits[] = "KMGTP";
  double d = static_cast<double>(n) / 1024;
  size_t unit = 0;
  for (; d >= 1024 && unit + 1 < sizeof(kUnits) - 1; ++unit) d /= 1024;
  return FixedPoint(d, 2) + kUnits[unit];
}

void InfoSection(std::string* out, std::string_view title) {
  if (!out->empty()) out->append("\r\n");
  out->append("# ");
  out->append(title);
  out->append("\r\n");
}

void Field(std::string* out, std::string_view name, const std::string& value) {
  out->append(name);
  out->push_back(':');
  out->append(value);
  out->append("\r\n");
}

// What the host says of its replication; a host that cannot say has none, and no position.
ReplicationStatus Replication(Call& c) {
  ReplicationStatus status;
  ReplicaAcks* acks = c.dispatcher.replica_acks();
  if (acks == nullptr || !acks->Describe(&status)) {
    status = ReplicationStatus{};
    status.standby = c.dispatcher.standby();
  }
  return status;
}

// INFO replication's fields, as Redis 7 names and orders them. The other servers' RESP ports
// are taken to be this server's (Postgres does not know its peers' RESP ports).
void AppendReplication(Call& c, std::string* out) {
  const ReplicationStatus r = Replication(c);
  const std::string port = std::to_string(c.dispatcher.config().port);
  const bool up = r.link_state == "connected";
  Field(out, "role", r.standby ? "slave" : "master");
  if (r.standby) {
    Field(out, "master_host", r.primary_host);
    Field(out, "master_port", port);
    Field(out, "master_link_status", up ? "up" : "down");
    Field(out, "master_last_io_seconds_ago", std::to_string(up ? r.last_io_s : -1));
    Field(out, "master_sync_in_progress", "0");
    Field(out, "slave_read_repl_offset", std::to_string(r.received));
    Field(out, "slave_repl_offset", std::to_string(r.offset));
    if (!up) Field(out, "master_link_down_since_seconds", std::to_string(r.link_down_s));
    Field(out, "slave_priority", "100");
    Field(out, "slave_read_only", "1");
    Field(out, "replica_announced", "1");
  }
  Field(out, "connected_slaves", std::to_string(r.replicas.size()));
  for (size_t i = 0; i < r.replicas.size(); ++i) {
    const ReplicationStatus::Replica& s = r.replicas[i];
    Field(out, "slave" + std::to_string(i),
          "ip=" + s.ip + ",port=" + port + ",state=" + s.state + ",offset=" +
              std::to_string(s.flushed) + ",lag=" + std::to_string(std::max<int64_t>(s.lag_s, 0)));
  }
  Field(out, "master_failover_state", "no-failover");
  Field(out, "master_repl_offset", std::to_string(r.offset));
}

// ROLE, as Redis 7 replies it: a primary's offset and online replicas, or a replica's primary.
void Role(Call& c) {
  const ReplicationStatus r = Replication(c);
  const std::string port = std::to_string(c.dispatcher.config().port);
  if (r.standby) {
    c.reply.ArrayHeader(5);
    c.reply.Bulk("slave");
    c.reply.Bulk(r.primary_host.empty() ? "?" : r.primary_host);
    c.reply.Integer(c.dispatcher.config().port);
    c.reply.Bulk(r.link_state.empty() ? "connect" : r.link_state);
    c.reply.Integer(r.link_state == "connected" ? static_cast<int64_t>(r.offset) : -1);
    return;
  }
  std::vector<const ReplicationStatus::Replica*> online;
  for (const ReplicationStatus::Replica& s : r.replicas)
    if (s.state == "online") online.push_back(&s);
  c.reply.ArrayHeader(3);
  c.reply.Bulk("master");
  c.reply.Integer(static_cast<int64_t>(r.offset));
  c.reply.ArrayHeader(online.size());
  for (const ReplicationStatus::Replica* s : online) {
    c.reply.ArrayHeader(3);
    c.reply.Bulk(s->ip);
    c.reply.Bulk(port);
    c.reply.Bulk(std::to_string(s->flushed));
  }
}

void Info(Call& c) {
  std::vector<std::string> wanted;
  for (size_t i = 1; i < c.args.size(); ++i) wanted.push_back(ToLower(c.args[i]));
  // As Redis: commandstats is in "all" and "everything" but not in the default set.
  auto want = [&](std::string_view s) {
    const bool in_default = s != "commandstats";
    if (wanted.empty()) return in_default;
    for (const auto& w : wanted)
      if (w == s || w == "all" || w == "everything" || (w == "default" && in_default)) return true;
    return false;
  };
  const ListenerConfig& cfg = c.dispatcher.config();
  ListenerStats* st = c.dispatcher.stats();
  Engine* engine = c.dispatcher.engine();
  const bool ready = engine->state() == EngineState::kReady;
  EngineInfo ei;
  if (want("memory") || want("keyspace") || want("server") || want("stats")) ei = engine->Info();
  std::string out;
  if (want("server")) {
    InfoSection(&out, "Server");
    Field(&out, "redis_version", cfg.server_version);
    Field(&out, "eloqkv_version", kEngineVersion);
    Field(&out, "redis_mode", "standalone");
    Field(&out, "os", "Linux");
    Field(&out, "arch_bits", std::to_string(sizeof(void*) * 8));
    Field(&out, "multiplexing_api", "epoll");
    Field(&out, "process_id", std::to_string(::getpid()));
    Field(&out, "run_id", st->run_id);
    Field(&out, "tcp_port", std::to_string(cfg.port));
    const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
    Field(
        &out, "server_time_usec",
        std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count()));
    const int64_t up = (NowMillis() - st->started_at_ms.load()) / 1000;
    Field(&out, "uptime_in_seconds", std::to_string(up));
    Field(&out, "uptime_in_days", std::to_string(up / 86400));
    Field(&out, "io_threads_active", "0");
    Field(&out, "eloqkv_workers", std::to_string(cfg.workers));
    Field(&out, "eloqkv_engine_state", ei.state);
    Field(&out, "eloqkv_io_mode", ei.io_mode);
    Field(&out, "eloqkv_sync", ei.sync);
  }
  if (want("clients")) {
    InfoSection(&out, "Clients");
    Field(&out, "connected_clients", std::to_string(st->connected_clients.load()));
    Field(&out, "maxclients", std::to_string(cfg.maxclients));
    Field(&out, "blocked_clients", std::to_string(st->blocked_clients.load()));
    Field(&out, "tracking_clients", std::to_string(st->tracking_clients.load()));
  }
  if (want("memory")) {
    InfoSection(&out, "Memory");
    const uint64_t used = ei.index_memory_used + ei.cache_memory_used;
    Field(&out, "used_memory", std::to_string(used));
    Field(&out, "used_memory_human", HumanBytes(used));
    const long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
    const uint64_t system = pages > 0 && page_size > 0
                                ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)
                                : 0;
    Field(&out, "total_system_memory", std::to_string(system));
    Field(&out, "total_system_memory_human", HumanBytes(system));
    const uint64_t max = ei.index_memory_limit + ei.cache_memory_limit;
    Field(&out, "maxmemory", std::to_string(max));
    Field(&out, "maxmemory_human", HumanBytes(max));
    Field(&out, "maxmemory_policy", "noeviction");
    Field(&out, "eloqkv_index_memory_used", std::to_string(ei.index_memory_used));
    Field(&out, "eloqkv_cache_memory_used", std::to_string(ei.cache_memory_used));
    Field(&out, "eloqkv_disk_bytes", std::to_string(ei.disk_bytes));
  }
  if (want("persistence")) {
    InfoSection(&out, "Persistence");
    Field(&out, "loading", ready ? "0" : "1");
    Field(&out, "aof_enabled", "0");
    Field(&out, "rdb_changes_since_last_save", "0");
  }
  if (want("stats")) {
    InfoSection(&out, "Stats");
    Field(&out, "total_connections_received", std::to_string(st->connections_received.load()));
    Field(&out, "total_commands_processed", std::to_string(st->commands_processed.load()));
    const InstantRates& rates = c.dispatcher.rates();
    Field(&out, "instantaneous_ops_per_sec",
          std::to_string(static_cast<int64_t>(rates.ops_per_sec())));
    Field(&out, "total_net_input_bytes", std::to_string(st->net_input_bytes.load()));
    Field(&out, "total_net_output_bytes", std::to_string(st->net_output_bytes.load()));
    Field(&out, "instantaneous_input_kbps", FixedPoint(rates.input_kbps(), 2));
    Field(&out, "instantaneous_output_kbps", FixedPoint(rates.output_kbps(), 2));
    Field(&out, "rejected_connections", std::to_string(st->rejected_connections.load()));
    const uint64_t expired_base = st->expired_keys_base.load();
    Field(&out, "expired_keys",
          std::to_string(ei.expired_swept > expired_base ? ei.expired_swept - expired_base : 0));
    Field(&out, "evicted_keys", "0");
    Field(&out, "acl_access_denied_auth", std::to_string(st->auth_failures.load()));
    Field(&out, "client_output_buffer_limit_disconnections",
          std::to_string(st->output_limit_disconnections.load()));
    Field(&out, "keyspace_hits", std::to_string(st->keyspace_hits.load()));
    Field(&out, "keyspace_misses", std::to_string(st->keyspace_misses.load()));
    Field(&out, "tracking_total_keys",
          std::to_string(std::max<int64_t>(0, st->tracking_keys.load())));
    Field(&out, "tracking_total_prefixes", "0");
    Field(&out, "total_error_replies", std::to_string(CommandStats::ErrorReplies(st->commands)));
  }
  if (want("replication")) {
    InfoSection(&out, "Replication");
    AppendReplication(c, &out);
  }
  if (want("cpu")) {
    // The listener workers' processes (threads included), as published by each worker's loop.
    InfoSection(&out, "CPU");
    uint64_t sys_us = st->retired_cpu_sys_us.load(std::memory_order_relaxed);
    uint64_t user_us = st->retired_cpu_user_us.load(std::memory_order_relaxed);
    for (int i = 0; i < ListenerStats::kMaxWorkers; ++i) {
      sys_us += st->worker_cpu_sys_us[i].load(std::memory_order_relaxed);
      user_us += st->worker_cpu_user_us[i].load(std::memory_order_relaxed);
    }
    Field(&out, "used_cpu_sys", FixedPoint(static_cast<double>(sys_us) / 1e6, 6));
    Field(&out, "used_cpu_user", FixedPoint(static_cast<double>(user_us) / 1e6, 6));
    Field(&out, "used_cpu_sys_children", "0.000000");
    Field(&out, "used_cpu_user_children", "0.000000");
  }
  if (want("commandstats")) {
    InfoSection(&out, "Commandstats");
    CommandStats::AppendCommandStats(st->commands, c.dispatcher.stats_names(), &out);
  }
  if (want("errorstats")) {
    InfoSection(&out, "Errorstats");
    CommandStats::AppendErrorStats(st->commands, &out);
  }
  if (want("keyspace")) {
    InfoSection(&out, "Keyspace");
    uint32_t ks = 0;
    KeyspaceStats kst;
    if (ready && engine->FindKeyspace(cfg.keyspace_name, &ks).ok() &&
        engine->GetKeyspaceStats(ks, &kst).ok() && kst.keys > 0) {
      Field(&out, "db0",
            "keys=" + std::to_string(kst.keys) + ",expires=" + std::to_string(kst.expiring) +
                ",avg_ttl=" + std::to_string(kst.avg_ttl_ms));
    }
  }
  c.reply.Verbatim("txt", out);
}

// CONFIG GET: what clients ask at connect, and our settings, read-only.
void Config(Call& c) {
  const std::string sub = ToLower(c.args[1]);
  if (sub == "resetstat") {
    ListenerStats* st = c.dispatcher.stats();
    st->commands_processed.store(0);
    st->keyspace_hits.store(0);
    st->keyspace_misses.store(0);
    st->rejected_connections.store(0);
    st->auth_failures.store(0);
    st->output_limit_disconnections.store(0);
    st->connections_received.store(0);
    st->net_input_bytes.store(0);
    st->net_output_bytes.store(0);
    st->expired_keys_base.store(c.dispatcher.engine()->Info().expired_swept);
    CommandStats::Reset(&st->commands);
    c.reply.SimpleString("OK");
    return;
  }
  if (sub == "set" || sub == "rewrite") {
    c.reply.Error("ERR CONFIG " + ToUpper(sub) +
                  " is not supported: set the eloqkv.resp_* settings in postgresql.conf");
    return;
  }
  if (sub == "help") {
    ReplyHelp(
        c, {"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.", "RESETSTAT",
            "    Reset statistics reported by the INFO command.", "HELP"});
    return;
  }
  const ListenerConfig& cfg = c.dispatcher.config();
  const std::vector<std::pair<std::string, std::string>> params = {
      {"port", std::to_string(cfg.port)},
      {"bind", cfg.bind},
      {"maxclients", std::to_string(cfg.maxclients)},
      {"timeout", std::to_string(cfg.timeout_s)},
      {"databases", "1"},
      {"save", ""},
      {"appendonly", "no"},
      {"proto-max-bulk-len", std::to_string(cfg.limits.max_bulk_len)},
      {"client-output-buffer-limit", FormatOutputBufferLimits(cfg.output_limits)},
      {"maxmemory", "0"},
      {"maxmemory-policy", "noeviction"},
      {"replica-read-only", "yes"},
      {"slave-read-only", "yes"},
      {"cluster-enabled", "no"},
      {"requirepass", cfg.password.empty() ? "" : "********"},
      {"slowlog-log-slower-than", std::to_string(cfg.slowlog_log_slower_than_us)},
      {"slowlog-max-len",
       std::to_string(c.dispatcher.slow_log() == nullptr ? 0
                                                         : c.dispatcher.slow_log()->capacity())},
      {"eloqkv-default-keyspace", cfg.keyspace_name},
      {"eloqkv-workers", std::to_string(cfg.workers)},
  };
  // As Redis 7: a name without glob characters is looked up and answered under the name as it
  // was asked (clients look their answer up by it); a pattern under the parameters' names.
  std::vector<std::pair<std::string, const std::string*>> hits;
  auto add = [&](const std::string& name, const std::string& value) {
    for (const auto& [n, v] : hits)
      if (v == &value) return;
    hits.emplace_back(name, &value);
  };
  for (size_t i = 2; i < c.args.size(); ++i) {
    const std::string_view asked = c.args[i];
    const bool pattern = asked.find_first_of("[*?") != std::string_view::npos;
    for (const auto& [name, value] : params) {
      if (!pattern && EqualsIgnoreCase(asked, name))
        add(std::string(asked), value);
      else if (pattern && GlobMatch(asked, name, true))
        add(name, value);
    }
  }
  c.reply.MapHeader(hits.size());
  for (const auto& [name, value] : hits) {
    c.reply.Bulk(name);
    c.reply.Bulk(*value);
  }
}

void CommandInfo(Call& c, const Dispatcher::Command& cmd) {
  c.reply.ArrayHeader(10);
  c.reply.Bulk(cmd.name);
  c.reply.Integer(cmd.arity);
  const bool write = (cmd.flags & Dispatcher::kWrite) != 0;
  c.reply.SetHeader(1);
  c.reply.SimpleString(write ? "write" : "readonly");
  c.reply.Integer(cmd.keys.first);
  c.reply.Integer(cmd.keys.last);
  c.reply.Integer(cmd.keys.step);
  c.reply.SetHeader(0);
  c.reply.SetHeader(0);
  c.reply.ArrayHeader(0);
  c.reply.ArrayHeader(0);
}

// COMMAND GETKEYS name arg...: the keys of a command as written, by its key spec.
void CommandGetKeys(Call& c) {
  const Dispatcher::Command* cmd = c.dispatcher.Find(c.args[2]);
  if (cmd == nullptr) {
    c.reply.Error("ERR Invalid command specified");
    return;
  }
  const size_t argc = c.args.size() - 2;
  if (!ArityOk(cmd->arity, argc)) {
    c.reply.Error("ERR Invalid number of arguments specified for command");
    return;
  }
  if (!cmd->keys.has_keys()) {
    c.reply.Error("ERR The command has no key arguments");
    return;
  }
  std::vector<std::string_view> keys;
  cmd->keys.ForEachIndex(argc, [&](size_t i) { keys.push_back(c.args[2 + i]); });
  c.reply.ArrayHeader(keys.size());
  for (std::string_view key : keys) c.reply.Bulk(key);
}

void Command(Call& c) {
  const Dispatcher& d = c.dispatcher;
  const std::string sub = c.args.size() > 1 ? ToLower(c.args[1]) : std::string();
  if (c.args.size() == 1 || (sub == "info" && c.args.size() == 2)) {
    c.reply.ArrayHeader(d.command_count());
    d.ForEachCommand([&](const Dispatcher::Command& cmd) { CommandInfo(c, cmd); });
  } else if (sub == "count") {
    c.reply.Integer(static_cast<int64_t>(d.command_count()));
  } else if (sub == "list") {
    // COMMAND LIST [FILTERBY MODULE m | ACLCAT c | PATTERN p]: no modules, no ACL categories.
    std::string_view pattern = "*";
    if (c.args.size() == 5 && EqualsIgnoreCase(c.args[2], "filterby")) {
      if (EqualsIgnoreCase(c.args[3], "pattern")) {
        pattern = c.args[4];
      } else if (EqualsIgnoreCase(c.args[3], "module") || EqualsIgnoreCase(c.args[3], "aclcat")) {
        c.reply.ArrayHeader(0);
        return;
      } else {
        c.reply.Error(kSyntaxError);
        return;
      }
    } else if (c.args.size() != 2) {
      c.reply.Error(kSyntaxError);
      return;
    }
    std::vector<const char*> names;
    d.ForEachCommand([&](const Dispatcher::Command& cmd) {
      if (GlobMatch(pattern, cmd.name, true)) names.push_back(cmd.name);
    });
    c.reply.ArrayHeader(names.size());
    for (const char* name : names) c.reply.Bulk(name);
  } else if (sub == "info") {
    c.reply.ArrayHeader(c.args.size() - 2);
    for (size_t i = 2; i < c.args.size(); ++i) {
      const Dispatcher::Command* cmd = d.Find(c.args[i]);
      if (cmd == nullptr)
        c.reply.Null();
      else
        CommandInfo(c, *cmd);
    }
  } else if (sub == "docs") {
    c.reply.MapHeader(0);  // no documentation to offer; clients then show no hints
  } else if (sub == "getkeys") {
    CommandGetKeys(c);
  } else {
    ReplyHelp(
        c, {"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", "(no subcommand)",
            "    Return details about all Redis commands.", "COUNT", "DOCS [<command-name> ...]",
            "GETKEYS <full-command>", "INFO [<command-name> ...]",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]", "HELP"});
  }
}

void Multi(Call& c) {
  if (c.session.in_multi) {
    c.reply.Error("ERR MULTI calls can not be nested");
    return;
  }
  c.session.in_multi = true;
  c.session.multi_failed = false;
  c.session.queued.clear();
  c.reply.SimpleString("OK");
}

void Exec(Call& c) {
  c.dispatcher.Exec(c.session, c.reply);
}

void Discard(Call& c) {
  if (!c.session.in_multi) {
    c.reply.Error("ERR DISCARD without MULTI");
    return;
  }
  c.session.in_multi = false;
  c.session.multi_failed = false;
  c.session.queued.clear();
  c.session.watched.clear();
  c.reply.SimpleString("OK");
}

void Watch(Call& c) {
  if (c.session.in_multi) {
    c.reply.Error("ERR WATCH inside MULTI is not allowed");
    return;
  }
  for (size_t i = 1; i < c.args.size(); ++i) {
    if (c.session.watched.count(c.args[i]) != 0) continue;
    uint32_t ks = 0;
    std::string key;
    if (!c.dispatcher.Locate(c.reply, c.session.user.get(), c.args[i], &ks, &key)) return;
    ReadInfo info;
    info.unsynced_ok = true;
    // Before the lookup: every write it does not show is numbered from here on.
    const uint64_t published = c.dispatcher.engine()->PublishedSequence();
    const Status s = c.dispatcher.engine()->Probe(ks, key, &info);
    c.dispatcher.DependOn(info.depends_on_lsn);
    if (!s.ok() && !s.IsNotFound()) {
      ReplyEngineError(c.reply, s);
      return;
    }
    // A delete (or expiry) that the lookup did show came before the WATCH, whatever its number.
    const uint64_t since = std::max(published, info.seq + 1);
    c.session.watched.emplace(std::string(c.args[i]), s.ok() ? Session::WatchedKey{info.seq, 0}
                                                             : Session::WatchedKey{0, since});
  }
  c.reply.SimpleString("OK");
}

void Unwatch(Call& c) {
  c.session.watched.clear();
  c.reply.SimpleString("OK");
}

// WAIT numreplicas timeout: parks until that many replicas acknowledged every write made so
// far, or the timeout (ms, 0: none) passed; replies how many did. Inside EXEC it does not wait.
void Wait(Call& c) {
  if (c.dispatcher.standby()) {
    c.reply.Error(
        "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 "
        "if a replica is configured to be writable (which is not the default) writes to "
        "replicas are just local and are not propagated.");
    return;
  }
  // As Redis: numreplicas, then the timeout.
  int64_t wanted = 0, timeout_ms = 0;
  if (!ParseInt64(c.args[1], &wanted)) {
    c.reply.Error("ERR value is not an integer or out of range");
    return;
  }
  const int64_t now = NowMillis();
  if (!ParseTimeoutMs(c, c.args[2], now, &timeout_ms)) return;
  Session::Park& park = c.session.park;
  ReplicaAcks* acks = c.dispatcher.replica_acks();
  const bool first = park.replicas_wanted == 0;
  const uint64_t position =
      first ? (acks != nullptr ? acks->Position() : 0) : park.replicas_position;
  const int acked = acks != nullptr ? acks->Acknowledged(position) : 0;
  if (acked >= wanted || c.in_exec || park.TimedOut()) {
    park = Session::Park{};
    c.reply.Integer(acked);
    return;
  }
  park.parked = true;
  park.replicas_position = position;
  park.replicas_wanted = wanted;
  // The clock counts whole milliseconds: one more, so that the wait is never shorter.
  if (first) park.deadline_ms = timeout_ms == 0 ? INT64_MAX : now + timeout_ms + 1;
  park.ask_again_ms = now + Session::Park::kRecountMs;
}

// SLOWLOG GET [count] | LEN | RESET | HELP, as Redis 7 answers them.
void Slowlog(Call& c) {
  SlowLog* log = c.dispatcher.slow_log();
  const std::string sub = ToLower(c.args[1]);
  if (sub == "help") {
    ReplyHelp(c,
              {"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", "GET [<count>]",
               "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
               "    Entries are made of:",
               "    id, timestamp, time in microseconds, arguments array, client IP and port,",
               "    client name", "LEN", "    Return the length of the slowlog.", "RESET",
               "    Reset the slowlog.", "HELP", "    Print this help."});
    return;
  }
  if (sub == "len") {
    c.reply.Integer(log == nullptr ? 0 : static_cast<int64_t>(log->Length()));
    return;
  }
  if (sub == "reset") {
    if (log != nullptr) log->Reset();
    c.reply.SimpleString("OK");
    return;
  }
  if (c.args.size() > 3) {  // GET's arity lets them through, as in Redis
    ReplySubcommandSyntaxError(c);
    return;
  }
  size_t count = 10;
  if (c.args.size() == 3) {
    int64_t n = 0;
    if (!ParseInt64(c.args[2], &n) || n < -1) {
      c.reply.Error("ERR count should be greater than or equal to -1");
      return;
    }
    count = n == -1 ? SIZE_MAX : static_cast<size_t>(n);
  }
  const std::vector<SlowLog::Entry> entries =
      log == nullptr ? std::vector<SlowLog::Entry>() : log->Newest(count);
  c.reply.ArrayHeader(entries.size());
  for (const SlowLog::Entry& e : entries) {
    c.reply.ArrayHeader(6);
    c.reply.Integer(static_cast<int64_t>(e.id));
    c.reply.Integer(e.unix_time_s);
    c.reply.Integer(static_cast<int64_t>(e.duration_us));
    c.reply.ArrayHeader(e.args.size());
    for (const std::string& a : e.args) c.reply.Bulk(a);
    c.reply.Bulk(e.peer);
    c.reply.Bulk(e.name);
  }
}

// Containers' subcommands and their arities (the dispatcher checks them before the handler).
constexpr Dispatcher::Subcommand kClientSubcommands[] = {
    {"caching", 3}, {"getname", 2}, {"getredir", 2},  {"id", 2},           {"info", 2},
    {"kill", -3},   {"list", -2},   {"no-evict", 3},  {"no-touch", 3},     {"reply", 3},
    {"setinfo", 4}, {"setname", 3}, {"tracking", -3}, {"trackinginfo", 2}, {"help", 2},
    {"pause", -3},  {"unpause", 2}, {"unblock", -3}};
constexpr Dispatcher::Subcommand kSlowlogSubcommands[] = {
    {"get", -2}, {"len", 2}, {"reset", 2}, {"help", 2}};
constexpr Dispatcher::Subcommand kConfigSubcommands[] = {
    {"get", -3}, {"set", -4}, {"resetstat", 2}, {"rewrite", 2}, {"help", 2}};
constexpr Dispatcher::Subcommand kCommandSubcommands[] = {
    {"count", 2}, {"docs", -2}, {"getkeys", -3}, {"info", -2}, {"list", -2}, {"help", 2}};

}  // namespace

void RegisterServerCommands(std::vector<Dispatcher::Command>* out) {
  using D = Dispatcher;
  constexpr uint32_t kLocal = D::kNoEngine;
  constexpr uint32_t kConn = D::kNoEngine | D::kNoAuth | D::kNoMulti;
  const std::vector<D::Command> cmds = {
      {"auth", -2, Auth, kConn},
      {"hello", -1, Hello, kConn},
      {"quit", -1, Quit, kConn},
      {"reset", 1, Reset, kConn},
      {"ping", -1, Ping, kLocal},
      {"echo", 2, Echo, kLocal},
      {"select", 2, Select, kLocal},
      {"time", 1, Time, kLocal},
      {"client", -2, Client, kLocal, {}, kClientSubcommands},
      {"info", -1, Info, kLocal},
      {"config", -2, Config, kLocal, {}, kConfigSubcommands},
      {"command", -1, Command, kLocal, {}, kCommandSubcommands},
      {"slowlog", -2, Slowlog, kLocal, {}, kSlowlogSubcommands},
      {"wait", 3, Wait, kLocal},
      {"role", 1, Role, kLocal},
      {"multi", 1, Multi, D::kNoEngine | D::kNoMulti},
      {"exec", 1, Exec, D::kNoEngine | D::kNoMulti | D::kSkipSlowLog},
      {"discard", 1, Discard, D::kNoEngine | D::kNoMulti},
      {"watch", -2, Watch, D::kNoMulti, {1, -1, 1}},
      {"unwatch", 1, Unwatch, D::kNoEngine},
  };
  out->insert(out->end(), cmds.begin(), cmds.end());
}

ListenerStats::ListenerStats() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  for (size_t i = 0; i + 1 < sizeof(run_id); ++i) run_id[i] = kHex[random() % 16];
  run_id[sizeof(run_id) - 1] = '\0';
}

}  // namespace eloqkv::resp
