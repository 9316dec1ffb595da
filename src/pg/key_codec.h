// Keys: how key column values become engine keys, and back.
//
// The encoding preserves order: for keys a and b of one table, memcmp order of their encodings
// equals the order of (a, b) under the key types' default btree operators (for text: the "C"
// collation). So equality lookups, ranges and prefixes on the key run in the engine.
//
//  * One key column: text-like and bytea values are their bytes (so a RESP client sees a key
//    as written); integers, dates, timestamps are big-endian with the sign bit flipped; bool is
//    one byte; uuid its 16 bytes.
//  * Several key columns: the components in order; fixed-width ones as above, variable-width
//    ones with 0x00 escaped as 0x00 0xFF and terminated by 0x00 0x01.
// Version 1 of the key format; docs/sql.md documents it.
#pragma once

#include "pg/pg_headers.h"
#include "pg/table_options.h"

extern "C" {
#include "lib/stringinfo.h"
}

namespace eloqkv::pg {

bool KeyTypeSupported(Oid type);
const char* SupportedKeyTypes();

// Appends one key component (column `k` of t) to out. `last` is true for the final component
// of a one-column key (no terminator). The value must not be NULL.
void EncodeKeyPart(const KvTable* t, int k, Datum value, StringInfo out);
// Appends the whole key from values/isnull indexed by attnum - 1. A NULL key column raises
// not_null_violation naming the column.
void EncodeKey(const KvTable* t, const Datum* values, const bool* isnull, StringInfo out);
// Raises program_limit_exceeded if the encoded key is longer than the engine allows.
void CheckKeyLength(const KvTable* t, const StringInfo key);
// Fills the key columns of values/isnull (indexed by attnum - 1) from an encoded key.
// Returns false when the bytes are not a key of this table (a foreign key in a shared
// keyspace): the caller skips the row.
bool DecodeKey(const KvTable* t, const char* data, size_t len, Datum* values, bool* isnull);
// Human-readable "(a, b)=(1, x)" for error details.
char* DescribeKey(const KvTable* t, const char* data, size_t len);

}  // namespace eloqkv::pg
