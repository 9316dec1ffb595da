// The eloqkv.* configuration parameters (all fixed at server start).
#pragma once

#include <string>

#include "engine/eloqkv.h"
#include "resp/command_stats.h"
#include "resp/output_limits.h"

namespace eloqkv::pg {

// Defines the parameters (in _PG_init, while shared_preload_libraries is being processed) and
// raises an ERROR, which stops the postmaster, for an unknown eloqkv.* name or an invalid value
// given in the configuration files or on the command line: Postgres itself only warns about a
// bad value of an extension parameter and silently keeps the default, which is not acceptable
// for storage settings.
void DefineSettings();
// The engine options the parameters describe (the data directory resolved to an absolute path).
eloqkv::Options EngineOptions();
inline constexpr int kMaxRespWorkers = eloqkv::resp::kMaxListenerWorkers;

// The RESP listener's settings (eloqkv.resp_*), as they are now in this process.
struct RespSettings {
  int port = 0;
  std::string listen_addresses;
  int workers = 0;
  std::string password;
  int maxclients = 0;
  int timeout_s = 0;
  std::string default_keyspace;
  size_t max_bulk_len = 0;
  resp::OutputBufferLimits output_limits;
  int debug_sync_delay_ms = 0;
  int slowlog_log_slower_than_us = 0;
  int slowlog_max_len = 0;  // SLOWLOG entries kept (shared memory sized at server start)
};
RespSettings ListenerSettings();
// eloqkv.leases (any session may change it): whether cache misses take leases (docs/cache.md).
bool CacheLeasesOn();
// eloqkv.warm_cache (reloadable): whether the maintenance worker reads values into the empty value
// cache after a start (engine/cache_warmer.h).
bool WarmCacheOn();
// eloqkv.prefault_memory (reloadable): whether the maintenance worker makes the engine's shared
// memory resident after a start (engine/prefaulter.h).
bool PrefaultMemoryOn();
// The engine's data directory (absolute), into a caller buffer.
void ConfiguredDataDirectory(char* out, size_t size);

}  // namespace eloqkv::pg
