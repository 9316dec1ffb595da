// The engine's shared memory region: requested at startup, formatted once per (re)start.
#pragma once

#include <cstddef>

namespace eloqkv::pg {

void InstallSharedMemoryHooks();
// The region (after shmem startup), for Engine::Attach.
void* EngineRegion();
// Its size, as requested from Postgres.
size_t EngineRegionBytes();

}  // namespace eloqkv::pg
