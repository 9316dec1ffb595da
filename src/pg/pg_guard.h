// The error boundary between the engine (C++) and Postgres (C with longjmp errors).
//
// Two rules, one helper for each direction:
//  1. No C++ exception reaches Postgres. Engine work runs inside Guarded(), which catches every
//     exception and turns it, like a non-OK eloqkv::Status, into a PgError: a plain struct with no
//     destructor. The caller raises it with RaiseError() after Guarded() has returned.
//  2. No Postgres error unwinds C++ frames. ereport(ERROR) longjmps: any C++ object with a
//     destructor that is alive in a frame it skips leaks or corrupts state. So a function that
//     may raise keeps no such objects alive (use palloc, PgError, or the per-process scratch
//     buffers below), and C++ code that must call into Postgres does it through CallPostgres(),
//     whose body is C calls only, and which turns an ERROR into a PgError.
// No other try/catch or PG_TRY around Postgres calls anywhere in src/pg.
#pragma once

#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <utility>

#include "engine/status.h"
#include "pg/pg_headers.h"

namespace eloqkv::pg {

struct PgError {
  int sqlstate = 0;
  char message[1024] = {0};
  char detail[512] = {0};
  char hint[512] = {0};
};

// Maps an engine status to a SQLSTATE and message (the one place this mapping lives).
void ErrorFromStatus(const eloqkv::Status& s, PgError* err);

// After an engine call: lets checkpoints go on once what this process logged is in the
// engine's files (checkpoint_interlock.cc).
void CheckKvWindow() noexcept;

// Runs C++ code that returns an eloqkv::Status. Returns true on success; otherwise fills *err.
template <typename F>
bool Guarded(PgError* err, F&& fn) noexcept {
  try {
    const eloqkv::Status s = std::forward<F>(fn)();
    CheckKvWindow();
    if (s.ok()) return true;
    *err = PgError();
    ErrorFromStatus(s, err);
  } catch (const std::bad_alloc&) {
    *err = PgError();
    err->sqlstate = ERRCODE_OUT_OF_MEMORY;
    snprintf(err->message, sizeof(err->message), "out of memory in the eloqkv engine");
  } catch (const std::exception& e) {
    *err = PgError();
    err->sqlstate = ERRCODE_INTERNAL_ERROR;
    snprintf(err->message, sizeof(err->message), "eloqkv internal error: %s", e.what());
  } catch (...) {
    *err = PgError();
    err->sqlstate = ERRCODE_INTERNAL_ERROR;
    snprintf(err->message, sizeof(err->message), "eloqkv internal error");
  }
  return false;
}

// Raises err as a Postgres ERROR, with `context` (if any) prefixed to the message.
[[noreturn]] void RaiseError(const PgError& err, const char* context = nullptr);

// Runs Postgres C calls from C++ code without letting an ERROR longjmp through C++ frames.
// `fn` must create no C++ objects with destructors. Returns false (and fills *err) on ERROR.
bool CallPostgres(void (*fn)(void*), void* arg, PgError* err);

}  // namespace eloqkv::pg
