"""tests/service/svc.py - shared helpers for the service tests (issue 16).

Starts the real broker (RINGMQ_BIN) as a child process with its log in a
file, waits for lines in that log (bounded), finds the port it bound, and
stops only the process it started, by pid. Debian's /usr/bin/python3, stdlib
only.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

WAIT_S = 20.0  # generous: the test machines are shared and slow, never a timing assertion


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def skip(msg):
    print("SKIP: " + msg, file=sys.stderr)
    sys.exit(77)


def binary():
    path = os.environ.get("RINGMQ_BIN")
    if not path or not os.access(path, os.X_OK):
        fail("RINGMQ_BIN is not set to the ringmq binary")
    return path


def tmpdir(tag):
    return tempfile.mkdtemp(prefix="ringmq-svc-%s-" % tag)


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def read(path):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Broker:
    """One ringmq process: argv, its log file, its pid."""

    def __init__(self, args, log_path, env=None, binary_path=None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen([binary_path or binary()] + args, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=full_env)

    def text(self):
        return read(self.log_path)

    def wait_log(self, needle, after=0, timeout=WAIT_S):
        """Wait until the log past byte @after contains @needle; fail with the log if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text()[after:]:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        fail("'%s' not in the broker log (exit %s):\n%s" % (needle, self.proc.poll(), self.text()))

    def port(self, n=0):
        """The port of the @n-th "listening on ADDR:PORT" line."""
        self.wait_log("listening on")
        ports = re.findall(r"listening on \S*:(\d+)", self.text())
        if len(ports) <= n:
            fail("no listener %d in the log:\n%s" % (n, self.text()))
        return int(ports[n])

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=WAIT_S):
        """Wait for the exit (SIGKILL after @timeout); returns the status."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("the broker did not exit within %.0f s:\n%s" % (timeout, self.text()))
        finally:
            self.log.close()

    def stop(self):
        """SIGTERM, then assert exit status 0."""
        self.signal(signal.SIGTERM)
        rc = self.wait_exit()
        if rc != 0:
            fail("exit status %s after SIGTERM:\n%s" % (rc, self.text()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def listener_ini(port=0, extra=""):
    return "[broker]\nshards = 2\n%s\n[listener.default]\nbind = 127.0.0.1\nport = %d\n" % (
        extra, port)


def free_port():
    """A port nothing listens on right now (the kernel's pick, released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S):
            return True
    except OSError:
        return False
