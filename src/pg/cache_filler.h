// Cache fills for RESP readers: the listener cannot run SQL, so filler background workers (a
// pool per database) run a cache's source for keys RESP reads missed, through cache::Lookup — the
// same per-key lease as SQL readers, so a storm of RESP and SQL readers together runs the source
// once. The fill reaches the engine's change feed, which wakes the waiting RESP clients.
//
// Invariants:
//  * Requests go through shared memory: one queue per database, served by up to four fillers
//    (dynamic background workers, started on demand when no filler is idle, again if gone).
//  * A key is asked for once while it waits in the queue or is being filled.
//  * A full queue refuses the request with an error the client sees; nothing waits on it.
//  * The filler runs each source as the cache's owner, in a transaction of its own; a failing
//    source is logged and leaves the key unfilled (its readers time out with an error).
#pragma once

#include "resp/tables.h"

namespace eloqkv::pg {

void RequestCacheFillerShmem();
void InitCacheFillerShmem();

class PgCacheFiller : public resp::CacheFiller {
 public:
  Status RequestFill(const resp::TableDesc& t, std::string_view engine_key,
                     int64_t refresh_if_fresh_until) override;
  bool WantsEarlyRefresh(const resp::TableDesc& t, int64_t remaining_ms) override;
};

}  // namespace eloqkv::pg
