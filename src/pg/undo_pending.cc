// Batches of transactions that never committed, found by crash recovery in a primary's engine,
// and taken back once the engine takes writes again.
//
// The startup process collects them during redo but cannot write them back: it may not write
// WAL, and a compensating batch must reach standbys like any other write. So it appends them to
// a file next to the engine's files, which the end of redo syncs and renames to a name of its
// own (before the end-of-recovery checkpoint moves the redo start past their WAL records); the
// first process to let the engine take writes reads every such file, writes the compensating
// batches and removes the file. A crash before that leaves the file for the next recovery;
// writing a compensation twice changes nothing (kv_undo.h). A crash during redo leaves only the
// collecting file, which the next redo starts over: WAL still has its batches.
//
// A file: for each batch, its first sequence number (8 bytes), the length of its images (4
// bytes) and the images. Streamed, so that no process holds more than one batch's images.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "pg/engine_access.h"
#include "pg/kv_undo.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/replication_shared.h"
#include "pg/settings.h"

extern "C" {
#include "access/xlogrecovery.h"
#include "storage/fd.h"
#include "utils/memutils.h"
}

namespace eloqkv::pg {
namespace {

constexpr const char* kPrefix = "kv_uncommitted_batches.";
constexpr const char* kCollecting = "kv_uncommitted_batches.collecting";

int g_collect_fd = -1;  // the startup process's collecting file, once a batch is collected
bool g_collect_failed = false;
uint64 g_collected_bytes = 0;

void PathOf(char* out, size_t size, const char* name) {
  char dir[MAXPGPATH];
  ConfiguredDataDirectory(dir, sizeof(dir));
  snprintf(out, size, "%s/%s", dir, name);
}

bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// 1 read, 0 at the end of the file, -1 on an error or a short read (a torn file).
int ReadAll(int fd, char* data, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::read(fd, data + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return done == 0 ? 0 : -1;
    done += static_cast<size_t>(r);
  }
  return 1;
}

// A file that redo finished: its batches are due to be taken back.
bool IsDueFile(const char* name) {
  return strncmp(name, kPrefix, strlen(kPrefix)) == 0 && strcmp(name, kCollecting) != 0;
}

void WarnLeftBehind(const char* path) {
  ereport(WARNING,
          (errcode_for_file_access(), errmsg("could not write file \"%s\": %m", path),
           errdetail("KV writes of transactions that never committed stay on this server.")));
}

// Writes the compensating batches of one file; false (with *err) when one could not be.
bool TakeBackFile(eloqkv::Engine* engine, const char* path, size_t* batches, size_t* transactions,
                  size_t* restored, PgError* err) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err->message, sizeof(err->message), "could not open \"%s\": %s", path,
             strerror(errno));
    return false;
  }
  bool ok = true;
  for (;;) {
    char header[sizeof(uint64) + sizeof(uint32)];
    const int got = ReadAll(fd, header, sizeof(header));
    if (got == 0) break;
    uint64 first_seq;
    uint32 length;
    std::memcpy(&first_seq, header, sizeof(first_seq));
    std::memcpy(&length, header + sizeof(first_seq), sizeof(length));
    char* images =
        got > 0
            ? static_cast<char*>(palloc_extended(length + 1, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM))
            : nullptr;
    if (images == nullptr || ReadAll(fd, images, length) < 0) {
      if (images != nullptr) pfree(images);
      snprintf(err->message, sizeof(err->message), "\"%s\" is damaged or could not be read", path);
      ok = false;
      break;
    }
    size_t keys = 0;
    ok = Guarded(err, [&] {
      return undo::Compensate(engine, first_seq, std::string_view(images, length), &keys);
    });
    pfree(images);
    if (!ok) break;
    ++*batches;
    // A transaction that aborted in its backend took its batch back itself (unless it crashed
    // first): nothing is restored then.
    if (keys > 0) ++*transactions;
    *restored += keys;
  }
  ::close(fd);
  return ok;
}

}  // namespace

