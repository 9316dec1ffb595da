// A standby whose KV replay stopped or skipped writes keeps that fact on disk, next to the
// engine's files: the rows are missing whatever happens to the process afterwards, so a
// restart, a promotion or a base backup taken from it must not make them look current again.
// Only eloqkv.accept_replay_gap() (or a rebuild from a base backup) clears it.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "pg/replication.h"
#include "pg/replication_shared.h"
#include "pg/settings.h"

extern "C" {
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(eloqkv_accept_replay_gap);
}

namespace eloqkv::pg {
namespace {

constexpr const char* kMarkerName = "kv_replay_stopped";

void MarkerPath(char* out, size_t size, const char* suffix = "") {
  char dir[MAXPGPATH];
  ConfiguredDataDirectory(dir, sizeof(dir));
  snprintf(out, size, "%s/%s%s", dir, kMarkerName, suffix);
}

}  // namespace

void PersistReplayStop(const char* reason) {
  char path[MAXPGPATH], tmp[MAXPGPATH];
  MarkerPath(path, sizeof(path));
  MarkerPath(tmp, sizeof(tmp), ".tmp");
  const int fd = ::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const size_t n = strlen(reason);
  bool ok = fd >= 0 && ::write(fd, reason, n) == static_cast<ssize_t>(n) && pg_fsync(fd) == 0;
  const int saved_errno = errno;
  if (fd >= 0) ::close(fd);
  // durable_rename syncs the directory too; at LOG it reports instead of raising an ERROR.
  if (ok) ok = durable_rename(tmp, path, LOG) == 0;
  if (!ok) {
    errno = saved_errno;
    ereport(WARNING, (errmsg("eloqkv: could not record that KV replay stopped in \"%s\": %m", path),
                      errdetail("A restart of this server will not remember it.")));
  }
}

bool LoadReplayStop(char* out, size_t size) {
  char path[MAXPGPATH];
  MarkerPath(path, sizeof(path));
  FILE* f = fopen(path, "r");
  if (f == nullptr) return false;
  const size_t n = fread(out, 1, size - 1, f);
  fclose(f);
  out[n] = '\0';
  if (n == 0) snprintf(out, size, "KV replay stopped before the last restart");
  return true;
}

}  // namespace eloqkv::pg

// eloqkv.accept_replay_gap(): KV reads resume on a server whose replay stopped, with whatever
// rows its engine has. Returns the reason it had stopped (NULL if it had not).
extern "C" Datum eloqkv_accept_replay_gap(PG_FUNCTION_ARGS) {
  eloqkv::pg::ReplicationShared* shared = eloqkv::pg::SharedReplication();
  char reason[sizeof(shared->broken_reason)];
  SpinLockAcquire(&shared->mutex);
  const bool broken = shared->broken;
  std::memcpy(reason, shared->broken_reason, sizeof(reason));
  SpinLockRelease(&shared->mutex);
  if (!broken) PG_RETURN_NULL();
  char path[MAXPGPATH];
  eloqkv::pg::MarkerPath(path, sizeof(path));
  // ERROR (nothing changed) if the marker stays: a restart would bring the refusal back.
  if (access(path, F_OK) == 0) (void)durable_unlink(path, ERROR);
  SpinLockAcquire(&shared->mutex);
  shared->broken = false;
  shared->broken_reason[0] = '\0';
  SpinLockRelease(&shared->mutex);
  ereport(WARNING, (errmsg("eloqkv: KV reads resume although KV replay had stopped: %s", reason),
                    errdetail("Rows written on the primary meanwhile may be missing here.")));
  PG_RETURN_TEXT_P(cstring_to_text(reason));
}
