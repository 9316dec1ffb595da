// The eloqkv.* settings: their definitions, strict checking of configured values, and the
// engine options they describe.
#include "pg/settings.h"

#include <climits>
#include <cstring>

#include "pg/pg_headers.h"

extern "C" {
#include "utils/guc.h"
#include "utils/guc_tables.h"
}

namespace eloqkv::pg {
namespace {

constexpr char kDefaultOutputBufferLimit[] = "normal 0 0 0 pubsub 32mb 8mb 60";

// Classes the value does not name keep Redis's defaults.
bool ParseOutputBufferLimit(const char* text, resp::OutputBufferLimits* limits,
                            std::string* error) {
  *limits = resp::OutputBufferLimits();
  return resp::ParseOutputBufferLimits(text != nullptr ? text : "", limits, error);
}

bool CheckOutputBufferLimit(char** newval, void**, GucSource) {
  resp::OutputBufferLimits limits;
  std::string error;
  bool ok = false;
  try {
    ok = ParseOutputBufferLimit(*newval, &limits, &error);
  } catch (...) {
    error = "out of memory";
  }
  if (!ok) GUC_check_errdetail("%s", error.c_str());
  return ok;
}

char* g_data_directory = nullptr;
int g_index_memory_mb = 64;
int g_cache_memory_mb = 128;
int g_log_buffer_mb = 16;
int g_sync = static_cast<int>(SyncPolicy::kAlways);
int g_sync_interval_ms = 1000;
int g_segment_size_mb = 64;
int g_io_mode = static_cast<int>(IoMode::kAuto);
bool g_direct_io = true;
int g_max_disk_size_mb = 0;
int g_max_keyspaces = 1024;
int g_checkpoint_interval_s = 300;
int g_checkpoint_log_size_mb = 256;
int g_resp_port = 6380;
char* g_resp_listen_addresses = nullptr;
int g_resp_workers = 2;
char* g_resp_password = nullptr;
int g_resp_maxclients = 10000;
int g_resp_timeout_s = 0;
int g_resp_slowlog_log_slower_than_us = 10000;
int g_resp_slowlog_max_len = 128;
int g_resp_debug_sync_delay_ms = 0;
char* g_resp_default_keyspace = nullptr;
int g_resp_max_bulk_len_mb = 512;
char* g_resp_output_buffer_limit = nullptr;
bool g_cache_leases = true;
bool g_warm_cache = true;
bool g_prefault_memory = true;

const struct config_enum_entry kSyncOptions[] = {
    {"always", static_cast<int>(SyncPolicy::kAlways), false},
    {"interval", static_cast<int>(SyncPolicy::kInterval), false},
    {"off", static_cast<int>(SyncPolicy::kOff), false},
    {nullptr, 0, false},
};

const struct config_enum_entry kIoModeOptions[] = {
    {"auto", static_cast<int>(IoMode::kAuto), false},
    {"io_uring", static_cast<int>(IoMode::kIoUring), false},
    {"pread", static_cast<int>(IoMode::kPosix), false},
    {nullptr, 0, false},
};

constexpr const char* kNames[] = {
    "eloqkv.data_directory",
    "eloqkv.index_memory",
    "eloqkv.cache_memory",
    "eloqkv.warm_cache",
    "eloqkv.prefault_memory",
    "eloqkv.log_buffer",
    "eloqkv.sync",
    "eloqkv.sync_interval",
    "eloqkv.segment_size",
    "eloqkv.io_mode",
    "eloqkv.direct_io",
    "eloqkv.max_disk_size",
    "eloqkv.max_keyspaces",
    "eloqkv.checkpoint_interval",
    "eloqkv.checkpoint_log_size",
    "eloqkv.resp_port",
    "eloqkv.resp_listen_addresses",
    "eloqkv.resp_workers",
    "eloqkv.resp_password",
    "eloqkv.resp_maxclients",
    "eloqkv.resp_timeout",
    "eloqkv.resp_default_keyspace",
    "eloqkv.resp_max_bulk_len",
    "eloqkv.resp_client_output_buffer_limit",
    "eloqkv.resp_debug_sync_delay",
    "eloqkv.resp_slowlog_log_slower_than",
    "eloqkv.resp_slowlog_max_len",
    "eloqkv.leases",
};
constexpr int kNameCount = sizeof(kNames) / sizeof(kNames[0]);

bool Known(const char* name) {
  for (const char* n : kNames)
    if (pg_strcasecmp(n, name) == 0) return true;
  return false;
}

// A value given for an eloqkv.* name before this module defined it: from postgresql.conf (or a
// file it includes), postgresql.auto.conf, or -c on the command line. Postgres keeps such values
// as string placeholders, already resolved by its own precedence rules (the last occurrence in
// the files wins, the command line beats the files).
struct GivenSetting {
  char* name;
  char* value;
  GucSource source;
  char* file;  // set when the value came from a file
  int line;
};

// The file a placeholder's value came from, or NULL. (Postgres records a file name even when a
// higher-priority source, such as the command line, overrode the file's value.)
const char* SourceFile(const config_generic* v) {
  return v->reset_source == PGC_S_FILE ? v->sourcefile : nullptr;
}

void UnknownSetting(const config_generic* v) {
  char valid[1024] = {0};
  for (const char* n : kNames) {
    const size_t used = std::strlen(valid);
    snprintf(valid + used, sizeof(valid) - used, "%s%s", used ? ", " : "", n);
  }
  ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                  SourceFile(v) != nullptr
                      ? errmsg("unrecognized configuration parameter \"%s\" in file \"%s\" line %d",
                               v->name, SourceFile(v), v->sourceline)
                      : errmsg("unrecognized configuration parameter \"%s\"", v->name),
                  errhint("Valid eloqkv parameters: %s.", valid)));
}

