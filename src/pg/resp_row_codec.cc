// PgRowCodec: the RESP workers' conversion between stored rows and the text form of their
// columns, through the same key and row codecs SQL uses and the types' own I/O functions.
//
// The workers have no database connection and no transaction, so only types whose I/O is a
// built-in that reads no catalog are served (checked against kTypes below, whatever the
// published description says), and every Postgres call runs in CallPostgres(), whose bodies
// here are plain C: an ERROR (bad input, a value too long for varchar(n)) becomes the client's
// error reply and the per-call memory context is reset.
#include <cstring>
#include <unordered_map>
#include <vector>

#include "pg/key_codec.h"
#include "pg/pg_guard.h"
#include "pg/resp_tables.h"
#include "pg/row_codec.h"
#include "pg/table_options.h"

extern "C" {
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/fmgroids.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
}

namespace eloqkv::pg {
namespace {

// Built-in types whose input and output functions read no catalog (the workers run them without
// a database connection), with their I/O functions and storage, checked against what a
// published description says.
struct ServedType {
  Oid type;
  Oid input;
  Oid output;
  int16 len;
  bool byval;
};

constexpr ServedType kTypes[] = {
    {BOOLOID, F_BOOLIN, F_BOOLOUT, 1, true},
    {INT2OID, F_INT2IN, F_INT2OUT, 2, true},
    {INT4OID, F_INT4IN, F_INT4OUT, 4, true},
    {INT8OID, F_INT8IN, F_INT8OUT, 8, true},
    {FLOAT4OID, F_FLOAT4IN, F_FLOAT4OUT, 4, true},
    {FLOAT8OID, F_FLOAT8IN, F_FLOAT8OUT, 8, true},
    {NUMERICOID, F_NUMERIC_IN, F_NUMERIC_OUT, -1, false},
    {TEXTOID, F_TEXTIN, F_TEXTOUT, -1, false},
    {VARCHAROID, F_VARCHARIN, F_VARCHAROUT, -1, false},
    {BPCHAROID, F_BPCHARIN, F_BPCHAROUT, -1, false},
    {NAMEOID, F_NAMEIN, F_NAMEOUT, NAMEDATALEN, false},
    {CHAROID, F_CHARIN, F_CHAROUT, 1, true},
    {BYTEAOID, F_BYTEAIN, F_BYTEAOUT, -1, false},
    {JSONOID, F_JSON_IN, F_JSON_OUT, -1, false},
    {JSONBOID, F_JSONB_IN, F_JSONB_OUT, -1, false},
    {DATEOID, F_DATE_IN, F_DATE_OUT, 4, true},
    {TIMEOID, F_TIME_IN, F_TIME_OUT, 8, true},
    {TIMETZOID, F_TIMETZ_IN, F_TIMETZ_OUT, 12, false},
    {TIMESTAMPOID, F_TIMESTAMP_IN, F_TIMESTAMP_OUT, 8, true},
    {TIMESTAMPTZOID, F_TIMESTAMPTZ_IN, F_TIMESTAMPTZ_OUT, 8, true},
    {INTERVALOID, F_INTERVAL_IN, F_INTERVAL_OUT, 16, false},
    {UUIDOID, F_UUID_IN, F_UUID_OUT, 16, false},
    {INETOID, F_INET_IN, F_INET_OUT, -1, false},
    {CIDROID, F_CIDR_IN, F_CIDR_OUT, -1, false},
    {MACADDROID, F_MACADDR_IN, F_MACADDR_OUT, 6, false},
    {OIDOID, F_OIDIN, F_OIDOUT, 4, true},
    {BITOID, F_BIT_IN, F_BIT_OUT, -1, false},
    {VARBITOID, F_VARBIT_IN, F_VARBIT_OUT, -1, false},
    {MONEYOID, F_CASH_IN, F_CASH_OUT, 8, true},
};

const ServedType* FindType(Oid type) {
  for (const ServedType& t : kTypes)
    if (t.type == type) return &t;
  return nullptr;
}

// A table's Postgres-side state, in its own memory context: plain C only.
struct PgTable {
  MemoryContext cxt;
  KvTable* kt;
  TupleDesc desc;
  FmgrInfo* in;
  FmgrInfo* out;
  int encoding;
  const char* relname;
};

// ---- bodies run by CallPostgres: C calls and plain data only ----

struct BuildArgs {
  const resp::TableDesc* d;
  PgTable* pt;
};

void BuildBody(void* p) {
  auto* a = static_cast<BuildArgs*>(p);
  const resp::TableDesc& d = *a->d;
  PgTable* pt = a->pt;
  const int natts = static_cast<int>(d.columns.size());
  if (!PG_VALID_BE_ENCODING(d.encoding) || d.nkeys < 1 || d.nkeys > kMaxKeyColumns) {
    ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                    errmsg("the RESP description of table %s is malformed", d.relname.c_str())));
  }
  pt->cxt = AllocSetContextCreate(TopMemoryContext, "eloqkv resp table", ALLOCSET_SMALL_SIZES);
  MemoryContext old = MemoryContextSwitchTo(pt->cxt);
  pt->encoding = d.encoding;
  pt->relname = pstrdup(d.relname.c_str());
  KvTable* kt = static_cast<KvTable*>(palloc0(sizeof(KvTable)));
  kt->relid = d.relid;
  snprintf(kt->relname, sizeof(kt->relname), "%s", d.relname.c_str());
  snprintf(kt->keyspace, sizeof(kt->keyspace), "%s", d.keyspace.c_str());
  snprintf(kt->keyspace_option, sizeof(kt->keyspace_option), "%s", d.keyspace.c_str());
  kt->nkeys = d.nkeys;
  kt->ttl_ms = d.ttl_ms;
  kt->expire_attnum = d.expire_attnum;
  kt->catalog_free = true;
  pt->kt = kt;
  pt->desc = CreateTemplateTupleDesc(natts);
  pt->in = static_cast<FmgrInfo*>(palloc0(sizeof(FmgrInfo) * Max(natts, 1)));
  pt->out = static_cast<FmgrInfo*>(palloc0(sizeof(FmgrInfo) * Max(natts, 1)));
  for (int i = 0; i < natts; ++i) {
    const resp::TableColumn& c = d.columns[i];
    Form_pg_attribute att = TupleDescAttr(pt->desc, i);
    std::memset(att, 0, sizeof(*att));
    namestrcpy(&att->attname, c.name.c_str());
    att->attnum = static_cast<AttrNumber>(i + 1);
    att->attisdropped = c.dropped;
    if (c.dropped) continue;
    const ServedType* st = FindType(c.type_oid);
    if (st == nullptr || st->input != c.typinput || st->output != c.typoutput ||
        st->len != c.typlen || st->byval != c.typbyval) {
      ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                      errmsg("column \"%s\" of table %s has a type that cannot be served over RESP",
                             c.name.c_str(), d.relname.c_str())));
    }
    att->atttypid = c.type_oid;
    att->atttypmod = c.typmod;
    att->attlen = st->len;
    att->attbyval = st->byval;
    att->attalign = c.typalign;
    fmgr_info_cxt(st->input, &pt->in[i], pt->cxt);
    fmgr_info_cxt(st->output, &pt->out[i], pt->cxt);
    if (c.key_index >= 0 && c.key_index < d.nkeys) {
      kt->key_attnums[c.key_index] = att->attnum;
      kt->key_types[c.key_index] = c.type_oid;
      kt->key_typmods[c.key_index] = c.typmod;
      kt->key_collations[c.key_index] = C_COLLATION_OID;
    }
  }
  for (int k = 0; k < kt->nkeys; ++k) {
    if (kt->key_attnums[k] == 0 || !KeyTypeSupported(kt->key_types[k])) {
      ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                      errmsg("the RESP description of table %s has a bad key", d.relname.c_str())));
    }
  }
  MemoryContextSwitchTo(old);
}

