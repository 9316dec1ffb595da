#include <string>

#include "pg/replica_acks.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>

#include "pg/conninfo.h"
#include "pg/pg_guard.h"
#include "pg/pg_headers.h"
#include "pg/replication.h"

extern "C" {
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "replication/walreceiver.h"
#include "utils/backend_status.h"
#include "utils/timestamp.h"
#include "replication/walsender.h"
#include "replication/walsender_private.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/spin.h"
}

namespace eloqkv::pg {

namespace {

// What one walsender slot holds, read under its spinlock (C calls only: CallPostgres).
struct SlotRead {
  int index;
  pid_t pid;
  WalSndState state;
  XLogRecPtr flush;
  TimestampTz reply_time;
};

void ReadSlot(void* arg) {
  auto* r = static_cast<SlotRead*>(arg);
  WalSnd* sender = &WalSndCtl->walsnds[r->index];
  SpinLockAcquire(&sender->mutex);
  r->pid = sender->pid;
  r->state = sender->state;
  r->flush = sender->flush;
  r->reply_time = sender->replyTime;
  SpinLockRelease(&sender->mutex);
}

// Whether the walsender serves a database: a logical one (a subscription, pg_recvlogical)
// does; a physical one does not.
struct KindRead {
  pid_t pid;
  bool logical;
};

void ReadKind(void* arg) {
  auto* k = static_cast<KindRead*>(arg);
  const PGPROC* proc = BackendPidGetProc(k->pid);
  k->logical = proc != nullptr && proc->databaseId != InvalidOid;
}

struct FlushRead {
  XLogRecPtr flush;
};

void ReadFlush(void* arg) {
  static_cast<FlushRead*>(arg)->flush = GetFlushRecPtr(nullptr);
}

// The client addresses of the walsenders pids[i] (ips[i] stays empty for one not found).
struct PeerIp {
  char text[64];
};

struct PeersRead {
  int count;
  const pid_t* pids;
  PeerIp* ips;
};

void ReadPeers(void* arg) {
  auto* p = static_cast<PeersRead*>(arg);
  pgstat_clear_backend_activity_snapshot();  // no transaction here ends it for us
  const int n = pgstat_fetch_stat_numbackends();
  for (int b = 1; b <= n; ++b) {
    const LocalPgBackendStatus* local = pgstat_fetch_stat_local_beentry(b);
    if (local == nullptr || local->backendStatus.st_backendType != B_WAL_SENDER) continue;
    const PgBackendStatus& be = local->backendStatus;
    for (int i = 0; i < p->count; ++i) {
      if (p->pids[i] != be.st_procpid) continue;
      const auto* sa = reinterpret_cast<const struct sockaddr*>(&be.st_clientaddr.addr);
      if (be.st_clientaddr.salen == 0 || sa->sa_family == AF_UNIX)
        strlcpy(p->ips[i].text, "127.0.0.1", sizeof(p->ips[i].text));  // a socket on this host
      else if (getnameinfo(sa, be.st_clientaddr.salen, p->ips[i].text, sizeof(p->ips[i].text),
                           nullptr, 0, NI_NUMERICHOST) != 0)
        strlcpy(p->ips[i].text, "?", sizeof(p->ips[i].text));
    }
  }
  pgstat_clear_backend_activity_snapshot();
}

struct ReceiverRead {
  char conninfo[MAXCONNINFO];  // primary_conninfo, as configured
  bool standby;
  bool running;
  bool connected;
  WalRcvState state;
  XLogRecPtr received;
  TimestampTz last_message;
  XLogRecPtr replayed;
  TimestampTz now;
};

void ReadReceiver(void* arg) {
  auto* r = static_cast<ReceiverRead*>(arg);
  r->now = GetCurrentTimestamp();
  // A hot standby, not a primary replaying its own WAL after a crash (IsStandby()).
  r->standby = RecoveryInProgress() && GetRecoveryState() == RECOVERY_STATE_ARCHIVE;
  if (!r->standby) return;
  const char* conninfo = GetConfigOption("primary_conninfo", true, false);
  strlcpy(r->conninfo, conninfo != nullptr ? conninfo : "", sizeof(r->conninfo));
  r->replayed = GetXLogReplayRecPtr(nullptr);
  r->running = WalRcv != nullptr;
  if (!r->running) return;
  SpinLockAcquire(&WalRcv->mutex);
  r->state = WalRcv->walRcvState;
  // STREAMING is set before the connection is made; ready_to_display once it is.
  r->connected = r->state == WALRCV_STREAMING && WalRcv->ready_to_display;
  r->received = WalRcv->flushedUpto;
  r->last_message = WalRcv->lastMsgReceiptTime;
  SpinLockRelease(&WalRcv->mutex);
}

// This server's clock in µs since the Unix epoch, and Postgres's timestamps on it.
int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
constexpr int64_t kPostgresEpochUs = 946'684'800'000'000;  // 2000-01-01 in Unix µs

}  // namespace

uint64_t PgReplicaAcks::Position() {
  FlushRead f{0};
  PgError err;
  (void)CallPostgres(ReadFlush, &f, &err);
  return std::max<uint64_t>(CurrentReplicationPosition().logged_lsn, f.flush);
}

void PgReplicaAcks::Refresh() {
  physical_.clear();
  if (WalSndCtl == nullptr) return;
  const int64_t now_us = NowMicros();
  std::map<pid_t, Known> seen;
  PgError err;
  for (int i = 0; i < max_wal_senders; ++i) {
    SlotRead r{i, 0, WALSNDSTATE_STARTUP, 0, 0};
    if (!CallPostgres(ReadSlot, &r, &err) || r.pid == 0) continue;
    SenderState state;
    if (r.state == WALSNDSTATE_STREAMING)
      state = SenderState::kStreaming;
    else if (r.state == WALSNDSTATE_CATCHUP)
      state = SenderState::kCatchup;
    else if (r.state == WALSNDSTATE_STARTUP || r.state == WALSNDSTATE_BACKUP)
      state = SenderState::kStartup;
    else
      continue;  // stopping
    // A walsender's kind and address do not change: look each pid up once (ProcArrayLock).
    Known known;
    if (auto it = known_.find(r.pid); it != known_.end()) {
      known = it->second;
    } else {
      KindRead k{r.pid, false};
      if (!CallPostgres(ReadKind, &k, &err)) continue;
      known.logical = k.logical;
    }
    if (r.reply_time != known.reply_time) {
      // When it reported: its own timestamp (this is read only as often as someone asks), never
      // in our future and never going back.
      known.reply_seen_us =
          std::max(known.reply_seen_us, std::min(now_us, r.reply_time + kPostgresEpochUs));
      known.reply_time = r.reply_time;
    }
    seen[r.pid] = known;
    if (!known.logical) physical_.push_back({r.pid, state, r.flush});
  }
  known_.swap(seen);
}

void PgReplicaAcks::ReadAddresses() {
  std::vector<pid_t> pids;
  for (const Sender& s : physical_)
    if (known_[s.pid].ip.empty()) pids.push_back(s.pid);
  if (pids.empty()) return;
  std::vector<PeerIp> ips(pids.size(), PeerIp{});
  PeersRead peers{static_cast<int>(pids.size()), pids.data(), ips.data()};
  PgError err;
  if (!CallPostgres(ReadPeers, &peers, &err)) return;  // "?" this time; read again next time
  for (size_t i = 0; i < pids.size(); ++i) known_[pids[i]].ip = ips[i].text;
}

int PgReplicaAcks::Acknowledged(uint64_t position) {
  const auto now = std::chrono::steady_clock::now();
  if (!taken_once_ || now - taken_ >= kSnapshotAge) {
    Refresh();
    taken_ = now;
    taken_once_ = true;
  }
  int acked = 0;
  for (const Sender& s : physical_)
    acked += s.state == SenderState::kStreaming && s.flush >= position ? 1 : 0;
  return acked;
}

bool PgReplicaAcks::Describe(resp::ReplicationStatus* out) {
  *out = resp::ReplicationStatus{};
  ReceiverRead rcv{};
  PgError err;
  if (!CallPostgres(ReadReceiver, &rcv, &err)) return false;
  Refresh();
  taken_ = std::chrono::steady_clock::now();
  taken_once_ = true;
  ReadAddresses();
  const int64_t now_us = NowMicros();
  for (const Sender& s : physical_) {
    const Known& k = known_[s.pid];
    resp::ReplicationStatus::Replica replica;
    replica.ip = k.ip.empty() ? "?" : k.ip;
    replica.flushed = s.flush;
    replica.lag_s =
        k.reply_time == 0 ? -1 : std::max<int64_t>(0, now_us - k.reply_seen_us) / 1'000'000;
    // Redis's words for a replica still loading its data set, then catching up.
    replica.state = s.state == SenderState::kStreaming ? "online"
                    : s.state == SenderState::kCatchup ? "send_bulk"
                                                       : "wait_bgsave";
    out->replicas.push_back(std::move(replica));
  }
  out->standby = rcv.standby;
  if (!rcv.standby) {
    out->offset = Position();
    return true;
  }
  out->offset = rcv.replayed;
  // As Redis names the configured primary, connected or not. A Unix-domain socket (libpq's
  // default, or a directory) is on this host.
  const std::string host = ConninfoHost(rcv.conninfo);
  out->primary_host = host.empty() || host[0] == '/' || host[0] == '@' ? "127.0.0.1" : host;
  if (rcv.connected) {
    link_up_us_->store(now_us, std::memory_order_relaxed);
    out->link_state = "connected";
    out->last_io_s =
        rcv.last_message != 0 ? std::max<int64_t>(0, rcv.now - rcv.last_message) / 1'000'000 : -1;
  } else {
    const bool trying =
        rcv.running && (rcv.state == WALRCV_STARTING || rcv.state == WALRCV_STREAMING ||
                        rcv.state == WALRCV_RESTARTING);
    out->link_state = trying ? "connecting" : "connect";
    const int64_t up_us = link_up_us_->load(std::memory_order_relaxed);
    out->link_down_s = up_us == 0 ? -1 : std::max<int64_t>(0, now_us - up_us) / 1'000'000;
  }
  out->received = rcv.running ? rcv.received : 0;
  return true;
}

}  // namespace eloqkv::pg
