// The engine's shared memory region: requested at startup, formatted once per (re)start.
#pragma once

namespace eloqkv::pg {

void InstallSharedMemoryHooks();
// The region (after shmem startup), for Engine::Attach.
void* EngineRegion();

}  // namespace eloqkv::pg
