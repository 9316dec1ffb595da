// WAIT's replicas on Postgres: the physical standbys streaming from this server, and how far
// each has flushed the WAL (as pg_stat_replication's flush_lsn); for INFO replication and ROLE
// also their addresses and, on a standby, its WAL receiver (as pg_stat_wal_receiver).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "resp/replica_acks.h"

namespace eloqkv::pg {

class PgReplicaAcks final : public resp::ReplicaAcks {
 public:
  // The end of the last KV batch this server logged, or the WAL flushed, whichever is further:
  // every acknowledged RESP write ends at or before it, and a standby can reach it.
  uint64_t Position() override;
  // Streaming physical walsenders (standbys; pg_receivewal and pg_basebackup's WAL stream
  // too) whose receiver reported a flush at or past `position`. From a snapshot of the
  // walsenders at most kSnapshotAge old: every parked WAIT of a loop iteration shares one.
  int Acknowledged(uint64_t position) override;
  // Reads every walsender's address (pg_stat_activity's snapshot): for INFO and ROLE only.
  bool Describe(resp::ReplicationStatus* out) override;

  static constexpr std::chrono::milliseconds kSnapshotAge{1};

 private:
  struct Sender {
    pid_t pid;
    uint64_t flush;
    int64_t reply_time;  // TimestampTz of its last report, 0: none
  };
  void Refresh();
  std::vector<Sender> physical_;  // streaming physical walsenders, as last seen
  std::vector<pid_t> logical_;    // walsender pids known to serve a database (logical)
  std::vector<pid_t> known_physical_;
  std::chrono::steady_clock::time_point taken_{};
  bool taken_once_ = false;
};

}  // namespace eloqkv::pg
