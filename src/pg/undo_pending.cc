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
// bytes) and the images; or, with kTakenBack as the length, only that a batch was taken back
// already (its abort did, or an earlier recovery: its WAL record says so), which no file's
// images may then be applied for. Taking a batch back must happen once at most: a taken-back
// delete restores its key while the key is absent, so a second time would undo a later delete.
// Streamed, so that no process holds more than one batch's images.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "pg/engine_access.h"
#include "pg/kv_undo.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/replication_shared.h"
#include "pg/settings.h"

extern "C" {
#include "access/xlog.h"
#include "access/xlogrecovery.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"
}

namespace eloqkv::pg {
namespace {

constexpr const char* kPrefix = "kv_uncommitted_batches.";
constexpr const char* kCollecting = "kv_uncommitted_batches.collecting";
constexpr uint32 kTakenBack = UINT32_MAX;

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

// Reads one file's entries in order, calling fn(first_seq, images, length) with images ==
// nullptr for a taken-back marker; false (with *err) when the file cannot be read or fn fails.
template <typename Fn>
bool ForEachEntry(const char* path, bool with_images, PgError* err, Fn&& fn) {
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
    uint64 first_seq = 0;
    uint32 length = 0;
    std::memcpy(&first_seq, header, sizeof(first_seq));
    std::memcpy(&length, header + sizeof(first_seq), sizeof(length));
    char* images = nullptr;
    bool read_ok = got > 0;
    if (read_ok && length != kTakenBack) {
      if (with_images) {
        images = static_cast<char*>(
            palloc_extended(size_t{length} + 1, MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM));
        read_ok = images != nullptr && ReadAll(fd, images, length) > 0;
      } else {
        read_ok = lseek(fd, length, SEEK_CUR) >= 0;
      }
    }
    if (!read_ok) {
      if (images != nullptr) pfree(images);
      snprintf(err->message, sizeof(err->message), "\"%s\" is damaged or could not be read", path);
      ok = false;
      break;
    }
    if (length == kTakenBack || with_images) ok = fn(first_seq, images, length);
    if (images != nullptr) pfree(images);
    if (!ok) break;
  }
  ::close(fd);
  return ok;
}

// Appends an entry (images == nullptr: a taken-back marker) to this redo's collecting file.
// An entry's header: the batch's first sequence number and its images' length (or kTakenBack).
bool WriteEntryHeader(int fd, uint64 first_seq, uint32 length) {
  char header[sizeof(uint64) + sizeof(uint32)];
  std::memcpy(header, &first_seq, sizeof(first_seq));
  std::memcpy(header + sizeof(first_seq), &length, sizeof(length));
  return WriteAll(fd, header, sizeof(header));
}

bool AppendCollected(uint64 first_seq, uint32 length, const char* images) {
  if (g_collect_failed) return false;
  char path[MAXPGPATH];
  PathOf(path, sizeof(path), kCollecting);
  // This redo starts the collecting file over: one a crashed redo left may end in a torn batch,
  // and WAL still holds what it had.
  if (g_collect_fd < 0) g_collect_fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (g_collect_fd < 0 || !WriteEntryHeader(g_collect_fd, first_seq, length) ||
      (images != nullptr && !WriteAll(g_collect_fd, images, length))) {
    WarnLeftBehind(path);
    g_collect_failed = true;
    return false;
  }
  return true;
}

// Appends a taken-back marker to a due file and syncs it.
bool AppendMarker(const char* path, uint64 first_seq) {
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = WriteEntryHeader(fd, first_seq, kTakenBack) && pg_fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

void CollectUndo(uint64_t first_seq, const char* images, size_t length) {
  if (AppendCollected(first_seq, static_cast<uint32>(length), images)) g_collected_bytes += length;
}

void NoteTakenBack(uint64_t first_seq) {
  (void)AppendCollected(first_seq, kTakenBack, nullptr);
}

void ForgetCopiedUndo() {
  char dir[MAXPGPATH];
  ConfiguredDataDirectory(dir, sizeof(dir));
  DIR* d = opendir(dir);
  if (d == nullptr) return;
  while (struct dirent* de = readdir(d)) {
    if (!IsDueFile(de->d_name)) continue;
    char path[MAXPGPATH];
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    if (unlink(path) == 0)
      ereport(LOG, (errmsg("eloqkv: removed \"%s\", copied from the server this one was restored "
                           "from: that server takes its batches back, and its WAL says so",
                           path)));
  }
  closedir(d);
  pg_atomic_write_u32(&SharedReplication()->undo_due, kUndoNone);
}

void PersistCollectedUndo() {
  char collecting[MAXPGPATH], name[64], path[MAXPGPATH];
  PathOf(collecting, sizeof(collecting), kCollecting);
  if (g_collect_fd < 0) {
    (void)unlink(collecting);  // a crashed redo's, whose batches this one found committed
    return;
  }
  // Named by where redo ended (WAL's end, for the maintenance worker's replay after a start
  // without redo): a later recovery ends further on. Never over a file still due.
  const XLogRecPtr end = AmStartupProcess() ? GetXLogReplayRecPtr(nullptr) : GetXLogInsertRecPtr();
  for (int n = 0;; ++n) {
    snprintf(name, sizeof(name), "%s%016" PRIX64 "-%d", kPrefix, static_cast<uint64>(end), n);
    PathOf(path, sizeof(path), name);
    if (access(path, F_OK) != 0) break;
  }
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
  if (g_collected_bytes > 0)
    ereport(LOG, (errmsg("eloqkv: KV writes of transactions that never committed are to be "
                         "taken back once recovery ends (%" PRIu64 " bytes of before-images)",
                         g_collected_bytes)));
  pg_atomic_write_u32(&SharedReplication()->undo_due, kUndoDue);
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
  std::vector<uint64> taken_back;
  std::vector<std::string> files;
  PgError err;
  if (!Guarded(&err, [&] {
        DIR* d = opendir(dir);
        if (d == nullptr) return eloqkv::Status::OK();
        while (struct dirent* de = readdir(d)) {
          if (IsDueFile(de->d_name)) files.push_back(std::string(dir) + "/" + de->d_name);
        }
        closedir(d);
        std::sort(files.begin(), files.end());
        return eloqkv::Status::OK();
      }))
    return;
  // Every file's markers first: one recovery may have collected a batch that a later one read
  // the compensation of. A damaged file gives the markers before the damage.
  for (const std::string& f : files) {
    PgError ignored;
    (void)ForEachEntry(f.c_str(), false, &ignored, [&](uint64 first_seq, const char*, uint32) {
      return Guarded(&ignored, [&] {
        taken_back.push_back(first_seq);
        return eloqkv::Status::OK();
      });
    });
  }
  std::sort(taken_back.begin(), taken_back.end());
  size_t batches = 0, transactions = 0, restored = 0;
  for (const std::string& f : files) {
    const char* path = f.c_str();
    const bool ok =
        ForEachEntry(path, true, &err, [&](uint64 first_seq, const char* images, uint32 length) {
          if (images == nullptr ||
              std::binary_search(taken_back.begin(), taken_back.end(), first_seq))
            return true;
          size_t keys = 0;
          if (!Guarded(&err, [&] {
                BatchRecordExtras extras(nullptr, first_seq);
                return undo::Compensate(engine, first_seq, std::string_view(images, length), &keys);
              }))
            return false;
          // Remembered in the file at once: if a later batch fails and the file stays, the next
          // attempt must not take this one back again (its WAL record may be gone by then).
          if (!AppendMarker(path, first_seq)) {
            snprintf(err.message, sizeof(err.message), "could not mark a batch taken back in it");
            return false;
          }
          Guarded(&err, [&] {
            taken_back.insert(std::upper_bound(taken_back.begin(), taken_back.end(), first_seq),
                              first_seq);
            return eloqkv::Status::OK();
          });
          ++batches;
          if (keys > 0) ++transactions;
          restored += keys;
          return true;
        });
    if (!ok) {
      ereport(WARNING,
              (errmsg("eloqkv: could not take back the KV writes of transactions that never "
                      "committed: %s",
                      err.message),
               errdetail("\"%s\" keeps them for the next restart.", path)));
      continue;
    }
    // The compensating batches are logged: WAL replays them if the engine loses them now.
    if (unlink(path) != 0)
      ereport(WARNING,
              (errcode_for_file_access(), errmsg("could not remove file \"%s\": %m", path)));
  }
  if (batches > 0)
    ereport(LOG, (errmsg("eloqkv: took back %zu KV writes of %zu transactions that never "
                         "committed (%zu batches checked)",
                         restored, transactions, batches)));
}

}  // namespace eloqkv::pg
