#!/usr/bin/env python3
"""node_run.py - run a Node.js transport driver against a ringmq with TLS and WebSocket listeners.

    RINGMQ_BIN=build/ringmq NODE_PATH=... node_run.py --shards N DRIVER.js

Makes throwaway certificates (certs.py), starts ringmq (broker.py), runs `node DRIVER.js`
with WS_PORT, WSS_PORT, TLS_PORT and CA_FILE in its environment (bounded by
DRIVER_TIMEOUT_S), then stops the broker with SIGTERM and requires exit status 0.
Exit 0 when both ended well, 77 when node or openssl is missing, 1 otherwise (with the
broker log's tail).
"""
import argparse
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as broker_mod  # noqa: E402

SKIP = 77
DRIVER_TIMEOUT_S = 60


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("driver")
    a = ap.parse_args()
    for prog in ("node", "openssl"):
        if shutil.which(prog) is None:
            print(f"SKIP: {prog} is not installed (tools/deps installs it)")
            return SKIP
    ok = False
    with broker_mod.started(a.shards) as (b, certs):
        env = dict(os.environ, WS_PORT=str(b.ports["ws"]), WSS_PORT=str(b.ports["wss"]),
                   TLS_PORT=str(b.ports["tls"]), CA_FILE=certs["ca"])
        try:
            r = subprocess.run(["node", a.driver], env=env, timeout=DRIVER_TIMEOUT_S)
            ok = r.returncode == 0
            if not ok:
                print(f"FAIL: {a.driver} exited {r.returncode}")
        except subprocess.TimeoutExpired:
            print(f"FAIL: {a.driver} did not finish in {DRIVER_TIMEOUT_S} s")
        ok = broker_mod.stop_checked(b, ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
