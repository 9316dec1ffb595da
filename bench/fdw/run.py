#!/usr/bin/env python3
"""Foreign KV tables vs heap tables: the same rows in a heap table and in an eloqkv foreign table,
the same pgbench workloads on both in the same run, and the KV/heap ratios as min/median/max.

    python3 bench/fdw/run.py [--rows 1000000] [--seconds 10] [--runs 3] [--quick] [--keep]

Sets up its own throwaway cluster under /var/tmp (initdb as `postgres`, eloqkv_fdw preloaded,
a free port, Unix socket only, no RESP listener), loads the data, runs

    (a) point read by key            (b) update of hits/updated_at by key
    (c) 100 keys with = ANY(array)   (d) join of 1000 probe rows to the state table

with `pgbench -n -M prepared -c 8 -j 2 -T <secs>`, heap and KV alternately, --runs times; then
bytes per update (WAL and engine), table and engine disk sizes before/after VACUUM and
eloqkv.compact(), and point reads right after a restart (cold caches: as root it also drops the
OS page cache, machine-wide, via /proc/sys/vm/drop_caches unless --no-drop-caches). Both sides are durable
on acknowledgement: synchronous_commit = on, fsync = on, eloqkv.sync = always.

Uses the installed extension as it is (never builds). Writes bench/results/fdw-<date>.json.
Not part of the test suite: the numbers are noisy on a 2-core machine.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from benchlib import (DB, OWNER, PG_BIN, PG_LIB, ROOT, Cluster, file_id,  # noqa: E402
                      fmt_ratio, log, log_problems, machine_cpu, machine_share)

STATE_COLUMNS = "agent_id text, state jsonb, hits int, updated_at timestamptz"
# ~200 bytes of jsonb per row (checked after the load: avg pg_column_size(state)).
STATE_EXPR = ("jsonb_build_object("
              "'agent', 'agent-' || i, "
              "'status', (ARRAY['idle','running','waiting','done'])[1 + i % 4], "
              "'step', i % 1000, "
              "'model', 'planner-v2', "
              "'tokens', (i::bigint * 7919) % 100000, "
              "'tags', jsonb_build_array('alpha', 'beta', 'gamma'), "
              "'memo', md5(i::text) || md5((i + 1)::text))")

# The workloads. `sql` is a pgbench script body with :variables; `params` maps each variable to
# its position when the statement is prepared by hand (EXPLAIN and the key checks).
WORKLOADS = [
    {
        "name": "point_read",
        "title": "(a) point read by key",
        "set": "\\set id random(1, :rows)",
        "sql": "SELECT agent_id, state, hits, updated_at FROM {t} WHERE agent_id = 'agent-' || :id;",
        "params": ["id"],
    },
    {
        "name": "update",
        "title": "(b) update hits/updated_at by key",
        "set": "\\set id random(1, :rows)",
        "sql": "UPDATE {t} SET hits = hits + 1, updated_at = now() WHERE agent_id = 'agent-' || :id;",
        "params": ["id"],
    },
    {
        "name": "multi_get",
        "title": "(c) 100 keys, = ANY(array)",
        "set": "\\set id random(1, :rows)",
        # 100 distinct existing keys spread over the whole key space (step coprime with rows).
        "sql": ("SELECT count(*), sum(hits + (state->>'step')::int) FROM {t} WHERE agent_id = ANY ("
                "ARRAY(SELECT 'agent-' || (1 + (:id + g * :step) % :rows) "
                "FROM generate_series(0, 99) g));"),
        "params": ["id", "step", "rows"],
    },
    {
        "name": "join",
        "title": "(d) join 1000 probe rows",
        "set": "\\set p random(1, :probe_rows - 999)",
        "sql": ("SELECT count(*), sum(s.hits + (s.state->>'step')::int) FROM probe p "
                "JOIN {t} s ON s.agent_id = p.agent_id WHERE p.id BETWEEN :p AND :p + 999;"),
        "params": ["p"],
    },
]
SIDES = {"heap": "heap_state", "kv": "kv_state"}


class FdwCluster(Cluster):
    def __init__(self, base, conf):
        super().__init__(base, conf, header="bench/fdw/run.py", first_port=5440)

    def lsn(self):
        return int(self.sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))

    def engine(self):
        return self.json("SELECT row_to_json(e) FROM eloqkv.engine_info() e")

    def kv_stats(self):
        j = self.json("SELECT coalesce(json_agg(s), '[]') FROM eloqkv.stats s "
                      "WHERE table_name = 'kv_state'::regclass")
        return j[0] if j else {}

    def heap_stats(self):
        return self.json(
            "SELECT row_to_json(x) FROM (SELECT t.idx_scan, t.idx_tup_fetch, t.n_tup_upd, t.n_tup_hot_upd, "
            "io.heap_blks_read, io.heap_blks_hit, io.idx_blks_read, io.idx_blks_hit "
            "FROM pg_stat_user_tables t JOIN pg_statio_user_tables io USING (relid) "
            "WHERE t.relname = 'heap_state') x")

    def wal_stats(self):
        return self.json("SELECT row_to_json(w) FROM (SELECT wal_records, wal_fpi, wal_bytes::bigint, "
                         "wal_write, wal_sync, wal_sync_time FROM pg_stat_wal) w")


def diff(after, before, keys):
    return {k: (after.get(k) or 0) - (before.get(k) or 0) for k in keys}


PGBENCH_PATTERNS = {
    "transactions": r"number of transactions actually processed: (\d+)",
    "failed": r"number of failed transactions: (\d+)",
    "retried": r"number of transactions retried: (\d+)",
    "latency_ms": r"latency average = ([\d.]+) ms",
    "tps": r"tps = ([\d.]+) \(without initial connection time\)",
}


def pgbench(cluster, script, seconds, defines, clients=8, threads=2, progress=False):
    cmd = [f"{PG_BIN}/pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads),
           "-T", str(seconds), "--max-tries=100", *cluster.conn_args()]
    for k, v in defines.items():
        cmd += ["-D", f"{k}={v}"]
    if progress:
        cmd += ["-P", "1"]
    cmd += ["-f", script, DB]
    r = subprocess.run(cmd, capture_output=True, text=True)
    out = r.stdout + r.stderr
    res = {}
    for k, pat in PGBENCH_PATTERNS.items():
        m = re.search(pat, out)
        res[k] = (float(m.group(1)) if "." in m.group(1) else int(m.group(1))) if m else 0
    res["exit_code"] = r.returncode
    errors = [l for l in out.splitlines() if "error" in l.lower() and "max-tries" not in l]
    if r.returncode != 0 or not res["transactions"]:
        raise RuntimeError(f"pgbench failed (exit {r.returncode}):\n{out[-3000:]}")
    if errors:
        res["errors"] = errors[:10]
    if progress:
        res["progress_tps"] = [float(m.group(1)) for m in re.finditer(r"progress: [\d.]+ s, ([\d.]+) tps", out)]
    return res


def write_scripts(base, rows, step):
    paths = {}
    sdir = os.path.join(base, "scripts")
    os.makedirs(sdir, exist_ok=True)
    for w in WORKLOADS:
        for side, table in SIDES.items():
            p = os.path.join(sdir, f"{w['name']}-{side}.sql")
            with open(p, "w") as f:
                f.write(w["set"] + "\n" + w["sql"].format(t=table) + "\n")
            paths[(w["name"], side)] = p
    return paths


def prepared_sql(w, table):
    """The workload's statement with $n parameters, as pgbench -M prepared sends it."""
    sql = w["sql"].format(t=table).rstrip(";")
    for i, name in enumerate(w["params"], 1):
        sql = re.sub(rf":{name}\b", f"${i}", sql)
    return sql


