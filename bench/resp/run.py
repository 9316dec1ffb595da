#!/usr/bin/env python3
"""The RESP listener vs redis-server 7: the same client (redis-benchmark), the same run, the same
machine, and the eloqkv/redis ratios as min/median/max.

    python3 bench/resp/run.py [--runs 3] [--requests 300000] [--quick] [--keep]

Sets up its own throwaway cluster under /var/tmp (initdb as `postgres`, eloqkv_fdw preloaded,
the RESP listener on a free 127.0.0.1 port with eloqkv.resp_workers = --workers (1) and the durable default
eloqkv.sync) and its own redis-server (a child process on a free port, `--save '' --appendonly
no`: nothing persisted, all in memory), then

  0. checks that `redis-benchmark -t ping,set,get,incr,mset,hset` runs on the listener without an
     error reply;
  1. preloads --keys keys of 256 bytes (`key:000000000000` ..., the keys redis-benchmark's
     `-r` picks) on both servers with `redis-cli --pipe`, so every GET hits;
  2. the offload figure: CPU seconds of all Postgres processes (postmaster, its live children and
     its reaped children, from /proc) per million reads, RESP GET against `pgbench -M prepared
     -c 8 -j 2` point SELECTs on a 1M-row heap table with a primary key and 256-byte values
     (first, while every preloaded value is in eloqkv's value cache);
  3. runs `redis-benchmark -h 127.0.0.1 -p PORT -c 50 -d 256 -r KEYS -n N -P 1|16 --csv -t T` for
     T = set, get, incr, mset (one invocation per test, so CPU times and the engine's counters
     belong to one test), eloqkv and redis alternately, --runs times, -P 16 with --p16-factor
     times the requests; HSET the same way, --hset-requests per run (redis-benchmark's HSET grows
     ONE hash, `myhash`, by a field per new random member: a large hash, kept a field per record
     by the listener; reset before each run). Before each invocation it waits (up to 60 s) until neither
     server uses CPU, so eloqkv's compaction after a write run does not land in the next run;
  4. restarts the cluster with a small value cache (--small-cache-mb, 64), loads 4x that in
     256-byte values on both servers, and runs GET at -P 1 and -P 16 again, counting the engine's
     cache misses and device reads per GET (eloqkv.keyspace_stats() of the RESP keyspace).

Every redis-benchmark run is checked for error replies (redis-benchmark 7.0.15 prints "Error from
server: ..." and exits 1 at the first one; its -e is a no-op), connection errors, any output
besides the CSV rows, a non-zero exit, missing result rows, and stalls (--timeout); any of them
fails the benchmark loudly, as do errors in `redis-cli --pipe` loads. Uses the installed
extension as it is (never builds). Writes bench/results/resp-<date>.json. Not part of the test
suite: on a 2-core machine redis-benchmark, the servers and pgbench all share the cores.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from benchlib import (DB, OWNER, PG_BIN, PG_LIB, ROOT, Cluster, children_of, cmdline,  # noqa: E402
                      file_id, fmt_ratio, free_port, log, log_problems, machine_cpu, machine_share,
                      median, tree_cpu)

SIDES = ("redis", "eloqkv")
MAIN_TESTS = ["SET", "GET", "INCR", "MSET (10 keys)"]
VALUE_SIZE = 256
RESP_KEYSPACE = "@resp"


class RespCluster(Cluster):
    def __init__(self, base, conf):
        super().__init__(base, conf, header="bench/resp/run.py", first_port=5450)

    def resp_workers(self):
        """{pid: title} of the RESP listener's background workers."""
        pm = self.postmaster_pid()
        return {p: cmdline(p) for p in children_of(pm) if "eloqkv resp worker" in cmdline(p)}

    def resp_keyspace_stats(self):
        j = self.json("SELECT coalesce(json_agg(s), '[]') FROM eloqkv.keyspace_stats() s "
                      f"WHERE name = '{RESP_KEYSPACE}'")
        return j[0] if j else {}


# ---------------------------------------------------------------------------------------------
# redis-server, redis-cli, redis-benchmark

class RedisServer:
    def __init__(self, base, port):
        self.dir = os.path.join(base, "redis")
        self.port = port
        self.proc = None
        self.logfile = os.path.join(self.dir, "redis.log")

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", self.dir, "--logfile", self.logfile,
             "--maxclients", "1000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ping(self.port, 30, lambda: self.proc.poll() is None)
        # The port is ours, not another server's that took it first.
        pid = info(self.port, "server").get("process_id")
        if pid != str(self.proc.pid):
            raise RuntimeError(f"port {self.port} answers with process {pid}, not our redis-server "
                               f"{self.proc.pid}")

    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rcli(port, *args, timeout=600, check=True):
    r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *[str(a) for a in args]],
                       capture_output=True, text=True, timeout=timeout)
    out = r.stdout.strip()
    if check and (r.returncode != 0 or out.startswith(("ERR", "(error)", "WRONGTYPE", "LOADING"))
                  or "Could not connect" in r.stderr):
        raise RuntimeError(f"redis-cli -p {port} {' '.join(map(str, args))}: exit {r.returncode}: "
                           f"{out} {r.stderr.strip()}")
    return out


def wait_ping(port, timeout, alive=lambda: True):
    t0 = time.time()
    last = ""
    while time.time() - t0 < timeout:
        if not alive():
            raise RuntimeError(f"server on port {port} exited")
        try:
            last = rcli(port, "PING", timeout=5, check=False)
            if last == "PONG":
                return time.time() - t0
        except subprocess.TimeoutExpired:
            last = "timeout"
        time.sleep(0.1)
    raise RuntimeError(f"no PONG from port {port} after {timeout}s (last reply {last!r})")


