"""ops_broker.py - start one ringmq for the tests/ops checks, stop it.

The broker is $RINGMQ_BIN with the given INI (listener and metrics on port
0: the bound ports are read back from the log), in a fresh temp dir. Only
the pid started here is ever signalled; stop() sends it SIGTERM and
requires exit status 0 within STOP_WAIT_S.
"""
import os
import re
import signal
import subprocess
import tempfile
import time

START_WAIT_S = 10.0
STOP_WAIT_S = 10.0


class Broker:
    def __init__(self, ini, admin=False):
        self.dir = tempfile.mkdtemp(prefix="ringmq-ops-")
        self.ini = os.path.join(self.dir, "ringmq.ini")
        self.admin_path = os.path.join(self.dir, "admin.sock")
        if admin:
            # An [admin] section of the INI, if any, gets the socket key first.
            if "[admin]\n" in ini:
                ini = ini.replace("[admin]\n", "[admin]\nsocket = %s\n" % self.admin_path)
            else:
                ini += "[admin]\nsocket = %s\n" % self.admin_path
        with open(self.ini, "w") as f:
            f.write(ini)
        self.log_path = os.path.join(self.dir, "ringmq.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([os.environ["RINGMQ_BIN"], "-c", self.ini],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        self.metrics_port = None
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline:
            text = self.log_text()
            m = re.search(r"listener \S+ listening on [0-9.]+:(\d+)", text)
            h = re.search(r"metrics listening on http://[0-9.]+:(\d+)/metrics", text)
            if m and "ready:" in text:
                self.port = int(m.group(1))
                self.metrics_port = int(h.group(1)) if h else None
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("broker did not start:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("broker did not stop in %.0f s" % STOP_WAIT_S)
        self.log.close()
        if rc != 0:
            raise RuntimeError("broker exited %d:\n%s" % (rc, self.log_text()[-4000:]))