void CheckText(const PgTable* pt, const char* what, const char* s, size_t n) {
  if (std::memchr(s, '\0', n) != nullptr) {
    ereport(ERROR, (errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
                    errmsg("%s of table %s contains a zero byte", what, pt->relname)));
  }
  (void)pg_verify_mbstr(pt->encoding, s, static_cast<int>(n), false);
}

Datum Input(const PgTable* pt, int i, const char* s, size_t n) {
  Form_pg_attribute att = TupleDescAttr(pt->desc, i);
  return InputFunctionCall(const_cast<FmgrInfo*>(&pt->in[i]), pnstrdup(s, n), att->atttypid,
                           att->atttypmod);
}

// values/isnull arrays for a row of natts columns, every column NULL.
void AllNull(int natts, Datum** values, bool** isnull) {
  *values = static_cast<Datum*>(palloc0(sizeof(Datum) * natts));
  *isnull = static_cast<bool*>(palloc(sizeof(bool) * natts));
  std::memset(*isnull, true, sizeof(bool) * natts);
}

struct KeyArgs {
  const PgTable* pt;
  const char* text;
  size_t len;
  StringInfo out;
};

void KeyBody(void* p) {
  auto* a = static_cast<KeyArgs*>(p);
  const PgTable* pt = a->pt;
  const KvTable* kt = pt->kt;
  SetDatabaseEncoding(pt->encoding);
  CheckText(pt, "the key", a->text, a->len);
  const int natts = pt->desc->natts;
  Datum* values;
  bool* isnull;
  AllNull(natts, &values, &isnull);
  const char* s = a->text;
  const char* end = a->text + a->len;
  for (int k = 0; k < kt->nkeys; ++k) {
    const char* sep = end;
    if (k + 1 < kt->nkeys) {
      sep = static_cast<const char*>(std::memchr(s, ':', end - s));
      if (sep == nullptr) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
                        errmsg("a key of table %s has %d parts separated by ':'", pt->relname,
                               kt->nkeys)));
      }
    }
    const int i = kt->key_attnums[k] - 1;
    values[i] = Input(pt, i, s, sep - s);
    isnull[i] = false;
    s = sep + 1;
  }
  initStringInfo(a->out);
  EncodeKey(kt, values, isnull, a->out);
  CheckKeyLength(kt, a->out);
}

