#!/usr/bin/env python3
"""The RESP listener against a real Redis client library: redis-py (Debian's python3-redis).

Every assertion states what Redis 7 does (replies, error texts, option rules); a test that fails
here means the listener differs from Redis (the suite passes against redis-server 7.0 itself,
see ELOQKV_REFERENCE_REDIS). scripts/test.sh runs it as the suite "clients"; by hand:

    ELOQKV_RESP_PORT=6380 python3 test/clients/resp_clients_test.py -v

Environment:
  ELOQKV_RESP_PORT     the listener's port (default 6380)
  ELOQKV_RESP_HOST     its address (default 127.0.0.1)
  ELOQKV_PSQL          a shell prefix running psql against the same cluster, quiet, unaligned and
                       tuples-only, e.g. "psql -h /tmp/dir -p 5433 -U postgres -d postgres -XAtq";
                       the SQL checks are skipped without it
  ELOQKV_RESTART_CMD   a shell command that restarts the cluster (e.g. pg_ctl -m immediate
                       restart); the restart test is skipped without it
  ELOQKV_REFERENCE_REDIS=1   the port is a real redis-server: checks of eloqkv-only behaviour
                       (its documented limits, its SQL side) are skipped. Running the suite this
                       way checks the test's own expectations against Redis itself.

redis-py reports an error reply as redis.ResponseError; for the error codes it knows (ERR,
EXECABORT, NOAUTH, ...) it drops the code, so "-ERR syntax error" arrives as "syntax error" while
"-WRONGTYPE ..." keeps its code. assertReplyError compares the full Redis line accordingly, and
WireTests checks a few lines byte for byte on a raw socket.

Every test starts from FLUSHDB, so the suite must have the listener's keyspace to itself.
"""

import os
import select
import shlex
import socket
import subprocess
import threading
import time
import unittest

import redis
from redis.connection import BaseParser

HOST = os.environ.get("ELOQKV_RESP_HOST", "127.0.0.1")
PORT = int(os.environ.get("ELOQKV_RESP_PORT", "6380"))
PSQL = os.environ.get("ELOQKV_PSQL", "")
RESTART_CMD = os.environ.get("ELOQKV_RESTART_CMD", "")
REFERENCE = os.environ.get("ELOQKV_REFERENCE_REDIS", "") not in ("", "0")

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"


def client(decode=True, **kw):
    kw.setdefault("socket_timeout", 60)
    kw.setdefault("socket_connect_timeout", 10)
    return redis.Redis(host=HOST, port=PORT, decode_responses=decode, **kw)


def raw_client():
    """One connection, replies as redis-py parses them but without per-command callbacks."""
    c = client(single_connection_client=True)
    c.response_callbacks.clear()
    return c


def as_redis_py_reports(line):
    """The text of a Redis error line (without '-') as redis-py's ResponseError carries it."""
    code, _, rest = line.partition(" ")
    return rest if code in BaseParser.EXCEPTION_CLASSES else line


