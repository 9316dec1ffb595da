// The host's replication as the listener sees it: WAIT's acknowledgements, and what INFO
// replication and ROLE show (Postgres: its physical standbys, by their walsenders, and on a
// standby its WAL receiver).
//
// Invariant: Position() is at or past the end of every write acknowledged to a client before
// it was called, so a replica that acknowledged it holds all of them.
#ifndef ELOQKV_RESP_REPLICA_ACKS_H_
#define ELOQKV_RESP_REPLICA_ACKS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace eloqkv::resp {

// Positions are byte offsets in the host's log (a Postgres WAL position as a number).
struct ReplicationStatus {
  struct Replica {
    std::string ip;
    uint64_t flushed = 0;  // how far it has made the log durable
    int64_t lag_s = -1;    // seconds since it last reported (-1: never)
    std::string state = "online";  // Redis's words: wait_bgsave, send_bulk, online
  };
  bool standby = false;
  uint64_t offset = 0;            // a primary's log end; a standby's replayed position
  std::vector<Replica> replicas;  // attached (a standby's too, when it cascades)
  // A standby's link to its primary.
  std::string primary_host;
  std::string link_state;    // Redis's words: connect, connecting, connected
  int64_t last_io_s = -1;    // connected: seconds since the primary last sent anything
  int64_t link_down_s = -1;  // not connected: seconds since it was (-1: not seen connected)
  uint64_t received = 0;     // how far the primary's log was received
};

class ReplicaAcks {
 public:
  virtual ~ReplicaAcks() = default;
  // A position in the host's log past every write acknowledged so far.
  virtual uint64_t Position() = 0;
  // How many replicas have made the host's log durable up to `position`.
  virtual int Acknowledged(uint64_t position) = 0;
  // For INFO replication and ROLE (not on a hot path): false if the host could not say.
  virtual bool Describe(ReplicationStatus* /*out*/) { return false; }
};

}  // namespace eloqkv::resp

#endif  // ELOQKV_RESP_REPLICA_ACKS_H_
