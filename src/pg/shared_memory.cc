// The engine's shared memory region: sized in shmem_request_hook, formatted in
// shmem_startup_hook.
#include "pg/shared_memory.h"

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>  // before Postgres's headers, which redefine vsnprintf

#include "cache/cache_shared.h"
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
size_t g_region_bytes = 0;
bool g_page_size_checked = false;

// From this size on, the cache's and index's lookups spend a measurable share of their time in
// page walks when the region is in 4 kB pages (docs/benchmarks.md: ~10 % of SET and GET at
// 1.85 GB).
constexpr size_t kHugePagesWorthIt = size_t{1} << 30;

// Whether the mapping that holds `p` is in 4 kB pages only, from /proc/self/smaps: its
// KernelPageSize is 4 kB and no transparent huge page backs any of it (ShmemPmdMapped).
bool InSmallPagesAt(const void* p) {
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return false;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  bool found = false;
  uint64_t page_kb = 0, pmd_kb = 0;
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    uintptr_t start = 0, end = 0;
    char perms[8];
    // A mapping's first line: "start-end perms offset dev inode path".
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &start, &end, perms) == 3) {
      if (found) break;  // past the mapping
      found = start <= addr && addr < end;
    } else if (found) {
      (void)std::sscanf(line, "KernelPageSize: %" SCNu64 " kB", &page_kb);
      (void)std::sscanf(line, "ShmemPmdMapped: %" SCNu64 " kB", &pmd_kb);
    }
  }
  std::fclose(f);
  return found && page_kb == 4 && pmd_kb == 0;
}

// Once per postmaster (not in the backends that, under EXEC_BACKEND, run the hook too): says
// so when a large region is in 4 kB pages (huge_pages = try found none reserved, or off).
void HintHugePages() {
  if (IsUnderPostmaster || g_page_size_checked || g_region_bytes < kHugePagesWorthIt) return;
  g_page_size_checked = true;
  if (!InSmallPagesAt(g_region)) return;
  ereport(
      LOG,
      (errmsg("eloqkv: its %zu MB of shared memory are mapped in 4 kB pages", g_region_bytes >> 20),
       errhint("Huge pages made RESP SET and GET about 10%% faster in the benchmarks: reserve "
               "them (vm.nr_hugepages) and set huge_pages = on. See docs/resp.md.")));
}

// The options are a C++ object (their path is a std::string): build them inside the guard.
// _PG_init has already validated them, so a failure here is an out-of-memory.
size_t RegionSize() {
  size_t size = 0;
  PgError err;
  if (!Guarded(&err, [&] {
        size = eloqkv::Engine::SharedMemorySize(EngineOptions());
        return eloqkv::Status::OK();
      })) {
    RaiseError(err, "could not size eloqkv shared memory");
  }
  return size;
}

void RequestSharedMemory() {
  if (g_prev_request != nullptr) g_prev_request();
  RequestAddinShmemSpace(RegionSize());
  cache::RequestSharedMemory();
}

// The postmaster holds the data directory's lock for its whole life, so that no other server
// opens the same engine directory, and so that the lock does not go away with the maintenance
// worker (which the postmaster may restart while backends keep writing). A directory that
// cannot be locked does not stop Postgres: the worker's recovery then fails with the same
// reason, and KV access reports it, as for any other unusable directory.
void LockDataDirectory() {
  PgError err;
  if (!Guarded(&err, [&] { return eloqkv::Engine::LockDataDirectory(EngineOptions().data_dir); })) {
    ereport(WARNING, (errcode(err.sqlstate),
                      errmsg("could not lock the eloqkv data directory: %s", err.message)));
  }
}

// Runs in the postmaster at startup and after every crash restart: Postgres rebuilds shared
// memory, the region is formatted afresh, and the maintenance worker recovers it from disk.
// (Recovery is the only path: nothing in a region that a crashed process may have left
// half-updated is trusted.) A failure is FATAL: the server cannot run without the region.
void StartupSharedMemory() {
  if (g_prev_startup != nullptr) g_prev_startup();
  const size_t size = RegionSize();
  bool found = false;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  g_region = ShmemInitStruct("eloqkv engine", size, &found);
  g_region_bytes = size;
  PgError err;
  const bool ok = found || Guarded(&err, [&] {
                    return eloqkv::Engine::FormatRegion(g_region, size, EngineOptions());
                  });
  LWLockRelease(AddinShmemInitLock);
  cache::StartupSharedMemory();
  if (!ok) {
    ereport(FATAL, (errcode(err.sqlstate),
                    errmsg("could not initialize eloqkv shared memory: %s", err.message)));
  }
  LockDataDirectory();
  HintHugePages();
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

size_t EngineRegionBytes() {
  return g_region_bytes;
}

}  // namespace eloqkv::pg
