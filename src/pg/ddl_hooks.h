// DDL of eloqkv foreign tables: CREATE checks the table and creates its keyspace; ALTER refuses
// changes that would orphan stored rows; DROP removes the keyspace when the transaction commits.
#pragma once

namespace eloqkv::pg {

void InstallDdlHooks();

}  // namespace eloqkv::pg