def info(port, section="stats"):
    out = {}
    for line in rcli(port, "INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def info_hits(port):
    i = info(port, "stats")
    return int(i.get("keyspace_hits", 0)), int(i.get("keyspace_misses", 0))


CSV_ROW = re.compile(r'^"([^"]+)",(.*)$')


def redis_benchmark(port, args, expect, timeout):
    """Runs redis-benchmark (as a child whose CPU time we get from wait4), parses its --csv rows
    and raises on anything that looks like an error."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), *[str(a) for a in args], "--csv"]
    fd_out, out_path = tempfile.mkstemp(prefix="eloqkv-resp-bench-", suffix=".out")
    fd_err, err_path = tempfile.mkstemp(prefix="eloqkv-resp-bench-", suffix=".err")
    os.close(fd_out)
    os.close(fd_err)
    t0 = time.time()
    with open(out_path, "w") as fo, open(err_path, "w") as fe:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
    status, rusage = None, None
    while True:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status, rusage = st, ru
            proc.returncode = os.waitstatus_to_exitcode(st)
            break
        if time.time() - t0 > timeout:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise RuntimeError(f"STALL: {' '.join(cmd)} still running after {timeout}s; killed")
        time.sleep(0.02)
    wall = time.time() - t0
    with open(out_path, errors="replace") as f:
        out = f.read()
    with open(err_path, errors="replace") as f:
        err = f.read()
    os.unlink(out_path)
    os.unlink(err_path)
    rows, problems = {}, []
    header = None
    for line in out.splitlines():
        m = CSV_ROW.match(line)
        if m and m.group(1) == "test":
            header = [h.strip('"') for h in line.split(",")]
            continue
        if m and header:
            vals = [v.strip('"') for v in m.group(2).split(",")]
            try:
                rows[m.group(1)] = {h: float(v) for h, v in zip(header[1:], vals)}
            except ValueError:
                problems.append(line)
            continue
        if line.strip():
            problems.append(line.strip())
    for line in err.splitlines():
        if line.strip():
            problems.append("stderr: " + line.strip())
    missing = [t for t in expect if t not in rows]
    res = {"cmd": " ".join(cmd), "rows": rows, "wall_s": wall, "exit_code": proc.returncode,
           "client_cpu_s": rusage.ru_utime + rusage.ru_stime}
    if proc.returncode != 0 or missing or problems:
        raise RuntimeError(f"redis-benchmark on port {port} failed: exit {proc.returncode}, "
                           f"missing rows {missing}, error lines:\n  " + "\n  ".join(problems[:20]) +
                           f"\n  command: {' '.join(cmd)}")
    return res


def write_load_file(path, first, count):
    """RESP SET commands for key:<12 digits> first..first+count-1 with VALUE_SIZE-byte values."""
    with open(path, "wb") as f:
        buf = []
        for i in range(first, first + count):
            key = f"key:{i:012d}".encode()
            val = (f"{i:012d}".encode() * (VALUE_SIZE // 12 + 1))[:VALUE_SIZE]
            buf.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(val), val))
            if len(buf) >= 10000:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))


def pipe_load(port, path, count):
    t0 = time.time()
    with open(path, "rb") as f:
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--pipe",
                            "--pipe-timeout", "120"], stdin=f, capture_output=True, text=True)
    secs = time.time() - t0
    m = re.search(r"errors: (\d+), replies: (\d+)", r.stdout)
    if r.returncode != 0 or not m or int(m.group(1)) != 0 or int(m.group(2)) != count:
        raise RuntimeError(f"redis-cli --pipe into port {port} failed (exit {r.returncode}):\n"
                           f"{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return secs


# ---------------------------------------------------------------------------------------------

def server_cpu(side, cluster, redis):
    return tree_cpu(cluster.postmaster_pid()) if side == "eloqkv" else tree_cpu(redis.pid())


def settle(cluster, redis, limit=0.05, window=0.5, max_wait=60):
    """Waits until neither server tree uses more than `limit` cores (eloqkv's maintenance worker
    compacts and checkpoints after write-heavy runs; that work would otherwise land in the next
    run, whichever server it measures). Returns the seconds waited."""
    t0 = time.time()
    pm = cluster.postmaster_pid()
    while time.time() - t0 < max_wait:
        a0, b0 = tree_cpu(pm), tree_cpu(redis.pid())
        time.sleep(window)
        if tree_cpu(pm) - a0 <= limit * window and tree_cpu(redis.pid()) - b0 <= limit * window:
            break
    return time.time() - t0


def measured_run(side, port, cluster, redis, rb_args, expect, timeout, ks_stats=False):
    """One redis-benchmark invocation with the server's CPU time, the machine's CPU share, the
    GET hit counters and (eloqkv, ks_stats) the engine's counters of the RESP keyspace."""
    settled = settle(cluster, redis)
    h0 = info_hits(port)
    k0 = cluster.resp_keyspace_stats() if ks_stats and side == "eloqkv" else None
    c0, m0 = server_cpu(side, cluster, redis), machine_cpu()
    res = redis_benchmark(port, rb_args, expect, timeout)
    time.sleep(0.2)
    c1, m1 = server_cpu(side, cluster, redis), machine_cpu()
    h1 = info_hits(port)
    res["server_cpu_s"] = c1 - c0
    res["settle_s"] = settled
    res["machine"] = machine_share(m0, m1)
    res["get_hits"], res["get_misses"] = h1[0] - h0[0], h1[1] - h0[1]
    # Cores busy with anything but this server and redis-benchmark: other processes (the other
    # server's background work, other people's work on a shared machine) and interrupts.
    res["other_cores"] = max(0.0, res["machine"]["busy"] * os.cpu_count()
                             - (res["server_cpu_s"] + res["client_cpu_s"]) / max(res["wall_s"], 1e-9))
    if k0 is not None:
        k1 = cluster.resp_keyspace_stats()
        res["engine"] = {k: (k1.get(k) or 0) - (k0.get(k) or 0)
                         for k in ("reads", "writes", "cache_hits", "cache_misses", "device_reads")}
        res["engine"]["read_p99_ms_since_start"] = k1.get("read_p99_ms")
    return res


TEST_ARG = {"SET": "set", "GET": "get", "INCR": "incr", "MSET (10 keys)": "mset", "HSET": "hset"}


def run_matrix(title, tests, keys, pipelines, requests_for, runs, ports, cluster, redis, clients,
               timeout, reset=None):
    """pipelines x runs x sides x tests, one redis-benchmark invocation per test (so the engine's
    counters and the CPU times belong to one test), sides alternating which goes first.
    Returns {P: {side: [run, ...]}}; a run has the merged CSV `rows`, `per_test` invocations and
    CPU totals over them."""
    out = {}
    for p in pipelines:
        n = requests_for(p)
        out[p] = {s: [] for s in SIDES}
        log(f"\n== {title}: -P {p}, -n {n:,}, -r {keys:,}, {runs} run(s) ==")
        for r in range(runs):
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            for side in order:
                per_test, parts, notes = {}, [], []
                for t in tests:
                    if reset:
                        reset(side)
                    args = ["-c", clients, "-d", VALUE_SIZE, "-r", keys, "-n", n, "-P", p, "-t", TEST_ARG[t]]
                    res = measured_run(side, ports[side], cluster, redis, args, [t], timeout,
                                       ks_stats=True)
                    per_test[t] = res
                    row = res["rows"][t]
                    parts.append(f"{t.split()[0]} {row['rps']:>9,.0f} rps p50 {row['p50_latency_ms']:.3f} "
                                 f"p99 {row['p99_latency_ms']:.3f}")
                    note = (f"{t.split()[0]}: cpu server {res['server_cpu_s']:.1f}s client "
                            f"{res['client_cpu_s']:.1f}s, else {res['other_cores']:.2f} cores, "
                            f"{res['wall_s']:.1f}s")
                    if res["settle_s"] > 1:
                        note += f", settled {res['settle_s']:.0f}s first"
                    if t == "GET":
                        note += f", hits {res['get_hits']:,} misses {res['get_misses']:,}"
                    e = res.get("engine")
                    if e and e["reads"]:
                        note += (f", engine cache misses/op {e['cache_misses'] / n:.2f}, device reads/op "
                                 f"{e['device_reads'] / n:.2f}")
                    notes.append(note)
                wall = sum(x["wall_s"] for x in per_test.values())
                run = {"rows": {t: x["rows"][t] for t, x in per_test.items()}, "per_test": per_test,
                       "wall_s": wall,
                       "server_cpu_s": sum(x["server_cpu_s"] for x in per_test.values()),
                       "client_cpu_s": sum(x["client_cpu_s"] for x in per_test.values()),
                       "machine": {k: sum(x["machine"][k] * x["wall_s"] for x in per_test.values()) / wall
                                   for k in ("busy", "iowait")},
                       "other_cores": sum(x["other_cores"] * x["wall_s"] for x in per_test.values()) / wall}
                out[p][side].append(run)
                log(f"run {r + 1} {side:<6} " + " | ".join(parts))
                log("             (" + "; ".join(notes) + ")")
    return out


def engine_per_op(matrix, tests):
    """eloqkv value-cache misses and device reads per request, per pipeline and test (all runs)."""
    out = {}
    for p, sides in matrix.items():
        for t in tests:
            runs = [x["per_test"][t] for x in sides["eloqkv"]]
            n = sum(int(x["cmd"].split(" -n ")[1].split()[0]) for x in runs)
            tot = {k: sum(x["engine"][k] for x in runs) for k in
                   ("reads", "writes", "cache_hits", "cache_misses", "device_reads")}
            out[f"{t} -P {p}"] = {**tot, "requests": n, "cache_misses_per_op": tot["cache_misses"] / n,
                                  "device_reads_per_op": tot["device_reads"] / n}
    return out


def table_rows(matrix, tests):
    """Per pipeline and test: medians of rps/p50/p99 per side and the eloqkv/redis ratios."""
    rows = []
    for p, sides in matrix.items():
        for t in tests:
            red = [x["rows"][t] for x in sides["redis"]]
            elo = [x["rows"][t] for x in sides["eloqkv"]]
            ratios = [e["rps"] / r["rps"] for r, e in zip(red, elo)]
            rows.append({
                "test": t, "pipeline": p,
                "redis_rps": median(x["rps"] for x in red), "eloqkv_rps": median(x["rps"] for x in elo),
                "ratios": ratios, "ratio_median": median(ratios),
                "ratio_min": min(ratios), "ratio_max": max(ratios),
                "redis_p50_ms": median(x["p50_latency_ms"] for x in red),
                "redis_p99_ms": median(x["p99_latency_ms"] for x in red),
                "eloqkv_p50_ms": median(x["p50_latency_ms"] for x in elo),
                "eloqkv_p99_ms": median(x["p99_latency_ms"] for x in elo),
                "eloqkv_p99_ms_max": max(x["p99_latency_ms"] for x in elo),
                "eloqkv_max_ms_max": max(x["max_latency_ms"] for x in elo),
            })
    return rows


def cpu_shares(matrix):
    """Per pipeline and side: median cores used by redis-benchmark and by the server over whole
    invocations, and the machine's busy share."""
    out = {}
    for p, sides in matrix.items():
        for side, runs in sides.items():
            out[f"P{p}/{side}"] = {
                "redis_benchmark_cores": median(x["client_cpu_s"] / x["wall_s"] for x in runs),
                "server_cores": median(x["server_cpu_s"] / x["wall_s"] for x in runs),
                "machine_busy": median(x["machine"]["busy"] for x in runs),
                "machine_iowait": median(x["machine"]["iowait"] for x in runs),
                "other_cores": median(x.get("other_cores", 0) for x in runs)}
    return out


def print_cpu(shares):
    log("  CPU (median over invocations; else = cores busy with neither the server nor redis-benchmark): " + "; ".join(
        f"{k}: redis-benchmark {v['redis_benchmark_cores']:.2f} cores, server {v['server_cores']:.2f}, "
        f"machine busy {v['machine_busy']:.0%} (else {v['other_cores']:.2f} cores)"
        for k, v in shares.items()))


def print_table(rows, label=""):
    log(f"{'test':<16} {'-P':>3} {'redis rps':>11} {'eloqkv rps':>11}   {'eloqkv/redis median (min, max)':<31}"
        f" {'p50 redis/eloqkv ms':>20} {'p99 redis/eloqkv ms':>20}")
    for r in rows:
        log(f"{label + r['test']:<16} {r['pipeline']:>3} {r['redis_rps']:>11,.0f} {r['eloqkv_rps']:>11,.0f}   "
            f"{fmt_ratio(r['ratios']):<31} {r['redis_p50_ms']:>9.3f} / {r['eloqkv_p50_ms']:<8.3f}"
            f" {r['redis_p99_ms']:>9.3f} / {r['eloqkv_p99_ms']:<8.3f}")


# ---------------------------------------------------------------------------------------------
# The offload figure: CPU of the Postgres processes per million reads

def load_heap(cluster, rows):
    t = time.time()
    cluster.sql("CREATE TABLE kv_heap (k text PRIMARY KEY, v text NOT NULL);\n"
                f"INSERT INTO kv_heap SELECT 'key:' || lpad(i::text, 12, '0'), "
                f"repeat(md5(i::text), {VALUE_SIZE // 32}) FROM generate_series(0, {rows - 1}) i;\n"
                "VACUUM ANALYZE kv_heap;\nCHECKPOINT;")
    try:
        cluster.sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm;\n"
                    "SELECT pg_prewarm('kv_heap');\nSELECT pg_prewarm('kv_heap_pkey');")
    except RuntimeError:
        cluster.sql("SELECT count(*) FROM kv_heap;")
    info_row = cluster.json("SELECT json_build_object('rows', count(*), 'avg_v', avg(length(v))::int, "
                            "'bytes', pg_total_relation_size('kv_heap')) FROM kv_heap")
    info_row["load_s"] = time.time() - t
    return info_row


