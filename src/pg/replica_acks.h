// WAIT's replicas on Postgres: the physical standbys streaming from this server, and how far
// each has flushed the WAL (as pg_stat_replication's flush_lsn).
#pragma once

#include "resp/replica_acks.h"

namespace eloqkv::pg {

class PgReplicaAcks final : public resp::ReplicaAcks {
 public:
  // The WAL insert position: every acknowledged RESP write was logged before it.
  uint64_t Position() override;
  // Streaming physical walsenders (standbys; pg_receivewal and pg_basebackup's WAL stream
  // too) whose receiver reported a flush at or past `position`.
  int Acknowledged(uint64_t position) override;
};

}  // namespace eloqkv::pg
