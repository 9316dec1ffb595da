// WAIT's replicas on Postgres: the physical standbys streaming from this server, and how far
// each has flushed the WAL (as pg_stat_replication's flush_lsn); for INFO replication and ROLE
// also their addresses and states and, on a standby, its WAL receiver (as pg_stat_wal_receiver).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "resp/replica_acks.h"

namespace eloqkv::pg {

class PgReplicaAcks final : public resp::ReplicaAcks {
 public:
  // link_up_us: shared by the workers (ListenerStats::primary_link_up_us).
  explicit PgReplicaAcks(std::atomic<int64_t>* link_up_us) : link_up_us_(link_up_us) {}
  // The end of the last KV batch this server logged, or the WAL flushed, whichever is further:
  // every acknowledged RESP write ends at or before it, and a standby can reach it.
  uint64_t Position() override;
  // Streaming physical walsenders (standbys; pg_receivewal and pg_basebackup's WAL stream
  // too) whose receiver reported a flush at or past `position`. From a snapshot of the
  // walsenders at most kSnapshotAge old: every parked WAIT of a loop iteration shares one.
  int Acknowledged(uint64_t position) override;
  // Every physical walsender (catching up too), and this server's WAL receiver. A new
  // walsender's address is read once, from a snapshot of the backends' status.
  bool Describe(resp::ReplicationStatus* out) override;

  static constexpr std::chrono::milliseconds kSnapshotAge{1};

 private:
  enum class SenderState { kStartup, kCatchup, kStreaming };
  struct Sender {
    pid_t pid;
    SenderState state;
    uint64_t flush;
  };
  // What does not change in a walsender's life, and when it last reported (this server's clock,
  // µs since the Unix epoch: the standby's own timestamps may be skewed).
  struct Known {
    bool logical = false;
    std::string ip;  // empty: not read yet
    int64_t reply_time = 0;
    int64_t reply_seen_us = 0;
  };
  void Refresh();
  void ReadAddresses();
  std::vector<Sender> physical_;  // physical walsenders past startup, as last seen
  std::map<pid_t, Known> known_;  // every walsender seen at the last Refresh
  std::chrono::steady_clock::time_point taken_{};
  bool taken_once_ = false;
  std::atomic<int64_t>* link_up_us_;
};

}  // namespace eloqkv::pg
