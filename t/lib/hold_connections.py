#!/usr/bin/env python3
"""Opens N connections to a RESP port, PINGs on each, and holds them idle.

Prints "connected <answered>" once every connection answered its PING, then waits for a line on
stdin, PINGs on each again and prints "still <answered>". Prints "skip <reason>" and exits if
this process cannot have N descriptors.
"""
import resource
import socket
import sys


def ping_all(socks):
    for s in socks:
        s.sendall(b"PING\r\n")
    answered = 0
    for s in socks:
        got = b""
        while len(got) < 7:
            chunk = s.recv(7 - len(got))
            if not chunk:
                break
            got += chunk
        answered += got == b"+PONG\r\n"
    return answered


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if hard != resource.RLIM_INFINITY and hard < want:
        print(f"skip the open file limit ({hard}) is below {want}", flush=True)
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        socks.append(s)
    print(f"connected {ping_all(socks)}", flush=True)
    sys.stdin.readline()
    print(f"still {ping_all(socks)}", flush=True)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
