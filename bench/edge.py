"""How long an authenticated read takes while clients hold half-requests open (docs/performance.md).

    .venv/bin/python -m bench.edge [--reads 200] [--held 200] [--label L]

Starts a system of its own (its vhost, database, gateway, registry, scheduler;
no runner), then times ``GET /result/`` from 127.0.0.1 one after another in
three phases: quiet; while one address (127.0.0.2) opens ``--held``
connections that never finish their request (headers that never end, a body
announced and never sent, nothing at all); and while ``--held`` addresses
(127.0.0.3 ...) open one such connection each, so that none is refused at the
per-client bound.  Prints p50/p95/max per phase and writes
bench/results/<time>-edge-<label>.json.
"""
import argparse
import json
import os
import socket
import statistics
import time

import requests

from bench.backbone import NO_RATE_LIMIT, Database, Vhost
from tests.support import System

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
SHAPES = (b"GET /result/ HTTP/1.1\r\nHost: x\r\nX-Slow: ",
          b"POST /ui/signin HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
          b"")


def hold(addresses, port, count):
    """``count`` unfinished requests from ``addresses`` in turn; returns (sockets, refused)."""
    socks, refused = [], 0
    for n in range(count):
        sock = socket.socket()
        try:
            sock.bind((addresses[n % len(addresses)], 0))
            sock.connect(("127.0.0.1", port))
            sock.sendall(SHAPES[n % len(SHAPES)])
            socks.append(sock)
        except OSError:
            refused += 1
            sock.close()
    time.sleep(0.5)
    held = []
    for sock in socks:  # still open and unanswered, or refused (429) / reset by the gateway
        sock.setblocking(False)
        try:
            answered = sock.recv(1) != b"" or True
        except BlockingIOError:
            answered = False
        except OSError:
            answered = True
        if answered:
            refused += 1
            sock.close()
        else:
            held.append(sock)
    return held, refused


def timed_reads(url, token, reads):
    took = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        for _ in range(reads):
            start = time.perf_counter()
            response = session.get(url + "/result/", timeout=60)
            took.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
    took.sort()
    return {"reads": reads, "p50_ms": round(statistics.median(took) * 1000, 2),
            "p95_ms": round(took[int(len(took) * 0.95) - 1] * 1000, 2), "max_ms": round(took[-1] * 1000, 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--held", type=int, default=200)
    parser.add_argument("--label", default="run")
    args = parser.parse_args(argv)
    phases = {}
    with Vhost() as vhost, Database() as database:
        # reads one after another as fast as they are answered: over the per-client rate, which is not measured here
        system = System(vhost.uri, database.url, runners=0, name="bench-edge",
                        env=NO_RATE_LIMIT).start().wait_healthy()
        try:
            phases["quiet"] = timed_reads(system.url, system.token, args.reads)
            for phase, addresses in (("one_address", ["127.0.0.2"]),
                                     ("many_addresses", [f"127.0.{2 + n // 250}.{3 + n % 250}"
                                                         for n in range(args.held)])):
                socks, refused = hold(addresses, system.port, args.held)
                try:
                    phases[phase] = {**timed_reads(system.url, system.token, args.reads),
                                     "held": len(socks), "refused_or_reset": refused}
                finally:
                    for sock in socks:
                        sock.close()
        finally:
            system.stop()
    os.makedirs(RESULTS, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = os.path.join(RESULTS, f"{stamp}-edge-{args.label}.json")
    with open(path, "w") as fh:
        json.dump({"held_per_phase": args.held, "phases": phases, "load": os.getloadavg()}, fh, indent=2)
    for phase, figures in phases.items():
        print(f"{phase:>15}: {figures}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