struct FieldsArgs {
  const PgTable* pt;
  const char* key;
  size_t key_len;
  const char* row;
  size_t row_len;
  int n;
  const char** names;
  char** texts;
};

// values/isnull of the row's key columns, from its engine key.
void KeyValues(const PgTable* pt, const char* key, size_t len, Datum* values, bool* isnull) {
  if (!DecodeKey(pt->kt, key, len, values, isnull)) {
    ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                    errmsg("a stored key of table %s is malformed", pt->relname)));
  }
}

// A row of the table in its column arrays: the key columns from the stored key, the rest NULL.
void StartRow(const PgTable* pt, const char* key, size_t key_len, Datum** values, bool** isnull) {
  SetDatabaseEncoding(pt->encoding);
  AllNull(pt->desc->natts, values, isnull);
  KeyValues(pt, key, key_len, *values, *isnull);
}

void FieldsBody(void* p) {
  auto* a = static_cast<FieldsArgs*>(p);
  const PgTable* pt = a->pt;
  const int natts = pt->desc->natts;
  Datum* values;
  bool* isnull;
  StartRow(pt, a->key, a->key_len, &values, &isnull);
  DecodeRow(pt->kt, pt->desc, a->row, a->row_len, values, isnull);
  a->names = static_cast<const char**>(palloc(sizeof(char*) * natts));
  a->texts = static_cast<char**>(palloc(sizeof(char*) * natts));
  a->n = 0;
  for (int i = 0; i < natts; ++i) {
    Form_pg_attribute att = TupleDescAttr(pt->desc, i);
    if (att->attisdropped || isnull[i]) continue;
    a->names[a->n] = NameStr(att->attname);
    a->texts[a->n] = OutputFunctionCall(const_cast<FmgrInfo*>(&pt->out[i]), values[i]);
    ++a->n;
  }
}

struct RowArgs {
  const PgTable* pt;
  const char* key;
  size_t key_len;
  int n;
  const char* const* names;
  const size_t* name_lens;
  const char* const* texts;
  const size_t* text_lens;
  StringInfo out;
  int64 expire_at_ms;
};

void RowBody(void* p) {
  auto* a = static_cast<RowArgs*>(p);
  const PgTable* pt = a->pt;
  const int natts = pt->desc->natts;
  Datum* values;
  bool* isnull;
  StartRow(pt, a->key, a->key_len, &values, &isnull);
  for (int f = 0; f < a->n; ++f) {
    int i = -1;
    for (int j = 0; j < natts && i < 0; ++j) {
      Form_pg_attribute att = TupleDescAttr(pt->desc, j);
      const char* name = NameStr(att->attname);
      if (!att->attisdropped && std::strlen(name) == a->name_lens[f] &&
          std::memcmp(name, a->names[f], a->name_lens[f]) == 0)
        i = j;
    }
    if (i < 0) {
      ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                      errmsg("column \"%s\" of table %s does not exist",
                             pnstrdup(a->names[f], a->name_lens[f]), pt->relname)));
    }
    Form_pg_attribute att = TupleDescAttr(pt->desc, i);
    CheckText(pt, "a value", a->texts[f], a->text_lens[f]);
    bool is_key = false;
    for (int k = 0; k < pt->kt->nkeys; ++k) is_key = is_key || pt->kt->key_attnums[k] == i + 1;
    if (is_key) {
      // The key comes from the RESP key; a field may only repeat it.
      const char* current = OutputFunctionCall(const_cast<FmgrInfo*>(&pt->out[i]), values[i]);
      if (std::strlen(current) != a->text_lens[f] ||
          std::memcmp(current, a->texts[f], a->text_lens[f]) != 0) {
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("cannot change key column \"%s\" of table %s", NameStr(att->attname),
                               pt->relname),
                        errhint("The key of a row served over RESP is the part of the RESP key "
                                "after the table's prefix.")));
      }
      continue;
    }
    values[i] = Input(pt, i, a->texts[f], a->text_lens[f]);
    isnull[i] = false;
  }
  initStringInfo(a->out);
  EncodeRow(pt->kt, pt->desc, values, isnull, a->out);
  a->expire_at_ms = RowExpiry(pt->kt, values, isnull);
}