EXPECTED_PLAN = {
    ("point_read", "kv"): ["Foreign Scan on kv_state", "Eloqkv Access: point lookup"],
    ("update", "kv"): ["Update on kv_state", "Eloqkv Access: point lookup"],
    ("multi_get", "kv"): ["Foreign Scan on kv_state", "Eloqkv Access: multi-get (agent_id = ANY ("],
    ("join", "kv"): ["Nested Loop", "Eloqkv Access: point lookup (agent_id = p.agent_id)"],
    ("point_read", "heap"): ["Index Scan using heap_state_pkey"],
    ("update", "heap"): ["Index Scan using heap_state_pkey"],
    ("multi_get", "heap"): ["Index Scan using heap_state_pkey", "= ANY ("],
    ("join", "heap"): ["Nested Loop", "Index Scan using heap_state_pkey"],
}


def explain_and_check(cluster, rows, step, probe_rows):
    """EXPLAIN every statement as generic and as custom plan, check the expected access paths, and
    check that the statements hit existing keys at the edges of the random ranges."""
    plans, problems, notes = {}, [], []
    args_for = {
        "point_read": [[1], [rows]],
        "update": [[1], [rows]],
        "multi_get": [[1, step, rows], [rows, step, rows]],
        "join": [[1], [probe_rows - 999]],
    }
    expect_rows = {"point_read": 1, "update": 1, "multi_get": 100, "join": 1000}
    for w in WORKLOADS:
        for side, table in SIDES.items():
            stmt = prepared_sql(w, table)
            out = {}
            for mode in ("force_generic_plan", "force_custom_plan"):
                a = ",".join(str(x) for x in args_for[w["name"]][0])
                q = (f"SET plan_cache_mode = {mode};\nPREPARE q AS {stmt};\n"
                     f"EXPLAIN (COSTS OFF) EXECUTE q({a});\n")
                if w["name"] == "update":
                    q = "BEGIN;\n" + q + "ROLLBACK;\n"
                out[mode] = cluster.sql(q, aligned=True)
                for needle in EXPECTED_PLAN[(w["name"], side)]:
                    if needle in out[mode]:
                        continue
                    msg = f"{w['name']}/{side} ({mode}): plan lacks {needle!r}"
                    # The heap side's plan is the planner's business (a custom plan may prefer a
                    # hash join on a small table): noted, not a problem. The KV side must use the
                    # Eloqkv access path under test in both plans.
                    if side == "kv" or mode == "force_generic_plan":
                        problems.append(msg)
                    else:
                        notes.append(msg)
            plans[f"{w['name']}/{side}"] = out
            # The statement hits existing keys at both ends of the random range.
            for args in args_for[w["name"]]:
                a = ",".join(str(x) for x in args)
                if w["name"] == "update":
                    q = f"PREPARE q AS {stmt} RETURNING 1;\nEXECUTE q({a});\n"
                    got = len(cluster.sql(q).splitlines())
                elif w["name"] == "point_read":
                    got = len(cluster.sql(f"PREPARE q AS {stmt};\nEXECUTE q({a});\n").splitlines())
                else:
                    got = int(cluster.sql(f"PREPARE q AS {stmt};\nEXECUTE q({a});\n").split("|")[0])
                if got != expect_rows[w["name"]]:
                    problems.append(f"{w['name']}/{side} args {args}: {got} rows, expected "
                                    f"{expect_rows[w['name']]}")
    return plans, problems, notes


