// Transaction hooks: apply the KV writes at pre-commit, discard them on abort, roll savepoints
// back, refuse PREPARE TRANSACTION.
#pragma once

namespace eloqkv::pg {

void RegisterTransactionCallbacks();

}  // namespace eloqkv::pg