PGBENCH_PATTERNS = {
    "transactions": r"number of transactions actually processed: (\d+)",
    "failed": r"number of failed transactions: (\d+)",
    "latency_ms": r"latency average = ([\d.]+) ms",
    "tps": r"tps = ([\d.]+) \(without initial connection time\)",
}


def pgbench(cluster, script, seconds, rows, clients=8, threads=2):
    cmd = [f"{PG_BIN}/pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads),
           "-T", str(seconds), "-D", f"rows={rows}", *cluster.conn_args(), "-f", script, DB]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    out = r.stdout + r.stderr
    res = {"cmd": " ".join(cmd), "wall_s": time.time() - t0, "exit_code": r.returncode}
    for k, pat in PGBENCH_PATTERNS.items():
        m = re.search(pat, out)
        res[k] = (float(m.group(1)) if "." in m.group(1) else int(m.group(1))) if m else 0
    if r.returncode != 0 or not res["transactions"] or res["failed"]:
        raise RuntimeError(f"pgbench failed (exit {r.returncode}):\n{out[-3000:]}")
    return res


def offload(cluster, redis, ports, a, keys):
    rows = a.heap_rows
    info_row = load_heap(cluster, rows)
    log(f"\n== offload: CPU of the Postgres processes per million reads ==")
    log(f"heap table kv_heap: {info_row['rows']:,} rows, text key + {info_row['avg_v']}-byte value, "
        f"{info_row['bytes'] / (1 << 20):,.0f} MiB with its primary key, prewarmed; loaded in "
        f"{info_row['load_s']:.1f}s")
    script = os.path.join(a.dir, "point_select.sql")
    with open(script, "w") as f:
        f.write("\\set id random(0, :rows - 1)\n"
                "SELECT v FROM kv_heap WHERE k = 'key:' || lpad(:id::text, 12, '0');\n")
    # Check the statement hits: one row at both ends of the range, through the primary key.
    plan = cluster.sql("PREPARE q(int) AS SELECT v FROM kv_heap WHERE k = 'key:' || lpad($1::text, 12, '0');\n"
                       "SET plan_cache_mode = force_generic_plan;\nEXPLAIN (COSTS OFF) EXECUTE q(0);")
    hits = [len(cluster.sql(f"SELECT v FROM kv_heap WHERE k = 'key:' || lpad('{i}', 12, '0')").splitlines())
            for i in (0, rows - 1)]
    if hits != [1, 1] or "kv_heap_pkey" not in plan:
        raise RuntimeError(f"the pgbench point select does not hit through the primary key: {hits}\n{plan}")
    pm = cluster.postmaster_pid()
    items = ["pgbench", "resp_get_p1", "resp_get_p16", "redis_get_p1"]
    res = {k: [] for k in items}
    get_n = a.offload_requests
    for r in range(a.runs):
        order = items if r % 2 == 0 else items[::-1]
        for item in order:
            settle(cluster, redis)
            m0 = machine_cpu()
            if item == "redis_get_p1":
                c0 = tree_cpu(redis.pid())
                x = redis_benchmark(ports["redis"], ["-c", a.clients, "-d", VALUE_SIZE, "-r", keys, "-n",
                                                     get_n, "-P", 1, "-t", "get"], ["GET"], a.timeout)
                time.sleep(0.3)
                x["server_cpu_s"], x["ops"] = tree_cpu(redis.pid()) - c0, get_n
                x["rate"] = x["rows"]["GET"]["rps"]
            else:
                c0 = tree_cpu(pm)
                if item == "pgbench":
                    x = pgbench(cluster, script, a.pgbench_seconds, rows)
                    x["ops"], x["rate"] = x["transactions"], x["tps"]
                else:
                    p = 1 if item == "resp_get_p1" else 16
                    n = get_n if p == 1 else get_n * a.p16_factor
                    k0 = cluster.resp_keyspace_stats()
                    x = redis_benchmark(ports["eloqkv"], ["-c", a.clients, "-d", VALUE_SIZE, "-r", keys,
                                                          "-n", n, "-P", p, "-t", "get"], ["GET"], a.timeout)
                    k1 = cluster.resp_keyspace_stats()
                    x["engine"] = {k: k1[k] - k0[k] for k in ("reads", "cache_hits", "cache_misses",
                                                              "device_reads")}
                    x["ops"], x["rate"] = n, x["rows"]["GET"]["rps"]
                time.sleep(0.5)  # the postmaster reaps pgbench's backends (their CPU lands in cutime)
                x["server_cpu_s"] = tree_cpu(pm) - c0
            x["machine"] = machine_share(m0, machine_cpu())
            x["cpu_s_per_million"] = x["server_cpu_s"] / x["ops"] * 1e6
            res[item].append(x)
            miss = (f", {x['engine']['cache_misses']:,} value-cache misses" if "engine" in x else "")
            log(f"run {r + 1} {item:<13} {x['ops']:>10,} reads at {x['rate']:>9,.0f}/s: "
                f"{x['server_cpu_s']:6.2f} server CPU s = {x['cpu_s_per_million']:6.2f} CPU s per million "
                f"(machine busy {x['machine']['busy']:.0%}{miss})")
    med = {k: median(x["cpu_s_per_million"] for x in v) for k, v in res.items()}
    return {"heap": info_row, "plan": plan, "runs": res, "cpu_s_per_million_median": med,
            "ratio_pgbench_over_resp_p1": med["pgbench"] / med["resp_get_p1"],
            "ratio_pgbench_over_resp_p16": med["pgbench"] / med["resp_get_p16"],
            "rate_median": {k: median(x["rate"] for x in v) for k, v in res.items()}}


