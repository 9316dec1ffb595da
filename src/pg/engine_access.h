// This process's handle on the shared engine.
#pragma once

#include "engine/eloqkv.h"

namespace eloqkv::pg {

// The handle, attached on first use (no waiting). Raises an ERROR if the region is missing.
eloqkv::Engine* AttachedEngine();
// This process's engine handle if it has one already (never raises).
eloqkv::Engine* AttachedEngineIfAny();
// The handle once the engine is ready: waits (interruptibly) while the maintenance worker
// recovers it, and raises a clear ERROR if recovery failed or takes too long.
eloqkv::Engine* ReadyEngine();
// Whether this server is a standby (or restoring an archive): recovery from WAL it did not write
// itself. Crash recovery is not: its engine is the one it wrote.
bool IsStandby();
// Recovers a formatted region from disk and logs the outcome. The maintenance worker and the
// startup process (which needs the engine for WAL redo, and after a crash restart runs before
// any background worker) both call it; Recover claims the region, so one of them does the work
// and the other returns at once.
void RecoverEngine(eloqkv::Engine* engine);
// Copies Engine::FailureMessage into out; out stays as it was if the copy fails (it allocates).
void CopyEngineFailure(eloqkv::Engine* engine, char* out, size_t size);

}  // namespace eloqkv::pg
