#include "pg/xact_callbacks.h"

#include <cstdio>
#include <string>

#include "cache/cache_invalidate.h"
#include "pg/engine_access.h"
#include "pg/key_codec.h"
#include "pg/kv_session.h"
#include "pg/kv_undo.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"
#include "pg/resp_tables.h"
#include "pg/table_options.h"

extern "C" {
#include "access/parallel.h"
#include "access/xact.h"
#include "storage/predicate.h"
#include "utils/lsyscache.h"
}

namespace eloqkv::pg {
namespace {

void ReportCommitFailure(const kv::CommitFailure& f, const PgError& err) {
  const char* rel = OidIsValid(f.relid) ? get_rel_name(f.relid) : nullptr;
  if (rel == nullptr) RaiseError(err, "could not commit eloqkv writes");
  const KvTable* t = LoadKvTableById(f.relid);
  const char* key = f.key_len > 0 ? DescribeKey(t, f.key, f.key_len) : "(all rows)";
  if (f.duplicate) {
    ereport(ERROR,
            (errcode(ERRCODE_UNIQUE_VIOLATION),
             errmsg("duplicate key value violates unique constraint \"%s_key\"", rel),
             errdetail("Key %s was inserted by another transaction that committed first.", key)));
  }
  ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
                  errmsg("could not serialize access due to concurrent update of \"%s\"", rel),
                  errdetail("Key %s changed after this transaction read it.", key),
                  errhint("Retry the transaction.")));
}

// The transaction's batch, applied at pre-commit, until the transaction ends: if it aborts
// instead of committing, its before-images take the batch back.
struct AppliedBatch {
  bool pending = false;
  uint64_t first_seq = 0;
  std::string images;
};

AppliedBatch& Applied() {
  static AppliedBatch* a = new AppliedBatch();  // never destroyed: no destructor at process exit
  return *a;
}

void ForgetAppliedBatch() noexcept {
  AppliedBatch& a = Applied();
  a.pending = false;
  if (a.images.capacity() > (size_t{1} << 20))
    std::string().swap(a.images);
  else
    a.images.clear();
}

// The transaction aborted after its batch was applied (a commit step after ours failed): its
// writes must not stay, as standbys drop them. The compensating batch is a write of its own, not
// the aborted transaction's, so that standbys apply it.
void TakeBackAppliedBatch() {
  AppliedBatch& a = Applied();
  ForgetBatchTransaction();
  eloqkv::Engine* e = AttachedEngine();
  PgError err;
  size_t restored = 0;
  const bool ok = e->state() == eloqkv::EngineState::kReady && Guarded(&err, [&] {
                    BatchRecordExtras extras(nullptr, a.first_seq);
                    return undo::Compensate(e, a.first_seq, a.images, &restored);
                  });
  if (!ok) {
    if (err.message[0] == '\0')
      snprintf(err.message, sizeof(err.message), "the engine is not ready");
    ereport(WARNING,
            (errmsg("eloqkv: could not take back the KV writes of the aborted transaction: %s",
                    err.message),
             errdetail("They were applied before a later step of its commit failed; their keys "
                       "keep the transaction's values on this server.")));
  }
  ForgetAppliedBatch();
}

void OnXact(XactEvent event, void*) {
  switch (event) {
    case XACT_EVENT_PRE_COMMIT:
    case XACT_EVENT_PARALLEL_PRE_COMMIT: {
      if (!kv::HasWrites()) return;
      // Postgres runs its SERIALIZABLE check after these callbacks: a failure there would abort
      // the transaction after its KV writes were applied. Checking first marks the transaction
      // prepared for SSI, as PREPARE TRANSACTION does, so that from here on conflicts abort the
      // other transaction and the check CommitTransaction repeats has nothing left to fail on.
      if (IsolationIsSerializable() && !IsParallelWorker())
        PreCommit_CheckForSerializationFailure();
      eloqkv::Engine* e = ReadyEngine();
      kv::CommitFailure failure;
      PgError err;
      // The batch's WAL record names the transaction, so that standbys apply it only once they
      // have replayed its commit (an xid is assigned here if the transaction had none).
      SetBatchTransaction(GetTopTransactionId());
      AppliedBatch& applied = Applied();
      const bool committed = kv::Commit(e, &applied.images, &applied.first_seq, &failure, &err);
      SetBatchTransaction(InvalidTransactionId);
      applied.pending = committed && !applied.images.empty();
      if (!committed) {
        if (failure.failed) ReportCommitFailure(failure, err);
        RaiseError(err, "could not commit eloqkv writes");
      }
      return;
    }
    case XACT_EVENT_PRE_PREPARE:
      if (cache::HasPendingInvalidations()) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("cannot prepare a transaction that invalidated eloqkv caches"),
                        errhint("Commit it instead; cache invalidations do not take part in "
                                "two-phase commit.")));
      }
      if (kv::HasWrites()) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("cannot prepare a transaction that has written to eloqkv foreign "
                               "tables"),
                        errhint("Commit it instead; eloqkv writes do not take part in two-phase "
                                "commit.")));
      }
      return;
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT: {
      ForgetAppliedBatch();
      LogBatchCommit();
      CloseKvWindow();
      kv::Discard();
      RespTablesAtCommit();
      cache::ApplyInvalidationsAtCommit();
      if (!kv::HasDrops()) return;
      // Keyspaces of tables dropped by this transaction. After commit nothing may fail the
      // transaction: a failure is logged and the keyspace stays, unused.
      eloqkv::Engine* e = AttachedEngine();
      if (e->state() != eloqkv::EngineState::kReady) {
        kv::ForgetDrops();
        return;
      }
      PgError err;
      if (kv::RunDrops(e, &err) > 0) {
        ereport(WARNING,
                (errmsg("could not drop the keyspace of a dropped eloqkv table: %s", err.message)));
      }
      return;
    }
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      if (Applied().pending) TakeBackAppliedBatch();
      CloseKvWindow();
      ForgetBatchTransaction();
      kv::Discard();
      RespTablesAtAbort();
      kv::ForgetDrops();
      cache::DiscardInvalidations();
      return;
    default:
      return;
  }
}

void OnSubxact(SubXactEvent event, SubTransactionId, SubTransactionId, void*) {
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    kv::SubxactAbort(GetCurrentTransactionNestLevel());
    cache::InvalidationsAtSubAbort(GetCurrentTransactionNestLevel());
  }
  if (event == SUBXACT_EVENT_COMMIT_SUB) {
    kv::SubxactCommit(GetCurrentTransactionNestLevel());
    cache::InvalidationsAtSubCommit(GetCurrentTransactionNestLevel());
  }
}

}  // namespace

void RegisterTransactionCallbacks() {
  RegisterXactCallback(OnXact, nullptr);
  RegisterSubXactCallback(OnSubxact, nullptr);
}

}  // namespace eloqkv::pg
