#include "pg/shared_memory.h"

#include "engine/eloqkv.h"
#include "pg/pg_guard.h"
#include "pg/settings.h"

extern "C" {
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

namespace eloqkv::pg {
namespace {

shmem_request_hook_type g_prev_request = nullptr;
shmem_startup_hook_type g_prev_startup = nullptr;
void* g_region = nullptr;

size_t RegionSize() {
  return eloqkv::Engine::SharedMemorySize(EngineOptions());
}

void RequestSharedMemory() {
  if (g_prev_request != nullptr) g_prev_request();
  RequestAddinShmemSpace(RegionSize());
}

// Runs in the postmaster at startup and after every crash restart: Postgres rebuilds shared
// memory, the region is formatted afresh, and the maintenance worker recovers it from disk.
void StartupSharedMemory() {
  if (g_prev_startup != nullptr) g_prev_startup();
  const size_t size = RegionSize();
  bool found = false;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  g_region = ShmemInitStruct("eloqkv engine", size, &found);
  PgError err;
  const bool ok = found || Guarded(&err, [&] {
                    return eloqkv::Engine::FormatRegion(g_region, size, EngineOptions());
                  });
  LWLockRelease(AddinShmemInitLock);
  if (!ok) RaiseError(err, "could not initialize eloqkv shared memory");
}

}  // namespace

void InstallSharedMemoryHooks() {
  g_prev_request = shmem_request_hook;
  shmem_request_hook = RequestSharedMemory;
  g_prev_startup = shmem_startup_hook;
  shmem_startup_hook = StartupSharedMemory;
}

void* EngineRegion() {
  return g_region;
}

}  // namespace eloqkv::pg
