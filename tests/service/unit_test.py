#!/usr/bin/python3
"""tests/service/unit_test.py - config/ringmq.service is a unit systemd accepts.

`systemd-analyze verify` (offline: no running systemd needed) on a copy whose
ExecStart names the built binary must print nothing, and the unit must keep
what the service relies on: Type=notify, reload by SIGHUP, the ringmq user,
its directories, and the hardening (every line below is checked).
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import svc  # noqa: E402

REQUIRED = [
    "Type=notify",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "ExecStart=/usr/sbin/ringmq -c /etc/ringmq/ringmq.ini",
    "User=ringmq",
    "StateDirectory=ringmq",
    "ConfigurationDirectory=ringmq",
    "LimitNOFILE=",
    "CapabilityBoundingSet=",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter=@system-service io_uring_setup io_uring_enter io_uring_register",
]


def main():
    unit = os.path.join(os.environ.get("RINGMQ_SRC", "."), "config", "ringmq.service")
    text = svc.read(unit)
    lines = text.splitlines()
    for want in REQUIRED:
        if not any(line == want or (want.endswith("=") and line.startswith(want))
                   for line in lines):
            svc.fail("%s: no line %r" % (unit, want))
    tool = shutil.which("systemd-analyze")
    if tool is None:
        svc.skip("systemd-analyze is missing (Debian package systemd)")
    d = svc.tmpdir("unit")
    copy = os.path.join(d, "ringmq.service")
    svc.write(copy, text.replace("/usr/sbin/ringmq", svc.binary()))
    r = subprocess.run([tool, "verify", "--man=no", copy], capture_output=True, text=True,
                       timeout=svc.WAIT_S, check=False)
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or out:
        svc.fail("systemd-analyze verify: exit %d:\n%s" % (r.returncode, out))
    shutil.rmtree(d, ignore_errors=True)
    print("ok: %s verifies and keeps its %d required lines" % (unit, len(REQUIRED)))


if __name__ == "__main__":
    main()
