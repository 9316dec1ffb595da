#include "pg/kv_session.h"

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pg/kv_undo.h"
#include "pg/replication.h"

namespace eloqkv::pg::kv {
namespace {

// One buffered write: the latest state of a key in this transaction, with the condition of the
// transaction's first write to it (the batch holds one op per key).
struct Pending {
  bool is_delete = false;
  std::string value;
  int64_t expire_at_ms = 0;
  WriteCondition cond = WriteCondition::kNone;
  OnConditionFailure on_fail = OnConditionFailure::kFailBatch;
  uint64_t expected_seq = 0;
  unsigned relid = 0;
};

struct KeyspaceWrites {
  std::string name;
  unsigned relid = 0;
  bool truncated = false;
  std::map<std::string, Pending> ops;  // ordered like the engine: bytewise
};

// Undo for savepoints: the state before a change made at a nesting level deeper than 1.
struct Undo {
  int level;
  uint32_t ks;
  bool whole_keyspace;  // a truncate: restore the keyspace's entry as a whole
  std::string key;
  bool existed = false;
  Pending previous;
  KeyspaceWrites previous_keyspace;
  bool keyspace_existed = false;
};

struct Session {
  std::map<uint32_t, KeyspaceWrites> writes;
  std::vector<Undo> undo;
  std::unordered_map<std::string, uint64_t> read_seqs;
  std::vector<std::pair<std::string, int>> drops;          // keyspace, nesting level of the DROP
  std::unordered_map<std::string, uint32_t> keyspace_ids;  // name -> id, checked on use
  // Storage behind Row pointers.
  std::string get_value;
  std::vector<std::string> multi_values;
  std::vector<std::string> multi_keys;
  std::vector<int> multi_state;  // 0 absent, 1 engine, 2 own write
  std::vector<uint64_t> multi_seqs;
};

Session& S() {
  static Session* s = new Session();  // never destroyed: no destructor runs at process exit
  return *s;
}

std::string ReadKey(uint32_t ks, const char* key, size_t len) {
  std::string k(reinterpret_cast<const char*>(&ks), sizeof(ks));
  k.append(key, len);
  return k;
}

// The own-write state of a key: nullptr when this transaction has not touched it.
const Pending* Own(uint32_t ks, std::string_view key, bool* truncated) {
  *truncated = false;
  auto it = S().writes.find(ks);
  if (it == S().writes.end()) return nullptr;
  *truncated = it->second.truncated;
  auto op = it->second.ops.find(std::string(key));
  return op == it->second.ops.end() ? nullptr : &op->second;
}

bool ExpiredNow(int64_t expire_at_ms) {
  return expire_at_ms != 0 && expire_at_ms <= NowMillis();
}

void Count(ReadCounters* c, const ReadInfo& info) {
  if (c == nullptr) return;
  c->cache_hits += info.cache_hits;
  c->device_reads += info.device_reads;
}

KeyspaceWrites& WritesFor(uint32_t ks, const char* name, unsigned relid) {
  KeyspaceWrites& w = S().writes[ks];
  if (w.name.empty()) {
    w.name = name;
    w.relid = relid;
  }
  return w;
}

void RecordUndo(uint32_t ks, const std::string& key, int level) {
  if (level <= 1) return;  // a top-level abort discards everything anyway
  Undo u;
  u.level = level;
  u.ks = ks;
  u.whole_keyspace = false;
  u.key = key;
  bool truncated;
  if (const Pending* p = Own(ks, key, &truncated)) {
    u.existed = true;
    u.previous = *p;
  }
  S().undo.push_back(std::move(u));
}

bool Mutate(uint32_t ks, const char* name, unsigned relid, const char* key, size_t len,
            const Pending& next, int level, PgError* err) {
  return Guarded(err, [&] {
    const std::string k(key, len);
    RecordUndo(ks, k, level);
    KeyspaceWrites& w = WritesFor(ks, name, relid);
    auto it = w.ops.find(k);
    if (it == w.ops.end()) {
      w.ops.emplace(k, next);
    } else {
      // Keep the condition of the transaction's first write to this key.
      Pending merged = next;
      merged.cond = it->second.cond;
      merged.on_fail = it->second.on_fail;
      merged.expected_seq = it->second.expected_seq;
      it->second = std::move(merged);
    }
    return Status::OK();
  });
}

}  // namespace

struct Cursor {
  std::unique_ptr<Iterator> it;
  bool truncated = false;
  std::vector<std::pair<std::string, Pending>> overlay;  // own writes in range, at open
  size_t ov = 0;
  std::string key, value;
  bool keys_only = false;
  bool engine_done = false;
  bool engine_ready = false;  // it holds a key not yet consumed
};

bool ResolveKeyspace(Engine* e, const char* name, bool create, uint32_t* id, bool* found,
                     bool* created, PgError* err) {
  *found = false;
  if (created != nullptr) *created = false;
  return Guarded(err, [&] {
    // Ids are never reused, so a cached id that still exists still names this keyspace.
    auto cached = S().keyspace_ids.find(name);
    if (cached != S().keyspace_ids.end() && e->KeyspaceExists(cached->second)) {
      *id = cached->second;
      *found = true;
      return Status::OK();
    }
    Status s = e->FindKeyspace(name, id);
    if (s.ok()) {
      *found = true;
      S().keyspace_ids[name] = *id;
      return s;
    }
    if (!s.IsNotFound() || !create) return s.IsNotFound() ? Status::OK() : s;
    s = e->CreateKeyspace(name, id);
    if (s.IsKeyExists()) s = e->FindKeyspace(name, id);  // created concurrently
    if (s.ok()) {
      *found = true;
      if (created != nullptr) *created = true;
      S().keyspace_ids[name] = *id;
    }
    return s;
  });
}

bool KeyspaceKeys(Engine* e, uint32_t id, uint64_t* keys, PgError* err) {
  return Guarded(err, [&] {
    KeyspaceStats st;
    Status s = e->GetKeyspaceStats(id, &st);
    if (s.ok()) *keys = st.keys;
    return s;
  });
}

bool Get(Engine* e, uint32_t ks, const char* key, size_t len, Row* row, bool* found,
         ReadCounters* c, PgError* err) {
  *found = false;
  return Guarded(err, [&] {
    const std::string_view k(key, len);
    bool truncated;
    if (const Pending* p = Own(ks, k, &truncated)) {
      if (p->is_delete || ExpiredNow(p->expire_at_ms)) return Status::OK();
      *found = true;
      *row = Row{key, len, p->value.data(), p->value.size(), 0};
      if (c != nullptr) ++c->rows;
      return Status::OK();
    }
    if (truncated) return Status::OK();
    ReadInfo info;
    Status s = e->Get(ks, k, &S().get_value, &info);
    Count(c, info);
    if (s.IsNotFound()) return Status::OK();
    if (!s.ok()) return s;
    *found = true;
    *row = Row{key, len, S().get_value.data(), S().get_value.size(), info.seq};
    if (c != nullptr) ++c->rows;
    return Status::OK();
  });
}

bool Exists(Engine* e, uint32_t ks, const char* key, size_t len, bool* exists, PgError* err) {
  *exists = false;
  return Guarded(err, [&] {
    const std::string_view k(key, len);
    bool truncated;
    if (const Pending* p = Own(ks, k, &truncated)) {
      *exists = !p->is_delete && !ExpiredNow(p->expire_at_ms);
      return Status::OK();
    }
    if (truncated) return Status::OK();
    Status s = e->Probe(ks, k, nullptr);
    if (s.IsNotFound()) return Status::OK();
    *exists = s.ok();
    return s;
  });
}

bool MultiGet(Engine* e, uint32_t ks, int n, const char* const* keys, const size_t* lens,
              ReadCounters* c, PgError* err) {
  return Guarded(err, [&] {
    Session& s = S();
    s.multi_keys.assign(n, std::string());
    s.multi_values.assign(n, std::string());
    s.multi_state.assign(n, 0);
    s.multi_seqs.assign(n, 0);
    std::vector<std::string_view> cold;
    std::vector<int> cold_idx;
    for (int i = 0; i < n; ++i) {
      s.multi_keys[i].assign(keys[i], lens[i]);
      bool truncated;
      if (const Pending* p = Own(ks, s.multi_keys[i], &truncated)) {
        if (!p->is_delete && !ExpiredNow(p->expire_at_ms)) {
          s.multi_state[i] = 2;
          s.multi_values[i] = p->value;
        }
        continue;
      }
      if (truncated) continue;
      cold.emplace_back(s.multi_keys[i]);
      cold_idx.push_back(i);
    }
    if (!cold.empty()) {
      std::vector<std::string> values;
      std::vector<Status> statuses;
      std::vector<uint64_t> seqs;
      ReadInfo info;
      e->MultiGet(ks, cold, &values, &statuses, &info, &seqs);
      Count(c, info);
      for (size_t j = 0; j < cold.size(); ++j) {
        if (statuses[j].IsNotFound()) continue;
        if (!statuses[j].ok()) return statuses[j];
        const int i = cold_idx[j];
        s.multi_state[i] = 1;
        s.multi_values[i] = std::move(values[j]);
        s.multi_seqs[i] = seqs[j];
      }
    }
    if (c != nullptr)
      for (int st : s.multi_state) c->rows += st != 0;
    return Status::OK();
  });
}

bool MultiGetRow(int i, Row* row) {
  Session& s = S();
  if (i < 0 || static_cast<size_t>(i) >= s.multi_state.size() || s.multi_state[i] == 0)
    return false;
  *row = Row{s.multi_keys[i].data(), s.multi_keys[i].size(), s.multi_values[i].data(),
             s.multi_values[i].size(), s.multi_seqs[i]};
  return true;
}

bool OpenCursor(Engine* e, uint32_t ks, const CursorSpec& spec, Cursor** out, PgError* err) {
  *out = nullptr;
  Cursor* c = nullptr;
  const bool ok = Guarded(err, [&] {
    auto cur = std::make_unique<Cursor>();
    cur->keys_only = spec.keys_only;
    ScanOptions o;
    if (spec.has_lower) {
      o.lower.assign(spec.lower, spec.lower_len);
      o.lower_inclusive = spec.lower_inclusive;
    }
    if (spec.has_upper) {
      o.upper.assign(spec.upper, spec.upper_len);
      o.upper_inclusive = spec.upper_inclusive;
      o.has_upper = true;
    }
    if (spec.prefix_len > 0) o.prefix.assign(spec.prefix, spec.prefix_len);
    auto within = [&](const std::string& k) {
      if (!o.prefix.empty() && k.compare(0, o.prefix.size(), o.prefix) != 0) return false;
      if (spec.has_lower) {
        const int cmp = k.compare(o.lower);
        if (cmp < 0 || (cmp == 0 && !o.lower_inclusive)) return false;
      }
      if (o.has_upper) {
        const int cmp = k.compare(o.upper);
        if (cmp > 0 || (cmp == 0 && !o.upper_inclusive)) return false;
      }
      return true;
    };
    auto w = S().writes.find(ks);
    if (w != S().writes.end()) {
      cur->truncated = w->second.truncated;
      for (const auto& [k, p] : w->second.ops)
        if (within(k)) cur->overlay.emplace_back(k, p);
    }
    if (!cur->truncated) {
      cur->it = e->NewIterator(ks, o);
      if (!cur->it->status().ok()) return cur->it->status();
    } else {
      cur->engine_done = true;
    }
    c = cur.release();
    return Status::OK();
  });
  *out = c;
  return ok;
}

bool CursorNext(Cursor* c, Row* row, bool* done, ReadCounters* counters, PgError* err) {
  *done = false;
  return Guarded(err, [&] {
    for (;;) {
      if (!c->engine_done && !c->engine_ready) {
        if (!c->it->Valid()) {
          if (!c->it->status().ok()) return c->it->status();
          c->engine_done = true;
        } else {
          c->engine_ready = true;
        }
      }
      const bool have_engine = !c->engine_done;
      const bool have_own = c->ov < c->overlay.size();
      if (!have_engine && !have_own) {
        *done = true;
        return Status::OK();
      }
      int cmp = 0;
      if (have_engine && have_own) {
        cmp = c->it->key().compare(c->overlay[c->ov].first);
      } else {
        cmp = have_engine ? -1 : 1;
      }
      if (cmp >= 0) {
        // The own write wins (and hides the engine's row of the same key).
        if (cmp == 0) {
          c->it->Next();
          c->engine_ready = false;
        }
        const auto& [k, p] = c->overlay[c->ov++];
        if (p.is_delete || ExpiredNow(p.expire_at_ms)) continue;
        c->key = k;
        c->value = p.value;
        *row = Row{c->key.data(), c->key.size(), c->value.data(), c->value.size(), 0};
        if (counters != nullptr) ++counters->rows;
        return Status::OK();
      }
      c->key.assign(c->it->key());
      Status s;
      if (c->keys_only) {
        c->value.clear();
      } else {
        s = c->it->value(&c->value);
      }
      const ReadInfo info = c->it->info();
      c->it->Next();
      c->engine_ready = false;
      Count(counters, info);
      if (s.IsNotFound()) continue;  // deleted or expired since the scan reached it
      if (!s.ok()) return s;
      *row = Row{c->key.data(), c->key.size(), c->value.data(), c->value.size(), info.seq};
      if (counters != nullptr) ++counters->rows;
      return Status::OK();
    }
  });
}

void CloseCursor(Cursor* c) noexcept {
  delete c;
}

bool BufferPut(uint32_t ks, const char* keyspace_name, unsigned relid, const char* key, size_t len,
               const char* value, size_t value_len, int64_t expire_at_ms, Intent intent,
               uint64_t read_seq, int nest_level, PgError* err) {
  Pending p;
  const bool ok = Guarded(err, [&] {
    p.value.assign(value, value_len);
    return Status::OK();
  });
  if (!ok) return false;
  p.expire_at_ms = expire_at_ms;
  p.relid = relid;
  switch (intent) {
    case Intent::kInsert:
      p.cond = WriteCondition::kIfAbsent;
      break;
    case Intent::kInsertOrSkip:
      p.cond = WriteCondition::kIfAbsent;
      p.on_fail = OnConditionFailure::kSkip;
      break;
    case Intent::kReplace:
      p.cond = read_seq != 0 ? WriteCondition::kIfSeq : WriteCondition::kNone;
      p.expected_seq = read_seq;
      break;
    case Intent::kUpsert:
      break;
  }
  return Mutate(ks, keyspace_name, relid, key, len, p, nest_level, err);
}

bool BufferDelete(uint32_t ks, const char* keyspace_name, unsigned relid, const char* key,
                  size_t len, uint64_t read_seq, int nest_level, PgError* err) {
  Pending p;
  p.is_delete = true;
  p.relid = relid;
  p.cond = read_seq != 0 ? WriteCondition::kIfSeq : WriteCondition::kNone;
  p.expected_seq = read_seq;
  return Mutate(ks, keyspace_name, relid, key, len, p, nest_level, err);
}

bool BufferTruncate(uint32_t ks, const char* keyspace_name, unsigned relid, int nest_level,
                    PgError* err) {
  return Guarded(err, [&] {
    Session& s = S();
    if (nest_level > 1) {
      Undo u;
      u.level = nest_level;
      u.ks = ks;
      u.whole_keyspace = true;
      auto it = s.writes.find(ks);
      u.keyspace_existed = it != s.writes.end();
      if (u.keyspace_existed) u.previous_keyspace = it->second;
      s.undo.push_back(std::move(u));
    }
    KeyspaceWrites& w = WritesFor(ks, keyspace_name, relid);
    w.truncated = true;
    w.ops.clear();
    return Status::OK();
  });
}

bool HasWrites() {
  return !S().writes.empty();
}

void NoteRead(uint32_t ks, const char* key, size_t len, uint64_t seq) {
  PgError ignored;
  (void)Guarded(&ignored, [&] {
    S().read_seqs[ReadKey(ks, key, len)] = seq;
    return Status::OK();
  });
}

uint64_t ReadSeq(uint32_t ks, const char* key, size_t len) {
  uint64_t seq = 0;
  PgError ignored;
  (void)Guarded(&ignored, [&] {
    auto it = S().read_seqs.find(ReadKey(ks, key, len));
    if (it != S().read_seqs.end()) seq = it->second;
    return Status::OK();
  });
  return seq;
}

namespace {

// A blind write (no condition) made conditional on the sequence number its before-image was
// read at fails when another writer gets there between the read and the batch: the batch is
// built again with a new read, and the last of this many attempts writes it without an image
// (a blind write must not fail for the sake of its image).
constexpr int kImageAttempts = 3;

// Adds the op for a buffered write, with its before-image when `images` is given. *converted:
// the op got a condition only for its image.
Status AddOp(Engine* e, WriteBatch* batch, uint32_t ks, const std::string& key, const Pending& p,
             std::string* images, bool convert, bool* converted) {
  WriteCondition cond = p.cond;
  uint64_t expected = p.expected_seq;
  *converted = false;
  const auto op = static_cast<uint32_t>(batch->Count());
  if (images != nullptr && cond == WriteCondition::kIfAbsent) {
    undo::AddImage(images, ks, op, p.is_delete, key, false, 0, {});
  } else if (images != nullptr && (cond == WriteCondition::kIfSeq || convert)) {
    std::string old;
    ReadInfo info;
    const Status read = e->Get(ks, key, &old, &info);
    if (!read.ok() && !read.IsNotFound()) return read;
    const uint64_t seq = read.ok() ? info.seq : 0;
    if (cond != WriteCondition::kIfSeq) {
      cond = WriteCondition::kIfSeq;
      expected = seq;
      *converted = true;
    }
    // Otherwise the batch fails on this op anyway, and needs no image.
    if (seq == expected)
      undo::AddImage(images, ks, op, p.is_delete, key, read.ok(), info.expire_at_ms, old);
  }
  return p.is_delete ? batch->Delete(ks, key, cond, expected, p.on_fail)
                     : batch->Put(ks, key, p.value, p.expire_at_ms, cond, expected, p.on_fail);
}

}  // namespace

bool Commit(Engine* e, std::string* images, uint64_t* first_seq, CommitFailure* failure,
            PgError* err) {
  failure->failed = false;
  const bool ok = Guarded(err, [&] {
    Session& s = S();
    if (s.writes.empty()) return Status::OK();
    for (int attempt = 1;; ++attempt) {
      WriteBatch batch;
      std::vector<std::pair<unsigned, const std::string*>> who;  // per op: table, key
      std::vector<bool> converted;                               // per op: see AddOp
      if (images != nullptr) images->clear();
      for (auto& [ks, w] : s.writes) {
        if (w.truncated) {
          Status st = batch.TruncateKeyspace(ks, w.name);
          if (!st.ok()) return st;
          who.emplace_back(w.relid, nullptr);
          converted.push_back(false);
        }
        // A truncate cannot be taken back key by key: its keyspace's writes get no images.
        std::string* ks_images = w.truncated ? nullptr : images;
        for (auto& [key, p] : w.ops) {
          bool conv = false;
          Status st = AddOp(e, &batch, ks, key, p, ks_images, attempt < kImageAttempts, &conv);
          if (!st.ok()) return st;
          who.emplace_back(p.relid, &key);
          converted.push_back(conv);
        }
      }
      WriteResult result;
      Status st;
      {
        BatchRecordExtras extras(images, 0);
        st = e->Write(batch, &result);
      }
      if (st.code() == Status::Code::kConditionFailed && result.failed_op < converted.size() &&
          converted[result.failed_op])
        continue;
      if (st.ok() && first_seq != nullptr) *first_seq = result.first_seq;
      if ((st.IsKeyExists() || st.code() == Status::Code::kConditionFailed) &&
          result.failed_op < who.size()) {
        failure->failed = true;
        failure->duplicate = st.IsKeyExists();
        failure->relid = who[result.failed_op].first;
        const std::string* k = who[result.failed_op].second;
        failure->key_len = k ? std::min(k->size(), sizeof(failure->key)) : 0;
        if (k) std::memcpy(failure->key, k->data(), failure->key_len);
      }
      return st;
    }
  });
  Discard();
  return ok;
}

void Discard() noexcept {
  Session& s = S();
  s.writes.clear();
  s.undo.clear();
  s.read_seqs.clear();
}

void SubxactCommit(int nest_level) noexcept {
  for (Undo& u : S().undo)
    if (u.level == nest_level) u.level = nest_level - 1;
  for (auto& d : S().drops)
    if (d.second == nest_level) d.second = nest_level - 1;
}

void SubxactAbort(int nest_level) noexcept {
  Session& s = S();
  while (!s.drops.empty() && s.drops.back().second >= nest_level) s.drops.pop_back();
  while (!s.undo.empty() && s.undo.back().level >= nest_level) {
    Undo& u = s.undo.back();
    if (u.whole_keyspace) {
      if (u.keyspace_existed) {
        s.writes[u.ks] = std::move(u.previous_keyspace);
      } else {
        s.writes.erase(u.ks);
      }
    } else {
      auto w = s.writes.find(u.ks);
      if (w != s.writes.end()) {
        if (u.existed) {
          w->second.ops[u.key] = std::move(u.previous);
        } else {
          w->second.ops.erase(u.key);
          if (w->second.ops.empty() && !w->second.truncated) s.writes.erase(w);
        }
      }
    }
    s.undo.pop_back();
  }
}

bool DropAtCommit(const char* keyspace_name, int nest_level, PgError* err) {
  return Guarded(err, [&] {
    S().drops.emplace_back(keyspace_name, nest_level);
    return Status::OK();
  });
}

int RunDrops(Engine* e, PgError* err) noexcept {
  int failed = 0;
  Session& s = S();
  for (const auto& [name, level] : s.drops) {
    const bool ok = Guarded(err, [&] {
      uint32_t id;
      Status st = e->FindKeyspace(name, &id);
      if (st.IsNotFound()) return Status::OK();
      if (!st.ok()) return st;
      return e->DropKeyspace(id);
    });
    failed += ok ? 0 : 1;
  }
  s.drops.clear();
  return failed;
}

void ForgetDrops() noexcept {
  S().drops.clear();
}
bool HasDrops() noexcept {
  return !S().drops.empty();
}

}  // namespace eloqkv::pg::kv
