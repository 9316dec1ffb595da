// The RESP listener workers (see resp_worker.h).
#include "pg/resp_worker.h"

#include <malloc.h>

#include <algorithm>

#include <cstring>
#include <new>

#include "pg/cache_filler.h"
#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/replica_acks.h"
#include "pg/replication.h"
#include "pg/resp_tables.h"
#include "pg/settings.h"
#include "pg/wal_flusher.h"
#include "pg/worker_spec.h"
#include "resp/server.h"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/resowner.h"
}

namespace eloqkv::pg {

namespace {

constexpr int kPollMs = 100;

shmem_request_hook_type g_prev_request = nullptr;
shmem_startup_hook_type g_prev_startup = nullptr;
eloqkv::resp::ListenerStats* g_stats = nullptr;

eloqkv::resp::SharedClientTable g_clients;
// Slots for CLIENT LIST/KILL across workers: eloqkv.resp_maxclients at server start, at most
// 65536 (~20 MB); clients beyond are served but seen only by their own worker. Fixed when the
// shared memory is sized: a reload that changes maxclients does not resize it.
size_t g_client_slots = 0;
// Invalidations a worker passes to clients of another (CLIENT TRACKING REDIRECT).
eloqkv::resp::RedirectMailbox g_mailbox;
PgCacheFiller g_filler;  // RESP reads of caches that miss
// SLOWLOG entries: eloqkv.resp_slowlog_max_len at server start.
eloqkv::resp::SlowLog g_slow_log;
size_t g_slow_log_slots = 0;

void RequestStats() {
  if (g_prev_request != nullptr) g_prev_request();
  RequestAddinShmemSpace(sizeof(eloqkv::resp::ListenerStats));
  g_client_slots = static_cast<size_t>(std::min(ListenerSettings().maxclients, 65536));
  RequestAddinShmemSpace(eloqkv::resp::SharedClientTable::RequiredBytes(g_client_slots));
  RequestAddinShmemSpace(eloqkv::resp::RedirectMailbox::RequiredBytes());
  g_slow_log_slots = static_cast<size_t>(ListenerSettings().slowlog_max_len);
  RequestAddinShmemSpace(eloqkv::resp::SlowLog::RequiredBytes(g_slow_log_slots));
  RequestAddinShmemSpace(WalFlusherShmemSize());
  RequestCacheFillerShmem();
}

// Rebuilt with the rest of shared memory after a crash restart: the counters start over.
void StartupStats() {
  if (g_prev_startup != nullptr) g_prev_startup();
  bool found = false;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  void* p = ShmemInitStruct("eloqkv resp stats", sizeof(eloqkv::resp::ListenerStats), &found);
  if (!found) new (p) eloqkv::resp::ListenerStats();
  g_stats = static_cast<eloqkv::resp::ListenerStats*>(p);
  const size_t slots = g_client_slots;
  void* clients = ShmemInitStruct("eloqkv resp clients",
                                  eloqkv::resp::SharedClientTable::RequiredBytes(slots), &found);
  if (!found) eloqkv::resp::SharedClientTable::Format(clients, slots);
  g_clients.Attach(clients);
  void* mailbox = ShmemInitStruct("eloqkv resp redirects",
                                  eloqkv::resp::RedirectMailbox::RequiredBytes(), &found);
  if (!found) eloqkv::resp::RedirectMailbox::Format(mailbox);
  g_mailbox.Attach(mailbox);
  void* slow_log = ShmemInitStruct("eloqkv resp slowlog",
                                   eloqkv::resp::SlowLog::RequiredBytes(g_slow_log_slots), &found);
  if (!found) eloqkv::resp::SlowLog::Format(slow_log, g_slow_log_slots);
  g_slow_log.Attach(slow_log);
  WalFlusherShmemInit();
  InitCacheFillerShmem();
  LWLockRelease(AddinShmemInitLock);
}

int g_worker_index = 0;  // this process's, when it is a listener worker
eloqkv::resp::ListenerConfig CurrentConfig() {
  const RespSettings s = ListenerSettings();
  eloqkv::resp::ListenerConfig c;
  c.port = s.port;
  c.bind = s.listen_addresses;
  c.workers = s.workers;
  c.worker_index = g_worker_index;
  c.password = s.password;
  c.maxclients = static_cast<size_t>(s.maxclients);
  c.timeout_s = s.timeout_s;
  // Engine syncs flush WAL first (FlushWalForEngine), which only this thread may do.
  c.sync_on_loop_thread = XLogIsNeeded();
  c.keyspace_name = s.default_keyspace;
  c.limits.max_bulk_len = s.max_bulk_len;
  c.output_limits = s.output_limits;
  c.debug_sync_delay_ms = s.debug_sync_delay_ms;
  c.slowlog_log_slower_than_us = s.slowlog_log_slower_than_us;
  return c;
}

void EmitLog(eloqkv::resp::Server* server) {
  for (const auto& [level, message] : server->TakeLog()) {
    ereport(level >= eloqkv::LogLevel::kWarning ? WARNING : LOG,
            (errmsg("eloqkv resp: %s", message.c_str())));
  }
}

// Tells the listener what Postgres is doing; on a primary, also ends the engine's replica mode
// once recovery is over (see LeaveReplicaModeIfRecovered).
void UpdateRole(eloqkv::resp::Server* server) {
  using eloqkv::resp::ServerRole;
  static char refusal[600];
  ServerRole role = ServerRole::kPrimary;
  refusal[0] = '\0';
  if (!RecoveryInProgress()) {
    eloqkv::Engine* e = eloqkv::pg::AttachedEngine();
    if (e->state() == eloqkv::EngineState::kReady)
      eloqkv::pg::LeaveReplicaModeIfRecovered(e, /*may_wait=*/false);
  } else if (!eloqkv::pg::IsStandby()) {
    role = ServerRole::kReplaying;
  } else {
    role = ServerRole::kStandby;
  }
  // A stopped KV replay outlives promotion (replay_stop.cc).
  if (role != ServerRole::kReplaying &&
      eloqkv::pg::ReplayBrokenReason(refusal + 4, sizeof(refusal) - 4))
    std::memcpy(refusal, "ERR ", 4);
  // A primary's writes are safe once WAL holds them, while WAL is kept for the engine.
  const bool write_out = role == ServerRole::kPrimary && eloqkv::pg::WalRetentionActive();
  PgError err;
  (void)Guarded(&err, [&] {
    server->SetRole(role, refusal);
    server->SetWriteOut(write_out);
    return eloqkv::Status::OK();
  });
}

}  // namespace

void BumpRespTableGeneration() {
  if (g_stats != nullptr) g_stats->table_generation.fetch_add(1, std::memory_order_acq_rel);
}

void RegisterRespWorkers() {
  g_prev_request = shmem_request_hook;
  shmem_request_hook = RequestStats;
  g_prev_startup = shmem_startup_hook;
  shmem_startup_hook = StartupStats;
  const RespSettings s = ListenerSettings();
  if (s.port == 0) return;
  RegisterWalFlusher(s.workers);
  for (int i = 0; i < s.workers; ++i) {
    char name[BGW_MAXLEN];
    snprintf(name, sizeof(name), "eloqkv resp worker %d", i);
    // From postmaster start: while the engine recovers, clients get -LOADING, as from Redis.
    BackgroundWorker w =
        WorkerSpec("eloqkv resp worker", name, "eloqkv_resp_main", BGWORKER_SHMEM_ACCESS,
                   BgWorkerStart_PostmasterStart, 1, Int32GetDatum(i));
    RegisterBackgroundWorker(&w);
  }
}

}  // namespace eloqkv::pg

