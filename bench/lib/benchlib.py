"""What the benchmarks under bench/ share: a throwaway Postgres cluster with eloqkv_fdw preloaded,
run as `postgres` when started as root; process-tree and machine CPU time from /proc; and the
min/median/max summaries every benchmark prints.

    import sys, os
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    from benchlib import Cluster, log, summary, fmt_ratio, ...
"""
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PG_LIB = "/usr/lib/postgresql/15/lib/eloqkv_fdw.so"
DB = "postgres"
OWNER = "postgres" if os.geteuid() == 0 else None
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg=""):
    print(msg, flush=True)


def summary(values):
    return min(values), statistics.median(values), max(values)


def fmt_ratio(values):
    if not values:
        return "n/a"
    lo, med, hi = summary(values)
    return f"{med:.2f}x ({lo:.2f}, {hi:.2f})"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def as_owner(cmd):
    return ["runuser", "-u", OWNER, "--", *cmd] if OWNER else cmd


def port_free(port):
    if port in (5432, 5433, 6379, 6380) or os.path.exists(f"/tmp/.s.PGSQL.{port}"):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(start, taken=()):
    port = start
    while port in taken or not port_free(port):
        port += 1
    return port


def file_id(path):
    """When and what the file at path is (the extension library a run measured)."""
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        return {"mtime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)),
                "size": st.st_size, "sha256_16": digest}
    except OSError as e:
        return {"error": str(e)}


def git_head():
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True)
    return r.stdout.strip() or "unknown"


# ---------------------------------------------------------------------------------------------
# /proc: CPU time of process trees and of the machine

def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    ppid = int(fields[1])
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return ppid, own, children


def children_of(ppid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[0] == ppid:
                out.append(int(d))
    return out


def tree_cpu(root_pid):
    """CPU seconds of root_pid, its live children and its reaped children (cutime/cstime).
    A child that exits between two samples moves from the live sum to the parent's cutime, so
    the difference of two samples is the CPU the tree used in between."""
    st = proc_stat(root_pid)
    if st is None:
        raise RuntimeError(f"process {root_pid} is gone")
    total = st[1] + st[2]
    for pid in children_of(root_pid):
        c = proc_stat(pid)
        if c:
            total += c[1]
    return total


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def machine_cpu():
    """(busy, iowait, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle, iowait = v[3], v[4]
    return sum(v) - idle - iowait, iowait, sum(v)


def machine_share(before, after):
    busy, iowait, total = (a - b for a, b in zip(after, before))
    return {"busy": busy / max(total, 1), "iowait": iowait / max(total, 1)}


# ---------------------------------------------------------------------------------------------
# The Postgres cluster

class Cluster:
    """A throwaway cluster in `base` (wiped if it holds one already), on a free port from
    `first_port`, Unix socket only; `conf` is appended to postgresql.conf under `header`."""

    def __init__(self, base, conf, header, first_port=5450):
        self.base = base
        self.data = os.path.join(base, "data")
        self.logfile = os.path.join(base, "postgres.log")
        self.conf = conf
        self.header = header
        self.first_port = first_port
        self.port = None

    # -- lifecycle --
    def init(self):
        if os.path.exists(self.base):
            if os.path.exists(os.path.join(self.data, "PG_VERSION")) or not os.listdir(self.base):
                self.stop(quiet=True)
                shutil.rmtree(self.base)
            else:
                sys.exit(f"{self.base} exists and does not look like a cluster directory")
        os.makedirs(self.base)
        if OWNER:
            shutil.chown(self.base, OWNER)
        os.chmod(self.base, 0o700)
        locale = "C.UTF-8" if any(l.lower().replace("-", "") == "c.utf8" for l in
                                  subprocess.run(["locale", "-a"], capture_output=True,
                                                 text=True).stdout.split()) else "C"
        r = subprocess.run(as_owner([f"{PG_BIN}/initdb", "-D", self.data, "--auth=trust", "-E", "UTF8",
                                     f"--locale={locale}", "-U", OWNER or os.environ.get("USER", "postgres")]),
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("initdb failed:\n" + r.stdout + r.stderr)
        self.port = free_port(self.first_port)
        self.set_conf({"port": self.port, "listen_addresses": "''",
                       "unix_socket_directories": f"'{self.base}'", **self.conf},
                      header=self.header)

    def set_conf(self, settings, header=None):
        """Appends settings to postgresql.conf (a later line overrides an earlier one)."""
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            if header:
                f.write(f"\n# --- {header} ---\n")
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")

    def start(self):
        r = subprocess.run(as_owner([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.logfile, "-w",
                                     "-t", "300", "start"]), capture_output=True, text=True)
        if r.returncode != 0:
            tail = ""
            if os.path.exists(self.logfile):
                with open(self.logfile) as f:
                    tail = "".join(f.readlines()[-30:])
            raise RuntimeError("postgres failed to start:\n" + r.stdout + r.stderr + tail)

    def stop(self, quiet=False):
        if not os.path.exists(os.path.join(self.data, "postmaster.pid")):
            return
        r = subprocess.run(as_owner([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t",
                                     "120", "stop"]), capture_output=True, text=True)
        if r.returncode != 0 and not quiet:
            log("pg_ctl stop failed: " + r.stdout + r.stderr)
            subprocess.run(as_owner([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                                     "stop"]), capture_output=True, text=True)

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def wait_engine_ready(self, timeout=300):
        """Seconds until engine_info().state is 'ready' (recovery runs in the maintenance worker)."""
        t0 = time.time()
        while True:
            try:
                state = self.sql("SELECT state FROM eloqkv.engine_info()")
            except RuntimeError:
                state = "?"
            if state == "ready":
                return time.time() - t0
            if state.startswith("failed") or time.time() - t0 > timeout:
                raise RuntimeError(f"eloqkv engine not ready: {state!r}")
            time.sleep(0.05)

    # -- clients --
    def conn_args(self):
        return ["-h", self.base, "-p", str(self.port), "-U", OWNER or os.environ.get("USER", "postgres")]

    def sql(self, query, aligned=False, check=True):
        cmd = [f"{PG_BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *self.conn_args(), "-d", DB]
        if not aligned:
            cmd += ["-A", "-t"]
        r = subprocess.run(cmd, input=query, capture_output=True, text=True)
        if r.returncode != 0 and check:
            raise RuntimeError(f"psql failed: {r.stderr.strip()}\n--- query:\n{query}")
        return r.stdout.strip()

    def json(self, query):
        return json.loads(self.sql(query))

    def engine(self):
        return self.json("SELECT row_to_json(e) FROM eloqkv.engine_info() e")


def log_problems(logfile):
    """ERROR/FATAL/PANIC/WARNING lines and crashed or exited workers (background workers exit
    with code 1 at a shutdown: those are not counted)."""
    bad = []
    shutting_down = False
    if os.path.exists(logfile):
        with open(logfile, errors="replace") as f:
            for line in f:
                if "shutdown request" in line:
                    shutting_down = True
                elif "ready to accept connections" in line:
                    shutting_down = False
                if re.search(r"\b(ERROR|FATAL|PANIC|WARNING):|terminated by signal", line) or (
                        "exited with exit code" in line and not shutting_down):
                    bad.append(line.rstrip())
    return bad