struct VerifyArgs {
  const char* user;
  const char* password;
  size_t password_len;
  const char* secret;
  bool ok;
};

void VerifyBody(void* p) {
  auto* a = static_cast<VerifyArgs*>(p);
  a->ok = std::memchr(a->password, '\0', a->password_len) == nullptr &&
          scram_verify_plain_password(a->user, pnstrdup(a->password, a->password_len), a->secret);
}

// ---- the C++ side ----

class PgRowCodec final : public resp::RowCodec, public resp::PasswordVerifier {
 public:
  PgRowCodec() {
    call_cxt_ = AllocSetContextCreate(TopMemoryContext, "eloqkv resp rows", ALLOCSET_DEFAULT_SIZES);
  }

  Status KeyFromText(const resp::TableDesc& t, std::string_view text, std::string* key) override {
    const PgTable* pt = nullptr;
    Status s = Table(t, &pt);
    if (!s.ok()) return s;
    StringInfoData out;
    KeyArgs args{pt, text.data(), text.size(), &out};
    s = Call(KeyBody, &args);
    if (s.ok()) key->assign(out.data, out.len);
    return s;
  }

  Status RowToFields(const resp::TableDesc& t, std::string_view key, std::string_view row,
                     resp::HashFields* fields) override {
    const PgTable* pt = nullptr;
    Status s = Table(t, &pt);
    if (!s.ok()) return s;
    FieldsArgs args{pt, key.data(), key.size(), row.data(), row.size(), 0, nullptr, nullptr};
    s = Call(FieldsBody, &args);
    if (!s.ok()) return s;
    fields->clear();
    for (int i = 0; i < args.n; ++i) fields->emplace(args.names[i], args.texts[i]);
    return Status::OK();
  }

  Status FieldsToRow(const resp::TableDesc& t, std::string_view key, const resp::HashFields& fields,
                     std::string* row, int64_t* expire_at_ms) override {
    const PgTable* pt = nullptr;
    Status s = Table(t, &pt);
    if (!s.ok()) return s;
    std::vector<const char*> names, texts;
    std::vector<size_t> name_lens, text_lens;
    for (const auto& [name, text] : fields) {
      names.push_back(name.data());
      name_lens.push_back(name.size());
      texts.push_back(text.data());
      text_lens.push_back(text.size());
    }
    StringInfoData out;
    RowArgs args{pt,           key.data(),
                 key.size(),   static_cast<int>(names.size()),
                 names.data(), name_lens.data(),
                 texts.data(), text_lens.data(),
                 &out,         0};
    s = Call(RowBody, &args);
    if (!s.ok()) return s;
    row->assign(out.data, out.len);
    *expire_at_ms = args.expire_at_ms;
    return Status::OK();
  }

  bool Verify(const std::string& user, std::string_view password,
              const std::string& secret) override {
    VerifyArgs args{user.c_str(), password.data(), password.size(), secret.c_str(), false};
    return Call(VerifyBody, &args).ok() && args.ok;
  }

  void Forget() override {
    for (auto& [desc, pt] : tables_) MemoryContextDelete(pt.cxt);
    tables_.clear();
  }

 private:
  Status Call(void (*fn)(void*), void* args) {
    MemoryContextReset(call_cxt_);
    MemoryContext old = MemoryContextSwitchTo(call_cxt_);
    PgError err;
    const bool ok = CallPostgres(fn, args, &err);
    MemoryContextSwitchTo(old);
    if (ok) return Status::OK();
    return Status::InvalidArgument(err.message);
  }

  Status Table(const resp::TableDesc& d, const PgTable** out) {
    auto it = tables_.find(&d);
    if (it == tables_.end()) {
      PgTable pt{};
      BuildArgs args{&d, &pt};
      Status s = Call(BuildBody, &args);
      if (!s.ok()) {
        if (pt.cxt != nullptr) MemoryContextDelete(pt.cxt);
        return s;
      }
      it = tables_.emplace(&d, pt).first;
    }
    *out = &it->second;
    return Status::OK();
  }

  MemoryContext call_cxt_;
  std::unordered_map<const resp::TableDesc*, PgTable> tables_;
};

PgRowCodec* g_codec = nullptr;

PgRowCodec* Codec() {
  if (g_codec == nullptr) g_codec = new PgRowCodec();
  return g_codec;
}

}  // namespace

// One list decides both what DDL accepts and what a worker will convert.
bool RespTypeServable(Oid type) {
  return FindType(type) != nullptr;
}

resp::RowCodec* NewPgRowCodec() {
  return Codec();
}
resp::PasswordVerifier* PgPasswordVerifier() {
  return Codec();
}

}  // namespace eloqkv::pg