using eloqkv::pg::Guarded;
using eloqkv::pg::PgError;

extern "C" void eloqkv_resp_main(long arg) {
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  // Password checks (SCRAM) register their crypto contexts with the current resource owner;
  // a worker runs no transaction, so it keeps one of its own.
  CurrentResourceOwner = ResourceOwnerCreate(nullptr, "eloqkv resp worker");
  // Client buffers of a few MB come and go (big replies, long pipelines). glibc would raise its
  // mmap threshold after the first such free and serve the next ones from the heap, which is
  // rarely returned to the system; a fixed threshold keeps every big buffer in its own mapping,
  // given back when the buffer is released.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  eloqkv::pg::g_worker_index = static_cast<int>(arg);

  eloqkv::Engine* engine = eloqkv::pg::AttachedEngine();
  // The server lives in a heap object that this frame never unwinds past with a longjmp: every
  // call into it goes through Guarded(), and Postgres is only called between those calls.
  auto* server = new (std::nothrow)
      eloqkv::resp::Server(engine, eloqkv::pg::CurrentConfig(), eloqkv::pg::g_stats,
                           eloqkv::pg::NewPgRowCodec(), eloqkv::pg::PgPasswordVerifier(),
                           &eloqkv::pg::g_clients, &eloqkv::pg::g_mailbox, &eloqkv::pg::g_filler);
  if (server == nullptr) ereport(FATAL, (errmsg("eloqkv resp: out of memory")));
  // Lives as long as the process: the server may use it until it is deleted. Without its
  // descriptor (no eventfd at server start) the worker writes out itself.
  static eloqkv::pg::PgRemoteWriteOut remote(static_cast<int>(arg));
  if (remote.event_fd() >= 0) server->SetRemoteWriteOut(&remote);
  server->SetSlowLog(&eloqkv::pg::g_slow_log);
  static eloqkv::pg::PgReplicaAcks replicas(&eloqkv::pg::g_stats->primary_link_up_us);
  server->SetReplicaAcks(&replicas);
  PgError err;
  if (!Guarded(&err, [&] { return server->Listen(); })) {
    const eloqkv::pg::RespSettings s = eloqkv::pg::ListenerSettings();
    delete server;
    // Exit with an error: the postmaster starts the worker again after bgw_restart_time.
    ereport(FATAL, (errmsg("eloqkv resp: could not listen on %s port %d: %s",
                           s.listen_addresses.c_str(), s.port, err.message),
                    errhint("Free the port, or change eloqkv.resp_port or "
                            "eloqkv.resp_listen_addresses.")));
  }
  if (arg == 0) {
    const eloqkv::pg::RespSettings s = eloqkv::pg::ListenerSettings();
    ereport(LOG, (errmsg("eloqkv resp: listening on %s port %d with %d workers",
                         s.listen_addresses.c_str(), s.port, s.workers)));
  }
  for (;;) {
    if (ShutdownRequestPending) break;
    if (!PostmasterIsAlive()) break;
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
      const eloqkv::resp::ListenerConfig config = eloqkv::pg::CurrentConfig();
      (void)Guarded(&err, [&] {
        server->UpdateConfig(config);
        return eloqkv::Status::OK();
      });
    }
    eloqkv::pg::UpdateRole(server);
    const bool ok = Guarded(&err, [&] { return server->Poll(eloqkv::pg::kPollMs); });
    eloqkv::pg::EmitLog(server);
    if (!ok) {
      delete server;
      ereport(FATAL, (errmsg("eloqkv resp: %s", err.message)));
    }
  }
  // Smart and fast shutdown alike: close the listeners and every client. Exit code 1, so that a
  // worker terminated on its own (not by a server shutdown) is started again by the postmaster.
  delete server;
  proc_exit(1);
}
