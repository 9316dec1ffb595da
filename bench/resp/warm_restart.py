"""GET right after a restart: eloqkv.warm_cache on against off, in the same run.

The value cache is in shared memory, so it is empty after every start. One cluster, one data set
(--keys keys of 256 bytes, loaded over RESP); each run restarts it twice: with warm_cache = off,
redis-benchmark GETs start as soon as the listener answers (every first read of a key goes to the
device); with warm_cache = on, they start once the log says the warming is done, and the time
that took is reported. Printed: GET/s for both (min/median/max over --runs), the ratio on/off,
device reads per GET, and the warming time against the engine's own recovery time.

    python3 bench/resp/warm_restart.py [--runs 3] [--keys 1000000] [--pipeline 16]
"""
import argparse
import os
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (VALUE_SIZE, RespCluster, pipe_load, rcli, redis_benchmark,  # noqa: E402
                 wait_ping, write_load_file)
from benchlib import PG_LIB, fmt_ratio, free_port, log, log_problems, median  # noqa: E402

WARMED = re.compile(r"value cache warmed in ([0-9.]+) s: (\d+) values read")


def restart(cluster, port, warm):
    cluster.stop()
    cluster.set_conf({"eloqkv.warm_cache": "on" if warm else "off"})
    offset = os.path.getsize(cluster.logfile)
    t0 = time.time()
    cluster.start()
    ready_s = cluster.wait_engine_ready()
    wait_ping(port, 60)
    warm_s, values = None, 0
    if warm:
        deadline = time.time() + 600
        while time.time() < deadline:
            with open(cluster.logfile, errors="replace") as f:
                f.seek(offset)
                m = WARMED.search(f.read())
            if m:
                warm_s, values = float(m.group(1)), int(m.group(2))
                break
            time.sleep(0.1)
        if warm_s is None:
            raise RuntimeError("no 'value cache warmed' line in the log after 600 s")
    return {"ready_s": ready_s, "serving_s": time.time() - t0, "warm_s": warm_s, "values": values}


def device_reads(cluster):
    return int(cluster.sql("SELECT coalesce(sum(device_reads), 0) FROM eloqkv.keyspace_stats()"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=f"/var/tmp/eloqkv-warm-bench-{os.getpid()}")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=1_200_000)
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--cache-memory", default="1GB")
    a = p.parse_args()
    if not os.path.exists(PG_LIB):
        sys.exit(f"{PG_LIB} is missing: the extension is not installed (make install)")
    port = free_port(6390)
    cluster = RespCluster(a.dir, {
        "shared_preload_libraries": "'eloqkv_fdw'",
        "max_wal_size": "'4GB'",
        "logging_collector": "off",
        "eloqkv.cache_memory": f"'{a.cache_memory}'",
        "eloqkv.index_memory": "'512MB'",
        "eloqkv.resp_port": port,
        "eloqkv.resp_workers": 1,
    })
    results = {"off": [], "on": []}
    try:
        cluster.init()
        cluster.start()
        cluster.sql("CREATE EXTENSION eloqkv_fdw;")
        cluster.wait_engine_ready()
        wait_ping(port, 60)
        load = os.path.join(a.dir, "load.resp")
        write_load_file(load, 0, a.keys)
        secs = pipe_load(port, load, a.keys)
        os.unlink(load)
        log(f"loaded {a.keys:,} keys x {VALUE_SIZE} B in {secs:.1f}s; eloqkv.cache_memory {a.cache_memory}")
        rb = ["-c", a.clients, "-d", VALUE_SIZE, "-r", a.keys, "-n", a.requests, "-t", "get",
              "-P", a.pipeline]
        for run in range(1, a.runs + 1):
            for warm in (False, True):
                side = "on" if warm else "off"
                r = restart(cluster, port, warm)
                d0 = device_reads(cluster)
                res = redis_benchmark(port, rb, ["GET"], 900)
                r["rps"] = res["rows"]["GET"]["rps"]
                r["p99_ms"] = res["rows"]["GET"]["p99_latency_ms"]
                r["device_reads_per_get"] = (device_reads(cluster) - d0) / a.requests
                results[side].append(r)
                warmed = (f"; warmed {r['values']:,} values in {r['warm_s']:.1f}s"
                          if warm else "")
                log(f"run {run} warm_cache={side:3}: engine ready {r['ready_s']:.1f}s{warmed}; GET "
                    f"{r['rps']:,.0f} rps, p99 {r['p99_ms']:.2f} ms, "
                    f"{r['device_reads_per_get']:.2f} device reads/GET")
        if int(rcli(port, "DBSIZE")) != a.keys:
            raise RuntimeError("DBSIZE changed")
    finally:
        cluster.stop(quiet=True)
        problems = log_problems(cluster.logfile)
        shutil.rmtree(a.dir, ignore_errors=True)
    if problems:
        log("server log problems:\n  " + "\n  ".join(problems[-20:]))
    off = [r["rps"] for r in results["off"]]
    on = [r["rps"] for r in results["on"]]
    ratios = [b / x for b, x in zip(on, off)]
    log(f"\n== GET -P {a.pipeline} -c {a.clients} right after a restart, {a.keys:,} keys, "
        f"{a.runs} runs: median (min, max) ==")
    log(f"warm_cache=off: {median(off):,.0f} rps ({min(off):,.0f}, {max(off):,.0f}), "
        f"{median([r['device_reads_per_get'] for r in results['off']]):.2f} device reads/GET")
    log(f"warm_cache=on:  {median(on):,.0f} rps ({min(on):,.0f}, {max(on):,.0f}), "
        f"{median([r['device_reads_per_get'] for r in results['on']]):.2f} device reads/GET")
    log(f"ratio on / off: {fmt_ratio(ratios)}")
    log(f"warming: {median([r['warm_s'] for r in results['on']]):.1f}s "
        f"({min(r['warm_s'] for r in results['on']):.1f}, {max(r['warm_s'] for r in results['on']):.1f}) "
        f"after an engine recovery of {median([r['ready_s'] for r in results['on']]):.1f}s")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
