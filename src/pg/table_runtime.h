// Runtime links from a foreign table to the engine.
#pragma once

#include "engine/eloqkv.h"
#include "pg/table_options.h"

namespace eloqkv::pg {

// The engine keyspace of a table. With `create`, a missing keyspace is created; otherwise its
// absence is an error (the engine's data directory lost it).
uint32_t TableKeyspace(eloqkv::Engine* e, const KvTable* t, bool create);

}  // namespace eloqkv::pg
