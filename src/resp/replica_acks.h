// WAIT's view of the host's replicas (Postgres: its physical standbys, by their walsenders).
//
// Invariant: Position() is at or past the end of every write acknowledged to a client before
// it was called, so a replica that acknowledged it holds all of them.
#ifndef ELOQKV_RESP_REPLICA_ACKS_H_
#define ELOQKV_RESP_REPLICA_ACKS_H_

#include <cstdint>

namespace eloqkv::resp {

class ReplicaAcks {
 public:
  virtual ~ReplicaAcks() = default;
  // A position in the host's log past every write acknowledged so far.
  virtual uint64_t Position() = 0;
  // How many replicas have made the host's log durable up to `position`.
  virtual int Acknowledged(uint64_t position) = 0;
};

}  // namespace eloqkv::resp

#endif  // ELOQKV_RESP_REPLICA_ACKS_H_
