// The eloqkv WAL records: how a primary's engine writes travel to its standbys inside Postgres
// WAL (custom resource manager, PG 15 RegisterCustomRmgr). docs/replication.md explains them.
//
// Invariant: batch records enter WAL in engine sequence order (they are inserted under the
// engine's write mutex), and the sequence numbers of consecutive batch records are contiguous.
#pragma once

#include "pg/pg_headers.h"

extern "C" {
#include "access/rmgr.h"
#include "access/transam.h"
}

namespace eloqkv::pg {

// RM_EXPERIMENTAL_ID until an id is reserved on the Postgres wiki's custom WAL resource manager
// page; the number is recorded in WAL, so changing it later needs a fresh base backup.
inline constexpr RmgrId kEloqkvRmgrId = RM_EXPERIMENTAL_ID;
inline constexpr const char* kEloqkvRmgrName = "eloqkv";

// xl_info values (the high four bits are the resource manager's).
inline constexpr uint8 kWalBatch = 0x00;    // WalBatchHeader + the engine's encoded records
inline constexpr uint8 kWalCommit = 0x10;   // WalCommit: a transaction with a batch committed
inline constexpr uint8 kWalResolve = 0x20;  // WalResolve: the primary finished crash recovery
// WalBatchHeader, WalBatchExtras, the encoded records, then the before-images: a batch record
// that carries more than the batch (older servers wrote only kWalBatch).
inline constexpr uint8 kWalBatchExtras = 0x30;

struct WalBatchHeader {
  uint64 first_seq;
  uint32 count;
  // The writing transaction (InvalidTransactionId: autocommitted, as RESP writes are). A standby
  // applies the batch only once clog says the transaction committed, and drops it if it aborted.
  TransactionId xid;
};

struct WalBatchExtras {
  // The first sequence number of the aborted batch this one takes back (0: none): crash
  // recovery, reading both, does not take that batch back again.
  uint64 compensates;
  // The last images_length bytes of the record are the before-images of the keys the batch
  // writes (kv_undo.h), for a transaction's batch: crash recovery takes the batch back with
  // them if the transaction never committed.
  uint32 images_length;
  uint32 reserved;
};

struct WalCommit {
  TransactionId xid;
};

// Written once after a primary's crash recovery: transactions below `next_xid` that did not
// commit never will (their backends died), so standbys drop their batches.
struct WalResolve {
  uint64 next_xid;  // FullTransactionId value
};

}  // namespace eloqkv::pg
