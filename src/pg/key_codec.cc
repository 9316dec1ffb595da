#include "pg/key_codec.h"

#include <cstring>

#include "engine/eloqkv.h"

extern "C" {
#include "catalog/pg_type.h"
#include "access/htup_details.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace eloqkv::pg {
namespace {

bool IsTextLike(Oid t) {
  return t == TEXTOID || t == VARCHAROID || t == BPCHAROID || t == NAMEOID || t == BYTEAOID;
}

int FixedWidth(Oid t) {
  switch (t) {
    case BOOLOID:
      return 1;
    case INT2OID:
      return 2;
    case INT4OID:
    case OIDOID:
    case DATEOID:
      return 4;
    case INT8OID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return 8;
    case UUIDOID:
      return UUID_LEN;
    default:
      return 0;
  }
}

void PutBigEndian(uint64 v, int width, StringInfo out) {
  char b[8];
  for (int i = width - 1; i >= 0; --i) {
    b[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  appendBinaryStringInfo(out, b, width);
}

uint64 GetBigEndian(const char* p, int width) {
  uint64 v = 0;
  for (int i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// The bytes of a text-like value (bpchar without its trailing blanks, which bpchar comparison
// ignores: 'a ' and 'a' are the same key).
void TextBytes(Oid type, Datum d, const char** data, int* len) {
  if (type == NAMEOID) {
    *data = NameStr(*DatumGetName(d));
    *len = static_cast<int>(std::strlen(*data));
    return;
  }
  const struct varlena* v = PG_DETOAST_DATUM_PACKED(d);
  *data = VARDATA_ANY(v);
  *len = static_cast<int>(VARSIZE_ANY_EXHDR(v));
  if (type == BPCHAROID) {
    while (*len > 0 && (*data)[*len - 1] == ' ') --*len;
  }
}

Datum MakeText(Oid type, int32 typmod, const char* data, int len) {
  if (type == BYTEAOID || type == TEXTOID || type == VARCHAROID) {
    bytea* b = static_cast<bytea*>(palloc(VARHDRSZ + len));
    SET_VARSIZE(b, VARHDRSZ + len);
    std::memcpy(VARDATA(b), data, len);
    return PointerGetDatum(b);
  }
  char* cstr = pnstrdup(data, len);
  if (type == NAMEOID) return DirectFunctionCall1(namein, CStringGetDatum(cstr));
  // bpchar: pad back to the declared length.
  return DirectFunctionCall3(bpcharin, CStringGetDatum(cstr), ObjectIdGetDatum(InvalidOid),
                             Int32GetDatum(typmod));
}

uint64 FixedBits(Oid type, Datum d) {
  switch (type) {
    case BOOLOID:
      return DatumGetBool(d) ? 1 : 0;
    case INT2OID:
      return static_cast<uint16>(DatumGetInt16(d)) ^ 0x8000u;
    case INT4OID:
      return static_cast<uint32>(DatumGetInt32(d)) ^ 0x80000000u;
    case DATEOID:
      return static_cast<uint32>(DatumGetDateADT(d)) ^ 0x80000000u;
    case OIDOID:
      return DatumGetObjectId(d);
    case INT8OID:
      return static_cast<uint64>(DatumGetInt64(d)) ^ (uint64{1} << 63);
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return static_cast<uint64>(DatumGetTimestamp(d)) ^ (uint64{1} << 63);
    default:
      return 0;
  }
}

Datum FixedDatum(Oid type, uint64 bits) {
  switch (type) {
    case BOOLOID:
      return BoolGetDatum(bits != 0);
    case INT2OID:
      return Int16GetDatum(static_cast<int16>(bits ^ 0x8000u));
    case INT4OID:
      return Int32GetDatum(static_cast<int32>(bits ^ 0x80000000u));
    case DATEOID:
      return DateADTGetDatum(static_cast<DateADT>(bits ^ 0x80000000u));
    case OIDOID:
      return ObjectIdGetDatum(static_cast<Oid>(bits));
    case INT8OID:
      return Int64GetDatum(static_cast<int64>(bits ^ (uint64{1} << 63)));
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return TimestampGetDatum(static_cast<Timestamp>(bits ^ (uint64{1} << 63)));
    default:
      return 0;
  }
}

}  // namespace

bool KeyTypeSupported(Oid type) {
  return IsTextLike(type) || FixedWidth(type) > 0;
}

const char* SupportedKeyTypes() {
  return "text, varchar, char, name, bytea, smallint, integer, bigint, oid, boolean, date, "
         "timestamp, timestamptz, uuid";
}

void EncodeKeyPart(const KvTable* t, int k, Datum value, StringInfo out) {
  const Oid type = t->key_types[k];
  if (IsTextLike(type)) {
    const char* data;
    int len;
    TextBytes(type, value, &data, &len);
    if (t->nkeys == 1) {
      appendBinaryStringInfo(out, data, len);
      return;
    }
    for (int i = 0; i < len; ++i) {
      appendStringInfoChar(out, data[i]);
      if (data[i] == '\0') appendStringInfoChar(out, static_cast<char>(0xFF));
    }
    appendStringInfoChar(out, '\0');
    appendStringInfoChar(out, '\1');
    return;
  }
  if (type == UUIDOID) {
    appendBinaryStringInfo(out, reinterpret_cast<const char*>(DatumGetUUIDP(value)->data),
                           UUID_LEN);
    return;
  }
  PutBigEndian(FixedBits(type, value), FixedWidth(type), out);
}

void EncodeKey(const KvTable* t, const Datum* values, const bool* isnull, StringInfo out) {
  for (int k = 0; k < t->nkeys; ++k) {
    const AttrNumber att = t->key_attnums[k];
    if (isnull[att - 1]) {
      ereport(ERROR,
              (errcode(ERRCODE_NOT_NULL_VIOLATION),
               errmsg("null value in key column \"%s\" of relation \"%s\"",
                      get_attname(t->relid, att, false), t->relname),
               errdetail("eloqkv rows are identified by their key; key columns cannot be null.")));
    }
    EncodeKeyPart(t, k, values[att - 1], out);
  }
}

void CheckKeyLength(const KvTable* t, const StringInfo key) {
  if (static_cast<size_t>(key->len) > eloqkv::kMaxKeySize) {
    ereport(ERROR,
            (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
             errmsg("key of relation \"%s\" is %d bytes; eloqkv keys are limited to %zu bytes",
                    t->relname, key->len, eloqkv::kMaxKeySize)));
  }
}

bool DecodeKey(const KvTable* t, const char* data, size_t len, Datum* values, bool* isnull) {
  size_t pos = 0;
  for (int k = 0; k < t->nkeys; ++k) {
    const Oid type = t->key_types[k];
    const AttrNumber att = t->key_attnums[k];
    isnull[att - 1] = false;
    if (IsTextLike(type)) {
      if (t->nkeys == 1) {
        values[att - 1] = MakeText(type, t->key_typmods[k], data, static_cast<int>(len));
        return true;
      }
      StringInfoData part;
      initStringInfo(&part);
      for (;;) {
        if (pos >= len) return false;
        const char c = data[pos++];
        if (c != '\0') {
          appendStringInfoChar(&part, c);
          continue;
        }
        if (pos >= len) return false;
        const auto next = static_cast<unsigned char>(data[pos++]);
        if (next == 0x01) break;
        if (next != 0xFF) return false;
        appendStringInfoChar(&part, '\0');
      }
      values[att - 1] = MakeText(type, t->key_typmods[k], part.data, part.len);
      continue;
    }
    const int width = FixedWidth(type);
    if (pos + width > len) return false;
    if (type == UUIDOID) {
      pg_uuid_t* u = static_cast<pg_uuid_t*>(palloc(sizeof(pg_uuid_t)));
      std::memcpy(u->data, data + pos, UUID_LEN);
      values[att - 1] = UUIDPGetDatum(u);
    } else {
      values[att - 1] = FixedDatum(type, GetBigEndian(data + pos, width));
    }
    pos += width;
  }
  return pos == len;
}

char* DescribeKey(const KvTable* t, const char* data, size_t len) {
  Datum values[MaxTupleAttributeNumber];
  bool isnull[MaxTupleAttributeNumber];
  AttrNumber maxatt = 0;
  for (int k = 0; k < t->nkeys; ++k) maxatt = Max(maxatt, t->key_attnums[k]);
  for (int i = 0; i < maxatt; ++i) isnull[i] = true;
  StringInfoData s;
  initStringInfo(&s);
  if (!DecodeKey(t, data, len, values, isnull)) {
    appendStringInfoString(&s, "(key)=(undecodable)");
    return s.data;
  }
  appendStringInfoChar(&s, '(');
  for (int k = 0; k < t->nkeys; ++k) {
    if (k > 0) appendStringInfoString(&s, ", ");
    appendStringInfoString(&s, quote_identifier(get_attname(t->relid, t->key_attnums[k], false)));
  }
  appendStringInfoString(&s, ")=(");
  for (int k = 0; k < t->nkeys; ++k) {
    Oid out;
    bool varlena;
    getTypeOutputInfo(t->key_types[k], &out, &varlena);
    if (k > 0) appendStringInfoString(&s, ", ");
    appendStringInfoString(&s, OidOutputFunctionCall(out, values[t->key_attnums[k] - 1]));
  }
  appendStringInfoChar(&s, ')');
  return s.data;
}

}  // namespace eloqkv::pg
