// SQL functions that show the engine: eloqkv.engine_info() and eloqkv.keyspace_stats().
#include <cstring>

#include "pg/engine_access.h"
#include "pg/pg_guard.h"
#include "pg/table_options.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "funcapi.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(eloqkv_engine_info);
PG_FUNCTION_INFO_V1(eloqkv_keyspace_stats);
PG_FUNCTION_INFO_V1(eloqkv_checkpoint);
PG_FUNCTION_INFO_V1(eloqkv_compact);
}

namespace {

using eloqkv::pg::Guarded;
using eloqkv::pg::PgError;
using eloqkv::pg::RaiseError;

// A plain copy of EngineInfo (no destructors), made inside the guard.
struct InfoCopy {
  char version[32], state[1100], data_dir[1024], io_mode[16], sync[16], checksum[16];
  bool direct;
  int64 index_used, index_limit, cache_used, cache_limit, keys, live, disk, segments, fsyncs,
      written;
  double fsync_p99_ms, last_checkpoint_ms, recovery_ms;
  int64 checkpoints, recovered, compactions, reclaimed, expired;
};

void Copy(char* dst, size_t n, const std::string& s) {
  snprintf(dst, n, "%s", s.c_str());
}

}  // namespace

extern "C" Datum eloqkv_engine_info(PG_FUNCTION_ARGS) {
  TupleDesc desc;
  if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
    elog(ERROR, "eloqkv.engine_info must return a composite type");
  eloqkv::Engine* engine = eloqkv::pg::AttachedEngine();  // shows the state even if not ready
  InfoCopy c;
  std::memset(&c, 0, sizeof(c));
  PgError err;
  if (!Guarded(&err, [&] {
        const eloqkv::EngineInfo i = engine->Info();
        Copy(c.version, sizeof(c.version), i.version);
        Copy(c.state, sizeof(c.state),
             i.state == "failed" ? i.state + ": " + engine->FailureMessage() : i.state);
        Copy(c.data_dir, sizeof(c.data_dir), i.data_dir);
        Copy(c.io_mode, sizeof(c.io_mode), i.io_mode);
        Copy(c.sync, sizeof(c.sync), i.sync);
        Copy(c.checksum, sizeof(c.checksum), i.checksum);
        c.direct = i.direct_reads;
        c.index_used = static_cast<int64>(i.index_memory_used);
        c.index_limit = static_cast<int64>(i.index_memory_limit);
        c.cache_used = static_cast<int64>(i.cache_memory_used);
        c.cache_limit = static_cast<int64>(i.cache_memory_limit);
        c.keys = static_cast<int64>(i.keys);
        c.live = static_cast<int64>(i.live_bytes);
        c.disk = static_cast<int64>(i.disk_bytes);
        c.segments = static_cast<int64>(i.segments);
        c.fsyncs = static_cast<int64>(i.fsyncs);
        c.written = static_cast<int64>(i.bytes_written);
        c.fsync_p99_ms = i.fsync_latency.p99_us / 1000.0;
        c.checkpoints = static_cast<int64>(i.checkpoints);
        c.last_checkpoint_ms = i.last_checkpoint_ms;
        c.recovery_ms = i.recovery_ms;
        c.recovered = static_cast<int64>(i.recovered_records);
        c.compactions = static_cast<int64>(i.compactions);
        c.reclaimed = static_cast<int64>(i.compaction_bytes_reclaimed);
        c.expired = static_cast<int64>(i.expired_swept);
        return eloqkv::Status::OK();
      })) {
    RaiseError(err);
  }
  // Like the data_directory setting itself, the path is shown only to those who may read all
  // settings.
  const bool show_dir = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS);
  Datum values[25];
  bool nulls[25] = {false};
  int n = 0;
  values[n++] = CStringGetTextDatum(c.version);
  values[n++] = CStringGetTextDatum(c.state);
  if (show_dir) {
    values[n++] = CStringGetTextDatum(c.data_dir);
  } else {
    nulls[n++] = true;
  }
  values[n++] = CStringGetTextDatum(c.io_mode);
  values[n++] = BoolGetDatum(c.direct);
  values[n++] = CStringGetTextDatum(c.sync);
  values[n++] = CStringGetTextDatum(c.checksum);
  values[n++] = Int64GetDatum(c.index_used);
  values[n++] = Int64GetDatum(c.index_limit);
  values[n++] = Int64GetDatum(c.cache_used);
  values[n++] = Int64GetDatum(c.cache_limit);
  values[n++] = Int64GetDatum(c.keys);
  values[n++] = Int64GetDatum(c.live);
  values[n++] = Int64GetDatum(c.disk);
  values[n++] = Int64GetDatum(c.segments);
  values[n++] = Int64GetDatum(c.fsyncs);
  values[n++] = Int64GetDatum(c.written);
  values[n++] = Float8GetDatum(c.fsync_p99_ms);
  values[n++] = Int64GetDatum(c.checkpoints);
  values[n++] = Float8GetDatum(c.last_checkpoint_ms);
  values[n++] = Float8GetDatum(c.recovery_ms);
  values[n++] = Int64GetDatum(c.recovered);
  values[n++] = Int64GetDatum(c.compactions);
  values[n++] = Int64GetDatum(c.reclaimed);
  values[n++] = Int64GetDatum(c.expired);
  Assert(n == desc->natts);
  PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

