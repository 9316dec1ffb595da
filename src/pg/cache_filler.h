// Cache fills for RESP readers: the listener cannot run SQL, so a filler background worker per
// database runs a cache's source for keys RESP reads missed, through cache::Lookup — the same
// per-key lease as SQL readers, so a storm of RESP and SQL readers together runs the source
// once. The fill reaches the engine's change feed, which wakes the waiting RESP clients.
//
// Invariants:
//  * Requests go through shared memory: one queue per database, each with at most one filler
//    (started on demand as a dynamic background worker, again if it is gone).
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
  Status RequestFill(const resp::TableDesc& t, std::string_view engine_key) override;
};

}  // namespace eloqkv::pg