def load(cluster, rows, probe_rows, chunk):
    t0 = time.time()
    cluster.sql("CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;\n"
                f"CREATE TABLE heap_state ({STATE_COLUMNS.replace('agent_id text', 'agent_id text PRIMARY KEY')});\n"
                f"CREATE FOREIGN TABLE kv_state ({STATE_COLUMNS}) SERVER kv OPTIONS (key 'agent_id');\n"
                "CREATE TABLE probe (id int, agent_id text);\n")
    timings = {}
    # Heap: INSERT ... SELECT (not COPY: COPY's ring buffer would keep the table out of
    # shared_buffers), in chunks like the KV side.
    t = time.time()
    for lo in range(1, rows + 1, chunk):
        hi = min(rows, lo + chunk - 1)
        cluster.sql(f"INSERT INTO heap_state SELECT 'agent-' || i, {STATE_EXPR}, 0, now() "
                    f"FROM generate_series({lo}, {hi}) i")
    timings["heap_insert_s"] = time.time() - t
    # KV: the same rows, one transaction per chunk (a KV transaction buffers its writes until
    # commit, then writes them as one group-committed batch).
    t = time.time()
    for lo in range(1, rows + 1, chunk):
        hi = min(rows, lo + chunk - 1)
        cluster.sql(f"INSERT INTO kv_state SELECT * FROM heap_state "
                    f"WHERE agent_id IN (SELECT 'agent-' || i FROM generate_series({lo}, {hi}) i)")
    timings["kv_insert_s"] = time.time() - t
    cluster.sql(f"INSERT INTO probe SELECT g, 'agent-' || (1 + (hashint4(g) & 2147483647) % {rows}) "
                f"FROM generate_series(1, {probe_rows}) g;\n"
                "CREATE INDEX probe_id ON probe (id);\n")
    t = time.time()
    cluster.sql("VACUUM ANALYZE heap_state;\nVACUUM ANALYZE probe;")
    timings["heap_vacuum_analyze_s"] = time.time() - t
    t = time.time()
    cluster.sql("ANALYZE kv_state;")
    timings["kv_analyze_s"] = time.time() - t
    t = time.time()
    cluster.sql("CHECKPOINT;\nSELECT eloqkv.checkpoint();")
    timings["checkpoints_s"] = time.time() - t
    timings["total_s"] = time.time() - t0
    return timings