namespace {

struct KeyspaceCopy {
  char name[eloqkv::kMaxKeyspaceNameSize + 1];
  int64 id, keys, bytes, reads, writes, deletes, hits, misses, device;
  double read_p50, read_p99, write_p50, write_p99;
};

}  // namespace

extern "C" Datum eloqkv_keyspace_stats(PG_FUNCTION_ARGS) {
  eloqkv::Engine* engine = eloqkv::pg::ReadyEngine();
  InitMaterializedSRF(fcinfo, 0);
  ReturnSetInfo* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
  // Copy out inside the guard into palloc'd-free storage: count first, then fill.
  KeyspaceCopy* rows = nullptr;
  size_t count = 0;
  PgError err;
  if (!Guarded(&err, [&] {
        const std::vector<eloqkv::KeyspaceStats> all = engine->ListKeyspaces();
        rows = static_cast<KeyspaceCopy*>(
            std::calloc(all.size() ? all.size() : 1, sizeof(KeyspaceCopy)));
        if (rows == nullptr) throw std::bad_alloc();
        for (const eloqkv::KeyspaceStats& k : all) {
          // Tables' keyspaces by the names their tables give them; other databases' not at all.
          char local[eloqkv::kMaxKeyspaceNameSize + 1];
          if (!eloqkv::pg::LocalKeyspaceName(k.name.c_str(), local, sizeof(local))) continue;
          KeyspaceCopy& r = rows[count++];
          Copy(r.name, sizeof(r.name), local);
          r.id = k.id;
          r.keys = static_cast<int64>(k.keys);
          r.bytes = static_cast<int64>(k.bytes);
          r.reads = static_cast<int64>(k.reads);
          r.writes = static_cast<int64>(k.writes);
          r.deletes = static_cast<int64>(k.deletes);
          r.hits = static_cast<int64>(k.cache_hits);
          r.misses = static_cast<int64>(k.cache_misses);
          r.device = static_cast<int64>(k.device_reads);
          r.read_p50 = k.read_latency.p50_us / 1000.0;
          r.read_p99 = k.read_latency.p99_us / 1000.0;
          r.write_p50 = k.write_latency.p50_us / 1000.0;
          r.write_p99 = k.write_latency.p99_us / 1000.0;
        }
        return eloqkv::Status::OK();
      })) {
    std::free(rows);
    RaiseError(err);
  }
  // Move the rows into palloc'd memory before anything that can raise.
  KeyspaceCopy* copy =
      static_cast<KeyspaceCopy*>(palloc(sizeof(KeyspaceCopy) * (count ? count : 1)));
  std::memcpy(copy, rows, sizeof(KeyspaceCopy) * count);
  std::free(rows);
  for (size_t i = 0; i < count; ++i) {
    const KeyspaceCopy& r = copy[i];
    Datum v[14];
    bool nulls[14] = {false};
    v[0] = Int64GetDatum(r.id);
    v[1] = CStringGetTextDatum(r.name);
    v[2] = Int64GetDatum(r.keys);
    v[3] = Int64GetDatum(r.bytes);
    v[4] = Int64GetDatum(r.reads);
    v[5] = Int64GetDatum(r.writes);
    v[6] = Int64GetDatum(r.deletes);
    v[7] = Int64GetDatum(r.hits);
    v[8] = Int64GetDatum(r.misses);
    v[9] = Int64GetDatum(r.device);
    v[10] = Float8GetDatum(r.read_p50);
    v[11] = Float8GetDatum(r.read_p99);
    v[12] = Float8GetDatum(r.write_p50);
    v[13] = Float8GetDatum(r.write_p99);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
  }
  return static_cast<Datum>(0);
}

// eloqkv.checkpoint(): writes an index checkpoint now (shortens the next restart).
extern "C" Datum eloqkv_checkpoint(PG_FUNCTION_ARGS) {
  eloqkv::Engine* engine = eloqkv::pg::ReadyEngine();
  PgError err;
  if (!Guarded(&err, [&] { return engine->Checkpoint(); })) RaiseError(err, "checkpoint failed");
  PG_RETURN_VOID();
}

// eloqkv.compact(): rewrites every segment compaction would pick now, reclaiming space at once
// instead of in the maintenance worker's background steps. Returns segments rewritten.
extern "C" Datum eloqkv_compact(PG_FUNCTION_ARGS) {
  eloqkv::Engine* engine = eloqkv::pg::ReadyEngine();
  int64 before = 0, after = 0;
  PgError err;
  if (!Guarded(&err, [&] {
        before = static_cast<int64>(engine->Info().compactions);
        engine->SweepExpired(SIZE_MAX);
        eloqkv::Status s = engine->Checkpoint();
        if (s.ok()) s = engine->Checkpoint();  // two, so the older one moves past old segments
        if (s.ok()) s = engine->Compact();
        after = static_cast<int64>(engine->Info().compactions);
        return s;
      })) {
    RaiseError(err, "compaction failed");
  }
  PG_RETURN_INT64(after - before);
}
