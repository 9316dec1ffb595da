// HashFieldSweeper: deletes the field records of large hashes that no longer exist.
//
// Invariant: a record is deleted only when the header under its key does not name its
// generation. Headers never name a generation again once they stopped (hash_value.h), so a
// deleted record is one nobody could read. Live hashes are stepped over whole (one header read
// per hash, not per field), so a pass costs one read per large hash plus one per dead record.
#pragma once

#include <cstddef>
#include <string>

#include "engine/eloqkv.h"

namespace eloqkv::resp {

class HashFieldSweeper {
 public:
  // keyspace_name: the keyspace whose large hashes' records are swept (the RESP default).
  HashFieldSweeper(Engine* engine, std::string keyspace_name);

  // Examines up to `budget` records from where the last call stopped, deleting the dead ones;
  // *pass_done when it reached the end (the next call starts over).
  Status Step(size_t budget, size_t* deleted, bool* pass_done);

 private:
  Status Flush(WriteBatch* batch, size_t* deleted);

  Engine* engine_;
  std::string keyspace_name_;
  std::string fields_name_;
  // Where the next call starts: after the last record examined, or at the end of a live hash.
  std::string resume_;
  bool resume_inclusive_ = true;
};

}  // namespace eloqkv::resp
