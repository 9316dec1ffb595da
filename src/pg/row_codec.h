// Rows: how a table row's non-key columns become an engine value, and back. The framing of the
// bytes (row_format.h) is Postgres-free; this file fills and reads the fields.
//
// The bytes are the type's internal representation: by-value types in their length, fixed-length
// types as is, varlena types detoasted without their header, cstrings without the NUL. A column
// that is absent is NULL (so ADD COLUMN needs no rewrite); a stored type that differs from the
// declared one (ALTER COLUMN TYPE) is converted through text when read.
#pragma once

#include "pg/pg_headers.h"
#include "pg/row_format.h"
#include "pg/table_options.h"

extern "C" {
#include "access/tupdesc.h"
#include "lib/stringinfo.h"
}

namespace eloqkv::pg {

// Appends the value encoding of a row (values/isnull indexed by attnum - 1).
void EncodeRow(const KvTable* t, TupleDesc desc, const Datum* values, const bool* isnull,
               StringInfo out);
// Fills the non-key columns of values/isnull from a stored value. Raises data_corrupted on a
// malformed value.
void DecodeRow(const KvTable* t, TupleDesc desc, const char* data, size_t len, Datum* values,
               bool* isnull);
// The row's absolute expiry in Unix milliseconds: its expire column, else now + the table's ttl,
// else 0 (never).
int64 RowExpiry(const KvTable* t, const Datum* values, const bool* isnull);

}  // namespace eloqkv::pg