// Collects the eloqkv.* placeholders (before DefineSettings replaces them) and raises an ERROR
// for a name this module does not define: a misspelt storage setting must not be ignored.
int CollectGivenSettings(GivenSetting* out) {
  config_generic** vars = get_guc_variables();
  const int count = GetNumConfigOptions();
  int n = 0;
  for (int i = 0; i < count; ++i) {
    const config_generic* v = vars[i];
    if ((v->flags & GUC_CUSTOM_PLACEHOLDER) == 0 || pg_strncasecmp(v->name, "eloqkv.", 7) != 0)
      continue;
    if (!Known(v->name)) UnknownSetting(v);
    // Placeholders are strings; reset_val is what define_custom_variable() will apply.
    const auto* s = reinterpret_cast<const config_string*>(v);
    if (s->reset_val == nullptr || n == kNameCount) continue;
    GivenSetting& g = out[n++];
    g.name = pstrdup(v->name);
    g.value = pstrdup(s->reset_val);
    g.source = v->reset_source;
    g.file = SourceFile(v) != nullptr ? pstrdup(SourceFile(v)) : nullptr;
    g.line = v->sourceline;
  }
  return n;
}

// Error context naming where a rejected value came from.
void GivenSettingContext(void* arg) {
  const auto* g = static_cast<const GivenSetting*>(arg);
  if (g->file != nullptr) {
    errcontext("setting \"%s\" in file \"%s\" line %d", g->name, g->file, g->line);
  } else if (g->source == PGC_S_ARGV) {
    errcontext("setting \"%s\" on the server command line", g->name);
  }
}

