// Before-images of a transaction's KV batch. The batch is applied at pre-commit, before Postgres
// writes the transaction's commit record; when the transaction aborts after that (a later commit
// step fails, or the server crashes before the commit record), a compensating batch built from
// these images takes its writes back. The images travel in the batch's WAL record too, so that
// the crash recovery of a primary has them.
//
// Invariant: a compensating batch puts a key back only while the key still holds what the
// aborted batch wrote: its sequence number for a put (a key written since keeps the later
// write), absence for a delete. The engine keeps no trace of a delete once durable, so a delete
// taken back twice would also undo a later delete of the same key: callers take a batch back
// at most once (xact_callbacks.cc, undo_pending.cc).
//
// Not covered: a transaction whose write read the value of another transaction that aborted
// in the same window puts that value back if it aborts too (the images hold what was read).
//
// Kept free of Postgres headers (the build checks it) so that the engine's tests exercise it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/eloqkv.h"

namespace eloqkv::pg::undo {

// Appends to `images` the state of a key before the batch's op-th op wrote it (`deletes`: that
// op deletes the key).
void AddImage(std::string* images, uint32_t keyspace, uint32_t op, bool deletes,
              std::string_view key, bool existed, int64_t expire_at_ms, std::string_view value);

// Builds the batch that puts the images back, for the batch whose first sequence number was
// first_seq. Keys of keyspaces dropped since are left out. Corruption when `images` does not
// parse.
Status BuildCompensation(const Engine& engine, uint64_t first_seq, std::string_view images,
                         WriteBatch* out);

// Builds and writes it; *restored counts the keys that got their before-image back.
Status Compensate(Engine* engine, uint64_t first_seq, std::string_view images, size_t* restored);

}  // namespace eloqkv::pg::undo
