#!/usr/bin/env python3
"""Caches over heap tables (docs/cache.md): the miss-storm ("herd") benchmark with leases against
plain read-through in the same run, and the hit-path cost of a cache against a plain foreign table.

    python3 bench/cache/run.py [--runs 3] [--seconds 10] [--clients 64] [--hot-keys 10] [--quick]

Sets up its own throwaway cluster under /var/tmp (initdb as `postgres`, eloqkv_fdw preloaded, no
RESP listener, fsync on) and loads `users` (100,000 rows) and `orders` (--orders rows, 40,000 by default, no index on
user_id). The cache's source is an expensive query, as in the incidents caches are for: a user
with the count and sum of their orders, which scans `orders` (tens of milliseconds); it counts its
runs with a sequence.

  1. Herd: --clients pgbench clients (`-M prepared`) read --hot-keys hot keys of the cache at random
     while another session invalidates every hot key every 100 ms (one committed transaction per
     round). Leases on (the default) and `eloqkv.leases = off` (plain read-through: every reader
     that misses runs the source) alternate, --runs times each. Reported per mode: source runs per
     invalidated key (the goal with leases: exactly 1), reads/s, reader latency p50/p99 (from
     pgbench's per-transaction log), and the CPU seconds all Postgres processes used (from /proc).
  2. Hit path: a cache whose every key is filled against a plain eloqkv foreign table holding the
     same rows, point reads by 8 clients, alternately (which goes first alternates too), --runs
     times, after Postgres has gone idle: reads/s and the ratio (the goal: a hit costs at most
     5 % more than a plain read).

Uses the installed extension as it is (never builds). Writes bench/results/cache-<date>.json. Not
part of the test suite: the numbers are noisy on a 2-core machine.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from benchlib import (PG_BIN, PG_LIB, ROOT, Cluster, file_id, fmt_ratio, git_head,  # noqa: E402
                      log, log_problems, summary, tree_cpu)

USERS = 100000
HIT_KEYS = 10000


def load(cluster, orders):
    cluster.sql(f"""
        CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, plan text);
        INSERT INTO users SELECT g, 'user' || g, (ARRAY['free', 'pro', 'team'])[1 + g % 3]
          FROM generate_series(1, {USERS}) g;
        CREATE TABLE orders (id bigint, user_id int, amount int);
        INSERT INTO orders SELECT g, 1 + (g::bigint * 7919) % {USERS}, g % 1000
          FROM generate_series(1, {orders}) g;
        VACUUM ANALYZE users, orders;
        CREATE SEQUENCE source_runs;
        CREATE FUNCTION user_summary(k int)
          RETURNS TABLE (id int, name text, orders bigint, spent bigint) LANGUAGE plpgsql AS $$
          BEGIN
            PERFORM nextval('source_runs');
            RETURN QUERY SELECT u.id, u.name, count(o.id), coalesce(sum(o.amount), 0)::bigint
              FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.id = k
             GROUP BY u.id, u.name;
          END $$;
        SELECT eloqkv.create_cache('summary_cache', 'SELECT id, name, orders, spent FROM user_summary($1)',
                                   ttl => '1 hour', lease_timeout => '10 seconds');
        SELECT eloqkv.create_cache('plan_cache', 'SELECT id, name, plan FROM users WHERE id = $1',
                                   ttl => '1 hour');
        CREATE SERVER plain_kv FOREIGN DATA WRAPPER eloqkv_fdw;
        CREATE FOREIGN TABLE plan_plain (id int, name text, plan text) SERVER plain_kv
          OPTIONS (key 'id');
        INSERT INTO plan_plain SELECT id, name, plan FROM users WHERE id <= {HIT_KEYS};
        SELECT count(*) FROM plan_cache
         WHERE id = ANY (ARRAY(SELECT generate_series(1, {HIT_KEYS})));
    """)


def source_runs(cluster):
    return int(cluster.sql("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM source_runs"))


def cache_stats(cluster, cache):
    return cluster.json("SELECT row_to_json(s) FROM eloqkv.cache_stats s "
                        f"WHERE cache = '{cache}'::regclass")


def pgbench(cluster, script, seconds, clients, threads, env=None, log_prefix=None):
    cmd = [f"{PG_BIN}/pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads),
           "-T", str(seconds), "-f", script, *cluster.conn_args(), "postgres"]
    if log_prefix:
        cmd += ["-l", f"--log-prefix={log_prefix}"]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})},
                       cwd=os.path.dirname(script), timeout=seconds * 10 + 120)
    if r.returncode != 0 or "number of failed transactions: 0" not in r.stdout:
        raise RuntimeError("pgbench failed:\n" + r.stdout + r.stderr)
    done = int(next(l.split(":")[1] for l in r.stdout.splitlines()
                    if l.startswith("number of transactions actually processed")).split("/")[0])
    return done


def latencies_ms(prefix):
    """Per-transaction latencies (ms) from pgbench's logs (`client tx time_us script epoch us`)."""
    out = []
    for path in glob.glob(prefix + ".*"):
        with open(path) as f:
            out.extend(int(line.split()[2]) / 1000.0 for line in f)
        os.unlink(path)
    out.sort()
    return out


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def herd_run(cluster, work, mode, seconds, clients, hot):
    """One herd run; returns its measurements."""
    script = os.path.join(work, "herd.sql")
    with open(script, "w") as f:
        f.write(f"\\set id random(1, {hot})\nSELECT * FROM summary_cache WHERE id = :id;\n")
    # Start from a filled cache, so that every miss is one an invalidation caused.
    cluster.sql(f"SELECT count(*) FROM summary_cache WHERE id = ANY (ARRAY(SELECT generate_series(1, {hot})))")
    rounds = seconds * 10
    invalidator = subprocess.Popen(
        [f"{PG_BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *cluster.conn_args(), "-d", "postgres",
         "-c", f"DO $$ BEGIN FOR r IN 1..{rounds} LOOP "
               f"PERFORM eloqkv.invalidate('summary_cache', k) FROM generate_series(1, {hot}) k; "
               "COMMIT; PERFORM pg_sleep(0.1); END LOOP; END $$"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs0, stats0 = source_runs(cluster), cache_stats(cluster, "summary_cache")
    pm = cluster.postmaster_pid()
    cpu0, t0 = tree_cpu(pm), time.time()
    prefix = os.path.join(work, f"lat-{mode}")
    env = {"PGOPTIONS": "-c eloqkv.leases=off"} if mode == "off" else {}
    reads = pgbench(cluster, script, seconds, clients, 2, env=env, log_prefix=prefix)
    cpu1, t1 = tree_cpu(pm), time.time()
    runs1, stats1 = source_runs(cluster), cache_stats(cluster, "summary_cache")
    _, err = invalidator.communicate(timeout=seconds * 10 + 120)
    if invalidator.returncode != 0:
        raise RuntimeError("invalidator failed: " + err)
    invalidated = stats1["invalidations"] - stats0["invalidations"]
    lat = latencies_ms(prefix)
    return {
        "mode": mode,
        "reads": reads,
        "reads_per_s": reads / (t1 - t0),
        "source_runs": runs1 - runs0,
        "invalidated_keys": invalidated,
        "source_runs_per_invalidated_key": (runs1 - runs0) / max(invalidated, 1),
        "lease_waits": stats1["lease_waits"] - stats0["lease_waits"],
        "lease_timeouts": stats1["lease_timeouts"] - stats0["lease_timeouts"],
        "refused_fills": stats1["refused_fills"] - stats0["refused_fills"],
        "p50_ms": percentile(lat, 0.50),
        "p99_ms": percentile(lat, 0.99),
        "postgres_cpu_s": cpu1 - cpu0,
        "postgres_cpu_ms_per_1k_reads": (cpu1 - cpu0) * 1e6 / max(reads, 1),
        "seconds": t1 - t0,
    }


def hit_run(cluster, work, table, seconds):
    script = os.path.join(work, f"hit-{table}.sql")
    with open(script, "w") as f:
        f.write(f"\\set id random(1, {HIT_KEYS})\nSELECT * FROM {table} WHERE id = :id;\n")
    t0 = time.time()
    n = pgbench(cluster, script, seconds, 8, 2)
    return n / (time.time() - t0)


def settle(cluster, limit=0.05, window=1.0, max_wait=60):
    """Waits (at most max_wait s) until Postgres uses under `limit` of a core over `window` s:
    the engine's compaction after the herd's writes must not land in a measured run."""
    pm = cluster.postmaster_pid()
    deadline = time.time() + max_wait
    while time.time() < deadline:
        c0 = tree_cpu(pm)
        time.sleep(window)
        if (tree_cpu(pm) - c0) / window < limit:
            return


def fmt(values, unit="", digits=1):
    lo, med, hi = summary(values)
    return f"{med:.{digits}f}{unit} ({lo:.{digits}f}, {hi:.{digits}f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/var/tmp/eloqkv-bench-cache")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--hot-keys", type=int, default=10)
    ap.add_argument("--orders", type=int, default=40000)
    ap.add_argument("--quick", action="store_true", help="1 run of 3 s each (a smoke test)")
    ap.add_argument("--keep", action="store_true", help="leave the cluster running")
    a = ap.parse_args()
    if a.quick:
        a.runs, a.seconds = 1, 3
    if not os.path.exists(PG_LIB):
        sys.exit(f"{PG_LIB} is not installed (make install)")
    cluster = Cluster(a.dir, {"shared_preload_libraries": "'eloqkv_fdw'", "eloqkv.resp_port": 0,
                              "max_connections": a.clients + 40, "shared_buffers": "'256MB'",
                              "eloqkv.cache_memory": "'256MB'", "fsync": "on",
                              "synchronous_commit": "on"},
                      header="bench/cache/run.py", first_port=5460)
    work = tempfile.mkdtemp(prefix="eloqkv-bench-cache-")
    os.chmod(work, 0o777)
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": git_head(),
               "library": file_id(PG_LIB), "args": vars(a), "herd": [], "hit": []}
    try:
        cluster.init()
        cluster.start()
        cluster.sql("CREATE EXTENSION eloqkv_fdw")
        cluster.wait_engine_ready()
        log(f"cluster on port {cluster.port}; loading {USERS} users, {a.orders} orders")
        load(cluster, a.orders)
        cluster.sql("SELECT * FROM summary_cache WHERE id = 1")
        cluster.sql("SELECT eloqkv.invalidate('summary_cache', 1)")
        t = time.time()
        cluster.sql("SELECT * FROM summary_cache WHERE id = 1")
        results["source_ms"] = (time.time() - t) * 1000
        log(f"one source run (a miss): {results['source_ms']:.1f} ms")

        log(f"\n1. herd: {a.clients} clients on {a.hot_keys} hot keys, all invalidated every 100 ms, "
            f"{a.seconds} s x {a.runs} runs per mode")
        for run in range(a.runs):
            for mode in ("on", "off"):
                r = herd_run(cluster, work, mode, a.seconds, a.clients, a.hot_keys)
                results["herd"].append(r)
                log(f"  run {run + 1} leases {mode:3}: {r['source_runs_per_invalidated_key']:6.2f} source runs "
                    f"per invalidated key ({r['source_runs']} runs, {r['invalidated_keys']} keys), "
                    f"{r['reads_per_s']:8.0f} reads/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                    f"Postgres CPU {r['postgres_cpu_s']:.1f} s = {r['postgres_cpu_ms_per_1k_reads']:.1f} ms per 1000 reads")
        log("\n   median (min, max)           leases on              leases off")
        for key, label, unit, digits in (("source_runs_per_invalidated_key", "source runs / key", "", 2),
                                         ("reads_per_s", "reads/s", "", 0),
                                         ("p50_ms", "p50", " ms", 2), ("p99_ms", "p99", " ms", 2),
                                         ("postgres_cpu_s", "Postgres CPU", " s", 1),
                                         ("postgres_cpu_ms_per_1k_reads", "CPU per 1000 reads", " ms", 1)):
            on = [r[key] for r in results["herd"] if r["mode"] == "on"]
            off = [r[key] for r in results["herd"] if r["mode"] == "off"]
            log(f"   {label:22} {fmt(on, unit, digits):>22} {fmt(off, unit, digits):>22}")
        on_cpu = [r["postgres_cpu_ms_per_1k_reads"] for r in results["herd"] if r["mode"] == "on"]
        off_cpu = [r["postgres_cpu_ms_per_1k_reads"] for r in results["herd"] if r["mode"] == "off"]
        results["herd_cpu_per_read_ratio_off_over_on"] = [o / n for o, n in zip(off_cpu, on_cpu)]
        log(f"   Postgres CPU per read, off/on: {fmt_ratio(results['herd_cpu_per_read_ratio_off_over_on'])}")

        log(f"\n2. hit path: point reads of {HIT_KEYS} filled keys, 8 clients, {a.seconds} s x {a.runs}")
        settle(cluster)
        for run in range(a.runs):
            # Alternate which side goes first: drift within a run favours neither.
            if run % 2 == 0:
                c = hit_run(cluster, work, "plan_cache", a.seconds)
                p = hit_run(cluster, work, "plan_plain", a.seconds)
            else:
                p = hit_run(cluster, work, "plan_plain", a.seconds)
                c = hit_run(cluster, work, "plan_cache", a.seconds)
            results["hit"].append({"cache_reads_per_s": c, "plain_reads_per_s": p, "ratio": c / p})
            log(f"  run {run + 1}: cache {c:8.0f} reads/s, plain foreign table {p:8.0f} reads/s, "
                f"cache/plain {c / p:.3f}")
        log(f"   cache/plain reads/s: {fmt_ratio([h['ratio'] for h in results['hit']])}")
        problems = log_problems(cluster.logfile)
        results["log_problems"] = problems
        log(f"\nserver log: {len(problems)} problem lines" + ("" if not problems else ": " + problems[0]))
    finally:
        out = os.path.join(ROOT, "bench", "results",
                           f"cache-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if a.quick else ''}.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            json.dump(results, f, indent=1)
        log(f"results: {out}")
        shutil.rmtree(work, ignore_errors=True)
        if not a.keep:
            cluster.stop(quiet=True)
            shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