// Applies the given values again, now with ERROR severity. define_custom_variable() only WARNs
// about an invalid value and silently keeps the default, which is not acceptable for storage
// settings (a typo in eloqkv.sync would quietly change durability). Re-applying with the value's
// own source keeps Postgres's precedence; a bad value raises the standard "invalid value for
// parameter" error (with the allowed values for enums and the range for numbers), which stops
// the postmaster.
void ApplyStrictly(GivenSetting* given, int n) {
  for (int i = 0; i < n; ++i) {
    ErrorContextCallback context;
    context.callback = GivenSettingContext;
    context.arg = &given[i];
    context.previous = error_context_stack;
    error_context_stack = &context;
    (void)set_config_option(given[i].name, given[i].value, PGC_POSTMASTER, given[i].source,
                            GUC_ACTION_SET, true, ERROR, false);
    error_context_stack = context.previous;
  }
}

void DefineMb(const char* name, const char* desc, int* var, int def, int min, int max) {
  DefineCustomIntVariable(name, desc, nullptr, var, def, min, max, PGC_POSTMASTER, GUC_UNIT_MB,
                          nullptr, nullptr, nullptr);
}

void DefineAll() {
  DefineCustomStringVariable(
      "eloqkv.data_directory",
      "Directory of the eloqkv engine's segment and checkpoint files (empty: $PGDATA/eloqkv; "
      "relative paths are relative to the data directory).",
      nullptr, &g_data_directory, "", PGC_POSTMASTER, GUC_SUPERUSER_ONLY, nullptr, nullptr,
      nullptr);
  DefineMb("eloqkv.index_memory", "Shared memory for the eloqkv index (keys and locations).",
           &g_index_memory_mb, 64, 1, 1 << 20);
  DefineMb("eloqkv.cache_memory", "Shared memory for eloqkv's cache of hot values.",
           &g_cache_memory_mb, 128, 1, 1 << 20);
  DefineMb("eloqkv.log_buffer", "Shared memory that gathers concurrent writes for group commit.",
           &g_log_buffer_mb, 16, 1, 1024);
  DefineCustomEnumVariable("eloqkv.sync",
                           "When eloqkv writes are synced: always (acknowledged means durable), "
                           "interval, or off.",
                           nullptr, &g_sync, static_cast<int>(SyncPolicy::kAlways), kSyncOptions,
                           PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("eloqkv.sync_interval",
                          "Longest time a write may stay unsynced when eloqkv.sync = interval.",
                          nullptr, &g_sync_interval_ms, 1000, 1, 3600 * 1000, PGC_POSTMASTER,
                          GUC_UNIT_MS, nullptr, nullptr, nullptr);
  DefineMb("eloqkv.segment_size", "Size of eloqkv's log segment files.", &g_segment_size_mb, 64, 1,
           2048);
  DefineCustomEnumVariable("eloqkv.io_mode",
                           "How eloqkv does I/O: auto (io_uring when the kernel allows it), "
                           "io_uring, or pread.",
                           nullptr, &g_io_mode, static_cast<int>(IoMode::kAuto), kIoModeOptions,
                           PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("eloqkv.leases",
                           "Whether a cache miss takes the key's lease (one fill per key) or "
                           "every missing reader runs the source (plain read-through).",
                           nullptr, &g_cache_leases, true, PGC_USERSET, 0, nullptr, nullptr,
                           nullptr);
  DefineCustomBoolVariable("eloqkv.warm_cache",
                           "Whether eloqkv reads values into its empty value cache after a start, "
                           "in the background, until the cache is nine-tenths full.",
                           nullptr, &g_warm_cache, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("eloqkv.prefault_memory",
                           "Whether eloqkv makes its shared memory (index and value cache) "
                           "resident after a start, in the background, instead of at first use.",
                           nullptr, &g_prefault_memory, true, PGC_SIGHUP, 0, nullptr, nullptr,
                           nullptr);
  DefineCustomBoolVariable("eloqkv.direct_io", "Whether eloqkv reads values with O_DIRECT.",
                           nullptr, &g_direct_io, true, PGC_POSTMASTER, 0, nullptr, nullptr,
                           nullptr);
  DefineMb("eloqkv.max_disk_size", "Limit on eloqkv's disk use (0: the file system's).",
           &g_max_disk_size_mb, 0, 0, INT_MAX);
  DefineCustomIntVariable("eloqkv.max_keyspaces", "Most keyspaces (KV tables) eloqkv can hold.",
                          nullptr, &g_max_keyspaces, 1024, 1, 1 << 20, PGC_POSTMASTER, 0, nullptr,
                          nullptr, nullptr);
  DefineCustomIntVariable("eloqkv.checkpoint_interval",
                          "Longest time between eloqkv index checkpoints while data changes.",
                          nullptr, &g_checkpoint_interval_s, 300, 1, 86400, PGC_POSTMASTER,
                          GUC_UNIT_S, nullptr, nullptr, nullptr);
  DefineMb("eloqkv.checkpoint_log_size",
           "Log volume written since the last checkpoint that triggers a new one.",
           &g_checkpoint_log_size_mb, 256, 1, INT_MAX);
  DefineCustomIntVariable("eloqkv.resp_port",
                          "TCP port of the RESP (Redis protocol) listener; 0 turns it off.",
                          nullptr, &g_resp_port, 6380, 0, 65535, PGC_POSTMASTER, 0, nullptr,
                          nullptr, nullptr);
  DefineCustomStringVariable("eloqkv.resp_listen_addresses",
                             "Addresses the RESP listener binds (comma-separated; * for all).",
                             nullptr, &g_resp_listen_addresses, "127.0.0.1", PGC_POSTMASTER, 0,
                             nullptr, nullptr, nullptr);
  DefineCustomIntVariable("eloqkv.resp_workers", "Background workers that share the RESP port.",
                          nullptr, &g_resp_workers, 2, 1, kMaxRespWorkers, PGC_POSTMASTER, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomStringVariable("eloqkv.resp_password",
                             "Password RESP clients must AUTH with (empty: none).", nullptr,
                             &g_resp_password, "", PGC_SIGHUP,
                             GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("eloqkv.resp_maxclients",
                          "Most RESP clients connected at once, over all workers.", nullptr,
                          &g_resp_maxclients, 10000, 1, 1000000, PGC_SIGHUP, 0, nullptr, nullptr,
                          nullptr);
  DefineCustomIntVariable("eloqkv.resp_timeout",
                          "Idle RESP clients are disconnected after this long (0: never).",
                          nullptr, &g_resp_timeout_s, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable("eloqkv.resp_slowlog_log_slower_than",
                          "RESP commands that run this many microseconds or longer go to the "
                          "SLOWLOG (0: every command, -1: none).",
                          nullptr, &g_resp_slowlog_log_slower_than_us, 10000, -1, INT_MAX,
                          PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("eloqkv.resp_slowlog_max_len",
                          "How many SLOWLOG entries are kept (in shared memory, ~5.5 kB each).",
                          nullptr, &g_resp_slowlog_max_len, 128, 0, 10000, PGC_POSTMASTER, 0,
                          nullptr, nullptr, nullptr);
  DefineCustomIntVariable("eloqkv.resp_debug_sync_delay",
                          "Tests only: delays every sync of the RESP listener by this long.",
                          nullptr, &g_resp_debug_sync_delay_ms, 0, 0, 60000, PGC_SIGHUP,
                          GUC_UNIT_MS | GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, nullptr, nullptr,
                          nullptr);
  DefineCustomStringVariable("eloqkv.resp_default_keyspace",
                             "Keyspace that holds RESP keys which belong to no table.", nullptr,
                             &g_resp_default_keyspace, "@resp", PGC_POSTMASTER, 0, nullptr,
                             nullptr, nullptr);
  DefineMb("eloqkv.resp_max_bulk_len", "Longest bulk string a RESP client may send.",
           &g_resp_max_bulk_len_mb, 512, 1, 2047);
  DefineCustomStringVariable(
      "eloqkv.resp_client_output_buffer_limit",
      "Output buffer limits of RESP clients, as Redis's client-output-buffer-limit.",
      "Groups of <class> <hard> <soft> <soft seconds>; class normal or pubsub (the targets of "
      "CLIENT TRACKING REDIRECT). A client whose unsent replies exceed the hard limit, or stay "
      "above the soft one for the seconds given, is disconnected; 0 turns a limit off.",
      &g_resp_output_buffer_limit, kDefaultOutputBufferLimit, PGC_SIGHUP, 0,
      CheckOutputBufferLimit, nullptr, nullptr);
}

}  // namespace

void DefineSettings() {
  GivenSetting given[kNameCount];
  const int n = CollectGivenSettings(given);
  DefineAll();
  ApplyStrictly(given, n);
  // From now on an unknown eloqkv.* name is refused wherever it is set (SET, ALTER SYSTEM).
  MarkGUCPrefixReserved("eloqkv");
}

void ConfiguredDataDirectory(char* out, size_t size) {
  const char* dir = g_data_directory;
  // DataDir is absolute (the postmaster made it so), hence so is the result.
  if (dir == nullptr || dir[0] == '\0') {
    snprintf(out, size, "%s/eloqkv", DataDir);
  } else if (is_absolute_path(dir)) {
    snprintf(out, size, "%s", dir);
  } else {
    snprintf(out, size, "%s/%s", DataDir, dir);
  }
  canonicalize_path(out);
}

bool CacheLeasesOn() {
  return g_cache_leases;
}

bool WarmCacheOn() {
  return g_warm_cache;
}

bool PrefaultMemoryOn() {
  return g_prefault_memory;
}

RespSettings ListenerSettings() {
  RespSettings r;
  r.port = g_resp_port;
  r.listen_addresses = g_resp_listen_addresses != nullptr ? g_resp_listen_addresses : "";
  r.workers = g_resp_workers;
  r.password = g_resp_password != nullptr ? g_resp_password : "";
  r.maxclients = g_resp_maxclients;
  r.timeout_s = g_resp_timeout_s;
  r.slowlog_log_slower_than_us = g_resp_slowlog_log_slower_than_us;
  r.slowlog_max_len = g_resp_slowlog_max_len;
  r.debug_sync_delay_ms = g_resp_debug_sync_delay_ms;
  r.default_keyspace = g_resp_default_keyspace != nullptr ? g_resp_default_keyspace : "";
  r.max_bulk_len = static_cast<size_t>(g_resp_max_bulk_len_mb) << 20;
  std::string unused;
  (void)ParseOutputBufferLimit(g_resp_output_buffer_limit, &r.output_limits, &unused);  // checked when set
  return r;
}

eloqkv::Options EngineOptions() {
  eloqkv::Options o;
  // Larger than any path the engine accepts, so that a path too long for it is refused by its
  // own check (at startup) instead of being silently cut short here.
  char dir[2 * MAXPGPATH];
  ConfiguredDataDirectory(dir, sizeof(dir));
  o.data_dir = dir;
  o.index_memory = static_cast<size_t>(g_index_memory_mb) << 20;
  o.cache_memory = static_cast<size_t>(g_cache_memory_mb) << 20;
  o.log_buffer = static_cast<size_t>(g_log_buffer_mb) << 20;
  o.sync = static_cast<SyncPolicy>(g_sync);
  o.sync_interval_ms = static_cast<uint32_t>(g_sync_interval_ms);
  o.segment_size = static_cast<uint64_t>(g_segment_size_mb) << 20;
  o.io_mode = static_cast<IoMode>(g_io_mode);
  o.direct_reads = g_direct_io;
  o.max_disk_bytes = static_cast<uint64_t>(g_max_disk_size_mb) << 20;
  o.max_keyspaces = static_cast<uint32_t>(g_max_keyspaces);
  o.checkpoint_interval_ms = static_cast<uint32_t>(g_checkpoint_interval_s) * 1000u;
  o.checkpoint_log_bytes = static_cast<uint64_t>(g_checkpoint_log_size_mb) << 20;
  return o;
}

}  // namespace eloqkv::pg
