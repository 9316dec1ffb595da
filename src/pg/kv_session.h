// The backend's KV session: engine reads that see the transaction's own writes, the buffer of
// those writes (applied at commit as one atomic batch), and savepoint undo.
//
// This is the C++ side of the wall: everything here runs inside Guarded() and reports failures
// as PgError; nothing here calls a Postgres function that can raise. Pointers in a Row stay
// valid until the next call into this module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/eloqkv.h"
#include "pg/pg_guard.h"

namespace eloqkv::pg::kv {

struct ReadCounters {
  uint64_t rows = 0;
  uint64_t cache_hits = 0;
  uint64_t device_reads = 0;
};

struct Row {
  const char* key = nullptr;
  size_t key_len = 0;
  const char* value = nullptr;
  size_t value_len = 0;
  uint64_t seq = 0;  // the engine's sequence number; 0 for a row this transaction wrote
};

// ---- keyspaces ----
// Finds a keyspace by name; with `create`, creates it when missing (*created tells which).
bool ResolveKeyspace(Engine* e, const char* name, bool create, uint32_t* id, bool* found,
                     bool* created, PgError* err);
bool KeyspaceKeys(Engine* e, uint32_t id, uint64_t* keys, PgError* err);

// ---- reads: the latest committed state plus this transaction's own writes ----
bool Get(Engine* e, uint32_t ks, const char* key, size_t len, Row* row, bool* found,
         ReadCounters* c, PgError* err);
// Whether a key exists (own writes first, then the engine), without reading its value.
bool Exists(Engine* e, uint32_t ks, const char* key, size_t len, bool* exists, PgError* err);
// Reads n keys at once (one batch of device reads); then MultiGetRow(i) for each.
bool MultiGet(Engine* e, uint32_t ks, int n, const char* const* keys, const size_t* lens,
              ReadCounters* c, PgError* err);
bool MultiGetRow(int i, Row* row);

struct CursorSpec {
  const char* lower = nullptr;
  size_t lower_len = 0;
  bool has_lower = false;
  bool lower_inclusive = true;
  const char* upper = nullptr;
  size_t upper_len = 0;
  bool has_upper = false;
  bool upper_inclusive = false;
  const char* prefix = nullptr;
  size_t prefix_len = 0;
  bool keys_only = false;  // rows come back without values (ANALYZE samples keys first)
};
struct Cursor;
// Ordered scan merged with the own writes as they were when the cursor opened (a statement does
// not see the changes it makes itself).
bool OpenCursor(Engine* e, uint32_t ks, const CursorSpec& spec, Cursor** out, PgError* err);
bool CursorNext(Cursor* c, Row* row, bool* done, ReadCounters* counters, PgError* err);
void CloseCursor(Cursor* c) noexcept;

// ---- the transaction's writes ----
enum class Intent {
  kInsert,        // fails (23505) at commit if another session inserted the key meanwhile
  kInsertOrSkip,  // ON CONFLICT DO NOTHING: silently dropped then
  kReplace,       // UPDATE: fails (40001) if the row changed since it was read
  kUpsert,        // written whatever the row's state
};
bool BufferPut(uint32_t ks, const char* keyspace_name, unsigned relid, const char* key, size_t len,
               const char* value, size_t value_len, int64_t expire_at_ms, Intent intent,
               uint64_t read_seq, int nest_level, PgError* err);
bool BufferDelete(uint32_t ks, const char* keyspace_name, unsigned relid, const char* key,
                  size_t len, uint64_t read_seq, int nest_level, PgError* err);
bool BufferTruncate(uint32_t ks, const char* keyspace_name, unsigned relid, int nest_level,
                    PgError* err);
bool HasWrites();
// Remembers the sequence number an UPDATE or DELETE read a row at (its CAS condition).
void NoteRead(uint32_t ks, const char* key, size_t len, uint64_t seq);
uint64_t ReadSeq(uint32_t ks, const char* key, size_t len);

struct CommitFailure {
  bool failed = false;
  bool duplicate = false;  // 23505 rather than 40001
  unsigned relid = 0;
  char key[eloqkv::kMaxKeySize];
  size_t key_len = 0;
};
// Applies every buffered write as one atomic, group-committed batch, then forgets them. With
// `images`, also gathers the before-images of the keys the batch writes (kv_undo.h; the batch's
// WAL record carries them) and sets *first_seq to the batch's first sequence number.
bool Commit(Engine* e, std::string* images, uint64_t* first_seq, CommitFailure* failure,
            PgError* err);
void Discard() noexcept;
void SubxactCommit(int nest_level) noexcept;
void SubxactAbort(int nest_level) noexcept;

// Keyspaces of dropped tables, removed from the engine when the transaction commits.
bool DropAtCommit(const char* keyspace_name, int nest_level, PgError* err);
// Runs the pending drops (after commit); returns how many failed (details in *err).
int RunDrops(Engine* e, PgError* err) noexcept;
void ForgetDrops() noexcept;
bool HasDrops() noexcept;

}  // namespace eloqkv::pg::kv
