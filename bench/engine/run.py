#!/usr/bin/env python3
"""Engine benchmark: runs bench_engine next to fio on the same file system, several times, and
prints min/median/max with ratios against the peer measured in the same run.

    python3 bench/engine/run.py [--dir DIR] [--runs 3] [--seconds 10] [--skip-recovery]

Needs build/bench_engine (`make engine`) and fio. Not part of the test suite: the numbers are
noisy on a 2-core machine, which is why every figure is a min/median/max of --runs runs.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "build", "bench_engine")


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench(*args):
    return run_json([BENCH, *[str(a) for a in args]])


def fio(*args):
    out = subprocess.run(["fio", "--output-format=json", *args], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)["jobs"][0]


def summary(values):
    return min(values), statistics.median(values), max(values)


def fmt(values, unit=""):
    lo, med, hi = summary(values)
    return f"{med:>10,.0f}{unit}  (min {lo:,.0f}, max {hi:,.0f})"


def fmt_ratio(values):
    lo, med, hi = summary(values)
    return f"{med:.2f}x (min {lo:.2f}, max {hi:.2f})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default="/var/tmp/eloqkv-bench")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--cold-gib", type=float, default=1.0)
    p.add_argument("--recovery-keys", type=int, default=10_000_000)
    p.add_argument("--skip-recovery", action="store_true")
    a = p.parse_args()
    if not os.access(BENCH, os.X_OK):
        sys.exit("build/bench_engine is missing: run `make engine` first")
    if shutil.which("fio") is None:
        sys.exit("fio is missing: run scripts/install-deps.sh")
    os.makedirs(a.dir, exist_ok=True)
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": a.runs}
    secs = a.seconds

    # Cold random point reads: 4 KiB values, data set much larger than the value cache, O_DIRECT,
    # multi-get batches of 32, against fio's io_uring 4 KiB randread at QD32.
    cold_dir = os.path.join(a.dir, "cold")
    keys = int(a.cold_gib * (1 << 30) / 4096)
    if not os.path.isdir(cold_dir):
        print(f"loading {keys:,} keys of 4 KiB into {cold_dir} ...", flush=True)
        bench("load", "--dir", cold_dir, "--keys", keys, "--value-size", 4096, "--index-mb", 512)
    fio_file = os.path.join(a.dir, "fio-randread.dat")
    fio_iops, eng1, eng2, dev1, dev2 = [], [], [], [], []
    for r in range(a.runs):
        j = fio("--name=randread", f"--filename={fio_file}", f"--size={int(a.cold_gib * 1024)}M",
                "--rw=randread", "--bs=4k", "--ioengine=io_uring", "--iodepth=32", "--direct=1",
                f"--runtime={secs}", "--time_based")
        fio_iops.append(j["read"]["iops"])
        for threads, ops, dev in ((1, eng1, dev1), (2, eng2, dev2)):
            j = bench("cold-read", "--dir", cold_dir, "--keys", keys, "--seconds", secs, "--batch", 32,
                      "--threads", threads, "--cache-mb", 64, "--index-mb", 512)
            ops.append(j["ops_per_s"])
            dev.append(j["device_reads_per_s"])
    results["cold_read"] = {"fio_iops": fio_iops, "mget32_1thread_ops": eng1, "mget32_1thread_device": dev1,
                            "mget32_2threads_ops": eng2, "mget32_2threads_device": dev2}
    print("\n== cold random point reads, 4 KiB values, O_DIRECT, multi-get of 32 ==")
    print(f"fio io_uring randread 4k QD32      {fmt(fio_iops, ' IOPS')}")
    print(f"engine, 1 thread   device reads/s  {fmt(dev1)}   keys/s {fmt(eng1)}")
    print(f"engine, 2 threads  device reads/s  {fmt(dev2)}   keys/s {fmt(eng2)}")
    print(f"ratio engine device reads / fio IOPS, 1 thread:  {fmt_ratio([d / f for d, f in zip(dev1, fio_iops)])}")
    print(f"ratio engine device reads / fio IOPS, 2 threads: {fmt_ratio([d / f for d, f in zip(dev2, fio_iops)])}  (goal >= 0.80)")

    # Point reads served from the value cache, against an in-process hash map of the same data.
    cached, hashmap = [], []
    for r in range(a.runs):
        j = bench("cached-read", "--dir", cold_dir, "--keys", 10000, "--seconds", secs // 2 or 1,
                  "--cache-mb", 256, "--index-mb", 512)
        cached.append(j["ops_per_s"])
        hashmap.append(j["hash_map_ops_per_s"])
    results["cached_read"] = {"engine_ops": cached, "hash_map_ops": hashmap}
    print("\n== point reads from the value cache, one thread (ops/s per core) ==")
    print(f"engine Get (4 KiB values)          {fmt(cached, ' ops/s')}")
    print(f"std::unordered_map find + copy     {fmt(hashmap, ' ops/s')}")
    print(f"ratio engine / hash map:           {fmt_ratio([e / h for e, h in zip(cached, hashmap)])}")

    # Index inserts alone, 1M random keys, against std::map inserts of the same keys: keys with no
    # shared prefix beyond 16 bytes, and keys sharing longer ones (what node prefixes are for).
    idx = {}
    print("\n== index inserts, 1,000,000 random keys, one thread (inserts/s) ==")
    for prefix in ("key:", "counter:", "myapp:prod:session:user:"):
        ops, peer = [], []
        for r in range(a.runs):
            j = bench("index-insert", "--keys", 1_000_000, "--prefix", prefix)
            ops.append(j["ops_per_s"])
            peer.append(j["map_ops_per_s"])
        idx[prefix] = {"index_ops": ops, "map_ops": peer}
        print(f"{prefix + '<12 digits>':<36} index {fmt(ops)}   std::map {fmt(peer)}   "
              f"ratio {fmt_ratio([x / y for x, y in zip(ops, peer)])}")
    results["index_insert"] = idx

    # Durable writes (sync = always), 256-byte values, 1/8/64 concurrent writers, against fio's
    # write + fdatasync at QD1.
    fio_w, w = [], {1: [], 8: [], 64: []}
    for r in range(a.runs):
        j = fio("--name=wsync", f"--filename={os.path.join(a.dir, 'fio-write.dat')}", "--size=256M",
                "--rw=write", "--bs=4k", "--ioengine=sync", "--iodepth=1", "--fdatasync=1",
                f"--runtime={secs}", "--time_based")
        fio_w.append(j["write"]["iops"])
        for writers in w:
            d = os.path.join(a.dir, "write")
            shutil.rmtree(d, ignore_errors=True)
            w[writers].append(bench("write", "--dir", d, "--writers", writers, "--seconds", secs,
                                    "--value-size", 256)["ops_per_s"])
    results["durable_write"] = {"fio_write_fdatasync_iops": fio_w, **{f"writers_{k}": v for k, v in w.items()}}
    print("\n== durable writes (sync=always), 256-byte values ==")
    print(f"fio write 4k + fdatasync, QD1      {fmt(fio_w, ' IOPS')}")
    for writers, vals in w.items():
        print(f"engine, {writers:>2} writers                {fmt(vals, ' writes/s')}")
    print(f"ratio 1 writer / fio:              {fmt_ratio([e / f for e, f in zip(w[1], fio_w)])}")
    print(f"ratio 64 writers / 1 writer:       {fmt_ratio([x / y for x, y in zip(w[64], w[1])])}  (goal >= 10)")

    if not a.skip_recovery:
        # Restart time with many keys: after a clean shutdown (checkpoint, no replay) and after a
        # crash with no checkpoint at all (everything replayed from the log).
        n = a.recovery_keys
        index_mb = max(256, n * 112 // (1 << 20))
        rec = {}
        for mode in ("checkpoint", "replay"):
            d = os.path.join(a.dir, f"recovery-{mode}")
            shutil.rmtree(d, ignore_errors=True)
            print(f"\nloading {n:,} keys for the {mode} restart ...", flush=True)
            load = bench("load", "--dir", d, "--keys", n, "--value-size", 64, "--batch", 2000,
                         "--index-mb", index_mb, "--crash", 1 if mode == "replay" else 0)
            times = [bench("recover", "--dir", d, "--index-mb", index_mb)["seconds"] for _ in range(a.runs)]
            rec[mode] = {"load_seconds": load["seconds"], "recover_seconds": times}
            shutil.rmtree(d, ignore_errors=True)
        results["recovery"] = rec
        print(f"\n== restart with {n:,} keys (goal: ready in <= 10 s) ==")
        print(f"from a checkpoint                  {fmt([t * 1000 for t in rec['checkpoint']['recover_seconds']], ' ms')}")
        print(f"replaying the whole log            {fmt([t * 1000 for t in rec['replay']['recover_seconds']], ' ms')}")

    out_dir = os.path.join(ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "engine-" + time.strftime("%Y%m%d-%H%M%S") + ".json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nraw results: {path}")


if __name__ == "__main__":
    main()