def sql(query):
    """Runs one SQL statement through ELOQKV_PSQL; returns its unaligned output, stripped."""
    out = subprocess.run(PSQL + " -c " + shlex.quote(query), shell=True, check=True,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def wait_until(condition, timeout=60):
    """Polls until condition() is true; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %d s" % timeout)
        time.sleep(0.05)


def setUpModule():
    """The listener comes up with the postmaster; the engine may still be recovering (LOADING)."""
    deadline = time.monotonic() + 60
    c = client(socket_timeout=5)
    try:
        while True:
            try:
                if c.ping() and c.set("clients:probe", "1") and c.delete("clients:probe"):
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
    finally:
        c.close()


class RespCase(unittest.TestCase):
    """A decoded client and a bytes client; an empty keyspace before every test."""

    @classmethod
    def setUpClass(cls):
        cls.r = client()
        cls.rb = client(decode=False)

    @classmethod
    def tearDownClass(cls):
        cls.r.close()
        cls.rb.close()

    def setUp(self):
        self.assertTrue(self.r.flushdb())

    def assertReplyError(self, expected_line, fn, *args, **kwargs):
        with self.assertRaises(redis.ResponseError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(str(cm.exception), as_redis_py_reports(expected_line))

    def assertTtlNear(self, key, seconds):
        ttl = self.r.ttl(key)
        self.assertTrue(seconds - 2 <= ttl <= seconds, f"TTL of {key} is {ttl}, want ~{seconds}")


class StringTests(RespCase):
    def test_set_get_and_conditions(self):
        r = self.r
        self.assertIs(r.set("k", "v1"), True)
        self.assertEqual(r.get("k"), "v1")
        self.assertIsNone(r.get("missing"))
        self.assertIsNone(r.set("k", "x", nx=True))
        self.assertIsNone(r.set("new", "x", xx=True))
        self.assertFalse(r.exists("new"))
        self.assertIs(r.set("k", "v2", xx=True), True)
        self.assertEqual(r.set("k", "v3", get=True), "v2")
        self.assertIsNone(r.set("fresh", "f", get=True))
        self.assertEqual(r.get("fresh"), "f")
        # Redis 7 allows NX with GET: the old value, and nothing written when the key exists.
        self.assertEqual(r.set("k", "nope", nx=True, get=True), "v3")
        self.assertEqual(r.get("k"), "v3")
        self.assertIsNone(r.set("nx-get", "n", nx=True, get=True))
        self.assertEqual(r.get("nx-get"), "n")
        self.assertEqual(r.set("k", "v4", xx=True, get=True), "v3")
        self.assertEqual(r.get("k"), "v4")

    def test_set_option_errors(self):
        r = self.r
        r.set("k", "v")
        self.assertReplyError(SYNTAX, r.execute_command, "SET", "k", "v", "NX", "XX")
        self.assertReplyError(SYNTAX, r.execute_command, "SET", "k", "v", "KEEPTTL", "EX", "10")
        self.assertReplyError(SYNTAX, r.execute_command, "SET", "k", "v", "EX", "10", "PX", "10")
        self.assertReplyError(SYNTAX, r.execute_command, "SET", "k", "v", "EX")
        self.assertReplyError(SYNTAX, r.execute_command, "SET", "k", "v", "BOGUS")
        self.assertReplyError("ERR invalid expire time in 'set' command", r.set, "k", "v", ex=0)
        self.assertReplyError("ERR invalid expire time in 'set' command",
                              r.execute_command, "SET", "k", "v", "PX", "-5")
        self.assertReplyError(NOT_INTEGER, r.execute_command, "SET", "k", "v", "EX", "1.5")
        self.assertReplyError("ERR wrong number of arguments for 'set' command",
                              r.execute_command, "SET", "k")
        self.assertEqual(r.get("k"), "v")
        r.hset("h", "f", "v")
        self.assertReplyError(WRONGTYPE, r.set, "h", "s", get=True)
        self.assertEqual(r.type("h"), "hash")
        self.assertIs(r.set("h", "now a string"), True)  # plain SET replaces any type
        self.assertEqual(r.type("h"), "string")

    def test_set_expiry_options(self):
        r = self.r
        self.assertTrue(r.set("ex", "v", ex=100))
        self.assertTtlNear("ex", 100)
        self.assertTrue(98_000 <= r.pttl("ex") <= 100_000)
        self.assertTrue(r.set("px", "v", px=1000))
        px_set = time.monotonic()
        self.assertTrue(0 < r.pttl("px") <= 1000)
        at = int(time.time()) + 1000
        self.assertTrue(r.set("exat", "v", exat=at))
        self.assertEqual(r.expiretime("exat"), at)
        at_ms = int(time.time() * 1000) + 500_000
        self.assertTrue(r.set("pxat", "v", pxat=at_ms))
        self.assertEqual(r.execute_command("PEXPIRETIME", "pxat"), at_ms)
        # KEEPTTL keeps it; a plain SET drops it.
        self.assertTrue(r.set("ex", "w", keepttl=True))
        self.assertTtlNear("ex", 100)
        self.assertTrue(r.set("ex", "z"))
        self.assertEqual(r.ttl("ex"), -1)
        # KEEPTTL on a key without expiry, and EXAT in the past (the key is gone at once).
        self.assertTrue(r.set("plain", "v", keepttl=True))
        self.assertEqual(r.ttl("plain"), -1)
        self.assertTrue(r.set("past", "v", exat=1))
        self.assertIsNone(r.get("past"))
        self.assertEqual(r.exists("past"), 0)
        time.sleep(max(0.0, px_set + 1.1 - time.monotonic()))
        self.assertIsNone(r.get("px"))
        self.assertEqual(r.ttl("px"), -2)

    def test_getex(self):
        r = self.r
        r.set("g", "v")
        self.assertEqual(r.getex("g"), "v")
        self.assertEqual(r.ttl("g"), -1)
        self.assertEqual(r.getex("g", ex=100), "v")
        self.assertTtlNear("g", 100)
        self.assertEqual(r.getex("g", persist=True), "v")
        self.assertEqual(r.ttl("g"), -1)
        self.assertEqual(r.getex("g", px=100_000), "v")
        self.assertTrue(98_000 <= r.pttl("g") <= 100_000)
        at = int(time.time()) + 500
        self.assertEqual(r.getex("g", exat=at), "v")
        self.assertEqual(r.expiretime("g"), at)
        self.assertIsNone(r.getex("missing", ex=10))
        self.assertFalse(r.exists("missing"))
        # EXAT in the past: the value is returned and the key deleted.
        r.set("g2", "v2")
        self.assertEqual(r.getex("g2", exat=1), "v2")
        self.assertFalse(r.exists("g2"))
        self.assertReplyError(SYNTAX, r.execute_command, "GETEX", "g", "PERSIST", "EX", "10")
        self.assertReplyError(SYNTAX, r.execute_command, "GETEX", "g", "EX")
        self.assertReplyError("ERR invalid expire time in 'getex' command",
                              r.execute_command, "GETEX", "g", "EX", "0")
        r.hset("h", "f", "v")
        self.assertReplyError(WRONGTYPE, r.getex, "h", ex=10)

    def test_setnx_setex_getset_getdel(self):
        r = self.r
        self.assertIs(r.setnx("n", "1"), True)
        self.assertIs(r.setnx("n", "2"), False)
        self.assertEqual(r.get("n"), "1")
        self.assertTrue(r.setex("se", 100, "v"))
        self.assertTtlNear("se", 100)
        self.assertTrue(r.psetex("pse", 100_000, "v"))
        self.assertTrue(98_000 <= r.pttl("pse") <= 100_000)
        self.assertReplyError("ERR invalid expire time in 'setex' command",
                              r.execute_command, "SETEX", "se", "0", "v")
        self.assertReplyError("ERR invalid expire time in 'psetex' command",
                              r.execute_command, "PSETEX", "se", "-1", "v")
        self.assertEqual(r.getset("se", "new"), "v")
        self.assertEqual(r.ttl("se"), -1)  # GETSET drops the expiry, as SET does
        self.assertIsNone(r.getset("gs-missing", "x"))
        self.assertEqual(r.getdel("se"), "new")
        self.assertFalse(r.exists("se"))
        self.assertIsNone(r.getdel("se"))

    def test_incr_family(self):
        r = self.r
        self.assertEqual(r.incr("c"), 1)
        self.assertEqual(r.incrby("c", 41), 42)
        self.assertEqual(r.decr("c"), 41)
        self.assertEqual(r.decrby("c", 1), 40)
        self.assertEqual(r.incrby("c", -50), -10)
        self.assertEqual(r.get("c"), "-10")
        for bad in ("abc", "1.5", " 1", "01", "", "99999999999999999999"):
            r.set("bad", bad)
            self.assertReplyError(NOT_INTEGER, r.incr, "bad")
        self.assertReplyError(NOT_INTEGER, r.execute_command, "INCRBY", "c", "x")
        r.set("max", "9223372036854775807")
        self.assertReplyError("ERR increment or decrement would overflow", r.incr, "max")
        r.set("min", "-9223372036854775808")
        self.assertReplyError("ERR increment or decrement would overflow", r.decr, "min")
        self.assertReplyError("ERR decrement would overflow",
                              r.execute_command, "DECRBY", "c", "-9223372036854775808")
        self.assertEqual(r.get("max"), "9223372036854775807")
        # A counter keeps its expiry.
        r.set("ttl-counter", "5", ex=100)
        self.assertEqual(r.incr("ttl-counter"), 6)
        self.assertTtlNear("ttl-counter", 100)

    def test_incrbyfloat(self):
        r = self.r
        # The examples of Redis's documentation, compared as the stored text.
        r.set("f", "10.50")
        self.assertAlmostEqual(r.incrbyfloat("f", 0.1), 10.6)
        self.assertEqual(r.get("f"), "10.6")
        r.incrbyfloat("f", -5)
        self.assertEqual(r.get("f"), "5.6")
        r.set("f", "5.0e3")
        r.incrbyfloat("f", 2.0e2)
        self.assertEqual(r.get("f"), "5200")
        self.assertEqual(r.execute_command("INCRBYFLOAT", "new", "3"), 3.0)
        self.assertEqual(r.get("new"), "3")
        self.assertEqual(r.execute_command("INCRBYFLOAT", "new", "-3.0"), 0.0)
        self.assertEqual(r.get("new"), "0")
        r.set("text", "abc")
        self.assertReplyError(NOT_FLOAT, r.incrbyfloat, "text", 1)
        self.assertReplyError(NOT_FLOAT, r.execute_command, "INCRBYFLOAT", "f", "x")
        self.assertReplyError("ERR increment would produce NaN or Infinity",
                              r.execute_command, "INCRBYFLOAT", "f", "inf")
        self.assertEqual(r.get("f"), "5200")
        r.set("tf", "1", ex=100)
        r.incrbyfloat("tf", 0.5)
        self.assertTtlNear("tf", 100)

    def test_append_strlen(self):
        r = self.r
        self.assertEqual(r.append("a", "Hello"), 5)
        self.assertEqual(r.append("a", " World"), 11)
        self.assertEqual(r.get("a"), "Hello World")
        self.assertEqual(r.strlen("a"), 11)
        self.assertEqual(r.strlen("missing"), 0)
        r.set("ta", "x", ex=100)
        r.append("ta", "y")
        self.assertTtlNear("ta", 100)

    def test_getrange_setrange(self):
        r = self.r
        r.set("s", "Hello World")
        cases = {(0, 4): "Hello", (-5, -1): "World", (6, 100): "World", (5, 3): "",
                 (-1, -5): "", (-100, 2): "Hel", (0, -1): "Hello World", (20, 30): "",
                 (10, 10): "d", (-1, -1): "d"}
        for (start, end), want in cases.items():
            self.assertEqual(r.getrange("s", start, end), want, (start, end))
        self.assertEqual(r.getrange("missing", 0, -1), "")
        self.assertReplyError(NOT_INTEGER, r.execute_command, "GETRANGE", "s", "a", "1")
        self.assertEqual(r.setrange("s", 6, "Redis"), 11)
        self.assertEqual(r.get("s"), "Hello Redis")
        self.assertEqual(r.setrange("s", 11, "!"), 12)
        self.assertEqual(r.get("s"), "Hello Redis!")
        self.assertEqual(r.setrange("pad", 3, "ab"), 5)
        self.assertEqual(self.rb.get("pad"), b"\x00\x00\x00ab")
        self.assertEqual(r.setrange("s", 0, ""), 12)
        self.assertEqual(r.setrange("empty", 5, ""), 0)
        self.assertFalse(r.exists("empty"))
        self.assertReplyError("ERR offset is out of range", r.setrange, "s", -1, "x")
        self.assertReplyError("ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                              r.setrange, "big", 512 * 1024 * 1024, "x")
        self.assertFalse(r.exists("big"))

    def test_mset_mget_msetnx(self):
        r = self.r
        self.assertIs(r.mset({"a": "1", "b": "2", "c": "3"}), True)
        r.hset("h", "f", "v")
        self.assertEqual(r.mget("a", "missing", "b", "h", "c"), ["1", None, "2", None, "3"])
        self.assertIs(r.msetnx({"c": "x", "d": "4"}), False)
        self.assertEqual(r.mget("c", "d"), ["3", None])
        self.assertIs(r.msetnx({"d": "4", "e": "5"}), True)
        self.assertEqual(r.mget("d", "e"), ["4", "5"])
        self.assertEqual(r.execute_command("MSETNX", "dup", "1", "dup", "2"), 1)
        self.assertEqual(r.get("dup"), "2")
        self.assertIs(r.execute_command("MSET", "a", "x", "a", "y"), True)
        self.assertEqual(r.get("a"), "y")
        # MSET overwrites a key of another type, as SET does, and drops expiries.
        r.set("t", "v", ex=100)
        r.mset({"h": "str", "t": "w"})
        self.assertEqual(r.type("h"), "string")
        self.assertEqual(r.ttl("t"), -1)
        self.assertReplyError("ERR wrong number of arguments for 'mset' command",
                              r.execute_command, "MSET", "a", "1", "b")
        self.assertReplyError("ERR wrong number of arguments for 'msetnx' command",
                              r.execute_command, "MSETNX", "a")


class KeyTests(RespCase):
    def test_expire_conditions(self):
        r = self.r
        r.set("k", "v")
        self.assertIs(r.expire("missing", 100), False)
        self.assertIs(r.expire("k", 100, xx=True), False)
        self.assertEqual(r.ttl("k"), -1)
        self.assertIs(r.expire("k", 100, gt=True), False)  # no expiry counts as infinite
        self.assertIs(r.expire("k", 100, nx=True), True)
        self.assertIs(r.expire("k", 200, nx=True), False)
        self.assertTtlNear("k", 100)
        self.assertIs(r.expire("k", 50, gt=True), False)
        self.assertIs(r.expire("k", 200, gt=True), True)
        self.assertTtlNear("k", 200)
        self.assertIs(r.expire("k", 300, lt=True), False)
        self.assertIs(r.expire("k", 150, lt=True), True)
        self.assertTtlNear("k", 150)
        self.assertIs(r.expire("k", 120, xx=True), True)
        self.assertTtlNear("k", 120)
        self.assertIs(r.persist("k"), True)
        self.assertIs(r.persist("k"), False)
        self.assertIs(r.persist("missing"), False)
        self.assertEqual(r.ttl("k"), -1)
        self.assertIs(r.expire("k", 80, lt=True), True)  # LT on a key without expiry applies
        self.assertTtlNear("k", 80)
        self.assertReplyError("ERR NX and XX, GT or LT options at the same time are not compatible",
                              r.expire, "k", 10, nx=True, gt=True)
        self.assertReplyError("ERR NX and XX, GT or LT options at the same time are not compatible",
                              r.expire, "k", 10, nx=True, xx=True)
        self.assertReplyError("ERR GT and LT options at the same time are not compatible",
                              r.expire, "k", 10, gt=True, lt=True)
        self.assertReplyError("ERR Unsupported option FOO", r.execute_command, "EXPIRE", "k",
                              "10", "FOO")
        self.assertReplyError(NOT_INTEGER, r.execute_command, "EXPIRE", "k", "ten")
        self.assertReplyError("ERR invalid expire time in 'expire' command",
                              r.execute_command, "EXPIRE", "k", "9223372036854775807")
        self.assertReplyError("ERR invalid expire time in 'pexpire' command",
                              r.execute_command, "PEXPIRE", "k", "9223372036854775807")
        self.assertTtlNear("k", 80)

    def test_expire_variants_ttl_and_deletion(self):
        r = self.r
        r.set("k", "v")
        self.assertEqual(r.ttl("missing"), -2)
        self.assertEqual(r.pttl("missing"), -2)
        self.assertEqual(r.ttl("k"), -1)
        self.assertEqual(r.pttl("k"), -1)
        self.assertEqual(r.expiretime("k"), -1)
        self.assertEqual(r.expiretime("missing"), -2)
        self.assertIs(r.pexpire("k", 100_000), True)
        self.assertTrue(98_000 <= r.pttl("k") <= 100_000)
        at = int(time.time()) + 3600
        self.assertIs(r.expireat("k", at), True)
        self.assertEqual(r.expiretime("k"), at)
        self.assertEqual(r.execute_command("PEXPIRETIME", "k"), at * 1000)
        at_ms = (int(time.time()) + 7200) * 1000 + 700
        self.assertIs(r.pexpireat("k", at_ms), True)
        self.assertEqual(r.execute_command("PEXPIRETIME", "k"), at_ms)
        self.assertEqual(r.expiretime("k"), at_ms // 1000 + 1)  # rounded, as TTL is
        self.assertTrue(7199 <= r.ttl("k") <= 7201)
        self.assertIs(r.expireat("k", at_ms // 1000 + 10, gt=True), True)
        # A hash expires like a string.
        r.hset("h", "f", "v")
        self.assertIs(r.expire("h", 100), True)
        self.assertTtlNear("h", 100)
        r.hset("h", "g", "w")  # changing a hash keeps its expiry
        self.assertTtlNear("h", 100)
        # An expiry in the past deletes the key; a short one lets it lapse.
        self.assertIs(r.expire("k", -1), True)
        self.assertEqual(r.exists("k"), 0)
        r.set("soon", "v")
        self.assertIs(r.pexpire("soon", 100), True)
        time.sleep(0.35)
        self.assertIsNone(r.get("soon"))
        self.assertEqual(r.ttl("soon"), -2)
        self.assertEqual(r.exists("soon"), 0)
        self.assertIs(r.expire("soon", 100), False)

    def test_scan_iter_visits_every_key_once(self):
        r = self.r
        strings = {f"scan:s:{i:04d}" for i in range(500)}
        hashes = {f"scan:h:{i:04d}" for i in range(300)}
        others = {f"other:{i}" for i in range(50)}
        p = r.pipeline(transaction=False)
        for k in strings | others:
            p.set(k, "v")
        for k in hashes:
            p.hset(k, "f", "v")
        p.execute()
        seen = list(r.scan_iter(match="scan:*", count=37))
        self.assertEqual(len(seen), len(set(seen)), "a key came back twice")
        self.assertEqual(set(seen), strings | hashes)
        seen = list(r.scan_iter(count=1000))
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(set(seen), strings | hashes | others)
        seen = list(r.scan_iter(match="scan:*", count=50, _type="hash"))
        self.assertEqual(sorted(seen), sorted(hashes))
        seen = list(r.scan_iter(count=64, _type="string"))
        self.assertEqual(sorted(seen), sorted(strings | others))
        self.assertEqual(list(r.scan_iter(match="nothing:*", count=100)), [])
        self.assertEqual(list(r.scan_iter(_type="list")), [])
        # The plain SCAN reply: cursor, then a page; a full walk ends at cursor 0.
        cursor, page = r.scan(0, match="other:*", count=1000)
        self.assertEqual((cursor, sorted(page)), (0, sorted(others)))
        self.assertReplyError("ERR invalid cursor", r.execute_command, "SCAN", "abc")
        self.assertReplyError(SYNTAX, r.execute_command, "SCAN", "0", "COUNT", "0")
        self.assertReplyError(SYNTAX, r.execute_command, "SCAN", "0", "MATCH")
        self.assertReplyError(SYNTAX, r.execute_command, "SCAN", "0", "BOGUS", "1")
        self.assertReplyError(NOT_INTEGER, r.execute_command, "SCAN", "0", "COUNT", "x")

    def test_keys_patterns(self):
        r = self.r
        r.mset({"user:a": 1, "user:b": 2, "user:c": 3, "user:ab": 4, "user:*": 5, "other": 6})
        self.assertEqual(sorted(r.keys("*")),
                         sorted(["user:a", "user:b", "user:c", "user:ab", "user:*", "other"]))
        self.assertEqual(sorted(r.keys("user:?")), sorted(["user:a", "user:b", "user:c", "user:*"]))
        self.assertEqual(sorted(r.keys("user:[ab]*")), sorted(["user:a", "user:b", "user:ab"]))
        self.assertEqual(sorted(r.keys("user:[^a]")), sorted(["user:b", "user:c", "user:*"]))
        self.assertEqual(r.keys("user:\\*"), ["user:*"])
        self.assertEqual(sorted(r.keys("*b")), sorted(["user:b", "user:ab"]))
        self.assertEqual(r.keys("nomatch*"), [])

    def test_rename(self):
        r = self.r
        r.set("src", "v", ex=100)
        self.assertIs(r.rename("src", "dst"), True)
        self.assertEqual(r.get("dst"), "v")
        self.assertEqual(r.exists("src"), 0)
        self.assertTtlNear("dst", 100)  # the expiry moves with the value
        self.assertReplyError("ERR no such key", r.rename, "src", "x")
        self.assertReplyError("ERR no such key", r.rename, "src", "src")
        self.assertIs(r.rename("dst", "dst"), True)
        self.assertEqual(r.get("dst"), "v")
        r.hset("h", mapping={"f": "1"})
        self.assertIs(r.rename("h", "dst"), True)  # replaces a key of another type
        self.assertEqual(r.type("dst"), "hash")
        self.assertEqual(r.hgetall("dst"), {"f": "1"})
        self.assertEqual(r.ttl("dst"), -1)
        r.set("other", "o")
        self.assertIs(r.renamenx("dst", "other"), False)
        self.assertIs(r.renamenx("dst", "dst"), False)
        self.assertIs(r.renamenx("dst", "h2"), True)
        self.assertEqual(r.hgetall("h2"), {"f": "1"})
        self.assertReplyError("ERR no such key", r.renamenx, "dst", "x")

    def test_type_exists_del_unlink(self):
        r = self.r
        r.set("s", "v")
        r.hset("h", "f", "v")
        self.assertEqual(r.type("s"), "string")
        self.assertEqual(r.type("h"), "hash")
        self.assertEqual(r.type("missing"), "none")
        self.assertEqual(r.exists("s", "h", "s", "missing"), 3)
        self.assertEqual(r.exists("missing"), 0)
        self.assertEqual(r.touch("s", "h", "missing"), 2)
        self.assertEqual(r.delete("s", "missing", "s"), 1)
        r.mset({"u1": 1, "u2": 2})
        self.assertEqual(r.unlink("u1", "u2", "h", "missing"), 3)
        self.assertEqual(r.exists("s", "h", "u1", "u2"), 0)
        self.assertReplyError("ERR wrong number of arguments for 'del' command",
                              r.execute_command, "DEL")

    def test_dbsize_flushdb_flushall(self):
        r = self.r
        self.assertEqual(r.dbsize(), 0)
        r.mset({f"d{i}": i for i in range(10)})
        r.hset("dh", "f", "v")
        self.assertEqual(r.dbsize(), 11)
        self.assertIs(r.flushdb(), True)
        self.assertEqual(r.dbsize(), 0)
        self.assertEqual(r.keys("*"), [])
        self.assertIsNone(r.get("d1"))
        r.set("again", "1")
        self.assertEqual(r.dbsize(), 1)
        self.assertIs(r.flushdb(asynchronous=True), True)
        self.assertEqual(r.dbsize(), 0)
        r.set("again", "1")
        self.assertIs(r.flushall(), True)
        self.assertEqual(r.dbsize(), 0)
        self.assertReplyError(SYNTAX, r.execute_command, "FLUSHDB", "BOGUS")


class HashTests(RespCase):
    def test_hset_multi_and_reads(self):
        r = self.r
        self.assertEqual(r.hset("h", mapping={"name": "ada", "plan": "pro", "n": "1"}), 3)
        self.assertEqual(r.hset("h", "name", "grace", mapping={"plan": "free", "x": "y"}), 1)
        self.assertEqual(r.hgetall("h"), {"name": "grace", "plan": "free", "n": "1", "x": "y"})
        self.assertEqual(r.hget("h", "name"), "grace")
        self.assertIsNone(r.hget("h", "nope"))
        self.assertIsNone(r.hget("missing", "f"))
        self.assertEqual(r.hmget("h", ["name", "nope", "n"]), ["grace", None, "1"])
        self.assertEqual(sorted(r.hkeys("h")), ["n", "name", "plan", "x"])
        self.assertEqual(sorted(r.hvals("h")), ["1", "free", "grace", "y"])
        self.assertEqual(r.hlen("h"), 4)
        self.assertEqual(r.hlen("missing"), 0)
        self.assertIs(r.hexists("h", "plan"), True)
        self.assertIs(r.hexists("h", "nope"), False)
        self.assertEqual(r.hstrlen("h", "name"), 5)
        self.assertEqual(r.hstrlen("h", "nope"), 0)
        self.assertEqual(r.hgetall("missing"), {})
        self.assertIs(r.execute_command("HMSET", "h2", "a", "1", "b", "2"), True)
        self.assertEqual(r.hgetall("h2"), {"a": "1", "b": "2"})
        self.assertEqual(r.hdel("h", "plan", "nope", "x"), 2)
        self.assertEqual(r.hdel("h", "nope"), 0)
        self.assertEqual(r.hdel("h", "name", "n"), 2)
        self.assertEqual(r.exists("h"), 0)  # a hash without fields is gone
        self.assertEqual(r.type("h"), "none")
        self.assertReplyError("ERR wrong number of arguments for 'hset' command",
                              r.execute_command, "HSET", "h", "f")
        self.assertReplyError("ERR wrong number of arguments for 'hset' command",
                              r.execute_command, "HSET", "h", "f", "v", "g")
        self.assertReplyError("ERR wrong number of arguments for 'hmset' command",
                              r.execute_command, "HMSET", "h", "f", "v", "g")

    def test_hsetnx(self):
        r = self.r
        self.assertEqual(r.hsetnx("h", "f", "1"), 1)
        self.assertEqual(r.hsetnx("h", "f", "2"), 0)
        self.assertEqual(r.hget("h", "f"), "1")
        self.assertEqual(r.hsetnx("h", "g", "3"), 1)
        self.assertEqual(r.hgetall("h"), {"f": "1", "g": "3"})

    def test_hincrby(self):
        r = self.r
        self.assertEqual(r.hincrby("h", "n", 5), 5)
        self.assertEqual(r.hincrby("h", "n", -7), -2)
        self.assertEqual(r.hget("h", "n"), "-2")
        r.hset("h", "text", "abc")
        self.assertReplyError("ERR hash value is not an integer", r.hincrby, "h", "text", 1)
        self.assertReplyError(NOT_INTEGER, r.execute_command, "HINCRBY", "h", "n", "1.5")
        r.hset("h", "max", "9223372036854775807")
        self.assertReplyError("ERR increment or decrement would overflow",
                              r.hincrby, "h", "max", 1)
        self.assertEqual(r.hget("h", "max"), "9223372036854775807")

    def test_hincrbyfloat(self):
        r = self.r
        r.hset("h", "f", "10.50")
        self.assertAlmostEqual(r.hincrbyfloat("h", "f", 0.1), 10.6)
        self.assertEqual(r.hget("h", "f"), "10.6")
        r.hincrbyfloat("h", "f", -5)
        self.assertEqual(r.hget("h", "f"), "5.6")
        r.hset("h", "e", "5.0e3")
        r.hincrbyfloat("h", "e", 2.0e2)
        self.assertEqual(r.hget("h", "e"), "5200")
        self.assertEqual(r.hincrbyfloat("h", "new", 2.5), 2.5)
        self.assertEqual(r.hget("h", "new"), "2.5")
        r.hset("h", "text", "abc")
        self.assertReplyError("ERR hash value is not a float", r.hincrbyfloat, "h", "text", 1)
        self.assertReplyError(NOT_FLOAT, r.execute_command, "HINCRBYFLOAT", "h", "f", "x")
        self.assertEqual(r.hget("h", "f"), "5.6")

    def test_hscan(self):
        r = self.r
        fields = {f"f{i:03d}": str(i) for i in range(100)}
        r.hset("h", mapping=fields)
        got = list(r.hscan_iter("h", count=10))
        self.assertEqual(len(got), 100)
        self.assertEqual(dict(got), fields)
        got = dict(r.hscan_iter("h", match="f01*"))
        self.assertEqual(got, {k: v for k, v in fields.items() if k.startswith("f01")})
        cursor, page = r.hscan("missing", 0)
        self.assertEqual((cursor, page), (0, {}))
        self.assertReplyError("ERR invalid cursor", r.execute_command, "HSCAN", "h", "x")
        self.assertReplyError(SYNTAX, r.execute_command, "HSCAN", "h", "0", "COUNT", "0")
        r.set("s", "v")
        self.assertReplyError(WRONGTYPE, r.hscan, "s", 0)

    def test_large_hash_is_kept_per_field_and_its_records_go_with_it(self):
        r = self.r
        fields = {f"f{i:04d}": "x" * (i % 50) for i in range(1000)}
        for i in range(0, 1000, 100):  # written in slices: the hash grows past the inline limit
            r.hset("big", mapping=dict(list(fields.items())[i:i + 100]))
        self.assertEqual(r.object("encoding", "big"), "hashtable")
        self.assertEqual(r.hlen("big"), 1000)
        self.assertEqual(r.hgetall("big"), fields)
        self.assertEqual(r.hget("big", "f0777"), fields["f0777"])
        pages = 0
        seen = {}
        cursor = 0
        while True:
            cursor, page = r.hscan("big", cursor, count=100)
            pages += 1
            self.assertFalse(set(page) & set(seen), "a field came twice")
            seen.update(page)
            if cursor == 0:
                break
        self.assertEqual(seen, fields)
        self.assertGreaterEqual(pages, 10)
        keyspace = r.config_get("eloqkv-default-keyspace")["eloqkv-default-keyspace"]
        query = f"SELECT keys FROM eloqkv.keyspace_stats() WHERE name = '@hash_fields:{keyspace}'"
        sql("CREATE EXTENSION IF NOT EXISTS eloqkv_fdw")
        self.assertEqual(sql(query), "1000")
        r.rename("big", "moved")
        self.assertEqual(r.hgetall("moved"), fields)
        r.delete("moved")
        # The maintenance worker sweeps the dead hashes' records (a pass every 10 s).
        deadline = time.monotonic() + 60
        while sql(query) != "0" and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertEqual(sql(query), "0")


class WrongTypeTests(RespCase):
    def reply_of(self, args):
        try:
            return repr(self.r.execute_command(*args))
        except redis.RedisError as e:
            return f"{type(e).__name__}: {e}"

    def test_string_commands_on_a_hash(self):
        r = self.r
        r.hset("h", mapping={"f": "1"})
        for args in (["GET", "h"], ["APPEND", "h", "x"], ["INCR", "h"], ["INCRBY", "h", "2"],
                     ["DECR", "h"], ["INCRBYFLOAT", "h", "1.5"], ["STRLEN", "h"],
                     ["GETRANGE", "h", "0", "1"], ["SETRANGE", "h", "0", "x"],
                     ["GETSET", "h", "x"], ["GETDEL", "h"], ["GETEX", "h"],
                     ["SET", "h", "x", "GET"]):
            self.assertEqual(self.reply_of(args), "ResponseError: " + WRONGTYPE, args)
        self.assertEqual(r.hgetall("h"), {"f": "1"})
        self.assertEqual(r.mget("h"), [None])  # MGET answers nil rather than an error

    def test_hash_commands_on_a_string(self):
        r = self.r
        r.set("s", "v")
        for args in (["HGET", "s", "f"], ["HSET", "s", "f", "v"], ["HSETNX", "s", "f", "v"],
                     ["HMSET", "s", "f", "v"], ["HGETALL", "s"], ["HMGET", "s", "f"],
                     ["HKEYS", "s"], ["HVALS", "s"], ["HLEN", "s"], ["HDEL", "s", "f"],
                     ["HEXISTS", "s", "f"], ["HSTRLEN", "s", "f"], ["HINCRBY", "s", "f", "1"],
                     ["HINCRBYFLOAT", "s", "f", "1.5"], ["HSCAN", "s", "0"]):
            self.assertEqual(self.reply_of(args), "ResponseError: " + WRONGTYPE, args)
        self.assertEqual(r.get("s"), "v")
        self.assertEqual(r.type("s"), "string")


class PipelineTests(RespCase):
    def test_transaction_pipeline(self):
        r = self.r
        p = r.pipeline(transaction=True)
        p.set("a", 1).incr("a").incrby("a", 10).get("a").hset("a", "f", "v").get("a")
        res = p.execute(raise_on_error=False)
        self.assertEqual(res[:4], [True, 2, 12, "12"])
        self.assertIsInstance(res[4], redis.ResponseError)
        self.assertEqual(str(res[4]), WRONGTYPE)
        self.assertEqual(res[5], "12")  # Redis runs the rest of EXEC after a runtime error
        p = r.pipeline(transaction=True)
        p.set("b", "1").hget("b", "f").incr("b")
        with self.assertRaises(redis.ResponseError) as cm:
            p.execute()
        self.assertEqual(str(cm.exception),
                         "Command # 2 (HGET b f) of pipeline caused error: " + WRONGTYPE)
        self.assertEqual(r.get("b"), "2")

    def test_transaction_refused_at_queue_time_applies_nothing(self):
        r = self.r
        p = r.pipeline(transaction=True)
        p.set("q1", "1").execute_command("NOSUCHCMD", "x").set("q2", "2")
        with self.assertRaises(redis.ResponseError) as cm:
            p.execute()
        self.assertEqual(str(cm.exception),
                         "Command # 2 (NOSUCHCMD x) of pipeline caused error: "
                         "unknown command 'NOSUCHCMD', with args beginning with: 'x' ")
        self.assertEqual(r.exists("q1", "q2"), 0)
        p = r.pipeline(transaction=True)
        p.set("q1", "1").execute_command("GET").set("q2", "2")
        with self.assertRaises(redis.ResponseError) as cm:
            p.execute()
        self.assertEqual(str(cm.exception), "Command # 2 (GET) of pipeline caused error: "
                         "wrong number of arguments for 'get' command")
        self.assertEqual(r.exists("q1", "q2"), 0)
        self.assertTrue(r.ping())

    def test_plain_pipeline_of_1000_commands(self):
        r = self.r
        p = r.pipeline(transaction=False)
        for i in range(500):
            p.set(f"p:{i}", i)
        for _ in range(249):
            p.incr("pc")
        p.hset("p:0", "f", "v")  # an error in the middle does not stop the rest
        for i in range(250):
            p.get(f"p:{i * 2}")
        self.assertEqual(len(p), 1000)
        res = p.execute(raise_on_error=False)
        self.assertEqual(len(res), 1000)
        self.assertEqual(res[:500], [True] * 500)
        self.assertEqual(res[500:749], list(range(1, 250)))
        self.assertIsInstance(res[749], redis.ResponseError)
        self.assertEqual(str(res[749]), WRONGTYPE)
        self.assertEqual(res[750:], [str(i * 2) for i in range(250)])
        self.assertEqual(r.dbsize(), 501)

    def test_transactions_are_atomic_for_concurrent_readers(self):
        """A writer's MULTI/EXEC of two keys is never seen half done by another client's
        MULTI/EXEC of reads."""
        w, rd = client(), client()
        w.mset({"x": 0, "y": 0})
        stop = threading.Event()
        errors = []

        def writer():
            i = 0
            try:
                while not stop.is_set():
                    i += 1
                    w.pipeline(transaction=True).set("x", i).set("y", i).execute()
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        t = threading.Thread(target=writer)
        t.start()
        torn = []
        try:
            deadline = time.monotonic() + 2.0
            reads = 0
            while time.monotonic() < deadline:
                x, y = rd.pipeline(transaction=True).get("x").get("y").execute()
                reads += 1
                if x != y:
                    torn.append((x, y))
        finally:
            stop.set()
            t.join()
            w.close()
            rd.close()
        self.assertEqual(errors, [])
        self.assertGreater(reads, 10)
        self.assertEqual(torn, [], f"{len(torn)} of {reads} reads saw half a transaction")

    def test_watch_conflict_raises_watch_error(self):
        r = self.r
        other = client()
        try:
            r.set("w", "1")
            with r.pipeline() as p:
                p.watch("w")
                self.assertEqual(p.get("w"), "1")
                self.assertTrue(other.set("w", "2"))
                p.multi()
                p.set("w", "mine")
                with self.assertRaises(redis.WatchError):
                    p.execute()
            self.assertEqual(r.get("w"), "2")
            # Writing the same value still counts as a change.
            with r.pipeline() as p:
                p.watch("w")
                other.set("w", "2")
                p.multi()
                p.set("w", "mine")
                with self.assertRaises(redis.WatchError):
                    p.execute()
            # A watched key that another client creates, or deletes.
            with r.pipeline() as p:
                p.watch("absent")
                other.set("absent", "x")
                p.multi()
                p.set("absent", "mine")
                with self.assertRaises(redis.WatchError):
                    p.execute()
            with r.pipeline() as p:
                p.watch("absent")
                other.delete("absent")
                p.multi()
                p.set("absent", "mine")
                with self.assertRaises(redis.WatchError):
                    p.execute()
            # Missing when watched and missing again at EXEC, but created and deleted (or
            # created with a TTL that ran out) in between: a change, as in Redis. Both the EXEC
            # that writes and the one that only reads.
            for touch in (lambda: (other.set("aba", "x"), other.delete("aba")),
                          lambda: other.set("aba", "x", px=30) and time.sleep(0.1)):
                for writes in (True, False):
                    with r.pipeline() as p:
                        p.watch("aba")
                        touch()
                        self.assertIsNone(p.get("aba"))
                        p.multi()
                        if writes:
                            p.set("aba", "mine")
                        else:
                            p.get("other-key")
                        with self.assertRaises(redis.WatchError):
                            p.execute()
                    self.assertIsNone(r.get("aba"))
            def set_untouched(key):
                with r.pipeline() as p:
                    p.watch(key)
                    p.multi()
                    p.set(key, "mine")
                    self.assertEqual(p.execute(), [True])
                self.assertEqual(r.get(key), "mine")
            # A key that expired before the WATCH was not touched after it.
            other.set("aba", "x", px=30)
            time.sleep(0.1)
            set_untouched("aba")
            # Unchanged: EXEC applies. UNWATCH: another client's write no longer matters.
            set_untouched("w")
            with r.pipeline() as p:
                p.watch("w")
                other.set("w", "theirs")
                p.unwatch()
                p.multi()
                p.incr("wc")
                self.assertEqual(p.execute(), [1])
        finally:
            other.close()

    def test_multi_exec_discard_errors(self):
        c = raw_client()
        try:
            self.assertReplyError("ERR EXEC without MULTI", c.execute_command, "EXEC")
            self.assertReplyError("ERR DISCARD without MULTI", c.execute_command, "DISCARD")
            self.assertEqual(c.execute_command("MULTI"), "OK")
            self.assertReplyError("ERR MULTI calls can not be nested", c.execute_command, "MULTI")
            self.assertReplyError("ERR WATCH inside MULTI is not allowed",
                                  c.execute_command, "WATCH", "w")
            self.assertEqual(c.execute_command("SET", "d", "1"), "QUEUED")
            self.assertEqual(c.execute_command("DISCARD"), "OK")
            self.assertEqual(c.exists("d"), 0)
            self.assertEqual(c.execute_command("MULTI"), "OK")
            self.assertEqual(c.execute_command("SET", "d", "1"), "QUEUED")
            self.assertEqual(c.execute_command("INCR", "d"), "QUEUED")
            self.assertEqual(c.execute_command("EXEC"), ["OK", 2])
        finally:
            c.close()

    def test_optimistic_transactions_from_two_threads_lose_nothing(self):
        """redis-py's transaction() helper (WATCH, GET, MULTI, SET, EXEC, retry on WatchError)
        from two clients at once: every increment lands exactly once."""
        self.r.set("wc", "0")
        failures = []

        def work():
            c = client()
            try:
                def bump(pipe):
                    v = int(pipe.get("wc"))
                    pipe.multi()
                    pipe.set("wc", v + 1)
                for _ in range(40):
                    c.transaction(bump, "wc")
            except Exception as e:  # noqa: BLE001
                failures.append(e)
            finally:
                c.close()

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertEqual(self.r.get("wc"), "120")


class ConnectionTests(RespCase):
    def test_client_setname_getname_id(self):
        c = client()
        try:
            self.assertIsNone(c.client_getname())
            cid = c.client_id()
            self.assertIsInstance(cid, int)
            self.assertGreater(cid, 0)
            self.assertIs(c.client_setname("my-client"), True)
            self.assertEqual(c.client_getname(), "my-client")
            info = c.client_info()
            self.assertEqual(int(info["id"]), cid)
            self.assertEqual(info["name"], "my-client")
            self.assertEqual(info["db"], 0)
            self.assertReplyError(
                "ERR Client names cannot contain spaces, newlines or special characters.",
                c.client_setname, "has space")
            self.assertEqual(c.client_getname(), "my-client")
            self.assertIs(c.client_setname(""), True)  # an empty name clears it
            self.assertIsNone(c.client_getname())
            self.assertEqual(c.client_id(), cid)
            other = client()
            try:
                self.assertNotEqual(other.client_id(), cid)
            finally:
                other.close()
            named = client(client_name="from-connect")  # redis-py sends CLIENT SETNAME
            try:
                self.assertEqual(named.client_getname(), "from-connect")
            finally:
                named.close()
        finally:
            c.close()

    def test_client_list_and_kill_see_every_worker(self):
        # The cluster runs two workers; the kernel spreads connections over them (SO_REUSEPORT),
        # so twelve connections land on both, and every one must be listed and killable from
        # any connection.
        conns = []
        try:
            for i in range(12):
                c = client(single_connection_client=True)
                c.client_setname("lister-%d" % i)
                conns.append(c)
            watcher = client(single_connection_client=True)
            conns.append(watcher)
            listed = {e["name"]: e for e in watcher.client_list()}
            for i in range(12):
                self.assertIn("lister-%d" % i, listed)
            ids = [int(listed["lister-%d" % i]["id"]) for i in range(12)]
            self.assertEqual(ids, sorted(ids))  # CLIENT LIST is in id order
            # CLIENT LIST ID picks clients of any worker.
            # (By hand: redis-py's client_list(client_id=...) joins the ids into one argument.)
            picked = watcher.execute_command("CLIENT", "LIST", "ID", ids[1], ids[10])
            if isinstance(picked, bytes):
                picked = picked.decode()
            names = [f.split("=", 1)[1] for line in picked.splitlines() for f in line.split()
                     if f.startswith("name=")]
            self.assertEqual(names, ["lister-1", "lister-10"])
            for i in range(0, 12, 2):
                self.assertEqual(watcher.execute_command("CLIENT", "KILL", "ID", ids[i]), 1)
            self.assertEqual(watcher.execute_command("CLIENT", "KILL", "ID", 999999999), 0)
            deadline = time.time() + 5
            while time.time() < deadline:
                names = {e["name"] for e in watcher.client_list()}
                if not any("lister-%d" % i in names for i in range(0, 12, 2)):
                    break
                time.sleep(0.05)
            names = {e["name"] for e in watcher.client_list()}
            for i in range(12):
                self.assertEqual("lister-%d" % i in names, i % 2 == 1, i)
            for i in range(0, 12, 2):  # killed: the next command finds the connection closed
                with self.assertRaises(redis.exceptions.ConnectionError):
                    conns[i].ping()
            for i in range(1, 12, 2):
                self.assertTrue(conns[i].ping())
        finally:
            for c in conns:
                c.close()

    def test_info_is_parsed(self):
        r = self.r
        r.set("k", "v")
        info = r.info()
        for field in ("redis_version", "redis_mode", "process_id", "tcp_port",
                      "uptime_in_seconds", "connected_clients", "maxclients", "used_memory",
                      "maxmemory_policy", "loading", "total_connections_received",
                      "total_commands_processed", "keyspace_hits", "keyspace_misses", "role",
                      "connected_slaves", "run_id", "arch_bits", "instantaneous_ops_per_sec",
                      "total_net_input_bytes", "total_net_output_bytes", "expired_keys",
                      "evicted_keys", "used_cpu_sys", "used_cpu_user"):
            self.assertIn(field, info)
        self.assertRegex(info["run_id"], r"^[0-9a-f]{40}$")
        self.assertEqual(r.info("server")["run_id"], info["run_id"])
        self.assertIsInstance(info["used_cpu_user"], float)
        self.assertGreater(info["used_cpu_user"] + info["used_cpu_sys"], 0)
        self.assertTrue(str(info["redis_version"]).startswith("7."))
        self.assertEqual(info["redis_mode"], "standalone")
        self.assertEqual(info["tcp_port"], PORT)
        self.assertEqual(info["role"], "master")
        self.assertEqual(info["loading"], 0)
        self.assertGreaterEqual(info["connected_clients"], 1)
        self.assertIsInstance(info["used_memory"], int)
        self.assertEqual(info["db0"]["keys"], 1)
        server = r.info("server")
        self.assertIn("redis_version", server)
        self.assertNotIn("connected_clients", server)
        self.assertEqual(r.info("keyspace")["db0"]["keys"], 1)
        before = r.info("stats")["total_commands_processed"]
        r.ping()
        r.get("k")
        self.assertGreater(r.info("stats")["total_commands_processed"], before)
        # The raw text: the documented sections, in Redis's order.
        raw = client()
        try:
            raw.set_response_callback("INFO", lambda resp, **kw: resp)
            text = raw.info()
        finally:
            raw.close()
        positions = [text.find(f"# {s}\r\n") for s in
                     ("Server", "Clients", "Memory", "Persistence", "Stats", "Replication",
                      "CPU", "Keyspace")]
        self.assertNotIn(-1, positions, text[:400])
        self.assertEqual(positions, sorted(positions))
        # expires and avg_ttl: the keys with a TTL, and their mean time left.
        self.assertEqual(r.info("keyspace")["db0"]["expires"], 0)
        r.set("ttl:hour", "v", ex=3600)
        r.set("ttl:two-hours", "v", ex=7200)
        db0 = r.info("keyspace")["db0"]
        self.assertEqual((db0["keys"], db0["expires"]), (3, 2))
        exact = not REFERENCE  # redis-server estimates avg_ttl from samples, in the background
        if exact:
            self.assertTrue(5_390_000 <= db0["avg_ttl"] <= 5_400_000, db0)
        r.persist("ttl:two-hours")
        db0 = r.info("keyspace")["db0"]
        self.assertEqual(db0["expires"], 1)
        if exact:
            self.assertTrue(3_590_000 <= db0["avg_ttl"] <= 3_600_000, db0)
        r.flushdb()
        self.assertNotIn("db0", r.info("keyspace"))

    def test_slowlog_is_shared_by_the_workers_and_hides_passwords(self):
        clients = [client() for _ in range(4)]  # spread over the workers by the kernel

        def threshold_everywhere(value):
            for c in clients:
                wait_until(lambda c=c: c.config_get("slowlog-log-slower-than")
                           ["slowlog-log-slower-than"] == value)
        try:
            sql("ALTER SYSTEM SET eloqkv.resp_slowlog_log_slower_than = 0")
            sql("SELECT pg_reload_conf()")
            threshold_everywhere("0")
            first = clients[0]
            first.slowlog_reset()
            for i, c in enumerate(clients):
                c.client_setname(f"slow-{i}")
                c.set(f"sl:{i}", "v" * 300)
            with self.assertRaises(redis.ResponseError):
                first.execute_command("AUTH", "not-the-password")
            # As redis-py parses it (it drops the address and name), and raw.
            commands = [e["command"].decode() if isinstance(e["command"], bytes) else e["command"]
                        for e in first.slowlog_get(-1)]
            for i in range(len(clients)):
                self.assertIn(f"SET sl:{i} {'v' * 128}... (172 more bytes)", commands)
            first.set_response_callback("SLOWLOG GET", lambda r, **kw: r)
            entries = first.execute_command("SLOWLOG", "GET", "-1")
            # The same entries, and the first SLOWLOG GET, logged once it had run.
            self.assertEqual([" ".join(e[3]) for e in entries], ["SLOWLOG GET -1"] + commands)
            mine = next(e for e in entries if e[3][:2] == ["SET", "sl:0"])
            self.assertEqual(len(mine), 6)
            self.assertEqual(mine[5], "slow-0")
            self.assertRegex(mine[4], r"^127\.0\.0\.1:\d+$")
            self.assertGreaterEqual(mine[2], 0)
            self.assertLessEqual(abs(mine[1] - time.time()), 60)
            self.assertIn("AUTH (redacted)", commands)
            self.assertNotIn("not-the-password", " ".join(commands))
            ids = [e[0] for e in entries]
            self.assertEqual(ids, sorted(ids, reverse=True), "newest first")
            self.assertEqual(first.slowlog_len(), len(entries) + 1)  # and the SLOWLOG GET
            self.assertEqual(first.config_get("slowlog-max-len")["slowlog-max-len"], "128")
        finally:
            sql("ALTER SYSTEM RESET eloqkv.resp_slowlog_log_slower_than")
            sql("SELECT pg_reload_conf()")
            threshold_everywhere("10000")
            for c in clients:
                c.close()

    def test_wait_without_standbys(self):
        r = self.r
        r.set("waited", "1")
        self.assertEqual(r.wait(0, 0), 0)
        started = time.monotonic()
        self.assertEqual(r.wait(1, 200), 0)  # this cluster has no standby
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.assertReplyError("ERR timeout is negative", r.execute_command, "WAIT", "1", "-1")
        self.assertEqual(r.get("waited"), "1")

    def test_memory_usage_and_redis_cli_memkeys(self):
        r = self.r
        r.flushdb()
        r.set("mem:small", "v")
        r.set("mem:large", "x" * 5000)
        small, large = r.memory_usage("mem:small"), r.memory_usage("mem:large")
        self.assertGreater(small, 1)
        self.assertGreaterEqual(large - small, 4999)
        self.assertIsNone(r.memory_usage("mem:missing"))
        # redis-cli --memkeys scans the keys and asks MEMORY USAGE of each.
        out = subprocess.run(["redis-cli", "-h", HOST, "-p", str(PORT), "--memkeys"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"Biggest string found .*mem:large.* has \d+ bytes")
        r.flushdb()

    def test_role_and_info_replication_without_standbys(self):
        r = self.r
        r.set("role:k", "v")
        role = r.execute_command("ROLE")
        self.assertEqual(role[0], "master")
        self.assertIsInstance(role[1], int)
        if not REFERENCE:
            self.assertGreater(role[1], 0)  # the WAL position, as Redis's replication offset
        self.assertEqual(role[2], [])
        info = r.info("replication")
        self.assertEqual(info["role"], "master")
        self.assertEqual(info["connected_slaves"], 0)
        self.assertGreaterEqual(info["master_repl_offset"], role[1])
        self.assertReplyError("ERR wrong number of arguments for 'role' command",
                              r.execute_command, "ROLE", "x")

    def test_client_unblock_wakes_a_wait_on_any_worker(self):
        r = self.r
        mine = r.info("server")["process_id"]
        # A TIMEOUT and an ERROR for a waiter on this connection's worker and for one on another.
        same, other = [], []
        for _ in range(64):
            w = client(socket_timeout=20)
            (same if w.info("server")["process_id"] == mine else other).append(w)
            if len(same) >= 2 and len(other) >= 2:
                break
        spare = same[2:] + other[2:]
        same, other = same[:2], other[:2]
        for w in spare:
            w.close()
        if len(other) < 2:
            for w in same + other:
                w.close()
            self.skipTest("one listener worker")
        waiters = same + other
        ids = [w.client_id() for w in waiters]
        results = {}

        def wait(i, w):
            try:
                results[i] = w.execute_command("WAIT", "1", "0")  # no standby: forever
            except Exception as e:  # a lost wake ends in the socket timeout, reported below
                results[i] = str(e)
        threads = [threading.Thread(target=wait, args=(i, w)) for i, w in enumerate(waiters)]
        try:
            for t in threads:
                t.start()

            def all_blocked():
                flags = {int(c["id"]): c["flags"] for c in r.client_list()}
                return all("b" in flags.get(i, "") for i in ids)
            wait_until(all_blocked)
            self.assertEqual(r.info("clients")["blocked_clients"], len(waiters))
            for n, i in enumerate(ids):  # TIMEOUT, ERROR on this worker, then on the other
                self.assertEqual(r.client_unblock(i, error=n % 2 == 1), 1)
            for t in threads:
                t.join(15)
                self.assertFalse(t.is_alive())
            for n in range(len(waiters)):
                expected = 0 if n % 2 == 0 else "UNBLOCKED client unblocked via CLIENT UNBLOCK"
                self.assertEqual(results[n], expected, n)
            self.assertEqual(r.client_unblock(ids[0]), 0)  # no longer blocked
            wait_until(lambda: r.info("clients")["blocked_clients"] == 0)
        finally:
            for w in waiters:
                w.close()

    def test_client_pause_write_holds_writes_of_every_worker_until_unpause(self):
        r = self.r
        r.set("paused", "before")
        writers = [client() for _ in range(8)]  # spread over the workers by the kernel
        done = []
        threads = [threading.Thread(target=lambda c=c, i=i: done.append(c.set("paused", f"w{i}")))
                   for i, c in enumerate(writers)]
        try:
            self.assertTrue(r.client_pause(60000, all=False))
            for t in threads:
                t.start()
            wait_until(lambda: r.info("clients")["blocked_clients"] == 8)
            # Reads go on, on every worker; the writes are held, unanswered.
            for c in [client() for _ in range(4)]:
                self.assertEqual(c.get("paused"), "before")
                self.assertTrue(c.ping())
                c.close()
            time.sleep(0.2)
            self.assertEqual(done, [])
            self.assertEqual(r.get("paused"), "before")
            self.assertTrue(r.client_unpause())
            for t in threads:
                t.join(30)
            self.assertEqual(done, [True] * 8)
            self.assertIn(r.get("paused"), {f"w{i}" for i in range(8)})
            self.assertEqual(r.info("clients")["blocked_clients"], 0)
        finally:
            r.client_unpause()
            for t in threads:
                if t.is_alive():
                    t.join(30)
            for c in writers:
                c.close()

    def test_client_pause_all_holds_every_command_for_its_time(self):
        r = self.r
        other = client()
        try:
            self.assertReplyError("ERR CLIENT PAUSE mode must be WRITE or ALL",
                                  r.execute_command, "CLIENT", "PAUSE", "100", "READ")
            self.assertReplyError("ERR timeout is not an integer or out of range",
                                  r.execute_command, "CLIENT", "PAUSE", "soon")
            self.assertTrue(other.ping())
            started = time.monotonic()
            self.assertTrue(r.client_pause(300))  # ALL, as Redis's default
            self.assertTrue(other.ping())  # held until the pause ends
            self.assertGreaterEqual(time.monotonic() - started, 0.3)
            self.assertEqual(other.info("clients")["blocked_clients"], 0)
        finally:
            other.close()

    def test_info_commandstats_and_errorstats_count_every_worker(self):
        r = self.r

        def counts():
            hlen = r.info("commandstats").get("cmdstat_hlen", {})
            return (hlen.get("calls", 0), hlen.get("failed_calls", 0),
                    hlen.get("rejected_calls", 0),
                    # redis-py leaves "count=N" as it is (with redis-server too)
                    int(r.info("errorstats").get("errorstat_WRONGTYPE", "count=0")[6:]),
                    r.info("stats")["total_error_replies"])
        r.set("cs:string", "v")
        r.hset("cs:hash", "f", "1")
        before = counts()
        others = [client() for _ in range(6)]  # spread over the workers by the kernel
        try:
            for c in others:
                self.assertEqual(c.hlen("cs:hash"), 1)
                with self.assertRaisesRegex(redis.ResponseError, "^WRONGTYPE "):
                    c.hlen("cs:string")
        finally:
            for c in others:
                c.close()
        self.assertReplyError("ERR wrong number of arguments for 'hlen' command",
                              r.execute_command, "HLEN")
        calls, failed, rejected, wrongtype, errors = counts()
        self.assertEqual(calls - before[0], 12)
        self.assertEqual(failed - before[1], 6)
        self.assertEqual(rejected - before[2], 1)
        self.assertEqual(wrongtype - before[3], 6)
        self.assertEqual(errors - before[4], 7)
        stat = r.info("commandstats")["cmdstat_hlen"]
        self.assertIsInstance(stat["usec_per_call"], float)
        self.assertGreaterEqual(stat["usec"], 0)
        self.assertNotIn("cmdstat_hlen", r.info())  # commandstats is not a default section

    def test_info_rates_and_expired_keys_follow_the_traffic(self):
        r = self.r
        before = r.info("stats")
        # Busy for a second and a half: the rates cover the last 1.6 s of 100 ms samples.
        deadline = time.time() + 1.5
        while time.time() < deadline:
            pipe = r.pipeline(transaction=False)
            for i in range(200):
                pipe.ping()
            pipe.execute()
        busy = r.info("stats")
        self.assertGreater(busy["total_commands_processed"],
                           before["total_commands_processed"] + 1000)
        # At least a thousand a second over the busy samples (a pipeline of 200 PINGs takes
        # well under 0.2 s even under a sanitizer).
        self.assertGreater(busy["instantaneous_ops_per_sec"], 1000)
        self.assertGreater(busy["instantaneous_input_kbps"], 0)
        self.assertGreater(busy["total_net_input_bytes"], before["total_net_input_bytes"])
        self.assertGreater(busy["total_net_output_bytes"], before["total_net_output_bytes"])
        # Idle, the figures fall back to nothing (INFO itself is the only traffic) once the
        # busy samples are out of the last 16.
        deadline = time.time() + 15
        while r.info("stats")["instantaneous_ops_per_sec"] >= 10 and time.time() < deadline:
            time.sleep(0.2)
        self.assertLess(r.info("stats")["instantaneous_ops_per_sec"], 10)
        # Keys whose time ran out count once the engine's sweep removed them; CONFIG RESETSTAT
        # starts the count over.
        expired = r.info("stats")["expired_keys"]
        for i in range(5):
            r.set(f"info:expiring:{i}", "v", px=50)
        deadline = time.time() + 30
        while r.info("stats")["expired_keys"] < expired + 5 and time.time() < deadline:
            time.sleep(0.2)
        counted = r.info("stats")["expired_keys"]
        self.assertGreaterEqual(counted, expired + 5)
        r.config_resetstat()
        self.assertLess(r.info("stats")["expired_keys"], counted)

    def test_unknown_command_keeps_the_connection(self):
        r = client(single_connection_client=True)
        try:
            cid = r.client_id()
            self.assertReplyError(
                "ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' ",
                r.execute_command, "FOOBAR", "a", "b")
            self.assertReplyError("ERR unknown command 'NOARGS', with args beginning with: ",
                                  r.execute_command, "NOARGS")
            self.assertReplyError("ERR wrong number of arguments for 'get' command",
                                  r.execute_command, "GET")
            self.assertTrue(r.ping())
            self.assertEqual(r.client_id(), cid)  # the same connection
            self.assertEqual(r.echo("still here"), "still here")
        finally:
            r.close()

    def test_select_ping_echo_time(self):
        r = self.r
        self.assertIs(r.ping(), True)
        self.assertEqual(r.echo("e"), "e")
        secs, micros = r.time()
        self.assertLess(abs(secs - time.time()), 5)
        self.assertTrue(0 <= micros < 1_000_000)
        c = raw_client()
        try:
            self.assertEqual(c.execute_command("PING", "hi"), "hi")
            self.assertEqual(c.execute_command("SELECT", "0"), "OK")
            self.assertReplyError("ERR DB index is out of range",
                                  c.execute_command, "SELECT", "100000")
            self.assertReplyError(NOT_INTEGER, c.execute_command, "SELECT", "x")
        finally:
            c.close()

    def test_pool_of_20_threads_incr_is_atomic(self):
        pool = redis.ConnectionPool(host=HOST, port=PORT, max_connections=20, socket_timeout=60)
        shared = redis.Redis(connection_pool=pool)
        shared.set("counter", 0)
        failures = []

        def work():
            try:
                for _ in range(500):
                    shared.incr("counter")
            except Exception as e:  # noqa: BLE001
                failures.append(e)

        threads = [threading.Thread(target=work) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            self.assertEqual(failures, [])
            self.assertEqual(shared.get("counter"), b"10000")
        finally:
            pool.disconnect()


class DataTests(RespCase):
    def test_big_value_round_trip(self):
        rb = self.rb
        big = os.urandom(8 * 1024 * 1024)
        self.assertTrue(rb.set("big", big))
        self.assertEqual(rb.strlen("big"), len(big))
        self.assertEqual(rb.get("big"), big)
        tail = os.urandom(1024 * 1024)
        self.assertEqual(rb.append("big", tail), len(big) + len(tail))
        self.assertEqual(rb.getrange("big", len(big) - 10, -1), big[-10:] + tail)
        self.assertEqual(rb.hset("bigh", b"f", big), 1)
        self.assertEqual(rb.hget("bigh", b"f"), big)

    def test_binary_safe_keys_values_and_fields(self):
        rb = self.rb
        every = bytes(range(256))
        key = b"bin:" + every
        self.assertTrue(rb.set(key, every))
        self.assertEqual(rb.get(key), every)
        self.assertEqual(rb.strlen(key), 256)
        self.assertEqual(rb.getrange(key, 10, 13), every[10:14])
        self.assertEqual(rb.append(key, b"\r\n\x00"), 259)
        self.assertEqual(rb.get(key), every + b"\r\n\x00")
        self.assertTrue(rb.mset({b"bin:\x00": b"\x00", b"bin:\r\n": b"\r\n", b"bin:\xff": every}))
        self.assertEqual(rb.mget(b"bin:\x00", b"bin:\r\n", b"bin:\xff"), [b"\x00", b"\r\n", every])
        self.assertEqual(rb.hset(b"bin:h", mapping={every: every, b"": b"", b"\x00": b"\xff"}), 3)
        self.assertEqual(rb.hgetall(b"bin:h"), {every: every, b"": b"", b"\x00": b"\xff"})
        self.assertEqual(rb.type(key), b"string")
        found = set(rb.scan_iter(match=b"bin:*", count=2))
        self.assertEqual(found, {key, b"bin:\x00", b"bin:\r\n", b"bin:\xff", b"bin:h"})
        self.assertEqual(set(rb.keys(b"bin:?")), {b"bin:\x00", b"bin:\xff", b"bin:h"})
        self.assertTrue(rb.set(b"", b"empty key"))  # the empty key is a key like any other
        self.assertEqual(rb.get(b""), b"empty key")
        self.assertTrue(rb.set(b"empty", b""))
        self.assertEqual(rb.get(b"empty"), b"")
        self.assertEqual(rb.exists(b"empty"), 1)
        self.assertEqual(rb.strlen(b"empty"), 0)

    def test_writes_are_visible_on_new_connections(self):
        r = self.r
        r.set("seen", "by everyone")
        r.hset("seen:h", mapping={"a": "1"})
        r.incr("seen:n")
        # Several fresh connections, so that both workers (SO_REUSEPORT) are likely asked.
        for _ in range(8):
            c = client()
            try:
                self.assertEqual(c.get("seen"), "by everyone")
                self.assertEqual(c.hgetall("seen:h"), {"a": "1"})
                self.assertEqual(c.incr("seen:n") > 1, True)
            finally:
                c.close()
        self.assertEqual(r.get("seen:n"), "9")


class WireTests(RespCase):
    """Exact reply lines on a raw socket (redis-py drops the ERR code)."""

    def exchange(self, payload, replies):
        with socket.create_connection((HOST, PORT), timeout=10) as s:
            s.sendall(payload)
            buf = b""
            while buf.count(b"\r\n") < replies:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf

    def test_error_lines(self):
        self.r.hset("h", "f", "v")
        got = self.exchange(b"GET h\r\nSET k v NX XX\r\nNOPE 1\r\nGET\r\nINCR h\r\n"
                            b"EXPIRE h 1 NX GT\r\nPING\r\n", 7)
        self.assertEqual(got.split(b"\r\n")[:7], [
            b"-" + WRONGTYPE.encode(),
            b"-ERR syntax error",
            b"-ERR unknown command 'NOPE', with args beginning with: '1' ",
            b"-ERR wrong number of arguments for 'get' command",
            b"-" + WRONGTYPE.encode(),
            b"-ERR NX and XX, GT or LT options at the same time are not compatible",
            b"+PONG",
        ])


@unittest.skipIf(REFERENCE, "eloqkv's own limits and SQL side (ELOQKV_REFERENCE_REDIS is set)")
class EloqkvTests(RespCase):
    """What docs/resp.md documents beyond Redis: the engine's limits, the SQL view of the
    RESP keyspace, and the unsupported types."""

    def test_key_and_value_limits(self):
        rb = self.rb
        self.assertTrue(rb.set(b"k" * 4096, b"v"))  # keys up to 4096 bytes
        self.assertEqual(rb.get(b"k" * 4096), b"v")
        self.assertReplyError("ERR key is 4097 bytes; the limit is 4096", rb.set, b"k" * 4097, b"v")
        self.assertEqual(rb.exists(b"k" * 4097), 0)
        self.assertTrue(rb.ping())
        limit = 64 * 1024 * 1024
        too_big = b"x" * (limit + 1)  # the docs: values up to 64 MiB
        with self.assertRaises(redis.ResponseError) as cm:
            rb.set("huge", too_big)
        self.assertRegex(str(cm.exception), r"^value is \d+ bytes; the limit is 67108864$")
        self.assertEqual(rb.exists("huge"), 0)
        self.assertTrue(rb.ping())

    def test_unsupported_types_are_unknown_commands(self):
        r = self.r
        self.assertReplyError("ERR unknown command 'LPUSH', with args beginning with: 'l' 'x' ",
                              r.lpush, "l", "x")
        self.assertReplyError("ERR unknown command 'SADD', with args beginning with: 's' 'x' ",
                              r.sadd, "s", "x")
        self.assertEqual(r.exists("l", "s"), 0)

    @unittest.skipUnless(PSQL, "ELOQKV_PSQL is not set")
    def test_sql_sees_the_resp_keyspace(self):
        r = self.r
        sql("CREATE EXTENSION IF NOT EXISTS eloqkv_fdw")
        self.assertEqual(sql("SELECT state FROM eloqkv.engine_info()"), "ready")
        keyspace = r.config_get("eloqkv-default-keyspace")["eloqkv-default-keyspace"]
        query = ("SELECT keys || ' ' || writes FROM eloqkv.keyspace_stats() "
                 f"WHERE name = '{keyspace}'")
        before = sql(query)
        writes_before = int(before.split()[1]) if before else 0
        r.mset({f"sql:{i}": i for i in range(25)})
        r.hset("sql:h", "f", "v")
        keys, writes = (int(x) for x in sql(query).split())
        self.assertEqual(keys, 26)
        self.assertEqual(keys, r.dbsize())
        self.assertGreaterEqual(writes - writes_before, 26)
        r.flushdb()
        self.assertEqual(int(sql(query).split()[0]), 0)


class CacheTests(RespCase):
    """Caches over heap tables (docs/cache.md) seen by many SQL clients at once and by Redis."""

    def test_a_miss_storm_of_64_sql_and_redis_clients_runs_the_source_once(self):
        r = self.r
        sql("CREATE EXTENSION IF NOT EXISTS eloqkv_fdw")
        sql("DROP FOREIGN TABLE IF EXISTS herd_cache")
        sql("DROP TABLE IF EXISTS herd_users")
        sql("DROP SEQUENCE IF EXISTS herd_runs")
        sql("CREATE TABLE herd_users (id int PRIMARY KEY, name text)")
        sql("INSERT INTO herd_users VALUES (1, 'ada')")
        sql("CREATE SEQUENCE herd_runs")
        # A slow source (1 s), counted by a sequence: every client misses while it runs.
        sql("CREATE OR REPLACE FUNCTION herd_user(k int) RETURNS TABLE (id int, name text) "
            "LANGUAGE plpgsql AS $$ BEGIN PERFORM nextval('herd_runs'); PERFORM pg_sleep(1); "
            "RETURN QUERY SELECT u.id, u.name FROM herd_users u WHERE u.id = k; END $$")
        sql("SELECT eloqkv.create_cache('herd_cache', 'SELECT id, name FROM herd_user($1)', "
            "resp_prefix => 'herd:', lease_timeout => '1 minute')")
        try:
            # 32 psql clients and 32 Redis clients miss the same cold key at once.
            query = shlex.quote("SELECT name FROM herd_cache WHERE id = 1")
            procs = [subprocess.Popen(PSQL + " -c " + query, shell=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(32)]
            redis_results = [None] * 32

            def redis_reader(i):
                c = client()
                try:
                    redis_results[i] = c.hget("herd:1", "name")
                except redis.RedisError as e:
                    redis_results[i] = "error: %s" % e
                finally:
                    c.close()

            threads = [threading.Thread(target=redis_reader, args=(i,)) for i in range(32)]
            for th in threads:
                th.start()
            results = [p.communicate(timeout=120) for p in procs]
            for th in threads:
                th.join(timeout=120)
            self.assertEqual([out.strip() for out, _ in results], ["ada"] * 32,
                             [err for _, err in results if err][:3])
            self.assertEqual(redis_results, ["ada"] * 32)
            self.assertEqual(sql("SELECT last_value FROM herd_runs"), "1")
            fills, waits = (int(x) for x in sql(
                "SELECT fills || ' ' || lease_waits FROM eloqkv.cache_stats "
                "WHERE cache = 'herd_cache'::regclass").split())
            self.assertEqual(fills, 1)
            self.assertGreaterEqual(waits, 1)
            self.assertEqual(r.hgetall("herd:1"), {"id": "1", "name": "ada"})
            # A key the source has no row for: one run, then a negative entry.
            self.assertIsNone(r.hget("herd:2", "name"))
            self.assertIsNone(r.hget("herd:2", "name"))
            self.assertEqual(sql("SELECT last_value FROM herd_runs"), "2")
            self.assertReplyError("ERR cannot write to public.herd_cache: it is an eloqkv cache, "
                                  "filled by its source query", r.hset, "herd:1", "name", "x")
        finally:
            sql("DROP FOREIGN TABLE herd_cache")
            sql("DROP TABLE herd_users")
            sql("DROP FUNCTION herd_user(int)")
            sql("DROP SEQUENCE herd_runs")

    def cache_over_users(self, name, rows, before_return, options):
        """Cache <name>_cache (resp_prefix '<name>:') over table <name>_users (id int, name text)
        holding `rows`; its source <name>_user(k) counts its runs in sequence <name>_runs and
        runs the plpgsql `before_return` before it returns the row. `options`: further
        create_cache arguments. Everything is dropped after the test."""
        sql("CREATE EXTENSION IF NOT EXISTS eloqkv_fdw")
        sql(f"DROP FOREIGN TABLE IF EXISTS {name}_cache")
        sql(f"DROP TABLE IF EXISTS {name}_users")
        sql(f"DROP SEQUENCE IF EXISTS {name}_runs")
        sql(f"CREATE TABLE {name}_users (id int PRIMARY KEY, name text)")
        sql(f"INSERT INTO {name}_users VALUES {rows}")
        sql(f"CREATE SEQUENCE {name}_runs")
        sql(f"CREATE OR REPLACE FUNCTION {name}_user(k int) RETURNS TABLE (id int, name text) "
            f"LANGUAGE plpgsql AS $$ BEGIN PERFORM nextval('{name}_runs'); {before_return} "
            f"RETURN QUERY SELECT u.id, u.name FROM {name}_users u WHERE u.id = k; END $$")
        sql(f"SELECT eloqkv.create_cache('{name}_cache', 'SELECT id, name FROM {name}_user($1)', "
            f"resp_prefix => '{name}:', {options})")
        self.addCleanup(sql, f"DROP SEQUENCE IF EXISTS {name}_runs")
        self.addCleanup(sql, f"DROP FUNCTION IF EXISTS {name}_user(int)")
        self.addCleanup(sql, f"DROP TABLE IF EXISTS {name}_users")
        self.addCleanup(sql, f"DROP FOREIGN TABLE IF EXISTS {name}_cache")

    def test_redis_readers_refresh_a_hot_key_before_it_expires(self):
        self.cache_over_users("xf", "(1, 'ada')", "PERFORM pg_sleep(0.2);",
                              "ttl => '2 s', lease_timeout => '1 minute'")
        r = self.r
        self.assertEqual(r.hget("xf:1", "name"), "ada")  # the first fill (a miss)
        # Only Redis clients read it, for two ttls: as expiry nears, one of their reads has it
        # refreshed early (XFetch, scaled by the 0.2 s fill time).
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            self.assertEqual(r.hget("xf:1", "name"), "ada")
            time.sleep(0.01)
        early = int(sql("SELECT early_refreshes FROM eloqkv.cache_stats "
                        "WHERE cache = 'xf_cache'::regclass"))
        self.assertGreaterEqual(early, 1)
        self.assertGreaterEqual(int(sql("SELECT last_value FROM xf_runs")), 2)

    def test_a_source_stuck_on_one_key_does_not_hold_up_fills_of_others(self):
        # Key 1's source passes a gate (an advisory lock) that the test holds closed.
        self.cache_over_users("gate", "(1, 'ada'), (2, 'bo')",
                              "IF k = 1 THEN PERFORM pg_advisory_lock_shared(4242); "
                              "PERFORM pg_advisory_unlock_shared(4242); END IF;",
                              "lease_timeout => '1 minute'")
        gate = "FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242"
        holder = subprocess.Popen(PSQL + " -c 'SELECT pg_advisory_lock(4242)' -c 'SELECT pg_sleep(300)'",
                                  shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        opener = "SELECT pg_terminate_backend(pid) " + gate + " AND granted"
        self.addCleanup(holder.wait, 60)
        self.addCleanup(sql, opener)
        wait_until(lambda: sql("SELECT count(*) " + gate + " AND granted") == "1")
        stuck = Resp3Socket(protocol=2)
        self.addCleanup(stuck.close)
        stuck.send("HGET", "gate:1", "name")
        # A filler is now waiting at the gate for key 1.
        wait_until(lambda: sql("SELECT count(*) " + gate + " AND NOT granted") == "1")
        # Key 2 is filled meanwhile, by another filler.
        self.assertEqual(self.r.hget("gate:2", "name"), "bo")
        self.assertEqual(select.select([stuck.sock], [], [], 0)[0], [])
        sql(opener)
        self.assertEqual(stuck.read(), "ada")

    def test_redis_reads_of_a_cache_wait_for_their_fill_without_blocking_others(self):
        # The source sleeps as long as the row's id says (seconds / 2).
        self.cache_over_users("slow", "(1, 'ada'), (2, 'bo'), (3, 'cy')",
                              "PERFORM pg_sleep(k / 2.0);",
                              "ttl => '1 s', stale_ttl => '1 hour', lease_timeout => '1200 ms'")

        def worker_of(conn):
            info = conn.call("INFO", "server")
            return [l for l in info.split("\r\n") if l.startswith("process_id:")][0]

        waiting = Resp3Socket(protocol=2)
        self.addCleanup(waiting.close)
        # Another client of the same worker, served while the first one waits.
        neighbours = [Resp3Socket(protocol=2) for _ in range(8)]
        for n in neighbours:
            self.addCleanup(n.close)
        same = [n for n in neighbours if worker_of(n) == worker_of(waiting)]
        self.assertTrue(same, "no second connection on the waiting client's worker")
        # A miss waits for its fill (0.5 s); the command after it in the pipeline waits behind it.
        waiting.send("HGET", "slow:1", "name")
        waiting.send("PING")
        started = time.monotonic()
        self.assertEqual(same[0].call("PING"), "PONG")
        # The neighbour was answered while the waiting client still had nothing: the worker's
        # loop was not blocked by the wait.
        self.assertEqual(select.select([waiting.sock], [], [], 0)[0], [])
        self.assertEqual(waiting.read(), "ada")
        self.assertEqual(waiting.read(), "PONG")
        self.assertGreaterEqual(time.monotonic() - started, 0.45)
        # A source slower than lease_timeout (1.5 s > 1.2 s): an error, not "no such row".
        self.assertEqual(waiting.call("HGET", "slow:3", "name"),
                         ("error", "ERR the source of eloqkv cache public.slow_cache did not fill "
                                   "the key within its lease_timeout (1200 ms); try again"))
        time.sleep(0.5)  # the fill does land, later
        self.assertEqual(waiting.call("HGET", "slow:3", "name"), "cy")
        runs = int(sql("SELECT last_value FROM slow_runs"))
        # Two fills; with a 1 s ttl and fills of 0.5-1.5 s, XFetch may refresh early on top.
        self.assertGreaterEqual(runs, 2)
        # Past ttl, within stale_ttl: served stale at once, refreshed behind the reader's back.
        time.sleep(1.1)
        sql("UPDATE slow_users SET name = 'ada2' WHERE id = 1")
        # The source says ada2 now: "ada" is the stale row, served without waiting for a fill.
        self.assertEqual(waiting.call("HGET", "slow:1", "name"), "ada")
        deadline = time.monotonic() + 10
        while waiting.call("HGET", "slow:1", "name") != "ada2":
            self.assertLess(time.monotonic(), deadline, "the stale row was never refreshed")
            time.sleep(0.05)
        # (At least one run: XFetch may refresh the fresh row early once more.)
        self.assertGreaterEqual(int(sql("SELECT last_value FROM slow_runs")), runs + 1)
        # Inside MULTI nothing waits: a miss reads as no row, and its fill is asked for.
        waiting.call("MULTI")
        waiting.call("HGET", "slow:2", "name")
        self.assertEqual(waiting.call("EXEC"), [None])
        deadline = time.monotonic() + 10
        while waiting.call("HGET", "slow:2", "name") != "bo":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)

    def test_a_mirror_backfilled_under_concurrent_writes_equals_its_table(self):
        r = self.r
        sql("CREATE EXTENSION IF NOT EXISTS eloqkv_fdw")
        sql("DELETE FROM eloqkv.mirrors WHERE source::text = 'busy_accounts'")
        sql("DROP FOREIGN TABLE IF EXISTS busy_accounts_mirror")
        sql("DROP TABLE IF EXISTS busy_accounts CASCADE")
        sql("CREATE TABLE busy_accounts (id int PRIMARY KEY, owner text, balance bigint)")
        sql("INSERT INTO busy_accounts SELECT g, 'o' || g, g FROM generate_series(1, 20000) g")
        # Writers update, delete and insert rows all over the key range while the backfill runs
        # in chunks of 200.
        writer_sql = ("DO $$ BEGIN FOR i IN 1..400 LOOP "
                      "UPDATE busy_accounts SET balance = balance + 1 WHERE id = 1 + (random() * 19999)::int; "
                      "DELETE FROM busy_accounts WHERE id = 1 + (random() * 19999)::int; "
                      "INSERT INTO busy_accounts VALUES (20000 + (random() * 100000)::int, 'new', 0) "
                      "ON CONFLICT (id) DO UPDATE SET balance = busy_accounts.balance + 1; "
                      "COMMIT; END LOOP; END $$")
        writers = [subprocess.Popen(PSQL + " -c " + shlex.quote(writer_sql), shell=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(4)]
        try:
            sql("CALL eloqkv.create_mirror('busy_accounts', 'id', chunk_rows => 200, "
                "resp_prefix => 'busy:')")
        finally:
            outs = [w.communicate(timeout=300) for w in writers]
        self.assertEqual([w.returncode for w in writers], [0] * 4, [e for _, e in outs if e][:2])
        self.assertEqual(sql("SELECT state FROM eloqkv.mirror_progress "
                             "WHERE source = 'busy_accounts'::regclass"), "ready")
        self.assertEqual(sql("SELECT count(*) FROM eloqkv.verify_mirror('busy_accounts')"), "0")
        self.assertEqual(sql("SELECT count(*) FROM busy_accounts_mirror"),
                         sql("SELECT count(*) FROM busy_accounts"))
        # Redis clients read the mirror and cannot write it.
        row = sql("SELECT id || ' ' || balance FROM busy_accounts ORDER BY id LIMIT 1").split()
        self.assertEqual(r.hget("busy:" + row[0], "balance"), row[1])
        self.assertReplyError("ERR cannot write to public.busy_accounts_mirror: it is an eloqkv "
                              "mirror; write to its source table", r.hset, "busy:1", "owner", "x")
        sql("SELECT eloqkv.drop_mirror('busy_accounts')")
        sql("DROP TABLE busy_accounts")


class Resp3Socket:
    """A raw RESP3 connection that parses replies and push messages (client-side caching needs
    pushes, which redis-py before 5.0 cannot show)."""

    def __init__(self, protocol=3):
        self.sock = socket.create_connection((HOST, PORT), timeout=30)
        self.buf = b""
        if protocol == 3:
            self.call("HELLO", "3")

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exactly(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self, timeout=30):
        """One reply or push: pushes come back as ('push', [...])."""
        self.sock.settimeout(timeout)
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest.decode() if kind == b"+" else ("error", rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"_":
            return None
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n).decode()
        if kind in (b"*", b"~", b">", b"%"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.read(timeout) for _ in range(n * (2 if kind == b"%" else 1))]
            return ("push", items) if kind == b">" else items
        raise AssertionError("unexpected reply line %r" % line)

    def call(self, *args):
        self.send(*args)
        return self.read()

    def pending(self, timeout=0.2):
        """Whatever arrives within the timeout (pushes nobody asked for)."""
        got = []
        try:
            while True:
                got.append(self.read(timeout))
        except socket.timeout:
            return got


class ClientTrackingTests(RespCase):
    """CLIENT TRACKING (docs/resp.md): invalidations for changes made by anyone."""

    def tracking_client(self, *options):
        c = Resp3Socket()
        self.addCleanup(c.close)
        self.assertEqual(c.call("CLIENT", "TRACKING", "on", *options), "OK")
        return c

    @unittest.skipIf(REFERENCE or not PSQL, "needs ELOQKV_PSQL and eloqkv")
    def test_sql_commits_invalidate_and_aborts_do_not(self):
        sql("CREATE EXTENSION IF NOT EXISTS eloqkv_fdw")
        sql("CREATE SERVER IF NOT EXISTS kv FOREIGN DATA WRAPPER eloqkv_fdw")
        sql("DROP FOREIGN TABLE IF EXISTS trk_profiles")
        sql("CREATE FOREIGN TABLE trk_profiles (id int, name text) SERVER kv "
            "OPTIONS (key 'id', resp_prefix 'trk:')")
        self.addCleanup(sql, "DROP FOREIGN TABLE IF EXISTS trk_profiles")
        sql("INSERT INTO trk_profiles VALUES (1, 'ann')")
        c = self.tracking_client()
        self.assertEqual(c.call("HGET", "trk:1", "name"), "ann")
        self.assertIsNone(c.call("HGET", "trk:2", "name"))
        sql("UPDATE trk_profiles SET name = 'bob' WHERE id = 1")
        self.assertEqual(c.read(), ("push", ["invalidate", ["trk:1"]]))
        sql("BEGIN; INSERT INTO trk_profiles VALUES (2, 'never'); ROLLBACK")
        # Nothing was written: the next reply comes with no invalidation ahead of it.
        self.assertEqual(c.call("PING"), "PONG")
        sql("INSERT INTO trk_profiles VALUES (2, 'cy')")
        self.assertEqual(c.read(), ("push", ["invalidate", ["trk:2"]]))
        self.assertEqual(c.call("HGET", "trk:1", "name"), "bob")
        self.assertEqual(c.call("HGET", "trk:2", "name"), "cy")
        sql("TRUNCATE trk_profiles")
        got = sorted(c.read()[1][1] + c.read()[1][1])
        self.assertEqual(got, ["trk:1", "trk:2"])
        self.assertEqual(c.pending(), [], "each key once")

    @unittest.skipIf(REFERENCE or not PSQL, "needs ELOQKV_PSQL and eloqkv")
    def test_cache_invalidations_and_fills_reach_tracking_clients(self):
        sql("CREATE EXTENSION IF NOT EXISTS eloqkv_fdw")
        sql("DROP FOREIGN TABLE IF EXISTS trk_cache")
        sql("DROP TABLE IF EXISTS trk_users")
        sql("CREATE TABLE trk_users (id int PRIMARY KEY, name text)")
        sql("INSERT INTO trk_users VALUES (1, 'ada')")
        sql("SELECT eloqkv.create_cache('trk_cache', 'SELECT id, name FROM trk_users WHERE id = $1', "
            "resp_prefix => 'trkc:')")
        sql("SELECT eloqkv.invalidate_on_change('trk_cache', 'trk_users', 'id')")
        self.addCleanup(sql, "DROP TABLE IF EXISTS trk_users")
        self.addCleanup(sql, "DROP FOREIGN TABLE IF EXISTS trk_cache")
        c = self.tracking_client()
        # Inside EXEC a miss reads as no row (and asks for the fill): the fill is a change.
        self.assertEqual(c.call("MULTI"), "OK")
        self.assertEqual(c.call("HGET", "trkc:1", "name"), "QUEUED")
        self.assertEqual(c.call("EXEC"), [None])
        self.assertEqual(c.read(), ("push", ["invalidate", ["trkc:1"]]), "the fill is a change")
        self.assertEqual(c.call("HGET", "trkc:1", "name"), "ada")
        sql("SELECT eloqkv.invalidate('trk_cache', 1)")
        self.assertEqual(c.read(), ("push", ["invalidate", ["trkc:1"]]))
        # Told once; reading again (which waits for its own fill) tracks it again.
        self.assertEqual(c.call("HGET", "trkc:1", "name"), "ada")
        self.assertEqual(c.pending(), [], "a change the read already saw is not reported")
        sql("UPDATE trk_users SET name = 'eve' WHERE id = 1")  # the trigger invalidates at commit
        self.assertEqual(c.read(), ("push", ["invalidate", ["trkc:1"]]))
        self.assertEqual(c.call("HGET", "trkc:1", "name"), "eve")

    def test_writes_deletes_and_expiry_of_plain_keys(self):
        r = self.r
        r.set("tk:a", "1")
        r.set("tk:e", "1", px=600)
        c = self.tracking_client()
        self.assertEqual(c.call("MGET", "tk:a", "tk:e", "tk:none"), ["1", "1", None])
        r.set("tk:none", "now")
        self.assertEqual(c.read(), ("push", ["invalidate", ["tk:none"]]))
        self.assertEqual(c.read(timeout=10), ("push", ["invalidate", ["tk:e"]]), "it expired")
        r.delete("tk:a")
        self.assertEqual(c.read(), ("push", ["invalidate", ["tk:a"]]))
        self.assertEqual(c.call("GET", "tk:a"), None)
        r.flushdb()  # everything, whatever was read: a null invalidation, as from Redis
        self.assertEqual(c.read(), ("push", ["invalidate", None]))
        self.assertEqual(r.info("clients")["tracking_clients"], 1)

    def test_redirect_to_a_client_of_another_worker(self):
        def worker_of(conn):
            info = conn.call("INFO", "server")
            return [l for l in info.split("\r\n") if l.startswith("process_id:")][0]

        # SO_REUSEPORT spreads connections over the workers: find two on different ones.
        conns = []
        for _ in range(32):
            conn = Resp3Socket(protocol=2)
            self.addCleanup(conn.close)
            conns.append((conn, worker_of(conn)))
        target, target_worker = conns[0]
        others = [c for c, w in conns if w != target_worker]
        if not others:
            self.skipTest("every connection landed on one worker (eloqkv.resp_workers = 1?)")
        tracking = others[0]
        target_id = target.call("CLIENT", "ID")
        self.assertEqual(target.call("SUBSCRIBE", "__redis__:invalidate"),
                         ["subscribe", "__redis__:invalidate", 1])
        self.assertEqual(tracking.call("CLIENT", "TRACKING", "on", "REDIRECT", target_id), "OK")
        self.assertEqual(tracking.call("CLIENT", "GETREDIR"), target_id)
        self.assertIsNone(tracking.call("GET", "tk:far"))
        self.r.set("tk:far", "x")
        self.assertEqual(target.read(), ["message", "__redis__:invalidate", ["tk:far"]])
        clients = self.r.client_list()
        flags = {int(cl["id"]): cl["flags"] for cl in clients}
        self.assertEqual(flags[target_id], "P")
        self.assertIn("t", flags[tracking.call("CLIENT", "ID")])


class Resp3Tests(RespCase):
    def test_resp3_protocol(self):
        try:
            r3 = redis.Redis(host=HOST, port=PORT, decode_responses=True, protocol=3)
        except TypeError:
            self.skipTest(f"redis-py {redis.__version__} has no RESP3 (protocol=3 needs 5.0)")
        try:
            self.assertTrue(r3.ping())
            r3.hset("h3", mapping={"a": "1", "b": "2"})
            self.assertEqual(r3.hgetall("h3"), {"a": "1", "b": "2"})
            self.assertIsNone(r3.get("missing"))
            self.assertEqual(r3.incr("n3"), 1)
            self.assertEqual(r3.client_info()["resp"], "3")
            with r3.pipeline(transaction=True) as p:
                self.assertEqual(p.set("t3", "v").get("t3").execute(), [True, "v"])
            self.assertReplyError(WRONGTYPE, r3.get, "h3")
        finally:
            r3.close()


@unittest.skipUnless(RESTART_CMD, "ELOQKV_RESTART_CMD is not set")
class RestartTests(RespCase):
    def test_acknowledged_writes_survive_a_restart(self):
        r, rb = self.r, self.rb
        r.set("p:s", "durable", ex=3600)
        r.hset("p:h", mapping={"a": "1", "b": "2"})
        big = {f"f{i}": str(i) for i in range(300)}
        r.hset("p:big", mapping=big)
        r.hdel("p:big", "f7")
        del big["f7"]
        rb.set(b"p:bin", bytes(range(256)))
        for i in range(100):
            r.incr("p:n")
        r.close()
        rb.close()
        subprocess.run(RESTART_CMD, shell=True, check=True, capture_output=True, timeout=180)
        deadline = time.monotonic() + 120
        c = client()
        while True:
            try:
                value = c.get("p:s")
                break
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            self.assertEqual(value, "durable")
            self.assertTrue(3500 < c.ttl("p:s") <= 3600)
            self.assertEqual(c.hgetall("p:h"), {"a": "1", "b": "2"})
            self.assertEqual(c.hgetall("p:big"), big)
            self.assertEqual(c.hlen("p:big"), 299)
            self.assertEqual(c.get("p:n"), "100")
            cb = client(decode=False)
            try:
                self.assertEqual(cb.get(b"p:bin"), bytes(range(256)))
            finally:
                cb.close()
        finally:
            c.close()
            type(self).r = client()
            type(self).rb = client(decode=False)


def load_tests(loader, standard_tests, pattern):
    """Class order as written; the restart last."""
    suite = unittest.TestSuite()
    for cls in (StringTests, KeyTests, HashTests, WrongTypeTests, PipelineTests,
                ConnectionTests, DataTests, WireTests, EloqkvTests, CacheTests,
                ClientTrackingTests, Resp3Tests, RestartTests):
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


if __name__ == "__main__":
    unittest.main()
