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

void PutVarint(uint64 v, StringInfo out) {
  while (v >= 0x80) {
    appendStringInfoChar(out, static_cast<char>(v | 0x80));
    v >>= 7;
  }
  appendStringInfoChar(out, static_cast<char>(v));
}

bool GetVarint(const char** p, const char* end, uint64* v) {
  uint64 r = 0;
  for (int shift = 0; shift <= 63 && *p < end; shift += 7) {
    const auto b = static_cast<unsigned char>(*(*p)++);
    r |= uint64{b & 0x7Fu} << shift;
    if ((b & 0x80) == 0) {
      *v = r;
      return true;
    }
  }
  return false;
}

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
  if (att->attbyval) {
    if (n != static_cast<size_t>(att->attlen)) Corrupt(t, "wrong length for a by-value type");
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
      case 8: {
        int64 v;
        std::memcpy(&v, bytes, 8);
        d = Int64GetDatum(v);
        break;
      }
      default:
        Corrupt(t, "unsupported by-value length");
    }
    return d;
  }
  if (att->attlen > 0) {
    if (n != static_cast<size_t>(att->attlen)) Corrupt(t, "wrong length for a fixed-length type");
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
    PutVarint(static_cast<uint64>(att->attnum), out);
    const Oid type = att->atttypid;
    appendBinaryStringInfo(out, reinterpret_cast<const char*>(&type), 4);
    if (att->attbyval) {
      char buf[8];
      store_att_byval(buf, d, att->attlen);
      PutVarint(static_cast<uint64>(att->attlen), out);
      appendBinaryStringInfo(out, buf, att->attlen);
    } else if (att->attlen > 0) {
      PutVarint(static_cast<uint64>(att->attlen), out);
      appendBinaryStringInfo(out, DatumGetPointer(d), att->attlen);
    } else if (att->attlen == -1) {
      // Detoasted and decompressed: the stored row never points into a TOAST table.
      struct varlena* v = PG_DETOAST_DATUM_PACKED(d);
      const size_t n = VARSIZE_ANY_EXHDR(v);
      PutVarint(n, out);
      appendBinaryStringInfo(out, VARDATA_ANY(v), static_cast<int>(n));
    } else {
      const char* s = DatumGetCString(d);
      const size_t n = std::strlen(s);
      PutVarint(n, out);
      appendBinaryStringInfo(out, s, static_cast<int>(n));
    }
  }
}

void DecodeRow(const KvTable* t, TupleDesc desc, const char* data, size_t len, Datum* values,
               bool* isnull) {
  for (int i = 0; i < desc->natts; ++i) {
    if (!IsKeyColumn(t, static_cast<AttrNumber>(i + 1))) isnull[i] = true;
  }
  if (len == 0 || static_cast<uint8>(data[0]) != kRowFormatVersion) {
    Corrupt(t, len == 0 ? "empty value" : "unknown row format version");
  }
  const char* p = data + 1;
  const char* end = data + len;
  while (p < end) {
    uint64 attnum, n;
    Oid type;
    if (!GetVarint(&p, end, &attnum) || end - p < 4) Corrupt(t, "truncated column header");
    std::memcpy(&type, p, 4);
    p += 4;
    if (!GetVarint(&p, end, &n) || static_cast<uint64>(end - p) < n) Corrupt(t, "truncated value");
    const char* bytes = p;
    p += n;
    // A column dropped since the row was written, or the key: ignore it.
    if (attnum < 1 || attnum > static_cast<uint64>(desc->natts)) continue;
    Form_pg_attribute att = TupleDescAttr(desc, static_cast<int>(attnum) - 1);
    if (att->attisdropped || IsKeyColumn(t, att->attnum)) continue;
    values[attnum - 1] = MakeDatum(att, type, bytes, n, t);
    isnull[attnum - 1] = false;
  }
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
