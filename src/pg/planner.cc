#include "pg/planner.h"

#include <cstring>

#include "pg/engine_access.h"
#include "pg/kv_session.h"
#include "pg/table_options.h"

extern "C" {
#include "parser/parse_coerce.h"
#include "access/stratnum.h"
#include "catalog/pg_am.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"
}

namespace eloqkv::pg {
namespace {

// Cost model. One engine lookup (lock-free index descent plus the cache or one device read) is
// much cheaper than a heap index scan's page accesses; a scanned row costs a little more than a
// heap tuple. The numbers make a parameterized lookup per outer row beat a full scan for
// selective joins, which is the point.
constexpr double kLookupCost = 0.02;
constexpr double kScanRowCost = 0.005;
constexpr double kDefaultKeys = 1000;

// What the planner learned about a table during GetRelSize.
struct RelState {
  const KvTable* table;
  double keys;
};

struct Classified {
  Access access = Access::kFullScan;
  int neq = 0;  // leading key columns with an equality
  Expr* eq[kMaxKeyColumns] = {};
  RestrictInfo* eq_rinfo[kMaxKeyColumns] = {};
  Expr* array = nullptr;
  RestrictInfo* array_rinfo = nullptr;
  Expr* lower = nullptr;
  bool lower_incl = true;
  RestrictInfo* lower_rinfo = nullptr;
  Expr* upper = nullptr;
  bool upper_incl = false;
  RestrictInfo* upper_rinfo = nullptr;
  char* like_prefix = nullptr;
  RestrictInfo* like_rinfo = nullptr;
};

Node* StripRelabel(Node* n) {
  while (n != nullptr && IsA(n, RelabelType))
    n = reinterpret_cast<Node*>(reinterpret_cast<RelabelType*>(n)->arg);
  return n;
}

// The key column (index) that `n` is a plain reference to, or -1.
int KeyColumnOf(Node* n, RelOptInfo* baserel, const KvTable* t) {
  n = StripRelabel(n);
  if (n == nullptr || !IsA(n, Var)) return -1;
  const Var* v = reinterpret_cast<const Var*>(n);
  if (v->varno != static_cast<int>(baserel->relid) || v->varlevelsup != 0) return -1;
  for (int k = 0; k < t->nkeys; ++k)
    if (t->key_attnums[k] == v->varattno) return k;
  return -1;
}

// Whether `expr` can be evaluated before the scan: no volatile functions, no reference to this
// table, and references to other tables only when they are the outer side of a parameterized
// lookup (they become executor parameters).
bool UsableValue(PlannerInfo* root, RelOptInfo* baserel, Expr* expr, Relids outer) {
  if (contain_volatile_functions(reinterpret_cast<Node*>(expr))) return false;
  Relids vars = pull_varnos(root, reinterpret_cast<Node*>(expr));
  if (bms_is_member(static_cast<int>(baserel->relid), vars)) return false;
  return bms_is_subset(vars, outer);
}

bool TextLike(Oid t) {
  return t == TEXTOID || t == VARCHAROID;
}

// Whether a value of type `value_type` encodes like the key column's type.
bool SameEncoding(Oid key_type, Oid value_type) {
  return key_type == value_type || (TextLike(key_type) && TextLike(value_type));
}

// A value of a narrower integer type than the key (bigint_key = 42, whose literal is an int):
// exact when widened, so the comparison is pushed down with the value cast to the key's type.
int IntegerWidth(Oid t) {
  return t == INT2OID ? 2 : t == INT4OID ? 4 : t == INT8OID ? 8 : 0;
}

Node* WidenedToKey(Node* value, Oid key_type) {
  const Oid value_type = exprType(value);
  const int from = IntegerWidth(value_type), to = IntegerWidth(key_type);
  if (from == 0 || to == 0 || from >= to) return nullptr;
  return coerce_to_target_type(nullptr, value, value_type, key_type, -1, COERCION_IMPLICIT,
                               COERCE_IMPLICIT_CAST, -1);
}

Oid KeyOpFamily(Oid key_type) {
  const Oid opclass = GetDefaultOpClass(key_type, BTREE_AM_OID);
  return OidIsValid(opclass) ? get_opclass_family(opclass) : InvalidOid;
}

// The constant byte prefix of a LIKE pattern ('ab\%c%' -> "ab%c"), or nullptr if none.
char* LikePrefix(Const* pattern) {
  if (pattern->constisnull) return nullptr;
  const text* p = DatumGetTextPP(pattern->constvalue);
  const char* s = VARDATA_ANY(p);
  const int n = static_cast<int>(VARSIZE_ANY_EXHDR(p));
  StringInfoData out;
  initStringInfo(&out);
  for (int i = 0; i < n; ++i) {
    if (s[i] == '%' || s[i] == '_') break;
    if (s[i] == '\\') {
      if (++i >= n) break;
    }
    appendStringInfoChar(&out, s[i]);
  }
  return out.len > 0 ? out.data : nullptr;
}

void ConsiderOp(PlannerInfo* root, RelOptInfo* baserel, const KvTable* t, RestrictInfo* ri,
                OpExpr* op, Relids outer, Classified* c, int* eq_col_found, Expr** eq_by_col,
                RestrictInfo** eq_rinfo_by_col) {
  if (list_length(op->args) != 2) return;
  Node* left = static_cast<Node*>(linitial(op->args));
  Node* right = static_cast<Node*>(lsecond(op->args));
  int k = KeyColumnOf(left, baserel, t);
  Node* other = right;
  bool commuted = false;
  if (k < 0) {
    k = KeyColumnOf(right, baserel, t);
    other = left;
    commuted = true;
  }
  if (k < 0 || !UsableValue(root, baserel, reinterpret_cast<Expr*>(other), outer)) return;
  const Oid key_type = t->key_types[k];
  // LIKE 'prefix%' and ^@ 'prefix' on a one-column text key: a prefix scan, rechecked locally.
  if (!commuted && t->nkeys == 1 && TextLike(key_type) && IsA(other, Const) &&
      (op->opno == OID_TEXT_LIKE_OP || op->opno == TextPrefixOperator)) {
    char* prefix = nullptr;
    if (op->opno == TextPrefixOperator) {
      Const* cst = reinterpret_cast<Const*>(other);
      if (!cst->constisnull) prefix = TextDatumGetCString(cst->constvalue);
    } else {
      prefix = LikePrefix(reinterpret_cast<Const*>(other));
    }
    if (prefix != nullptr && prefix[0] != '\0' && c->like_prefix == nullptr) {
      c->like_prefix = prefix;
      c->like_rinfo = ri;
    }
    return;
  }
  if (!SameEncoding(key_type, exprType(other))) {
    other = WidenedToKey(other, key_type);
    if (other == nullptr) return;
    other = eval_const_expressions(root, other);  // a constant is cast once, at plan time
  }
  const Oid family = KeyOpFamily(key_type);
  if (!OidIsValid(family)) return;
  int strategy = get_op_opfamily_strategy(op->opno, family);
  if (strategy == 0) return;
  if (commuted) {
    if (strategy == BTLessStrategyNumber)
      strategy = BTGreaterStrategyNumber;
    else if (strategy == BTLessEqualStrategyNumber)
      strategy = BTGreaterEqualStrategyNumber;
    else if (strategy == BTGreaterStrategyNumber)
      strategy = BTLessStrategyNumber;
    else if (strategy == BTGreaterEqualStrategyNumber)
      strategy = BTLessEqualStrategyNumber;
  }
  if (strategy == BTEqualStrategyNumber) {
    if (eq_by_col[k] == nullptr) {
      eq_by_col[k] = reinterpret_cast<Expr*>(other);
      eq_rinfo_by_col[k] = ri;
      ++*eq_col_found;
    }
    return;
  }
  // Ranges only on a one-column key, and on text only where bytes order like the collation.
  if (t->nkeys != 1) return;
  if (TextLike(key_type) && !lc_collate_is_c(op->inputcollid)) return;
  if (key_type == BPCHAROID || key_type == NAMEOID) return;
  Expr* value = reinterpret_cast<Expr*>(other);
  if (strategy == BTGreaterStrategyNumber || strategy == BTGreaterEqualStrategyNumber) {
    if (c->lower == nullptr) {
      c->lower = value;
      c->lower_incl = strategy == BTGreaterEqualStrategyNumber;
      c->lower_rinfo = ri;
    }
  } else if (c->upper == nullptr) {
    c->upper = value;
    c->upper_incl = strategy == BTLessEqualStrategyNumber;
    c->upper_rinfo = ri;
  }
}

// Sorts the usable key conditions among `clauses` into the best engine access.
Classified Classify(PlannerInfo* root, RelOptInfo* baserel, const KvTable* t, List* clauses,
                    Relids outer) {
  Classified c;
  Expr* eq_by_col[kMaxKeyColumns] = {};
  RestrictInfo* eq_rinfo_by_col[kMaxKeyColumns] = {};
  int eq_found = 0;
  ListCell* lc;
  foreach (lc, clauses) {
    RestrictInfo* ri = lfirst_node(RestrictInfo, lc);
    Expr* clause = ri->clause;
    if (ri->pseudoconstant) continue;
    if (IsA(clause, OpExpr)) {
      ConsiderOp(root, baserel, t, ri, reinterpret_cast<OpExpr*>(clause), outer, &c, &eq_found,
                 eq_by_col, eq_rinfo_by_col);
    } else if (IsA(clause, ScalarArrayOpExpr) && t->nkeys == 1 && c.array == nullptr) {
      ScalarArrayOpExpr* sa = reinterpret_cast<ScalarArrayOpExpr*>(clause);
      Node* left = static_cast<Node*>(linitial(sa->args));
      Expr* arr = static_cast<Expr*>(lsecond(sa->args));
      if (!sa->useOr || KeyColumnOf(left, baserel, t) != 0 ||
          !UsableValue(root, baserel, arr, outer))
        continue;
      const Oid family = KeyOpFamily(t->key_types[0]);
      const Oid elem = get_base_element_type(exprType(reinterpret_cast<Node*>(arr)));
      if (!OidIsValid(family) || !SameEncoding(t->key_types[0], elem) ||
          get_op_opfamily_strategy(sa->opno, family) != BTEqualStrategyNumber)
        continue;
      c.array = arr;
      c.array_rinfo = ri;
    }
  }
  (void)eq_found;
  while (c.neq < t->nkeys && eq_by_col[c.neq] != nullptr) {
    c.eq[c.neq] = eq_by_col[c.neq];
    c.eq_rinfo[c.neq] = eq_rinfo_by_col[c.neq];
    ++c.neq;
  }
  if (c.neq == t->nkeys) {
    c.access = Access::kPoint;
  } else if (c.array != nullptr) {
    c.access = Access::kMultiGet;
    c.neq = 0;
  } else if (c.like_prefix != nullptr) {
    c.access = Access::kPrefix;
  } else if (c.neq > 0) {
    c.access = Access::kPrefix;
  } else if (c.lower != nullptr || c.upper != nullptr) {
    c.access = Access::kRange;
  }
  if (c.access != Access::kRange) {
    c.lower = c.upper = nullptr;
    c.lower_rinfo = c.upper_rinfo = nullptr;
  }
  if (c.access != Access::kPrefix || t->nkeys != 1) {
    if (c.access != Access::kPrefix) {
      c.like_prefix = nullptr;
      c.like_rinfo = nullptr;
    }
  }
  if (c.access == Access::kPrefix && t->nkeys == 1) c.neq = 0;  // a one-column prefix is LIKE
  if (c.access != Access::kMultiGet) {
    c.array = nullptr;
    c.array_rinfo = nullptr;
  }
  return c;
}

// Clauses the engine answers exactly (everything but a LIKE prefix, which is rechecked).
List* Answered(const Classified& c) {
  List* out = NIL;
  for (int i = 0; i < c.neq; ++i) out = lappend(out, c.eq_rinfo[i]);
  if (c.array_rinfo) out = lappend(out, c.array_rinfo);
  if (c.lower_rinfo) out = lappend(out, c.lower_rinfo);
  if (c.upper_rinfo) out = lappend(out, c.upper_rinfo);
  return out;
}

double Rows(PlannerInfo* root, RelOptInfo* baserel, const Classified& c, double keys) {
  switch (c.access) {
    case Access::kPoint:
      return 1;
    case Access::kMultiGet:
      return Min(keys,
                 static_cast<double>(estimate_array_length(reinterpret_cast<Node*>(c.array))));
    default:
      break;
  }
  List* used = Answered(c);
  if (c.like_rinfo) used = lappend(used, c.like_rinfo);
  if (used == NIL) return keys;
  const Selectivity sel =
      clauselist_selectivity(root, used, static_cast<int>(baserel->relid), JOIN_INNER, nullptr);
  return clamp_row_est(keys * sel);
}

void Costs(const Classified& c, double scanned, Cost* startup, Cost* total) {
  switch (c.access) {
    case Access::kPoint:
      *startup = 0;
      *total = kLookupCost + cpu_tuple_cost;
      return;
    case Access::kMultiGet:
      *startup = kLookupCost;
      *total = kLookupCost + scanned * (kLookupCost / 2 + cpu_tuple_cost);
      return;
    case Access::kRange:
    case Access::kPrefix:
      *startup = kLookupCost;
      *total = kLookupCost + scanned * (kScanRowCost + cpu_tuple_cost);
      return;
    case Access::kFullScan:
      *startup = 0;
      *total = scanned * (kScanRowCost + cpu_tuple_cost);
      return;
  }
}

double KeyCount(const KvTable* t) {
  eloqkv::Engine* e = AttachedEngine();
  if (e->state() != eloqkv::EngineState::kReady) return kDefaultKeys;
  uint32_t id;
  bool found = false;
  PgError err;
  if (!kv::ResolveKeyspace(e, t->keyspace, false, &id, &found, nullptr, &err) || !found)
    return kDefaultKeys;
  uint64_t keys = 0;
  if (!kv::KeyspaceKeys(e, id, &keys, &err)) return kDefaultKeys;
  return static_cast<double>(Max(keys, static_cast<uint64_t>(1)));
}

bool MatchesKeyVar(PlannerInfo*, RelOptInfo*, EquivalenceClass*, EquivalenceMember* em, void* arg) {
  const Var* key = static_cast<const Var*>(arg);
  Node* n = StripRelabel(reinterpret_cast<Node*>(em->em_expr));
  if (n == nullptr || !IsA(n, Var)) return false;
  const Var* v = reinterpret_cast<const Var*>(n);
  return v->varno == key->varno && v->varattno == key->varattno && v->varlevelsup == 0;
}

// ---- EXPLAIN text ----

void Describe(PlannerInfo* root, Node* n, StringInfo out) {
  n = StripRelabel(n);
  // An implicit widening (WidenedToKey) shows as its argument, as EXPLAIN shows implicit casts.
  if (IsA(n, FuncExpr) && reinterpret_cast<FuncExpr*>(n)->funcformat == COERCE_IMPLICIT_CAST &&
      list_length(reinterpret_cast<FuncExpr*>(n)->args) == 1) {
    Describe(root, static_cast<Node*>(linitial(reinterpret_cast<FuncExpr*>(n)->args)), out);
    return;
  }
  if (IsA(n, Const)) {
    const Const* c = reinterpret_cast<const Const*>(n);
    if (c->constisnull) {
      appendStringInfoString(out, "NULL");
      return;
    }
    Oid fn;
    bool varlena;
    getTypeOutputInfo(c->consttype, &fn, &varlena);
    const char* s = OidOutputFunctionCall(fn, c->constvalue);
    const bool bare = c->consttype == INT2OID || c->consttype == INT4OID ||
                      c->consttype == INT8OID || c->consttype == OIDOID || c->consttype == BOOLOID;
    appendStringInfoString(out, bare ? s : quote_literal_cstr(s));
    return;
  }
  if (IsA(n, Param)) {
    const Param* p = reinterpret_cast<const Param*>(n);
    appendStringInfo(out, "$%d", p->paramid);
    return;
  }
  if (IsA(n, Var)) {
    const Var* v = reinterpret_cast<const Var*>(n);
    RangeTblEntry* rte = planner_rt_fetch(v->varno, root);
    appendStringInfo(out, "%s.%s", quote_identifier(rte->eref->aliasname),
                     quote_identifier(get_rte_attribute_name(rte, v->varattno)));
    return;
  }
  appendStringInfoString(out, "(expression)");
}

char* ExplainText(PlannerInfo* root, const KvTable* t, const Classified& c) {
  StringInfoData s;
  initStringInfo(&s);
  auto col = [&](int k) {
    return quote_identifier(get_attname(t->relid, t->key_attnums[k], false));
  };
  switch (c.access) {
    case Access::kFullScan:
      appendStringInfoString(&s, "full scan");
      return s.data;
    case Access::kPoint:
      appendStringInfoString(&s, "point lookup (");
      break;
    case Access::kMultiGet:
      appendStringInfoString(&s, "multi-get (");
      break;
    case Access::kRange:
      appendStringInfoString(&s, "range scan (");
      break;
    case Access::kPrefix:
      appendStringInfoString(&s, "prefix scan (");
      break;
  }
  bool first = true;
  auto sep = [&]() {
    if (!first) appendStringInfoString(&s, " AND ");
    first = false;
  };
  for (int i = 0; i < c.neq; ++i) {
    sep();
    appendStringInfo(&s, "%s = ", col(i));
    Describe(root, reinterpret_cast<Node*>(c.eq[i]), &s);
  }
  if (c.array != nullptr) {
    sep();
    appendStringInfo(&s, "%s = ANY (", col(0));
    Describe(root, reinterpret_cast<Node*>(c.array), &s);
    appendStringInfoChar(&s, ')');
  }
  if (c.lower != nullptr) {
    sep();
    appendStringInfo(&s, "%s %s ", col(0), c.lower_incl ? ">=" : ">");
    Describe(root, reinterpret_cast<Node*>(c.lower), &s);
  }
  if (c.upper != nullptr) {
    sep();
    appendStringInfo(&s, "%s %s ", col(0), c.upper_incl ? "<=" : "<");
    Describe(root, reinterpret_cast<Node*>(c.upper), &s);
  }
  if (c.like_prefix != nullptr) {
    sep();
    appendStringInfo(&s, "%s starts with %s", col(0), quote_literal_cstr(c.like_prefix));
  }
  appendStringInfoChar(&s, ')');
  return s.data;
}

}  // namespace

void GetRelSize(PlannerInfo* root, RelOptInfo* baserel, Oid relid) {
  RelState* st = static_cast<RelState*>(palloc0(sizeof(RelState)));
  st->table = CachedKvTableById(relid);
  st->keys = KeyCount(st->table);
  baserel->fdw_private = st;
  const Classified c = Classify(root, baserel, st->table, baserel->baserestrictinfo, nullptr);
  const double scanned = Rows(root, baserel, c, st->keys);
  List* local = list_difference_ptr(baserel->baserestrictinfo, Answered(c));
  const Selectivity sel =
      clauselist_selectivity(root, local, static_cast<int>(baserel->relid), JOIN_INNER, nullptr);
  baserel->rows = clamp_row_est(scanned * sel);
  baserel->tuples = st->keys;
}

void GetPaths(PlannerInfo* root, RelOptInfo* baserel, Oid) {
  RelState* st = static_cast<RelState*>(baserel->fdw_private);
  const KvTable* t = st->table;
  // The unparameterized path.
  Classified c = Classify(root, baserel, t, baserel->baserestrictinfo, nullptr);
  const double scanned = Rows(root, baserel, c, st->keys);
  Cost startup, total;
  Costs(c, scanned, &startup, &total);
  QualCost qual;
  cost_qual_eval(&qual, list_difference_ptr(baserel->baserestrictinfo, Answered(c)), root);
  startup += qual.startup;
  total += qual.startup + qual.per_tuple * scanned;
  add_path(baserel, reinterpret_cast<Path*>(create_foreignscan_path(
                        root, baserel, nullptr, baserel->rows, startup, total, NIL,
                        baserel->lateral_relids, nullptr, NIL)));

  // Parameterized lookups: key = outer.column, one engine lookup per outer row (join lookups).
  List* candidates = NIL;
  ListCell* lc;
  foreach (lc, baserel->joininfo) {
    RestrictInfo* ri = lfirst_node(RestrictInfo, lc);
    if (join_clause_is_movable_to(ri, baserel)) candidates = lappend(candidates, ri);
  }
  if (baserel->has_eclass_joins) {
    for (int k = 0; k < t->nkeys; ++k) {
      Var* key = makeVar(static_cast<int>(baserel->relid), t->key_attnums[k], t->key_types[k],
                         t->key_typmods[k], t->key_collations[k], 0);
      candidates = list_concat(
          candidates, generate_implied_equalities_for_column(root, baserel, MatchesKeyVar, key,
                                                             baserel->lateral_referencers));
    }
  }
  List* tried = NIL;
  foreach (lc, candidates) {
    RestrictInfo* ri = lfirst_node(RestrictInfo, lc);
    Relids outer = bms_union(ri->clause_relids, baserel->lateral_relids);
    outer = bms_del_member(outer, static_cast<int>(baserel->relid));
    if (bms_is_empty(outer)) continue;
    ParamPathInfo* ppi = get_baserel_parampathinfo(root, baserel, outer);
    if (list_member_ptr(tried, ppi)) continue;
    tried = lappend(tried, ppi);
    List* clauses = list_concat(list_copy(baserel->baserestrictinfo), ppi->ppi_clauses);
    const Classified pc = Classify(root, baserel, t, clauses, ppi->ppi_req_outer);
    if (pc.access != Access::kPoint && pc.access != Access::kPrefix) continue;
    const double rows = Rows(root, baserel, pc, st->keys);
    Cost ps, pt;
    Costs(pc, rows, &ps, &pt);
    cost_qual_eval(&qual, list_difference_ptr(clauses, Answered(pc)), root);
    ps += qual.startup;
    pt += qual.startup + qual.per_tuple * rows;
    add_path(baserel, reinterpret_cast<Path*>(create_foreignscan_path(
                          root, baserel, nullptr, Max(1.0, Min(ppi->ppi_rows, rows)), ps, pt, NIL,
                          ppi->ppi_req_outer, nullptr, NIL)));
  }
}

ForeignScan* GetPlan(PlannerInfo* root, RelOptInfo* baserel, Oid, ForeignPath* best_path,
                     List* tlist, List* scan_clauses, Plan* outer_plan) {
  RelState* st = static_cast<RelState*>(baserel->fdw_private);
  const KvTable* t = st->table;
  Relids outer = best_path->path.param_info ? best_path->path.param_info->ppi_req_outer : nullptr;
  const Classified c = Classify(root, baserel, t, scan_clauses, outer);
  List* local = extract_actual_clauses(list_difference_ptr(scan_clauses, Answered(c)), false);
  List* exprs = NIL;
  for (int i = 0; i < c.neq; ++i) exprs = lappend(exprs, c.eq[i]);
  if (c.array != nullptr) exprs = lappend(exprs, c.array);
  if (c.lower != nullptr) exprs = lappend(exprs, c.lower);
  if (c.upper != nullptr) exprs = lappend(exprs, c.upper);
  const bool for_update =
      (root->parse->commandType == CMD_UPDATE || root->parse->commandType == CMD_DELETE) &&
      root->parse->resultRelation == static_cast<int>(baserel->relid);
  List* priv = NIL;
  priv = lappend(priv, makeInteger(static_cast<int>(c.access)));
  priv = lappend(priv, makeString(ExplainText(root, t, c)));
  priv = lappend(priv, makeInteger(c.neq));
  priv = lappend(priv, makeInteger(c.lower != nullptr));
  priv = lappend(priv, makeInteger(c.lower_incl));
  priv = lappend(priv, makeInteger(c.upper != nullptr));
  priv = lappend(priv, makeInteger(c.upper_incl));
  priv = lappend(priv, makeString(pstrdup(c.like_prefix ? c.like_prefix : "")));
  priv = lappend(priv, makeInteger(for_update));
  return make_foreignscan(tlist, local, baserel->relid, exprs, priv, NIL, NIL, outer_plan);
}

}  // namespace eloqkv::pg
