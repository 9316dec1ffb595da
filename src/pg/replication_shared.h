// Replication state shared by the processes of one server (replication.h is the interface).
#pragma once

#include "pg/pg_headers.h"

extern "C" {
#include "port/atomics.h"
#include "storage/spin.h"
}

namespace eloqkv::pg {

struct ReplicationShared {
  pg_atomic_uint64 logged_lsn;
  pg_atomic_uint64 logged_seq_end;
  pg_atomic_uint64 applied_lsn;
  pg_atomic_uint64 applied_seq_end;
  pg_atomic_uint32 waiting;
  pg_atomic_uint32 resolve_due;  // a crash recovery ended: the resolve record is to be logged
  slock_t mutex;
  uint64 resolve_next_xid;  // what the resolve record carries
  bool broken;              // a standby's KV replay stopped or skipped writes
  char broken_reason[512];
};

ReplicationShared* SharedReplication();

}  // namespace eloqkv::pg
