#!/usr/bin/env python3
"""KV replication through WAL: what standbys add and what replication costs, measured in one run
on one machine, as min/median/max of --runs.

    python3 bench/replication/run.py [--runs 3] [--keys 100000] [--quick] [--wal-only] [--keep]

Sets up a throwaway primary under /var/tmp (initdb as `postgres`, eloqkv_fdw preloaded, the
RESP listener on a free port, wal_level = replica) and two streaming standbys made with
pg_basebackup, each with its own RESP listener. Then:

  1. read scale-out: redis-benchmark GET (-c 50, -d 256 values, -r KEYS over preloaded keys) at
     -P 1 and -P 16 against the primary alone, then against the primary and both standbys at
     once (three redis-benchmark processes started together). Prints total GETs/s of the set
     over the primary alone. All three servers and the clients share this machine's cores, so
     on a 2-core machine the ratio shows the CPU bound, not what separate hosts would give;
  2. replication lag under a sustained write load: redis-benchmark SET at -P 16 on the primary
     for --write-requests requests while eloqkv.replication is sampled every 100 ms (KV bytes
     not yet replayed per standby, and Postgres's replay_lag); then the time until both
     standbys have replayed everything;
  3. WAL bytes per write: --wal-writes single-row transactions, each an UPDATE of a 256-byte
     value, on a heap table (primary key) and on an eloqkv table with the same rows; and RESP SETs
     of 256-byte values. pg_current_wal_insert_lsn() before and after, divided by the writes;
     after a warm-up pass, with no checkpoint in between (no full-page images on either side).

--wal-only measures 3. alone (it does not depend on timing, so a busy machine does not matter).

Checks that the standbys end with the primary's rows (count and an md5 of the table, and the
RESP keyspace's key count). Uses the installed extension as it is. Writes
bench/results/replication-<date>.json.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from benchlib import (OWNER, PG_BIN, PG_LIB, ROOT, Cluster, as_owner, file_id,  # noqa: E402
                      fmt_ratio, free_port, git_head, log, log_problems, summary)

VALUE = 256


class Node(Cluster):
    def __init__(self, base, name, first_port):
        super().__init__(base, {}, header=f"bench/replication/run.py {name}", first_port=first_port)
        self.name = name
        self.resp_port = None

    def from_backup(self, primary, resp_port):
        """A streaming standby of `primary` from pg_basebackup (-R writes primary_conninfo)."""
        self.init_dir_only()
        r = subprocess.run(as_owner([f"{PG_BIN}/pg_basebackup", "-D", self.data, *primary.conn_args(),
                                     "-X", "stream", "-R", "-c", "fast",
                                     "-d", f"application_name={self.name}"]),
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("pg_basebackup failed:\n" + r.stdout + r.stderr)
        self.port = free_port(self.first_port)
        self.resp_port = resp_port
        self.set_conf({"port": self.port, "unix_socket_directories": f"'{self.base}'",
                       "eloqkv.resp_port": resp_port}, header=self.header)

    def init_dir_only(self):
        if os.path.exists(self.base):
            self.stop(quiet=True)
            shutil.rmtree(self.base)
        os.makedirs(self.base)
        if OWNER:
            shutil.chown(self.base, OWNER)
        os.chmod(self.base, 0o700)


def redis_benchmark(port, args, timeout=900):
    """Runs redis-benchmark --csv; returns {test: rps}. Any error reply fails the benchmark."""
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), *[str(a) for a in args], "--csv"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    out = r.stdout + r.stderr
    if r.returncode != 0 or "Error" in out or "error" in out.lower().replace('"', ""):
        raise RuntimeError(f"redis-benchmark on {port} failed (exit {r.returncode}):\n{out[-2000:]}")
    rows = {}
    for line in r.stdout.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) >= 2 and cells[0] != "test":
            rows[cells[0]] = float(cells[1])
    return rows


def preload(port, keys):
    """keys 256-byte values as key:000000000000... (the keys redis-benchmark's -r picks)."""
    lines = []
    value = "v" * VALUE
    for i in range(keys):
        k = f"key:{i:012d}"
        lines.append(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n${VALUE}\r\n{value}\r\n")
    data = "".join(lines).encode()
    r = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=data, capture_output=True)
    if r.returncode != 0 or b"errors: 0" not in r.stdout:
        raise RuntimeError("redis-cli --pipe failed: " + r.stdout.decode()[-500:])


def wait_caught_up(primary, standbys, timeout=600):
    """Seconds until every standby has replayed every KV batch the primary logged."""
    t0 = time.time()
    names = {s.name for s in standbys}
    while True:
        rows = primary.sql("SELECT application_name || ' ' || kv_lag_bytes FROM eloqkv.replication",
                           check=False)
        lag = dict(line.split() for line in rows.splitlines() if line)
        if names <= set(lag) and all(lag[n] == "0" for n in names):
            return time.time() - t0
        if time.time() - t0 > timeout:
            raise RuntimeError(f"standbys did not catch up: {lag}")
        time.sleep(0.05)


def read_scaleout(nodes, keys, requests, pipeline):
    """GETs/s of the primary alone, and of all nodes at once (total over the set's wall time)."""
    args = ["-t", "get", "-c", 50, "-d", VALUE, "-r", keys, "-n", requests, "-P", pipeline]
    alone = redis_benchmark(nodes[0].resp_port, args)["GET"]
    results = [None] * len(nodes)

    def one(i):
        results[i] = redis_benchmark(nodes[i].resp_port, args)["GET"]

    t0 = time.time()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(nodes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    if any(r is None for r in results):
        raise RuntimeError("a concurrent redis-benchmark failed")
    together = requests * len(nodes) / wall
    return alone, together, results


def lag_under_load(primary, standbys, keys, requests):
    samples = {s.name: [] for s in standbys}
    lag_ms = {s.name: [] for s in standbys}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            out = primary.sql("SELECT application_name || ' ' || kv_lag_bytes || ' ' || "
                              "coalesce(extract(epoch FROM replay_lag) * 1000, 0) FROM eloqkv.replication",
                              check=False)
            for line in out.splitlines():
                name, lag, ms = line.split()
                if name in samples:
                    samples[name].append(int(lag))
                    lag_ms[name].append(float(ms))
            time.sleep(0.1)

    th = threading.Thread(target=sample)
    th.start()
    t0 = time.time()
    rps = redis_benchmark(primary.resp_port, ["-t", "set", "-c", 50, "-d", VALUE, "-r", keys, "-n",
                                              requests, "-P", 16])["SET"]
    load_s = time.time() - t0
    catch_up = wait_caught_up(primary, standbys)
    stop.set()
    th.join()
    return {"set_rps": rps, "load_s": load_s, "catch_up_s": catch_up,
            "lag_bytes": {n: {"median": statistics.median(v) if v else 0, "max": max(v, default=0)}
                          for n, v in samples.items()},
            "replay_lag_ms": {n: {"median": statistics.median(v) if v else 0, "max": max(v, default=0)}
                              for n, v in lag_ms.items()}}


def lsn_diff(node, before):
    return int(float(node.sql(f"SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '{before}')")))


def wal_per_write(primary, writes, keys):
    value = "x" * VALUE
    out = {}
    for table in ("heap_rows", "kv_rows"):
        for attempt in ("warm-up", "measured"):
            before = primary.sql("SELECT pg_current_wal_insert_lsn()")
            primary.sql(f"""DO $$ BEGIN FOR i IN 1..{writes} LOOP
                UPDATE {table} SET data = '{value}' || '{attempt}' || i WHERE id = 'k' || (i % {keys});
                COMMIT; END LOOP; END $$;""")
            out[table] = lsn_diff(primary, before) / writes
    before = primary.sql("SELECT pg_current_wal_insert_lsn()")
    redis_benchmark(primary.resp_port, ["-t", "set", "-c", 1, "-d", VALUE, "-r", 1000, "-n", writes, "-P", 1])
    out["resp_set"] = lsn_diff(primary, before) / writes
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--get-requests", type=int, default=200000)
    ap.add_argument("--write-requests", type=int, default=300000)
    ap.add_argument("--wal-writes", type=int, default=5000)
    ap.add_argument("--base", default="/var/tmp/eloqkv-bench-replication")
    ap.add_argument("--quick", action="store_true", help="fewer keys and requests (a smoke run)")
    ap.add_argument("--keep", action="store_true", help="leave the clusters running")
    ap.add_argument("--wal-only", action="store_true", help="only the WAL bytes per write")
    a = ap.parse_args()
    if a.quick:
        a.keys, a.get_requests, a.write_requests, a.wal_writes = 20000, 40000, 60000, 1000

    conf = {"shared_preload_libraries": "'eloqkv_fdw'", "wal_level": "replica",
            "max_wal_senders": 10, "checkpoint_timeout": "'1h'", "max_wal_size": "'8GB'",
            "eloqkv.resp_workers": 2, "eloqkv.index_memory": "'256MB'",
            "eloqkv.cache_memory": "'256MB'", "hot_standby_feedback": "on"}
    taken = set()
    primary = Node(os.path.join(a.base, "primary"), "primary", 5460)
    primary.conf = {**conf, "eloqkv.resp_port": free_port(6460)}
    primary.init()
    primary.resp_port = primary.conf["eloqkv.resp_port"]
    taken.add(primary.resp_port)
    primary.start()
    primary.sql("CREATE EXTENSION eloqkv_fdw")
    primary.wait_engine_ready()
    primary.sql(f"""CREATE SERVER kv FOREIGN DATA WRAPPER eloqkv_fdw;
        CREATE FOREIGN TABLE kv_rows (id text, data text) SERVER kv OPTIONS (key 'id');
        CREATE TABLE heap_rows (id text PRIMARY KEY, data text);
        INSERT INTO kv_rows SELECT 'k' || g, repeat('d', {VALUE}) FROM generate_series(0, {a.keys - 1}) g;
        INSERT INTO heap_rows SELECT 'k' || g, repeat('d', {VALUE}) FROM generate_series(0, {a.keys - 1}) g;""")
    preload(primary.resp_port, a.keys)
    standbys = []
    for i, name in enumerate(("standby1", "standby2")):
        s = Node(os.path.join(a.base, name), name, 5470 + 10 * i)
        rp = free_port(6470 + 10 * i, taken)
        taken.add(rp)
        s.from_backup(primary, rp)
        s.start()
        s.wait_engine_ready()
        standbys.append(s)
    wait_caught_up(primary, standbys)
    nodes = [primary, *standbys]

    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "git": git_head(), "library": file_id(PG_LIB),
              "args": vars(a), "cores": os.cpu_count(), "reads": {}, "lag": [], "wal": []}
    log(f"eloqkv replication benchmark, {a.runs} runs, {a.keys} keys of {VALUE} bytes, {os.cpu_count()} cores")
    for p in () if a.wal_only else (1, 16):
        alone, together, ratios = [], [], []
        for _ in range(a.runs):
            x, y, _parts = read_scaleout(nodes, a.keys, a.get_requests, p)
            alone.append(x)
            together.append(y)
            ratios.append(y / x)
        result["reads"][f"P{p}"] = {"primary_alone": alone, "primary_and_2_standbys": together}
        lo, med, hi = summary(alone)
        lo2, med2, hi2 = summary(together)
        log(f"  GET -P {p:<2}  primary alone {med:>9.0f}/s ({lo:.0f}, {hi:.0f})   primary + 2 standbys "
            f"{med2:>9.0f}/s ({lo2:.0f}, {hi2:.0f})   ratio {fmt_ratio(ratios)}")

    for _ in range(0 if a.wal_only else a.runs):
        result["lag"].append(lag_under_load(primary, standbys, a.keys, a.write_requests))
    med = lambda f: statistics.median(f(r) for r in result["lag"])  # noqa: E731
    for s in standbys if result["lag"] else ():
        log(f"  lag at {med(lambda r: r['set_rps']):.0f} SET/s (-P 16): {s.name} KV bytes behind median "
            f"{med(lambda r: r['lag_bytes'][s.name]['median']):.0f}, max "
            f"{med(lambda r: r['lag_bytes'][s.name]['max']):.0f}; replay_lag median "
            f"{med(lambda r: r['replay_lag_ms'][s.name]['median']):.1f} ms, max "
            f"{med(lambda r: r['replay_lag_ms'][s.name]['max']):.1f} ms")
    if result["lag"]:
        log(f"  caught up {fmt_s([r['catch_up_s'] for r in result['lag']])} after the load ended")

    for _ in range(a.runs):
        result["wal"].append(wal_per_write(primary, a.wal_writes, a.keys))
    for k, label in (("heap_rows", "heap UPDATE (1 row/txn)"), ("kv_rows", "eloqkv UPDATE (1 row/txn)"),
                     ("resp_set", "RESP SET")):
        vals = [w[k] for w in result["wal"]]
        lo, m, hi = summary(vals)
        log(f"  WAL bytes per write, {label:<26} {m:7.0f} ({lo:.0f}, {hi:.0f})")
    ratio = [w["kv_rows"] / w["heap_rows"] for w in result["wal"]]
    log(f"  eloqkv UPDATE / heap UPDATE WAL bytes: {fmt_ratio(ratio)}")

    wait_caught_up(primary, standbys)
    want = primary.sql("SELECT count(*) || ' ' || md5(string_agg(id || data, ',' ORDER BY id)) FROM kv_rows")
    want_keys = primary.sql("SELECT keys FROM eloqkv.keyspace_stats() WHERE name = '@resp'")
    for s in standbys:
        got = s.sql("SELECT count(*) || ' ' || md5(string_agg(id || data, ',' ORDER BY id)) FROM kv_rows")
        got_keys = s.sql("SELECT keys FROM eloqkv.keyspace_stats() WHERE name = '@resp'")
        if got != want or got_keys != want_keys:
            raise RuntimeError(f"{s.name} differs from the primary: {got}/{got_keys} vs {want}/{want_keys}")
    log(f"  standbys hold the primary's rows ({want.split()[0]} table rows, {want_keys} RESP keys)")
    problems = {n.name: log_problems(n.logfile) for n in nodes}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        log(f"  server log problems: {json.dumps(problems)[:2000]}")
    result["problems"] = problems

    out = os.path.join(ROOT, "bench", "results", f"replication-{time.strftime('%Y%m%d-%H%M')}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    log(f"  wrote {os.path.relpath(out, ROOT)}")
    if not a.keep:
        for n in reversed(nodes):
            n.stop()


def fmt_s(values):
    lo, m, hi = summary(values)
    return f"{m:.2f} s ({lo:.2f}, {hi:.2f})"


if __name__ == "__main__":
    main()
