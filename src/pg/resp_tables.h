// Serving foreign tables over RESP (the table option resp_prefix).
//
// Backends publish a table's description into the RESP table catalog (resp/tables.h) as part of
// the DDL transaction's KV writes: on CREATE, on every ALTER or RENAME of the table, and remove
// it on DROP. After such a transaction commits they bump the listeners' generation, and the RESP
// workers reload the catalog. The workers convert rows with PgRowCodec: Postgres type I/O run
// without a database connection, which is why only built-in types whose I/O needs no catalog
// may be served.
#pragma once

#include <functional>
#include <string_view>

#include "pg/pg_headers.h"
#include "resp/tables.h"
#include "resp/users.h"

namespace eloqkv::pg {

// Whether columns of `type` can be served over RESP.
bool RespTypeServable(Oid type);
// (Re)publishes the table's description; removes `previous_prefix` ("" if none) when the
// table's prefix changed. Raises when the prefix overlaps another table's or a column's type
// cannot be served.
void PublishRespTable(Oid relid, const char* previous_prefix);
// Removes the table's description (DROP).
void UnpublishRespTable(Oid relid);
// Transaction end: after a commit that changed the catalog, tells the RESP workers.
void RespTablesAtCommit();
// The transaction wrote a RESP catalog: the workers reload once it commits.
void MarkRespCatalogChanged();
// Recomputes the grants of this database's RESP users (resp_users.cc).
void RefreshRespUsersOfDatabase();
void RespTablesAtAbort();

// Calls each(value) for every entry of an eloqkv catalog keyspace as this transaction sees it
// (its own writes included). C++ side of the wall: run it inside Guarded().
eloqkv::Status ScanCatalog(eloqkv::Engine* e, uint32_t keyspace,
                           const std::function<void(std::string_view)>& each);

// The RESP workers' row conversion through Postgres type I/O.
// One object per process; both interfaces of it.
resp::RowCodec* NewPgRowCodec();
resp::PasswordVerifier* PgPasswordVerifier();

}  // namespace eloqkv::pg
