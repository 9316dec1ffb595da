#include <string>

#include "pg/replica_acks.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

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
  bool streaming;
  XLogRecPtr flush;
  TimestampTz reply_time;
};

void ReadSlot(void* arg) {
  auto* r = static_cast<SlotRead*>(arg);
  WalSnd* sender = &WalSndCtl->walsnds[r->index];
  SpinLockAcquire(&sender->mutex);
  r->pid = sender->pid;
  r->streaming = sender->state == WALSNDSTATE_STREAMING;
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

// The client addresses of the walsenders (pids[i] -> ips[i]), from a fresh snapshot of the
// backends' status.
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
      if (sa->sa_family == AF_UNIX || be.st_clientaddr.salen == 0)
        strlcpy(p->ips[i].text, "127.0.0.1", sizeof(p->ips[i].text));  // a socket on this host
      else if (getnameinfo(sa, be.st_clientaddr.salen, p->ips[i].text, sizeof(p->ips[i].text),
                           nullptr, 0, NI_NUMERICHOST) != 0)
        p->ips[i].text[0] = '\0';
    }
  }
  pgstat_clear_backend_activity_snapshot();
}

struct ReceiverRead {
  bool running;
  WalRcvState state;
  char host[NI_MAXHOST];
  XLogRecPtr received;
  TimestampTz last_message;
  XLogRecPtr replayed;
  TimestampTz now;
};

void ReadReceiver(void* arg) {
  auto* r = static_cast<ReceiverRead*>(arg);
  r->now = GetCurrentTimestamp();
  r->replayed = RecoveryInProgress() ? GetXLogReplayRecPtr(nullptr) : 0;
  r->running = WalRcv != nullptr;
  if (!r->running) return;
  SpinLockAcquire(&WalRcv->mutex);
  r->state = WalRcv->walRcvState;
  strlcpy(r->host, WalRcv->ready_to_display ? WalRcv->sender_host : "", sizeof(r->host));
  r->received = WalRcv->flushedUpto;
  r->last_message = WalRcv->lastMsgReceiptTime;
  SpinLockRelease(&WalRcv->mutex);
}

const char* RedisLinkState(WalRcvState state) {
  switch (state) {
    case WALRCV_STREAMING:
      return "connected";
    case WALRCV_STARTING:
    case WALRCV_RESTARTING:
      return "connecting";
    case WALRCV_WAITING:
      return "sync";
    default:
      return "connect";
  }
}

}  // namespace

bool PgReplicaAcks::Describe(resp::ReplicationStatus* out) {
  *out = resp::ReplicationStatus{};
  ReceiverRead rcv{};
  PgError err;
  if (!CallPostgres(ReadReceiver, &rcv, &err)) return false;
  Refresh();
  taken_ = std::chrono::steady_clock::now();
  taken_once_ = true;
  std::vector<pid_t> pids;
  for (const Sender& s : physical_) pids.push_back(s.pid);
  std::vector<PeerIp> ips(pids.size(), PeerIp{});
  PeersRead peers{static_cast<int>(pids.size()), pids.data(), ips.data()};
  if (!pids.empty() && !CallPostgres(ReadPeers, &peers, &err)) return false;
  for (size_t i = 0; i < physical_.size(); ++i) {
    const Sender& s = physical_[i];
    out->replicas.push_back(
        {ips[i].text, s.flush, s.reply_time == 0 ? -1 : (rcv.now - s.reply_time) / 1'000'000});
  }
  const bool standby = rcv.replayed != 0;
  if (!standby) {
    out->offset = Position();
    return true;
  }
  out->offset = rcv.replayed;
  // A Unix-domain socket's directory names no host: the primary is on this one.
  out->primary_host = !rcv.running || rcv.host[0] == '\0' ? "?"
                      : rcv.host[0] == '/'                ? "127.0.0.1"
                                                          : rcv.host;
  out->link_state = rcv.running ? RedisLinkState(rcv.state) : "connect";
  out->received = rcv.running ? rcv.received : 0;
  out->last_io_s =
      rcv.running && rcv.last_message != 0 ? (rcv.now - rcv.last_message) / 1'000'000 : -1;
  return true;
}

uint64_t PgReplicaAcks::Position() {
  FlushRead f{0};
  PgError err;
  (void)CallPostgres(ReadFlush, &f, &err);
  return std::max<uint64_t>(CurrentReplicationPosition().logged_lsn, f.flush);
}

void PgReplicaAcks::Refresh() {
  physical_.clear();
  if (WalSndCtl == nullptr) return;
  std::vector<pid_t> seen_logical, seen_physical;
  PgError err;
  for (int i = 0; i < max_wal_senders; ++i) {
    SlotRead r{i, 0, false, 0, 0};
    if (!CallPostgres(ReadSlot, &r, &err) || r.pid == 0 || !r.streaming) continue;
    // A walsender's kind does not change: look each pid up once (ProcArrayLock).
    bool logical;
    if (std::find(logical_.begin(), logical_.end(), r.pid) != logical_.end()) {
      logical = true;
    } else if (std::find(known_physical_.begin(), known_physical_.end(), r.pid) !=
               known_physical_.end()) {
      logical = false;
    } else {
      KindRead k{r.pid, false};
      if (!CallPostgres(ReadKind, &k, &err)) continue;
      logical = k.logical;
    }
    (logical ? seen_logical : seen_physical).push_back(r.pid);
    if (!logical) physical_.push_back({r.pid, r.flush, r.reply_time});
  }
  logical_.swap(seen_logical);
  known_physical_.swap(seen_physical);
}

int PgReplicaAcks::Acknowledged(uint64_t position) {
  const auto now = std::chrono::steady_clock::now();
  if (!taken_once_ || now - taken_ >= kSnapshotAge) {
    Refresh();
    taken_ = now;
    taken_once_ = true;
  }
  int acked = 0;
  for (const Sender& s : physical_) acked += s.flush >= position ? 1 : 0;
  return acked;
}

}  // namespace eloqkv::pg