void CollectUndo(uint64_t first_seq, const char* images, size_t length) {
  if (g_collect_failed) return;
  char path[MAXPGPATH];
  PathOf(path, sizeof(path), kCollecting);
  // This redo starts the collecting file over: one a crashed redo left may end in a torn batch,
  // and WAL still holds what it had.
  if (g_collect_fd < 0) g_collect_fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const auto length32 = static_cast<uint32>(length);
  char header[sizeof(uint64) + sizeof(uint32)];
  std::memcpy(header, &first_seq, sizeof(first_seq));
  std::memcpy(header + sizeof(first_seq), &length32, sizeof(length32));
  if (g_collect_fd < 0 || !WriteAll(g_collect_fd, header, sizeof(header)) ||
      !WriteAll(g_collect_fd, images, length)) {
    WarnLeftBehind(path);
    g_collect_failed = true;
    return;
  }
  g_collected_bytes += length;
}

void PersistCollectedUndo() {
  char collecting[MAXPGPATH], name[64], path[MAXPGPATH];
  PathOf(collecting, sizeof(collecting), kCollecting);
  if (g_collect_fd < 0) {
    (void)unlink(collecting);  // a crashed redo's, whose batches this one found committed
    return;
  }
  // Named by where redo ended: a later recovery, which ends further on, gets a name of its own.
  const XLogRecPtr end = GetXLogReplayRecPtr(nullptr);
  snprintf(name, sizeof(name), "%s%016" PRIX64, kPrefix, static_cast<uint64>(end));
  PathOf(path, sizeof(path), name);
  const bool synced = !g_collect_failed && pg_fsync(g_collect_fd) == 0;
  const int saved_errno = errno;
  ::close(g_collect_fd);
  g_collect_fd = -1;
  errno = saved_errno;
  // durable_rename syncs the directory too; at LOG it reports instead of raising an ERROR.
  if (!synced || durable_rename(collecting, path, LOG) != 0) {
    if (!g_collect_failed) WarnLeftBehind(collecting);
    (void)unlink(collecting);
    return;
  }
  ereport(LOG, (errmsg("eloqkv: KV writes of transactions that never committed are to be taken "
                       "back once recovery ends (%" PRIu64 " bytes of before-images)",
                       g_collected_bytes)));
  pg_atomic_write_u32(&SharedReplication()->undo_due, 1);
}

bool UndoFileExists() {
  char dir[MAXPGPATH];
  ConfiguredDataDirectory(dir, sizeof(dir));
  DIR* d = opendir(dir);
  if (d == nullptr) return false;
  bool found = false;
  while (struct dirent* de = readdir(d)) {
    if (IsDueFile(de->d_name)) {
      found = true;
      break;
    }
  }
  closedir(d);
  return found;
}

void TakeBackUncommittedBatches(eloqkv::Engine* engine) {
  char dir[MAXPGPATH];
  ConfiguredDataDirectory(dir, sizeof(dir));
  DIR* d = AllocateDir(dir);
  size_t files = 0, batches = 0, transactions = 0, restored = 0;
  struct dirent* de;
  while ((de = ReadDirExtended(d, dir, LOG)) != nullptr) {
    if (!IsDueFile(de->d_name)) continue;
    char path[MAXPGPATH];
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    PgError err;
    if (!TakeBackFile(engine, path, &batches, &transactions, &restored, &err)) {
      ereport(WARNING,
              (errmsg("eloqkv: could not take back the KV writes of transactions that never "
                      "committed: %s",
                      err.message),
               errdetail("\"%s\" keeps them for the next restart.", path)));
      continue;
    }
    ++files;
    // The compensating batches are logged: WAL replays them if the engine loses them now.
    if (unlink(path) != 0)
      ereport(WARNING,
              (errcode_for_file_access(), errmsg("could not remove file \"%s\": %m", path)));
  }
  FreeDir(d);
  if (files == 0) return;
  ereport(LOG, (errmsg("eloqkv: took back %zu KV writes of %zu transactions that never committed "
                       "(%zu batches checked)",
                       restored, transactions, batches)));
}

}  // namespace eloqkv::pg