def verify_data(cluster, rows):
    counts = cluster.sql("SELECT (SELECT count(*) FROM heap_state), (SELECT count(*) FROM kv_state), "
                         "(SELECT avg(pg_column_size(state))::int FROM heap_state), "
                         "(SELECT count(*) FROM heap_state h JOIN kv_state k USING (agent_id) "
                         " WHERE h.state = k.state AND h.hits = k.hits AND h.updated_at = k.updated_at)")
    h, k, avg_state, same = (int(x) for x in counts.split("|"))
    return {"heap_rows": h, "kv_rows": k, "avg_state_bytes": avg_state, "identical_rows": same,
            "ok": h == rows and k == rows and same == rows}


def prewarm(cluster):
    try:
        cluster.sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm;\n"
                    "SELECT pg_prewarm('heap_state');\nSELECT pg_prewarm('heap_state_pkey');\n"
                    "SELECT pg_prewarm('probe');\nSELECT pg_prewarm('probe_id');")
    except RuntimeError:
        cluster.sql("SELECT sum(hits) FROM heap_state;")
    # The KV values are cached on write; a full scan makes sure (misses are cached).
    cluster.sql("SELECT sum(hits) FROM kv_state;")


def sizes(cluster):
    heap = cluster.json("SELECT json_build_object('total', pg_total_relation_size('heap_state'), "
                        "'table', pg_relation_size('heap_state'), "
                        "'index', pg_indexes_size('heap_state'))")
    e = cluster.engine()
    ks = cluster.json("SELECT coalesce(json_agg(k), '[]') FROM eloqkv.keyspaces k")
    return {"heap": heap, "kv_disk_bytes": e["disk_bytes"], "kv_live_bytes": e["live_bytes"],
            "kv_segments": e["segments"], "kv_keys": e["keys"],
            "kv_keyspace_bytes": ks[0]["bytes"] if ks else None,
            "kv_index_memory_used": e["index_memory_used"], "kv_cache_memory_used": e["cache_memory_used"]}


