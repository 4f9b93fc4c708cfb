"""broker.py - start the ringmq built here with TLS and WebSocket listeners, stop it by pid.

Broker(certs, shards) writes a config to a fresh temp dir with these listeners, all on
127.0.0.1 and port 0 (the ports are read back from the "listener NAME listening on
ADDR:PORT" lines of the log):

  plain  MQTT over TCP
  tls    MQTT over TLS, certfile = the combined chain+key PEM (no keyfile)
  mtls   MQTT over TLS 1.3 only, client certificates required (signed by the test CA),
         use_identity_as_username
  ws     MQTT over WebSocket on /mqtt
  wss    MQTT over WebSocket over TLS on /mqtt

It tracks the one pid it started (SIGKILLed with this process via PR_SET_PDEATHSIG),
and stop() sends that pid SIGTERM and returns its exit status (None if it had to be
killed after STOP_WAIT_S); reload() sends it SIGHUP and waits for the outcome in the
log. It never signals any other process.

started(shards) is how the drivers use it: throwaway certificates (certs.py) and a
started Broker for the `with` block, both removed afterwards; stop_checked() stops the
broker and says whether it exited 0, printing the log's tail when anything failed.
"""
import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import certs as certs_mod

START_WAIT_S = 10.0
STOP_WAIT_S = 10.0
PR_SET_PDEATHSIG = 1
LISTENERS = ("plain", "tls", "mtls", "ws", "wss")
# Small enough that a test can send a bigger WebSocket frame cheaply.
PACKET_BYTES_MAX = 256 * 1024
CONNECT_TIMEOUT_MS = 1500


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Broker:
    def __init__(self, certs, shards, extra=""):
        self.dir = tempfile.mkdtemp(prefix="ringmq-transport-")
        self.log_path = os.path.join(self.dir, "ringmq.log")
        self.conf = os.path.join(self.dir, "ringmq.ini")
        c = certs
        with open(self.conf, "w") as f:
            f.write(f"""[broker]
log_level = debug
shards = {shards}
[limits]
packet_bytes_max = {PACKET_BYTES_MAX}
connect_timeout_ms = {CONNECT_TIMEOUT_MS}
[listener.plain]
port = 0
[listener.tls]
port = 0
certfile = {c['server_pem']}
[listener.mtls]
port = 0
certfile = {c['server_crt']}
keyfile = {c['server_key']}
cafile = {c['ca']}
require_certificate = true
use_identity_as_username = true
tls_version = tlsv1.3
[listener.ws]
port = 0
protocol = websockets
[listener.wss]
port = 0
protocol = websockets
ws_path = /mqtt
certfile = {c['server_crt']}
keyfile = {c['server_key']}
{extra}""")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([os.environ["RINGMQ_BIN"], "-c", self.conf],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        self.ports = {}
        deadline = time.monotonic() + START_WAIT_S
        while len(self.ports) < len(LISTENERS):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("ringmq did not start:\n" + self.log_text())
            for m in re.finditer(r"listener (\w+) listening on 127\.0\.0\.1:(\d+)",
                                 self.log_text()):
                self.ports[m.group(1)] = int(m.group(2))
            time.sleep(0.02)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def reload(self, ok=True):
        """SIGHUP the broker started here; wait for the reload's outcome (@ok: applied by
        every shard, else refused). Returns the log text that came after the signal."""
        needle = ("reload: every shard uses configuration generation" if ok
                  else "reload refused, the running configuration stays")
        mark = len(self.log_text())
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + START_WAIT_S
        while needle not in self.log_text()[mark:]:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"no '{needle}' after SIGHUP:\n" + self.log_text()[mark:])
            time.sleep(0.02)
        return self.log_text()[mark:]

    def stop(self):
        """SIGTERM the broker started here; its exit status, or None if it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        self.log.close()
        return self.proc.returncode


@contextlib.contextmanager
def started(shards):
    """(broker, certs) for the block: certificates made in a temp dir, the broker running."""
    tmp = tempfile.mkdtemp(prefix="ringmq-certs-")
    b = None
    try:
        certs = certs_mod.make(tmp)
        b = Broker(certs, shards)
        yield b, certs
    finally:
        if b is not None:
            if b.alive():
                b.stop()
            shutil.rmtree(b.dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def stop_checked(b, ok):
    """Stop @b; True when it exited 0 and @ok. Prints why not and the log's tail."""
    status = b.stop()
    if status != 0:
        print(f"FAIL: broker exit status {status}, want 0")
    if status != 0 or not ok:
        print("---- broker log (tail) ----")
        print(b.log_text()[-20000:])
    return ok and status == 0
