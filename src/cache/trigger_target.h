// The relation a trigger of the cache layer keeps in step (eloqkv.invalidate_trigger,
// eloqkv.mirror_trigger): its first argument, an oid.
#pragma once

#include <cstdlib>

#include "pg/pg_headers.h"

extern "C" {
#include "commands/trigger.h"
#include "utils/syscache.h"
}

namespace eloqkv::cache {

// The target of the trigger `fcinfo` fires (raises unless called as a trigger with `nargs`
// arguments), or InvalidOid when it was dropped since: a cache or mirror dropped with DROP
// FOREIGN TABLE leaves its triggers behind, and they must not break writes to the table.
inline Oid TriggerTarget(FunctionCallInfo fcinfo, const char* function, int nargs) {
  if (!CALLED_AS_TRIGGER(fcinfo)) elog(ERROR, "%s: not called as a trigger", function);
  const TriggerData* td = reinterpret_cast<TriggerData*>(fcinfo->context);
  if (td->tg_trigger->tgnargs != nargs)
    elog(ERROR, "%s: needs %d argument%s", function, nargs, nargs == 1 ? "" : "s");
  const Oid target = static_cast<Oid>(strtoul(td->tg_trigger->tgargs[0], nullptr, 10));
  return SearchSysCacheExists1(RELOID, ObjectIdGetDatum(target)) ? target : InvalidOid;
}

}  // namespace eloqkv::cache
