// The RESP listener: eloqkv.resp_workers background workers that share eloqkv.resp_port and
// serve Redis clients straight from the engine (src/resp), with no backend or MVCC on the path.
#pragma once

namespace eloqkv::pg {

// In _PG_init: reserves the listener's shared counters and registers the workers (none when
// eloqkv.resp_port = 0).
void RegisterRespWorkers();
// Tells the workers that the served tables changed (after the changing transaction committed).
void BumpRespTableGeneration();

}  // namespace eloqkv::pg

extern "C" void eloqkv_resp_main(long arg);
