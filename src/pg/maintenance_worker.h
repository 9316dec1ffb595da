// The eloqkv maintenance background worker: recovers the engine at startup, then runs interval
// syncs, TTL sweeps, compaction and checkpoints; on shutdown it flushes and checkpoints.
#pragma once

namespace eloqkv::pg {

void RegisterMaintenanceWorker();

}  // namespace eloqkv::pg

extern "C" void eloqkv_maintenance_main(long arg);