def drop_os_cache():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def mib(b):
    return f"{b / (1 << 20):,.1f} MiB"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=f"/var/tmp/eloqkv-fdw-bench-{os.getpid()}",
                   help="cluster directory (on a real file system: O_DIRECT)")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cold-seconds", type=int, default=5)
    p.add_argument("--probe-rows", type=int, default=100_000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--cache-memory", default="1GB")
    p.add_argument("--index-memory", default="256MB")
    p.add_argument("--no-drop-caches", action="store_true",
                   help="do not drop the OS page cache before the cold reads (heap then reads "
                        "from the page cache; KV reads use O_DIRECT either way)")
    p.add_argument("--quick", action="store_true", help="smoke test: 50k rows, 3 s, 2 runs")
    p.add_argument("--keep", action="store_true", help="keep the cluster directory")
    a = p.parse_args()
    if a.quick:
        a.rows, a.seconds, a.runs, a.cold_seconds, a.probe_rows = 50_000, 3, 2, 2, 10_000
    if a.rows < 1000 or a.probe_rows < 1000:
        sys.exit("--rows and --probe-rows must be at least 1000")
    if not os.path.exists(PG_LIB):
        sys.exit(f"{PG_LIB} is missing: the extension is not installed (make install)")
    if OWNER is None:
        log("warning: not root; running Postgres as the current user")
    df = subprocess.run(["df", "--output=fstype", os.path.dirname(a.dir.rstrip("/")) or "/"],
                        capture_output=True, text=True).stdout.split()
    if df and df[-1] == "tmpfs":
        sys.exit(f"{a.dir} is on tmpfs; eloqkv needs O_DIRECT: choose another --dir")

    step = 9973 if a.rows % 9973 else 9967
    conf = {
        "shared_buffers": f"'{a.shared_buffers}'",
        "shared_preload_libraries": "'eloqkv_fdw'",
        "max_connections": 50,
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "max_wal_size": "'4GB'",
        "track_wal_io_timing": "on",
        "logging_collector": "off",
        "log_line_prefix": "'%m [%p] %b '",
        "eloqkv.cache_memory": f"'{a.cache_memory}'",
        "eloqkv.index_memory": f"'{a.index_memory}'",
        "eloqkv.sync": "'always'",
        "eloqkv.resp_port": 0,
    }
    lib_before = file_id(PG_LIB)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(a),
        "machine": {"cpus": os.cpu_count()},
        "conf": conf,
        "extension_so": lib_before,
        "notes": [
            "both sides durable on acknowledgement: synchronous_commit=on, fsync=on (heap WAL); "
            "eloqkv.sync=always (KV group commit)",
            f"pgbench -n -M prepared -c {a.clients} -j {a.threads} -T {a.seconds} --max-tries=100",
            "ratios are KV tps / heap tps from the same run",
        ],
    }
    cluster = FdwCluster(a.dir, conf)
    log(f"cluster in {a.dir}; extension {PG_LIB} (mtime {lib_before.get('mtime')})")
    log("durability: synchronous_commit=on, fsync=on for heap; eloqkv.sync=always for KV "
        "(every acknowledged commit is on disk on both sides)")
    ok = False
    try:
        cluster.init()
        cluster.start()
        results["port"] = cluster.port
        cluster.sql("CREATE EXTENSION eloqkv_fdw;")
        results["engine_ready_s"] = cluster.wait_engine_ready()
        results["versions"] = {"postgres": cluster.sql("SHOW server_version"),
                               "eloqkv": cluster.sql("SELECT version FROM eloqkv.engine_info()"),
                               "io_mode": cluster.sql("SELECT io_mode FROM eloqkv.engine_info()"),
                               "direct_io": cluster.sql("SELECT direct_io FROM eloqkv.engine_info()"),
                               "sync": cluster.sql("SELECT sync FROM eloqkv.engine_info()")}
        log(f"postgres {results['versions']['postgres']}, eloqkv {results['versions']['eloqkv']}, "
            f"io_mode {results['versions']['io_mode']}, direct_io {results['versions']['direct_io']}, "
            f"eloqkv sync {results['versions']['sync']}, "
            f"synchronous_commit {cluster.sql('SHOW synchronous_commit')}")

        # ---- load ----
        log(f"\nloading {a.rows:,} rows into heap_state and kv_state, {a.probe_rows:,} into probe ...")
        results["load"] = load(cluster, a.rows, a.probe_rows, chunk=100_000)
        data = verify_data(cluster, a.rows)
        results["data"] = data
        log(f"load: heap {results['load']['heap_insert_s']:.1f}s, kv {results['load']['kv_insert_s']:.1f}s; "
            f"rows heap {data['heap_rows']:,} kv {data['kv_rows']:,}, identical {data['identical_rows']:,}; "
            f"avg state jsonb {data['avg_state_bytes']} bytes")
        if not data["ok"]:
            raise RuntimeError(f"the heap and KV tables differ after the load: {data}")
        results["sizes_after_load"] = sizes(cluster)

        # ---- plans and key checks ----
        plans, problems, plan_notes = explain_and_check(cluster, a.rows, step, a.probe_rows)
        results["plans"] = plans
        results["plan_problems"] = problems
        results["plan_notes"] = plan_notes
        log("\n== plans (generic plans, as pgbench -M prepared runs them after 5 executions) ==")
        for w in WORKLOADS:
            for side in SIDES:
                log(f"-- {w['title']} / {side}: {prepared_sql(w, SIDES[side])}")
                log(plans[f"{w['name']}/{side}"]["force_generic_plan"])
        for w in WORKLOADS:
            for side in SIDES:
                pl = plans[f"{w['name']}/{side}"]
                if pl["force_custom_plan"] != pl["force_generic_plan"] and not (
                        w["name"] in ("point_read", "update")):
                    log(f"-- {w['title']} / {side}: custom plan (first 5 executions, and later "
                        f"if cheaper):\n{pl['force_custom_plan']}")
        if plan_notes:
            log("note: " + "; ".join(plan_notes))
        if problems:
            log("\n!! plan / key problems:\n  " + "\n  ".join(problems))
        else:
            log("\nplans: every KV statement uses the expected Eloqkv Access path (generic and custom "
                "plans); edge keys found on both sides")

        # ---- warm workloads ----
        prewarm(cluster)
        scripts = write_scripts(a.dir, a.rows, step)
        defines = {"rows": a.rows, "step": step, "probe_rows": a.probe_rows}
        runs = {w["name"]: {"heap": [], "kv": []} for w in WORKLOADS}
        upd = {"heap": {"wal_bytes": 0, "txns": 0, "wal": {}, "engine_bytes": 0},
               "kv": {"wal_bytes": 0, "txns": 0, "wal": {}, "engine_bytes": 0, "engine_fsyncs": 0}}
        wal_keys = ["wal_records", "wal_fpi", "wal_bytes", "wal_write", "wal_sync", "wal_sync_time"]
        kv_keys = ["reads", "writes", "cache_hits", "cache_misses", "device_reads"]
        heap_keys = ["idx_scan", "idx_tup_fetch", "n_tup_upd", "n_tup_hot_upd", "heap_blks_read",
                     "heap_blks_hit"]
        log(f"\n== warm runs: {a.runs} x {a.seconds}s per workload and side ==")
        for r in range(a.runs):
            order = ["heap", "kv"] if r % 2 == 0 else ["kv", "heap"]
            for w in WORKLOADS:
                line = []
                for side in order:
                    lsn0, wal0, e0 = cluster.lsn(), cluster.wal_stats(), cluster.engine()
                    st0 = cluster.kv_stats() if side == "kv" else cluster.heap_stats()
                    c0 = machine_cpu()
                    res = pgbench(cluster, scripts[(w["name"], side)], a.seconds, defines,
                                  a.clients, a.threads)
                    res["cpu"] = machine_share(c0, machine_cpu())
                    time.sleep(0.6)  # backends flush their statistics on exit
                    lsn1, wal1, e1 = cluster.lsn(), cluster.wal_stats(), cluster.engine()
                    st1 = cluster.kv_stats() if side == "kv" else cluster.heap_stats()
                    res["wal_bytes_lsn"] = lsn1 - lsn0
                    res["wal"] = diff(wal1, wal0, wal_keys)
                    res["engine_bytes_written"] = e1["bytes_written"] - e0["bytes_written"]
                    res["engine_fsyncs"] = e1["fsyncs"] - e0["fsyncs"]
                    res["engine_fsync_p99_ms_since_start"] = e1["fsync_p99_ms"]
                    res["stats"] = diff(st1, st0, kv_keys if side == "kv" else heap_keys)
                    runs[w["name"]][side].append(res)
                    if w["name"] == "update":
                        u = upd[side]
                        u["wal_bytes"] += res["wal_bytes_lsn"]
                        u["txns"] += res["transactions"]
                        u["engine_bytes"] += res["engine_bytes_written"]
                        u["engine_fsyncs"] = u.get("engine_fsyncs", 0) + res["engine_fsyncs"]
                        for k in wal_keys:
                            u["wal"][k] = u["wal"].get(k, 0) + res["wal"][k]
                    n = max(res["transactions"], 1)
                    if side == "kv":
                        extra = (f"engine reads/txn {res['stats']['reads'] / n:.1f}, "
                                 f"device reads/txn {res['stats']['device_reads'] / n:.2f}")
                    else:
                        extra = f"idx fetches/txn {res['stats']['idx_tup_fetch'] / n:.1f}"
                    fail = f", failed {res['failed']}, retried {res['retried']}" if (
                        res["failed"] or res["retried"]) else ""
                    if w["name"] == "update":
                        if side == "kv":
                            extra += (f", {res['engine_bytes_written'] / n:,.0f} engine B/upd, "
                                      f"{n / max(res['engine_fsyncs'], 1):.1f} commits/fsync")
                        else:
                            extra += (f", {res['wal_bytes_lsn'] / n:,.0f} WAL B/upd, "
                                      f"{res['wal']['wal_fpi'] / n:.2f} FPI/upd, "
                                      f"{n / max(res['wal']['wal_sync'], 1):.1f} commits/sync, "
                                      f"{res['wal']['wal_sync_time'] / max(res['wal']['wal_sync'], 1):.2f} ms/sync")
                    extra += f", cpu {res['cpu']['busy']:.0%}"
                    line.append(f"{side} {res['tps']:>9,.0f} tps ({extra}{fail})")
                log(f"run {r + 1} {w['title']:<36} " + " | ".join(line))
        results["warm"] = runs
        ratios = {}
        for w in WORKLOADS:
            ratios[w["name"]] = [k["tps"] / h["tps"] for h, k in zip(runs[w["name"]]["heap"],
                                                                     runs[w["name"]]["kv"])]
        results["ratios"] = ratios

        # ---- bytes per update ----
        per_update = {
            "heap_wal_bytes": upd["heap"]["wal_bytes"] / max(upd["heap"]["txns"], 1),
            "heap_wal_fpi": upd["heap"]["wal"].get("wal_fpi", 0) / max(upd["heap"]["txns"], 1),
            "heap_wal_syncs": upd["heap"]["wal"].get("wal_sync", 0) / max(upd["heap"]["txns"], 1),
            "heap_engine_bytes": upd["heap"]["engine_bytes"] / max(upd["heap"]["txns"], 1),
            "kv_engine_bytes": upd["kv"]["engine_bytes"] / max(upd["kv"]["txns"], 1),
            "kv_engine_fsyncs": upd["kv"]["engine_fsyncs"] / max(upd["kv"]["txns"], 1),
            "kv_wal_bytes": upd["kv"]["wal_bytes"] / max(upd["kv"]["txns"], 1),
            "heap_wal_bytes_per_run": [x["wal_bytes_lsn"] / max(x["transactions"], 1)
                                       for x in runs["update"]["heap"]],
            "kv_engine_bytes_per_run": [x["engine_bytes_written"] / max(x["transactions"], 1)
                                        for x in runs["update"]["kv"]],
            "heap_wal_ms_per_sync": upd["heap"]["wal"].get("wal_sync_time", 0) /
                                    max(upd["heap"]["wal"].get("wal_sync", 0), 1),
            "kv_engine_fsync_p99_ms_since_start": runs["update"]["kv"][-1]["engine_fsync_p99_ms_since_start"],
            "heap_txns": upd["heap"]["txns"],
            "kv_txns": upd["kv"]["txns"],
        }
        results["bytes_per_update"] = per_update
        results["update_totals"] = upd

        # ---- sizes: after updates, after VACUUM / compact ----
        results["sizes_after_updates"] = sizes(cluster)
        t = time.time()
        cluster.sql("VACUUM heap_state;")
        vac_s = time.time() - t
        t = time.time()
        compacted = int(cluster.sql("SELECT eloqkv.compact()"))
        compact_s = time.time() - t
        results["sizes_after_vacuum_compact"] = sizes(cluster)
        results["vacuum_s"], results["compact_s"], results["compacted_segments"] = vac_s, compact_s, compacted

        # ---- cold point reads after a restart ----
        dropped = None
        cold = {"heap": [], "kv": []}
        log(f"\n== cold point reads: restart (and {'no ' if a.no_drop_caches else ''}OS page cache drop) "
            f"before each {a.cold_seconds}s run ==")
        w = WORKLOADS[0]
        for r in range(a.runs):
            order = ["heap", "kv"] if r % 2 == 0 else ["kv", "heap"]
            for side in order:
                cluster.stop()
                if not a.no_drop_caches:
                    dropped = drop_os_cache()
                t = time.time()
                cluster.start()
                ready = cluster.wait_engine_ready()
                start_s = time.time() - t
                st0 = cluster.kv_stats() if side == "kv" else cluster.heap_stats()
                res = pgbench(cluster, scripts[(w["name"], side)], a.cold_seconds, defines,
                              a.clients, a.threads, progress=True)
                time.sleep(0.6)
                st1 = cluster.kv_stats() if side == "kv" else cluster.heap_stats()
                res["stats"] = diff(st1, st0, kv_keys if side == "kv" else heap_keys)
                res["restart_s"] = start_s
                res["engine_ready_after_start_s"] = ready
                cold[side].append(res)
                n = max(res["transactions"], 1)
                if side == "kv":
                    extra = f"device reads/txn {res['stats']['device_reads'] / n:.2f}"
                else:
                    extra = f"heap blocks read/txn {res['stats']['heap_blks_read'] / n:.2f}"
                log(f"run {r + 1} cold {side:<4} {res['tps']:>9,.0f} tps  per second: "
                    f"{', '.join(f'{x:,.0f}' for x in res.get('progress_tps', []))}  ({extra}; "
                    f"restart {start_s:.1f}s)")
        results["cold"] = cold
        results["cold_os_cache_dropped"] = dropped
        results["ratios"]["cold_point_read"] = [k["tps"] / h["tps"] for h, k in zip(cold["heap"], cold["kv"])]
        results["log_problems"] = log_problems(cluster.logfile)
        lib_after = file_id(PG_LIB)
        results["extension_so_after"] = lib_after
        ok = True
    finally:
        cluster.stop(quiet=not ok)
        if not ok:
            results["log_problems"] = log_problems(cluster.logfile)
            if results["log_problems"]:
                log("server log problems:\n  " + "\n  ".join(results["log_problems"][-20:]))
        if a.keep:
            log(f"cluster kept in {a.dir} (log {cluster.logfile})")
        elif os.path.exists(os.path.join(a.dir, "data", "PG_VERSION")):
            shutil.rmtree(a.dir, ignore_errors=True)

    # ---- summary ----
    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "fdw-" + time.strftime("%Y%m%d-%H%M%S") + ("-quick" if a.quick else "") + ".json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)

    log(f"\n== summary: {a.rows:,} rows, pgbench -c {a.clients} -j {a.threads} -T {a.seconds}, "
        f"{a.runs} runs, {os.cpu_count()} CPUs ==")
    log("durable on ack on both sides (synchronous_commit=on; eloqkv.sync=always)")
    log(f"{'workload':<36} {'heap tps (median)':>18} {'KV tps (median)':>16}   KV/heap median (min, max)"
        f"   CPU busy heap/KV")
    for w in WORKLOADS:
        h = statistics.median(x["tps"] for x in runs[w["name"]]["heap"])
        k = statistics.median(x["tps"] for x in runs[w["name"]]["kv"])
        ch = statistics.median(x["cpu"]["busy"] for x in runs[w["name"]]["heap"])
        ck = statistics.median(x["cpu"]["busy"] for x in runs[w["name"]]["kv"])
        log(f"{w['title']:<36} {h:>18,.0f} {k:>16,.0f}   {fmt_ratio(ratios[w['name']]):<27}"
            f"   {ch:.0%} / {ck:.0%}")
    h = statistics.median(x["tps"] for x in cold["heap"])
    k = statistics.median(x["tps"] for x in cold["kv"])
    label = f"cold point read, {a.cold_seconds}s after restart"
    log(f"{label:<36} {h:>18,.0f} {k:>16,.0f}   {fmt_ratio(results['ratios']['cold_point_read'])}")
    log(f"  (cold: shared_buffers and the KV value cache empty; OS page cache "
        f"{'dropped' if dropped else 'NOT dropped (heap reads may hit it)'}; KV reads use O_DIRECT)")
    pu = per_update
    log("\nper update (warm update runs):")
    log(f"  heap: {pu['heap_wal_bytes']:,.0f} WAL bytes/update ({pu['heap_wal_fpi']:.2f} full-page images, "
        f"{pu['heap_wal_syncs']:.2f} WAL syncs per update, {pu['heap_wal_ms_per_sync']:.2f} ms per sync; "
        f"{pu['heap_txns']:,} updates)")
    log(f"        per run: {', '.join(f'{x:,.0f}' for x in pu['heap_wal_bytes_per_run'])} WAL bytes/update "
        f"(full-page images after the checkpoint that follows the load, then after each timed checkpoint)")
    log(f"  KV:   {pu['kv_engine_bytes']:,.0f} engine log bytes/update ({pu['kv_engine_fsyncs']:.2f} engine "
        f"fsyncs per update, engine fsync p99 {pu['kv_engine_fsync_p99_ms_since_start']:.2f} ms since start) "
        f"+ {pu['kv_wal_bytes']:,.1f} WAL bytes/update; {pu['kv_txns']:,} updates")
    s0, s1, s2 = results["sizes_after_load"], results["sizes_after_updates"], results["sizes_after_vacuum_compact"]
    log("\nsizes:                      after load      after updates   after VACUUM / compact()")
    log(f"  heap total (table+index) {mib(s0['heap']['total']):>14} {mib(s1['heap']['total']):>15} "
        f"{mib(s2['heap']['total']):>15}")
    log(f"  KV disk_bytes            {mib(s0['kv_disk_bytes']):>14} {mib(s1['kv_disk_bytes']):>15} "
        f"{mib(s2['kv_disk_bytes']):>15}  ({results['compacted_segments']} segments compacted)")
    log(f"  KV live_bytes            {mib(s0['kv_live_bytes']):>14} {mib(s1['kv_live_bytes']):>15} "
        f"{mib(s2['kv_live_bytes']):>15}")
    log(f"  KV index memory used     {mib(s0['kv_index_memory_used']):>14} (shared memory, not disk)")
    failed = sum(x["failed"] for w in runs.values() for s in w.values() for x in s)
    retried = sum(x["retried"] for w in runs.values() for s in w.values() for x in s)
    log(f"\npgbench failed transactions: {failed}, retried: {retried}")
    if results.get("plan_problems"):
        log("PLAN PROBLEMS: " + "; ".join(results["plan_problems"]))
    lp = results.get("log_problems", [])
    log(f"server log: {len(lp)} ERROR/FATAL/PANIC/WARNING lines" + (":\n  " + "\n  ".join(lp[:10]) if lp else ""))
    if results.get("extension_so_after") and results["extension_so_after"] != lib_before:
        log("WARNING: the installed eloqkv_fdw.so changed during the run (someone ran make install); "
            "later phases may have run a different build")
    log(f"\nraw results: {path}")


if __name__ == "__main__":
    main()
