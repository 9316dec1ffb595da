// The RESP listener's write-out helper: a background worker that flushes WAL and writes the
// engine's log out for the listener workers, so that their event loops never wait for a WAL
// flush (only a Postgres process may flush WAL, and a thread of the listener's process may not
// call Postgres).
//
// Invariants:
//  * A listener worker's request is never lost while the helper runs: the worker publishes the
//    position it waits for (its oldest held replies', so that they go after the first
//    write-out that covers them), then sets the helper's latch; the helper resets its latch
//    before reading the requests and wakes every worker whose position it has written out.
//  * While the helper is not running (not started yet, restarting, wal_level = minimal),
//    Request() says so and the worker writes out itself, as it did before the helper existed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "resp/background_sync.h"

namespace eloqkv::pg {

// In the shmem request and startup hooks of the listener (resp_worker.cc).
size_t WalFlusherShmemSize();
void WalFlusherShmemInit();
// In _PG_init, when the listener runs: registers the helper and creates, in the postmaster,
// the eventfd each listener worker inherits to be woken by it.
void RegisterWalFlusher(int workers);

// Listener worker `index`'s end of the helper.
class PgRemoteWriteOut final : public eloqkv::resp::RemoteWriteOut {
 public:
  explicit PgRemoteWriteOut(int index) : index_(index) {}
  bool Request(uint64_t wake_at, uint64_t lsn) override;
  int event_fd() const override;

 private:
  int index_;
};

}  // namespace eloqkv::pg

extern "C" void eloqkv_wal_flusher_main(long arg);
