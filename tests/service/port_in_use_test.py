#!/usr/bin/python3
"""tests/service/port_in_use_test.py - a taken port is named with its holder.

This script listens on a free loopback port (as mosquitto.service would on
1883), then starts ringmq on that port: ringmq must exit 1 and its error
must say which process holds the port - this one, by name and pid, found
through /proc - and how to choose another port (-p PORT or the config key).
"""

import os
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svc  # noqa: E402


def main():
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    d = svc.tmpdir("port")
    conf = os.path.join(d, "ringmq.ini")
    svc.write(conf, svc.listener_ini(port=port))
    try:
        r = subprocess.run([svc.binary(), "-c", conf], capture_output=True, text=True,
                           timeout=svc.WAIT_S, check=False)
    finally:
        holder.close()
    err = r.stdout + r.stderr
    if r.returncode != 1:
        svc.fail("exit status %d with port %d taken, expected 1:\n%s" % (r.returncode, port, err))
    want = "port %d on 127.0.0.1 is in use by python3 (pid %d)" % (port, os.getpid())
    for needle in (want, "ringmq -p PORT", "port =", "[listener.default]"):
        if needle not in err:
            svc.fail("'%s' not in the error:\n%s" % (needle, err))
    shutil.rmtree(d, ignore_errors=True)
    print("ok: " + want)


if __name__ == "__main__":
    main()
