// The one way eloqkv describes a background worker to the postmaster.
#pragma once

#include <cstdio>
#include <cstring>

#include "pg/pg_headers.h"

extern "C" {
#include "postmaster/bgworker.h"
}

namespace eloqkv::pg {

// A worker of this library running `function` (an extern "C" symbol), named `type` in
// pg_stat_activity and `name` in the process title; restart_s: seconds before the postmaster
// starts it again after it exits with a non-zero code (or BGW_NEVER_RESTART).
inline BackgroundWorker WorkerSpec(const char* type, const char* name, const char* function,
                                   int flags, BgWorkerStartTime start, int restart_s,
                                   Datum arg = 0) {
  BackgroundWorker w;
  std::memset(&w, 0, sizeof(w));
  w.bgw_flags = flags;
  w.bgw_start_time = start;
  w.bgw_restart_time = restart_s;
  w.bgw_main_arg = arg;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "eloqkv_fdw");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "%s", function);
  snprintf(w.bgw_name, BGW_MAXLEN, "%s", name);
  snprintf(w.bgw_type, BGW_MAXLEN, "%s", type);
  return w;
}

}  // namespace eloqkv::pg
