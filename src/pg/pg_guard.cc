// The out-of-line half of pg_guard.h: the status-to-SQLSTATE mapping and the two raise/catch
// helpers.
#include "pg/pg_guard.h"

namespace eloqkv::pg {

void ErrorFromStatus(const eloqkv::Status& s, PgError* err) {
  using Code = eloqkv::Status::Code;
  const char* hint = "";
  switch (s.code()) {
    case Code::kOk:
      err->sqlstate = 0;
      break;
    case Code::kNotFound:
      err->sqlstate = ERRCODE_UNDEFINED_OBJECT;
      break;
    case Code::kInvalidArgument:
      err->sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
      break;
    case Code::kTooLarge:
      err->sqlstate = ERRCODE_PROGRAM_LIMIT_EXCEEDED;
      break;
    case Code::kKeyExists:
      err->sqlstate = ERRCODE_UNIQUE_VIOLATION;
      break;
    case Code::kConditionFailed:
      err->sqlstate = ERRCODE_T_R_SERIALIZATION_FAILURE;
      hint = "The row was changed by another session since it was read. Retry the transaction.";
      break;
    case Code::kIndexFull:
      err->sqlstate = ERRCODE_CONFIGURATION_LIMIT_EXCEEDED;
      hint = "Raise eloqkv.index_memory (requires a restart) or delete keys.";
      break;
    case Code::kNoSpace:
      err->sqlstate = ERRCODE_DISK_FULL;
      hint = "Free disk space, delete keys, or raise eloqkv.max_disk_size.";
      break;
    case Code::kIOError:
      err->sqlstate = ERRCODE_IO_ERROR;
      break;
    case Code::kCorruption:
      err->sqlstate = ERRCODE_DATA_CORRUPTED;
      break;
    case Code::kPermissionDenied:
      err->sqlstate = ERRCODE_INSUFFICIENT_PRIVILEGE;
      break;
    case Code::kUnavailable:
      err->sqlstate = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
      break;
  }
  snprintf(err->message, sizeof(err->message), "%s",
           s.message().empty() ? eloqkv::Status::CodeName(s.code()) : s.message().c_str());
  snprintf(err->hint, sizeof(err->hint), "%s", hint);
}

void RaiseError(const PgError& err, const char* context) {
  ereport(ERROR, (errcode(err.sqlstate ? err.sqlstate : ERRCODE_INTERNAL_ERROR),
                  context ? errmsg("%s: %s", context, err.message) : errmsg("%s", err.message),
                  err.detail[0] ? errdetail("%s", err.detail) : 0,
                  err.hint[0] ? errhint("%s", err.hint) : 0));
  pg_unreachable();
}

bool CallPostgres(void (*fn)(void*), void* arg, PgError* err) {
  MemoryContext mcxt = CurrentMemoryContext;
  volatile bool ok = true;
  PG_TRY();
  { fn(arg); }
  PG_CATCH();
  {
    MemoryContextSwitchTo(mcxt);
    ErrorData* e = CopyErrorData();
    FlushErrorState();
    err->sqlstate = e->sqlerrcode;
    snprintf(err->message, sizeof(err->message), "%s", e->message ? e->message : "error");
    FreeErrorData(e);
    ok = false;
  }
  PG_END_TRY();
  return ok;
}

}  // namespace eloqkv::pg