# ---------------------------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=f"/var/tmp/eloqkv-resp-bench-{os.getpid()}",
                   help="cluster directory (on a real file system: O_DIRECT)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--requests", type=int, default=300_000,
                   help="redis-benchmark -n at -P 1 (at -P 16: --p16-factor times as many)")
    p.add_argument("--p16-factor", type=int, default=4)
    p.add_argument("--hset-requests", type=int, default=100_000,
                   help="-n of the separate HSET runs (one hash grows by up to one field per request)")
    p.add_argument("--keys", type=int, default=1_000_000, help="-r, and the keys preloaded for GET")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--workers", type=int, default=1,
                   help="eloqkv.resp_workers; 1 = one event loop like redis-server's. On a 2-core "
                        "machine redis-benchmark needs one core: a second worker then only "
                        "preempts the client and the first worker (2026-12-03, 2 vs 1 worker: "
                        "SET -P 1 32-37K vs 42-44K/s, GET -P 1 66-69K vs 78-79K/s, GET p99 "
                        "1.9-2.2 vs 0.4-0.5 ms)")
    p.add_argument("--heap-rows", type=int, default=1_000_000)
    p.add_argument("--pgbench-seconds", type=int, default=10)
    p.add_argument("--offload-requests", type=int, default=None,
                   help="-n of the offload GET runs at -P 1 (default: --requests)")
    p.add_argument("--shared-buffers", default="1GB")
    p.add_argument("--cache-memory", default="1GB", help="eloqkv.cache_memory of the in-memory phases")
    p.add_argument("--index-memory", default="512MB")
    p.add_argument("--small-cache-mb", type=int, default=64,
                   help="eloqkv.cache_memory (MB) of the data-set-larger-than-cache phase")
    p.add_argument("--cache-multiple", type=int, default=4,
                   help="that phase's data set is this many times the small cache")
    p.add_argument("--timeout", type=int, default=900, help="seconds before a redis-benchmark run counts as stalled")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 50k keys, small -n, 1 run, 8MB small cache (< 60 s)")
    p.add_argument("--keep", action="store_true", help="keep the cluster directory")
    a = p.parse_args()
    if a.quick:
        a.runs, a.requests, a.p16_factor, a.hset_requests = 1, 20_000, 2, 5_000
        a.keys, a.heap_rows, a.pgbench_seconds, a.small_cache_mb = 50_000, 50_000, 2, 8
        a.shared_buffers, a.cache_memory, a.index_memory = "256MB", "256MB", "128MB"
    if a.offload_requests is None:
        a.offload_requests = a.requests
    if not os.path.exists(PG_LIB):
        sys.exit(f"{PG_LIB} is missing: the extension is not installed (make install)")
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install -y redis-server redis-tools")
    if OWNER is None:
        log("warning: not root; running Postgres as the current user")
    df = subprocess.run(["df", "--output=fstype", os.path.dirname(a.dir.rstrip("/")) or "/"],
                        capture_output=True, text=True).stdout.split()
    if df and df[-1] == "tmpfs":
        sys.exit(f"{a.dir} is on tmpfs; eloqkv needs O_DIRECT: choose another --dir")

    big_keys = a.cache_multiple * a.small_cache_mb * (1 << 20) // VALUE_SIZE
    resp_port = free_port(6390)
    redis_port = free_port(resp_port + 1)
    ports = {"eloqkv": resp_port, "redis": redis_port}
    conf = {
        "shared_buffers": f"'{a.shared_buffers}'",
        "shared_preload_libraries": "'eloqkv_fdw'",
        "max_connections": 50,
        "fsync": "on",
        "synchronous_commit": "on",
        "max_wal_size": "'4GB'",
        "logging_collector": "off",
        "log_line_prefix": "'%m [%p] %b '",
        "eloqkv.cache_memory": f"'{a.cache_memory}'",
        "eloqkv.index_memory": f"'{a.index_memory}'",
        "eloqkv.resp_port": resp_port,
        "eloqkv.resp_workers": a.workers,
        # eloqkv.sync is left at its default (always: a write is acknowledged once synced).
    }
    versions = {
        "redis_server": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip(),
        "redis_benchmark": subprocess.run(["redis-benchmark", "--version"], capture_output=True,
                                          text=True).stdout.strip(),
    }
    m0 = machine_cpu()
    time.sleep(2)
    busy_before = machine_share(m0, machine_cpu())["busy"]
    if busy_before > 0.25:
        log(f"WARNING: the machine is {busy_before:.0%} busy before the benchmark starts (other work "
            f"competes for the same cores; the figures will be noisy)")
    lib_before = file_id(PG_LIB)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": vars(a),
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
                    "busy_share_2s_before_start": busy_before},
        "conf": conf,
        "ports": ports,
        "versions": versions,
        "extension_so": lib_before,
        "big_keys": big_keys,
        "notes": [
            "redis-server: --save '' --appendonly no (in memory, nothing persisted); eloqkv: every "
            "write acknowledged after an fsync covers it (eloqkv.sync default = always)",
            "redis-benchmark runs on the same 2-core machine as both servers and competes for CPU",
            "ratios are eloqkv rps / redis rps of the same run, runs alternate which side goes first",
        ],
        "ok": False,
    }
    cluster = RespCluster(a.dir, conf)
    redis = RedisServer(a.dir, redis_port)
    log(f"cluster in {a.dir}; extension {PG_LIB} (mtime {lib_before.get('mtime')}); "
        f"RESP port {resp_port}, redis-server port {redis_port}")
    t_start = time.time()
    error = None
    try:
        cluster.init()
        cluster.start()
        cluster.sql("CREATE EXTENSION eloqkv_fdw;")
        results["engine_ready_s"] = cluster.wait_engine_ready()
        wait_ping(resp_port, 60)
        if "eloqkv-workers" not in rcli(resp_port, "CONFIG", "GET", "eloqkv-workers"):
            raise RuntimeError(f"port {resp_port} is not our eloqkv RESP listener")
        redis.start()
        e = cluster.engine()
        results["versions"].update({
            "postgres": cluster.sql("SHOW server_version"), "eloqkv": e["version"],
            "io_mode": e["io_mode"], "direct_io": e["direct_io"]})
        results["settings"] = {
            "eloqkv.sync": cluster.sql("SHOW eloqkv.sync"), "engine_info.sync": e["sync"],
            "eloqkv.resp_workers": cluster.sql("SHOW eloqkv.resp_workers"),
            "eloqkv.cache_memory": cluster.sql("SHOW eloqkv.cache_memory"),
            "eloqkv.index_memory": cluster.sql("SHOW eloqkv.index_memory")}
        workers0 = cluster.resp_workers()
        results["resp_worker_pids_start"] = list(workers0)
        log(f"postgres {results['versions']['postgres']}, eloqkv {e['version']} (io_mode {e['io_mode']}, "
            f"direct_io {e['direct_io']}); eloqkv.sync = {results['settings']['eloqkv.sync']} "
            f"(engine: {e['sync']}), resp_workers = {results['settings']['eloqkv.resp_workers']} "
            f"(pids {sorted(workers0)}), cache_memory {results['settings']['eloqkv.cache_memory']}")
        log(f"{versions['redis_server']}; {versions['redis_benchmark']}; {os.cpu_count()} CPUs "
            f"(redis-benchmark shares them with the servers)")
        if len(workers0) != a.workers:
            raise RuntimeError(f"expected {a.workers} RESP workers, found {workers0}")

        # ---- 0: the plain redis-benchmark run: no error reply ----
        plain_n = 10_000 if a.quick else 100_000
        plain_tests = ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "HSET", "MSET (10 keys)"]
        log(f"\n== redis-benchmark -t ping,set,get,incr,mset,hset -n {plain_n:,} on the listener ==")
        x = redis_benchmark(resp_port, ["-n", plain_n, "-t", "ping,set,get,incr,mset,hset"], plain_tests,
                            a.timeout)
        results["plain_check"] = x
        log("no error reply; " + ", ".join(f"{t} {x['rows'][t]['rps']:,.0f} rps" for t in plain_tests))
        for port in ports.values():
            rcli(port, "FLUSHALL")

        # ---- 1: preload ----
        load_file = os.path.join(a.dir, "load.resp")
        write_load_file(load_file, 0, a.keys)
        results["load"] = {}
        for side in SIDES:
            secs = pipe_load(ports[side], load_file, a.keys)
            n = int(rcli(ports[side], "DBSIZE"))
            results["load"][side] = {"seconds": secs, "keys_per_s": a.keys / secs, "dbsize": n}
            if n != a.keys:
                raise RuntimeError(f"{side}: DBSIZE {n} after loading {a.keys} keys")
        sample = f"key:{a.keys - 1:012d}"
        vals = {s: rcli(ports[s], "GET", sample) for s in SIDES}
        if vals["redis"] != vals["eloqkv"] or len(vals["redis"]) != VALUE_SIZE:
            raise RuntimeError(f"GET {sample} differs: {vals}")
        log(f"\npreloaded {a.keys:,} keys x {VALUE_SIZE} B with redis-cli --pipe: " + ", ".join(
            f"{s} {results['load'][s]['seconds']:.1f}s ({results['load'][s]['keys_per_s']:,.0f} SET/s)"
            for s in SIDES))

        # ---- 2: offload (first, while every preloaded value is in the value cache) ----
        off = offload(cluster, redis, ports, a, a.keys)
        results["offload"] = off
        cluster.sql("DROP TABLE kv_heap;")

        # ---- 3: the main matrix ----
        def req(pp):
            return a.requests if pp == 1 else a.requests * a.p16_factor

        main = run_matrix("set, get, incr, mset", MAIN_TESTS, a.keys, (1, 16), req, a.runs,
                          ports, cluster, redis, a.clients, a.timeout)
        results["main"] = main
        results["main_engine"] = engine_per_op(main, MAIN_TESTS)
        results["main_table"] = table_rows(main, MAIN_TESTS)
        results["main_cpu"] = cpu_shares(main)

        def reset_hash(side):
            rcli(ports[side], "DEL", "myhash")

        hset = run_matrix("hset (one hash, `myhash`, reset before each run)", ["HSET"], a.keys,
                          (1, 16), lambda pp: a.hset_requests, a.runs, ports, cluster, redis, a.clients,
                          a.timeout, reset=reset_hash)
        results["hset"] = hset
        results["hset_table"] = table_rows(hset, ["HSET"])
        results["hset_fields_after"] = {s: int(rcli(ports[s], "HLEN", "myhash")) for s in SIDES}
        for s in SIDES:
            reset_hash(s)

        # ---- 4: data set 4x the value cache ----
        workers_mid = cluster.resp_workers()
        results["resp_worker_pids_before_restart"] = list(workers_mid)
        cluster.stop()
        cluster.set_conf({"eloqkv.cache_memory": f"'{a.small_cache_mb}MB'"},
                         header=f"data set {a.cache_multiple}x the value cache")
        cluster.start()
        results["engine_ready_after_restart_s"] = cluster.wait_engine_ready()
        wait_ping(resp_port, 60)
        if "eloqkv-workers" not in rcli(resp_port, "CONFIG", "GET", "eloqkv-workers"):
            raise RuntimeError(f"port {resp_port} is not our eloqkv RESP listener after the restart")
        e = cluster.engine()
        results["small_cache_engine"] = e
        for port in ports.values():
            rcli(port, "FLUSHALL")
        write_load_file(load_file, 0, big_keys)
        results["big_load"] = {}
        for side in SIDES:
            secs = pipe_load(ports[side], load_file, big_keys)
            n = int(rcli(ports[side], "DBSIZE"))
            results["big_load"][side] = {"seconds": secs, "dbsize": n}
            if n != big_keys:
                raise RuntimeError(f"{side}: DBSIZE {n} after loading {big_keys} keys")
        os.unlink(load_file)
        e = cluster.engine()
        redis_mem = info(redis_port, "memory")
        results["big_engine_after_load"] = e
        results["big_redis_used_memory"] = int(redis_mem.get("used_memory", 0))
        log(f"\nrestarted with eloqkv.cache_memory = {cluster.sql('SHOW eloqkv.cache_memory')} "
            f"(engine cache limit {e['cache_memory_limit'] / (1 << 20):.0f} MiB, used "
            f"{e['cache_memory_used'] / (1 << 20):.0f} MiB); loaded {big_keys:,} keys x {VALUE_SIZE} B "
            f"({big_keys * VALUE_SIZE / (1 << 20):.0f} MiB of values, {a.cache_multiple}x the cache): "
            + ", ".join(f"{s} {results['big_load'][s]['seconds']:.1f}s" for s in SIDES)
            + f"; engine live_bytes {e['live_bytes'] / (1 << 20):.0f} MiB, redis used_memory "
              f"{results['big_redis_used_memory'] / (1 << 20):.0f} MiB")
        big = run_matrix(f"GET, data set {a.cache_multiple}x the eloqkv value cache", ["GET"], big_keys,
                         (1, 16), req, a.runs, ports, cluster, redis, a.clients, a.timeout)
        results["big"] = big
        results["big_table"] = table_rows(big, ["GET"])
        results["big_cpu"] = cpu_shares(big)
        results["big_engine"] = engine_per_op(big, ["GET"])

        workers1 = cluster.resp_workers()
        results["resp_worker_pids_end"] = list(workers1)
        results["extension_so_after"] = file_id(PG_LIB)
        results["ok"] = True
    except Exception as ex:  # noqa: BLE001 -- report, clean up, exit non-zero
        error = f"{type(ex).__name__}: {ex}"
        results["error"] = error
    finally:
        redis.stop()
        results["redis_log_tail"] = []
        if os.path.exists(redis.logfile):
            with open(redis.logfile, errors="replace") as f:
                results["redis_log_tail"] = [l.rstrip() for l in f.readlines()[-20:]]
        cluster.stop(quiet=error is not None)
        results["log_problems"] = log_problems(cluster.logfile)
        if a.keep:
            log(f"cluster kept in {a.dir} (log {cluster.logfile})")
        elif os.path.exists(os.path.join(a.dir, "data", "PG_VERSION")):
            shutil.rmtree(a.dir, ignore_errors=True)
        results["total_s"] = time.time() - t_start
        out_dir = os.path.join(ROOT, "bench", "results")
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "resp-" + time.strftime("%Y%m%d-%H%M%S") + ("-quick" if a.quick else "")
                            + ("-FAILED" if error else "") + ".json")
        with open(path, "w") as f:
            json.dump(results, f, indent=1, default=str)
    if error:
        lp = results["log_problems"]
        log(f"\n!! BENCHMARK FAILED: {error}")
        if lp:
            log("server log problems:\n  " + "\n  ".join(lp[-20:]))
        log(f"raw results: {path}")
        sys.exit(1)

    # ---- summary ----
    log(f"\n== summary: redis-benchmark -c {a.clients} -d {VALUE_SIZE} -r {a.keys:,}, -n {a.requests:,} at "
        f"-P 1 and {a.requests * a.p16_factor:,} at -P 16, {a.runs} run(s); {os.cpu_count()} CPUs shared by "
        f"redis-benchmark and the server under test ==")
    log(f"eloqkv: eloqkv.sync = {results['settings']['eloqkv.sync']}, resp_workers = "
        f"{results['settings']['eloqkv.resp_workers']}; redis-server: --save '' --appendonly no")
    print_table(results["main_table"])
    print_cpu(results["main_cpu"])
    log("  eloqkv value cache, per request: " + "; ".join(
        f"{k} {v['cache_misses_per_op']:.2f} misses ({v['device_reads_per_op']:.2f} device reads)"
        for k, v in results["main_engine"].items() if v["reads"]))
    print_table(results["hset_table"], label="")
    log(f"  (HSET: -n {a.hset_requests:,} into one hash `myhash`; fields after the last run: "
        f"{results['hset_fields_after']})")
    log(f"\nGET with {big_keys:,} keys = {a.cache_multiple}x the {a.small_cache_mb} MB eloqkv value cache:")
    print_table(results["big_table"])
    print_cpu(results["big_cpu"])
    for k, be in results["big_engine"].items():
        log(f"  {k}: eloqkv cache misses/GET {be['cache_misses_per_op']:.2f}, device reads/GET "
            f"{be['device_reads_per_op']:.2f} (eloqkv.keyspace_stats() of {RESP_KEYSPACE}; "
            f"engine_info() has no read counters)")
    off = results["offload"]
    med = off["cpu_s_per_million_median"]
    log(f"\noffload: Postgres CPU seconds per million reads (postmaster + children, /proc utime+stime):")
    log(f"  pgbench -M prepared -c 8 -j 2 point SELECT (heap + PK): {med['pgbench']:.1f} "
        f"(at {off['rate_median']['pgbench']:,.0f} tps)")
    log(f"  RESP GET -P 1 -c {a.clients}:                              {med['resp_get_p1']:.1f} "
        f"(at {off['rate_median']['resp_get_p1']:,.0f} rps)  -> pgbench / RESP = "
        f"{off['ratio_pgbench_over_resp_p1']:.1f}x")
    log(f"  RESP GET -P 16 -c {a.clients}:                             {med['resp_get_p16']:.1f} "
        f"(at {off['rate_median']['resp_get_p16']:,.0f} rps)  -> pgbench / RESP = "
        f"{off['ratio_pgbench_over_resp_p16']:.1f}x")
    log(f"  (reference: redis-server CPU per million GETs at -P 1: {med['redis_get_p1']:.1f})")

    # goals
    def row(tbl, t, pp):
        return next(r for r in tbl if r["test"] == t and r["pipeline"] == pp)
    g = {
        "GET >= 1.0x redis (-P 1)": row(results["main_table"], "GET", 1)["ratio_median"] >= 1.0,
        "GET >= 1.0x redis (-P 16)": row(results["main_table"], "GET", 16)["ratio_median"] >= 1.0,
        "SET >= 0.8x redis (-P 1)": row(results["main_table"], "SET", 1)["ratio_median"] >= 0.8,
        "SET >= 0.8x redis (-P 16)": row(results["main_table"], "SET", 16)["ratio_median"] >= 0.8,
        "GET p99 <= 1 ms at -P 1 (median run)": row(results["main_table"], "GET", 1)["eloqkv_p99_ms"] <= 1.0,
        "GET p99 <= 1 ms at -P 1 (every run)": row(results["main_table"], "GET", 1)["eloqkv_p99_ms_max"] <= 1.0,
    }
    results["goals"] = g
    log("\ngoals: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in g.items()))
    restarted = set(results["resp_worker_pids_start"]) != set(results["resp_worker_pids_before_restart"])
    if restarted:
        log("WARNING: the RESP worker pids changed during the in-memory phases (a worker restarted)")
    lp = results["log_problems"]
    log(f"server log: {len(lp)} ERROR/FATAL/PANIC/WARNING/crash lines" + (":\n  " + "\n  ".join(lp[:10]) if lp else ""))
    after = results.get("extension_so_after") or {}
    if after.get("sha256_16") != lib_before.get("sha256_16"):
        log("WARNING: the installed eloqkv_fdw.so changed during the run (someone ran make install); "
            "the restart before the last phase loaded the new build")
    elif after.get("mtime") != lib_before.get("mtime"):
        log("note: eloqkv_fdw.so was reinstalled during the run with identical content")
    with open(path, "w") as f:
        json.dump(results, f, indent=1, default=str)
    log(f"total {results['total_s']:.0f}s; raw results: {path}")


if __name__ == "__main__":
    main()
