// SQL functions that show KV replication: eloqkv.replication_position() (this server) and, in
// the extension script, the eloqkv.replication view (its standbys' KV replay lag).
#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/replication.h"

extern "C" {
#include "access/htup_details.h"
#include "access/xlog.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/pg_lsn.h"

PG_FUNCTION_INFO_V1(eloqkv_replication_position);
}

extern "C" Datum eloqkv_replication_position(PG_FUNCTION_ARGS) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "eloqkv.replication_position must return a composite type");
  const eloqkv::pg::ReplicationPosition p = eloqkv::pg::CurrentReplicationPosition();
  eloqkv::Engine* engine = eloqkv::pg::AttachedEngine();
  const bool recovering = RecoveryInProgress();
  char reason[600];
  const bool stopped = eloqkv::pg::ReplayBrokenReason(reason, sizeof(reason));
  Datum values[7];
  bool nulls[7] = {false, false, false, false, false, false, false};
  values[0] = CStringGetTextDatum(!recovering               ? "primary"
                                  : eloqkv::pg::IsStandby() ? "standby"
                                                            : "recovering");
  // Positions this server has not had since it started are NULL, not 0/0.
  values[1] = LSNGetDatum(p.logged_lsn);
  nulls[1] = p.logged_lsn == 0;
  values[2] = LSNGetDatum(p.applied_lsn);
  nulls[2] = p.applied_lsn == 0;
  values[3] = Int64GetDatum(static_cast<int64>(engine->NextSequence()));
  values[4] = Int32GetDatum(static_cast<int32>(p.waiting));
  values[5] = BoolGetDatum(stopped);
  values[6] = stopped ? CStringGetTextDatum(reason) : 0;
  nulls[6] = !stopped;
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
