#include "pg/row_codec.h"

#include <cstring>

extern "C" {
#include "access/detoast.h"
#include "access/tupmacs.h"
#include "catalog/pg_type.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
}

namespace eloqkv::pg {
namespace {

bool IsKeyColumn(const KvTable* t, AttrNumber att) {
  for (int k = 0; k < t->nkeys; ++k)
    if (t->key_attnums[k] == att) return true;
  return false;
}

[[noreturn]] void Corrupt(const KvTable* t, const char* what) {
  ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                  errmsg("stored row of relation \"%s\" is malformed: %s", t->relname, what)));
  pg_unreachable();
}

// The datum for `bytes` of a value stored with type `stored`, as the column's declared type.
Datum MakeDatum(Form_pg_attribute att, Oid stored, const char* bytes, size_t n, const KvTable* t) {
  if (stored != att->atttypid && t->catalog_free) {
    ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                    errmsg("column \"%s\" of a row of table %s was stored with another type",
                           NameStr(att->attname), t->relname),
                    errhint("Rows written before ALTER COLUMN ... TYPE are served over RESP once "
                            "they are rewritten through SQL, e.g. UPDATE t SET col = col.")));
  }
  if (stored != att->atttypid) {
    // The column's type changed since the row was written: convert through text.
    int16 len;
    bool byval;
    get_typlenbyval(stored, &len, &byval);
    Form_pg_attribute fake = static_cast<Form_pg_attribute>(palloc0(sizeof(FormData_pg_attribute)));
    fake->atttypid = stored;
    fake->attlen = len;
    fake->attbyval = byval;
    const Datum old = MakeDatum(fake, stored, bytes, n, t);
    Oid out, in, ioparam;
    bool varlena;
    getTypeOutputInfo(stored, &out, &varlena);
    getTypeInputInfo(att->atttypid, &in, &ioparam);
    return OidInputFunctionCall(in, OidOutputFunctionCall(out, old), ioparam, att->atttypmod);
  }
  if (const char* why = CheckStoredSize(att->attlen, att->attbyval, n)) Corrupt(t, why);
  if (att->attbyval) {
    Datum d = 0;
    switch (att->attlen) {
      case 1:
        d = CharGetDatum(*bytes);
        break;
      case 2: {
        int16 v;
        std::memcpy(&v, bytes, 2);
        d = Int16GetDatum(v);
        break;
      }
      case 4: {
        int32 v;
        std::memcpy(&v, bytes, 4);
        d = Int32GetDatum(v);
        break;
      }
      default: {
        int64 v;
        std::memcpy(&v, bytes, 8);
        d = Int64GetDatum(v);
        break;
      }
    }
    return d;
  }
  if (att->attlen > 0) {
    char* p = static_cast<char*>(palloc(n));
    std::memcpy(p, bytes, n);
    return PointerGetDatum(p);
  }
  if (att->attlen == -1) {
    struct varlena* v = static_cast<struct varlena*>(palloc(VARHDRSZ + n));
    SET_VARSIZE(v, VARHDRSZ + n);
    std::memcpy(VARDATA(v), bytes, n);
    return PointerGetDatum(v);
  }
  return CStringGetDatum(pnstrdup(bytes, n));  // cstring
}

}  // namespace

void EncodeRow(const KvTable* t, TupleDesc desc, const Datum* values, const bool* isnull,
               StringInfo out) {
  appendStringInfoChar(out, static_cast<char>(kRowFormatVersion));
  for (int i = 0; i < desc->natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(desc, i);
    if (att->attisdropped || isnull[i] || IsKeyColumn(t, att->attnum)) continue;
    const Datum d = values[i];
    char buf[8];
    const char* bytes;
    size_t n;
    if (att->attbyval) {
      store_att_byval(buf, d, att->attlen);
      bytes = buf;
      n = att->attlen;
    } else if (att->attlen > 0) {
      bytes = DatumGetPointer(d);
      n = att->attlen;
    } else if (att->attlen == -1) {
      // Detoasted and decompressed: the stored row never points into a TOAST table.
      struct varlena* v = PG_DETOAST_DATUM_PACKED(d);
      bytes = VARDATA_ANY(v);
      n = VARSIZE_ANY_EXHDR(v);
    } else {
      bytes = DatumGetCString(d);
      n = std::strlen(bytes);
    }
    char header[kMaxRowFieldHeaderSize];
    const size_t header_size =
        EncodeRowFieldHeader(static_cast<uint64>(att->attnum), att->atttypid, n, header);
    appendBinaryStringInfo(out, header, static_cast<int>(header_size));
    appendBinaryStringInfo(out, bytes, static_cast<int>(n));
  }
}

void DecodeRow(const KvTable* t, TupleDesc desc, const char* data, size_t len, Datum* values,
               bool* isnull) {
  for (int i = 0; i < desc->natts; ++i) {
    if (!IsKeyColumn(t, static_cast<AttrNumber>(i + 1))) isnull[i] = true;
  }
  RowFieldReader reader(std::string_view(data, len));
  RowField field;
  while (reader.Next(&field)) {
    // A column dropped since the row was written, or the key: ignore it.
    if (field.attnum > static_cast<uint64>(desc->natts)) continue;
    Form_pg_attribute att = TupleDescAttr(desc, static_cast<int>(field.attnum) - 1);
    if (att->attisdropped || IsKeyColumn(t, att->attnum)) continue;
    values[field.attnum - 1] =
        MakeDatum(att, field.type_oid, field.bytes.data(), field.bytes.size(), t);
    isnull[field.attnum - 1] = false;
  }
  if (reader.error() != nullptr) Corrupt(t, reader.error());
}

int64 RowExpiry(const KvTable* t, const Datum* values, const bool* isnull) {
  // Postgres timestamps count microseconds from 2000-01-01; the engine counts Unix milliseconds.
  constexpr int64 kEpochShiftMs =
      static_cast<int64>(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
  if (t->expire_attnum != 0 && !isnull[t->expire_attnum - 1]) {
    const TimestampTz ts = DatumGetTimestampTz(values[t->expire_attnum - 1]);
    if (TIMESTAMP_NOT_FINITE(ts)) return ts < 0 ? 1 : 0;  // -infinity: already expired
    const int64 ms = ts / 1000 + kEpochShiftMs;
    return ms <= 0 ? 1 : ms;
  }
  if (t->ttl_ms > 0) return GetCurrentTimestamp() / 1000 + kEpochShiftMs + t->ttl_ms;
  return 0;
}

}  // namespace eloqkv::pg
